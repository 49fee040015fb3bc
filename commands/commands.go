// Package commands parses the text of the /rotate and /rotate-jwt slash
// commands into a Command.
//
// Rules this package keeps:
//   - It is pure: no I/O, no clock, no Slack, no configuration. It checks the
//     shape of a command (names, flags, IDs), never whether a target or an
//     environment exists; the approvals policy does that.
//   - Every failure is an *Error whose UserMessage names the one problem found
//     and shows the usage of the form the user was typing.
//   - Text it echoes back in an error is shortened, so a long paste never
//     travels further than needed.
//   - Command.Text is the canonical form of a command: Parse(c.Text())
//     returns c again (the fuzz test holds it to that).
package commands

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Verb is what a command asks for. Values are stored; never change them.
type Verb string

const (
	VerbRotate Verb = "rotate"
	VerbHelp   Verb = "help"
	VerbList   Verb = "list"
	VerbStatus Verb = "status"
	VerbCancel Verb = "cancel"
	// VerbRollback opens a request that restores what request ID replaced.
	VerbRollback Verb = "rollback"
)

// Command is a parsed command.
type Command struct {
	Verb Verb
	// Target is the rotation target (VerbRotate only).
	Target string
	// Env is the environment asked for with --env; empty means the policy's default.
	Env string
	// Reason is the --reason text with runs of white space collapsed to one space.
	Reason string
	// ID is the request ID, upper case (VerbStatus, VerbCancel and VerbRollback only).
	ID string
	// Emergency is --emergency.
	Emergency bool
}

// Usage lines, one per form, as shown in error messages and by the transport's help.
const (
	UsageRotate   = `/rotate <target> [--env prod|staging] [--reason "..."] [--emergency]`
	UsageJWT      = `/rotate-jwt [--env prod|staging] [--reason "..."] [--emergency]`
	UsageList     = `/rotate list`
	UsageStatus   = `/rotate status <id>`
	UsageCancel   = `/rotate cancel <id>`
	UsageRollback = `/rotate rollback <id> [--reason "..."]`
	UsageHelp     = `/rotate help`
)

// UsageLines returns every usage line, in the order help shows them.
func UsageLines() []string {
	return []string{UsageRotate, UsageJWT, UsageList, UsageStatus, UsageCancel, UsageRollback, UsageHelp}
}

// Limits and documented shapes. The patterns are documentation (and the
// tests hold the hand-written checks to them); the checks themselves are
// plain loops so that the package needs no compiled-regexp globals.
const (
	// MaxInputLength bounds the command text, in characters. Slack allows
	// far more; nothing legitimate comes close.
	MaxInputLength = 1000
	// TargetPattern is what a target name looks like.
	TargetPattern = `^[a-z][a-z0-9_-]{0,40}$`
	// EnvPattern is what an environment name looks like.
	EnvPattern = `^[a-z][a-z0-9-]{0,30}$`
	// RequestIDPattern is what a request ID looks like once normalized;
	// input is accepted in any case and normalized to upper case.
	RequestIDPattern = `^R-[0-9A-Z]{6,12}$`
	// TargetJWT is the target /rotate-jwt rotates.
	TargetJWT = "jwt"

	maxTargetTail = 40
	maxEnvTail    = 30
	minIDTail     = 6
	maxIDTail     = 12
	// maxEcho bounds user text quoted back in an error.
	maxEcho = 40
)

// IsReserved reports whether word is a command word and so cannot name a target.
func IsReserved(word string) bool {
	switch Verb(word) {
	case VerbHelp, VerbList, VerbStatus, VerbCancel, VerbRollback:
		return true
	}
	return false
}

// ValidateTarget checks that name can name a target: TargetPattern and not
// a reserved word. The configuration loader uses it too.
func ValidateTarget(name string) error {
	if name == "" {
		return &Error{Problem: "the target is empty", Usage: UsageRotate}
	}
	if IsReserved(name) {
		return &Error{Problem: fmt.Sprintf("%q is a reserved word and cannot name a target", name), Usage: UsageRotate}
	}
	if !validName(name, maxTargetTail, true) {
		return &Error{
			Problem: fmt.Sprintf("invalid target %s: use lowercase letters, digits, - and _, starting with a letter (at most %d characters)", echo(name), maxTargetTail+1),
			Usage:   UsageRotate,
		}
	}
	return nil
}

