package console

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Block Kit renderer. It is Go-side so that every block and element
// type has a plain unit test, and so that the page receives finished,
// escaped HTML: the browser never interprets a message itself. It covers
// what rotary sends (header, section with text and fields, context,
// actions with buttons and confirmation dialogs, divider, and the modals'
// input blocks with plain-text inputs) plus image and unknown blocks, which
// are shown as a visible placeholder rather than silently dropped.

// textObject is a Block Kit text composition object.
type textObject struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Emoji    bool   `json:"emoji,omitempty"`
	Verbatim bool   `json:"verbatim,omitempty"`
}

// confirmObject is a button's confirmation dialog.
type confirmObject struct {
	Title   *textObject `json:"title"`
	Text    *textObject `json:"text"`
	Confirm *textObject `json:"confirm"`
	Deny    *textObject `json:"deny"`
	Style   string      `json:"style"`
}

// element is a block element, or a context block's text or image. Text is
// a text object for buttons and a string for context texts.
type element struct {
	Type         string          `json:"type"`
	Text         json.RawMessage `json:"text"`
	ActionID     string          `json:"action_id"`
	Value        string          `json:"value"`
	URL          string          `json:"url"`
	Style        string          `json:"style"`
	Confirm      *confirmObject  `json:"confirm"`
	Placeholder  *textObject     `json:"placeholder"`
	InitialValue string          `json:"initial_value"`
	Multiline    bool            `json:"multiline"`
	MinLength    int             `json:"min_length"`
	MaxLength    int             `json:"max_length"`
	ImageURL     string          `json:"image_url"`
	AltText      string          `json:"alt_text"`
}

// block is one layout block.
type block struct {
	Type      string       `json:"type"`
	BlockID   string       `json:"block_id"`
	Text      *textObject  `json:"text"`
	Fields    []textObject `json:"fields"`
	Accessory *element     `json:"accessory"`
	Elements  []element    `json:"elements"`
	Label     *textObject  `json:"label"`
	Element   *element     `json:"element"`
	Hint      *textObject  `json:"hint"`
	Optional  bool         `json:"optional"`
	ImageURL  string       `json:"image_url"`
	AltText   string       `json:"alt_text"`
	Title     *textObject  `json:"title"`
}

// view is a modal as views.open sends it.
type view struct {
	Type            string      `json:"type"`
	Title           *textObject `json:"title"`
	Submit          *textObject `json:"submit"`
	Close           *textObject `json:"close"`
	Blocks          []block     `json:"blocks"`
	CallbackID      string      `json:"callback_id"`
	PrivateMetadata string      `json:"private_metadata"`
	NotifyOnClose   bool        `json:"notify_on_close"`
}

// Element and block types the renderer knows.
const (
	typeHeader    = "header"
	typeSection   = "section"
	typeContext   = "context"
	typeActions   = "actions"
	typeDivider   = "divider"
	typeInput     = "input"
	typeImage     = "image"
	typeButton    = "button"
	typeMrkdwn    = "mrkdwn"
	typePlainText = "plain_text"
	typeTextInput = "plain_text_input"
)

// multilineRows is the height of a multi-line input.
const multilineRows = 4

// renderer turns Block Kit and mrkdwn into HTML. Its lookups may return ""
// for an unknown ID; the ID is shown then.
type renderer struct {
	users    func(id string) string
	channels func(id string) string
	// anchor maps a permalink of the fake workspace to the id of the
	// message element on the page, "" when it is not one.
	anchor func(url string) string
	now    func() time.Time
	loc    *time.Location
}

func (r *renderer) userName(id string) string {
	if r.users == nil {
		return ""
	}
	return r.users(id)
}

func (r *renderer) channelName(id string) string {
	if r.channels == nil {
		return ""
	}
	return r.channels(id)
}

func (r *renderer) anchorOf(url string) string {
	if r.anchor == nil {
		return ""
	}
	return r.anchor(url)
}

