package blocks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// tokenPattern is every <…> token this package may write in mrkdwn: a user
// mention or a date token. Anything else between < and > would be a link,
// a channel or broadcast mention, or a date with an attacker's fallback.
const tokenPattern = `<(?:@[A-Z][A-Z0-9]+|!date\^[0-9]+\^\{date_short_pretty\} \{time\}\|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)>`

// alertTokenPattern is what an alert adds to tokenPattern.
const alertTokenPattern = `^<!channel>|<!subteam\^S[A-Z0-9]+>|<https://[^<>|]+\|Open the thread>`

// checkMrkdwn fails when s is longer than max runes or holds anything Slack
// would parse that this package did not mean to write: a <…> token other
// than a mention or a date, a stray < or >, or an & that does not start an escape.
func checkMrkdwn(t *testing.T, where, s string, max int) {
	t.Helper()
	if n := utf8.RuneCountInString(s); n > max {
		t.Errorf("%s: %d characters, limit %d", where, n, max)
	}
	rest := regexp.MustCompile(tokenPattern).ReplaceAllString(s, "")
	// An alert (and only an alert: it is the one text that starts with it)
	// may also notify the channel, mention user groups and link its thread.
	if strings.HasPrefix(s, "<!channel> ") {
		rest = regexp.MustCompile(alertTokenPattern).ReplaceAllString(rest, "")
	}
	if i := strings.IndexAny(rest, "<>"); i >= 0 {
		t.Errorf("%s: unescaped %q in mrkdwn %q", where, rest[i], s)
	}
	rest = regexp.MustCompile(`&(?:amp|lt|gt);`).ReplaceAllString(rest, "")
	if strings.Contains(rest, "&") {
		t.Errorf("%s: bare & in mrkdwn %q", where, s)
	}
	checkClean(t, where, s, true)
}

// checkClean fails on control characters (other than newline when allowed)
// and bidirectional overrides.
func checkClean(t *testing.T, where, s string, newlines bool) {
	t.Helper()
	for _, r := range s {
		if (r == '\n' && newlines) || (!unicode.IsControl(r) && !unicode.Is(unicode.Bidi_Control, r)) {
			continue
		}
		t.Errorf("%s: control character %U in %q", where, r, s)
	}
}

// checkSlackRules holds a message to Slack's size limits and checks every
// text object it carries.
func checkSlackRules(t *testing.T, name, text string, blocks []slack.Block) {
	t.Helper()
	if text == "" {
		t.Errorf("%s: empty fallback text", name)
	}
	checkMrkdwn(t, name+": fallback", text, maxFallbackText)
	if len(blocks) == 0 || len(blocks) > maxBlocks {
		t.Errorf("%s: %d blocks, want 1..%d", name, len(blocks), maxBlocks)
	}
	walkJSON(t, name, blocks)
}

// checkModal holds a modal to Slack's limits.
func checkModal(t *testing.T, name string, m slack.ModalViewRequest) {
	t.Helper()
	if m.Type != slack.VTModal || m.CallbackID == "" || m.PrivateMetadata == "" {
		t.Errorf("%s: type %q, callback %q, metadata %q: all must be set", name, m.Type, m.CallbackID, m.PrivateMetadata)
	}
	for what, o := range map[string]*slack.TextBlockObject{"title": m.Title, "submit": m.Submit, "close": m.Close} {
		if o == nil || o.Type != slack.PlainTextType || o.Text == "" || utf8.RuneCountInString(o.Text) > maxModalTitle {
			t.Errorf("%s: %s %+v must be plain text of 1..%d characters", name, what, o, maxModalTitle)
		}
	}
	walkJSON(t, name, m.Blocks.BlockSet)
}

// walkJSON checks the JSON Slack would receive, so it sees exactly what Slack sees.
func walkJSON(t *testing.T, name string, blocks []slack.Block) {
	t.Helper()
	b, err := json.Marshal(blocks)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: unmarshal: %v", name, err)
	}
	walk(t, name, "", v)
}

