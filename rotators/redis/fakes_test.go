package redis

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
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

// errCrash stands for the process dying: a step that sees it stops there.
var errCrash = errors.New("simulated crash")

// fakeRun is the executor's side of a step, recorded in memory.
type fakeRun = rotatorstest.Run

func newFakeRun(spec rotators.Spec) *fakeRun { return rotatorstest.New(spec) }

// crashAfter makes f's next Record of key persist the fact and then
// fail with errCrash (a crash right after an intent).
func crashAfter(f *fakeRun, key string) {
	f.AfterRecord = func(k, _ string) error {
		if k != key {
			return nil
		}
		f.AfterRecord = nil
		return errCrash
	}
}

// fakeCluster keeps Secrets in memory, as kube does (immutable labelled
// backups, no-op writes of equal data), and simulates the consumers: a
// restarted deployment's new pods log in to Redis with what the Secret
// holds when they start, and its rollout completes only if they can.
type fakeCluster struct {
	mu      sync.Mutex
	secrets map[string]*fakeSecret // by ns/name
	calls   []string
	// stamps is each deployment's last restart stamp; a repeat is a no-op.
	stamps map[string]time.Time
	// pending: restarted, new pods not started yet (WaitRollout starts them).
	pending map[string]bool
	// podPassword is the password each deployment's pods started with.
	podPassword map[string]string
	// consumerSecret is the Secret (ns/name) and key the pods read.
	consumerSecret, consumerKey string
	// login is what a new pod does at start with the password it read.
	login func(ctx context.Context, password string) error
	// writes counts Secret writes that changed data.
	writes int
}

type fakeSecret struct {
	data      map[string][]byte
	labels    map[string]string
	immutable bool
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{
		secrets: map[string]*fakeSecret{}, stamps: map[string]time.Time{},
		pending: map[string]bool{}, podPassword: map[string]string{},
	}
}

func (c *fakeCluster) put(ns, name string, data map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := map[string][]byte{}
	for k, v := range data {
		d[k] = []byte(v)
	}
	c.secrets[ns+"/"+name] = &fakeSecret{data: d}
}

// value returns a key of a Secret ("" when missing).
func (c *fakeCluster) value(ns, name, key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.secrets[ns+"/"+name]
	if !ok {
		return ""
	}
	return string(s.data[key])
}

func (c *fakeCluster) data(ns, name string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.secrets[ns+"/"+name]
	if !ok {
		return nil
	}
	out := map[string]string{}
	for k, v := range s.data {
		out[k] = string(v)
	}
	return out
}

func (c *fakeCluster) secretNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.secrets))
}

func (c *fakeCluster) log(format string, a ...any) {
	c.calls = append(c.calls, fmt.Sprintf(format, a...))
}

func (c *fakeCluster) callList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

func (c *fakeCluster) BackupSecret(_ context.Context, ns, name, requestID string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	src, ok := c.secrets[ns+"/"+name]
	if !ok {
		return "", fmt.Errorf("fake: secret %s/%s not found", ns, name)
	}
	backup := kube.BackupName(name, requestID)
	if b, ok := c.secrets[ns+"/"+backup]; ok {
		if b.labels[kube.BackupRequestLabel] != requestID {
			return "", fmt.Errorf("fake: %s exists: %w", backup, kube.ErrForeignObject)
		}
		return backup, nil
	}
	c.secrets[ns+"/"+backup] = &fakeSecret{
		data:      maps.Clone(src.data),
		labels:    map[string]string{kube.BackupOfLabel: name, kube.BackupRequestLabel: requestID},
		immutable: true,
	}
	c.log("backup %s/%s -> %s", ns, name, backup)
	return backup, nil
}

func (c *fakeCluster) SecretData(_ context.Context, ns, name string) (map[string]secret.Value, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.secrets[ns+"/"+name]
	if !ok {
		return nil, fmt.Errorf("fake: secret %s/%s not found", ns, name)
	}
	out := map[string]secret.Value{}
	for k, v := range s.data {
		out[k] = secret.New(slices.Clone(v))
	}
	return out, nil
}

func (c *fakeCluster) UpdateSecretData(_ context.Context, ns, name string, set map[string]secret.Value, remove []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.secrets[ns+"/"+name]
	if !ok {
		return fmt.Errorf("fake: secret %s/%s not found", ns, name)
	}
	next := maps.Clone(s.data)
	for k, v := range set {
		if v.IsZero() {
			return fmt.Errorf("fake: refusing to set key %q to an empty value", k)
		}
		next[k] = slices.Clone(v.Reveal())
	}
	for _, k := range remove {
		delete(next, k)
	}
	return c.write(ns, name, s, next)
}

func (c *fakeCluster) RestoreSecret(_ context.Context, ns, name, backupName string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.secrets[ns+"/"+name]
	b, bok := c.secrets[ns+"/"+backupName]
	if !ok || !bok {
		return fmt.Errorf("fake: secret %s/%s or its backup %s not found", ns, name, backupName)
	}
	if b.labels[kube.BackupOfLabel] != name {
		return fmt.Errorf("fake: %s is not a backup of %s", backupName, name)
	}
	return c.write(ns, name, s, maps.Clone(b.data))
}

func (c *fakeCluster) write(ns, name string, s *fakeSecret, next map[string][]byte) error {
	if maps.EqualFunc(s.data, next, bytes.Equal) {
		return nil
	}
	if s.immutable {
		return fmt.Errorf("fake: secret %s/%s: %w", ns, name, kube.ErrImmutableSecret)
	}
	s.data = next
	c.writes++
	c.log("write %s/%s", ns, name)
	return nil
}

func (c *fakeCluster) RestartDeployment(_ context.Context, ns, name string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stamps[name].Equal(at) {
		return nil // same annotation: no new rollout, as with kubectl
	}
	c.stamps[name] = at
	c.pending[name] = true
	c.log("restart %s/%s %s", ns, name, at.Format(time.RFC3339))
	return nil
}

func (c *fakeCluster) WaitRollout(ctx context.Context, ns, name string, progress func(string)) error {
	c.mu.Lock()
	start := c.pending[name]
	var pw string
	if s, ok := c.secrets[c.consumerSecret]; ok {
		pw = string(s.data[c.consumerKey])
	}
	login := c.login
	c.mu.Unlock()
	if !start {
		return nil
	}
	progress("Waiting for deployment \"" + name + "\" rollout to finish: 1 old replicas are pending termination...")
	if login != nil {
		if err := login(ctx, pw); err != nil {
			// As a real rollout: the new pods never become ready. Like
			// kube's errors, it names objects, never data.
			return fmt.Errorf("fake: deployment %s/%s: new pods are not ready (cannot log in to Redis)", ns, name)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[name] = false
	c.podPassword[name] = pw
	c.log("rolled out %s/%s", ns, name)
	return nil
}

// fakeCreds resolves credential names from a map.
type fakeCreds = rotatorstest.Creds

// recordingReader is a deterministic random source that remembers what it
// handed out, so a test knows every password a rotation generated.
type recordingReader struct {
	mu   sync.Mutex
	n    byte
	read [][]byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	for i := range p {
		p[i] = r.n ^ byte(i*7+3)
	}
	r.read = append(r.read, slices.Clone(p))
	return len(p), nil
}

// passwords are the generated passwords, in order.
func (r *recordingReader) passwords() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.read {
		out = append(out, hex.EncodeToString(b))
	}
	return out
}