func (r *renderer) clock() time.Time {
	if r.now == nil {
		return time.Now()
	}
	return r.now()
}

func (r *renderer) location() *time.Location {
	if r.loc == nil {
		return time.UTC
	}
	return r.loc
}

// message renders a message: its blocks when it has any (Slack shows the
// text only as the notification fallback then), else its text as mrkdwn.
func (r *renderer) message(text string, blocks json.RawMessage, scope string) string {
	if len(blocks) == 0 {
		return r.mrkdwn(text)
	}
	var bs []block
	if err := json.Unmarshal(blocks, &bs); err != nil {
		return `<p class="bk-unknown">These blocks could not be read (` + esc(err.Error()) + `); the message text follows.</p>` + r.mrkdwn(text)
	}
	if len(bs) == 0 { // "blocks": null or []
		return r.mrkdwn(text)
	}
	return r.blocks(bs, scope, false)
}

// blockID is the block_id a block is addressed by: its own, or the one
// Slack would make up for it, stable for the block's position.
func blockID(b block, i int) string {
	if b.BlockID != "" {
		return b.BlockID
	}
	return "b" + strconv.Itoa(i)
}

// blocks renders a list of blocks. scope makes element ids unique on the
// page; secret renders text inputs as password fields.
func (r *renderer) blocks(bs []block, scope string, secret bool) string {
	var b strings.Builder
	for i, bl := range bs {
		id := scope + "-" + strconv.Itoa(i)
		bid := blockID(bl, i)
		switch bl.Type {
		case typeHeader:
			b.WriteString(`<h3 class="bk-header">` + r.text(bl.Text) + `</h3>`)
		case typeSection:
			b.WriteString(`<div class="bk-section">`)
			if bl.Text != nil {
				b.WriteString(`<div class="bk-text">` + r.text(bl.Text) + `</div>`)
			}
			if len(bl.Fields) > 0 {
				b.WriteString(`<div class="bk-fields">`)
				for fi := range bl.Fields {
					b.WriteString(`<div class="bk-field">` + r.text(&bl.Fields[fi]) + `</div>`)
				}
				b.WriteString(`</div>`)
			}
			if bl.Accessory != nil {
				b.WriteString(`<div class="bk-accessory">` + r.element(*bl.Accessory, bid, id+"-acc") + `</div>`)
			}
			b.WriteString(`</div>`)
		case typeDivider:
			b.WriteString(`<hr class="bk-divider">`)
		case typeContext:
			b.WriteString(`<div class="bk-context">`)
			for _, e := range bl.Elements {
				b.WriteString(`<span class="bk-context-item">` + r.contextItem(e) + `</span>`)
			}
			b.WriteString(`</div>`)
		case typeActions:
			b.WriteString(`<div class="bk-actions" role="group" aria-label="Actions">`)
			for ei, e := range bl.Elements {
				b.WriteString(r.element(e, bid, id+"-"+strconv.Itoa(ei)))
			}
			b.WriteString(`</div>`)
		case typeInput:
			b.WriteString(r.input(bl, bid, id, secret))
		case typeImage:
			b.WriteString(`<p class="bk-image">` + imagePlaceholder(bl.AltText))
			if bl.Title != nil {
				b.WriteString(` ` + r.text(bl.Title))
			}
			b.WriteString(`</p>`)
		default:
			b.WriteString(`<p class="bk-unknown">Unsupported block: <code>` + esc(bl.Type) + `</code></p>`)
		}
	}
	return b.String()
}

// imagePlaceholder stands for an image: the page loads nothing from
// elsewhere (its Content-Security-Policy forbids it), so it shows the alt text.
func imagePlaceholder(alt string) string {
	return `<span class="bk-image-alt">[image: ` + esc(alt) + `]</span>`
}

