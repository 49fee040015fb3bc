package bot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// The fixture's identities. They are fake Slack IDs, so blocks renders them as mentions.
const (
	signingSecret   = "8f742231b10e8888abcd99yyyzzz85a5"
	requestChannel  = "C0REQUEST"
	announceChannel = "C0ANNOUNCE"
	requester       = "UREQUESTER"
	approver        = "UAPPROVER"
	groupApprover   = "UGROUPIE"
	outsider        = "UOUTSIDER"
	platformGroup   = "SPLATFORM"
	// waitLimit bounds every wait on something signalled; it is never slept.
	waitLimit = 10 * time.Second
)

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// clock is the injected clock of the service, the directory and the outbox.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// records decodes the JSON log lines.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// find returns the log records with msg.
func (l *lockedBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range l.records(t) {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// promptAnswer is one call of fakePrompts.Answer. The value is kept as
// secret.Value, as the executor would.
type promptAnswer struct {
	requestID, promptID, user string
	v                         secret.Value
}

// fakePrompts stands in for the executor's prompt side where the executor
// is not the subject: it holds the open prompts and records answers.
type fakePrompts struct {
	mu      sync.Mutex
	open    map[string]rotators.Prompt // blocks.PromptRef(request, prompt) -> prompt
	answers []promptAnswer
	err     error // returned by Answer when set
}

func (p *fakePrompts) PromptOpen(requestID, promptID string) (rotators.Prompt, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.open[blocks.PromptRef(requestID, promptID)]
	return pr, ok
}

func (p *fakePrompts) Answer(_ context.Context, requestID, promptID, user string, v secret.Value) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers = append(p.answers, promptAnswer{requestID, promptID, user, v})
	return p.err
}

// MayAnswer lets everyone answer: audience checks are the executor's and
// are tested there and end to end.
func (p *fakePrompts) MayAnswer(string, string, string) error { return nil }

func (p *fakePrompts) set(requestID string, pr rotators.Prompt) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		p.open = map[string]rotators.Prompt{}
	}
	p.open[blocks.PromptRef(requestID, pr.ID)] = pr
}

func (p *fakePrompts) got() []promptAnswer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]promptAnswer(nil), p.answers...)
}

// harness wires the real store, service, directory, slack-go client and
// slackfake to a Bot. Only Prompts is a test double.
type harness struct {
	t       testing.TB
	path    string
	store   *boltstore.Store
	closed  bool
	svc     *approvals.Service
	fake    *slackfake.Server
	api     *slack.Client
	clock   *clock
	logs    *lockedBuffer
	prompts *fakePrompts
	bot     *Bot
	mux     *http.ServeMux
	// announce is the bot's AnnounceChannel; "" turns announcements off.
	announce string
	ids      atomic.Int64
	refs     atomic.Int64
}

type option func(*harness)

func withoutAnnouncements() option { return func(h *harness) { h.announce = "" } }

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	h := &harness{
		t:        t,
		path:     filepath.Join(t.TempDir(), "rotary.db"),
		clock:    &clock{t: t0},
		logs:     &lockedBuffer{},
		prompts:  &fakePrompts{},
		announce: announceChannel,
	}
	for _, o := range opts {
		o(h)
	}
	h.fake = slackfake.New()
	t.Cleanup(h.fake.Close)
	h.fake.SetGroupMembers(platformGroup, groupApprover)
	h.api = slack.New(slackfake.DefaultToken, slack.OptionAPIURL(h.fake.APIURL()))
	h.open()
	t.Cleanup(func() {
		// Ephemeral replies still in flight must finish before the fake closes.
		h.bot.Wait()
		h.closeStore()
	})
	return h
}

