package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// parkPlan is keep → paste (a parked prompt) → use: the kept secret must
// survive the park, and the pasted value must reach the step.
func parkPlan(c *counter, got *secret.Value, timeout time.Duration) *scripted {
	return &scripted{steps: []rotators.Step{
		step(c, "keep", func(ctx context.Context, run rotators.Run) error {
			run.KeepSecret("generated", secret.FromString("kept-across-the-park"))
			return nil
		}),
		{Name: "paste", Title: "Paste", Timeout: timeout, Attempts: 1, Run: func(ctx context.Context, run rotators.Run) error {
			c.hit("paste")
			v, err := run.Ask(ctx, rotators.Prompt{ID: "paste_key", Label: "Paste", Secret: true, Audience: rotators.AudienceRequester, Park: true})
			if err != nil {
				return fmt.Errorf("waiting for the key: %w", err)
			}
			*got = v
			return nil
		}},
		step(c, "use", func(ctx context.Context, run rotators.Run) error {
			if _, ok := run.Secret("generated"); !ok {
				return errors.New("the kept secret was lost while the step was parked")
			}
			return nil
		}),
	}}
}

func inputNeeded(ns []approvals.Notice) int {
	n := 0
	for _, x := range ns {
		if x.Event == executor.EventInputNeeded {
			n++
		}
	}
	return n
}

func TestParkedPromptEndsTheStepAndTheAnswerContinuesIt(t *testing.T) {
	c := &counter{}
	var got secret.Value
	f := newFixture(t, "", parkPlan(c, &got, time.Hour))
	f.start()
	r := f.approved()
	<-f.prompted
	f.waitIdle() // nothing in flight: the step ended instead of waiting

	if _, ok := f.ex.PromptOpen(r.ID, "paste_key"); !ok {
		t.Fatal("the parked prompt is not open")
	}
	if err := f.ex.MayAnswer(r.ID, "paste_key", "UAPPROVER"); !errors.Is(err, executor.ErrNotYourPrompt) {
		t.Fatalf("the audience is not checked on a parked prompt: %v", err)
	}
	run := f.run(r.ID)
	if run.Prompt == nil || run.Steps[1].Status != executor.StepWaiting || run.Steps[1].Attempts != 1 {
		t.Fatalf("journal while parked: prompt %v, paste %+v", run.Prompt, run.Steps[1])
	}
	if st, _ := f.svc.Get(context.Background(), r.ID); st.State != approvals.StateRunning {
		t.Fatalf("state while parked: %s", st.State)
	}

	// A wake-up with no answer (a rescan) does not run the step again.
	f.ex.Wake(r.ID)
	if err := f.ex.Answer(context.Background(), r.ID, "paste_key", "UREQUESTER", secret.FromString("rk_live_parked")); err != nil {
		t.Fatal(err)
	}
	if err := f.ex.Answer(context.Background(), r.ID, "paste_key", "UREQUESTER", secret.FromString("second")); err != nil && !errors.Is(err, executor.ErrNoPrompt) {
		t.Fatalf("a second answer: %v", err)
	}
	done := f.waitFinished(r.ID)
	if done.State != approvals.StateSucceeded {
		t.Fatalf("state %s (%s); logs:\n%s", done.State, done.Outcome, f.logs.String())
	}
	if string(got.Reveal()) != "rk_live_parked" {
		t.Fatal("the step did not get the first answer")
	}
	if c.get("paste") != 2 || c.get("keep") != 1 || c.get("use") != 1 {
		t.Fatalf("executions: keep %d, paste %d (want 2: the ask, then the answer), use %d", c.get("keep"), c.get("paste"), c.get("use"))
	}
	run = f.run(r.ID)
	if run.Resumes != 0 || run.Steps[1].Attempts != 1 || run.Prompt != nil {
		t.Fatalf("journal after: resumes %d, paste attempts %d, prompt %v", run.Resumes, run.Steps[1].Attempts, run.Prompt)
	}
	if n := inputNeeded(f.drainNotices()); n != 1 {
		t.Fatalf("the prompt was posted %d times", n)
	}
	assertFileLacks(t, f.path, "rk_live_parked")
}

func TestParkedPromptTimesOutOnTheExecutorClock(t *testing.T) {
	c := &counter{}
	var got secret.Value
	clk := newFakeClock()
	f := newFixtureWith(t, "", parkPlan(c, &got, time.Hour), fixtureOpts{clock: clk})
	f.start()
	r := f.approved()
	<-f.prompted
	f.waitIdle()

	clk.Advance(time.Hour + time.Minute)
	f.ex.Wake(r.ID) // what the next rescan does
	done := f.waitFinished(r.ID)
	if done.State != approvals.StateFailed || !strings.Contains(done.Outcome, "timed out") || !strings.Contains(done.Outcome, "nobody answered") {
		t.Fatalf("state %s outcome %q", done.State, done.Outcome)
	}
	if _, ok := f.ex.PromptOpen(r.ID, "paste_key"); ok {
		t.Fatal("the expired prompt is still open")
	}
	if err := f.ex.Answer(context.Background(), r.ID, "paste_key", "UREQUESTER", secret.FromString("late")); !errors.Is(err, executor.ErrNoPrompt) {
		t.Fatalf("a late answer: %v", err)
	}
}

func TestParkedPromptIsAskedAgainAfterARestart(t *testing.T) {
	c := &counter{}
	var got secret.Value
	plan := parkPlan(c, &got, time.Hour)
	f := newFixture(t, "", plan)
	f.start()
	r := f.approved()
	<-f.prompted
	f.waitIdle()
	f.stop()

	// The answer was lost with the process (as was the kept secret): the
	// next start resumes the run and asks again.
	g := newFixture(t, f.path, plan)
	g.start()
	<-g.prompted
	g.waitIdle()
	if err := g.ex.Answer(context.Background(), r.ID, "paste_key", "UREQUESTER", secret.FromString("rk_live_again")); err != nil {
		t.Fatal(err)
	}
	done := g.waitFinished(r.ID)
	// The kept secret did not survive the restart, so "use" fails and the
	// run rolls back: the same as for a prompt that was not parked.
	if done.State == approvals.StateSucceeded || string(got.Reveal()) != "rk_live_again" {
		t.Fatalf("state %s", done.State)
	}
	if run := g.run(r.ID); run.Resumes != 1 {
		t.Fatalf("resumes %d", run.Resumes)
	}
	if n := inputNeeded(g.drainNotices()); n != 2 {
		t.Fatalf("the prompt was posted %d times, want 2 (once per process)", n)
	}
}
