package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/bot/slackfake"
)

// The page's JSON API. Every write names the person acting ("as"); the
// console turns it into exactly what Slack would send for that person.

// maxAPIBody bounds a request from the page.
const maxAPIBody = 64 << 10

// requiredFieldError is Slack's own message for an empty required input
// (its client refuses the submission before the app hears of it).
const requiredFieldError = "Please complete this required field."

// apiError is an error answer to the page: its message is shown to the
// person as is.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &apiError{status: http.StatusConflict, msg: fmt.Sprintf(format, args...)}
}

// apiHandler adapts a JSON handler: it decodes the body strictly and
// writes the result or the error as JSON.
func apiHandler[In any](c *Console, fn func(r *http.Request, in In) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in In
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the request is not the JSON this endpoint takes: " + err.Error()})
			return
		}
		out, err := fn(r, in)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				writeJSON(w, ae.status, map[string]string{"error": ae.msg})
				return
			}
			c.log.WarnContext(r.Context(), "console: request failed", "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the page went away; nothing to do
}

func (c *Console) mustPerson(id string) (Person, error) {
	p, ok := c.person(id)
	if !ok {
		return Person{}, badRequest("unknown person %q: act as one of the people the page lists", id)
	}
	return p, nil
}

// handleState answers GET /api/state?as=<user ID>.
func (c *Console) handleState(w http.ResponseWriter, r *http.Request) {
	as := r.URL.Query().Get("as")
	if _, err := c.mustPerson(as); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, c.state(as))
}

// commandIn is a slash command typed into the page.
type commandIn struct {
	As      string `json:"as"`
	Channel string `json:"channel"`
	Text    string `json:"text"`
}

// ok is the answer of a write that worked.
type okOut struct {
	OK bool `json:"ok"`
}

// botMessage is the bot's answer to a command.
type botMessage struct {
	ResponseType string          `json:"response_type"`
	Text         string          `json:"text"`
	Blocks       json.RawMessage `json:"blocks"`
}

// command posts a slash command as Slack does and shows the answer to the
// person, as an ephemeral message (or to everyone, for in_channel).
func (c *Console) command(r *http.Request, in commandIn) (any, error) {
	p, err := c.mustPerson(in.As)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	ch, ok := c.channelLocked(in.Channel)
	c.mu.Unlock()
	if !ok {
		return nil, badRequest("unknown channel %q", in.Channel)
	}
	text := strings.TrimSpace(in.Text)
	if !strings.HasPrefix(text, "/") {
		return nil, badRequest("rotary only hears slash commands: start with / (try /rotate help). It does not read channel messages.")
	}
	cmd, args, _ := strings.Cut(text, " ")
	args = strings.TrimSpace(args)
	if !slices.Contains(c.commands, cmd) {
		c.note(ch.ID, p.ID, authorSlack, fmt.Sprintf("`%s` is not a valid command. In Slack, all messages that start with the \"/\" character are interpreted as commands. This app's commands: %s",
			slackEscape(cmd), slackEscape(strings.Join(c.commands, ", "))))
		return okOut{OK: true}, nil
	}

	form := commandForm(p, ch, cmd, args, c.newTrigger(p.ID))
	ans, err := c.post(r.Context(), pathCommands, []byte(form.Encode()))
	if err != nil {
		c.note(ch.ID, p.ID, authorConsole, "rotary did not answer `"+slackEscape(cmd)+"`: "+slackEscape(err.Error())+". Slack would show: _"+slackEscape(cmd)+" failed with the error \"dispatch_failed\"_.")
		return nil, fmt.Errorf("rotary did not answer %s: %w", cmd, err)
	}
	c.log.InfoContext(r.Context(), "console: command", "user", p.ID, "command", cmd, "status", ans.status, "took", ans.took)
	switch {
	case ans.status != http.StatusOK:
		c.note(ch.ID, p.ID, authorConsole, fmt.Sprintf("rotary answered `%s` with HTTP %d: %s", slackEscape(cmd), ans.status, slackEscape(clipBody(ans.body))))
	case len(strings.TrimSpace(string(ans.body))) > 0:
		var msg botMessage
		if err := json.Unmarshal(ans.body, &msg); err != nil {
			c.note(ch.ID, p.ID, authorConsole, "rotary's answer to `"+slackEscape(cmd)+"` is not a Slack message: "+slackEscape(err.Error()))
			break
		}
		c.mu.Lock()
		c.addLocalLocked(&localMessage{
			channel: ch.ID, user: p.ID, broadcast: msg.ResponseType == "in_channel", author: slackfake.BotName,
			command: text, text: msg.Text, blocks: msg.Blocks,
		})
		c.mu.Unlock()
	}
	c.warnIfLate(ch.ID, p.ID, cmd, ans.took)
	if target, _, _ := strings.Cut(args, " "); c.unavailable[target] != "" {
		c.note(ch.ID, p.ID, authorConsole, "*"+slackEscape(target)+"* is configured, but this console cannot play it: "+slackEscape(c.unavailable[target]))
	}
	return okOut{OK: true}, nil
}

