package main

// End-to-end scenarios of the spine: the real HTTP handlers, bbolt file,
// approvals service, executor and apikey rotator, driven exactly as Slack
// drives them (signed form posts), against fakes only at the true edge:
// the Slack Web API (bot/slackfake), Secret Manager over real gRPC
// (gsmfake), the OpenAI Admin API (apikeytest) and client-go's fake
// clientsets with a simulated controller (kubesim).

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/apikey/apikeytest"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const (
	e2eWait        = 30 * time.Second
	signingSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	adminKey       = "sk-admin-TESTADMINKEY-000"
	requestChannel = "C0ROTATE"
	announce       = "C0ANNOUNCE"
	requester      = "UREQUESTER"
	approver       = "UAPPROVER"
	approver2      = "UAPPROVER2"
	outsider       = "UOUTSIDER"
	oldKeyValue    = "sk-proj-ORIGINAL-KEY-value-0001"
	stripeOldValue = "rk_live_ORIGINAL_stripe_0001"
	pastedValue    = "rk_live_PASTED_new_stripe_key_9f8e7d"
	openaiProject  = "proj_aivo"
)

// manualClock is the app's injected clock: real time plus an offset the
// test moves (to expire requests without waiting an hour). It runs on real
// time because the simulated operators stamp their status with it, as real
// ones do.
type manualClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}
func (c *manualClock) Advance(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }

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

type e2e struct {
	t         *testing.T
	dir       string
	statePath string
	cfg       *Config
	slack     *slackfake.Server
	gsm       *gsmfake.Server
	openai    *apikeytest.OpenAI
	cs        *fake.Clientset
	sim       *kubesim.Sim
	kube      *kube.Client
	dyn       dynamic.Interface
	clock     *manualClock
	logs      *lockedBuffer
	ids       atomic.Int64
	// extraEnv adds credentials a test's targets need.
	extraEnv map[string]string
	// adminLn, when set, serves the admin endpoints (audit export).
	adminLn net.Listener

	app    *app
	url    string
	cancel context.CancelFunc
	done   chan error
}

const testConfig = `
listen: "127.0.0.1:0"
state_path: %q
slack:
  request_channel: C0ROTATE
  announce_channel: C0ANNOUNCE
request_ttl: 1h
default_env: prod
targets:
  openai:
    kind: apikey
    approvers:
      prod: {users: [UAPPROVER, UAPPROVER2]}
    provider: openai
    namespace: aivo-{env}
    secret_manager:
      project: aivo-platform
      secret: aivo-{env}-openai-api-key
    external_secret: external-services
    deployments: [ai-orchestrator]
    rollout_timeout: 5s
    openai: {api_base: %q, project_id: proj_aivo, admin_key_env: OPENAI_ADMIN_KEY}
  stripe:
    kind: apikey
    approvers:
      prod: {users: [UAPPROVER]}
    provider: manual
    namespace: aivo-{env}
    secret_manager:
      project: aivo-platform
      secret: aivo-{env}-stripe-secret-key
    external_secret: external-services
    deployments: [billing-svc]
    manual: {dashboard_url: "https://dashboard.stripe.com/apikeys"}
`

