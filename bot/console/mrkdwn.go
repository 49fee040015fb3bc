package console

import (
	"html"
	"strconv"
	"strings"
	"time"
)

// Slack's mrkdwn, rendered to HTML. The text arrives as Slack expects it:
// &, < and > escaped as entities, and <…> reserved for tokens (mentions,
// links, dates, channel-wide notifications). The renderer decodes the
// entities of plain text and escapes everything again on the way out, so the
// only markup in its result is what it writes itself; a value that a person
// typed (a reason, say) arrives escaped by bot/blocks and is shown as typed.

// maxShortcode bounds the name of an emoji shortcode (:white_check_mark:).
const maxShortcode = 50

// placeholder marks a piece of finished HTML held aside while the text
// around it is formatted; NUL never occurs in rendered input (it is
// removed first).
const placeholder = '\x00'

// unescapeEntities undoes Slack's three entities (&amp; last, so that
// "&amp;lt;" stays "&lt;").
func unescapeEntities(s string) string {
	s = strings.ReplaceAll(s, "&lt;", "<")
	s = strings.ReplaceAll(s, "&gt;", ">")
	return strings.ReplaceAll(s, "&amp;", "&")
}

func esc(s string) string { return html.EscapeString(s) }

// mrkdwn renders a mrkdwn text object's text.
func (r *renderer) mrkdwn(s string) string {
	s = strings.ReplaceAll(s, string(placeholder), "")
	parts := strings.Split(s, "```")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i%2 == 1 && i < len(parts)-1:
			b.WriteString(`<pre class="md-pre">`)
			b.WriteString(esc(unescapeEntities(strings.Trim(p, "\n"))))
			b.WriteString(`</pre>`)
		case i%2 == 1:
			// An unterminated fence is text, as Slack shows it.
			b.WriteString(r.lines("```" + p))
		default:
			// A fence starts and ends a block of its own: the newlines
			// around it are not line breaks.
			if i > 0 {
				p = strings.TrimPrefix(p, "\n")
			}
			if i < len(parts)-1 {
				p = strings.TrimSuffix(p, "\n")
			}
			b.WriteString(r.lines(p))
		}
	}
	return b.String()
}

// lines renders text outside code fences: line breaks, and runs of lines
// starting with ">" as a quote.
func (r *renderer) lines(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	inQuote, first := false, true
	for _, l := range strings.Split(s, "\n") {
		body, quote := strings.CutPrefix(l, "&gt;")
		if quote {
			body = strings.TrimPrefix(body, " ")
		} else {
			body = l
		}
		switch {
		case quote && !inQuote:
			b.WriteString(`<blockquote class="md-quote">`)
		case !quote && inQuote:
			b.WriteString(`</blockquote>`)
		case !first:
			b.WriteString("<br>")
		}
		inQuote, first = quote, false
		b.WriteString(r.inline(body))
	}
	if inQuote {
		b.WriteString(`</blockquote>`)
	}
	return b.String()
}

// inline renders one line: tokens, code spans and emoji are rendered and
// held aside, then the rest is escaped and *bold*, _italic_ and ~strike~
// are applied around them.
func (r *renderer) inline(s string) string {
	var held []string
	var b strings.Builder
	hold := func(h string) {
		b.WriteByte(placeholder)
		b.WriteString(strconv.Itoa(len(held)))
		b.WriteByte(placeholder)
		held = append(held, h)
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case '<':
			if j := strings.IndexByte(s[i+1:], '>'); j >= 0 {
				hold(r.token(s[i+1 : i+1+j]))
				i += j + 2
				continue
			}
		case '`':
			if j := strings.IndexByte(s[i+1:], '`'); j > 0 {
				hold(`<code class="md-code">` + esc(unescapeEntities(s[i+1:i+1+j])) + `</code>`)
				i += j + 2
				continue
			}
		case ':':
			if h, n, ok := emojiAt(s[i:]); ok {
				hold(h)
				i += n
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	out := esc(unescapeEntities(b.String()))
	out = emphasis(out, '*', "strong")
	out = emphasis(out, '_', "em")
	out = emphasis(out, '~', "del")
	return restore(out, held)
}

// emojiAt renders a known :shortcode: at the start of s, returning its HTML
// and length.
func emojiAt(s string) (string, int, bool) {
	end := strings.IndexByte(s[1:min(len(s), maxShortcode+2)], ':')
	if end <= 0 {
		return "", 0, false
	}
	name := s[1 : 1+end]
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '+' || c == '-') {
			return "", 0, false
		}
	}
	e, ok := emoji(name)
	if !ok {
		return "", 0, false
	}
	label := strings.ReplaceAll(name, "_", " ")
	return `<span class="emoji" role="img" aria-label="` + esc(label) + `">` + e + `</span>`, end + 2, true
}

