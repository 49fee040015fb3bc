package database

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
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
var testNowFixed = rotatorstest.DefaultNow

// fakeRun is the executor's side of a step, recorded in memory.
type fakeRun = rotatorstest.Run

func newFakeRun(spec rotators.Spec, now time.Time) *fakeRun {
	r := rotatorstest.New(spec)
	r.SetNow(now)
	return r
}

var errCrash = errors.New("simulated crash")

// crashAt makes f's next Record of key fail like a crash: before the fact
// is stored (before) or after.
func crashAt(f *fakeRun, key string, before bool) {
	if key == "" {
		return
	}
	crash := func(k, _ string) error {
		if k != key {
			return nil
		}
		f.OnRecord, f.AfterRecord = nil, nil
		return errCrash
	}
	if before {
		f.OnRecord = crash
	} else {
		f.AfterRecord = crash
	}
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
type fakeCreds = rotatorstest.Creds

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