func newE2E(t *testing.T) *e2e {
	t.Helper()
	h := &e2e{t: t, dir: t.TempDir(), clock: &manualClock{}, logs: &lockedBuffer{}}
	h.statePath = filepath.Join(h.dir, "rotary.db")

	h.slack = slackfake.New()
	t.Cleanup(h.slack.Close)
	for _, u := range []string{requester, approver, approver2, outsider} {
		h.slack.AddUser(u, strings.ToLower(u))
	}

	var err error
	if h.gsm, err = gsmfake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.gsm.Close)
	ctx := context.Background()
	for secretName, value := range map[string]string{
		"projects/aivo-platform/secrets/aivo-prod-openai-api-key":    oldKeyValue,
		"projects/aivo-platform/secrets/aivo-prod-stripe-secret-key": stripeOldValue,
	} {
		h.seedSecret(t, secretName, value)
	}

	h.openai = apikeytest.NewOpenAI(apikeytest.OpenAIOptions{AdminKey: adminKey, ProjectID: openaiProject})
	t.Cleanup(h.openai.Close)
	// The key in use was made by an earlier rotation.
	h.openai.AddServiceAccount("rotary:openai:prod:R-EARLIER1")

	labels := map[string]string{"app": "ai-orchestrator"}
	h.cs = fake.NewClientset(
		kubesim.NewDeployment("aivo-prod", "ai-orchestrator", 2, labels),
		kubesim.NewRunningPod("aivo-prod", "ai-orchestrator-abc", labels),
		kubesim.NewDeployment("aivo-prod", "billing-svc", 1, map[string]string{"app": "billing-svc"}),
		kubesim.NewRunningPod("aivo-prod", "billing-svc-abc", map[string]string{"app": "billing-svc"}),
	)
	dyn := kubesim.NewDynamicClient(kubesim.NewExternalSecret("aivo-prod", "external-services", "1h"))
	h.dyn = dyn
	h.sim = kubesim.New(h.cs, dyn, kubesim.Options{Now: h.clock.Now})
	simCtx, stopSim := context.WithCancel(ctx)
	t.Cleanup(stopSim)
	go func() { _ = h.sim.Start(simCtx) }()
	h.kube = kube.New(h.cs, dyn, kube.Options{Now: h.clock.Now, PollInterval: 10 * time.Millisecond})

	cfgPath := filepath.Join(h.dir, "rotary.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, testConfig, h.statePath, h.openai.URL()), 0o600); err != nil {
		t.Fatal(err)
	}
	if h.cfg, err = loadValid(cfgPath); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *e2e) getenv(k string) string {
	if v, ok := h.extraEnv[k]; ok {
		return v
	}
	return map[string]string{
		envSigningSecret:   signingSecret,
		envBotToken:        slackfake.DefaultToken,
		envSlackAPIURL:     h.slack.URL(),
		envGSMEmulator:     h.gsm.Addr(),
		"OPENAI_ADMIN_KEY": adminKey,
	}[k]
}

// start runs a rotary process (in-process) on the state file.
func (h *e2e) start() {
	h.t.Helper()
	immediate := func(time.Duration) <-chan time.Time { c := make(chan time.Time, 1); c <- time.Time{}; return c }
	env := appEnv{
		getenv: h.getenv,
		now:    h.clock.Now,
		newID:  func() string { return fmt.Sprintf("R-TEST%04d", h.ids.Add(1)) },
		rand:   strings.NewReader(strings.Repeat("deterministic randomness ", 1000)),
		http:   &http.Client{Timeout: 10 * time.Second},
		log:    slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		kube:   h.kube,
		after:  immediate,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	env.listener = ln
	env.adminListener = h.adminLn
	a, err := newApp(context.Background(), h.cfg, env)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.app, h.cancel, h.done, h.url = a, cancel, make(chan error, 1), "http://"+ln.Addr().String()
	go func() { h.done <- a.run(ctx) }()
	h.t.Cleanup(h.stop)
}

// stop shuts the process down as SIGTERM does.
func (h *e2e) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("rotary run: %v", err)
	}
	h.cancel = nil
}

func sign(body string, ts time.Time) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(signingSecret))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	hd := http.Header{}
	hd.Set("X-Slack-Request-Timestamp", stamp)
	hd.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	hd.Set("Content-Type", "application/x-www-form-urlencoded")
	return hd
}

func (h *e2e) send(path, body string, hd http.Header) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header = hd
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// command sends a signed slash command and returns the ephemeral text.
func (h *e2e) command(user, command, text string) string {
	h.t.Helper()
	form := url.Values{"command": {command}, "text": {text}, "user_id": {user}, "channel_id": {requestChannel},
		"team_id": {"T0FAKE"}, "trigger_id": {"trig-cmd"}, "response_url": {"https://hooks.slack.invalid/x"}}
	body := form.Encode()
	code, resp := h.send("/slack/commands", body, sign(body, time.Now()))
	if code != http.StatusOK {
		h.t.Fatalf("%s %s: HTTP %d %s", command, text, code, resp)
	}
	var msg struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(resp), &msg); err != nil || msg.ResponseType != "ephemeral" {
		h.t.Fatalf("command response not an ephemeral message: %s", resp)
	}
	return msg.Text
}