// text renders a text object according to its type.
func (r *renderer) text(t *textObject) string {
	if t == nil {
		return ""
	}
	if t.Type == typeMrkdwn {
		return r.mrkdwn(t.Text)
	}
	return r.plain(t)
}

// plain renders a plain_text object: shown as written, emoji shortcodes
// turned into emoji when the object allows it.
func (r *renderer) plain(t *textObject) string {
	if t == nil {
		return ""
	}
	s := esc(t.Text)
	if t.Emoji {
		s = emojify(s)
	}
	return s
}

// contextItem renders a context block's element (text or image).
func (r *renderer) contextItem(e element) string {
	switch e.Type {
	case typeMrkdwn, typePlainText:
		var s string
		if err := json.Unmarshal(e.Text, &s); err != nil {
			return `<span class="bk-unknown">unreadable text</span>`
		}
		return r.text(&textObject{Type: e.Type, Text: s, Emoji: true})
	case typeImage:
		return imagePlaceholder(e.AltText)
	}
	return `<span class="bk-unknown">Unsupported element: <code>` + esc(e.Type) + `</code></span>`
}

// elementText reads a button's label.
func elementText(e element) *textObject {
	var t textObject
	if json.Unmarshal(e.Text, &t) != nil {
		return nil
	}
	return &t
}

