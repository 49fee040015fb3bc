package encryption

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
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

// fakeRun is the executor's side of a step, recorded in memory.
type fakeRun = rotatorstest.Run

func newFakeRun(spec rotators.Spec) *fakeRun { return rotatorstest.New(spec) }

// recordingRand hands out distinct deterministic "random" bytes and
// remembers, hex-encoded, every 32-byte block it produced: the keys made.
type recordingRand struct {
	mu   sync.Mutex
	next byte
	made []string
}

func (r *recordingRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	for i := range p {
		p[i] = r.next ^ byte(i*7)
	}
	r.made = append(r.made, hex.EncodeToString(p))
	return len(p), nil
}

func (r *recordingRand) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.made)
}

// fakeCluster is an in-memory Kubernetes with the semantics of the kube
// adapter's Secret and Job calls, recording what it was asked to do.
type fakeCluster struct {
	mu      sync.Mutex
	secrets map[string]*fakeSecret // by "ns/name"
	jobs    map[string]*batchv1.Job
	calls   []string
	// jobFail fails WaitJob for the named Job with ErrJobFailed.
	jobFail map[string]string
	// jobHang makes WaitJob for the named Job wait for its context.
	jobHang map[string]bool
	// jobProgress is sent to WaitJob's progress callback.
	jobProgress []string
	// jobCreates counts Jobs actually created, by name.
	jobCreates map[string]int
	// newValues are the distinct values written under watchKey.
	watchKey  string
	newValues []string
	// before runs before an operation (op: backup, read, update, restore,
	// create-job, wait-job, restart, wait-rollout) and may fail it with no
	// effect; after runs once its effect landed and may still fail it.
	before, after func(op string) error
	// waitDeadline is the time left on WaitJob's context, per Job.
	waitDeadline map[string]time.Duration
}

type fakeSecret struct {
	data   map[string][]byte
	labels map[string]string
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{
		secrets: map[string]*fakeSecret{}, jobs: map[string]*batchv1.Job{},
		jobFail: map[string]string{}, jobHang: map[string]bool{}, jobCreates: map[string]int{}, waitDeadline: map[string]time.Duration{},
	}
}

func (c *fakeCluster) seed(ns, name string, data map[string]string) {
	s := &fakeSecret{data: map[string][]byte{}}
	for k, v := range data {
		s.data[k] = []byte(v)
	}
	c.secrets[ns+"/"+name] = s
}

// data returns a Secret's data as strings (nil when it does not exist).
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

func (c *fakeCluster) callList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// op runs the before hook, records the call and applies effect under the
// lock, then runs the after hook.
func (c *fakeCluster) op(kind, call string, effect func() error) error {
	if c.before != nil {
		if err := c.before(kind); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.calls = append(c.calls, call)
	err := effect()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if c.after != nil {
		return c.after(kind)
	}
	return nil
}

func notFound(resource, name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: resource}, name)
}

func (c *fakeCluster) BackupSecret(_ context.Context, ns, name, requestID string) (string, error) {
	backup := kube.BackupName(name, requestID)
	err := c.op("backup", "backup "+ns+"/"+name+" "+requestID, func() error {
		src, ok := c.secrets[ns+"/"+name]
		if !ok {
			return notFound("secrets", name)
		}
		if b, ok := c.secrets[ns+"/"+backup]; ok {
			if b.labels[kube.BackupRequestLabel] != requestID {
				return fmt.Errorf("fake: %w", kube.ErrForeignObject)
			}
			return nil
		}
		c.secrets[ns+"/"+backup] = &fakeSecret{
			data:   maps.Clone(src.data),
			labels: map[string]string{kube.BackupOfLabel: name, kube.BackupRequestLabel: requestID},
		}
		return nil
	})
	return backup, err
}

func (c *fakeCluster) SecretData(_ context.Context, ns, name string) (map[string]secret.Value, error) {
	out := map[string]secret.Value{}
	err := c.op("read", "read "+ns+"/"+name, func() error {
		s, ok := c.secrets[ns+"/"+name]
		if !ok {
			return notFound("secrets", name)
		}
		for k, v := range s.data {
			out[k] = secret.New(bytes.Clone(v))
		}
		return nil
	})
	return out, err
}

