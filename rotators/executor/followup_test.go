package executor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// fakeClock is a clock that moves only when the test says so; After fires
// when Advance passes its deadline.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			keep = append(keep, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = keep
	return c.now
}

const (
	grace    = 24 * time.Hour
	postpone = 6 * time.Hour
)

// removeOld is a follow-up like the JWT rotator's: after the grace period it
// runs its steps (each counted in c).
func removeOld(c *counter, steps ...rotators.Step) rotators.FollowUp {
	if len(steps) == 0 {
		steps = []rotators.Step{step(c, "remove", func(ctx context.Context, run rotators.Run) error {
			if run.Fact("old_key") == "" {
				return errors.New("the forward steps' fact is not visible")
			}
			return run.Record(ctx, "old_key_removed", "yes")
		})}
	}
	return rotators.FollowUp{Name: "remove_old", Title: "Remove the old key", Delay: grace, PostponeBy: postpone, Steps: steps}
}

// followUpPlan: one forward step that records the fact the follow-up reads,
// a rollback step (counted: a follow-up never triggers it) and the follow-up.
func followUpPlan(c *counter, fu rotators.FollowUp) *scripted {
	return &scripted{
		steps:     []rotators.Step{step(c, "rotate", func(ctx context.Context, run rotators.Run) error { return run.Record(ctx, "old_key", "k1") })},
		rollback:  []rotators.Step{step(c, "undo", nil)},
		followUps: []rotators.FollowUp{fu},
	}
}

