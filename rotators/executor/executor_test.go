package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// testTimeout bounds every wait in these tests; they are signalled, never slept.
const testTimeout = 20 * time.Second

// fixture is a real bbolt store, the real approvals service and an executor
// over a scripted plan.
type fixture struct {
	t        *testing.T
	path     string
	store    *boltstore.Store
	svc      *approvals.Service
	ex       *executor.Executor
	plan     *scripted
	logs     *syncBuffer
	cancel   context.CancelFunc
	done     chan struct{}
	finished chan string
	prompted chan string
	journal  *watchJournal
	clock    *fakeClock // nil: the default ticking clock
}

// watchJournal is the real store, watched: it signals when a run is saved
// (and when it is saved with an open prompt), and records every follow-up
// scan the executor makes, so tests wait for events instead of sleeping.
type watchJournal struct {
	*boltstore.Store
	prompted chan string
	saved    chan struct{}

	mu    sync.Mutex
	scans []scan
	// scanned is signalled after every DueFollowUps.
	scanned chan struct{}
}

// scan is one DueFollowUps call: when it looked, and what it found due.
type scan struct {
	now  time.Time
	refs []executor.FollowUpRef
}

func newWatchJournal(s *boltstore.Store) *watchJournal {
	return &watchJournal{Store: s, prompted: make(chan string, 1), saved: make(chan struct{}, 1), scanned: make(chan struct{}, 1)}
}

func (p *watchJournal) SaveRun(ctx context.Context, run *executor.Run, n ...approvals.Notice) error {
	err := p.Store.SaveRun(ctx, run, n...)
	if err == nil && run.Prompt != nil {
		select {
		case p.prompted <- run.RequestID:
		default:
		}
	}
	if err == nil {
		select {
		case p.saved <- struct{}{}:
		default:
		}
	}
	return err
}

func (p *watchJournal) DueFollowUps(ctx context.Context, now time.Time) ([]executor.FollowUpRef, error) {
	refs, err := p.Store.DueFollowUps(ctx, now)
	if err == nil {
		p.mu.Lock()
		p.scans = append(p.scans, scan{now: now, refs: refs})
		p.mu.Unlock()
		select {
		case p.scanned <- struct{}{}:
		default:
		}
	}
	return refs, err
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

// finishSignal wraps the service to signal when a request finishes.
type finishSignal struct {
	*approvals.Service
	ch chan string
}

func (f finishSignal) Finish(ctx context.Context, id string, to approvals.State, outcome string) (*approvals.Request, error) {
	r, err := f.Service.Finish(ctx, id, to, outcome)
	if err == nil {
		f.ch <- id
	}
	return r, err
}

// scripted is a Rotator whose steps are test functions. It is also a
// rotators.Reverter (canRevert nil: anything may be reverted).
type scripted struct {
	steps     []rotators.Step
	rollback  []rotators.Step
	followUps []rotators.FollowUp
	canRevert func(facts map[string]string) error

	mu    sync.Mutex
	specs []rotators.Spec // every Spec planned for
}

func (s *scripted) Plan(spec rotators.Spec) rotators.Plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.specs = append(s.specs, spec)
	return rotators.Plan{Steps: s.steps, Rollback: s.rollback, FollowUps: s.followUps}
}

// setFollowUps changes the plan's follow-ups, as a config change would.
func (s *scripted) setFollowUps(f []rotators.FollowUp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followUps = f
}

func (s *scripted) CanRevert(facts map[string]string) error {
	if s.canRevert == nil {
		return nil
	}
	return s.canRevert(facts)
}

// plannedFor reports whether a plan was made with spec.RollbackOf == id.
func (s *scripted) plannedRollbackOf(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.specs {
		if sp.RollbackOf == id {
			return true
		}
	}
	return false
}

func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func newFixture(t *testing.T, path string, plan *scripted) *fixture {
	t.Helper()
	return newFixtureWith(t, path, plan, fixtureOpts{})
}

// fixtureOpts vary a fixture; the zero value is newFixture's.
type fixtureOpts struct {
	// clock drives Now and After; nil: a clock that ticks a second per
	// reading with an immediate After (no waiting at all).
	clock *fakeClock
	// stepDone is Config.StepDone.
	stepDone func(requestID, step string)
	// more are rotators besides "openai".
	more map[string]rotators.Rotator
}