// open opens the state file and builds the service and the bot on it (again,
// after closeStore, to simulate a restart).
func (h *harness) open() {
	h.t.Helper()
	store, err := boltstore.Open(h.path, boltstore.Options{NoSync: true, Now: h.clock.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store, h.closed = store, false
	h.svc = approvals.NewService(approvals.Deps{
		Store: store,
		Policy: approvals.Policy{TTL: time.Hour, DefaultEnv: "prod", Targets: map[string]approvals.Target{
			"openai": {Name: "openai", Kind: "apikey", Approvers: map[string]approvals.Approvers{
				"prod":    {Users: []string{approver}, Groups: []string{platformGroup}},
				"staging": {Users: []string{approver}},
			}},
			"stripe": {Name: "stripe", Kind: "apikey", Approvers: map[string]approvals.Approvers{
				"prod": {Users: []string{approver}},
			}},
		}},
		Dir:   NewDirectory(h.api, []string{platformGroup}, h.clock.Now),
		Now:   h.clock.Now,
		NewID: func() string { return fmt.Sprintf("R-T%05d", h.ids.Add(1)) },
		Log:   slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	h.bot = New(Config{
		SigningSecret:   secret.FromString(signingSecret),
		Slack:           h.api,
		Approvals:       h.svc,
		Runs:            store,
		Prompts:         h.prompts,
		Outbox:          store,
		RequestChannel:  requestChannel,
		AnnounceChannel: h.announce,
		Hints: blocks.Hints{
			Targets: []string{"openai", "stripe"},
			Envs:    map[string][]string{"openai": {"prod", "staging"}, "stripe": {"prod"}},
		},
		Now:    h.clock.Now,
		Log:    slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NewRef: func() string { return fmt.Sprintf("REF-%d", h.refs.Add(1)) },
	})
	h.mux = http.NewServeMux()
	h.bot.Routes(h.mux)
}

func (h *harness) closeStore() {
	h.t.Helper()
	if h.closed {
		return
	}
	h.closed = true
	if err := h.store.Close(); err != nil {
		h.t.Fatal(err)
	}
}

// restart closes the state file and builds a new service and bot on it,
// as a process restart would. The Slack workspace (the fake) stays.
func (h *harness) restart() {
	h.t.Helper()
	h.bot.Wait()
	h.closeStore()
	h.open()
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// sign returns the headers Slack sends: the v0 HMAC-SHA256 of
// "v0:<ts>:<body>" in hex, under the given signing secret.
func sign(key, body string, ts time.Time) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	hd := http.Header{}
	hd.Set("X-Slack-Request-Timestamp", stamp)
	hd.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	hd.Set("Content-Type", "application/x-www-form-urlencoded")
	return hd
}

// serve sends one request through the bot's routes and waits for the
// ephemeral replies it started.
func (h *harness) serve(path, body string, hd http.Header) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequestWithContext(testCtx(h.t), http.MethodPost, path, strings.NewReader(body))
	r.Header = hd
	w := httptest.NewRecorder()
	h.mux.ServeHTTP(w, r)
	h.bot.Wait()
	return w
}

// signedPost sends a correctly signed request.
func (h *harness) signedPost(path, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.serve(path, body, sign(signingSecret, body, time.Now()))
}

// commandResponse is a slash command's JSON answer.
type commandResponse struct {
	ResponseType string            `json:"response_type"`
	Text         string            `json:"text"`
	Blocks       []json.RawMessage `json:"blocks"`
}

// command sends a signed slash command and decodes the answer.
func (h *harness) command(user, command, text string) commandResponse {
	h.t.Helper()
	body := url.Values{
		"command": {command}, "text": {text}, "user_id": {user}, "channel_id": {requestChannel},
		"team_id": {slackfake.TeamID}, "trigger_id": {"trig-cmd"}, "response_url": {"https://hooks.slack.invalid/x"},
	}.Encode()
	w := h.signedPost("/slack/commands", body)
	if w.Code != http.StatusOK {
		h.t.Fatalf("%s %s: HTTP %d %s", command, text, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("%s %s: Content-Type %q", command, text, ct)
	}
	var resp commandResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		h.t.Fatalf("%s %s: answer is not JSON: %s", command, text, w.Body)
	}
	return resp
}

// interact sends a signed interaction payload.
func (h *harness) interact(payload any) *httptest.ResponseRecorder {
	h.t.Helper()
	p, err := json.Marshal(payload)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.signedPost("/slack/interactions", url.Values{"payload": {string(p)}}.Encode())
}

func clickPayload(user, actionID, value string) map[string]any {
	return map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user},
		"trigger_id": "trig-" + actionID,
		"channel":    map[string]any{"id": requestChannel},
		"container":  map[string]any{"type": "message", "channel_id": requestChannel},
		"actions":    []map[string]any{{"action_id": actionID, "block_id": "b", "type": "button", "value": value}},
	}
}

func submitPayload(user, callbackID, metadata, block, action, value string) map[string]any {
	return map[string]any{
		"type": "view_submission",
		"user": map[string]any{"id": user},
		"view": map[string]any{
			"id":               "VFAKE00001",
			"callback_id":      callbackID,
			"private_metadata": metadata,
			"state": map[string]any{"values": map[string]any{
				block: map[string]any{action: map[string]any{"type": "plain_text_input", "value": value}},
			}},
		},
	}
}

// openRequest opens a pending request through the service.
func (h *harness) openRequest(target string) *approvals.Request {
	h.t.Helper()
	r, err := h.svc.Open(testCtx(h.t), approvals.OpenInput{Target: target, Requester: requester, Reason: "quarterly rotation", Channel: requestChannel})
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) get(id string) *approvals.Request {
	h.t.Helper()
	r, err := h.svc.Get(testCtx(h.t), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// deliver runs one outbox pass and fails the test on error.
func (h *harness) deliver() {
	h.t.Helper()
	if err := h.bot.DeliverDue(testCtx(h.t)); err != nil {
		h.t.Fatalf("deliver: %v", err)
	}
}

// heads returns the oldest queued entry of every request, due or not.
func (h *harness) heads() []approvals.OutboxEntry {
	h.t.Helper()
	es, err := h.store.OutboxDue(testCtx(h.t), t0.Add(1000*time.Hour), 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

func (h *harness) depth() int {
	h.t.Helper()
	n, err := h.store.OutboxDepth(testCtx(h.t))
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// slackCalls are the recorded calls that are not lookups (the directory's
// usergroups.users.list).
func (h *harness) slackCalls() []slackfake.Call {
	var out []slackfake.Call
	for _, c := range h.fake.Calls() {
		if c.Method != "usergroups.users.list" {
			out = append(out, c)
		}
	}
	return out
}

// assertNoLeak fails if value appears in any log line or any Slack traffic.
func (h *harness) assertNoLeak(value string) {
	h.t.Helper()
	if strings.Contains(h.logs.String(), value) {
		h.t.Errorf("the value appears in the logs:\n%s", h.logs)
	}
	for _, b := range h.fake.Raw() {
		if bytes.Contains(b, []byte(value)) {
			h.t.Errorf("the value crossed the wire to Slack: %s", b)
		}
	}
}