// limits per the key a text object sits under, in the block that holds it.
func textLimit(parentType, key string) int {
	switch {
	case parentType == "header":
		return maxHeaderText
	case key == "fields":
		return maxFieldText
	case parentType == "button":
		return maxButtonText
	case key == "placeholder":
		return maxPlaceholder
	case key == "label":
		return maxInputLabel
	case key == "hint":
		return maxHintText
	default:
		return maxSectionText
	}
}

func walk(t *testing.T, name, path string, v any) {
	t.Helper()
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			walk(t, name, fmt.Sprintf("%s[%d]", path, i), e)
		}
	case map[string]any:
		typ, _ := x["type"].(string)
		if typ == "" {
			t.Errorf("%s %s: object without type: %v", name, path, x)
		}
		if fs, ok := x["fields"].([]any); ok && len(fs) > maxFields {
			t.Errorf("%s %s: %d fields, limit %d", name, path, len(fs), maxFields)
		}
		if typ == "context" {
			if es, _ := x["elements"].([]any); len(es) == 0 || len(es) > maxContextElements {
				t.Errorf("%s %s: %d context elements, want 1..%d", name, path, len(es), maxContextElements)
			}
		}
		if typ == "button" {
			if v, _ := x["value"].(string); v == "" || len(v) > 2000 {
				t.Errorf("%s %s: button value %q", name, path, v)
			}
		}
		for k, c := range x {
			if conf, ok := c.(map[string]any); ok && k == "confirm" {
				checkConfirm(t, fmt.Sprintf("%s %s.confirm", name, path), conf)
				continue
			}
			if obj, ok := c.(map[string]any); ok && isText(obj) {
				checkText(t, fmt.Sprintf("%s %s.%s", name, path, k), obj, textLimit(typ, k))
				continue
			}
			if arr, ok := c.([]any); ok && k == "fields" {
				for i, f := range arr {
					checkText(t, fmt.Sprintf("%s %s.fields[%d]", name, path, i), f.(map[string]any), maxFieldText)
				}
				continue
			}
			if arr, ok := c.([]any); ok && typ == "context" && k == "elements" {
				for i, e := range arr {
					checkText(t, fmt.Sprintf("%s %s.elements[%d]", name, path, i), e.(map[string]any), maxContextText)
				}
				continue
			}
			walk(t, name, path+"."+k, c)
		}
	}
}

func isText(obj map[string]any) bool {
	typ, _ := obj["type"].(string)
	return typ == slack.MarkdownType || typ == slack.PlainTextType
}

func checkText(t *testing.T, where string, obj map[string]any, max int) {
	t.Helper()
	s, _ := obj["text"].(string)
	if s == "" {
		t.Errorf("%s: empty text", where)
	}
	switch obj["type"] {
	case slack.MarkdownType:
		if obj["verbatim"] != true {
			t.Errorf("%s: mrkdwn without verbatim: Slack would link bare @here and URLs", where)
		}
		checkMrkdwn(t, where, s, max)
	case slack.PlainTextType:
		if n := utf8.RuneCountInString(s); n > max {
			t.Errorf("%s: %d characters, limit %d", where, n, max)
		}
		checkClean(t, where, s, false)
	default:
		t.Errorf("%s: not a text object: %v", where, obj)
	}
}

// checkConfirm holds a confirmation dialog to its own, smaller limits.
func checkConfirm(t *testing.T, where string, c map[string]any) {
	t.Helper()
	for key, max := range map[string]int{"title": maxConfirmTitle, "text": maxConfirmText, "confirm": maxConfirmButton, "deny": maxConfirmButton} {
		obj, ok := c[key].(map[string]any)
		if !ok {
			t.Errorf("%s: no %s", where, key)
			continue
		}
		checkText(t, where+"."+key, obj, max)
	}
}