func (h *e2e) interact(payload any) (int, string) {
	h.t.Helper()
	p, _ := json.Marshal(payload)
	body := url.Values{"payload": {string(p)}}.Encode()
	return h.send("/slack/interactions", body, sign(body, time.Now()))
}

var triggers atomic.Int64

func (h *e2e) click(user, actionID, value string) {
	h.t.Helper()
	code, body := h.interact(map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user},
		"trigger_id": fmt.Sprintf("trig-%d", triggers.Add(1)),
		"channel":    map[string]any{"id": requestChannel},
		"container":  map[string]any{"type": "message", "channel_id": requestChannel},
		"actions":    []map[string]any{{"action_id": actionID, "block_id": "b", "type": "button", "value": value}},
	})
	if code != http.StatusOK {
		h.t.Fatalf("click %s: HTTP %d %s", actionID, code, body)
	}
}

func (h *e2e) submit(user, callbackID, metadata, block, action, value string) (int, string) {
	return h.interact(map[string]any{
		"type": "view_submission",
		"user": map[string]any{"id": user},
		"view": map[string]any{
			"callback_id":      callbackID,
			"private_metadata": metadata,
			"state": map[string]any{"values": map[string]any{
				block: map[string]any{action: map[string]any{"type": "plain_text_input", "value": value}},
			}},
		},
	})
}

// waitCalls waits until pred holds over the recorded Slack calls.
func (h *e2e) waitCalls(what string, pred func([]slackfake.Call) bool) []slackfake.Call {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	calls, err := h.slack.WaitFor(ctx, pred)
	if err != nil {
		h.t.Fatalf("waiting for %s: %v\nlogs:\n%s", what, err, h.logs.String())
	}
	return calls
}

// rootPosted waits for the request's root message and returns its ts.
func (h *e2e) rootPosted(id string) string {
	h.t.Helper()
	var ts string
	h.waitCalls("root message of "+id, func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && !c.Failed && c.Channel == requestChannel && c.ThreadTS == "" && strings.Contains(string(c.Blocks), id) {
				ts = responseTS(c)
				return true
			}
		}
		return false
	})
	return ts
}

func responseTS(c slackfake.Call) string {
	var r struct {
		TS string `json:"ts"`
	}
	_ = json.Unmarshal(c.Response, &r)
	return r.TS
}

// threadReply waits for a thread reply containing substr.
func (h *e2e) threadReply(rootTS, substr string) slackfake.Call {
	h.t.Helper()
	var got slackfake.Call
	h.waitCalls("thread reply "+substr, func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.ThreadTS == rootTS && (strings.Contains(c.Text, substr) || strings.Contains(string(c.Blocks), substr)) {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

func (h *e2e) ephemeral(user, substr string) {
	h.t.Helper()
	h.waitCalls("ephemeral to "+user+": "+substr, func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postEphemeral" && c.User == user && strings.Contains(c.Text, substr) {
				return true
			}
		}
		return false
	})
}

func (h *e2e) request(id string) *approvals.Request {
	h.t.Helper()
	r, err := h.app.service.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// open sends /rotate TARGET and returns the new request's ID.
func (h *e2e) open(target string) (string, string) {
	h.t.Helper()
	text := h.command(requester, "/rotate", target+` --reason "quarterly rotation"`)
	if !strings.Contains(text, "Opened") {
		h.t.Fatalf("open %s: %s", target, text)
	}
	id := fmt.Sprintf("R-TEST%04d", h.ids.Load())
	return id, h.rootPosted(id)
}

// finished waits for the request's final thread reply and returns the request.
func (h *e2e) finished(id, rootTS string, want approvals.State) *approvals.Request {
	h.t.Helper()
	h.waitCalls("announcement of the end of "+id, func(cs []slackfake.Call) bool {
		r, err := h.app.service.Get(context.Background(), id)
		if err != nil || !r.State.Terminal() {
			return false
		}
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.Channel == announce && strings.Contains(c.Text, id) && strings.Contains(c.Text, endWord(r.State)) {
				return true
			}
		}
		return false
	})
	r := h.request(id)
	if r.State != want {
		h.t.Fatalf("request %s ended %s (%s), want %s\nlogs:\n%s", id, r.State, r.Outcome, want, h.logs.String())
	}
	return r
}