// warnIfLate says when the bot took longer than Slack waits.
func (c *Console) warnIfLate(channel, user, what string, took time.Duration) {
	if took <= c.ackLimit {
		return
	}
	c.note(channel, user, authorConsole, fmt.Sprintf("rotary took %.1f s to answer %s. Slack gives up after %.0f s and shows the person an error instead.",
		took.Seconds(), slackEscape(what), c.ackLimit.Seconds()))
}

// clipBody shortens an error body for a note.
func clipBody(b []byte) string {
	const maxShown = 300
	s := strings.TrimSpace(string(b))
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return s
}

// actionIn is a click on a button of a message.
type actionIn struct {
	As       string `json:"as"`
	Key      string `json:"key"`
	BlockID  string `json:"block_id"`
	ActionID string `json:"action_id"`
	Value    string `json:"value"`
}

// clicked is what a click is on.
type clicked struct {
	channel   string
	ts        string
	text      string
	blocks    json.RawMessage
	ephemeral bool
}

// findLocked finds the message a click names, as the person sees it.
// c.mu is held.
func (c *Console) findLocked(key, as string) (clicked, bool) {
	kind, rest, _ := strings.Cut(key, ":")
	switch kind {
	case "m", "e":
		ch, ts, ok := strings.Cut(rest, ":")
		if !ok {
			return clicked{}, false
		}
		if kind == "m" {
			m, ok := c.fake.Message(ch, ts)
			return clicked{channel: ch, ts: ts, text: m.Text, blocks: m.Blocks}, ok
		}
		for _, m := range c.fake.Ephemerals(ch) {
			if m.TS == ts && m.User == as {
				return clicked{channel: ch, ts: ts, text: m.Text, blocks: m.Blocks, ephemeral: true}, true
			}
		}
	case "l":
		for _, l := range c.local {
			if l.key == key && (l.broadcast || l.user == as) {
				return clicked{channel: l.channel, text: l.text, blocks: l.blocks, ephemeral: !l.broadcast}, true
			}
		}
	}
	return clicked{}, false
}

