package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const (
	testSecret   = "8f742231b10e8888abcd99yyyzzz85a5"
	testChannel  = "C0ROTATE"
	testAnnounce = "C0ANNOUNCE"
	alice        = "U01ALICE"
	bob          = "U02BOB"
	pasted       = "rk_live_PASTED-secret-value-0042"
)

// stubBot is a minimal Slack app behind the console: it verifies every
// request's signature with slack-go's verifier, parses it with slack-go's
// parsers (as rotary's bot does), records it, and answers the way a bot
// would, calling the console's Web API stand-in with slack-go's client.
type stubBot struct {
	t   *testing.T
	api *slack.Client

	mu           sync.Mutex
	commands     []slack.SlashCommand
	interactions []slack.InteractionCallback
	// status, when set, is answered to every request instead.
	status int
}

func (b *stubBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, testSecret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	b.mu.Lock()
	status := b.status
	b.mu.Unlock()
	if status != 0 {
		http.Error(w, "stub failure", status)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch r.URL.Path {
	case pathCommands:
		b.command(w, r)
	case pathInteractions:
		b.interaction(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (b *stubBot) command(w http.ResponseWriter, r *http.Request) {
	sc, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.commands = append(b.commands, sc)
	b.mu.Unlock()
	switch sc.Text {
	case "open":
		_, _, err := b.api.PostMessage(sc.ChannelID, slack.MsgOptionText("Request R-1", false), slack.MsgOptionBlocks(
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*Request R-1* by <@"+sc.UserID+">", false, false), nil, nil),
			slack.NewActionBlock(blocks.BlockDecision,
				slack.NewButtonBlockElement(blocks.ActionApprove, "R-1", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).
					WithConfirm(slack.NewConfirmationBlockObject(
						slack.NewTextBlockObject(slack.PlainTextType, "Approve this rotation?", false, false),
						slack.NewTextBlockObject(slack.MarkdownType, "It starts *now*.", false, false),
						slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false),
						slack.NewTextBlockObject(slack.PlainTextType, "Not yet", false, false))).
					WithStyle(slack.StylePrimary),
				slack.NewButtonBlockElement(blocks.ActionDeny, "R-1", slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)),
				slack.NewButtonBlockElement(blocks.ActionPrompt, "R-1|paste_key", slack.NewTextBlockObject(slack.PlainTextType, "Paste key", false, false)),
			)))
		if err != nil {
			b.t.Errorf("stub bot: post: %v", err)
		}
		writeJSON(w, http.StatusOK, slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: "Opened *R-1*."})
	case "announce":
		if _, _, err := b.api.PostMessage(testAnnounce, slack.MsgOptionText("<!channel> emergency rotation of *jwt*", false)); err != nil {
			b.t.Errorf("stub bot: post: %v", err)
		}
		w.WriteHeader(http.StatusOK)
	case "everyone":
		writeJSON(w, http.StatusOK, slack.Msg{ResponseType: slack.ResponseTypeInChannel, Text: "visible to all"})
	case "silent":
		w.WriteHeader(http.StatusOK)
	default:
		writeJSON(w, http.StatusOK, slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: "You said: " + sc.Text})
	}
}

func (b *stubBot) interaction(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ic slack.InteractionCallback
	if err := json.Unmarshal([]byte(r.PostForm.Get("payload")), &ic); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.interactions = append(b.interactions, ic)
	b.mu.Unlock()
	switch ic.Type {
	case slack.InteractionTypeBlockActions:
		a := ic.ActionCallback.BlockActions[0]
		switch a.ActionID {
		case blocks.ActionApprove:
			if _, err := b.api.PostEphemeral(ic.Channel.ID, ic.User.ID, slack.MsgOptionText("You opened this request, so you can't approve it.", false)); err != nil {
				b.t.Errorf("stub bot: ephemeral: %v", err)
			}
		case blocks.ActionDeny:
			if _, err := b.api.OpenView(ic.TriggerID, blocks.DenyModal("R-1")); err != nil {
				b.t.Errorf("stub bot: open view: %v", err)
			}
		case blocks.ActionPrompt:
			if _, err := b.api.OpenView(ic.TriggerID, blocks.PasteModal("R-1", "paste_key", "Paste the new key")); err != nil {
				b.t.Errorf("stub bot: open view: %v", err)
			}
		}
		w.WriteHeader(http.StatusOK)
	case slack.InteractionTypeViewSubmission:
		v := ic.View.State.Values
		if ic.View.CallbackID == blocks.CallbackDenyReason && v[blocks.BlockReason][blocks.ActionReason].Value == "bad" {
			writeJSON(w, http.StatusOK, slack.NewErrorsViewSubmissionResponse(map[string]string{blocks.BlockReason: "Say <why>, please."}))
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func (b *stubBot) lastInteraction() slack.InteractionCallback {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.interactions) == 0 {
		return slack.InteractionCallback{}
	}
	return b.interactions[len(b.interactions)-1]
}

func (b *stubBot) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.commands), len(b.interactions)
}

