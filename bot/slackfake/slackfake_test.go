package slackfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/bot/slackfake"
)

// testTimeout bounds every wait; no test is expected to come near it.
const testTimeout = 5 * time.Second

func newFake(t *testing.T) *slackfake.Server {
	t.Helper()
	f := slackfake.New()
	t.Cleanup(f.Close)
	return f
}

// newClient is the real slack-go client, pointed at the fake the documented way.
func newClient(f *slackfake.Server, token string) *slack.Client {
	return slack.New(token, slack.OptionAPIURL(f.URL()+"/"))
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func text(s string) slack.MsgOption { return slack.MsgOptionText(s, false) }

func wantSlackError(t *testing.T, err error, code string) {
	t.Helper()
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != code {
		t.Fatalf("error = %v (%T), want slack error %q", err, err, code)
	}
}

func lastCall(t *testing.T, f *slackfake.Server) slackfake.Call {
	t.Helper()
	calls := f.Calls()
	if len(calls) == 0 {
		t.Fatal("no calls recorded")
	}
	return calls[len(calls)-1]
}

func TestPostUpdateThread(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)

	section := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*rotate db-password*", false, false), nil, nil)
	ch, ts1, err := api.PostMessageContext(ctx, "C1", text("requested"), slack.MsgOptionBlocks(section))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	if ch != "C1" || ts1 != "1700000000.000100" {
		t.Fatalf("post answered (%q, %q), want (C1, 1700000000.000100)", ch, ts1)
	}

	_, uts, _, err := api.UpdateMessageContext(ctx, "C1", ts1, text("approved"))
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if uts != ts1 {
		t.Fatalf("update answered ts %q, want %q", uts, ts1)
	}

	_, ts2, err := api.PostMessageContext(ctx, "C1", text("done"), slack.MsgOptionTS(ts1))
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	// A reply to a reply lands in the parent's thread, as on Slack.
	_, ts3, err := api.PostMessageContext(ctx, "C1", text("again"), slack.MsgOptionTS(ts2))
	if err != nil {
		t.Fatalf("reply to reply: %v", err)
	}
	if ts2 != "1700000000.000200" || ts3 != "1700000000.000300" {
		t.Fatalf("reply ts = %q, %q; want ...000200, ...000300", ts2, ts3)
	}

	parent, found := f.Message("C1", ts1)
	if !found {
		t.Fatal("parent message not stored")
	}
	if parent.Text != "approved" || parent.Updates != 1 {
		t.Errorf("parent = %+v, want text approved after 1 update", parent)
	}
	// chat.update without blocks keeps the old blocks.
	if !bytes.Contains(parent.Blocks, []byte("*rotate db-password*")) {
		t.Errorf("parent blocks = %s, want the posted section kept", parent.Blocks)
	}

	thread := f.Thread("C1", ts1)
	if len(thread) != 2 || thread[0].TS != ts2 || thread[1].TS != ts3 || thread[1].ThreadTS != ts1 {
		t.Fatalf("thread = %+v, want replies %s and %s under %s", thread, ts2, ts3, ts1)
	}

	msgs := f.Messages("C1")
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].TS <= msgs[i-1].TS {
			t.Errorf("ts not increasing: %q after %q", msgs[i].TS, msgs[i-1].TS)
		}
	}

	posts := f.CallsTo("chat.postMessage")
	if len(posts) != 3 {
		t.Fatalf("got %d postMessage calls, want 3", len(posts))
	}
	if posts[0].Channel != "C1" || posts[0].Text != "requested" || posts[0].TS != ts1 || !bytes.Contains(posts[0].Blocks, []byte(`"section"`)) {
		t.Errorf("first post recorded as %+v", posts[0])
	}
	if posts[1].ThreadTS != ts1 || posts[2].ThreadTS != ts2 {
		t.Errorf("thread_ts recorded as %q, %q; want as sent %q, %q", posts[1].ThreadTS, posts[2].ThreadTS, ts1, ts2)
	}
	upd := f.CallsTo("chat.update")
	if len(upd) != 1 || upd[0].TS != ts1 || upd[0].Text != "approved" || upd[0].Failed {
		t.Errorf("update recorded as %+v", upd)
	}
	if got := posts[0].Form.Get("token"); got != "" {
		t.Errorf("recorded form keeps the token %q", got)
	}
}