// element renders an interactive element of an actions block or a
// section's accessory.
func (r *renderer) element(e element, blockID, id string) string {
	if e.Type != typeButton {
		return `<span class="bk-unknown">Unsupported element: <code>` + esc(e.Type) + `</code></span>`
	}
	label := r.plain(elementText(e))
	class := "bk-button"
	switch e.Style {
	case "primary":
		class += " bk-primary"
	case "danger":
		class += " bk-danger"
	}
	if e.URL != "" {
		if !strings.HasPrefix(e.URL, "https://") && !strings.HasPrefix(e.URL, "http://") {
			return `<span class="` + class + ` bk-disabled">` + label + `</span>`
		}
		return `<a class="` + class + `" href="` + esc(e.URL) + `" target="_blank" rel="noopener noreferrer">` + label + `</a>`
	}
	var b strings.Builder
	b.WriteString(`<button type="button" class="` + class + `" data-action-id="` + esc(e.ActionID) +
		`" data-block-id="` + esc(blockID) + `" data-value="` + esc(e.Value) + `"`)
	if e.Confirm != nil {
		b.WriteString(` data-confirm="` + esc(id) + `-confirm"`)
	}
	b.WriteString(`>` + label + `</button>`)
	if c := e.Confirm; c != nil {
		// The page opens this as a dialog before it sends the click, as
		// Slack does.
		b.WriteString(`<template id="` + esc(id) + `-confirm">`)
		b.WriteString(`<p class="c-title">` + r.text(c.Title) + `</p>`)
		b.WriteString(`<div class="c-text">` + r.text(c.Text) + `</div>`)
		b.WriteString(`<span class="c-ok">` + orDefault(r.text(c.Confirm), "Yes") + `</span>`)
		b.WriteString(`<span class="c-deny">` + orDefault(r.text(c.Deny), "Cancel") + `</span>`)
		b.WriteString(`<span class="c-style">` + esc(c.Style) + `</span>`)
		b.WriteString(`</template>`)
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// input renders an input block of a modal: a labelled text field with its
// hint and a place for the error Slack shows under it.
func (r *renderer) input(bl block, blockID, id string, secret bool) string {
	var b strings.Builder
	b.WriteString(`<div class="bk-input" data-block-id="` + esc(blockID) + `">`)
	b.WriteString(`<label class="bk-label" for="` + esc(id) + `">` + r.text(bl.Label))
	if bl.Optional {
		b.WriteString(` <span class="bk-optional">(optional)</span>`)
	}
	b.WriteString(`</label>`)
	e := bl.Element
	if e == nil || e.Type != typeTextInput {
		typ := ""
		if e != nil {
			typ = e.Type
		}
		b.WriteString(`<p class="bk-unknown">Unsupported input element: <code>` + esc(typ) + `</code></p></div>`)
		return b.String()
	}
	describedBy := id + "-err"
	if bl.Hint != nil {
		describedBy = id + "-hint " + describedBy
	}
	attrs := ` id="` + esc(id) + `" name="` + esc(id) + `" class="bk-field-input" data-block-id="` + esc(blockID) +
		`" data-action-id="` + esc(e.ActionID) + `" aria-describedby="` + esc(describedBy) + `"`
	if e.Placeholder != nil {
		attrs += ` placeholder="` + esc(e.Placeholder.Text) + `"`
	}
	if e.MaxLength > 0 {
		attrs += ` maxlength="` + strconv.Itoa(e.MaxLength) + `"`
	}
	if e.MinLength > 0 {
		attrs += ` minlength="` + strconv.Itoa(e.MinLength) + `"`
	}
	if !bl.Optional {
		attrs += ` required aria-required="true"`
	}
	switch {
	case secret:
		// A pasted secret is never echoed on screen, and the browser must
		// not offer to remember it.
		b.WriteString(`<input type="password" autocomplete="new-password" spellcheck="false"` + attrs + `>`)
	case e.Multiline:
		b.WriteString(`<textarea rows="` + strconv.Itoa(multilineRows) + `"` + attrs + `>` + esc(e.InitialValue) + `</textarea>`)
	default:
		b.WriteString(`<input type="text" autocomplete="off"` + attrs + ` value="` + esc(e.InitialValue) + `">`)
	}
	if bl.Hint != nil {
		b.WriteString(`<p class="bk-hint" id="` + esc(id) + `-hint">` + r.text(bl.Hint) + `</p>`)
	}
	b.WriteString(`<p class="bk-error" id="` + esc(id) + `-err" data-error-for="` + esc(blockID) + `"></p>`)
	b.WriteString(`</div>`)
	return b.String()
}

// inputField is one text input of a view, as its submission reports it.
type inputField struct {
	BlockID, ActionID string
	Optional          bool
}

// inputs lists the text inputs of a view.
func (v view) inputs() []inputField {
	var out []inputField
	for i, bl := range v.Blocks {
		if bl.Type == typeInput && bl.Element != nil && bl.Element.Type == typeTextInput {
			out = append(out, inputField{BlockID: blockID(bl, i), ActionID: bl.Element.ActionID, Optional: bl.Optional})
		}
	}
	return out
}

// renderedModal is a modal ready for the page.
type renderedModal struct {
	Title  string
	Submit string
	Close  string
	Body   string
}

// modal renders a view. secret renders its text inputs as password fields.
func (r *renderer) modal(v view, scope string, secret bool) (renderedModal, error) {
	if v.Type != "modal" {
		return renderedModal{}, fmt.Errorf("view type %q is not a modal", v.Type)
	}
	return renderedModal{
		Title:  r.text(v.Title),
		Submit: r.text(v.Submit),
		Close:  orDefault(r.text(v.Close), "Cancel"),
		Body:   r.blocks(v.Blocks, scope, secret),
	}, nil
}

// hasAction reports whether the blocks hold a button with this action,
// block and value: the page can only click what a message shows.
func hasAction(blocks json.RawMessage, actionID, blockIDWant, value string) (*element, bool) {
	var bs []block
	if json.Unmarshal(blocks, &bs) != nil {
		return nil, false
	}
	for i, bl := range bs {
		if blockID(bl, i) != blockIDWant {
			continue
		}
		candidates := bl.Elements
		if bl.Accessory != nil {
			candidates = append(candidates, *bl.Accessory)
		}
		for _, e := range candidates {
			if e.Type == typeButton && e.ActionID == actionID && e.Value == value && e.URL == "" {
				return &e, true
			}
		}
	}
	return nil, false
}
