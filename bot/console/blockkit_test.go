package console

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks string
		want   []string // substrings, in order
		not    []string
	}{
		{
			name:   "header with emoji",
			blocks: `[{"type":"header","text":{"type":"plain_text","text":":key: Rotation <b>request</b>","emoji":true}}]`,
			want:   []string{`<h3 class="bk-header"><span class="emoji" role="img" aria-label="key">🔑</span> Rotation &lt;b&gt;request&lt;/b&gt;</h3>`},
		},
		{
			name:   "header without emoji keeps the shortcode",
			blocks: `[{"type":"header","text":{"type":"plain_text","text":":key: Key"}}]`,
			want:   []string{`<h3 class="bk-header">:key: Key</h3>`},
		},
		{
			name:   "section text",
			blocks: `[{"type":"section","text":{"type":"mrkdwn","text":"*Reason*\nquarterly"}}]`,
			want:   []string{`<div class="bk-section"><div class="bk-text"><strong>Reason</strong><br>quarterly</div></div>`},
		},
		{
			name:   "section plain text is not formatted",
			blocks: `[{"type":"section","text":{"type":"plain_text","text":"*not bold* <@U01ALICE>"}}]`,
			want:   []string{`*not bold* &lt;@U01ALICE&gt;`},
		},
		{
			name:   "section fields",
			blocks: `[{"type":"section","fields":[{"type":"mrkdwn","text":"*Target*\nopenai"},{"type":"mrkdwn","text":"*Requester*\n<@U01ALICE>"}]}]`,
			want: []string{`<div class="bk-fields">`, `<div class="bk-field"><strong>Target</strong><br>openai</div>`,
				`<div class="bk-field"><strong>Requester</strong><br><span class="mention">@Alice</span></div>`},
		},
		{
			name:   "section accessory button",
			blocks: `[{"type":"section","block_id":"acc","text":{"type":"mrkdwn","text":"x"},"accessory":{"type":"button","text":{"type":"plain_text","text":"Open"},"action_id":"a1","value":"v1"}}]`,
			want:   []string{`<div class="bk-accessory"><button type="button" class="bk-button" data-action-id="a1" data-block-id="acc" data-value="v1">Open</button></div>`},
		},
		{
			name:   "divider",
			blocks: `[{"type":"divider"}]`,
			want:   []string{`<hr class="bk-divider">`},
		},
		{
			name:   "context texts and image",
			blocks: `[{"type":"context","elements":[{"type":"mrkdwn","text":":information_source: *note*"},{"type":"plain_text","text":"plain <x>"},{"type":"image","image_url":"https://example.com/i.png","alt_text":"logo"}]}]`,
			want: []string{`<div class="bk-context">`, `aria-label="information source">ℹ️</span> <strong>note</strong></span>`,
				`<span class="bk-context-item">plain &lt;x&gt;</span>`, `[image: logo]`},
			not: []string{"<img", "https://example.com/i.png"},
		},
		{
			name: "actions with styles and a confirmation",
			blocks: `[{"type":"actions","block_id":"rotary_decision","elements":[
				{"type":"button","text":{"type":"plain_text","text":"Approve"},"action_id":"rotary_approve","value":"R-1","style":"primary",
				 "confirm":{"title":{"type":"plain_text","text":"Approve this?"},"text":{"type":"mrkdwn","text":"Starts *now*."},"confirm":{"type":"plain_text","text":"Approve"},"deny":{"type":"plain_text","text":"Not yet"}}},
				{"type":"button","text":{"type":"plain_text","text":"Deny"},"action_id":"rotary_deny","value":"R-1","style":"danger"}]}]`,
			want: []string{
				`<div class="bk-actions" role="group" aria-label="Actions">`,
				`<button type="button" class="bk-button bk-primary" data-action-id="rotary_approve" data-block-id="rotary_decision" data-value="R-1" data-confirm="s-0-0-confirm">Approve</button>`,
				`<template id="s-0-0-confirm"><p class="c-title">Approve this?</p><div class="c-text">Starts <strong>now</strong>.</div><span class="c-ok">Approve</span><span class="c-deny">Not yet</span><span class="c-style"></span></template>`,
				`<button type="button" class="bk-button bk-danger" data-action-id="rotary_deny" data-block-id="rotary_decision" data-value="R-1">Deny</button>`,
			},
		},
		{
			name:   "attribute values are escaped",
			blocks: `[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"x"},"action_id":"a\"><script>","value":"v'\"&"}]}]`,
			want:   []string{`data-action-id="a&#34;&gt;&lt;script&gt;" data-block-id="b0" data-value="v&#39;&#34;&amp;"`},
			not:    []string{"<script>"},
		},
		{
			name:   "link button",
			blocks: `[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"Dashboard"},"url":"https://dashboard.stripe.com/apikeys"}]}]`,
			want:   []string{`<a class="bk-button" href="https://dashboard.stripe.com/apikeys" target="_blank" rel="noopener noreferrer">Dashboard</a>`},
		},
		{
			name:   "link button to another scheme is not a link",
			blocks: `[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"x"},"url":"javascript:alert(1)"}]}]`,
			want:   []string{`<span class="bk-button bk-disabled">x</span>`},
			not:    []string{"javascript:"},
		},
		{
			name:   "unsupported element is shown",
			blocks: `[{"type":"actions","elements":[{"type":"static_select","action_id":"s"}]}]`,
			want:   []string{`Unsupported element: <code>static_select</code>`},
		},
		{
			name:   "image block",
			blocks: `[{"type":"image","image_url":"https://example.com/a.png","alt_text":"chart","title":{"type":"plain_text","text":"Chart"}}]`,
			want:   []string{`<p class="bk-image"><span class="bk-image-alt">[image: chart]</span> Chart</p>`},
			not:    []string{"<img"},
		},
		{
			name:   "unknown block is shown",
			blocks: `[{"type":"rich_text","elements":[]}]`,
			want:   []string{`<p class="bk-unknown">Unsupported block: <code>rich_text</code></p>`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []block
			if err := json.Unmarshal([]byte(tc.blocks), &bs); err != nil {
				t.Fatal(err)
			}
			got := testRenderer().blocks(bs, "s", false)
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks (or misorders) %s\noutput: %s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("output contains %q: %s", n, got)
				}
			}
		})
	}
}

