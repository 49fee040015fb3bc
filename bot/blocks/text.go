package blocks

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// Slack's limits (https://docs.slack.dev/reference/block-kit), counted in
// characters (runes, as slack-go's own validation counts them).
const (
	maxSectionText     = 3000
	maxFieldText       = 2000
	maxFields          = 10
	maxContextText     = 3000
	maxContextElements = 10
	maxHeaderText      = 150
	maxBlocks          = 50
	maxButtonText      = 75
	maxConfirmTitle    = 100
	maxConfirmText     = 300
	maxConfirmButton   = 30
	maxModalTitle      = 24
	maxInputLabel      = 2000
	maxHintText        = 2000
	maxPlaceholder     = 150
	// maxFallbackText is ours: notifications and screen readers only need a line.
	maxFallbackText = 3000
)

// Display caps for values that did not come from this package, applied to
// the raw value before escaping, so one long value cannot push the rest of a
// message past Slack's limits.
const (
	// MaxReasonLen is the longest request or deny reason shown; DenyModal
	// enforces it on input as well.
	MaxReasonLen   = 1000
	maxOutcomeLen  = 500
	maxStepTextLen = 500
	maxNoteLen     = 500
	// maxNameLen bounds identifiers: request IDs, targets, environments, events.
	maxNameLen = 80
	// maxErrorMessageLen bounds a UserMessage from another package.
	maxErrorMessageLen = 1000
)

// ellipsis marks clipped text.
const ellipsis = "…"

// clean drops what no message should carry: invalid UTF-8, control
// characters other than newline and tab, and bidirectional overrides (which
// can make text read differently from what it is).
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
			return -1
		case r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return -1
		}
		return r
	}, s)
}

// oneLine is clean with line breaks folded into spaces, for values shown inline.
func oneLine(s string) string {
	return strings.Join(strings.Fields(clean(s)), " ")
}

// clip shortens s to at most max runes, marking the cut with an ellipsis.
func clip(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:max-1]), " \n") + ellipsis
}

// esc escapes the three characters Slack mrkdwn gives meaning to, so a value
// can never form a mention, a link or a date token.
func esc(s string) string {
	s = strings.ReplaceAll(s, "&", "&amp;")
	s = strings.ReplaceAll(s, "<", "&lt;")
	return strings.ReplaceAll(s, ">", "&gt;")
}

// text renders a multi-line outside value for mrkdwn: cleaned, clipped, escaped.
func text(s string, max int) string { return esc(clip(strings.TrimSpace(clean(s)), max)) }

// inline renders a single-line outside value for mrkdwn.
func inline(s string, max int) string { return esc(clip(oneLine(s), max)) }

// name renders an identifier (request ID, target, environment) for mrkdwn.
func name(s string) string {
	if s = inline(s, maxNameLen); s == "" {
		return "—"
	}
	return s
}

// fit shortens assembled mrkdwn to max runes without cutting through an
// escape entity (&amp;) or a token (<@U1>, <!date^…>): the cut moves back to
// the start of an unfinished one.
func fit(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	cut := max - utf8.RuneCountInString(ellipsis)
	if cut < 0 {
		cut = 0
	}
	head := r[:cut]
	if i := lastIndex(head, '<'); i >= 0 && i > lastIndex(head, '>') {
		head = head[:i]
	}
	if i := lastIndex(head, '&'); i >= 0 && i > lastIndex(head, ';') {
		head = head[:i]
	}
	return strings.TrimRight(string(head), " \n") + ellipsis
}

func lastIndex(r []rune, c rune) int {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] == c {
			return i
		}
	}
	return -1
}

// isSlackID reports whether id looks like a Slack user, bot or workspace
// user ID (uppercase letters and digits, starting with a letter), so that
// rendering it inside <@…> cannot produce anything but a mention.
func isSlackID(id string) bool {
	if len(id) < 2 || len(id) > 32 || id[0] < 'A' || id[0] > 'Z' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// mention renders a user: a mention for a Slack ID, the escaped value
// otherwise, or fallback when there is none.
func mention(id, fallback string) string {
	switch {
	case id == "":
		return fallback
	case isSlackID(id):
		return "<@" + id + ">"
	default:
		return "`" + inline(id, maxNameLen) + "`"
	}
}

// date renders t as a Slack date token: each reader sees it in their own
// timezone; clients that cannot render it show the RFC 3339 UTC fallback.
func date(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format(time.RFC3339))
}

// duration renders d for people: "45 minutes", "1 hour 30 minutes", "2 days 3 hours".
func duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Minute)
	if d < time.Minute {
		return "less than a minute"
	}
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0:
		return joinUnits(unit(days, "day"), unit(hours, "hour"))
	case hours > 0:
		return joinUnits(unit(hours, "hour"), unit(mins, "minute"))
	default:
		return unit(mins, "minute")
	}
}

func unit(n int, word string) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "1 " + word
	default:
		return fmt.Sprintf("%d %ss", n, word)
	}
}

func joinUnits(a, b string) string {
	if b == "" {
		return a
	}
	return a + " " + b
}

// relative renders t against now: "in 25 minutes" or "5 minutes ago". Only
// for ephemeral answers, which are read at once; posted messages use date.
func relative(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if t.After(now) {
		return "in " + duration(t.Sub(now))
	}
	return duration(now.Sub(t)) + " ago"
}

// md is a mrkdwn text object. verbatim stops Slack from turning bare
// "@here", channel names or URLs in the text into mentions or links: only
// the explicit <…> tokens this package writes are parsed.
func md(s string, max int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, fit(s, max), false, true)
}

// plain is a plain_text object (never parsed by Slack for mentions or
// links), cleaned to one line and clipped.
func plain(s string, max int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, clip(oneLine(s), max), true, false)
}

func section(s string) *slack.SectionBlock {
	return slack.NewSectionBlock(md(s, maxSectionText), nil, nil)
}

func header(s string) *slack.HeaderBlock {
	return slack.NewHeaderBlock(plain(s, maxHeaderText))
}

// contextBlock is a context block with one mrkdwn element per line given, up to
// Slack's element limit (the rest are joined into the last element).
func contextBlock(lines ...string) *slack.ContextBlock {
	if len(lines) > maxContextElements {
		tail := strings.Join(lines[maxContextElements-1:], "\n")
		lines = append(lines[:maxContextElements-1:maxContextElements-1], tail)
	}
	els := make([]slack.MixedElement, 0, len(lines))
	for _, l := range lines {
		els = append(els, md(l, maxContextText))
	}
	return slack.NewContextBlock("", els...)
}

// fields is a section of label/value pairs, up to Slack's field limit.
func fields(pairs ...[2]string) *slack.SectionBlock {
	var fs []*slack.TextBlockObject
	for _, p := range pairs {
		if len(fs) == maxFields {
			break
		}
		fs = append(fs, md("*"+p[0]+"*\n"+p[1], maxFieldText))
	}
	return slack.NewSectionBlock(nil, fs, nil)
}

// fallback is a message's notification text: mrkdwn, so built from the same
// escaped parts as the blocks.
func fallback(s string) string { return fit(s, maxFallbackText) }

// target renders "openai (prod)".
func target(t, env string) string { return name(t) + " (" + name(env) + ")" }