func (b *stubBot) fail(status int) {
	b.mu.Lock()
	b.status = status
	b.mu.Unlock()
}

// harness is a console in front of a stub bot, served on loopback.
type harness struct {
	t    *testing.T
	c    *Console
	bot  *stubBot
	url  string
	logs *bytes.Buffer
	mu   *sync.Mutex // guards logs
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newHarness(t *testing.T, edit ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, bot: &stubBot{t: t}, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	botSrv := httptest.NewServer(h.bot)
	t.Cleanup(botSrv.Close)
	cfg := Config{
		BotURL:        botSrv.URL,
		SigningSecret: secret.FromString(testSecret),
		Channels:      []Channel{{ID: testChannel, Name: "secret-rotations"}, {ID: testAnnounce, Name: "announcements"}},
		People: []Person{
			{ID: alice, Name: "Alice", Role: "requester", About: "opens <requests>"},
			{ID: bob, Name: "Bob", Role: "approver", About: "approves"},
		},
		Groups:   map[string][]string{"S0APPROVERS": {bob}},
		Commands: []string{"/rotate", "/rotate-jwt"},
		Guide:    []string{"Type /rotate open"},
		// Real time: the stub bot checks the signatures' timestamps against it.
		Now:      time.Now,
		Location: time.UTC,
		Log:      slog.New(slog.NewTextHandler(lockedWriter{h.mu, h.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h.c = c
	h.bot.api = slack.New(c.BotToken(), slack.OptionAPIURL(c.SlackAPIURL()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.url = "http://" + ln.Addr().String()
	return h
}

// call posts JSON to the console's API and decodes the answer.
func (h *harness) call(path string, in any, out any) int {
	h.t.Helper()
	b, _ := json.Marshal(in)
	resp, err := http.Post(h.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s answered %d %s: %v", path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (h *harness) mustCall(path string, in any, out any) {
	h.t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	b, _ := json.Marshal(in)
	resp, err := http.Post(h.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal(raw, &e)
		h.t.Fatalf("%s: HTTP %d: %s", path, resp.StatusCode, e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) state(as string) (State, string) {
	h.t.Helper()
	resp, err := http.Get(h.url + "/api/state?as=" + url.QueryEscape(as))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("state: HTTP %d %s", resp.StatusCode, raw)
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		h.t.Fatal(err)
	}
	return st, string(raw)
}

// find returns the first message (or reply) of the channel whose HTML
// contains substr.
func find(st State, channel, substr string) (MessageState, bool) {
	for _, ch := range st.Channels {
		if ch.ID != channel {
			continue
		}
		for _, m := range ch.Messages {
			if strings.Contains(m.HTML, substr) {
				return m, true
			}
			for _, r := range m.Replies {
				if strings.Contains(r.HTML, substr) {
					return r, true
				}
			}
		}
	}
	return MessageState{}, false
}

func (h *harness) command(as, text string) {
	h.t.Helper()
	h.mustCall("/api/command", commandIn{As: as, Channel: testChannel, Text: text}, nil)
}

func (h *harness) click(as string, m MessageState, actionID, value string) int {
	h.t.Helper()
	return h.call("/api/action", actionIn{As: as, Key: m.Key, BlockID: blocks.BlockDecision, ActionID: actionID, Value: value}, nil)
}

func TestCommandClickAndModal(t *testing.T) {
	h := newHarness(t)
	h.command(alice, "/rotate open")

	sc := h.bot.commands[0]
	if sc.UserID != alice || sc.UserName != "Alice" || sc.ChannelID != testChannel || sc.Command != "/rotate" || sc.Text != "open" || sc.TriggerID == "" || sc.TeamID == "" {
		t.Fatalf("the bot got %+v", sc)
	}

	st, _ := h.state(alice)
	eph, ok := find(st, testChannel, "Opened <strong>R-1</strong>.")
	if !ok || !eph.Ephemeral || eph.Command != "/rotate open" || eph.Author != "rotary" {
		t.Fatalf("alice does not see the ephemeral answer: %+v", st.Channels[0].Messages)
	}
	req, ok := find(st, testChannel, "Request R-1")
	if !ok || req.Ephemeral || req.TS == "" || !strings.Contains(req.HTML, `data-action-id="rotary_approve"`) || !strings.Contains(req.HTML, "@Alice") {
		t.Fatalf("the request message: %+v", req)
	}
	if eph.Seq < req.Seq {
		t.Errorf("the answer (seq %d) is shown before the message the bot posted first (seq %d)", eph.Seq, req.Seq)
	}
	if bobSt, _ := h.state(bob); len(bobSt.Channels[0].Messages) != 1 {
		t.Fatalf("bob sees %d messages, want only the request (not alice's ephemeral answer)", len(bobSt.Channels[0].Messages))
	}

	// Only buttons the message shows can be clicked.
	if code := h.click(alice, req, blocks.ActionApprove, "R-2"); code != http.StatusConflict {
		t.Errorf("a click on a button the message does not show: HTTP %d", code)
	}
	if code := h.call("/api/action", actionIn{As: alice, Key: "m:" + testChannel + ":1.0", BlockID: blocks.BlockDecision, ActionID: blocks.ActionApprove, Value: "R-1"}, nil); code != http.StatusConflict {
		t.Errorf("a click on a message that does not exist: HTTP %d", code)
	}
	if code := h.call("/api/action", actionIn{As: bob, Key: eph.Key, ActionID: "x"}, nil); code != http.StatusConflict {
		t.Errorf("a click on someone else's ephemeral message: HTTP %d", code)
	}
	if _, n := h.bot.counts(); n != 0 {
		t.Fatalf("refused clicks reached the bot (%d)", n)
	}

	// A click is a block_actions payload as Slack sends it.
	if code := h.click(alice, req, blocks.ActionApprove, "R-1"); code != http.StatusOK {
		t.Fatalf("click: HTTP %d", code)
	}
	ic := h.bot.lastInteraction()
	a := ic.ActionCallback.BlockActions
	if ic.Type != slack.InteractionTypeBlockActions || ic.User.ID != alice || ic.Channel.ID != testChannel || ic.Container.MessageTs != req.TS ||
		ic.Container.ChannelID != testChannel || ic.TriggerID == "" || len(a) != 1 || a[0].ActionID != blocks.ActionApprove ||
		a[0].Value != "R-1" || a[0].BlockID != blocks.BlockDecision || ic.Message.Timestamp != req.TS {
		t.Fatalf("the bot got %+v", ic)
	}
	st, _ = h.state(alice)
	if m, ok := find(st, testChannel, "can&#39;t approve"); !ok || !m.Ephemeral {
		t.Fatalf("alice does not see the refusal: %+v", st.Channels[0].Messages)
	}
	if st, _ := h.state(bob); len(st.Channels[0].Messages) != 1 {
		t.Fatal("bob sees alice's refusal")
	}

	// Deny opens a modal for the person who clicked, and only for them.
	h.click(bob, req, blocks.ActionDeny, "R-1")
	bobSt, _ := h.state(bob)
	if bobSt.Modal == nil || !strings.Contains(bobSt.Modal.HTML, "<textarea") || bobSt.Modal.Submit != "Deny" {
		t.Fatalf("bob's modal: %+v", bobSt.Modal)
	}
	if st, _ := h.state(alice); st.Modal != nil {
		t.Fatal("alice sees bob's modal")
	}
	viewID := bobSt.Modal.ViewID
	reason := func(v string) map[string]map[string]string {
		return map[string]map[string]string{blocks.BlockReason: {blocks.ActionReason: v}}
	}
	if code := h.call("/api/submit", submitIn{As: alice, ViewID: viewID, Values: reason("mine")}, nil); code != http.StatusConflict {
		t.Errorf("alice submitted bob's modal: HTTP %d", code)
	}
	if code := h.call("/api/submit", submitIn{As: bob, ViewID: viewID, Values: map[string]map[string]string{"x": {"y": "z"}}}, nil); code != http.StatusBadRequest {
		t.Errorf("a value for an input the modal does not have: HTTP %d", code)
	}
	_, before := h.bot.counts()
	var out submitOut
	h.mustCall("/api/submit", submitIn{As: bob, ViewID: viewID, Values: reason("  ")}, &out)
	if out.Closed || out.Errors[blocks.BlockReason] != requiredFieldError {
		t.Fatalf("an empty required input: %+v", out)
	}
	if _, after := h.bot.counts(); after != before {
		t.Fatal("an empty required input reached the bot (Slack refuses it in the client)")
	}
	h.mustCall("/api/submit", submitIn{As: bob, ViewID: viewID, Values: reason("bad")}, &out)
	if out.Closed || out.Errors[blocks.BlockReason] != "Say <why>, please." {
		t.Fatalf("the bot's errors: %+v", out)
	}
	if st, _ := h.state(bob); st.Modal == nil || st.Modal.Errors[blocks.BlockReason] != "Say <why>, please." {
		t.Fatalf("the modal does not keep the bot's errors: %+v", st.Modal)
	}
	h.mustCall("/api/submit", submitIn{As: bob, ViewID: viewID, Values: reason("launch freeze")}, &out)
	if !out.Closed {
		t.Fatalf("a good submission: %+v", out)
	}
	ic = h.bot.lastInteraction()
	if ic.Type != slack.InteractionTypeViewSubmission || ic.User.ID != bob || ic.View.CallbackID != blocks.CallbackDenyReason ||
		ic.View.PrivateMetadata != "R-1" || ic.View.State.Values[blocks.BlockReason][blocks.ActionReason].Value != "launch freeze" {
		t.Fatalf("the bot got %+v", ic.View)
	}
	if st, _ := h.state(bob); st.Modal != nil {
		t.Fatal("the modal stayed open after the bot accepted it")
	}
}

func TestModalClose(t *testing.T) {
	h := newHarness(t)
	h.command(alice, "/rotate open")
	st, _ := h.state(alice)
	req, _ := find(st, testChannel, "Request R-1")
	h.click(bob, req, blocks.ActionDeny, "R-1")
	st, _ = h.state(bob)
	_, before := h.bot.counts()
	var out submitOut
	h.mustCall("/api/close", closeIn{As: bob, ViewID: st.Modal.ViewID}, &out)
	if !out.Closed {
		t.Fatal("not closed")
	}
	if st, _ := h.state(bob); st.Modal != nil {
		t.Fatal("the modal is still open")
	}
	if _, after := h.bot.counts(); after != before {
		t.Fatal("the bot was told of a close it did not ask about (notify_on_close is off)")
	}
	if code := h.call("/api/close", closeIn{As: bob, ViewID: st.Modal.ViewID}, nil); code != http.StatusConflict {
		t.Fatalf("closing a closed modal: HTTP %d", code)
	}
}

// TestPastedSecretGoesOnlyToTheBot: the value typed into the paste modal
// reaches the bot's view_submission endpoint and nothing the console keeps,
// shows or logs.
func TestPastedSecretGoesOnlyToTheBot(t *testing.T) {
	h := newHarness(t)
	h.command(alice, "/rotate open")
	st, _ := h.state(alice)
	req, _ := find(st, testChannel, "Request R-1")
	if code := h.call("/api/action", actionIn{As: alice, Key: req.Key, BlockID: blocks.BlockDecision, ActionID: blocks.ActionPrompt, Value: "R-1|paste_key"}, nil); code != http.StatusOK {
		t.Fatalf("click: %d", code)
	}
	st, _ = h.state(alice)
	if st.Modal == nil || !strings.Contains(st.Modal.HTML, `type="password"`) || strings.Contains(st.Modal.HTML, "<textarea") {
		t.Fatalf("the paste modal does not mask its input: %+v", st.Modal)
	}
	var out submitOut
	h.mustCall("/api/submit", submitIn{As: alice, ViewID: st.Modal.ViewID, Values: map[string]map[string]string{blocks.BlockSecret: {blocks.ActionSecret: pasted}}}, &out)
	if !out.Closed {
		t.Fatalf("paste: %+v", out)
	}
	if got := h.bot.lastInteraction().View.State.Values[blocks.BlockSecret][blocks.ActionSecret].Value; got != pasted {
		t.Fatalf("the bot got %q", got)
	}
	for _, who := range []string{alice, bob} {
		if _, raw := h.state(who); strings.Contains(raw, pasted) {
			t.Errorf("the state of %s holds the pasted value", who)
		}
	}
	for _, r := range h.c.Slack().Raw() {
		if bytes.Contains(r, []byte(pasted)) {
			t.Error("the pasted value crossed the Slack Web API")
		}
	}
	h.mu.Lock()
	logs := h.logs.String()
	h.mu.Unlock()
	if strings.Contains(logs, pasted) {
		t.Error("the pasted value is in the console's log")
	}
	if !strings.Contains(logs, "modal submitted") {
		t.Errorf("the log does not record the submission at all (so this test proves nothing): %s", logs)
	}
}

func TestNotesAndAnswers(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Unavailable = []Unavailable{{Target: "database", Reason: "needs PostgreSQL"}}
	})
	h.command(alice, "/nope now")
	h.command(alice, "/rotate database")
	h.command(alice, "/rotate everyone")
	h.command(alice, "/rotate silent")
	h.bot.fail(http.StatusInternalServerError)
	h.command(alice, "/rotate help")

	st, _ := h.state(alice)
	for _, tc := range []struct {
		what, substr, author string
		ephemeral            bool
	}{
		{"unknown command", "<code class=\"md-code\">/nope</code> is not a valid command", authorSlack, true},
		{"unavailable target", "<strong>database</strong> is configured, but this console cannot play it: needs PostgreSQL", authorConsole, true},
		{"in-channel answer", "visible to all", "rotary", false},
		{"bot failure", "rotary answered <code class=\"md-code\">/rotate</code> with HTTP 500", authorConsole, true},
	} {
		m, ok := find(st, testChannel, tc.substr)
		if !ok || m.Author != tc.author || m.Ephemeral != tc.ephemeral {
			t.Errorf("%s: got %+v (found %v)", tc.what, m, ok)
		}
	}
	if n, _ := h.bot.counts(); n != 3 { // database, everyone, silent: /nope never reaches the app, the failed one is refused by the stub before it counts
		t.Errorf("the bot got %d commands, want 3", n)
	}
	bobSt, _ := h.state(bob)
	if _, ok := find(bobSt, testChannel, "visible to all"); !ok {
		t.Error("an in_channel answer is not visible to everyone")
	}
	if _, ok := find(bobSt, testChannel, "not a valid command"); ok {
		t.Error("bob sees alice's note")
	}
}

func TestBroadcastMention(t *testing.T) {
	h := newHarness(t)
	h.command(alice, "/rotate announce")
	st, _ := h.state(bob)
	m, ok := find(st, testAnnounce, "@channel")
	if !ok || !strings.Contains(m.HTML, `<span class="mention mention-broadcast">@channel</span>`) {
		t.Fatalf("the channel-wide notice: %+v", st.Channels)
	}
}

func TestGuard(t *testing.T) {
	h := newHarness(t)
	req := func(method, path, host, origin, ctype, body string) *http.Response {
		t.Helper()
		r, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			r.Host = host
		}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	okCmd := `{"as":"U01ALICE","channel":"C0ROTATE","text":"/rotate hi"}`
	for _, tc := range []struct {
		name                              string
		method, path, host, origin, ctype string
		body                              string
		want                              int
	}{
		{"page", "GET", "/", "", "", "", "", http.StatusOK},
		{"page by name", "GET", "/", "localhost:1", "", "", "", http.StatusOK},
		{"rebound host name", "GET", "/", "evil.example:80", "", "", "", http.StatusMisdirectedRequest},
		{"rebound host name, API", "GET", "/api/state?as=U01ALICE", "evil.example", "", "", "", http.StatusMisdirectedRequest},
		{"cross-origin write", "POST", "/api/command", "", "http://evil.example", "application/json", okCmd, http.StatusForbidden},
		{"form post", "POST", "/api/command", "", "", "application/x-www-form-urlencoded", okCmd, http.StatusUnsupportedMediaType},
		{"same-origin write", "POST", "/api/command", "", "same", "application/json", okCmd, http.StatusOK},
		{"unknown field", "POST", "/api/command", "", "", "application/json", `{"as":"U01ALICE","channel":"C0ROTATE","text":"/rotate x","user":"U1"}`, http.StatusBadRequest},
		{"unknown person", "POST", "/api/command", "", "", "application/json", `{"as":"U0NOBODY","channel":"C0ROTATE","text":"/rotate x"}`, http.StatusBadRequest},
		{"unknown channel", "POST", "/api/command", "", "", "application/json", `{"as":"U01ALICE","channel":"C0NOPE","text":"/rotate x"}`, http.StatusBadRequest},
		{"not a command", "POST", "/api/command", "", "", "application/json", `{"as":"U01ALICE","channel":"C0ROTATE","text":"hello"}`, http.StatusBadRequest},
		{"state of nobody", "GET", "/api/state?as=U0NOBODY", "", "", "", "", http.StatusBadRequest},
		{"static file", "GET", "/static/app.js", "", "", "", "", http.StatusOK},
		{"icon", "GET", "/favicon.ico", "", "", "", "", http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := tc.origin
			if origin == "same" {
				origin = h.url
			}
			resp := req(tc.method, tc.path, tc.host, origin, tc.ctype, tc.body)
			if resp.StatusCode != tc.want {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusMisdirectedRequest && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("no Content-Security-Policy: %v", resp.Header)
			}
		})
	}
}

func TestPage(t *testing.T) {
	h := newHarness(t)
	resp, err := http.Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	for _, want := range []string{
		`id="as-U01ALICE" value="U01ALICE" data-name="Alice" checked`,
		`<label for="as-U02BOB">`,
		`data-channel="C0ROTATE" data-name="secret-rotations" aria-current="true"`,
		`<dd>opens &lt;requests&gt;</dd>`,
		`<li>Type /rotate open</li>`,
		`<code>/rotate-jwt</code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "SIMULATED") {
		t.Error("inline script, or a SIMULATED label the config did not ask for")
	}
}

// TestEvents: the event stream announces every change with a newer
// version, and ends when the console shuts down.
func TestEvents(t *testing.T) {
	h := newHarness(t)
	resp, err := http.Get(h.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- v
			}
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case v, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			return v
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return ""
	}
	first := next()
	h.command(alice, "/rotate open") // a Web API call and a local answer
	if second := next(); second == first {
		t.Fatalf("the change event repeats version %s", first)
	}
	h.c.stopStreams()
	for range events { // drains until the server ends the stream
	}
}

func TestNewValidates(t *testing.T) {
	good := Config{
		BotURL: "http://127.0.0.1:1", SigningSecret: secret.FromString("s"), Channels: []Channel{{ID: "C1", Name: "c"}},
		People: []Person{{ID: "U1", Name: "A"}}, Commands: []string{"/rotate"},
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"bot URL", func(c *Config) { c.BotURL = "127.0.0.1:1" }, "BotURL"},
		{"signing secret", func(c *Config) { c.SigningSecret = secret.Value{} }, "SigningSecret"},
		{"channels", func(c *Config) { c.Channels = nil }, "no channel"},
		{"people", func(c *Config) { c.People = nil }, "no people"},
		{"duplicate person", func(c *Config) { c.People = append(c.People, c.People[0]) }, "listed twice"},
		{"commands", func(c *Config) { c.Commands = nil }, "no slash commands"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error about %s", err, tc.want)
			}
		})
	}
	c, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestSigner(t *testing.T) {
	s := signer{secret: secret.FromString(testSecret), now: time.Now}
	body := []byte("command=%2Frotate&text=openai")
	verify := func(h http.Header, body []byte) error {
		sv, err := slack.NewSecretsVerifier(h, testSecret)
		if err != nil {
			return err
		}
		_, _ = sv.Write(body)
		return sv.Ensure()
	}
	h := s.headers(body)
	if err := verify(h, body); err != nil {
		t.Fatalf("slack-go refuses the signature: %v", err)
	}
	if err := verify(h, []byte("command=%2Frotate&text=stripe")); err == nil {
		t.Fatal("a tampered body verified")
	}
	old := signer{secret: secret.FromString(testSecret), now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}
	if err := verify(old.headers(body), body); err == nil {
		t.Fatal("a stale timestamp verified: the signer must stamp each request fresh")
	}
	if got := slackEscape(`a <b> & "c"`); got != `a &lt;b&gt; &amp; "c"` {
		t.Errorf("slackEscape: %q", got)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:8780": true, "localhost:8780": true, "[::1]:8780": true, "localhost": true, "127.0.0.2": true,
		"example.com": false, "evil.localhost.example:80": false, "10.0.0.1:8780": false, "": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v", host, got)
		}
	}
}