// endWord is a word the end-of-rotation announcement carries for each outcome.
func endWord(s approvals.State) string {
	switch s {
	case approvals.StateSucceeded:
		return "succeeded"
	case approvals.StateRolledBack:
		return "rolled back"
	}
	return "failed"
}

func (h *e2e) gsmVersions(secret string) []gsmfake.Version {
	return h.gsm.Versions("projects/aivo-platform/secrets/" + secret)
}

// assertNoLeak scans every Slack request and response, every log line and
// the bbolt file for every secret value the test produced.
func (h *e2e) assertNoLeak(extra ...string) {
	h.t.Helper()
	values := append([]string{oldKeyValue, stripeOldValue, adminKey, signingSecret}, extra...)
	values = append(values, h.openai.IssuedKeys()...)
	for _, p := range h.gsm.Payloads() {
		values = append(values, string(p))
	}
	var slackTraffic bytes.Buffer
	for _, r := range h.slack.Raw() {
		slackTraffic.Write(r)
		slackTraffic.WriteByte('\n')
	}
	state, err := os.ReadFile(h.statePath)
	if err != nil {
		h.t.Fatal(err)
	}
	logs := h.logs.String()
	for _, v := range values {
		if v == "" {
			continue
		}
		for name, hay := range map[string][]byte{"Slack traffic": slackTraffic.Bytes(), "logs": []byte(logs), "bbolt file": state} {
			if bytes.Contains(hay, []byte(v)) {
				h.t.Errorf("secret value %.12s… found in %s", v, name)
			}
		}
	}
}

func deployment(h *e2e, name string) *appsv1.Deployment {
	d, err := h.cs.AppsV1().Deployments("aivo-prod").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

var esGVR = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}

func TestE2EOpenAIHappyPath(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("openai")

	// The request is in the channel with both buttons; nothing has run.
	root, _ := h.slack.Message(requestChannel, rootTS)
	for _, want := range []string{blocks.ActionApprove, blocks.ActionDeny, "quarterly rotation", "openai"} {
		if !strings.Contains(string(root.Blocks), want) {
			t.Fatalf("root message lacks %q: %s", want, root.Blocks)
		}
	}
	if len(h.openai.Calls()) != 0 {
		t.Fatal("something ran before approval")
	}

	h.click(approver, blocks.ActionApprove, id)
	r := h.finished(id, rootTS, approvals.StateSucceeded)
	if r.DecidedBy != approver {
		t.Fatalf("decided by %s", r.DecidedBy)
	}
	if os.Getenv("E2E_DEBUG") != "" {
		t.Log(h.logs.String())
	}

	// Secret Manager: the new key is the only enabled version; the old one is disabled.
	vs := h.gsmVersions("aivo-prod-openai-api-key")
	if len(vs) != 2 || vs[0].State != gsmfake.StateDisabled || vs[1].State != gsmfake.StateEnabled {
		t.Fatalf("versions %+v", vs)
	}
	issued := h.openai.IssuedKeys()
	if len(issued) != 1 || string(vs[1].Payload) != issued[0] {
		t.Fatalf("GSM holds %q, provider issued %v", vs[1].Payload, issued)
	}
	// OpenAI: the new service account exists, the earlier one is revoked.
	accts := h.openai.ServiceAccounts()
	if len(accts) != 1 || !strings.HasSuffix(accts[0].Name, id) {
		t.Fatalf("service accounts after rotation: %+v", accts)
	}
	// Kubernetes: force-sync annotation and a kubectl-style restart.
	es, err := kubesimGet(h, "external-services")
	if err != nil {
		t.Fatal(err)
	}
	if es.GetAnnotations()["force-sync"] == "" {
		t.Fatalf("ExternalSecret not force-synced: %v", es.GetAnnotations())
	}
	if deployment(h, "ai-orchestrator").Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatal("deployment not restarted")
	}

	// Thread: one progress message, updated as steps advanced, ending all done.
	thread := h.slack.Thread(requestChannel, rootTS)
	var progress *slackfake.Message
	for i := range thread {
		if strings.Contains(string(thread[i].Blocks), "Secret Manager") {
			progress = &thread[i]
		}
	}
	if progress == nil || progress.Updates < 6 {
		t.Fatalf("progress message missing or not updated per step: %+v", progress)
	}
	if n := strings.Count(string(progress.Blocks), ":white_check_mark:"); n < 6 {
		t.Fatalf("progress shows %d done steps, want 6: %s", n, progress.Blocks)
	}
	// Root message: no buttons any more, outcome shown.
	root, _ = h.slack.Message(requestChannel, rootTS)
	if strings.Contains(string(root.Blocks), blocks.ActionApprove) || !strings.Contains(string(root.Blocks), "Rotated") {
		t.Fatalf("root message not updated to the outcome: %s", root.Blocks)
	}
	// Announcement channel: start and end.
	if n := len(h.slack.Messages(announce)); n != 2 {
		t.Fatalf("announcement channel has %d messages, want 2", n)
	}
	h.stop()
	h.assertNoLeak()
}

