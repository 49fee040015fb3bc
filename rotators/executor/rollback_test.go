package executor_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// putRequest writes a request as the approvals service would have left it
// (rollback requests are opened by the service; here the executor is under test).
func (f *fixture) putRequest(r *approvals.Request) {
	f.t.Helper()
	if r.Env == "" {
		r.Env = "prod"
	}
	if r.Kind == "" {
		r.Kind = "test"
	}
	if r.Requester == "" {
		r.Requester = "UREQUESTER"
	}
	now := f.clock.Now()
	r.CreatedAt, r.ExpiresAt = now, now.Add(time.Hour)
	r.Events = []approvals.Event{{At: now, Actor: r.Requester, Action: "requested"}}
	if err := f.store.Update(context.Background(), func(tx approvals.Tx) error { return tx.Put(r) }); err != nil {
		f.t.Fatal(err)
	}
}

// requestRollback files an approved rollback request of orig and wakes the executor.
func (f *fixture) requestRollback(id, orig string) {
	f.t.Helper()
	f.putRequest(&approvals.Request{ID: id, Target: "openai", RollbackOf: orig, State: approvals.StateApproved, DecidedBy: "UAPPROVER"})
	f.ex.Wake(id)
}

// rollbackPlan: the forward step records what it replaced; the rollback
// restores it (if recorded) and has a second step with nothing to undo.
func rollbackPlan(c *counter, restore func(ctx context.Context, run rotators.Run) error) *scripted {
	if restore == nil {
		restore = func(ctx context.Context, run rotators.Run) error {
			if run.Fact("previous_version") == "" {
				return rotators.ErrNothingToUndo
			}
			return run.Record(ctx, "restored_version", run.Fact("previous_version"))
		}
	}
	return &scripted{
		steps: []rotators.Step{step(c, "store", func(ctx context.Context, run rotators.Run) error {
			if err := run.Record(ctx, "previous_version", "v1"); err != nil {
				return err
			}
			return run.Record(ctx, "new_version", "v2")
		})},
		rollback: []rotators.Step{
			step(c, "restore", restore),
			step(c, "revoke_new", func(context.Context, rotators.Run) error { return rotators.ErrNothingToUndo }),
		},
		followUps: []rotators.FollowUp{removeOld(c, step(c, "remove", nil))},
	}
}

// TestRollbackRequestRestores: a rollback request runs the original plan's
// rollback steps as its steps over a copy of the original's facts, cancels
// the original's scheduled follow-up before its first step, and schedules
// nothing itself.
func TestRollbackRequestRestores(t *testing.T) {
	ctx := context.Background()
	c := &counter{}
	clk := newFakeClock()
	plan := rollbackPlan(c, nil)
	var mu sync.Mutex
	var cancelledBeforeFirstStep bool
	var f *fixture
	f = newFixtureWith(t, "", plan, fixtureOpts{clock: clk, stepDone: func(id, step string) {
		if step != "restore" {
			return
		}
		// The original's follow-up must already be cancelled, in the journal.
		orig, _ := f.store.LoadRun(ctx, "R-TEST01")
		fu, _ := orig.FollowUp("remove_old")
		mu.Lock()
		cancelledBeforeFirstStep = fu.Status == executor.FollowUpCancelled
		mu.Unlock()
	}})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	f.waitIdle()
	origFacts := maps.Clone(f.run(r.ID).Facts)
	if err := f.ex.CheckRevertible(ctx, r.ID); err != nil {
		t.Fatalf("CheckRevertible of a succeeded rotation: %v", err)
	}

	f.requestRollback("R-RB1", r.ID)
	got := f.waitFinished("R-RB1")
	if got.State != approvals.StateSucceeded || got.Outcome != "restored what "+r.ID+" replaced" {
		t.Fatalf("rollback request: %s %q", got.State, got.Outcome)
	}
	if !plan.plannedRollbackOf(r.ID) {
		t.Fatal("the plan was not made with Spec.RollbackOf set")
	}
	rb := f.run("R-RB1")
	if statuses(rb.Steps) != "restore=done,revoke_new=skipped" || len(rb.Rollback) != 0 || len(rb.FollowUps) != 0 {
		t.Fatalf("rollback request journal: steps %s rollback %s follow-ups %v", statuses(rb.Steps), statuses(rb.Rollback), rb.FollowUps)
	}
	if rb.Facts["new_version"] != "v2" || rb.Facts["restored_version"] != "v1" {
		t.Fatalf("facts %v: want the original's copied and the restore's own", rb.Facts)
	}
	orig := f.run(r.ID)
	if !maps.Equal(orig.Facts, origFacts) {
		t.Fatalf("the original's facts changed: %v, was %v", orig.Facts, origFacts)
	}
	fu, _ := orig.FollowUp("remove_old")
	last := fu.History[len(fu.History)-1]
	if fu.Status != executor.FollowUpCancelled || last.Actor != "" || last.Action != executor.ActionCancelled || last.Detail != "rolled back by R-RB1" || orig.RolledBackBy != "R-RB1" {
		t.Fatalf("original follow-up %s, last event %+v, rolled back by %q", fu.Status, last, orig.RolledBackBy)
	}
	mu.Lock()
	before := cancelledBeforeFirstStep
	mu.Unlock()
	if !before {
		t.Fatal("the original's follow-up was not cancelled before the first rollback step finished")
	}
	if n := replies(f.drainNotices(), r.ID); !strings.Contains(strings.Join(n, ","), "followup_cancelled:remove_old") {
		t.Fatalf("original thread not told of the cancellation: %v", n)
	}
	if c.get("restore") != 1 || c.get("revoke_new") != 1 {
		t.Fatalf("executions %v", c.n)
	}
	// The cancelled follow-up never runs, and a second rollback is refused.
	if refs := f.advanceAndScan(2*grace, r.ID); len(refs) != 0 || c.get("remove") != 0 {
		t.Fatalf("cancelled follow-up: due %v, ran %d", refs, c.get("remove"))
	}
	for id, want := range map[string]string{r.ID: "already rolled back by R-RB1", "R-RB1": "itself a rollback"} {
		if msg := userMessage(t, f.ex.CheckRevertible(ctx, id)); !strings.Contains(msg, want) {
			t.Errorf("CheckRevertible(%s) = %q, want %q", id, msg, want)
		}
	}
}