// ValidateEnv checks that env matches EnvPattern.
func ValidateEnv(env string) error {
	if !validName(env, maxEnvTail, false) {
		return &Error{
			Problem: fmt.Sprintf("invalid environment %s: use lowercase letters, digits and -, starting with a letter (at most %d characters)", echo(env), maxEnvTail+1),
			Usage:   UsageRotate,
		}
	}
	return nil
}

// NormalizeRequestID returns id in upper case if it is a request ID in any
// case (RequestIDPattern), and false otherwise.
func NormalizeRequestID(id string) (string, bool) {
	if len(id) < 2+minIDTail || len(id) > 2+maxIDTail {
		return "", false
	}
	if (id[0] != 'R' && id[0] != 'r') || id[1] != '-' {
		return "", false
	}
	for i := 2; i < len(id); i++ {
		c := id[i]
		if !isDigit(c) && !isLower(c) && !(c >= 'A' && c <= 'Z') {
			return "", false
		}
	}
	// ASCII only by now, so ToUpper cannot map a foreign letter into range.
	return strings.ToUpper(id), true
}

// validName checks ^[a-z][a-z0-9-(_)]{0,maxTail}$.
func validName(s string, maxTail int, underscore bool) bool {
	if len(s) == 0 || len(s) > maxTail+1 || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if isLower(c) || isDigit(c) || c == '-' || (underscore && c == '_') {
			continue
		}
		return false
	}
	return true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Error is a command that could not be parsed.
type Error struct {
	// Problem names what is wrong, in words a user can act on.
	Problem string
	// Usage is the usage line of the form the user was typing.
	Usage string
}

func (e *Error) Error() string { return "invalid command: " + e.Problem }

// UserMessage is the reply to show the user: the problem and the right usage.
func (e *Error) UserMessage() string { return e.Problem + ". Usage: " + e.Usage }

// Parse parses the text after /rotate.
func Parse(text string) (Command, error) {
	toks, err := lex(text, UsageRotate)
	if err != nil {
		return Command{}, err
	}
	if len(toks) == 0 {
		return Command{Verb: VerbHelp}, nil
	}
	first := toks[0]
	if first.flag == "" {
		switch first.text {
		case string(VerbHelp):
			return parseBare(VerbHelp, toks[1:], UsageHelp)
		case string(VerbList):
			return parseBare(VerbList, toks[1:], UsageList)
		case string(VerbStatus):
			return parseWithID(VerbStatus, toks[1:], UsageStatus)
		case string(VerbCancel):
			return parseWithID(VerbCancel, toks[1:], UsageCancel)
		case string(VerbRollback):
			return parseRollback(text, toks[1:])
		}
	}
	return parseRotate(text, toks, UsageRotate, true)
}

// ParseJWT parses the text after /rotate-jwt: flags only, target jwt.
// `/rotate-jwt help` asks for help like `/rotate help`.
func ParseJWT(text string) (Command, error) {
	toks, err := lex(text, UsageJWT)
	if err != nil {
		return Command{}, err
	}
	if len(toks) > 0 && toks[0].flag == "" && toks[0].text == string(VerbHelp) {
		return parseBare(VerbHelp, toks[1:], UsageJWT)
	}
	c, err := parseRotate(text, toks, UsageJWT, false)
	if err != nil {
		return Command{}, err
	}
	c.Target = TargetJWT
	return c, nil
}

// parseBare parses a verb that takes nothing after it.
func parseBare(v Verb, rest []token, usage string) (Command, error) {
	if len(rest) > 0 {
		return Command{}, &Error{Problem: fmt.Sprintf("%s takes no arguments or flags (got %s)", v, rest[0].show()), Usage: usage}
	}
	return Command{Verb: v}, nil
}

// parseWithID parses `status <id>` and `cancel <id>`.
func parseWithID(v Verb, rest []token, usage string) (Command, error) {
	if len(rest) == 0 {
		return Command{}, &Error{Problem: fmt.Sprintf("%s needs a request ID", v), Usage: usage}
	}
	for _, t := range rest {
		if t.flag != "" {
			return Command{}, &Error{Problem: fmt.Sprintf("%s takes no flags (got %s)", v, t.show()), Usage: usage}
		}
	}
	if len(rest) > 1 {
		return Command{}, &Error{Problem: fmt.Sprintf("unexpected argument %s: %s takes one request ID", rest[1].show(), v), Usage: usage}
	}
	id, ok := NormalizeRequestID(rest[0].text)
	if !ok {
		return Command{}, &Error{Problem: fmt.Sprintf("invalid request ID %s: request IDs look like R-7K2M9Q", echo(rest[0].text)), Usage: usage}
	}
	return Command{Verb: v, ID: id}, nil
}

