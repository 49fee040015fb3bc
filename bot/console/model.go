package console

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/aivo-platform/rotary/bot/slackfake"
)

// The JSON model the page receives: one person's view of the workspace,
// with every message already rendered to HTML. Ephemeral messages and
// modals are only in the view of the person they belong to, as on Slack.

// State is what GET /api/state returns.
type State struct {
	// Version grows with every change; the page skips a state it has seen.
	Version  uint64         `json:"version"`
	As       string         `json:"as"`
	Channels []ChannelState `json:"channels"`
	// Modal is the person's open modal, if any.
	Modal *ModalState `json:"modal"`
}

// ChannelState is a channel with its top-level messages in order.
type ChannelState struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Purpose  string         `json:"purpose,omitempty"`
	Messages []MessageState `json:"messages"`
}

// MessageState is one message as the page shows it.
type MessageState struct {
	// Key addresses the message in clicks; Anchor is its element's id.
	Key    string `json:"key"`
	Anchor string `json:"anchor"`
	Seq    int    `json:"seq"`
	// TS is the Web API timestamp ("" for messages the API did not make).
	TS     string `json:"ts,omitempty"`
	Author string `json:"author"`
	// Time is when the console first saw it, in the page's time zone.
	Time string `json:"time"`
	HTML string `json:"html"`
	// Ephemeral messages are seen only by this person.
	Ephemeral bool `json:"ephemeral,omitempty"`
	// Broadcast is an in-channel answer to a command.
	Broadcast bool `json:"broadcast,omitempty"`
	// Command is the slash command this message answers.
	Command string `json:"command,omitempty"`
	// Updates counts chat.update calls applied to it.
	Updates int            `json:"updates,omitempty"`
	Replies []MessageState `json:"replies,omitempty"`
}

// ModalState is an open modal.
type ModalState struct {
	ViewID string `json:"view_id"`
	// Revision changes whenever the view's content does (views.update, an
	// update response), so the page knows to redraw it.
	Revision string            `json:"revision"`
	Title    string            `json:"title"`
	Submit   string            `json:"submit,omitempty"`
	Close    string            `json:"close"`
	HTML     string            `json:"html"`
	Errors   map[string]string `json:"errors,omitempty"`
}

// timeFormat is how a message's time is shown.
const timeFormat = "15:04:05"

// state builds the view of the person as.
func (c *Console) state(as string) State {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncLocked()
	r := c.rendererLocked()
	st := State{Version: c.version, As: as, Channels: []ChannelState{}}
	for _, ch := range c.channels {
		st.Channels = append(st.Channels, c.channelStateLocked(r, ch, as))
	}
	st.Modal = c.modalLocked(r, as)
	return st
}

func (c *Console) channelStateLocked(r *renderer, ch Channel, as string) ChannelState {
	cs := ChannelState{ID: ch.ID, Name: ch.Name, Purpose: ch.Purpose, Messages: []MessageState{}}
	var roots []MessageState
	replies := map[string][]MessageState{} // parent ts -> replies
	rootTS := map[string]bool{}
	msgs := c.fake.Messages(ch.ID)
	for _, m := range msgs {
		if m.ThreadTS == "" {
			rootTS[m.TS] = true
		}
	}
	for _, m := range msgs {
		ms := c.apiMessageLocked(r, messageKey(ch.ID, m.TS), m)
		if m.ThreadTS != "" && rootTS[m.ThreadTS] {
			replies[m.ThreadTS] = append(replies[m.ThreadTS], ms)
			continue
		}
		roots = append(roots, ms)
	}
	for _, m := range c.fake.Ephemerals(ch.ID) {
		if m.User != as {
			continue
		}
		ms := c.apiMessageLocked(r, ephemeralKey(ch.ID, m.TS), m)
		ms.Ephemeral = true
		if m.ThreadTS != "" && rootTS[m.ThreadTS] {
			replies[m.ThreadTS] = append(replies[m.ThreadTS], ms)
			continue
		}
		roots = append(roots, ms)
	}
	for _, l := range c.local {
		if l.channel != ch.ID || (!l.broadcast && l.user != as) {
			continue
		}
		roots = append(roots, MessageState{
			Key: l.key, Anchor: anchorOf(l.key), Seq: l.seq, Author: l.author,
			Time: l.at.In(c.loc).Format(timeFormat), HTML: r.message(l.text, l.blocks, anchorOf(l.key)),
			Ephemeral: !l.broadcast, Broadcast: l.broadcast, Command: l.command,
		})
	}
	bySeq := func(ms []MessageState) {
		sort.SliceStable(ms, func(i, j int) bool { return ms[i].Seq < ms[j].Seq })
	}
	for i := range roots {
		if rs, ok := replies[roots[i].TS]; ok && roots[i].TS != "" && !roots[i].Ephemeral {
			bySeq(rs)
			roots[i].Replies = rs
		}
	}
	bySeq(roots)
	if roots != nil {
		cs.Messages = roots
	}
	return cs
}

func (c *Console) apiMessageLocked(r *renderer, key string, m slackfake.Message) MessageState {
	s := c.seen[key]
	return MessageState{
		Key: key, Anchor: anchorOf(key), Seq: s.seq, TS: m.TS, Author: slackfake.BotName,
		Time: s.at.In(c.loc).Format(timeFormat), HTML: r.message(m.Text, m.Blocks, anchorOf(key)),
		Updates: m.Updates,
	}
}

// modalLocked returns the person's newest open modal. c.mu is held.
func (c *Console) modalLocked(r *renderer, as string) *ModalState {
	var id string
	for vid, vs := range c.views {
		if vs.owner == as && vs.open && vid > id {
			id = vid
		}
	}
	if id == "" {
		return nil
	}
	raw, revision, ok := c.viewJSONLocked(id)
	if !ok {
		return nil
	}
	var v view
	if err := json.Unmarshal(raw, &v); err != nil {
		return &ModalState{ViewID: id, Revision: revision, Title: "Modal", Close: "Close",
			HTML: `<p class="bk-unknown">This modal could not be read: ` + esc(err.Error()) + `</p>`}
	}
	rm, err := r.modal(v, "modal-"+id, isSecretModal(v.CallbackID))
	if err != nil {
		return &ModalState{ViewID: id, Revision: revision, Title: "Modal", Close: "Close",
			HTML: `<p class="bk-unknown">` + esc(err.Error()) + `</p>`}
	}
	vs := c.views[id]
	return &ModalState{
		ViewID: id, Revision: revision, Title: rm.Title, Submit: rm.Submit, Close: rm.Close, HTML: rm.Body,
		Errors: vs.errors,
	}
}

// viewJSONLocked returns the current content of a view and a revision
// that changes with it. c.mu is held.
func (c *Console) viewJSONLocked(id string) (json.RawMessage, string, bool) {
	vs, ok := c.views[id]
	if !ok {
		return nil, "", false
	}
	v, ok := c.fake.View(id)
	if !ok {
		return nil, "", false
	}
	if vs.update != nil {
		return vs.update, v.Hash + "+" + strconv.Itoa(vs.updates), true
	}
	return v.View, v.Hash, true
}