// action posts a block_actions payload for a click on a button the
// message shows.
func (c *Console) action(r *http.Request, in actionIn) (any, error) {
	p, err := c.mustPerson(in.As)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	msg, ok := c.findLocked(in.Key, p.ID)
	var ch Channel
	if ok {
		ch, _ = c.channelLocked(msg.channel)
	}
	c.mu.Unlock()
	if !ok {
		return nil, conflict("that message is not there (any more) for %s", p.Name)
	}
	btn, ok := hasAction(msg.blocks, in.ActionID, in.BlockID, in.Value)
	if !ok {
		return nil, conflict("that message no longer shows that button; the page will refresh")
	}
	payload := blockActions{
		Type:        "block_actions",
		Team:        teamRef{ID: slackfake.TeamID, Domain: teamDomain},
		User:        userOf(p),
		APIAppID:    appID,
		Container:   containerRef{Type: "message", MessageTS: msg.ts, ChannelID: ch.ID, IsEphemeral: msg.ephemeral},
		TriggerID:   c.newTrigger(p.ID),
		Channel:     channelRef{ID: ch.ID, Name: ch.Name},
		ResponseURL: responseURL,
		Actions: []actionRef{{
			ActionID: in.ActionID, BlockID: in.BlockID, Text: elementText(*btn), Value: in.Value,
			Type: typeButton, Style: btn.Style, ActionTS: actionTS(c.now()),
		}},
	}
	if !msg.ephemeral {
		payload.Message = &messageRef{Type: "message", User: slackfake.BotUserID, BotID: slackfake.BotID, Text: msg.text, TS: msg.ts, Blocks: msg.blocks}
	}
	body, err := interactionBody(payload)
	if err != nil {
		return nil, err
	}
	ans, err := c.post(r.Context(), pathInteractions, body)
	if err != nil {
		c.note(ch.ID, p.ID, authorConsole, "rotary did not answer the click: "+slackEscape(err.Error()))
		return nil, fmt.Errorf("rotary did not answer the click: %w", err)
	}
	c.log.InfoContext(r.Context(), "console: click", "user", p.ID, "action_id", in.ActionID, "status", ans.status, "took", ans.took)
	if ans.status != http.StatusOK {
		c.note(ch.ID, p.ID, authorConsole, fmt.Sprintf("rotary answered the click with HTTP %d: %s", ans.status, slackEscape(clipBody(ans.body))))
	}
	c.warnIfLate(ch.ID, p.ID, "a click", ans.took)
	return okOut{OK: true}, nil
}

// submitIn is a modal's submission: values[block_id][action_id].
type submitIn struct {
	As     string                       `json:"as"`
	ViewID string                       `json:"view_id"`
	Values map[string]map[string]string `json:"values"`
}

// submitOut says whether the modal closed, or the errors to show in it.
type submitOut struct {
	Closed bool              `json:"closed"`
	Errors map[string]string `json:"errors,omitempty"`
}

// viewAnswer is the bot's answer to a view_submission.
type viewAnswer struct {
	ResponseAction string            `json:"response_action"`
	Errors         map[string]string `json:"errors"`
	View           json.RawMessage   `json:"view"`
}

// openViewLocked returns the person's open modal with the ID. c.mu is held.
func (c *Console) openViewLocked(id, as string) (*viewState, view, json.RawMessage, error) {
	vs, ok := c.views[id]
	if !ok || !vs.open {
		return nil, view{}, nil, conflict("that modal is not open")
	}
	if vs.owner != as {
		return nil, view{}, nil, conflict("that modal was opened for someone else; only they can use it")
	}
	raw, _, ok := c.viewJSONLocked(id)
	if !ok {
		return nil, view{}, nil, conflict("that modal is not open")
	}
	var v view
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, view{}, nil, fmt.Errorf("read modal %s: %w", id, err)
	}
	return vs, v, raw, nil
}