func newFixtureWith(t *testing.T, path string, plan *scripted, o fixtureOpts) *fixture {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "rotary.db")
	}
	store, err := boltstore.Open(path, boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, path: path, store: store, plan: plan, logs: &syncBuffer{}, finished: make(chan string, 16), journal: newWatchJournal(store), clock: o.clock}
	f.prompted = f.journal.prompted
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := clock()
	after := func(time.Duration) <-chan time.Time { c := make(chan time.Time, 1); c <- time.Time{}; return c }
	if o.clock != nil {
		now, after = o.clock.Now, o.clock.After
	}
	rots := map[string]rotators.Rotator{"openai": plan}
	for name, r := range o.more {
		rots[name] = r
	}
	var n atomic.Int64
	var ex *executor.Executor
	f.svc = approvals.NewService(approvals.Deps{
		Store: store,
		Policy: approvals.Policy{TTL: time.Hour, DefaultEnv: "prod", Targets: map[string]approvals.Target{
			"openai": {Name: "openai", Kind: "test", Approvers: map[string]approvals.Approvers{"prod": {Users: []string{"UAPPROVER"}}}},
		}},
		Starter: starter(func(id string) { ex.Wake(id) }),
		Now:     now,
		NewID:   func() string { return fmt.Sprintf("R-TEST%02d", n.Add(1)) },
		Log:     log,
	})
	ex = executor.New(executor.Config{
		Requests: finishSignal{f.svc, f.finished},
		Journal:  f.journal,
		Rotators: rots,
		Now:      now,
		Log:      log,
		After:    after,
		StepDone: o.stepDone,
	})
	f.ex = ex
	return f
}

type starter func(string)

func (s starter) Wake(id string) { s(id) }

func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() { defer close(f.done); _ = f.ex.Run(ctx) }()
	f.t.Cleanup(f.stop)
}

// stop ends the executor (as SIGTERM would) and closes the store.
func (f *fixture) stop() {
	f.halt()
	_ = f.store.Close()
}

// halt ends the executor's loop (as SIGTERM would) but keeps the store open,
// so the test can call the executor's methods without a loop acting on them.
func (f *fixture) halt() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel = nil
	}
}

func (f *fixture) approved() *approvals.Request {
	f.t.Helper()
	ctx := context.Background()
	r, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: "UREQUESTER"})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, r.ID, "UAPPROVER"); err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) waitFinished(id string) *approvals.Request {
	f.t.Helper()
	select {
	case got := <-f.finished:
		if got != id {
			f.t.Fatalf("finished %s, want %s", got, id)
		}
	case <-time.After(testTimeout):
		f.t.Fatalf("request %s did not finish; logs:\n%s", id, f.logs.String())
	}
	r, err := f.svc.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) run(id string) *executor.Run {
	f.t.Helper()
	run, err := f.store.LoadRun(context.Background(), id)
	if err != nil || run == nil {
		f.t.Fatalf("load run: %v %v", run, err)
	}
	return run
}

// counter counts step executions by name.
type counter struct {
	mu    sync.Mutex
	n     map[string]int
	order []string
}

func (c *counter) hit(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
	c.order = append(c.order, name)
}

func (c *counter) get(name string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[name] }

func step(c *counter, name string, fn func(ctx context.Context, run rotators.Run) error) rotators.Step {
	return rotators.Step{Name: name, Title: "Step " + name, Run: func(ctx context.Context, run rotators.Run) error {
		c.hit(name)
		if fn == nil {
			return nil
		}
		return fn(ctx, run)
	}}
}

func statuses(recs []executor.StepRecord) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Name+"="+string(r.Status))
	}
	return strings.Join(s, ",")
}

func TestRunsStepsInOrderAndSucceeds(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{steps: []rotators.Step{
		step(c, "a", func(ctx context.Context, run rotators.Run) error { return run.Record(ctx, "key_id", "k1") }),
		step(c, "b", func(ctx context.Context, run rotators.Run) error {
			if run.Fact("key_id") != "k1" {
				return errors.New("fact from step a not visible")
			}
			run.Progress(ctx, "half way")
			return nil
		}),
		step(c, "c", nil),
	}})
	f.start()
	r := f.approved()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateSucceeded {
		t.Fatalf("state %s, want succeeded (%s)", got.State, got.Outcome)
	}
	if strings.Join(c.order, "") != "abc" {
		t.Fatalf("order %v", c.order)
	}
	run := f.run(r.ID)
	if statuses(run.Steps) != "a=done,b=done,c=done" || run.Phase != executor.PhaseDone {
		t.Fatalf("journal %s phase %s", statuses(run.Steps), run.Phase)
	}
	if run.Steps[1].Detail != "half way" || run.Facts["key_id"] != "k1" {
		t.Fatalf("detail/facts not journaled: %+v %+v", run.Steps[1], run.Facts)
	}
}

