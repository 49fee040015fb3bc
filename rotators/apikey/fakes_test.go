package apikey

import (
	"context"
	"fmt"
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

var testNow = rotatorstest.DefaultNow

// fakeRun is the executor's side of a step, recorded in memory.
type fakeRun = rotatorstest.Run

func newFakeRun(spec rotators.Spec) *fakeRun { return rotatorstest.New(spec) }

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
type fakeCreds = rotatorstest.Creds