func TestUpdateClearsBlocks(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)

	_, ts, err := api.PostMessageContext(ctx, "C1", text("x"), slack.MsgOptionBlocks(slack.NewDividerBlock()))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	// MsgOptionBlocks() sends blocks=[], which clears them on Slack.
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks()); err != nil {
		t.Fatalf("update: %v", err)
	}
	m, _ := f.Message("C1", ts)
	if m.Blocks != nil || m.Text != "x" {
		t.Errorf("message = %+v, want blocks cleared and text kept", m)
	}
}

func TestSlackErrors(t *testing.T) {
	tests := []struct {
		name   string
		method string
		call   func(context.Context, *slack.Client) error
		want   string
	}{
		{"update unknown ts", "chat.update", func(ctx context.Context, api *slack.Client) error {
			_, _, _, err := api.UpdateMessageContext(ctx, "C1", "1699999999.000100", text("x"))
			return err
		}, "message_not_found"},
		{"reply to unknown thread", "chat.postMessage", func(ctx context.Context, api *slack.Client) error {
			_, _, err := api.PostMessageContext(ctx, "C1", text("x"), slack.MsgOptionTS("1699999999.000100"))
			return err
		}, "thread_not_found"},
		{"post without text or blocks", "chat.postMessage", func(ctx context.Context, api *slack.Client) error {
			_, _, err := api.PostMessageContext(ctx, "C1")
			return err
		}, "no_text"},
		{"permalink of unknown message", "chat.getPermalink", func(ctx context.Context, api *slack.Client) error {
			_, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: "1.0"})
			return err
		}, "message_not_found"},
		{"unknown user", "users.info", func(ctx context.Context, api *slack.Client) error {
			_, err := api.GetUserInfoContext(ctx, "U404")
			return err
		}, "user_not_found"},
		{"unknown group", "usergroups.users.list", func(ctx context.Context, api *slack.Client) error {
			_, err := api.GetUserGroupMembersContext(ctx, "S404")
			return err
		}, "no_such_subteam"},
		{"unknown channel", "conversations.info", func(ctx context.Context, api *slack.Client) error {
			_, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: "C404"})
			return err
		}, "channel_not_found"},
		{"update unknown view", "views.update", func(ctx context.Context, api *slack.Client) error {
			_, err := api.UpdateViewContext(ctx, slack.ModalViewRequest{Type: slack.VTModal}, "", "", "V404")
			return err
		}, "not_found"},
		{"unknown method", "team.info", func(ctx context.Context, api *slack.Client) error {
			_, err := api.GetTeamInfoContext(ctx)
			return err
		}, "unknown_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			err := tt.call(testCtx(t), newClient(f, slackfake.DefaultToken))
			wantSlackError(t, err, tt.want)
			c := lastCall(t, f)
			if c.Method != tt.method || !c.Failed || c.Injected || c.Error != tt.want || c.Status != http.StatusOK {
				t.Errorf("recorded %+v, want a failed, not injected %s call with error %q", c, tt.method, tt.want)
			}
			if len(f.Messages("C1")) != 0 {
				t.Error("a failed call stored a message")
			}
		})
	}
}

func TestLookups(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)
	f.AddUser("U1", "alice")
	f.SetGroupMembers("S1", "U1", "U2")
	f.SetGroupMembers("SEMPTY")
	f.AddChannel("C1", "ops-rotations")

	u, err := api.GetUserInfoContext(ctx, "U1")
	if err != nil || u.ID != "U1" || u.Name != "alice" {
		t.Errorf("users.info = %+v, %v; want U1 alice", u, err)
	}
	if c := lastCall(t, f); c.User != "U1" {
		t.Errorf("users.info recorded user %q", c.User)
	}

	members, err := api.GetUserGroupMembersContext(ctx, "S1")
	if err != nil || strings.Join(members, ",") != "U1,U2" {
		t.Errorf("usergroups.users.list = %v, %v; want [U1 U2]", members, err)
	}
	members, err = api.GetUserGroupMembersContext(ctx, "SEMPTY")
	if err != nil || members == nil || len(members) != 0 {
		t.Errorf("empty group = %#v, %v; want an empty list", members, err)
	}

	auth, err := api.AuthTestContext(ctx)
	if err != nil || auth.UserID != slackfake.BotUserID || auth.TeamID != slackfake.TeamID || auth.BotID != slackfake.BotID {
		t.Errorf("auth.test = %+v, %v", auth, err)
	}

	ch, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: "C1"})
	if err != nil || ch.ID != "C1" || ch.Name != "ops-rotations" {
		t.Errorf("conversations.info = %+v, %v", ch, err)
	}

	_, parent, err := api.PostMessageContext(ctx, "C1", text("p"))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	_, reply, err := api.PostMessageContext(ctx, "C1", text("r"), slack.MsgOptionTS(parent))
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: reply})
	want := slackfake.WorkspaceURL + "archives/C1/p1700000000000200?thread_ts=1700000000.000100&cid=C1"
	if err != nil || link != want {
		t.Errorf("permalink = %q, %v; want %q", link, err, want)
	}
	if c := lastCall(t, f); c.Channel != "C1" || c.TS != reply || c.Form.Get("message_ts") != reply {
		t.Errorf("getPermalink (a GET) recorded as %+v", c)
	}
}