// parseRollback parses `rollback <id> [--reason "..."]`.
func parseRollback(text string, rest []token) (Command, error) {
	if len(rest) == 0 || rest[0].flag != "" {
		return Command{}, &Error{Problem: "rollback needs the ID of the request to undo first", Usage: UsageRollback}
	}
	id, ok := NormalizeRequestID(rest[0].text)
	if !ok {
		return Command{}, &Error{Problem: fmt.Sprintf("invalid request ID %s: request IDs look like R-7K2M9Q", echo(rest[0].text)), Usage: UsageRollback}
	}
	c := Command{Verb: VerbRollback, ID: id}
	for i := 1; i < len(rest); i++ {
		t := rest[i]
		if t.flag == "" {
			return Command{}, &Error{Problem: fmt.Sprintf("unexpected argument %s: rollback takes one request ID (put a reason after --reason)", t.show()), Usage: UsageRollback}
		}
		if strings.ToLower(t.flag) != flagReason {
			return Command{}, &Error{Problem: "unknown flag " + t.show() + ": rollback takes only --reason", Usage: UsageRollback}
		}
		if c.Reason != "" {
			return Command{}, &Error{Problem: "flag --reason is given twice", Usage: UsageRollback}
		}
		reason, next, ok := reasonValue(text, rest, i)
		if !ok {
			return Command{}, &Error{Problem: `flag --reason needs text, e.g. --reason "new key breaks the mobile app"`, Usage: UsageRollback}
		}
		i = next
		c.Reason = reason
	}
	return c, nil
}

// Flag names.
const (
	flagEnv       = "env"
	flagReason    = "reason"
	flagEmergency = "emergency"
)

// parseRotate parses `[target] flags...` in any order. withTarget is false
// for /rotate-jwt, whose target is implied.
func parseRotate(text string, toks []token, usage string, withTarget bool) (Command, error) {
	c := Command{Verb: VerbRotate}
	seen := map[string]bool{}
	haveTarget := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.flag == "" {
			if !withTarget {
				return Command{}, &Error{Problem: fmt.Sprintf("unexpected argument %s: /rotate-jwt takes flags only (put a reason after --reason)", t.show()), Usage: usage}
			}
			if haveTarget {
				return Command{}, &Error{Problem: fmt.Sprintf("unexpected argument %s: give one target, then flags (--env NAME, --reason \"...\")", t.show()), Usage: usage}
			}
			if err := targetError(t); err != nil {
				return Command{}, err
			}
			c.Target, haveTarget = t.text, true
			continue
		}
		name := strings.ToLower(t.flag)
		switch name {
		case flagEnv, flagReason, flagEmergency:
		default:
			return Command{}, &Error{Problem: "unknown flag " + t.show(), Usage: usage}
		}
		if seen[name] {
			return Command{}, &Error{Problem: fmt.Sprintf("flag --%s is given twice", name), Usage: usage}
		}
		seen[name] = true
		switch name {
		case flagEmergency:
			if t.inline {
				return Command{}, &Error{Problem: "flag --emergency takes no value", Usage: usage}
			}
			c.Emergency = true
		case flagEnv:
			v, next, ok := flagValue(toks, i)
			if !ok {
				return Command{}, &Error{Problem: "flag --env needs a value, e.g. --env staging", Usage: usage}
			}
			i = next
			if err := ValidateEnv(v.text); err != nil {
				e := err.(*Error)
				e.Usage = usage
				return Command{}, e
			}
			c.Env = v.text
		case flagReason:
			reason, next, ok := reasonValue(text, toks, i)
			if !ok {
				return Command{}, &Error{Problem: `flag --reason needs text, e.g. --reason "key leaked in CI logs"`, Usage: usage}
			}
			i = next
			c.Reason = reason
		}
	}
	if withTarget && !haveTarget {
		return Command{}, &Error{Problem: "missing target: say what to rotate first", Usage: usage}
	}
	return c, nil
}