func TestE2EPolicyRefusals(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("openai")

	h.click(requester, blocks.ActionApprove, id)
	h.ephemeral(requester, "can't approve")
	h.click(outsider, blocks.ActionApprove, id)
	h.ephemeral(outsider, "not an approver")
	if r := h.request(id); r.State != approvals.StatePending {
		t.Fatalf("state %s after refused approvals", r.State)
	}
	// A second request for the same target is refused while one is open.
	if text := h.command(approver, "/rotate", "openai"); !strings.Contains(text, "already has an open request") {
		t.Fatalf("second request: %s", text)
	}
	// Bad input gets a specific answer.
	for in, want := range map[string]string{
		"nosuchthing":            "Unknown target",
		"openai --env qa":        "qa",
		"openai --force":         "--force",
		"status R-NOPE42":        "R-NOPE42",
		"":                       "/rotate",
		"cancel " + id + " more": "Usage",
	} {
		if text := h.command(approver, "/rotate", in); !strings.Contains(text, want) {
			t.Errorf("/rotate %q answered %q, want it to mention %q", in, text, want)
		}
	}
	// Only the requester can cancel.
	if text := h.command(approver, "/rotate", "cancel "+id); !strings.Contains(text, "Only the person who opened") {
		t.Fatalf("cancel by approver: %s", text)
	}
	if text := h.command(requester, "/rotate", "cancel "+id); !strings.Contains(text, "Cancelled") {
		t.Fatalf("cancel by requester: %s", text)
	}
	h.threadReply(rootTS, "cancel")
	// A late click on the cancelled request is refused and executes nothing.
	h.click(approver, blocks.ActionApprove, id)
	h.ephemeral(approver, "was cancelled")
	if r := h.request(id); r.State != approvals.StateCancelled || len(h.openai.Calls()) != 0 {
		t.Fatalf("state %s, provider calls %d", r.State, len(h.openai.Calls()))
	}
}

