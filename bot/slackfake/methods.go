package slackfake

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// handler serves one Slack method with s.mu held. It fills the Call fields
// that apply and returns either response fields or a Slack error code.
type handler func(p params, c *Call) reply

type reply struct {
	fields map[string]any
	err    string
}

func ok(fields map[string]any) reply { return reply{fields: fields} }
func fail(code string) reply         { return reply{err: code} }

func (s *Server) postMessage(p params, c *Call) reply {
	c.Channel, c.Text, c.ThreadTS = p.str("channel"), p.str("text"), p.str("thread_ts")
	blocks, err := blocksArg(p)
	if err != nil {
		return fail("invalid_blocks")
	}
	c.Blocks = blocks
	if c.Channel == "" {
		return fail("channel_not_found")
	}
	if c.Text == "" && blocks == nil {
		return fail("no_text")
	}
	threadTS := c.ThreadTS
	if threadTS != "" {
		parent := s.findMessage(c.Channel, threadTS)
		if parent == nil {
			return fail("thread_not_found")
		}
		// Replying to a reply lands in the parent's thread, as on Slack.
		if parent.ThreadTS != "" {
			threadTS = parent.ThreadTS
		}
	}
	c.TS = s.nextTS()
	m := &Message{Channel: c.Channel, TS: c.TS, ThreadTS: threadTS, Text: c.Text, Blocks: blocks}
	s.messages[c.Channel] = append(s.messages[c.Channel], m)
	return ok(map[string]any{"channel": m.Channel, "ts": m.TS, "message": messageObject(m)})
}

func (s *Server) update(p params, c *Call) reply {
	c.Channel, c.TS, c.Text = p.str("channel"), p.str("ts"), p.str("text")
	blocks, err := blocksArg(p)
	if err != nil {
		return fail("invalid_blocks")
	}
	c.Blocks = blocks
	if c.Channel == "" {
		return fail("channel_not_found")
	}
	m := s.findMessage(c.Channel, c.TS)
	if m == nil {
		return fail("message_not_found")
	}
	if !p.has("text") && !p.has("blocks") {
		return fail("no_text")
	}
	// Absent arguments keep their old value; blocks=[] clears the blocks.
	if p.has("text") {
		m.Text = c.Text
	}
	if p.has("blocks") {
		m.Blocks = blocks
	}
	m.Updates++
	return ok(map[string]any{"channel": m.Channel, "ts": m.TS, "text": m.Text, "message": messageObject(m)})
}

func (s *Server) postEphemeral(p params, c *Call) reply {
	c.Channel, c.User, c.Text, c.ThreadTS = p.str("channel"), p.str("user"), p.str("text"), p.str("thread_ts")
	blocks, err := blocksArg(p)
	if err != nil {
		return fail("invalid_blocks")
	}
	c.Blocks = blocks
	switch {
	case c.Channel == "":
		return fail("channel_not_found")
	case c.User == "":
		return fail("user_not_found")
	case c.Text == "" && blocks == nil:
		return fail("no_text")
	}
	c.TS = s.nextTS()
	m := Message{Channel: c.Channel, TS: c.TS, ThreadTS: c.ThreadTS, Text: c.Text, Blocks: blocks, User: c.User}
	s.ephemerals[c.Channel] = append(s.ephemerals[c.Channel], m)
	return ok(map[string]any{"message_ts": c.TS})
}

func (s *Server) getPermalink(p params, c *Call) reply {
	c.Channel, c.TS = p.str("channel"), p.str("message_ts")
	if c.Channel == "" {
		return fail("channel_not_found")
	}
	m := s.findMessage(c.Channel, c.TS)
	if m == nil {
		return fail("message_not_found")
	}
	link := WorkspaceURL + "archives/" + m.Channel + "/p" + strings.Replace(m.TS, ".", "", 1)
	if m.ThreadTS != "" {
		link += "?thread_ts=" + m.ThreadTS + "&cid=" + m.Channel
	}
	return ok(map[string]any{"channel": m.Channel, "permalink": link})
}

func (s *Server) viewsOpen(p params, c *Call) reply {
	c.TriggerID = p.str("trigger_id")
	view, obj, code := viewArg(p)
	c.View = view
	if code != "" {
		return fail(code)
	}
	if c.TriggerID == "" {
		return fail("invalid_trigger_id")
	}
	s.lastView++
	v := &View{
		ID:         fmt.Sprintf("VFAKE%05d", s.lastView),
		TriggerID:  c.TriggerID,
		ExternalID: stringField(obj, "external_id"),
		Hash:       s.nextHash(),
		View:       view,
	}
	s.views[v.ID] = v
	c.ViewID = v.ID
	return ok(map[string]any{"view": viewObject(v, obj)})
}