// targetError explains why t cannot be a target, or returns nil.
func targetError(t token) error {
	if !t.quoted && len(t.text) > 1 && t.text[0] == '-' {
		return &Error{Problem: "unknown flag " + echo(t.text) + " (flags start with --)", Usage: UsageRotate}
	}
	switch t.text {
	case string(VerbHelp):
		return &Error{Problem: "help takes no arguments or flags", Usage: UsageHelp}
	case string(VerbList):
		return &Error{Problem: "list takes no arguments or flags", Usage: UsageList}
	case string(VerbStatus):
		return &Error{Problem: "status comes first and takes only a request ID", Usage: UsageStatus}
	case string(VerbCancel):
		return &Error{Problem: "cancel comes first and takes only a request ID", Usage: UsageCancel}
	case string(VerbRollback):
		return &Error{Problem: "rollback comes first and takes a request ID", Usage: UsageRollback}
	}
	return ValidateTarget(t.text)
}

// flagValue returns the value of the flag at toks[i]: inline (--env=x) or
// the next token, and the index of the last token used.
func flagValue(toks []token, i int) (token, int, bool) {
	t := toks[i]
	if t.inline {
		return t, i, t.text != ""
	}
	if i+1 >= len(toks) || toks[i+1].flag != "" || toks[i+1].text == "" {
		return token{}, i, false
	}
	return toks[i+1], i + 1, true
}