// submit posts a view_submission with the values typed into a modal. The
// values are neither logged nor kept: they exist only in this request and
// the one it makes to the bot.
func (c *Console) submit(r *http.Request, in submitIn) (any, error) {
	p, err := c.mustPerson(in.As)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	vs, v, raw, err := c.openViewLocked(in.ViewID, p.ID)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	fields := v.inputs()
	for bid, actions := range in.Values {
		for aid := range actions {
			if !slices.ContainsFunc(fields, func(f inputField) bool { return f.BlockID == bid && f.ActionID == aid }) {
				return nil, badRequest("the modal has no input %s/%s", bid, aid)
			}
		}
	}
	var sv submittedView
	sv.State.Values = map[string]map[string]inputValue{}
	missing := map[string]string{}
	for _, f := range fields {
		val := in.Values[f.BlockID][f.ActionID]
		if !f.Optional && strings.TrimSpace(val) == "" {
			missing[f.BlockID] = requiredFieldError
		}
		sv.State.Values[f.BlockID] = map[string]inputValue{f.ActionID: {Type: typeTextInput, Value: val}}
	}
	if len(missing) > 0 {
		c.mu.Lock()
		vs.errors = missing
		c.changedLocked()
		c.mu.Unlock()
		return submitOut{Errors: missing}, nil
	}
	var blocksRaw struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	_ = json.Unmarshal(raw, &blocksRaw) // read above; it decodes
	sv.ID, sv.TeamID, sv.Type, sv.Blocks = in.ViewID, slackfake.TeamID, v.Type, blocksRaw.Blocks
	sv.PrivateMetadata, sv.CallbackID, sv.Title, sv.Close, sv.Submit = v.PrivateMetadata, v.CallbackID, v.Title, v.Close, v.Submit
	sv.RootViewID, sv.AppID, sv.BotID, sv.NotifyOnClose = in.ViewID, appID, slackfake.BotID, v.NotifyOnClose
	body, err := interactionBody(viewPayload{
		Type: "view_submission", Team: teamRef{ID: slackfake.TeamID, Domain: teamDomain}, User: userOf(p),
		APIAppID: appID, TriggerID: c.newTrigger(p.ID), View: sv, ResponseURLs: []string{},
	})
	if err != nil {
		return nil, err
	}
	ans, err := c.post(r.Context(), pathInteractions, body)
	if err != nil {
		return nil, fmt.Errorf("rotary did not answer the modal: %w", err)
	}
	c.log.InfoContext(r.Context(), "console: modal submitted", "user", p.ID, "callback_id", v.CallbackID, "status", ans.status, "took", ans.took)
	if ans.status != http.StatusOK {
		return nil, &apiError{status: http.StatusBadGateway, msg: fmt.Sprintf("rotary answered the modal with HTTP %d; the modal stays open", ans.status)}
	}
	var va viewAnswer
	if len(strings.TrimSpace(string(ans.body))) > 0 {
		if err := json.Unmarshal(ans.body, &va); err != nil {
			return nil, &apiError{status: http.StatusBadGateway, msg: "rotary's answer to the modal is not JSON: " + err.Error()}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.changedLocked()
	switch va.ResponseAction {
	case "errors":
		vs.errors = va.Errors
		return submitOut{Errors: va.Errors}, nil
	case "update", "push":
		// A pushed view would stack on this one; the page shows one modal
		// at a time, so it replaces it.
		vs.update, vs.errors = va.View, nil
		vs.updates++
		return submitOut{}, nil
	case "clear":
		for _, other := range c.views {
			if other.owner == p.ID {
				other.open = false
			}
		}
	}
	vs.open, vs.errors = false, nil
	return submitOut{Closed: true}, nil
}

// closeIn closes a modal with its Cancel button (or Escape).
type closeIn struct {
	As     string `json:"as"`
	ViewID string `json:"view_id"`
}

// closeView closes a modal; Slack tells the app only when the view asked
// for it (notify_on_close).
func (c *Console) closeView(r *http.Request, in closeIn) (any, error) {
	p, err := c.mustPerson(in.As)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	vs, v, _, err := c.openViewLocked(in.ViewID, p.ID)
	if err == nil {
		vs.open, vs.errors = false, nil
		c.changedLocked()
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !v.NotifyOnClose {
		return submitOut{Closed: true}, nil
	}
	body, err := interactionBody(viewPayload{
		Type: "view_closed", Team: teamRef{ID: slackfake.TeamID, Domain: teamDomain}, User: userOf(p), APIAppID: appID,
		View: submittedView{ID: in.ViewID, TeamID: slackfake.TeamID, Type: v.Type, CallbackID: v.CallbackID,
			PrivateMetadata: v.PrivateMetadata, RootViewID: in.ViewID, AppID: appID, BotID: slackfake.BotID, NotifyOnClose: true},
		ResponseURLs: []string{},
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.post(r.Context(), pathInteractions, body); err != nil {
		return nil, fmt.Errorf("tell rotary the modal closed: %w", err)
	}
	return submitOut{Closed: true}, nil
}