func TestE2EDenyWithReason(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("openai")
	h.click(approver, blocks.ActionDeny, id)
	h.waitCalls("deny modal", slackfake.HasCalls("views.open", 1))
	if code, body := h.submit(approver, blocks.CallbackDenyReason, id, blocks.BlockReason, blocks.ActionReason, "   "); !strings.Contains(body, "errors") || code != http.StatusOK {
		t.Fatalf("blank reason accepted: %d %s", code, body)
	}
	if code, body := h.submit(approver, blocks.CallbackDenyReason, id, blocks.BlockReason, blocks.ActionReason, "launch freeze <!channel>"); code != http.StatusOK || body != "" {
		t.Fatalf("deny submission: %d %s", code, body)
	}
	r := h.request(id)
	if r.State != approvals.StateDenied || r.DenyReason != "launch freeze <!channel>" {
		t.Fatalf("state %s reason %q", r.State, r.DenyReason)
	}
	reply := h.threadReply(rootTS, "denied")
	if !strings.Contains(reply.Text+string(reply.Blocks), "<@"+requester+">") {
		t.Fatalf("requester not told: %s", reply.Text)
	}
	h.waitCalls("root updated to denied", func(cs []slackfake.Call) bool {
		m, _ := h.slack.Message(requestChannel, rootTS)
		return strings.Contains(string(m.Blocks), "launch freeze") && !strings.Contains(string(m.Blocks), blocks.ActionApprove)
	})
	for _, c := range h.slack.Calls() {
		if strings.Contains(string(c.Raw), "<!channel>") {
			t.Fatalf("user text injected a channel mention: %s", c.Raw)
		}
	}
}

func TestE2EExpiry(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("openai")
	h.clock.Advance(time.Hour + time.Second)
	// The sweeper's work, run now rather than waiting for its ticker.
	if n, err := h.app.service.ExpireDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("expired %d: %v", n, err)
	}
	h.threadReply(rootTS, "expired")
	h.waitCalls("root shows expiry", func([]slackfake.Call) bool {
		m, _ := h.slack.Message(requestChannel, rootTS)
		return strings.Contains(string(m.Blocks), "xpired") && !strings.Contains(string(m.Blocks), blocks.ActionApprove)
	})
	h.click(approver, blocks.ActionApprove, id)
	h.ephemeral(approver, "expired")
}

func TestE2EConcurrentApprovalsRunOnce(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("openai")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { h.click([]string{approver, approver2}[i%2], blocks.ActionApprove, id) })
	}
	wg.Wait()
	h.finished(id, rootTS, approvals.StateSucceeded)
	if n := len(h.openai.IssuedKeys()); n != 1 {
		t.Fatalf("%d keys created: the rotation ran more than once", n)
	}
	approvedEvents := 0
	for _, e := range h.request(id).Events {
		if e.Action == string(approvals.StateApproved) {
			approvedEvents++
		}
	}
	if approvedEvents != 1 {
		t.Fatalf("%d approvals recorded", approvedEvents)
	}
}

func TestE2ESignatures(t *testing.T) {
	h := newE2E(t)
	h.start()
	body := url.Values{"command": {"/rotate"}, "text": {"openai"}, "user_id": {requester}}.Encode()

	forged := sign(body, time.Now())
	forged.Set("X-Slack-Signature", "v0="+strings.Repeat("ab", 32))
	stale := sign(body, time.Now().Add(-10*time.Minute))
	unsigned := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	tampered := sign(body, time.Now())
	for name, tc := range map[string]struct {
		body string
		hd   http.Header
	}{
		"forged": {body, forged}, "stale": {body, stale}, "unsigned": {body, unsigned},
		"tampered body": {strings.Replace(body, "openai", "stripe", 1), tampered},
	} {
		if code, _ := h.send("/slack/commands", tc.body, tc.hd); code != http.StatusUnauthorized {
			t.Errorf("%s request: HTTP %d, want 401", name, code)
		}
	}
	good := sign(body, time.Now())
	if code, _ := h.send("/slack/commands", body, good); code != http.StatusOK {
		t.Fatalf("valid request: %d", code)
	}
	if code, _ := h.send("/slack/commands", body, good); code != http.StatusUnauthorized {
		t.Fatalf("replayed request: HTTP %d, want 401", code)
	}
	big := strings.Repeat("a", 512<<10)
	if code, _ := h.send("/slack/interactions", big, sign(big, time.Now())); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: HTTP %d", code)
	}
	// Only the one valid request was processed.
	if open, _ := h.app.service.ListOpen(context.Background()); len(open) != 1 {
		t.Fatalf("%d requests opened", len(open))
	}
}