func TestEphemeral(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)

	ts, err := api.PostEphemeralContext(ctx, "C1", "U7", text("only you can see this"))
	if err != nil {
		t.Fatalf("postEphemeral: %v", err)
	}
	if ts != "1700000000.000100" {
		t.Errorf("message_ts = %q", ts)
	}
	calls := f.CallsTo("chat.postEphemeral")
	if len(calls) != 1 || calls[0].User != "U7" || calls[0].Channel != "C1" || calls[0].Text != "only you can see this" || calls[0].TS != ts {
		t.Fatalf("recorded %+v", calls)
	}
	if got := f.Messages("C1"); len(got) != 0 {
		t.Errorf("ephemeral message visible in channel: %+v", got)
	}
	eph := f.Ephemerals("C1")
	if len(eph) != 1 || eph[0].User != "U7" || eph[0].TS != ts {
		t.Errorf("ephemerals = %+v", eph)
	}
}

func TestViews(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)

	modal := slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           slack.NewTextBlockObject(slack.PlainTextType, "Rotate", false, false),
		CallbackID:      "rotate_request",
		PrivateMetadata: "req-1",
		ExternalID:      "ext-1",
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock("reason", slack.NewTextBlockObject(slack.PlainTextType, "Reason", false, false), nil,
				slack.NewPlainTextInputBlockElement(nil, "reason_input")),
		}},
	}
	opened, err := api.OpenViewContext(ctx, "trigger-1", modal)
	if err != nil {
		t.Fatalf("views.open: %v", err)
	}
	if opened.ID == "" || opened.Hash == "" || opened.CallbackID != "rotate_request" || opened.PrivateMetadata != "req-1" {
		t.Fatalf("views.open answered %+v", opened.View)
	}
	c := lastCall(t, f)
	if c.Method != "views.open" || c.TriggerID != "trigger-1" || c.ViewID != opened.ID || !bytes.Contains(c.View, []byte(`"callback_id":"rotate_request"`)) {
		t.Errorf("views.open recorded as %+v", c)
	}
	if c.JSON["trigger_id"] != "trigger-1" || c.Form != nil {
		t.Errorf("views.open is a JSON post; recorded JSON=%v Form=%v", c.JSON, c.Form)
	}

	modal.PrivateMetadata = "req-1-step-2"
	updated, err := api.UpdateViewContext(ctx, modal, "", opened.Hash, opened.ID)
	if err != nil {
		t.Fatalf("views.update: %v", err)
	}
	if updated.ID != opened.ID || updated.Hash == opened.Hash || updated.PrivateMetadata != "req-1-step-2" {
		t.Errorf("views.update answered %+v", updated.View)
	}
	// The old hash is stale now.
	_, err = api.UpdateViewContext(ctx, modal, "", opened.Hash, opened.ID)
	wantSlackError(t, err, "hash_conflict")
	// Addressing by external_id works too.
	if _, err := api.UpdateViewContext(ctx, modal, "ext-1", "", ""); err != nil {
		t.Fatalf("views.update by external_id: %v", err)
	}

	v, found := f.View(opened.ID)
	if !found || v.TriggerID != "trigger-1" || v.Updates != 2 || !bytes.Contains(v.View, []byte("req-1-step-2")) {
		t.Errorf("stored view = %+v", v)
	}
	if all := f.Views(); len(all) != 1 {
		t.Errorf("Views() = %d views, want 1", len(all))
	}
}