func TestFailedStepRollsBack(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{
		steps: []rotators.Step{
			step(c, "store", func(ctx context.Context, run rotators.Run) error { return run.Record(ctx, "new_version", "v2") }),
			step(c, "verify", func(context.Context, rotators.Run) error {
				return rotators.Permanent(errors.New("3 error lines in pod x"))
			}),
			step(c, "never", nil),
		},
		rollback: []rotators.Step{
			step(c, "restore", func(_ context.Context, run rotators.Run) error {
				if run.Fact("new_version") == "" {
					return rotators.ErrNothingToUndo
				}
				return nil
			}),
			step(c, "noop", func(context.Context, rotators.Run) error { return rotators.ErrNothingToUndo }),
		},
	})
	f.start()
	r := f.approved()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateRolledBack {
		t.Fatalf("state %s (%s), want rolled_back", got.State, got.Outcome)
	}
	if !strings.Contains(got.Outcome, "3 error lines") {
		t.Fatalf("outcome does not name the cause: %q", got.Outcome)
	}
	if c.get("verify") != 1 || c.get("never") != 0 {
		t.Fatalf("a permanent error must not be retried and later steps must not run: %v", c.n)
	}
	run := f.run(r.ID)
	if statuses(run.Rollback) != "restore=done,noop=skipped" || run.FailedStep != "verify" {
		t.Fatalf("rollback journal %s failed=%s", statuses(run.Rollback), run.FailedStep)
	}
}

func TestFailureBeforeAnyChangeIsFailedNotRolledBack(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{
		steps:    []rotators.Step{step(c, "new_key", func(context.Context, rotators.Run) error { return errors.New("provider 503") })},
		rollback: []rotators.Step{step(c, "restore", func(context.Context, rotators.Run) error { return rotators.ErrNothingToUndo })},
	})
	f.start()
	r := f.approved()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateFailed || !strings.Contains(got.Outcome, "nothing had been changed") {
		t.Fatalf("state %s outcome %q", got.State, got.Outcome)
	}
	if n := c.get("new_key"); n != rotators.DefaultAttempts {
		t.Fatalf("transient error tried %d times, want %d", n, rotators.DefaultAttempts)
	}
}

func TestRollbackFailureNeedsManualAction(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{
		steps:    []rotators.Step{step(c, "x", func(context.Context, rotators.Run) error { return rotators.Permanent(errors.New("boom")) })},
		rollback: []rotators.Step{step(c, "undo", func(context.Context, rotators.Run) error { return rotators.Permanent(errors.New("undo broke")) })},
	})
	f.start()
	r := f.approved()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateFailed || !strings.Contains(got.Outcome, "manual action needed") {
		t.Fatalf("state %s outcome %q", got.State, got.Outcome)
	}
}