// waitRun waits until the journal of id satisfies ok, re-reading it after every save.
func (f *fixture) waitRun(id, what string, ok func(*executor.Run) bool) *executor.Run {
	f.t.Helper()
	deadline := time.After(testTimeout)
	for {
		run, err := f.store.LoadRun(context.Background(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		if run != nil && ok(run) {
			return run
		}
		select {
		case <-f.journal.saved:
		case <-deadline:
			f.t.Fatalf("journal of %s never showed %s: %+v\nlogs:\n%s", id, what, run, f.logs.String())
		}
	}
}

func (f *fixture) waitFollowUp(id, name string, want executor.FollowUpStatus) executor.FollowUpRecord {
	f.t.Helper()
	run := f.waitRun(id, fmt.Sprintf("follow-up %s %s", name, want), func(r *executor.Run) bool {
		fu, ok := r.FollowUp(name)
		return ok && fu.Status == want
	})
	fu, _ := run.FollowUp(name)
	return *fu
}

// waitScanAt waits for a follow-up scan made at or after at, and returns what it found due.
func (f *fixture) waitScanAt(at time.Time) []executor.FollowUpRef {
	f.t.Helper()
	deadline := time.After(testTimeout)
	for {
		f.journal.mu.Lock()
		for _, s := range f.journal.scans {
			if !s.now.Before(at) {
				f.journal.mu.Unlock()
				return s.refs
			}
		}
		f.journal.mu.Unlock()
		select {
		case <-f.journal.scanned:
		case <-deadline:
			f.t.Fatalf("no follow-up scan at or after %s; logs:\n%s", at, f.logs.String())
		}
	}
}

// advanceAndScan moves the clock and returns what the executor's next scan
// finds due, once the executor is idle again. Waking a finished request
// makes the loop scan: the executor releases it at once, and a release makes
// the loop look for follow-ups.
func (f *fixture) advanceAndScan(d time.Duration, finishedID string) []executor.FollowUpRef {
	f.t.Helper()
	now := f.clock.Advance(d)
	f.ex.Wake(finishedID)
	refs := f.waitScanAt(now)
	f.waitIdle()
	return refs
}

// waitIdle waits until nothing is in flight. Every release makes the loop
// scan, so each scan signal is a moment to look again.
func (f *fixture) waitIdle() {
	f.t.Helper()
	deadline := time.After(testTimeout)
	for !f.ex.Idle() {
		select {
		case <-f.journal.scanned:
		case <-deadline:
			f.t.Fatalf("the executor never became idle; logs:\n%s", f.logs.String())
		}
	}
}

// drainNotices returns every notice enqueued since the last drain, in order.
func (f *fixture) drainNotices() []approvals.Notice {
	f.t.Helper()
	ctx := context.Background()
	var out []approvals.Notice
	for {
		due, err := f.store.OutboxDue(ctx, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 100)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(due) == 0 {
			return out
		}
		for _, e := range due {
			out = append(out, e.Notice)
			if err := f.store.OutboxDone(ctx, e.Seq); err != nil {
				f.t.Fatal(err)
			}
		}
	}
}

// replies lists the follow-up reply events among ns as "event:step[:actor]".
func replies(ns []approvals.Notice, id string) []string {
	var out []string
	for _, n := range ns {
		if n.Kind != approvals.NoticeReply || n.RequestID != id || !strings.HasPrefix(n.Event, "followup_") {
			continue
		}
		s := n.Event + ":" + n.Step
		if n.Actor != "" {
			s += ":" + n.Actor
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func actions(fu executor.FollowUpRecord) string {
	var s []string
	for _, h := range fu.History {
		a := string(h.Action)
		if h.Actor != "" {
			a += "(" + h.Actor + ")"
		}
		s = append(s, a)
	}
	return strings.Join(s, ",")
}

// userMessage returns err's UserMessage, failing the test if it has none.
func userMessage(t *testing.T, err error) string {
	t.Helper()
	var um interface{ UserMessage() string }
	if !errors.As(err, &um) {
		t.Fatalf("error %v has no UserMessage", err)
	}
	return um.UserMessage()
}

// TestFollowUpScheduledThenRunsOnceWhenDue: success schedules the follow-up
// in the journal at finish+Delay and frees the target; it does not run a
// second before it is due, runs once when due (woken by its timer alone),
// and never again.
func TestFollowUpScheduledThenRunsOnceWhenDue(t *testing.T) {
	c := &counter{}
	clk := newFakeClock()
	var doneMu sync.Mutex
	var stepsDone []string
	f := newFixtureWith(t, "", followUpPlan(c, removeOld(c)), fixtureOpts{clock: clk, stepDone: func(id, step string) {
		doneMu.Lock()
		defer doneMu.Unlock()
		stepsDone = append(stepsDone, step)
	}})
	f.start()
	r := f.approved()
	finished := clk.Now()
	got := f.waitFinished(r.ID)
	if got.State != approvals.StateSucceeded || !strings.Contains(got.Outcome, `"Remove the old key" is scheduled for 2026-11-27 09:00 UTC`) {
		t.Fatalf("state %s outcome %q; want succeeded, naming the scheduled follow-up", got.State, got.Outcome)
	}
	run := f.run(r.ID)
	fu, ok := run.FollowUp("remove_old")
	if !ok || fu.Status != executor.FollowUpScheduled || !fu.DueAt.Equal(finished.Add(grace)) || actions(*fu) != "scheduled" {
		t.Fatalf("follow-up %+v; want scheduled, due %s", fu, finished.Add(grace))
	}
	if statuses(fu.Steps) != "remove=pending" || fu.Title != "Remove the old key" {
		t.Fatalf("follow-up steps %s title %q", statuses(fu.Steps), fu.Title)
	}
	if n := replies(f.drainNotices(), r.ID); !slices.Equal(n, []string{"followup_scheduled:remove_old"}) {
		t.Fatalf("replies %v", n)
	}
	// The request finished: its target slot is free for another (e.g. emergency) rotation.
	if _, err := f.svc.Open(context.Background(), approvals.OpenInput{Target: "openai", Requester: "UOTHER"}); err != nil {
		t.Fatalf("target still held after the request finished: %v", err)
	}

	if refs := f.advanceAndScan(grace-time.Second, r.ID); len(refs) != 0 || c.get("remove") != 0 {
		t.Fatalf("a second before due: found %v, ran %d times", refs, c.get("remove"))
	}
	clk.Advance(time.Second) // due now: the loop's timer alone must run it
	fu2 := f.waitFollowUp(r.ID, "remove_old", executor.FollowUpDone)
	if c.get("remove") != 1 || actions(fu2) != "scheduled,started,done" || statuses(fu2.Steps) != "remove=done" {
		t.Fatalf("ran %d times, history %s, steps %s", c.get("remove"), actions(fu2), statuses(fu2.Steps))
	}
	if f.run(r.ID).Facts["old_key_removed"] != "yes" {
		t.Fatal("the follow-up's fact was not journaled with the run")
	}
	if n := replies(f.drainNotices(), r.ID); !slices.Equal(n, []string{"followup_done:remove_old", "followup_started:remove_old"}) {
		t.Fatalf("replies %v", n)
	}
	if refs := f.advanceAndScan(3*grace, r.ID); len(refs) != 0 {
		t.Fatalf("a done follow-up is still due: %v", refs)
	}
	if c.get("remove") != 1 || c.get("undo") != 0 {
		t.Fatalf("executions %v", c.n)
	}
	doneMu.Lock()
	defer doneMu.Unlock()
	if !slices.Equal(stepsDone, []string{"rotate", "remove"}) {
		t.Fatalf("StepDone hook saw %v; want the forward step and the follow-up step", stepsDone)
	}
}

// TestFollowUpSurvivesRestartAndRunsOnce: the schedule is in the bbolt file;
// a new executor started after the due time runs it once, and a third one
// does not run it again.
func TestFollowUpSurvivesRestartAndRunsOnce(t *testing.T) {
	c := &counter{}
	clk := newFakeClock()
	plan := followUpPlan(c, removeOld(c))
	f := newFixtureWith(t, "", plan, fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	f.waitFollowUp(r.ID, "remove_old", executor.FollowUpScheduled)
	f.stop()

	clk.Advance(grace + time.Hour) // the bot was down when it fell due
	f2 := newFixtureWith(t, f.path, plan, fixtureOpts{clock: clk})
	f2.start()
	f2.waitFollowUp(r.ID, "remove_old", executor.FollowUpDone)
	f2.stop()

	f3 := newFixtureWith(t, f.path, plan, fixtureOpts{clock: clk})
	f3.start()
	if refs := f3.waitScanAt(clk.Now()); len(refs) != 0 {
		t.Fatalf("after restart, still due: %v", refs)
	}
	f3.stop()
	if c.get("remove") != 1 || c.get("rotate") != 1 {
		t.Fatalf("executions %v; want the follow-up once across three processes", c.n)
	}
}

// TestFollowUpResumesAfterStopMidStep: a stop mid-step leaves the follow-up
// running; the next start resumes it, repeating only the interrupted step.
func TestFollowUpResumesAfterStopMidStep(t *testing.T) {
	c := &counter{}
	clk := newFakeClock()
	entered := make(chan struct{}, 1)
	var mu sync.Mutex
	block := true
	plan := followUpPlan(c, removeOld(c,
		step(c, "remove", nil),
		step(c, "restart", func(ctx context.Context, run rotators.Run) error {
			mu.Lock()
			b := block
			mu.Unlock()
			if !b {
				return nil
			}
			entered <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}),
	))
	f := newFixtureWith(t, "", plan, fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	clk.Advance(grace)
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatalf("follow-up step never started; logs:\n%s", f.logs.String())
	}
	f.stop()

	mid, err := boltstore.Open(f.path, boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	run, _ := mid.LoadRun(context.Background(), r.ID)
	due, _ := mid.DueFollowUps(context.Background(), clk.Now())
	_ = mid.Close()
	fu, _ := run.FollowUp("remove_old")
	if fu.Status != executor.FollowUpRunning || statuses(fu.Steps) != "remove=done,restart=running" {
		t.Fatalf("after stop: %s %s; want running with restart in flight", fu.Status, statuses(fu.Steps))
	}
	if len(due) != 1 || due[0].RequestID != r.ID || due[0].Name != "remove_old" {
		t.Fatalf("interrupted follow-up not in the due index: %v", due)
	}

	mu.Lock()
	block = false
	mu.Unlock()
	f2 := newFixtureWith(t, f.path, plan, fixtureOpts{clock: clk})
	f2.start()
	done := f2.waitFollowUp(r.ID, "remove_old", executor.FollowUpDone)
	if c.get("remove") != 1 || c.get("restart") != 2 {
		t.Fatalf("executions %v; want remove once, restart twice (interrupted, resumed)", c.n)
	}
	if actions(done) != "scheduled,started,done" {
		t.Fatalf("history %s; a resume is not a second start", actions(done))
	}
}

// TestFollowUpNowPostponeAndRefusals drives the button API on a halted
// executor (nothing runs behind the test's back), then lets the loop run
// what was made due.
func TestFollowUpNowPostponeAndRefusals(t *testing.T) {
	ctx := context.Background()
	c := &counter{}
	clk := newFakeClock()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	f := newFixtureWith(t, "", followUpPlan(c, removeOld(c, step(c, "remove", func(ctx context.Context, run rotators.Run) error {
		entered <- struct{}{}
		<-release
		return nil
	}))), fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	scheduled := f.waitFollowUp(r.ID, "remove_old", executor.FollowUpScheduled)
	f.halt()
	f.drainNotices()

	// Postponing moves it by PostponeBy from its due time...
	due, err := f.ex.PostponeFollowUp(ctx, r.ID, "remove_old", "UREQUESTER")
	if err != nil || !due.Equal(scheduled.DueAt.Add(postpone)) {
		t.Fatalf("postpone = %s, %v; want %s", due, err, scheduled.DueAt.Add(postpone))
	}
	// ...or from now, once it is overdue.
	now := clk.Advance(grace + postpone + time.Hour)
	if due, err = f.ex.PostponeFollowUp(ctx, r.ID, "remove_old", "UAPPROVER"); err != nil || !due.Equal(now.Add(postpone)) {
		t.Fatalf("overdue postpone = %s, %v; want %s", due, err, now.Add(postpone))
	}
	fu, _ := f.run(r.ID).FollowUp("remove_old")
	if !fu.DueAt.Equal(due) || actions(*fu) != "scheduled,postponed(UREQUESTER),postponed(UAPPROVER)" {
		t.Fatalf("journal due %s history %s", fu.DueAt, actions(*fu))
	}
	if n := replies(f.drainNotices(), r.ID); !slices.Equal(n, []string{"followup_postponed:remove_old:UAPPROVER", "followup_postponed:remove_old:UREQUESTER"}) {
		t.Fatalf("replies %v", n)
	}

	refusals := []struct {
		name     string
		id, fu   string
		postpone bool
		want     string
	}{
		{"unknown request", "R-NOPE", "remove_old", false, "There is no request R-NOPE"},
		{"unknown follow-up", r.ID, "typo", false, `has no follow-up "typo"; its follow-ups are: remove_old`},
		{"unknown follow-up (postpone)", r.ID, "typo", true, `has no follow-up "typo"`},
	}
	for _, tt := range refusals {
		var err error
		if tt.postpone {
			_, err = f.ex.PostponeFollowUp(ctx, tt.id, tt.fu, "UREQUESTER")
		} else {
			err = f.ex.FollowUpNow(ctx, tt.id, tt.fu, "UREQUESTER")
		}
		if msg := userMessage(t, err); !strings.Contains(msg, tt.want) {
			t.Errorf("%s: %q, want it to contain %q", tt.name, msg, tt.want)
		}
	}

	if err := f.ex.FollowUpNow(ctx, r.ID, "remove_old", "UAPPROVER"); err != nil {
		t.Fatal(err)
	}
	fu, _ = f.run(r.ID).FollowUp("remove_old")
	if fu.Status != executor.FollowUpScheduled || !fu.DueAt.Equal(clk.Now()) || !strings.HasSuffix(actions(*fu), "run_now(UAPPROVER)") {
		t.Fatalf("after run now: %s due %s history %s", fu.Status, fu.DueAt, actions(*fu))
	}
	if n := replies(f.drainNotices(), r.ID); !slices.Equal(n, []string{"followup_run_now:remove_old:UAPPROVER"}) {
		t.Fatalf("replies %v", n)
	}

	f.start() // the loop finds it due and runs it
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatalf("run now did not run it; logs:\n%s", f.logs.String())
	}
	// While it runs, both buttons refuse (the request is in flight).
	for _, try := range []func() error{
		func() error { return f.ex.FollowUpNow(ctx, r.ID, "remove_old", "UREQUESTER") },
		func() error { _, err := f.ex.PostponeFollowUp(ctx, r.ID, "remove_old", "UREQUESTER"); return err },
	} {
		if msg := userMessage(t, try()); !strings.Contains(msg, "is running right now") {
			t.Errorf("while running: %q", msg)
		}
	}
	close(release)
	f.waitFollowUp(r.ID, "remove_old", executor.FollowUpDone)
	f.waitIdle()
	for _, try := range []func() error{
		func() error { return f.ex.FollowUpNow(ctx, r.ID, "remove_old", "UREQUESTER") },
		func() error { _, err := f.ex.PostponeFollowUp(ctx, r.ID, "remove_old", "UREQUESTER"); return err },
	} {
		if msg := userMessage(t, try()); !strings.Contains(msg, "already ran") {
			t.Errorf("after done: %q", msg)
		}
	}
	if c.get("remove") != 1 {
		t.Fatalf("ran %d times", c.get("remove"))
	}
}

// TestFailedFollowUpStaysFailedUntilRunAgain: a failing follow-up is not
// rolled back and not retried by the schedule; run now runs it again.
func TestFailedFollowUpStaysFailedUntilRunAgain(t *testing.T) {
	ctx := context.Background()
	const leaked = "sk-followup-SECRET-42"
	c := &counter{}
	clk := newFakeClock()
	var mu sync.Mutex
	fail := true
	f := newFixtureWith(t, "", followUpPlan(c, removeOld(c,
		step(c, "remove", nil),
		step(c, "restart", func(_ context.Context, run rotators.Run) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				run.KeepSecret("k", secret.FromString(leaked))
				return rotators.Permanent(fmt.Errorf("rollout stuck near %s", leaked))
			}
			return nil
		}),
	)), fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	clk.Advance(grace)
	failed := f.waitFollowUp(r.ID, "remove_old", executor.FollowUpFailed)
	if !strings.Contains(failed.Error, `step "Step restart" failed`) || strings.Contains(failed.Error, leaked) || !strings.Contains(failed.Error, secret.Redacted) {
		t.Fatalf("failure %q: want the step named and the secret redacted", failed.Error)
	}
	if req, _ := f.svc.Get(ctx, r.ID); req.State != approvals.StateSucceeded || c.get("undo") != 0 {
		t.Fatalf("a failed follow-up changed the request (%s) or rolled back (%d)", req.State, c.get("undo"))
	}
	if refs := f.advanceAndScan(grace, r.ID); len(refs) != 0 || c.get("restart") != 1 {
		t.Fatalf("a failed follow-up is due again by itself: %v, ran %d", refs, c.get("restart"))
	}
	if _, err := f.ex.PostponeFollowUp(ctx, r.ID, "remove_old", "UREQUESTER"); !strings.Contains(userMessage(t, err), "failed") {
		t.Fatalf("postpone of a failed follow-up: %v", err)
	}

	mu.Lock()
	fail = false
	mu.Unlock()
	if err := f.ex.FollowUpNow(ctx, r.ID, "remove_old", "UREQUESTER"); err != nil {
		t.Fatal(err)
	}
	done := f.waitFollowUp(r.ID, "remove_old", executor.FollowUpDone)
	if c.get("remove") != 1 || c.get("restart") != 2 {
		t.Fatalf("executions %v; want the done step kept and the failed one run again", c.n)
	}
	if actions(done) != "scheduled,started,failed,run_now(UREQUESTER),started,done" || done.Error != "" {
		t.Fatalf("history %s error %q", actions(done), done.Error)
	}
	if done.Steps[1].Attempts != 1 {
		t.Fatalf("the re-run step counted %d attempts; a run again starts with a full set", done.Steps[1].Attempts)
	}
	if n := replies(f.drainNotices(), r.ID); !slices.Contains(n, "followup_failed:remove_old") {
		t.Fatalf("no failure reply: %v", n)
	}
	f.stop()
	assertFileLacks(t, f.path, leaked)
}

// TestFollowUpNoLongerInPlanFailsVisibly: a config change that drops the
// follow-up makes it fail, saying why, without running anything.
func TestFollowUpNoLongerInPlanFailsVisibly(t *testing.T) {
	c := &counter{}
	clk := newFakeClock()
	plan := followUpPlan(c, removeOld(c))
	f := newFixtureWith(t, "", plan, fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	f.waitFollowUp(r.ID, "remove_old", executor.FollowUpScheduled)
	f.waitIdle()
	plan.setFollowUps(nil)
	if _, err := f.ex.PostponeFollowUp(context.Background(), r.ID, "remove_old", "UREQUESTER"); !strings.Contains(userMessage(t, err), "no longer part of the target's plan") {
		t.Fatalf("postpone of a dropped follow-up: %v", err)
	}
	clk.Advance(grace)
	fu := f.waitFollowUp(r.ID, "remove_old", executor.FollowUpFailed)
	if !strings.Contains(fu.Error, "no longer part of the target's plan") || c.get("remove") != 0 {
		t.Fatalf("error %q, ran %d", fu.Error, c.get("remove"))
	}
}

// TestImmediateAfterDoesNotSpin: with an After that fires at once and a
// clock that hardly moves (the default fixture), a follow-up due in a day
// must not make the loop scan in a tight loop.
func TestImmediateAfterDoesNotSpin(t *testing.T) {
	c := &counter{}
	f := newFixture(t, "", followUpPlan(c, removeOld(c)))
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	f.waitFollowUp(r.ID, "remove_old", executor.FollowUpScheduled)
	// Give a spinning loop the chance to show itself: three request wakes,
	// each answered by at most a couple of scans.
	for range 3 {
		f.ex.Wake(r.ID)
	}
	f.halt()
	f.journal.mu.Lock()
	n := len(f.journal.scans)
	f.journal.mu.Unlock()
	if n > 20 {
		t.Fatalf("%d follow-up scans for a handful of events: the scheduler spins on an immediate After", n)
	}
	if c.get("remove") != 0 {
		t.Fatal("ran before due")
	}
}
