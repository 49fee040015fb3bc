package blocks

import (
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// Fixed times: every golden file must come out byte-identical on every run.
var (
	tCreated  = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tExpires  = tCreated.Add(30 * time.Minute)
	tDecided  = tCreated.Add(5 * time.Minute)
	tStarted  = tCreated.Add(6 * time.Minute)
	tFinished = tCreated.Add(14 * time.Minute)
	// tNow is while the pending request is still open.
	tNow = tCreated.Add(10 * time.Minute)
)

const (
	alice = "U01ALICE" // requester
	bob   = "U02BOB"   // approver
)

// request returns the representative request in state s, with the fields
// that state has set.
func request(s approvals.State) *approvals.Request {
	r := &approvals.Request{
		ID:        "R-7K2M9Q",
		Target:    "openai",
		Kind:      "apikey",
		Env:       "prod",
		Reason:    "quarterly rotation",
		Requester: alice,
		State:     s,
		CreatedAt: tCreated,
		ExpiresAt: tExpires,
		Events:    []approvals.Event{{At: tCreated, Actor: alice, Action: "requested", Detail: "quarterly rotation"}},
	}
	decide := func(by string, action approvals.State, detail string) {
		r.DecidedBy, r.DecidedAt = by, tDecided
		r.Events = append(r.Events, approvals.Event{At: tDecided, Actor: by, Action: string(action), Detail: detail})
	}
	switch s {
	case approvals.StateApproved:
		decide(bob, s, "")
	case approvals.StateRunning:
		decide(bob, approvals.StateApproved, "")
		r.StartedAt = tStarted
		r.Events = append(r.Events, approvals.Event{At: tStarted, Action: string(s)})
	case approvals.StateSucceeded, approvals.StateFailed, approvals.StateRolledBack:
		decide(bob, approvals.StateApproved, "")
		r.StartedAt, r.FinishedAt = tStarted, tFinished
		r.Outcome = map[approvals.State]string{
			approvals.StateSucceeded:  "New key key_9f2 is live; the old key was revoked.",
			approvals.StateFailed:     "Rollout of ai-orchestrator did not complete; rollback failed too.",
			approvals.StateRolledBack: "The previous key is live again; the new key was revoked.",
		}[s]
		r.Events = append(r.Events,
			approvals.Event{At: tStarted, Action: string(approvals.StateRunning)},
			approvals.Event{At: tFinished, Action: string(s), Detail: r.Outcome})
	case approvals.StateDenied:
		r.DenyReason = "not during the release freeze"
		decide(bob, s, r.DenyReason)
	case approvals.StateCancelled:
		decide(alice, s, "")
	case approvals.StateExpired:
		r.DecidedAt = tExpires
		r.Events = append(r.Events, approvals.Event{At: tExpires, Action: string(s)})
	}
	return r
}

// steps is the representative plan's forward steps, all pending.
func steps() []executor.StepRecord {
	return []executor.StepRecord{
		{Name: "create_key", Title: "Create a new OpenAI key", Status: executor.StepPending},
		{Name: "add_version", Title: "Add a Secret Manager version", Status: executor.StepPending},
		{Name: "force_sync", Title: "Force-sync external-services", Status: executor.StepPending},
		{Name: "restart", Title: "Restart ai-orchestrator", Status: executor.StepPending},
		{Name: "revoke_old", Title: "Revoke the old key", Status: executor.StepPending},
	}
}

func rollbackSteps() []executor.StepRecord {
	return []executor.StepRecord{
		{Name: "restore_version", Title: "Re-enable the previous version", Status: executor.StepPending},
		{Name: "revoke_new", Title: "Revoke the new key", Status: executor.StepPending},
	}
}

// runAt returns a run whose first done steps are done and whose next step has status next.
func runAt(done int, next executor.StepStatus) *executor.Run {
	run := &executor.Run{RequestID: "R-7K2M9Q", Target: "openai", Phase: executor.PhaseForward, Steps: steps()}
	for i := range done {
		run.Steps[i].Status = executor.StepDone
	}
	if done < len(run.Steps) {
		run.Steps[done].Status = next
	}
	return run
}

func runRunning() *executor.Run {
	run := runAt(2, executor.StepRunning)
	run.Steps[0].Detail = "key_9f2 created"
	run.Steps[1].Detail = "version 14"
	run.Steps[2].Detail = "waiting for ExternalSecret to sync (attempt 2)"
	run.Steps[2].Attempts = 2
	run.Steps[2].Error = "ExternalSecret not Ready yet"
	return run
}

func runSecretPrompt() *executor.Run {
	run := runAt(0, executor.StepWaiting)
	run.Prompt = &executor.PromptRecord{ID: "paste_key", Step: "create_key", Label: "Create a key in the Stripe dashboard and paste it here", Secret: true, Audience: string(rotators.AudienceRequester)}
	return run
}

func runConfirmPrompt() *executor.Run {
	run := runAt(4, executor.StepWaiting)
	run.Prompt = &executor.PromptRecord{ID: "confirm_revoke", Step: "revoke_old", Label: "Revoke the old key in the Stripe dashboard, then press Done", Audience: string(rotators.AudienceParticipants)}
	return run
}

func runSucceeded() *executor.Run {
	run := runAt(5, executor.StepDone)
	run.Phase = executor.PhaseDone
	return run
}

func runFailedAt(phase executor.Phase, rollback ...executor.StepStatus) *executor.Run {
	run := runAt(3, executor.StepFailed)
	run.Steps[3].Error = "rollout of ai-orchestrator timed out after 10m"
	run.FailedStep = "restart"
	run.Phase = phase
	run.Rollback = rollbackSteps()
	for i, s := range rollback {
		run.Rollback[i].Status = s
	}
	return run
}

func runRollingBack() *executor.Run {
	run := runFailedAt(executor.PhaseRollback, executor.StepDone, executor.StepRunning)
	run.Resumes = 1
	return run
}

func runRolledBack() *executor.Run {
	run := runFailedAt(executor.PhaseDone, executor.StepDone, executor.StepDone)
	run.Rollback[0].Detail = "version 13 enabled"
	return run
}

func runRollbackFailed() *executor.Run {
	run := runFailedAt(executor.PhaseDone, executor.StepFailed, executor.StepSkipped)
	run.Rollback[0].Error = "permission denied on secret aivo-prod-openai-api-key"
	return run
}

// runFor is the run that goes with the representative request in state s.
func runFor(s approvals.State) *executor.Run {
	switch s {
	case approvals.StateRunning:
		return runRunning()
	case approvals.StateSucceeded:
		return runSucceeded()
	case approvals.StateFailed:
		return runRollbackFailed()
	case approvals.StateRolledBack:
		return runRolledBack()
	default:
		return nil
	}
}

func hints() Hints {
	return Hints{
		Targets: []string{"openai", "sendgrid", "jwt"},
		Envs: map[string][]string{
			"openai":   {"staging", "prod"},
			"sendgrid": {"prod"},
			"jwt":      {"prod", "staging"},
		},
		Ref: "E-4F2A",
	}
}
