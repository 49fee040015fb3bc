package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// yamlDecode decodes strictly, as the config loader does.
func yamlDecode(src string) func(any) error {
	return func(into any) error {
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		return dec.Decode(into)
	}
}

// testNowFixed is the clock of tests that reach no server.
var testNowFixed = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// fakeRun is the executor's side of a step: persisted facts, memory-only
// secrets, recorded progress and prompts, and a logger writing to a buffer.
type fakeRun struct {
	spec rotators.Spec
	now  time.Time

	mu       sync.Mutex
	facts    map[string]string
	secrets  map[string]secret.Value
	progress []string
	prompts  []rotators.Prompt
	// answer answers Ask; nil answers an error at once.
	answer func(ctx context.Context, p rotators.Prompt) (secret.Value, error)
	// crashAt makes Record of that key fail like a crash: before the fact
	// is stored (crashBefore) or after.
	crashAt     string
	crashBefore bool
	logBuf      *syncBuffer
	log         *slog.Logger
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a step and
// its prompt goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFakeRun(spec rotators.Spec, now time.Time) *fakeRun {
	buf := &syncBuffer{}
	return &fakeRun{
		spec: spec, now: now,
		facts: map[string]string{}, secrets: map[string]secret.Value{},
		logBuf: buf, log: slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// restarted is the same run after a process restart: facts survive,
// memory-only secrets do not.
func (f *fakeRun) restarted() *fakeRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := newFakeRun(f.spec, f.now)
	g.facts = maps.Clone(f.facts)
	g.answer = f.answer
	g.logBuf, g.log = f.logBuf, f.log
	g.progress = slices.Clone(f.progress)
	g.prompts = slices.Clone(f.prompts)
	return g
}

func (f *fakeRun) RequestID() string { return f.spec.RequestID }
func (f *fakeRun) Target() string    { return f.spec.Target }
func (f *fakeRun) Env() string       { return f.spec.Env }
func (f *fakeRun) Emergency() bool   { return f.spec.Emergency }
func (f *fakeRun) Requester() string { return "U01ALICE" }
func (f *fakeRun) Approver() string  { return "U02BOB" }
func (f *fakeRun) Log() *slog.Logger { return f.log }

func (f *fakeRun) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeRun) setNow(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

func (f *fakeRun) Fact(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.facts[key]
}

var errCrash = errors.New("simulated crash")

func (f *fakeRun) Record(_ context.Context, key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	crash := f.crashAt != "" && key == f.crashAt
	if crash {
		f.crashAt = ""
		if f.crashBefore {
			return errCrash
		}
	}
	f.facts[key] = value
	if crash {
		return errCrash
	}
	return nil
}

func (f *fakeRun) Secret(key string) (secret.Value, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.secrets[key]
	return v, ok
}

func (f *fakeRun) KeepSecret(key string, v secret.Value) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[key] = v
}

func (f *fakeRun) Progress(_ context.Context, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress = append(f.progress, detail)
}

func (f *fakeRun) Ask(ctx context.Context, p rotators.Prompt) (secret.Value, error) {
	f.mu.Lock()
	f.prompts = append(f.prompts, p)
	answer := f.answer
	f.mu.Unlock()
	if answer == nil {
		return secret.Value{}, errors.New("nobody answers in this test")
	}
	return answer(ctx, p)
}

func (f *fakeRun) progressText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.progress, "\n")
}

// texts is everything a run made visible: progress lines, facts, prompts, the log.
func (f *fakeRun) texts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.progress)
	for k, v := range f.facts {
		out = append(out, k+"="+v)
	}
	for _, p := range f.prompts {
		out = append(out, p.Label, p.Button)
	}
	return append(out, f.logBuf.String())
}

// blockUntilDone is an answer that never comes: it waits for the prompt to
// be withdrawn.
func blockUntilDone(ctx context.Context, _ rotators.Prompt) (secret.Value, error) {
	<-ctx.Done()
	return secret.Value{}, ctx.Err()
}

// press answers every prompt at once (the "Drop old role now" button).
func press(context.Context, rotators.Prompt) (secret.Value, error) { return secret.Value{}, nil }

// fakeStore is an in-memory Secret Manager holding one secret.
type fakeStore struct {
	secretName string

	mu       sync.Mutex
	versions []*fakeVersion
	// failAdd fails AddVersion (after adding, when addThenFail).
	failAdd     error
	addThenFail bool
}

type fakeVersion struct {
	name    string
	value   secret.Value
	enabled bool
}

func newFakeStore(secretName string, initial ...secret.Value) *fakeStore {
	s := &fakeStore{secretName: secretName}
	for _, v := range initial {
		s.add(v)
	}
	return s
}

func (s *fakeStore) add(v secret.Value) string {
	name := fmt.Sprintf("%s/versions/%d", s.secretName, len(s.versions)+1)
	s.versions = append(s.versions, &fakeVersion{name: name, value: v, enabled: true})
	return name
}

func (s *fakeStore) checkSecret(name string) error {
	if name != s.secretName {
		return fmt.Errorf("fake store: unknown secret %q (have %q)", name, s.secretName)
	}
	return nil
}