func (c *fakeCluster) UpdateSecretData(_ context.Context, ns, name string, set map[string]secret.Value, remove []string) error {
	keys := slices.Sorted(maps.Keys(set))
	return c.op("update", fmt.Sprintf("update %s/%s set %v remove %v", ns, name, keys, remove), func() error {
		s, ok := c.secrets[ns+"/"+name]
		if !ok {
			return notFound("secrets", name)
		}
		for k, v := range set {
			if v.IsZero() {
				return fmt.Errorf("fake: refusing to set %s empty", k)
			}
			if slices.Contains(remove, k) {
				return fmt.Errorf("fake: %s both set and removed", k)
			}
			s.data[k] = bytes.Clone(v.Reveal())
			if k == c.watchKey && !slices.Contains(c.newValues, string(v.Reveal())) {
				c.newValues = append(c.newValues, string(v.Reveal()))
			}
		}
		for _, k := range remove {
			delete(s.data, k)
		}
		return nil
	})
}

func (c *fakeCluster) RestoreSecret(_ context.Context, ns, name, backupName string) error {
	return c.op("restore", "restore "+ns+"/"+name+" from "+backupName, func() error {
		s, ok := c.secrets[ns+"/"+name]
		b, bok := c.secrets[ns+"/"+backupName]
		if !ok || !bok {
			return notFound("secrets", name)
		}
		if b.labels[kube.BackupOfLabel] != name {
			return errors.New("fake: not its backup")
		}
		s.data = maps.Clone(b.data)
		return nil
	})
}

func (c *fakeCluster) CreateJob(_ context.Context, ns string, job *batchv1.Job) error {
	return c.op("create-job", "create-job "+ns+"/"+job.Name, func() error {
		if old, ok := c.jobs[ns+"/"+job.Name]; ok {
			if old.Labels[kube.RequestLabel] != job.Labels[kube.RequestLabel] {
				return fmt.Errorf("fake: %w", kube.ErrForeignObject)
			}
			return nil
		}
		c.jobs[ns+"/"+job.Name] = job.DeepCopy()
		c.jobCreates[job.Name]++
		return nil
	})
}

func (c *fakeCluster) WaitJob(ctx context.Context, ns, name string, progress func(string)) error {
	if d, ok := ctx.Deadline(); ok {
		c.mu.Lock()
		c.waitDeadline[name] = time.Until(d)
		c.mu.Unlock()
	}
	c.mu.Lock()
	hang := c.jobHang[name]
	c.mu.Unlock()
	if hang {
		<-ctx.Done()
		return fmt.Errorf("fake: waiting for job %s/%s: %w", ns, name, ctx.Err())
	}
	var msgs []string
	err := c.op("wait-job", "wait-job "+ns+"/"+name, func() error {
		if _, ok := c.jobs[ns+"/"+name]; !ok {
			return notFound("jobs", name)
		}
		msgs = slices.Clone(c.jobProgress)
		if msg, ok := c.jobFail[name]; ok {
			return fmt.Errorf("fake: job %s/%s: %w: %s", ns, name, kube.ErrJobFailed, msg)
		}
		return nil
	})
	for _, m := range msgs {
		progress(m)
	}
	return err
}

func (c *fakeCluster) job(ns, name string) *batchv1.Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs[ns+"/"+name]
}

func (c *fakeCluster) RestartDeployment(_ context.Context, ns, name string, at time.Time) error {
	return c.op("restart", fmt.Sprintf("restart %s/%s %s", ns, name, at.Format(time.RFC3339)), func() error { return nil })
}

func (c *fakeCluster) WaitRollout(_ context.Context, ns, name string, progress func(msg string)) error {
	return c.op("wait-rollout", "wait-rollout "+ns+"/"+name, func() error { return nil })
}