func TestInputs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		block  string
		secret bool
		want   []string
		not    []string
	}{
		{
			name:  "multiline with placeholder and limit",
			block: `{"type":"input","block_id":"rb","label":{"type":"plain_text","text":"Reason"},"element":{"type":"plain_text_input","action_id":"ra","multiline":true,"max_length":1000,"placeholder":{"type":"plain_text","text":"Why?"}}}`,
			want: []string{`<label class="bk-label" for="m-0">Reason</label>`,
				`<textarea rows="4" id="m-0" name="m-0" class="bk-field-input" data-block-id="rb" data-action-id="ra" aria-describedby="m-0-err" placeholder="Why?" maxlength="1000" required aria-required="true"></textarea>`,
				`<p class="bk-error" id="m-0-err" data-error-for="rb"></p>`},
		},
		{
			name:  "single line, optional, with hint and initial value",
			block: `{"type":"input","label":{"type":"plain_text","text":"Note"},"optional":true,"hint":{"type":"plain_text","text":"Shown to all"},"element":{"type":"plain_text_input","action_id":"na","initial_value":"a\"b","min_length":2}}`,
			want: []string{`Note <span class="bk-optional">(optional)</span></label>`,
				`<input type="text" autocomplete="off" id="m-0" name="m-0" class="bk-field-input" data-block-id="b0" data-action-id="na" aria-describedby="m-0-hint m-0-err" minlength="2" value="a&#34;b">`,
				`<p class="bk-hint" id="m-0-hint">Shown to all</p>`},
			not: []string{"required"},
		},
		{
			name:   "a secret is masked and never prefilled",
			block:  `{"type":"input","block_id":"sb","label":{"type":"plain_text","text":"Key"},"element":{"type":"plain_text_input","action_id":"sa","multiline":true,"initial_value":"nope"}}`,
			secret: true,
			want:   []string{`<input type="password" autocomplete="new-password" spellcheck="false" id="m-0"`},
			not:    []string{"textarea", "nope"},
		},
		{
			name:  "unsupported input element",
			block: `{"type":"input","label":{"type":"plain_text","text":"Pick"},"element":{"type":"datepicker","action_id":"d"}}`,
			want:  []string{`Unsupported input element: <code>datepicker</code>`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b block
			if err := json.Unmarshal([]byte(tc.block), &b); err != nil {
				t.Fatal(err)
			}
			got := testRenderer().blocks([]block{b}, "m", tc.secret)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %s\noutput: %s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("output contains %q: %s", n, got)
				}
			}
		})
	}
}

func TestMessageFallsBackToText(t *testing.T) {
	r := testRenderer()
	for _, blocks := range []string{"", "null", "[]"} {
		if got := r.message("*hi*", json.RawMessage(blocks), "x"); got != "<strong>hi</strong>" {
			t.Errorf("blocks %q: %s", blocks, got)
		}
	}
	if got := r.message("*hi*", json.RawMessage(`{"not":"a list"}`), "x"); !strings.Contains(got, "could not be read") || !strings.Contains(got, "<strong>hi</strong>") {
		t.Errorf("unreadable blocks: %s", got)
	}
}