func TestFaults(t *testing.T) {
	post := func(ctx context.Context, api *slack.Client) error {
		_, _, err := api.PostMessageContext(ctx, "C1", text("x"))
		return err
	}
	openView := func(ctx context.Context, api *slack.Client) error {
		_, err := api.OpenViewContext(ctx, "trigger", slack.ModalViewRequest{Type: slack.VTModal})
		return err
	}
	tests := []struct {
		name       string
		method     string
		call       func(context.Context, *slack.Client) error
		fault      slackfake.Fault
		wantStatus int
		check      func(*testing.T, error)
	}{
		{"429 form post", "chat.postMessage", post, slackfake.Fault{Status: 429, RetryAfter: 7}, 429, func(t *testing.T, err error) {
			var rl *slack.RateLimitedError
			if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
				t.Errorf("error = %v (%T), want *slack.RateLimitedError after 7s", err, err)
			}
		}},
		{"429 JSON post", "views.open", openView, slackfake.Fault{Status: 429, RetryAfter: 1}, 429, func(t *testing.T, err error) {
			var rl *slack.RateLimitedError
			if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
				t.Errorf("error = %v (%T), want *slack.RateLimitedError after 1s", err, err)
			}
		}},
		{"500", "chat.postMessage", post, slackfake.Fault{Status: 500}, 500, func(t *testing.T, err error) {
			var sc slack.StatusCodeError
			if !errors.As(err, &sc) || sc.Code != http.StatusInternalServerError {
				t.Errorf("error = %v (%T), want slack.StatusCodeError 500", err, err)
			}
		}},
		{"slack error", "chat.postMessage", post, slackfake.Fault{SlackError: "channel_not_found"}, 200, func(t *testing.T, err error) {
			wantSlackError(t, err, "channel_not_found")
		}},
		{"zero fault", "views.open", openView, slackfake.Fault{}, 200, func(t *testing.T, err error) {
			wantSlackError(t, err, "internal_error")
		}},
	}
	const failures = 2
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			api := newClient(f, slackfake.DefaultToken)
			ctx := testCtx(t)
			f.FailNext(tt.method, failures, tt.fault)

			for range failures {
				tt.check(t, tt.call(ctx, api))
			}
			if err := tt.call(ctx, api); err != nil {
				t.Fatalf("call after the faults ran out: %v", err)
			}

			calls := f.CallsTo(tt.method)
			if len(calls) != failures+1 {
				t.Fatalf("recorded %d calls, want %d", len(calls), failures+1)
			}
			for _, c := range calls[:failures] {
				if !c.Failed || !c.Injected || c.Status != tt.wantStatus {
					t.Errorf("faulted call recorded as failed=%v injected=%v status=%d", c.Failed, c.Injected, c.Status)
				}
			}
			if ok := calls[failures]; ok.Failed || ok.Injected || ok.Status != http.StatusOK {
				t.Errorf("successful call recorded as %+v", ok)
			}
			// Faults are taken before any state changes, so no ts was used up.
			if tt.method == "chat.postMessage" && calls[failures].TS != "1700000000.000100" {
				t.Errorf("first successful post got ts %q", calls[failures].TS)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	f := newFake(t)
	ctx := testCtx(t)
	bad := newClient(f, "xoxb-wrong")

	// Form post (token in the body), JSON post and GET (token in the header).
	_, _, err := bad.PostMessageContext(ctx, "C1", text("x"))
	wantSlackError(t, err, "invalid_auth")
	_, err = bad.OpenViewContext(ctx, "trigger", slack.ModalViewRequest{Type: slack.VTModal})
	wantSlackError(t, err, "invalid_auth")
	_, err = bad.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: "1.0"})
	wantSlackError(t, err, "invalid_auth")
	if len(f.Messages("C1")) != 0 || len(f.Views()) != 0 {
		t.Error("unauthenticated calls changed state")
	}
	if n := len(f.Calls()); n != 3 {
		t.Errorf("recorded %d calls, want all 3 rejected calls", n)
	}

	f.SetToken("xoxb-rotated")
	_, _, err = newClient(f, slackfake.DefaultToken).PostMessageContext(ctx, "C1", text("x"))
	wantSlackError(t, err, "invalid_auth")
	if _, _, err := newClient(f, "xoxb-rotated").PostMessageContext(ctx, "C1", text("x")); err != nil {
		t.Errorf("post with the new token: %v", err)
	}

	// No token at all; and a token inside a JSON body, which Slack ignores.
	for _, tc := range []struct{ contentType, body string }{
		{"application/x-www-form-urlencoded", "channel=C1&text=x"},
		{"application/json", `{"channel":"C1","text":"x","token":"xoxb-rotated"}`},
	} {
		resp := postRaw(t, f, "chat.postMessage", tc.contentType, "", tc.body)
		if resp["error"] != "not_authed" {
			t.Errorf("%s without a header answered %v, want not_authed", tc.contentType, resp)
		}
	}
}