// TestRollbackRequestOutcomes: a Reverter refusal, nothing to undo, and a
// failing rollback step (no rollback of the rollback).
func TestRollbackRequestOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		restore   func(ctx context.Context, run rotators.Run) error
		canRevert func(map[string]string) error
		state     approvals.State
		outcome   string
		restores  int  // executions of the restore step
		cancelled bool // the original's follow-up
	}{
		{"reverter refuses", nil, func(facts map[string]string) error {
			if facts["previous_version"] == "v1" {
				return errors.New("version v1 was destroyed")
			}
			return nil
		}, approvals.StateFailed, "cannot be rolled back: version v1 was destroyed", 0, false},
		{"nothing to undo", func(context.Context, rotators.Run) error { return rotators.ErrNothingToUndo },
			nil, approvals.StateFailed, "nothing to roll back: R-TEST01 changed nothing", 1, true},
		{"step fails", func(context.Context, rotators.Run) error { return rotators.Permanent(errors.New("permission denied")) },
			nil, approvals.StateFailed, `rollback of R-TEST01 stopped: step "Step restore" failed: permission denied — manual action needed`, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &counter{}
			plan := rollbackPlan(c, tt.restore)
			plan.canRevert = tt.canRevert
			f := newFixtureWith(t, "", plan, fixtureOpts{clock: newFakeClock()})
			f.start()
			r := f.approved()
			f.waitFinished(r.ID)
			f.waitIdle()
			if tt.canRevert != nil {
				if msg := userMessage(t, f.ex.CheckRevertible(context.Background(), r.ID)); !strings.Contains(msg, tt.outcome) {
					t.Fatalf("CheckRevertible = %q, want %q", msg, tt.outcome)
				}
			}
			f.requestRollback("R-RB1", r.ID)
			got := f.waitFinished("R-RB1")
			if got.State != tt.state || !strings.Contains(got.Outcome, tt.outcome) {
				t.Fatalf("%s %q; want %s %q", got.State, got.Outcome, tt.state, tt.outcome)
			}
			if c.get("restore") != tt.restores || c.get("undo") != 0 {
				t.Fatalf("executions %v", c.n)
			}
			fu, _ := f.run(r.ID).FollowUp("remove_old")
			if (fu.Status == executor.FollowUpCancelled) != tt.cancelled {
				t.Fatalf("original follow-up %s; cancelled want %v", fu.Status, tt.cancelled)
			}
		})
	}
}