func TestE2EFailingStepRollsBack(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("openai")
	h.sim.FailNextRollout("aivo-prod", "ai-orchestrator")
	h.click(approver, blocks.ActionApprove, id)
	r := h.finished(id, rootTS, approvals.StateRolledBack)
	if !strings.Contains(r.Outcome, "restart") && !strings.Contains(strings.ToLower(r.Outcome), "rollout") {
		t.Fatalf("outcome does not name the failed step: %q", r.Outcome)
	}
	// The previous value is the newest version again; the new key is revoked.
	vs := h.gsmVersions("aivo-prod-openai-api-key")
	latest := vs[len(vs)-1]
	if string(latest.Payload) != oldKeyValue || latest.State != gsmfake.StateEnabled {
		t.Fatalf("latest version after rollback: %+v", latest)
	}
	accts := h.openai.ServiceAccounts()
	if len(accts) != 1 || accts[0].Name != "rotary:openai:prod:R-EARLIER1" {
		t.Fatalf("service accounts after rollback: %+v", accts)
	}
	h.threadReply(rootTS, "olled back")
	h.stop()
	h.assertNoLeak()
}

// TestE2EResumeAfterRestart stops rotary while Secret Manager hangs in the
// middle of the rotation and starts a new process on the same bbolt file:
// the rotation resumes and finishes exactly once.
func TestE2EResumeAfterRestart(t *testing.T) {
	h := newE2E(t)
	release := h.gsm.Stall("AddSecretVersion")
	h.start()
	id, rootTS := h.open("openai")
	h.click(approver, blocks.ActionApprove, id)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	if err := h.gsm.WaitStalled(ctx, "AddSecretVersion"); err != nil {
		t.Fatal(err)
	}
	h.stop() // the process goes away mid-step
	release()
	st, err := boltstore.Open(h.statePath, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run, err := st.LoadRun(context.Background(), id)
	_ = st.Close()
	if err != nil || run == nil || run.Phase != executor.PhaseForward {
		t.Fatalf("journal after stop: %+v %v", run, err)
	}

	h.start()
	h.finished(id, rootTS, approvals.StateSucceeded)
	// The key made before the restart was lost with the process: it was
	// revoked, a new one made, and only that one is stored and alive.
	accts := h.openai.ServiceAccounts()
	if len(accts) != 1 {
		t.Fatalf("service accounts: %+v", accts)
	}
	vs := h.gsmVersions("aivo-prod-openai-api-key")
	var enabled []gsmfake.Version
	for _, v := range vs {
		if v.State == gsmfake.StateEnabled {
			enabled = append(enabled, v)
		}
	}
	issued := h.openai.IssuedKeys()
	if len(enabled) != 1 || string(enabled[0].Payload) != issued[len(issued)-1] {
		t.Fatalf("enabled versions %+v; issued %d keys", enabled, len(issued))
	}
	finals := 0
	for _, c := range h.slack.CallsTo("chat.postMessage") {
		if c.Channel == announce && strings.Contains(c.Text, id) && strings.Contains(c.Text, "succeeded") {
			finals++
		}
	}
	if finals != 1 {
		t.Fatalf("%d end announcements", finals)
	}
	h.stop()
	h.assertNoLeak()
}

// TestE2EStripePastedKey: the manual provider asks the requester for the key
// in a modal; the value goes to Secret Manager and nowhere else.
func TestE2EStripePastedKey(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("stripe")
	h.click(approver, blocks.ActionApprove, id)
	h.threadReply(rootTS, "<@"+requester+">")
	ref := blocks.PromptRef(id, "paste_key")
	h.waitCalls("paste button", func([]slackfake.Call) bool {
		for _, m := range h.slack.Thread(requestChannel, rootTS) {
			if strings.Contains(string(m.Blocks), ref) {
				return true
			}
		}
		return false
	})
	// Only the requester may paste: anyone else is refused before a modal
	// invites them to, and a forged submission is refused too.
	h.click(approver, blocks.ActionPrompt, ref)
	h.ephemeral(approver, "Only the requester")
	if n := len(h.slack.CallsTo("views.open")); n != 0 {
		t.Fatalf("a paste modal was opened for the approver (%d views.open)", n)
	}
	if _, body := h.submit(approver, blocks.CallbackPasteSecret, ref, blocks.BlockSecret, blocks.ActionSecret, "rk_live_wrong_person"); !strings.Contains(body, "Only the requester") {
		t.Fatalf("approver's paste: %s", body)
	}
	h.pasteAndConfirmRevoked(t, id, rootTS, nil)
	vs := h.gsmVersions("aivo-prod-stripe-secret-key")
	if string(vs[len(vs)-1].Payload) != pastedValue || vs[0].State != gsmfake.StateDisabled {
		t.Fatalf("versions %+v", vs)
	}
	h.stop()
	h.assertNoLeak(pastedValue, "rk_live_wrong_person")
}

// TestE2EStripePasteAcrossRestart: the run waiting for the paste holds
// nothing in memory that a restart loses silently: after the restart the
// thread gets the prompt again, and the paste finishes the rotation once.
func TestE2EStripePasteAcrossRestart(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, rootTS := h.open("stripe")
	h.click(approver, blocks.ActionApprove, id)
	ref := blocks.PromptRef(id, "paste_key")
	// asked counts the thread's replies asking for the paste (not the later
	// "revoked" confirmation); ready says whether the progress message
	// offers the paste button.
	asked := func() (n int, ready bool) {
		for _, m := range h.slack.Thread(requestChannel, rootTS) {
			if strings.Contains(m.Text, "needs you") && strings.Contains(m.Text, "paste it here") {
				n++
			}
			ready = ready || strings.Contains(string(m.Blocks), ref)
		}
		return n, ready
	}
	h.waitCalls("paste prompt", func([]slackfake.Call) bool { n, ready := asked(); return n == 1 && ready })
	h.stop()

	h.start()
	h.waitCalls("paste prompt asked again", func([]slackfake.Call) bool { n, ready := asked(); return n == 2 && ready })
	h.pasteAndConfirmRevoked(t, id, rootTS, nil)
	if n, _ := asked(); n != 2 {
		t.Fatalf("the paste prompt was posted %d times, want 2 (once per process)", n)
	}
	vs := h.gsmVersions("aivo-prod-stripe-secret-key")
	if string(vs[len(vs)-1].Payload) != pastedValue {
		t.Fatalf("versions %+v", vs)
	}
	h.stop()
	h.assertNoLeak(pastedValue)
}

// pasteAndConfirmRevoked finishes a Stripe rotation waiting for its paste:
// the requester pastes pastedValue in the modal, afterPaste (if not nil)
// runs, then (revocation is manual) the approver confirms the old key was
// revoked.
func (h *e2e) pasteAndConfirmRevoked(t *testing.T, id, rootTS string, afterPaste func()) {
	t.Helper()
	ref := blocks.PromptRef(id, "paste_key")
	h.click(requester, blocks.ActionPrompt, ref)
	h.waitCalls("paste modal", slackfake.HasCalls("views.open", 1))
	if code, body := h.submit(requester, blocks.CallbackPasteSecret, ref, blocks.BlockSecret, blocks.ActionSecret, pastedValue); code != http.StatusOK || body != "" {
		t.Fatalf("paste: %d %s", code, body)
	}
	if afterPaste != nil {
		afterPaste()
	}
	revoked := blocks.PromptRef(id, "revoked")
	h.waitCalls("revoked button", func([]slackfake.Call) bool { return h.threadHas(rootTS, revoked) })
	h.click(approver, blocks.ActionPrompt, revoked)
	h.finished(id, rootTS, approvals.StateSucceeded)
}

// seedSecret creates a Secret Manager secret holding value as its first
// version, through the real client as an operator's tooling would.
func (h *e2e) seedSecret(t *testing.T, name, value string) {
	t.Helper()
	ctx := context.Background()
	if err := h.gsm.CreateSecret(name); err != nil {
		t.Fatal(err)
	}
	c, err := gsm.Dial(ctx, h.gsm.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.AddVersion(ctx, name, secret.FromString(value)); err != nil {
		t.Fatal(err)
	}
}

func kubesimGet(h *e2e, name string) (*unstructured.Unstructured, error) {
	return h.dyn.Resource(esGVR).Namespace("aivo-prod").Get(context.Background(), name, metav1.GetOptions{})
}
