package main

// Tests of `rotary try` (try*.go): the whole wiring started through tryCmd
// and driven through the console's HTTP API as the page drives it; its
// pieces (people, config rewrite, environment, paced watches, port
// choice); and, in headless Chromium (bot/console/browsertest), the flow a
// newcomer walks through: request, refused self-approval, approval by
// someone else, steps arriving in the thread, outcome, plus the emergency
// notification once the emergency path exists.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/console"
	"github.com/aivo-platform/rotary/bot/console/browsertest"
	"github.com/aivo-platform/rotary/commands"
)

// tryWait bounds a wait for the bot in these tests.
const tryWait = 60 * time.Second

// tryRun is a `rotary try` started by a test.
type tryRun struct {
	t      *testing.T
	url    string
	banner string
	people []console.Person
	cancel context.CancelFunc
	done   chan error
}

var tryURLPattern = regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`)

// startTry runs tryCmd with args (plus --port 0) and an empty environment,
// and returns once it printed its URL.
func startTry(t *testing.T, args ...string) *tryRun {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	r := &tryRun{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := tryCmd(ctx, append([]string{"--port", "0"}, args...), pw, func(string) string { return "" })
		pw.Close()
		r.done <- err
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var banner strings.Builder
	timeout := time.After(tryWait)
	for r.url == "" || !strings.HasPrefix(lastLine(banner.String()), "Press Ctrl-C") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("rotary try stopped before it was ready: %v\n%s", <-r.done, banner.String())
			}
			banner.WriteString(l + "\n")
			if m := tryURLPattern.FindStringSubmatch(l); m != nil {
				r.url = m[1]
			}
		case <-timeout:
			t.Fatalf("rotary try did not print its URL within %s:\n%s", tryWait, banner.String())
		}
	}
	go func() {
		for range lines { // the rest of the output
		}
	}()
	r.banner = banner.String()
	t.Cleanup(r.stop)

	cfg, err := bundledConfigForTest(t)
	if err != nil {
		t.Fatal(err)
	}
	r.people, _ = tryPeople(cfg)
	return r
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// stop ends the run as Ctrl-C does and checks it ended cleanly.
func (r *tryRun) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("rotary try ended with %v", err)
		}
	case <-time.After(tryWait):
		r.t.Errorf("rotary try did not stop within %s", tryWait)
	}
}

// bundledConfigForTest loads the bundled config as try's people derive
// from it (try takes database and redis out, which changes no approver).
func bundledConfigForTest(t *testing.T) (*Config, error) {
	path := filepath.Join(t.TempDir(), "aivo.yaml")
	if err := os.WriteFile(path, bundledConfig, 0o600); err != nil {
		return nil, err
	}
	return loadValid(path)
}

func (r *tryRun) post(path string, body any) {
	r.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(r.url+strings.TrimPrefix(path, "/"), "application/json", bytes.NewReader(b))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("%s: HTTP %d %s", path, resp.StatusCode, out)
	}
}

func (r *tryRun) state(as string) console.State {
	r.t.Helper()
	resp, err := http.Get(r.url + "api/state?as=" + url.QueryEscape(as))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st console.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitState waits, on the page's own event stream, until pred holds for
// the person's state.
func (r *tryRun) waitState(what, as string, pred func(console.State) bool) console.State {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tryWait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var st console.State
	for {
		st = r.state(as)
		if pred(st) {
			return st
		}
		for {
			if !sc.Scan() {
				b, _ := json.MarshalIndent(st, "", " ")
				r.t.Fatalf("waiting for %s: %v\nlast state: %s", what, ctx.Err(), b)
			}
			if strings.HasPrefix(sc.Text(), "data: ") {
				break
			}
		}
	}
}

// tryFind returns the message or reply of a channel whose HTML holds all parts.
func tryFind(st console.State, channel string, parts ...string) (console.MessageState, bool) {
	has := func(m console.MessageState) bool {
		for _, p := range parts {
			if !strings.Contains(m.HTML, p) {
				return false
			}
		}
		return true
	}
	for _, ch := range st.Channels {
		if ch.ID != channel {
			continue
		}
		for _, m := range ch.Messages {
			if has(m) {
				return m, true
			}
			for _, rep := range m.Replies {
				if has(rep) {
					return rep, true
				}
			}
		}
	}
	return console.MessageState{}, false
}

// bundled config's channels
const (
	tryRequestChannel  = "C0EXAMPLE1"
	tryAnnounceChannel = "C0EXAMPLE2"
)

// TestTryWiring starts `rotary try` as a person would, opens and approves a
// request through the console's API exactly as the page does, sees the bot
// answer and finish the rotation on the simulated platform, and stops it:
// the state file stays where --state put it, with the request succeeded.
func TestTryWiring(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "try.db")
	r := startTry(t, "--sim-delay", "0s", "--state", statePath)
	for _, want := range []string{"config:    examples/aivo.yaml (bundled)", "SIMULATED: Slack (this console), provider APIs, Secret Manager, Kubernetes",
		"not here:  database:", "not here:  redis:", "state:     " + statePath} {
		if !strings.Contains(r.banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, r.banner)
		}
	}
	requester, approver := r.people[0].ID, r.people[1].ID

	r.post("/api/command", map[string]string{"as": requester, "channel": tryRequestChannel, "text": `/rotate openai --reason "quarterly"`})
	st := r.waitState("the request and its buttons", requester, func(st console.State) bool {
		_, opened := tryFind(st, tryRequestChannel, "Opened")
		_, root := tryFind(st, tryRequestChannel, `data-action-id="`+blocks.ActionApprove+`"`)
		return opened && root
	})
	root, _ := tryFind(st, tryRequestChannel, `data-action-id="`+blocks.ActionApprove+`"`)
	id := regexp.MustCompile(`data-value="(R-[A-Z0-9]+)"`).FindStringSubmatch(root.HTML)[1]

	r.post("/api/action", map[string]string{"as": approver, "key": root.Key, "block_id": blocks.BlockDecision, "action_id": blocks.ActionApprove, "value": id})
	st = r.waitState("the outcome", approver, func(st console.State) bool {
		_, announced := tryFind(st, tryAnnounceChannel, id, "succeeded")
		_, replied := tryFind(st, tryRequestChannel, "was rotated")
		return announced && replied
	})
	progress, ok := tryFind(st, tryRequestChannel, "Rotation progress")
	if !ok || progress.Updates < 5 || strings.Count(progress.HTML, "✅") < 6 {
		t.Errorf("the progress message was not updated step by step: %+v", progress)
	}
	r.stop()

	store, err := boltstore.Open(statePath, boltstore.Options{})
	if err != nil {
		t.Fatalf("the state file is not kept: %v", err)
	}
	defer store.Close()
	var req *approvals.Request
	err = store.ListRequests(context.Background(), func(r *approvals.Request) bool {
		if r.ID == id {
			req = r
		}
		return true
	})
	if err != nil || req == nil || req.State != approvals.StateSucceeded || req.DecidedBy != approver {
		t.Fatalf("the stored request: %+v, %v", req, err)
	}
}

// TestTryTemporaryState: without --state the state lives in a temporary
// directory that is gone after the run.
func TestTryTemporaryState(t *testing.T) {
	r := startTry(t)
	m := regexp.MustCompile(`state:\s+(\S+) \(removed on exit`).FindStringSubmatch(r.banner)
	if m == nil {
		t.Fatalf("no temporary state in the banner:\n%s", r.banner)
	}
	if _, err := os.Stat(filepath.Dir(m[1])); err != nil {
		t.Fatalf("the working directory is missing while running: %v", err)
	}
	r.stop()
	if _, err := os.Stat(filepath.Dir(m[1])); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the working directory %s outlived the run: %v", filepath.Dir(m[1]), err)
	}
}

func TestTryFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "70000"}, "--port 70000 is not a port"},
		{[]string{"--sim-delay", "-1s"}, "--sim-delay -1s is out of range"},
		{[]string{"--sim-delay", "2h"}, "--sim-delay 2h0m0s is out of range"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"examples/aivo.yaml"}, `did you mean --config examples/aivo.yaml?`},
	} {
		err := run(context.Background(), append([]string{"try"}, tc.args...), io.Discard, func(string) string { return "" })
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("try %v: %v, want a usage error about %q", tc.args, err, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("targets: {}\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"try", "--config", bad, "--port", "0"}, io.Discard, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("a bad config: %v, want its problems reported against %s", err, bad)
	}
}

func tryConfigFrom(t *testing.T, text string) *Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadValid(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const tryPeopleConfig = `
slack: {request_channel: C0R, announce_channel: C0A}
%s
targets:
  stripe:
    kind: apikey
    approvers:
      prod: %s
    provider: manual
    namespace: aivo-prod
    secret_manager: {project: aivo-platform, secret: stripe-key}
    external_secret: external-services
    deployments: [billing]
`

func TestTryPeople(t *testing.T) {
	bundled, err := bundledConfigForTest(t)
	if err != nil {
		t.Fatal(err)
	}
	// The bundled example's responders decide who Rosa is.
	bundledResponder, bundledResponderAbout := idResponder, "names no emergency responders"
	if r := bundled.Emergency.Responders; len(r.Users) > 0 {
		bundledResponder, bundledResponderAbout = r.Users[0], "An emergency responder (emergency.responders, listed by ID"
	} else if len(r.Groups) > 0 {
		bundledResponderAbout = "An emergency responder (emergency.responders, as a member of user group " + r.Groups[0]
	}
	peopleConfig := func(emergency, approvers string) *Config {
		return tryConfigFrom(t, fmt.Sprintf(tryPeopleConfig, emergency, approvers))
	}
	for _, tc := range []struct {
		name   string
		cfg    *Config
		ids    []string // requester, approver, approver, outsider, responder
		groups map[string][]string
		about  []string // a phrase of each person's About
	}{
		{
			name:   "bundled: an approver requests, a listed user and a group member approve",
			cfg:    bundled,
			ids:    []string{"U0EXAMPLE1", "U0EXAMPLE2", idGroupBase + "1", idOutsider, bundledResponder},
			groups: map[string][]string{"S0EXAMPLE1": {idGroupBase + "1"}},
			about: []string{"refuses to let them approve their own request", "listed by ID", "member of user group S0EXAMPLE1",
				"no approver set", bundledResponderAbout},
		},
		{
			name:  "two users: the requester is not an approver",
			cfg:   peopleConfig("", "{users: [U0A, U0B]}"),
			ids:   []string{idRequester, "U0A", "U0B", idOutsider, idResponder},
			about: []string{"Not an approver", "Approver for stripe in prod", "Approver for stripe", "", ""},
		},
		{
			name:  "one user: the second approver is refused too; a responder by ID",
			cfg:   peopleConfig("emergency: {responders: {users: [U0A, U0RESP]}}", "{users: [U0A]}"),
			ids:   []string{idRequester, "U0A", idApprover + "2", idOutsider, "U0RESP"},
			about: []string{"", "", "names no further approver", "", "An emergency responder (emergency.responders, listed by ID"},
		},
		{
			name:   "a responder group gets a member",
			cfg:    peopleConfig("emergency: {responders: {groups: [S0ONCALL]}}", "{users: [U0A, U0B]}"),
			ids:    []string{idRequester, "U0A", "U0B", idOutsider, idResponder},
			groups: map[string][]string{"S0ONCALL": {idResponder}},
			about:  []string{"", "", "", "", "member of user group S0ONCALL"},
		},
		{
			name:  "break-glass users come first",
			cfg:   peopleConfig("emergency: {responders: {users: [U0RESP, U0BG]}, break_glass: {enabled: true, users: [U0BG]}}", "{users: [U0A, U0B]}"),
			ids:   []string{idRequester, "U0A", "U0B", idOutsider, "U0BG"},
			about: []string{"", "", "", "", "may approve or deny emergency requests. May break glass"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			people, groups := tryPeople(tc.cfg)
			var ids []string
			for i, p := range people {
				ids = append(ids, p.ID)
				if !strings.Contains(p.About, tc.about[i]) {
					t.Errorf("%s (%s): %q lacks %q", p.Name, p.Role, p.About, tc.about[i])
				}
			}
			if !slices.Equal(ids, tc.ids) {
				t.Errorf("people %v, want %v", ids, tc.ids)
			}
			for g, want := range tc.groups {
				if !slices.Equal(groups[g], want) {
					t.Errorf("group %s has %v, want %v", g, groups[g], want)
				}
			}
			// The policy agrees with what the page says.
			policy := tc.cfg.Policy()
			for _, p := range people[1:3] {
				allowed := policy.Targets[tc.cfg.Targets[0].Name].Approvers[tc.cfg.DefaultEnv].Allows(p.ID, tryGroupsOf(groups, p.ID))
				if allowed == strings.Contains(p.About, "no further approver") {
					t.Errorf("%s: allowed=%v but the page says %q", p.Name, allowed, p.About)
				}
			}
		})
	}
}

func TestTryGuide(t *testing.T) {
	src := fmt.Sprintf(tryPeopleConfig, "", "{users: [U0A, U0B]}")
	cfg := tryConfigFrom(t, src)
	_, targets, err := readTryTargets([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	people, _ := tryPeople(cfg)
	guide := strings.Join(tryGuide(cfg, targets, people), "\n")
	for _, want := range []string{`type /rotate stripe --reason "quarterly"`, "Switch to Arun (approver)", "Otto approving", "/rotate stripe (the requester pastes a key)"} {
		if !strings.Contains(guide, want) {
			t.Errorf("the guide lacks %q:\n%s", want, guide)
		}
	}
	if strings.Contains(guide, "emergency") {
		t.Errorf("the guide offers an emergency without a jwt target:\n%s", guide)
	}
}

func TestTryConfigRewrite(t *testing.T) {
	doc, targets, err := readTryTargets(bundledConfig)
	if err != nil {
		t.Fatal(err)
	}
	plat := &tryPlatform{log: tryDiscardLog(), creds: map[string]string{}, apiBase: map[string]string{}}
	t.Cleanup(plat.close)
	unavailable, err := plat.start(context.Background(), targets, false, false)
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, u := range unavailable {
		gone = append(gone, u.Target)
	}
	if !slices.Equal(gone, []string{"database", "redis"}) {
		t.Fatalf("unavailable: %v", gone)
	}
	state := filepath.Join(t.TempDir(), "s.db")
	cfg, err := tryConfig(doc, t.TempDir(), state, unavailable, plat.apiBase, bundledConfigName)
	if err != nil {
		t.Fatal(err)
	}
	var names, want []string
	for _, tc := range cfg.Targets {
		names = append(names, tc.Name)
	}
	secretsWanted := 0
	for _, tt := range targets {
		if tt.Kind != kindDatabase && tt.Kind != kindRedis {
			want = append(want, tt.Name)
		}
		if tt.Kind == kindAPIKey {
			secretsWanted += len(tt.Envs)
		}
	}
	if !slices.Equal(names, want) || !slices.Contains(names, "openai") || cfg.StatePath != state {
		t.Fatalf("targets %v, want %v; state %s", names, want, cfg.StatePath)
	}
	for _, name := range []string{"openai", "sendgrid"} {
		if !strings.HasPrefix(plat.apiBase[name], "http://127.0.0.1:") || !strings.HasSuffix(plat.apiBase[name], "/"+name+"/{env}") {
			t.Errorf("api_base of %s: %q", name, plat.apiBase[name])
		}
	}
	for _, cred := range []string{"OPENAI_ADMIN_KEY", "SENDGRID_ADMIN_KEY"} {
		if !strings.HasPrefix(plat.creds[cred], "SIMULATED-") {
			t.Errorf("credential %s not generated: %q", cred, plat.creds[cred])
		}
	}
	// The simulated cluster holds what the targets name, in every environment.
	ctx := context.Background()
	for _, ns := range []string{"aivo-prod", "aivo-staging"} {
		for _, d := range []string{"ai-orchestrator", "notification-svc", "billing-svc"} {
			if _, err := plat.cs.AppsV1().Deployments(ns).Get(ctx, d, metav1.GetOptions{}); err != nil {
				t.Errorf("deployment %s/%s: %v", ns, d, err)
			}
		}
		if ready, err := plat.kube.ReadyPod(ctx, ns, "ai-orchestrator"); err != nil || ready == "" {
			t.Errorf("no ready pod of %s/ai-orchestrator: %v", ns, err)
		}
		sec, err := plat.cs.CoreV1().Secrets(ns).Get(ctx, "app-encryption", metav1.GetOptions{})
		if err != nil || len(sec.Data["ENCRYPTION_KEY"]) == 0 {
			t.Errorf("encryption secret in %s: %v", ns, err)
		}
	}
	if plat.gsmCount != secretsWanted {
		t.Errorf("%d Secret Manager secrets seeded, want %d (apikey targets × environments)", plat.gsmCount, secretsWanted)
	}
	if slices.Contains(names, kindJWT) {
		sec, err := plat.cs.CoreV1().Secrets("aivo-prod").Get(ctx, defaultJWTSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("jwt secret: %v", err)
		}
		if b, _ := pem.Decode(sec.Data["JWT_PUBLIC_KEY"]); b == nil || b.Type != "PUBLIC KEY" || len(sec.Data["JWT_KEY_ID"]) != 2*keyIDBytes {
			t.Errorf("jwt secret data: %v", slices.Collect(maps.Keys(sec.Data)))
		}
		if _, err := plat.kube.ReadyPod(ctx, "aivo-prod", defaultJWTDeployment); err != nil {
			t.Errorf("no ready pod of auth-svc: %v", err)
		}
		lifetime := yamlDeref(yamlValue(yamlDeref(yamlValue(yamlDeref(yamlValue(yamlRoot(doc), yamlKeyTargets)), kindJWT)), "token_lifetime"))
		if lifetime == nil || lifetime.Value != tryTokenLifetime.String() {
			t.Errorf("jwt token_lifetime not shortened: %+v", lifetime)
		}
	}

	// A config with only unavailable targets says so.
	var only yaml.Node
	if err := yaml.Unmarshal([]byte("slack: {request_channel: C0R}\ntargets:\n  db: {kind: database}\n"), &only); err != nil {
		t.Fatal(err)
	}
	_, err = tryConfig(&only, t.TempDir(), state, []console.Unavailable{{Target: "db", Reason: "needs PostgreSQL"}}, nil, "x.yaml")
	if err == nil || !strings.Contains(err.Error(), "no target of x.yaml can run here: db (needs PostgreSQL)") {
		t.Errorf("only unavailable targets: %v", err)
	}
}

func TestTryProviderRouting(t *testing.T) {
	_, targets, err := readTryTargets(bundledConfig)
	if err != nil {
		t.Fatal(err)
	}
	plat := &tryPlatform{log: tryDiscardLog(), creds: map[string]string{}, apiBase: map[string]string{}}
	t.Cleanup(plat.close)
	if err := plat.startProviders(targets); err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(plat.apiBase["openai"], "/openai/{env}")
	get := func(path, key string) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	key := plat.creds["OPENAI_ADMIN_KEY"]
	for _, tc := range []struct {
		path, key string
		want      int
	}{
		{"/openai/prod/v1/organization/projects/proj_aivoprod/service_accounts", key, http.StatusOK},
		{"/openai/staging/v1/organization/projects/proj_aivostaging/service_accounts", key, http.StatusOK},
		{"/openai/prod/v1/organization/projects/proj_aivostaging/service_accounts", key, http.StatusNotFound},
		{"/openai/prod/v1/organization/projects/proj_aivoprod/service_accounts", "wrong", http.StatusUnauthorized},
		{"/openai/qa/v1/organization/projects/proj_aivoqa/service_accounts", key, http.StatusNotFound},
		{"/stripe/prod/v1/x", key, http.StatusNotFound},
		{"/short", key, http.StatusNotFound},
	} {
		if got := get(tc.path, tc.key); got != tc.want {
			t.Errorf("GET %s: HTTP %d, want %d", tc.path, got, tc.want)
		}
	}
}

func TestTryGetenv(t *testing.T) {
	real := map[string]string{"KUBECONFIG": "/k", "OPENAI_ADMIN_KEY": "sk-admin-REAL", "SLACK_BOT_TOKEN": "xoxb-real", "HOME": "/root", "OPENAI_ADMIN_KEY_FILE": "/f"}
	get := tryGetenv(func(k string) string { return real[k] }, map[string]string{"SLACK_BOT_TOKEN": "xoxb-try", "OPENAI_ADMIN_KEY": "SIMULATED-x"}, []string{"KUBECONFIG"})
	for k, want := range map[string]string{"KUBECONFIG": "/k", "SLACK_BOT_TOKEN": "xoxb-try", "OPENAI_ADMIN_KEY": "SIMULATED-x", "HOME": "", "OPENAI_ADMIN_KEY_FILE": ""} {
		if got := get(k); got != want {
			t.Errorf("getenv(%s) = %q, want %q", k, got, want)
		}
	}
}

func TestListenConsole(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port, _ := strconv.Atoi(busy.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):])
	if _, _, err := tryListenConsole(port, true); err == nil || !strings.Contains(err.Error(), "--port 0") {
		t.Errorf("a busy port given explicitly: %v", err)
	}
	ln, note, err := tryListenConsole(port, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !strings.Contains(note, "port "+strconv.Itoa(port)+" is in use") || ln.Addr().String() == busy.Addr().String() {
		t.Errorf("fallback: %s on %s", note, ln.Addr())
	}
}

func tryDiscardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestPacedWatch(t *testing.T) {
	const delay = 30 * time.Millisecond
	src := watch.NewFake()
	w := tryPaceWatch(src, delay)
	events := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
	start := time.Now()
	go func() {
		for _, e := range events {
			src.Action(e, nil)
		}
	}()
	for i, want := range events {
		select {
		case ev := <-w.ResultChan():
			if ev.Type != want {
				t.Fatalf("event %d is %s, want %s", i, ev.Type, want)
			}
		case <-time.After(tryWait):
			t.Fatal("no event")
		}
	}
	if took := time.Since(start); took < delay {
		t.Errorf("events passed after %s, before the delay of %s", took, delay)
	}
	w.Stop()
	if _, open := <-w.ResultChan(); open {
		t.Error("the result channel is open after Stop")
	}
	if !src.IsStopped() {
		t.Error("Stop did not stop the source watch")
	}

	// A closed source ends the paced watch after the queued events.
	src = watch.NewFake()
	w = tryPaceWatch(src, 0)
	go func() { src.Add(nil); src.Stop() }()
	if ev := <-w.ResultChan(); ev.Type != watch.Added {
		t.Fatalf("event %s", ev.Type)
	}
	if _, open := <-w.ResultChan(); open {
		t.Error("the result channel is open after the source closed")
	}
}

// --- in a browser ---------------------------------------------------------------

// TestTryBrowserRotateOpenAI is the walk-through of the README in headless
// Chromium: the requester types /rotate openai, sees the request with its
// buttons, clicks Approve and is refused; an approver approves; the steps
// arrive in the thread and the outcome is shown.
func TestTryBrowserRotateOpenAI(t *testing.T) {
	b := browsertest.Start(t)
	r := startTry(t, "--sim-delay", "150ms")
	requester, approver := r.people[0], r.people[1]

	b.Do("open the console", browsertest.Open(r.url))
	b.Do("the requester opens a request",
		browsertest.ActAs(requester.ID),
		browsertest.Command(`/rotate openai --reason "quarterly rotation"`),
		browsertest.MessageContains(true, "You used /rotate openai", "Opened R-"),
		browsertest.MessageContains(false, "Rotation request: openai (prod)", "quarterly rotation", "Approve", "Deny"),
	)
	b.Do("the requester's own approval is refused",
		browsertest.Click("Rotation request: openai", blocks.ActionApprove),
		browsertest.Confirm(),
		browsertest.MessageContains(true, "You opened this request, so you can't approve it"),
	)
	b.Do("an approver approves",
		browsertest.ActAs(approver.ID),
		browsertest.Click("Rotation request: openai", blocks.ActionApprove),
		browsertest.Confirm(),
	)
	b.Do("the steps arrive in the thread",
		browsertest.MessageContains(false, "Rotation progress", "Create a new OpenAI key"),
		browsertest.Until(`Array.from(document.querySelectorAll('#messages article.reply')).some((m) => m.textContent.includes('Rotation progress') && Number(m.dataset.updates) >= 1)`),
	)
	b.Do("the outcome",
		browsertest.MessageContains(false, "openai (prod) was rotated"),
		browsertest.Until(`Array.from(document.querySelectorAll('#messages article.reply')).some((m) => m.textContent.includes('Rotation progress') && (m.textContent.match(/✅/g) || []).length >= 6)`),
		browsertest.Until(`!document.querySelector('#messages `+browsertest.ButtonSelector(blocks.ActionApprove)+`')`),
	)
	b.Screenshot("rotated")
	b.Do("the announcement channel has the start and the end",
		browsertest.SelectChannel("platform-announcements"),
		browsertest.MessageContains(false, "started"),
		browsertest.MessageContains(false, "succeeded"),
	)
}

// TestTryBrowserEmergency: /rotate-jwt --emergency posts a channel-wide
// notification (a message whose text starts with <!channel>, shown as
// @channel). It skips while the emergency path is not built.
func TestTryBrowserEmergency(t *testing.T) {
	cfg, err := bundledConfigForTest(t)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cfg.Targets, func(tc *TargetConfig) bool { return tc.Name == commands.TargetJWT }) {
		t.Skip("the bundled config (examples/aivo.yaml) has no jwt target yet: the emergency path is not built (issue 4)")
	}
	b := browsertest.Start(t)
	r := startTry(t, "--sim-delay", "150ms")
	b.Do("open the console", browsertest.Open(r.url))
	b.Do("the requester declares an emergency",
		browsertest.ActAs(r.people[0].ID),
		browsertest.Command(`/rotate-jwt --emergency --reason "signing key leaked"`),
		browsertest.Until(`document.querySelector('#messages .mention-broadcast') !== null || `+
			`Array.from(document.querySelectorAll('#messages article.ephemeral')).some((m) => m.textContent.includes('not available'))`),
	)
	var unavailable bool
	b.Eval(`Array.from(document.querySelectorAll('#messages article.ephemeral')).some((m) => m.textContent.includes('not available'))`, &unavailable)
	if unavailable {
		t.Skip("the bot answers that --emergency is not available yet (issue 4)")
	}
	b.Do("the channel-wide notification",
		browsertest.Until(`Array.from(document.querySelectorAll('#messages article.msg:not(.ephemeral)')).some((m) => `+
			`(m.querySelector('.msg-body').textContent.trim().startsWith('@channel')) && m.querySelector('.mention-broadcast').textContent === '@channel')`),
	)
	b.Screenshot("emergency")
}