// TestRollbackRequestResumesAfterStop: stopped mid-step, a rollback request
// resumes from its journal (the original's follow-up already cancelled).
func TestRollbackRequestResumesAfterStop(t *testing.T) {
	c := &counter{}
	clk := newFakeClock()
	entered := make(chan struct{}, 1)
	var mu sync.Mutex
	block := true
	plan := rollbackPlan(c, nil)
	plan.rollback = append([]rotators.Step{step(c, "snapshot", nil)}, plan.rollback...)
	plan.rollback[1] = step(c, "restore", func(ctx context.Context, run rotators.Run) error {
		mu.Lock()
		b := block
		mu.Unlock()
		if b {
			entered <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return run.Record(ctx, "restored_version", run.Fact("previous_version"))
	})
	f := newFixtureWith(t, "", plan, fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	f.waitFinished(r.ID)
	f.waitIdle()
	f.requestRollback("R-RB1", r.ID)
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatalf("restore never started; logs:\n%s", f.logs.String())
	}
	f.stop()

	mid, err := boltstore.Open(f.path, boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := mid.LoadRun(context.Background(), "R-RB1")
	orig, _ := mid.LoadRun(context.Background(), r.ID)
	_ = mid.Close()
	fu, _ := orig.FollowUp("remove_old")
	if statuses(rb.Steps) != "snapshot=done,restore=running,revoke_new=pending" || fu.Status != executor.FollowUpCancelled {
		t.Fatalf("after stop: %s, original follow-up %s", statuses(rb.Steps), fu.Status)
	}

	mu.Lock()
	block = false
	mu.Unlock()
	f2 := newFixtureWith(t, f.path, plan, fixtureOpts{clock: clk})
	f2.start()
	got := f2.waitFinished("R-RB1")
	if got.State != approvals.StateSucceeded || c.get("snapshot") != 1 || c.get("restore") != 2 {
		t.Fatalf("%s %q, executions %v", got.State, got.Outcome, c.n)
	}
	if rb := f2.run("R-RB1"); rb.Resumes != 1 || rb.Facts["restored_version"] != "v1" {
		t.Fatalf("resumes %d facts %v", rb.Resumes, rb.Facts)
	}
	orig = f2.run(r.ID)
	fu, _ = orig.FollowUp("remove_old")
	if n := len(fu.History); fu.History[n-1].Action != executor.ActionCancelled || fu.History[n-2].Action == executor.ActionCancelled {
		t.Fatalf("history %s: cancelled exactly once", actions(*fu))
	}
}

// TestCheckRevertible covers each refusal over journals written directly.
func TestCheckRevertible(t *testing.T) {
	ctx := context.Background()
	c := &counter{}
	plan := rollbackPlan(c, nil)
	plan.canRevert = func(facts map[string]string) error {
		if facts["revoked"] == "yes" {
			return errors.New("the old key was revoked")
		}
		return nil
	}
	noRollback := &scripted{steps: []rotators.Step{step(c, "x", nil)}}
	f := newFixtureWith(t, "", plan, fixtureOpts{clock: newFakeClock(), more: map[string]rotators.Rotator{"bare": noRollback}})
	t.Cleanup(f.stop)
	put := func(id, target string, state approvals.State, run *executor.Run, mod func(*approvals.Request)) {
		r := &approvals.Request{ID: id, Target: target, Env: id, State: state}
		if mod != nil {
			mod(r)
		}
		f.putRequest(r)
		if run != nil {
			run.RequestID, run.Target, run.Phase = id, target, executor.PhaseDone
			if err := f.store.SaveRun(ctx, run); err != nil {
				t.Fatal(err)
			}
		}
	}
	done := func(result approvals.State, rollback ...executor.StepStatus) *executor.Run {
		run := &executor.Run{Result: result, Steps: []executor.StepRecord{{Name: "store", Status: executor.StepDone}}, Facts: map[string]string{}}
		for _, s := range rollback {
			run.Rollback = append(run.Rollback, executor.StepRecord{Name: "restore", Status: s})
		}
		return run
	}
	put("ok", "openai", approvals.StateSucceeded, done(approvals.StateSucceeded), nil)
	put("pending", "openai", approvals.StatePending, nil, nil)
	put("denied", "openai", approvals.StateDenied, nil, nil)
	put("failed-clean", "openai", approvals.StateFailed, done(approvals.StateFailed, executor.StepSkipped, executor.StepSkipped), nil)
	put("failed-dirty", "openai", approvals.StateFailed, done(approvals.StateFailed, executor.StepFailed), nil)
	put("rolled", "openai", approvals.StateRolledBack, done(approvals.StateRolledBack, executor.StepDone), nil)
	put("gone", "unconfigured", approvals.StateSucceeded, done(approvals.StateSucceeded), nil)
	put("bare", "bare", approvals.StateSucceeded, done(approvals.StateSucceeded), nil)
	put("rb", "openai", approvals.StateSucceeded, done(approvals.StateSucceeded), func(r *approvals.Request) { r.RollbackOf = "ok" })
	revoked := done(approvals.StateSucceeded)
	revoked.Facts["revoked"] = "yes"
	put("revoked", "openai", approvals.StateSucceeded, revoked, nil)
	put("rb-ok", "openai", approvals.StateSucceeded, nil, nil)
	put("rb-failed", "openai", approvals.StateFailed, nil, nil)
	byOK := done(approvals.StateSucceeded)
	byOK.RolledBackBy = "rb-ok"
	put("restored", "openai", approvals.StateSucceeded, byOK, nil)
	byFailed := done(approvals.StateSucceeded)
	byFailed.RolledBackBy = "rb-failed"
	put("retry", "openai", approvals.StateSucceeded, byFailed, nil)

	tests := []struct{ id, want string }{
		{"ok", ""},
		{"failed-dirty", ""},
		{"retry", ""}, // an earlier rollback failed: trying again is allowed
		{"nope", "There is no request nope"},
		{"pending", "is still pending"},
		{"denied", "never ran a rotation"},
		{"failed-clean", "failed without leaving anything changed"},
		{"rolled", "already rolled back automatically"},
		{"gone", `Target "unconfigured" is no longer configured`},
		{"bare", "has no rollback steps"},
		{"rb", "itself a rollback (of ok)"},
		{"revoked", "revoked cannot be rolled back: the old key was revoked"},
		{"restored", "already rolled back by rb-ok"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := f.ex.CheckRevertible(ctx, tt.id)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if msg := userMessage(t, err); !strings.Contains(msg, tt.want) {
				t.Fatalf("%q, want it to contain %q", msg, tt.want)
			}
		})
	}
}