// postRaw sends a hand-built request, to pin the wire format without slack-go.
func postRaw(t *testing.T, f *slackfake.Server, method, contentType, token, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, f.URL()+"/"+method, strings.NewReader(body))
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d", method, resp.StatusCode)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %q is not JSON: %v", raw, err)
	}
	return out
}

func TestBodiesDecoded(t *testing.T) {
	const blocks = `[{"type":"divider"}]`
	formWith := func(extra url.Values) string {
		v := url.Values{"channel": {"C9"}, "text": {"hi"}, "blocks": {blocks}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v.Encode()
	}
	tests := []struct {
		name        string
		contentType string
		header      string // bearer token in the Authorization header
		body        string
		isJSON      bool
	}{
		{"form, token in body", "application/x-www-form-urlencoded", "", formWith(url.Values{"token": {slackfake.DefaultToken}}), false},
		{"form, token in header", "application/x-www-form-urlencoded", slackfake.DefaultToken, formWith(nil), false},
		{"JSON, blocks as array", "application/json; charset=utf-8", slackfake.DefaultToken,
			`{"channel":"C9","text":"hi","blocks":` + blocks + `}`, true},
		{"JSON, blocks as string", "application/json", slackfake.DefaultToken,
			`{"channel":"C9","text":"hi","blocks":` + strconvQuote(blocks) + `}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			resp := postRaw(t, f, "chat.postMessage", tt.contentType, tt.header, tt.body)
			if resp["ok"] != true || resp["ts"] != "1700000000.000100" || resp["channel"] != "C9" {
				t.Fatalf("answer = %v", resp)
			}
			c := lastCall(t, f)
			if c.Channel != "C9" || c.Text != "hi" || compact(t, c.Blocks) != blocks {
				t.Errorf("decoded channel=%q text=%q blocks=%s", c.Channel, c.Text, c.Blocks)
			}
			if string(c.Raw) != tt.body {
				t.Errorf("Raw = %q, want the body as sent", c.Raw)
			}
			if tt.isJSON != (c.JSON != nil) || tt.isJSON == (c.Form != nil) {
				t.Errorf("JSON=%v Form=%v for a JSON=%v body", c.JSON, c.Form, tt.isJSON)
			}
			if !tt.isJSON && (c.Form.Get("channel") != "C9" || c.Form.Has("token")) {
				t.Errorf("Form = %v, want channel and no token", c.Form)
			}
			if tt.isJSON && c.JSON["channel"] != "C9" {
				t.Errorf("JSON = %v", c.JSON)
			}
			m, found := f.Message("C9", "1700000000.000100")
			if !found || compact(t, m.Blocks) != blocks {
				t.Errorf("stored %+v", m)
			}
		})
	}
}

func TestUndecodableBodies(t *testing.T) {
	tests := []struct{ name, contentType, body, want string }{
		{"broken JSON", "application/json", `{"channel":`, "invalid_json"},
		{"JSON array", "application/json", `[1]`, "invalid_json"},
		{"unsupported type", "text/plain", "channel=C1", "invalid_post_type"},
		{"no type", "", "channel=C1", "missing_post_type"},
		{"blocks not an array", "application/json", `{"channel":"C1","blocks":{"type":"divider"}}`, "invalid_blocks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			resp := postRaw(t, f, "chat.postMessage", tt.contentType, slackfake.DefaultToken, tt.body)
			if resp["ok"] != false || resp["error"] != tt.want {
				t.Errorf("answer = %v, want error %q", resp, tt.want)
			}
			if c := lastCall(t, f); !c.Failed || c.Error != tt.want || string(c.Raw) != tt.body {
				t.Errorf("recorded %+v", c)
			}
		})
	}
}

func TestRawCoversAllTraffic(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)
	const canary = "canary-7f3a9" // stands in for a secret a buggy caller leaks

	_, ts, err := api.PostMessageContext(ctx, "C1", text("value is "+canary))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	if _, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: "C1", Ts: ts}); err != nil {
		t.Fatalf("permalink: %v", err)
	}

	var inRequests, inResponses, queries int
	calls := f.Calls()
	for _, c := range calls {
		if bytes.Contains(c.Raw, []byte(canary)) {
			inRequests++
		}
		if bytes.Contains(c.Response, []byte(canary)) {
			inResponses++
		}
	}
	if inRequests != 1 || inResponses != 1 {
		t.Fatalf("canary in %d request and %d response bodies, want 1 and 1 (postMessage echoes the message)", inRequests, inResponses)
	}
	var found int
	for _, b := range f.Raw() {
		if bytes.Contains(b, []byte(canary)) {
			found++
		}
		if bytes.Contains(b, []byte("message_ts="+url.QueryEscape(ts))) {
			queries++
		}
	}
	if found != 2 {
		t.Errorf("Raw() has the canary %d times, want 2 (request and response)", found)
	}
	if queries != 1 {
		t.Errorf("Raw() has the GET query %d times, want 1", queries)
	}
}

func TestWaitFor(t *testing.T) {
	t.Run("wakes on each new call", func(t *testing.T) {
		f := newFake(t)
		api := newClient(f, slackfake.DefaultToken)
		ctx := testCtx(t)
		const posts = 3

		started := make(chan struct{})
		var once sync.Once
		errc := make(chan error, 1)
		go func() {
			<-started // post only once WaitFor has seen the empty recording
			for range posts {
				if _, _, err := api.PostMessageContext(ctx, "C1", text("x")); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()

		evaluations := 0
		calls, err := f.WaitFor(ctx, func(calls []slackfake.Call) bool {
			evaluations++
			once.Do(func() { close(started) })
			return slackfake.HasCalls("chat.postMessage", posts)(calls)
		})
		if err != nil {
			t.Fatalf("WaitFor: %v", err)
		}
		if len(calls) != posts {
			t.Errorf("WaitFor returned %d calls, want %d", len(calls), posts)
		}
		if evaluations < 2 {
			t.Errorf("predicate ran %d times; WaitFor did not wait for a new call", evaluations)
		}
		if err := <-errc; err != nil {
			t.Fatalf("post: %v", err)
		}
	})

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancelExpired := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancelExpired()
	never := func([]slackfake.Call) bool { return false }
	always := func([]slackfake.Call) bool { return true }
	tests := []struct {
		name    string
		ctx     context.Context
		pred    func([]slackfake.Call) bool
		wantErr error
	}{
		{"already true returns at once", cancelled, always, nil},
		{"cancelled", cancelled, never, context.Canceled},
		{"deadline", expired, never, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			_, err := f.WaitFor(tt.ctx, tt.pred)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("WaitFor error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFake(t)
	api := newClient(f, slackfake.DefaultToken)
	ctx := testCtx(t)
	const workers, each = 8, 10

	waited := make(chan error, 1)
	go func() {
		_, err := f.WaitFor(ctx, slackfake.HasCalls("chat.postMessage", workers*each))
		waited <- err
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				if _, _, err := api.PostMessageContext(ctx, "C1", text("x")); err != nil {
					errs <- err
				}
				_ = f.Messages("C1") // readers race with writers under -race
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("post: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}

	calls := f.Calls()
	if len(calls) != workers*each {
		t.Fatalf("recorded %d calls, want %d", len(calls), workers*each)
	}
	for i, c := range calls {
		if c.Seq != i+1 {
			t.Fatalf("call %d has Seq %d", i, c.Seq)
		}
		if i > 0 && c.TS <= calls[i-1].TS {
			t.Fatalf("ts not increasing with Seq: %q after %q", c.TS, calls[i-1].TS)
		}
	}
	if n := len(f.Messages("C1")); n != workers*each {
		t.Errorf("stored %d messages, want %d", n, workers*each)
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compacting %q: %v", raw, err)
	}
	return b.String()
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}