// reasonValue returns the --reason text: one quoted token, or the run of
// unquoted-start tokens up to the next flag, taken verbatim from the input
// (so quotes inside it stay) with white space collapsed.
func reasonValue(text string, toks []token, i int) (string, int, bool) {
	t := toks[i]
	var first token
	var at int
	switch {
	case t.inline:
		first, at = t, i
	case i+1 < len(toks) && toks[i+1].flag == "":
		first, at = toks[i+1], i+1
	default:
		return "", i, false
	}
	if first.quoted {
		r := collapse(first.text)
		return r, at, r != ""
	}
	if first.text == "" {
		return "", i, false
	}
	last := at
	for last+1 < len(toks) && toks[last+1].flag == "" {
		last++
	}
	return collapse(text[first.start:toks[last].end]), last, true
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// Text is the canonical text of c after /rotate. Parse(c.Text()) returns c.
func (c Command) Text() string {
	switch c.Verb {
	case VerbHelp, VerbList:
		return string(c.Verb)
	case VerbStatus, VerbCancel:
		return string(c.Verb) + " " + c.ID
	case VerbRollback:
		if c.Reason != "" {
			return string(c.Verb) + " " + c.ID + " --reason " + quoteReason(c.Reason)
		}
		return string(c.Verb) + " " + c.ID
	}
	var b strings.Builder
	b.WriteString(c.Target)
	if c.Env != "" {
		b.WriteString(" --env " + c.Env)
	}
	if c.Emergency {
		b.WriteString(" --emergency")
	}
	if c.Reason != "" {
		b.WriteString(" --reason " + quoteReason(c.Reason))
	}
	return b.String()
}

// quoteReason quotes r, preferring a quote family absent from r, then one
// that cannot close early (none of its members ends a word inside r). A
// reason that rules out both families can only have come from an unquoted
// run, and is written back as one (it comes last, so it runs to the end).
func quoteReason(r string) string {
	switch {
	case !strings.ContainsFunc(r, isDoubleQuote):
		return `"` + r + `"`
	case !strings.ContainsFunc(r, isSingleQuote):
		return `'` + r + `'`
	case !closesInside(r, isDoubleQuote):
		return `"` + r + `"`
	case !closesInside(r, isSingleQuote):
		return `'` + r + `'`
	default:
		return r
	}
}

// closesInside reports whether a member of family is followed by white space in r.
func closesInside(r string, family func(rune) bool) bool {
	for i, c := range r {
		if family(c) && i+utf8.RuneLen(c) < len(r) && endsWord(r, i+utf8.RuneLen(c)) {
			return true
		}
	}
	return false
}

// token is one lexed word. A flag token has flag set (its name, without
// dashes); with inline (--name=value) its value is in text.
type token struct {
	text   string
	quoted bool
	flag   string
	inline bool
	// start and end are the byte span of the word, or of the inline value.
	start, end int
}

// show renders t for an error message.
func (t token) show() string {
	if t.flag != "" {
		return "--" + shorten(t.flag)
	}
	return echo(t.text)
}

// Quote families. Slack (and phones) turn straight quotes into smart ones,
// often inconsistently, so any member of a family closes any other.
func isDoubleQuote(r rune) bool { return r == '"' || r == '“' || r == '”' }
func isSingleQuote(r rune) bool { return r == '\'' || r == '‘' || r == '’' }

// lex splits text into tokens.
func lex(text, usage string) ([]token, error) {
	if !utf8.ValidString(text) {
		return nil, &Error{Problem: "the command is not valid UTF-8 text", Usage: usage}
	}
	if n := utf8.RuneCountInString(text); n > MaxInputLength {
		return nil, &Error{Problem: fmt.Sprintf("the command is too long (%d characters, at most %d)", n, MaxInputLength), Usage: usage}
	}
	for _, r := range text {
		if unicode.IsControl(r) && !unicode.IsSpace(r) {
			return nil, &Error{Problem: fmt.Sprintf("the command contains a control character (%U)", r), Usage: usage}
		}
	}
	var toks []token
	i := 0
	for {
		for i < len(text) {
			r, n := utf8.DecodeRuneInString(text[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		if i >= len(text) {
			return toks, nil
		}
		if n := flagPrefix(text[i:]); n > 0 {
			j := i + n
			for j < len(text) {
				r, w := utf8.DecodeRuneInString(text[j:])
				if r == '=' || unicode.IsSpace(r) {
					break
				}
				j += w
			}
			t := token{flag: text[i+n : j], start: i, end: j}
			if j < len(text) && text[j] == '=' {
				t.inline = true
				v, end, err := lexWord(text, j+1, usage)
				if err != nil {
					return nil, err
				}
				t.text, t.quoted, t.start, t.end = v.text, v.quoted, v.start, v.end
				j = end
			}
			toks = append(toks, t)
			i = j
			continue
		}
		t, end, err := lexWord(text, i, usage)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		i = end
	}
}

// lexWord reads a plain or quoted word at text[i:] and returns it and the
// index after it.
func lexWord(text string, i int, usage string) (token, int, error) {
	if i >= len(text) {
		return token{start: i, end: i}, i, nil
	}
	r, n := utf8.DecodeRuneInString(text[i:])
	family := isDoubleQuote
	if !isDoubleQuote(r) {
		family = isSingleQuote
	}
	if !family(r) {
		j := i
		for j < len(text) {
			r, w := utf8.DecodeRuneInString(text[j:])
			if unicode.IsSpace(r) {
				break
			}
			j += w
		}
		return token{text: text[i:j], start: i, end: j}, j, nil
	}
	// A quote closes only where it ends a word (white space or the end
	// follows), so an apostrophe inside a quoted reason ('it's gone') is text.
	open := r
	j := i + n
	for j < len(text) {
		r, w := utf8.DecodeRuneInString(text[j:])
		after := j + w
		if family(r) && endsWord(text, after) {
			return token{text: text[i+n : j], quoted: true, start: i, end: after}, after, nil
		}
		j = after
	}
	return token{}, 0, &Error{Problem: fmt.Sprintf("unterminated quote: the text starting with %c has no closing quote followed by a space or the end", open), Usage: usage}
}

// endsWord reports whether text[i:] is empty or starts with white space.
func endsWord(text string, i int) bool {
	if i >= len(text) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return unicode.IsSpace(r)
}

// flagPrefix returns the length of the dashes starting a flag at s ("--",
// or the em or en dash that Slack and phones make of "--"), or 0 when s does
// not start a flag. A flag name starts with an ASCII letter, so "--" alone or
// "-5" stays an ordinary word (in a reason, say).
func flagPrefix(s string) int {
	var n int
	switch {
	case strings.HasPrefix(s, "--"):
		n = len("--")
	case strings.HasPrefix(s, "—"):
		n = len("—")
	case strings.HasPrefix(s, "–"):
		n = len("–")
	default:
		return 0
	}
	if len(s) > n && (isLower(s[n]) || (s[n] >= 'A' && s[n] <= 'Z')) {
		return n
	}
	return 0
}

// echo quotes user text for an error, shortened.
func echo(s string) string { return fmt.Sprintf("%q", shorten(s)) }

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxEcho {
		return s
	}
	r := []rune(s)
	return string(r[:maxEcho]) + "…"
}
