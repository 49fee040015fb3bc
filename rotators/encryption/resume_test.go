package encryption

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

// testTimeout bounds every wait in these tests; they are signalled, never slept.
const testTimeout = 20 * time.Second

// memRequests is the approvals side of one request, in memory.
type memRequests struct {
	mu       sync.Mutex
	req      approvals.Request
	finished chan struct{}
}

func newMemRequests(r approvals.Request) *memRequests {
	return &memRequests{req: r, finished: make(chan struct{}, 1)}
}

func (m *memRequests) get() *approvals.Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.req
	return &r
}

func (m *memRequests) Get(context.Context, string) (*approvals.Request, error) { return m.get(), nil }

func (m *memRequests) ListOpen(context.Context) ([]*approvals.Request, error) {
	r := m.get()
	if !r.State.Open() {
		return nil, nil
	}
	return []*approvals.Request{r}, nil
}

func (m *memRequests) MarkRunning(context.Context, string) (*approvals.Request, bool, error) {
	m.mu.Lock()
	started := m.req.State == approvals.StateApproved
	if started {
		m.req.State = approvals.StateRunning
	}
	m.mu.Unlock()
	return m.get(), started, nil
}

func (m *memRequests) Finish(_ context.Context, _ string, to approvals.State, outcome string) (*approvals.Request, error) {
	m.mu.Lock()
	m.req.State, m.req.Outcome = to, outcome
	m.mu.Unlock()
	select {
	case m.finished <- struct{}{}:
	default:
	}
	return m.get(), nil
}

// memJournal persists runs as JSON, as a store would, and keeps every
// version written (for the leak scan).
type memJournal struct {
	mu      sync.Mutex
	current []byte
	all     bytes.Buffer
}