// emojify replaces known shortcodes in already escaped plain text.
func emojify(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == ':' {
			if h, n, ok := emojiAt(s[i:]); ok {
				b.WriteString(h)
				i += n
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// emphasis wraps m…m in tag where Slack does: the opening marker starts a
// word and is followed by a non-space, the closing one ends a word and
// follows a non-space, both on one line. "snake_case_name" stays as is.
func emphasis(s string, m byte, tag string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == m && (i == 0 || !isWordByte(s[i-1])) && i+1 < len(s) && !isSpaceByte(s[i+1]) && s[i+1] != m {
			if j := closingMarker(s, i+1, m); j > 0 {
				b.WriteString("<" + tag + ">" + s[i+1:j] + "</" + tag + ">")
				i = j + 1
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func closingMarker(s string, from int, m byte) int {
	for j := from + 1; j < len(s); j++ {
		if s[j] == m && !isSpaceByte(s[j-1]) && (j+1 == len(s) || !isWordByte(s[j+1])) {
			return j
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// restore puts the held pieces back in place of their placeholders.
func restore(s string, held []string) string {
	if len(held) == 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, placeholder)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i+1:], placeholder)
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		if n, err := strconv.Atoi(s[i+1 : i+1+j]); err == nil && n >= 0 && n < len(held) {
			b.WriteString(held[n])
		}
		s = s[i+j+2:]
	}
}

// token renders the inside of <…>: a user, channel or group mention, a
// channel-wide notification, a date or a link. Anything else is shown as
// text.
func (r *renderer) token(inner string) string {
	target, label, hasLabel := strings.Cut(inner, "|")
	label = unescapeEntities(label)
	switch {
	case strings.HasPrefix(target, "@"):
		name := r.userName(target[1:])
		if name == "" {
			name = target[1:]
		}
		return `<span class="mention">@` + esc(name) + `</span>`
	case strings.HasPrefix(target, "#"):
		name := r.channelName(target[1:])
		if name == "" {
			name = target[1:]
			if hasLabel {
				name = label
			}
		}
		return `<span class="mention">#` + esc(name) + `</span>`
	case strings.HasPrefix(target, "!subteam^"):
		name := strings.TrimPrefix(target, "!subteam^")
		if hasLabel {
			name = strings.TrimPrefix(label, "@")
		}
		return `<span class="mention">@` + esc(name) + `</span>`
	case target == "!channel", target == "!here", target == "!everyone":
		return `<span class="mention mention-broadcast">@` + target[1:] + `</span>`
	case strings.HasPrefix(target, "!date^"):
		return r.date(strings.TrimPrefix(target, "!date^"), label)
	case strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"), strings.HasPrefix(target, "mailto:"):
		url := unescapeEntities(target)
		text := url
		if hasLabel && label != "" {
			text = label
		}
		if a := r.anchorOf(url); a != "" {
			return `<a class="md-link" href="#` + esc(a) + `">` + esc(text) + `</a>`
		}
		return `<a class="md-link" href="` + esc(url) + `" target="_blank" rel="noopener noreferrer">` + esc(text) + `</a>`
	}
	return esc(unescapeEntities("<" + inner + ">"))
}

// date renders <!date^unix^format^link|fallback> in the page's time zone.
func (r *renderer) date(spec, fallback string) string {
	parts := strings.SplitN(spec, "^", 3)
	sec, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || len(parts) < 2 {
		return esc(fallback)
	}
	t := time.Unix(sec, 0).In(r.location())
	text := r.formatDate(unescapeEntities(parts[1]), t)
	return `<time datetime="` + t.UTC().Format(time.RFC3339) + `" title="` + esc(fallback) + `">` + esc(text) + `</time>`
}

// formatDate expands Slack's date tokens ({date_short_pretty}, {time}, …);
// the rest of the format is kept as written.
func (r *renderer) formatDate(format string, t time.Time) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(format, '{')
		if i < 0 {
			b.WriteString(format)
			return b.String()
		}
		j := strings.IndexByte(format[i:], '}')
		if j < 0 {
			b.WriteString(format)
			return b.String()
		}
		b.WriteString(format[:i])
		tok := format[i+1 : i+j]
		if s, ok := r.dateToken(tok, t); ok {
			b.WriteString(s)
		} else {
			b.WriteString(format[i : i+j+1])
		}
		format = format[i+j+1:]
	}
}

func (r *renderer) dateToken(tok string, t time.Time) (string, bool) {
	now := r.clock().In(r.location())
	pretty := func(otherwise string) string {
		y, m, d := t.Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, t.Location())
		ny, nm, nd := now.Date()
		today := time.Date(ny, nm, nd, 0, 0, 0, 0, t.Location())
		switch day.Sub(today) {
		case 0:
			return "today"
		case -24 * time.Hour:
			return "yesterday"
		case 24 * time.Hour:
			return "tomorrow"
		}
		return otherwise
	}
	long := t.Format("Monday, January ") + ordinal(t.Day()) + t.Format(", 2006")
	medium := t.Format("January ") + ordinal(t.Day()) + t.Format(", 2006")
	short := t.Format("Jan 2, 2006")
	switch tok {
	case "date_num":
		return t.Format("2006-01-02"), true
	case "date":
		return medium, true
	case "date_short":
		return short, true
	case "date_long":
		return long, true
	case "date_pretty":
		return pretty(medium), true
	case "date_short_pretty":
		return pretty(short), true
	case "date_long_pretty":
		return pretty(long), true
	case "time":
		return t.Format("15:04"), true
	case "time_secs":
		return t.Format("15:04:05"), true
	case "ago":
		return ago(t, now), true
	}
	return "", false
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// ago says how far t is from now, in the largest whole unit.
func ago(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