func (s *Server) viewsUpdate(p params, c *Call) reply {
	c.ViewID = p.str("view_id")
	externalID, hash := p.str("external_id"), p.str("hash")
	view, obj, code := viewArg(p)
	c.View = view
	if code != "" {
		return fail(code)
	}
	v := s.views[c.ViewID]
	if c.ViewID == "" && externalID != "" {
		for _, cand := range s.views {
			if cand.ExternalID == externalID {
				v = cand
			}
		}
	}
	if v == nil {
		return fail("not_found")
	}
	c.ViewID = v.ID
	if hash != "" && hash != v.Hash {
		return fail("hash_conflict")
	}
	v.View = view
	if id := stringField(obj, "external_id"); id != "" {
		v.ExternalID = id
	}
	v.Hash = s.nextHash()
	v.Updates++
	return ok(map[string]any{"view": viewObject(v, obj)})
}

func (s *Server) usersInfo(p params, c *Call) reply {
	c.User = p.str("user")
	name, known := s.users[c.User]
	if !known {
		return fail("user_not_found")
	}
	return ok(map[string]any{"user": map[string]any{
		"id":        c.User,
		"team_id":   TeamID,
		"name":      name,
		"real_name": name,
		"profile":   map[string]any{"real_name": name, "display_name": name},
	}})
}

func (s *Server) usergroupsUsersList(p params, _ *Call) reply {
	members, known := s.groups[p.str("usergroup")]
	if !known {
		return fail("no_such_subteam")
	}
	// Never null: Slack always answers a list.
	return ok(map[string]any{"users": append([]string{}, members...)})
}

func (s *Server) authTest(params, *Call) reply {
	return ok(map[string]any{
		"url":     WorkspaceURL,
		"team":    TeamName,
		"user":    BotName,
		"team_id": TeamID,
		"user_id": BotUserID,
		"bot_id":  BotID,
	})
}

func (s *Server) conversationsInfo(p params, c *Call) reply {
	c.Channel = p.str("channel")
	name, known := s.channels[c.Channel]
	if !known {
		return fail("channel_not_found")
	}
	return ok(map[string]any{"channel": map[string]any{
		"id":         c.Channel,
		"name":       name,
		"is_channel": true,
		"is_member":  true,
	}})
}

// findMessage returns the stored message or nil. s.mu is held.
func (s *Server) findMessage(channel, ts string) *Message {
	i := slices.IndexFunc(s.messages[channel], func(m *Message) bool { return m.TS == ts })
	if i < 0 {
		return nil
	}
	return s.messages[channel][i]
}

// nextTS hands out strictly increasing, fixed-width timestamps shared by all
// channels, like Slack's per-workspace clock. s.mu is held.
func (s *Server) nextTS() string {
	s.lastTS++
	micros := s.lastTS * tsStepMicros
	return fmt.Sprintf("%d.%06d", tsBaseSeconds+micros/microsPerSec, micros%microsPerSec)
}

func (s *Server) nextHash() string {
	s.lastHash++
	return fmt.Sprintf("%d.fakehash%05d", tsBaseSeconds, s.lastHash)
}

// blocksArg returns the blocks argument, nil when absent or empty, or an
// error when it is not a JSON array.
func blocksArg(p params) (json.RawMessage, error) {
	raw, err := p.raw("blocks")
	if err != nil || raw == nil {
		return nil, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return raw, nil
}

// viewArg returns the view argument and its decoded object, or a Slack
// error code when it is missing or not an object.
func viewArg(p params) (json.RawMessage, map[string]any, string) {
	raw, err := p.raw("view")
	if err != nil {
		return nil, nil, "invalid_arguments"
	}
	if raw == nil {
		return nil, nil, "invalid_arguments"
	}
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return raw, nil, "invalid_arguments"
	}
	return raw, obj, ""
}

func stringField(obj map[string]any, key string) string {
	s, _ := obj[key].(string)
	return s
}

// messageObject is the "message" object of chat.postMessage and chat.update.
func messageObject(m *Message) map[string]any {
	out := map[string]any{
		"type":    "message",
		"user":    BotUserID,
		"bot_id":  BotID,
		"text":    m.Text,
		"ts":      m.TS,
		"team":    TeamID,
		"channel": m.Channel,
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if m.Blocks != nil {
		out["blocks"] = m.Blocks
	}
	return out
}

// viewObject is the "view" object of views.open and views.update: the view
// as sent plus the fields Slack assigns.
func viewObject(v *View, sent map[string]any) map[string]any {
	out := make(map[string]any, len(sent)+5)
	for k, val := range sent {
		out[k] = val
	}
	out["id"] = v.ID
	out["hash"] = v.Hash
	out["team_id"] = TeamID
	out["bot_id"] = BotID
	out["root_view_id"] = v.ID
	return out
}