// TestResumeAfterStop stops the executor in the middle of a step and starts a
// new one on the same bbolt file: finished steps are not repeated, the
// interrupted one is, and the request finishes exactly once.
func TestResumeAfterStop(t *testing.T) {
	c := &counter{}
	entered := make(chan struct{}, 1)
	block := true
	var mu sync.Mutex
	plan := &scripted{steps: []rotators.Step{
		step(c, "a", nil),
		step(c, "b", func(ctx context.Context, run rotators.Run) error {
			mu.Lock()
			b := block
			mu.Unlock()
			if !b {
				return nil
			}
			entered <- struct{}{}
			<-ctx.Done() // the process stops while b is in flight
			return ctx.Err()
		}),
		step(c, "c", nil),
	}}
	f := newFixture(t, "", plan)
	f.start()
	r := f.approved()
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("step b never started")
	}
	f.stop()

	mid, err := boltstore.Open(f.path, boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	run, _ := mid.LoadRun(context.Background(), r.ID)
	req, _ := approvalsGet(mid, r.ID)
	_ = mid.Close()
	if statuses(run.Steps) != "a=done,b=running,c=pending" || req.State != approvals.StateRunning {
		t.Fatalf("after stop: journal %s state %s (a stop must not roll back)", statuses(run.Steps), req.State)
	}

	mu.Lock()
	block = false
	mu.Unlock()
	f2 := newFixture(t, f.path, plan)
	f2.start()
	got := f2.waitFinished(r.ID)
	if got.State != approvals.StateSucceeded {
		t.Fatalf("state after resume %s (%s)", got.State, got.Outcome)
	}
	if c.get("a") != 1 || c.get("b") != 2 || c.get("c") != 1 {
		t.Fatalf("executions %v: a and c once, b twice (interrupted, then resumed)", c.n)
	}
	if f2.run(r.ID).Resumes != 1 {
		t.Fatal("resume not counted")
	}
	select {
	case id := <-f2.finished:
		t.Fatalf("request %s finished twice", id)
	default:
	}
}

func approvalsGet(s *boltstore.Store, id string) (*approvals.Request, error) {
	var out *approvals.Request
	err := s.View(context.Background(), func(tx approvals.Tx) error {
		r, err := tx.Get(id)
		out = r
		return err
	})
	return out, err
}

// TestSecretLostRestartsFromProducer: a memory-only value lost in a restart
// makes the executor re-run its producing step instead of failing.
func TestSecretLostRestartsFromProducer(t *testing.T) {
	c := &counter{}
	lostOnce := true
	f := newFixture(t, "", &scripted{steps: []rotators.Step{
		step(c, "new_key", func(_ context.Context, run rotators.Run) error {
			run.KeepSecret("new_key", secret.FromString("sk-live-made-"+fmt.Sprint(c.get("new_key"))))
			return nil
		}),
		step(c, "store", func(_ context.Context, run rotators.Run) error {
			if lostOnce {
				lostOnce = false
				return &rotators.SecretLostError{From: "new_key"}
			}
			if _, ok := run.Secret("new_key"); !ok {
				return errors.New("secret missing")
			}
			return nil
		}),
	}})
	f.start()
	r := f.approved()
	if got := f.waitFinished(r.ID); got.State != approvals.StateSucceeded {
		t.Fatalf("state %s (%s)", got.State, got.Outcome)
	}
	if c.get("new_key") != 2 || c.get("store") != 2 {
		t.Fatalf("executions %v", c.n)
	}
}

func TestSecretsNeverReachJournalOrLogs(t *testing.T) {
	const value = "sk-proj-SUPERSECRET-0123456789"
	c := &counter{}
	f := newFixture(t, "", &scripted{steps: []rotators.Step{
		step(c, "new_key", func(_ context.Context, run rotators.Run) error {
			run.KeepSecret("new_key", secret.FromString(value))
			run.Log().Info("made a key", "key", secret.FromString(value))
			return nil
		}),
		step(c, "leaky", func(ctx context.Context, run rotators.Run) error {
			run.Progress(ctx, "provider said: invalid key "+value)
			return rotators.Permanent(fmt.Errorf("provider rejected %s", value))
		}),
	}})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	run := f.run(r.ID)
	dump := fmt.Sprintf("%+v", run)
	if strings.Contains(dump, value) || strings.Contains(f.logs.String(), value) {
		t.Fatalf("secret leaked into the journal or logs:\n%s\n%s", dump, f.logs.String())
	}
	if !strings.Contains(run.Steps[1].Error, secret.Redacted) {
		t.Fatalf("error not redacted but kept: %q", run.Steps[1].Error)
	}
	f.stop()
	assertFileLacks(t, f.path, value)
}

func TestPanickingStepFailsTheRun(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{steps: []rotators.Step{
		step(c, "bad", func(context.Context, rotators.Run) error { panic("nil map") }),
	}})
	f.start()
	r := f.approved()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateFailed || c.get("bad") != 1 {
		t.Fatalf("state %s, executions %d", got.State, c.get("bad"))
	}
}