func TestViewInputsAndActions(t *testing.T) {
	v := view{Blocks: []block{
		{Type: typeSection},
		{Type: typeInput, BlockID: "rb", Element: &element{Type: typeTextInput, ActionID: "ra"}},
		{Type: typeInput, Optional: true, Element: &element{Type: typeTextInput, ActionID: "oa"}},
		{Type: typeInput, Element: &element{Type: "datepicker", ActionID: "d"}},
	}}
	want := []inputField{{BlockID: "rb", ActionID: "ra"}, {BlockID: "b2", ActionID: "oa", Optional: true}}
	if got := v.inputs(); !slices.Equal(got, want) {
		t.Errorf("inputs = %+v, want %+v", got, want)
	}
	blocks := json.RawMessage(`[{"type":"section","text":{"type":"mrkdwn","text":"x"},"accessory":{"type":"button","action_id":"acc","value":"1"}},
		{"type":"actions","block_id":"d","elements":[{"type":"button","action_id":"go","value":"R-1"},{"type":"button","action_id":"web","url":"https://x"}]}]`)
	for _, tc := range []struct {
		action, block, value string
		ok                   bool
	}{
		{"go", "d", "R-1", true},
		{"acc", "b0", "1", true},
		{"go", "d", "R-2", false},  // another request
		{"go", "b1", "R-1", false}, // another block
		{"web", "d", "", false},    // a link opens a page, it is not posted
		{"nope", "d", "R-1", false},
	} {
		if _, ok := hasAction(blocks, tc.action, tc.block, tc.value); ok != tc.ok {
			t.Errorf("hasAction(%s, %s, %s) = %v", tc.action, tc.block, tc.value, ok)
		}
	}
}

func TestModal(t *testing.T) {
	var v view
	if err := json.Unmarshal([]byte(`{"type":"modal","title":{"type":"plain_text","text":"Deny <x>"},"submit":{"type":"plain_text","text":"Deny"},"blocks":[]}`), &v); err != nil {
		t.Fatal(err)
	}
	m, err := testRenderer().modal(v, "m", false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Title != "Deny &lt;x&gt;" || m.Submit != "Deny" || m.Close != "Cancel" {
		t.Errorf("modal = %+v", m)
	}
	if _, err := testRenderer().modal(view{Type: "home"}, "m", false); err == nil {
		t.Error("a home tab view was rendered as a modal")
	}
}

// golden is a bot/blocks golden file: a message, or a view.
type golden struct {
	Type   string          `json:"type"`
	Text   string          `json:"text"`
	Blocks json.RawMessage `json:"blocks"`
}

// TestRendersEveryBotMessage renders every message and modal that
// bot/blocks has a golden file for, so a block or element type the bot
// starts to use fails here until the page shows it.
func TestRendersEveryBotMessage(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "blocks", "testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files of bot/blocks found (%v)", err)
	}
	known := []string{typeHeader, typeSection, typeContext, typeActions, typeDivider, typeInput, typeImage,
		typeButton, typeMrkdwn, typePlainText, typeTextInput}
	seen := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if !json.Valid(raw) {
			g.Text = string(raw) // a plain mrkdwn text (help)
		} else if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var bs []block
		if len(g.Blocks) > 0 {
			if err := json.Unmarshal(g.Blocks, &bs); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		for _, b := range bs {
			seen[b.Type] = true
			for _, e := range append(append([]element{}, b.Elements...), derefElements(b.Accessory, b.Element)...) {
				seen[e.Type] = true
			}
		}
		var html string
		if g.Type == "modal" {
			var v view
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			m, err := testRenderer().modal(v, "m", isSecretModal(v.CallbackID))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			html = m.Title + m.Submit + m.Close + m.Body
		} else {
			html = testRenderer().message(g.Text, g.Blocks, "m")
		}
		name := filepath.Base(f)
		if html == "" {
			t.Errorf("%s rendered to nothing", name)
		}
		for _, bad := range []string{"bk-unknown", "&lt;@", "&lt;!date", "&lt;#C", "&amp;lt;"} {
			if strings.Contains(html, bad) {
				t.Errorf("%s: the output holds %q (an unrendered token or unknown block):\n%s", name, bad, html)
			}
		}
		if sc := regexp.MustCompile(`:[a-z_]+:`).FindString(html); sc != "" {
			t.Errorf("%s: emoji %s is not in the console's emoji table", name, sc)
		}
		if strings.Contains(string(raw), `"action_id"`) && !strings.Contains(html, "data-action-id") && !strings.Contains(html, "bk-field-input") {
			t.Errorf("%s has interactive elements that were not rendered:\n%s", name, html)
		}
	}
	for typ := range seen {
		if !slices.Contains(known, typ) {
			t.Errorf("bot/blocks uses %q, which the renderer does not know", typ)
		}
	}
	for _, must := range []string{typeHeader, typeSection, typeContext, typeActions, typeInput, typeButton} {
		if !seen[must] {
			t.Errorf("no golden file of bot/blocks uses %q any more: is this test still reading them?", must)
		}
	}
}

func derefElements(es ...*element) []element {
	var out []element
	for _, e := range es {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out
}