func (j *memJournal) LoadRun(context.Context, string) (*executor.Run, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.current == nil {
		return nil, nil
	}
	var r executor.Run
	if err := json.Unmarshal(j.current, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// The encryption plans have no follow-ups, so an empty index is faithful.
func (j *memJournal) DueFollowUps(context.Context, time.Time) ([]executor.FollowUpRef, error) {
	return nil, nil
}
func (j *memJournal) NextFollowUp(context.Context) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

func (j *memJournal) SaveRun(_ context.Context, run *executor.Run, _ ...approvals.Notice) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.current = b
	j.all.Write(b)
	j.all.WriteByte('\n')
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// crashWorld is one request of a target with a migration and a
// verification Job, driven by the real executor over a fake cluster.
type crashWorld struct {
	t       *testing.T
	cluster *fakeCluster
	rand    *recordingRand
	rot     *Rotator
	reqs    *memRequests
	journal *memJournal
	logs    *syncBuffer
	now     func() time.Time
}

func newCrashWorld(t *testing.T, failJob bool) *crashWorld {
	cl := newFakeCluster()
	cl.seed(testNS, testSec, original())
	cl.watchKey = DefaultNewKeyName
	if failJob {
		cl.jobFail[testJobName] = "BackoffLimitExceeded"
	}
	w := newExecWorld(t, cl, targetYAML("verification_job: |\n"+indent(verifyJob)))
	w.cluster = cl
	return w
}

// newExecWorld is a target configured by src over cl, and one approved
// request of it, for the real executor.
func newExecWorld(t *testing.T, cl Cluster, src string) *crashWorld {
	w := &crashWorld{t: t, rand: &recordingRand{}, journal: &memJournal{}, logs: &syncBuffer{}}
	var cfg Config
	if err := yamlDecode(src)(&cfg); err != nil {
		t.Fatal(err)
	}
	rot, problems := New("encryption", cfg, Clients{Cluster: cl, Rand: w.rand})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	w.rot = rot
	w.reqs = newMemRequests(approvals.Request{
		ID: testReqID, Target: "encryption", Kind: KindName, Env: "prod",
		Requester: "U01ALICE", DecidedBy: "U02BOB", State: approvals.StateApproved,
	})
	var mu sync.Mutex
	clock := testNow
	w.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	return w
}

// runExecutor runs a fresh executor (a new process: no memory-only
// secrets) until the request finishes or ctx is cancelled (a crash), and
// returns once the executor has stopped.
func (w *crashWorld) runExecutor(ctx context.Context, cancel context.CancelFunc) {
	w.t.Helper()
	ex := executor.New(executor.Config{
		Requests: w.reqs,
		Journal:  w.journal,
		Rotators: map[string]rotators.Rotator{"encryption": w.rot},
		Now:      w.now,
		Log:      slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		After:    func(time.Duration) <-chan time.Time { c := make(chan time.Time, 1); c <- time.Time{}; return c },
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = ex.Run(ctx) }()
	select {
	case <-w.reqs.finished:
	case <-ctx.Done():
	case <-time.After(testTimeout):
		w.t.Fatalf("the rotation did not finish; request %+v", w.reqs.get())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(testTimeout):
		w.t.Fatal("the executor did not stop")
	}
}

// Crash the process at every Kubernetes call of a rotation — before the call
// has an effect, and after it had one but before its answer arrived — then
// resume with a new executor: every rotation ends as it would have without
// the crash, with one new key written, one Job of each kind, and no key in
// the journal or the logs.
func TestCrashAndResumeAtEveryClusterCall(t *testing.T) {
	for _, scenario := range []string{"success", "job fails"} {
		for _, afterEffect := range []bool{false, true} {
			mode := "before"
			if afterEffect {
				mode = "after"
			}
			for at := 1; at < 100; at++ {
				crashed := false
				t.Run(fmt.Sprintf("%s/%s/call%02d", scenario, mode, at), func(t *testing.T) {
					crashed = crashAndResume(t, scenario == "job fails", afterEffect, at)
				})
				if !crashed {
					break // the rotation made fewer calls than at
				}
			}
		}
	}
}

func crashAndResume(t *testing.T, failJob, afterEffect bool, at int) bool {
	w := newCrashWorld(t, failJob)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	calls, crashedOn := 0, ""
	hook := func(op string) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == at && crashedOn == "" {
			crashedOn = op
			cancel() // the process stops: the step sees its context end
			return context.Canceled
		}
		return nil
	}
	if afterEffect {
		w.cluster.after = hook
	} else {
		w.cluster.before = hook
	}
	w.runExecutor(ctx, cancel)
	mu.Lock()
	crashed := crashedOn != ""
	mu.Unlock()
	if crashed {
		if st := w.reqs.get().State; st != approvals.StateRunning {
			t.Fatalf("after the crash the request is %s, want running", st)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		w.runExecutor(ctx2, cancel2)
	}

	req := w.reqs.get()
	if len(w.cluster.newValues) != 1 {
		t.Errorf("%d different new keys were written, want 1", len(w.cluster.newValues))
	}
	newKey := ""
	if len(w.cluster.newValues) > 0 {
		newKey = w.cluster.newValues[0]
	}
	backup := testNS + "/app-encryption-backup-r-abcd2345"
	if failJob {
		if req.State != approvals.StateRolledBack {
			t.Fatalf("request %s (%s), want rolled_back", req.State, req.Outcome)
		}
		if got := w.cluster.data(testNS, testSec); !maps.Equal(got, original()) {
			t.Errorf("Secret keys = %v, want the original data", slices.Sorted(maps.Keys(got)))
		}
		if got := w.cluster.data(testNS, "app-encryption-backup-r-abcd2345-newkey"); got["NEW_ENCRYPTION_KEY"] != newKey {
			t.Error("the new key was not kept")
		}
		if w.cluster.jobCreates[testJobName] != 1 || w.cluster.jobCreates["reencrypt-verify-r-abcd2345"] != 0 {
			t.Errorf("job creates = %v", w.cluster.jobCreates)
		}
	} else {
		if req.State != approvals.StateSucceeded {
			t.Fatalf("request %s (%s), want succeeded", req.State, req.Outcome)
		}
		if got, want := w.cluster.data(testNS, testSec), map[string]string{"ENCRYPTION_KEY": newKey, "DATABASE_URL": testOther}; !maps.Equal(got, want) {
			t.Errorf("Secret keys = %v, want ENCRYPTION_KEY (the new key) and DATABASE_URL", slices.Sorted(maps.Keys(got)))
		}
		if got := w.cluster.secretNames(); !slices.Equal(got, []string{testNS + "/" + testSec, backup}) {
			t.Errorf("secrets = %v, want the Secret and one backup", got)
		}
		if w.cluster.jobCreates[testJobName] != 1 || w.cluster.jobCreates["reencrypt-verify-r-abcd2345"] != 1 {
			t.Errorf("job creates = %v, want one of each", w.cluster.jobCreates)
		}
		stamps := map[string]bool{}
		for _, c := range w.cluster.callList() {
			if strings.HasPrefix(c, "restart aivo-prod/ai-orchestrator ") {
				stamps[c] = true
			}
		}
		if len(stamps) != 2 {
			t.Errorf("ai-orchestrator restarted with %d stamps, want 2: %v", len(stamps), stamps)
		}
	}
	if !maps.Equal(w.cluster.data(testNS, "app-encryption-backup-r-abcd2345"), original()) {
		t.Error("the backup changed")
	}
	secrets := append(w.rand.keys(), testOldKey, testOther)
	rotatorstest.AssertNoLeak(t, secrets, w.journal.all.String(), w.logs.String(), req.Outcome)
	return crashed
}
