package apikey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube"
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

var testNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// fakeRun is the executor's side of a step: persisted facts, memory-only
// secrets, recorded progress and prompts, and a logger writing to a buffer.
type fakeRun struct {
	spec      rotators.Spec
	now       time.Time
	requester string
	approver  string

	mu       sync.Mutex
	facts    map[string]string
	secrets  map[string]secret.Value
	progress []string
	prompts  []rotators.Prompt
	records  []string // fact keys in the order recorded
	// answer answers Ask; nil answers an error.
	answer func(p rotators.Prompt) (secret.Value, error)
	// onRecord, if set, sees each Record before it is applied.
	onRecord func(key, value string)
	logBuf   *bytes.Buffer
	log      *slog.Logger
}

func newFakeRun(spec rotators.Spec) *fakeRun {
	buf := &bytes.Buffer{}
	return &fakeRun{
		spec: spec, now: testNow, requester: "U01ALICE", approver: "U02BOB",
		facts: map[string]string{}, secrets: map[string]secret.Value{},
		logBuf: buf, log: slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// restarted is the same run after a process restart: facts survive,
// memory-only secrets do not.
func (f *fakeRun) restarted() *fakeRun {
	g := newFakeRun(f.spec)
	g.facts = maps.Clone(f.facts)
	g.now = f.now
	g.answer = f.answer
	g.logBuf, g.log = f.logBuf, f.log
	return g
}

func (f *fakeRun) RequestID() string { return f.spec.RequestID }
func (f *fakeRun) Target() string    { return f.spec.Target }
func (f *fakeRun) Env() string       { return f.spec.Env }
func (f *fakeRun) Emergency() bool   { return f.spec.Emergency }
func (f *fakeRun) Requester() string { return f.requester }
func (f *fakeRun) Approver() string  { return f.approver }
func (f *fakeRun) Now() time.Time    { return f.now }
func (f *fakeRun) Log() *slog.Logger { return f.log }

func (f *fakeRun) Fact(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.facts[key]
}

func (f *fakeRun) Record(_ context.Context, key, value string) error {
	if f.onRecord != nil {
		f.onRecord(key, value)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.facts[key] = value
	f.records = append(f.records, key)
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

func (f *fakeRun) Ask(_ context.Context, p rotators.Prompt) (secret.Value, error) {
	f.mu.Lock()
	f.prompts = append(f.prompts, p)
	answer := f.answer
	f.mu.Unlock()
	if answer == nil {
		return secret.Value{}, errors.New("nobody answers in this test")
	}
	return answer(p)
}

// texts is everything a run made visible: progress lines, facts, the log.
func (f *fakeRun) texts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.progress)
	for k, v := range f.facts {
		out = append(out, k+"="+v)
	}
	for _, p := range f.prompts {
		out = append(out, p.Label)
	}
	return append(out, f.logBuf.String())
}

// fakeStore is an in-memory Secret Manager holding one secret.
type fakeStore struct {
	t          *testing.T
	secretName string

	mu       sync.Mutex
	versions []*fakeVersion
	adds     int
	// failAdd, when set, fails AddVersion (after adding, when addThenFail).
	failAdd     error
	addThenFail bool
	// failDisable, when set, fails Disable.
	failDisable error
	// beforeAdd, if set, runs at the start of AddVersion.
	beforeAdd func()
}

type fakeVersion struct {
	name    string
	value   secret.Value
	enabled bool
}

func newFakeStore(t *testing.T, secretName string, initial ...string) *fakeStore {
	s := &fakeStore{t: t, secretName: secretName}
	for _, v := range initial {
		s.add(secret.FromString(v))
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
	if s.beforeAdd != nil {
		s.beforeAdd()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkSecret(secretName); err != nil {
		return "", err
	}
	if s.failAdd != nil && !s.addThenFail {
		return "", s.failAdd
	}
	s.adds++
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
	if s.failDisable != nil {
		return s.failDisable
	}
	v, err := s.find(versionName)
	if err != nil {
		return err
	}
	v.enabled = false
	return nil
}

// state returns "n:value:enabled" per version, for comparisons.
func (s *fakeStore) enabledSet() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.versions {
		if v.enabled {
			out = append(out, v.name)
		}
	}
	return out
}

func (s *fakeStore) value(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.find(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(v.value.Reveal())
}

// fakeCluster records what it was asked to do.
type fakeCluster struct {
	mu    sync.Mutex
	calls []string
	// syncErr fails ForceSyncExternalSecret.
	syncErr error
	// waitDeadline is the deadline of the last wait call's context.
	waitDeadline map[string]time.Duration
	// rolloutMsgs are sent to WaitRollout's progress callback.
	rolloutMsgs []string
	// scans answer ScanLogs per deployment.
	scans map[string]kube.LogScan
	// scanSince and scanPattern are ScanLogs' last arguments.
	scanSince   time.Time
	scanPattern string
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{waitDeadline: map[string]time.Duration{}, scans: map[string]kube.LogScan{}}
}

func (c *fakeCluster) log(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf(format, a...))
}

func (c *fakeCluster) deadline(ctx context.Context, what string) {
	if d, ok := ctx.Deadline(); ok {
		c.mu.Lock()
		c.waitDeadline[what] = time.Until(d)
		c.mu.Unlock()
	}
}

func (c *fakeCluster) ForceSyncExternalSecret(_ context.Context, ns, name string, at time.Time) error {
	if c.syncErr != nil {
		return c.syncErr
	}
	c.log("force-sync %s/%s %d", ns, name, at.Unix())
	return nil
}

func (c *fakeCluster) WaitExternalSecretSynced(ctx context.Context, ns, name string, since time.Time) error {
	c.deadline(ctx, "sync")
	c.log("wait-sync %s/%s %d", ns, name, since.Unix())
	return nil
}

func (c *fakeCluster) RestartDeployment(_ context.Context, ns, name string, at time.Time) error {
	c.log("restart %s/%s %s", ns, name, at.Format(time.RFC3339))
	return nil
}

func (c *fakeCluster) WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error {
	c.deadline(ctx, "rollout")
	for _, m := range c.rolloutMsgs {
		progress(m)
	}
	c.log("wait-rollout %s/%s", ns, name)
	return nil
}

func (c *fakeCluster) ScanLogs(_ context.Context, ns, deployment string, since time.Time, pattern *regexp.Regexp) (kube.LogScan, error) {
	c.log("scan %s/%s", ns, deployment)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scanSince, c.scanPattern = since, pattern.String()
	if s, ok := c.scans[deployment]; ok {
		return s, nil
	}
	return kube.LogScan{Pods: 2, Lines: 40, Matches: map[string]int{}}, nil
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
		if v == "" {
			continue
		}
		for _, s := range texts {
			if strings.Contains(s, v) {
				t.Errorf("secret value leaked into %q", s)
			}
		}
	}
}