func TestStepTimeoutIsAFailure(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{steps: []rotators.Step{{
		Name: "slow", Title: "Slow", Timeout: 10 * time.Millisecond, Attempts: 1,
		Run: func(ctx context.Context, run rotators.Run) error { c.hit("slow"); <-ctx.Done(); return ctx.Err() },
	}}})
	f.start()
	r := f.approved()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateFailed || !strings.Contains(got.Outcome, "timed out") {
		t.Fatalf("state %s outcome %q", got.State, got.Outcome)
	}
}

func TestPromptAnswerIsCheckedAgainstTheRequest(t *testing.T) {
	c := &counter{}
	asked := make(chan struct{}, 1)
	var got secret.Value
	f := newFixture(t, "", &scripted{steps: []rotators.Step{
		step(c, "paste", func(ctx context.Context, run rotators.Run) error {
			asked <- struct{}{}
			v, err := run.Ask(ctx, rotators.Prompt{ID: "paste_key", Label: "Paste", Secret: true, Audience: rotators.AudienceRequester})
			got = v
			return err
		}),
	}})
	f.start()
	r := f.approved()
	<-asked
	ctx := context.Background()
	select { // the prompt is open once it is journaled
	case <-f.prompted:
	case <-time.After(testTimeout):
		t.Fatal("prompt never journaled")
	}
	if _, ok := f.ex.PromptOpen(r.ID, "paste_key"); !ok {
		t.Fatal("prompt not open")
	}
	if err := f.ex.Answer(ctx, r.ID, "paste_key", "UAPPROVER", secret.FromString("x")); !errors.Is(err, executor.ErrNotYourPrompt) {
		t.Fatalf("approver answered a requester-only prompt: %v", err)
	}
	if err := f.ex.Answer(ctx, r.ID, "other", "UREQUESTER", secret.FromString("x")); !errors.Is(err, executor.ErrNoPrompt) {
		t.Fatalf("wrong prompt id accepted: %v", err)
	}
	if err := f.ex.Answer(ctx, r.ID, "paste_key", "UREQUESTER", secret.Value{}); !errors.Is(err, executor.ErrEmptyAnswer) {
		t.Fatalf("empty secret accepted: %v", err)
	}
	if err := f.ex.Answer(ctx, r.ID, "paste_key", "UREQUESTER", secret.FromString("rk_live_pasted")); err != nil {
		t.Fatal(err)
	}
	if st := f.waitFinished(r.ID); st.State != approvals.StateSucceeded || string(got.Reveal()) != "rk_live_pasted" {
		t.Fatalf("state %s", st.State)
	}
}

func assertFileLacks(t *testing.T, path, value string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(value)) {
		t.Fatalf("%s holds the secret value", path)
	}
}

func TestWakeTwiceRunsOnce(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{steps: []rotators.Step{step(c, "only", nil)}})
	f.start()
	r := f.approved()
	for range 5 {
		f.ex.Wake(r.ID)
	}
	f.waitFinished(r.ID)
	// A rescan after the end finds nothing to do.
	f.ex.Wake(r.ID)
	f.stop()
	if c.get("only") != 1 {
		t.Fatalf("ran %d times", c.get("only"))
	}
}

func TestMayAnswerChecksTheAudienceBeforeAnyInput(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", &scripted{steps: []rotators.Step{
		step(c, "confirm", func(ctx context.Context, run rotators.Run) error {
			_, err := run.Ask(ctx, rotators.Prompt{ID: "revoked", Label: "Revoke", Audience: rotators.AudienceParticipants})
			return err
		}),
	}})
	f.start()
	r := f.approved()
	<-f.prompted
	for user, want := range map[string]error{"UREQUESTER": nil, "UAPPROVER": nil, "UOUTSIDER": executor.ErrNotParticipant} {
		if err := f.ex.MayAnswer(r.ID, "revoked", user); !errors.Is(err, want) {
			t.Errorf("MayAnswer(%s) = %v, want %v", user, err, want)
		}
	}
	if err := f.ex.MayAnswer(r.ID, "other", "UREQUESTER"); !errors.Is(err, executor.ErrNoPrompt) {
		t.Errorf("unknown prompt: %v", err)
	}
	if err := f.ex.Answer(context.Background(), r.ID, "revoked", "UAPPROVER", secret.Value{}); err != nil {
		t.Fatal(err)
	}
	if got := f.waitFinished(r.ID); got.State != approvals.StateSucceeded {
		t.Fatalf("state %s", got.State)
	}
}