func (s *fakeStore) AddVersion(_ context.Context, secretName string, v secret.Value) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkSecret(secretName); err != nil {
		return "", err
	}
	if s.failAdd != nil && !s.addThenFail {
		return "", s.failAdd
	}
	name := s.add(v)
	if s.failAdd != nil {
		return "", s.failAdd
	}
	return name, nil
}

func (s *fakeStore) LatestEnabled(ctx context.Context, secretName string) (string, error) {
	vs, err := s.EnabledVersions(ctx, secretName)
	if err != nil {
		return "", err
	}
	if len(vs) == 0 {
		return "", fmt.Errorf("fake: %w", gsm.ErrNoVersion)
	}
	return vs[0], nil
}

func (s *fakeStore) EnabledVersions(_ context.Context, secretName string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkSecret(secretName); err != nil {
		return nil, err
	}
	var out []string
	for i := len(s.versions) - 1; i >= 0; i-- {
		if s.versions[i].enabled {
			out = append(out, s.versions[i].name)
		}
	}
	return out, nil
}

func (s *fakeStore) find(name string) (*fakeVersion, error) {
	for _, v := range s.versions {
		if v.name == name {
			return v, nil
		}
	}
	return nil, fmt.Errorf("fake store: no version %q", name)
}

func (s *fakeStore) Access(_ context.Context, versionName string) (secret.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.find(versionName)
	if err != nil {
		return secret.Value{}, err
	}
	if !v.enabled {
		return secret.Value{}, fmt.Errorf("fake store: %s is disabled", versionName)
	}
	return v.value, nil
}

func (s *fakeStore) Disable(_ context.Context, versionName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.find(versionName)
	if err != nil {
		return err
	}
	v.enabled = false
	return nil
}

// latest is the newest enabled version's value (what a sync delivers).
func (s *fakeStore) latest() secret.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.versions) - 1; i >= 0; i-- {
		if s.versions[i].enabled {
			return s.versions[i].value
		}
	}
	return secret.Value{}
}

// all returns every version's value, enabled or not.
func (s *fakeStore) all() []secret.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []secret.Value
	for _, v := range s.versions {
		out = append(out, v.value)
	}
	return out
}

func (s *fakeStore) enabledNames() []string {
	vs, _ := s.EnabledVersions(context.Background(), s.secretName)
	return vs
}

// fakeCluster plays Kubernetes: a force-sync copies Secret Manager's
// latest value into the "Kubernetes Secret", and a restart (a new stamp)
// makes the pods reconnect with it through restartPods, whose error is what
// the rollout then reports (pods that cannot connect never get ready).
type fakeCluster struct {
	store *fakeStore
	// restartPods is the application restarting with dsn.
	restartPods func(dsn secret.Value) error

	mu          sync.Mutex
	calls       []string
	synced      secret.Value
	restartedAt map[string]time.Time
	pending     map[string]bool
	podErr      error
}

func newFakeCluster(store *fakeStore) *fakeCluster {
	return &fakeCluster{store: store, restartedAt: map[string]time.Time{}, pending: map[string]bool{}}
}

func (c *fakeCluster) log(format string, a ...any) {
	c.calls = append(c.calls, fmt.Sprintf(format, a...))
}

func (c *fakeCluster) ForceSyncExternalSecret(_ context.Context, ns, name string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log("force-sync %s/%s %d", ns, name, at.Unix())
	c.synced = c.store.latest()
	return nil
}

func (c *fakeCluster) WaitExternalSecretSynced(_ context.Context, ns, name string, _ time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log("wait-sync %s/%s", ns, name)
	return nil
}

func (c *fakeCluster) RestartDeployment(_ context.Context, ns, name string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.restartedAt[name].Equal(at) {
		return nil // the same stamp: kube's patch is a no-op
	}
	c.restartedAt[name] = at
	c.pending[name] = true
	c.log("restart %s/%s %d", ns, name, at.Unix())
	return nil
}

func (c *fakeCluster) WaitRollout(_ context.Context, ns, name string, progress func(string)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[name] {
		delete(c.pending, name)
		if c.restartPods != nil {
			c.podErr = c.restartPods(c.synced)
		}
	}
	c.log("wait-rollout %s/%s", ns, name)
	if c.podErr != nil {
		return fmt.Errorf("fake: pods of %s/%s are not ready: %w", ns, name, c.podErr)
	}
	progress("deployment \"" + name + "\" successfully rolled out")
	return nil
}

func (c *fakeCluster) callList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// fakeCreds resolves credential names from a map.
type fakeCreds map[string]string

func (c fakeCreds) Lookup(name string) (secret.Value, error) {
	v, ok := c[name]
	if !ok {
		return secret.Value{}, fmt.Errorf("credential %s is not set", name)
	}
	return secret.FromString(v), nil
}

// assertNoLeak fails when any text contains any of the values.
func assertNoLeak(t *testing.T, values []string, texts ...string) {
	t.Helper()
	for _, v := range values {
		if len(v) < 4 {
			t.Fatalf("leak check on a value too short to mean anything: %q", v)
		}
		for _, s := range texts {
			if strings.Contains(s, v) {
				t.Errorf("secret value leaked into %q", s)
			}
		}
	}
}
