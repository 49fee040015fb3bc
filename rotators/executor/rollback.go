package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
)

// CheckRevertible says, before a `/rotate rollback <id>` request is opened,
// why rolling back originalID would be hopeless: the request is unknown,
// still open, never ran, changed nothing, was already rolled back, is itself
// a rollback, its target is no longer configured or has no rollback steps,
// or the rotator's Reverter refuses (e.g. the old key was revoked). Each
// refusal is an error with a UserMessage; nil means it may be requested.
// Who may request it is the caller's decision. The executor checks again
// when the approved rollback request starts.
func (e *Executor) CheckRevertible(ctx context.Context, originalID string) error {
	_, why, err := e.revertible(ctx, originalID, nil)
	if err != nil {
		return err
	}
	if why != "" {
		return userError(why)
	}
	return nil
}

// revertible checks that origID can be rolled back by self (nil before the
// rollback request exists). It returns the original's run, or why not (a
// user-facing sentence), or an internal error.
func (e *Executor) revertible(ctx context.Context, origID string, self *approvals.Request) (*Run, string, error) {
	oreq, err := e.cfg.Requests.Get(ctx, origID)
	if errors.Is(err, approvals.ErrNotFound) {
		return nil, fmt.Sprintf("There is no request %s. Check the ID in the request's thread or with /rotate list.", origID), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("load request %s: %w", origID, err)
	}
	selfID := ""
	if self != nil {
		selfID = self.ID
		if self.ID == origID {
			return nil, fmt.Sprintf("Request %s cannot roll back itself.", origID), nil
		}
		if self.Target != oreq.Target || self.Env != oreq.Env {
			return nil, fmt.Sprintf("This rollback names %s/%s but %s rotated %s/%s.", self.Target, self.Env, origID, oreq.Target, oreq.Env), nil
		}
	}
	if oreq.RollbackOf != "" {
		return nil, fmt.Sprintf("%s is itself a rollback (of %s) and cannot be rolled back; to change the secret again, open a new rotation of %s.", origID, oreq.RollbackOf, oreq.Target), nil
	}
	if oreq.State.Open() {
		return nil, fmt.Sprintf("%s is still %s; only a finished rotation can be rolled back (a rotation whose step fails rolls back on its own).", origID, oreq.State), nil
	}
	run, err := e.cfg.Journal.LoadRun(ctx, origID)
	if err != nil {
		return nil, "", fmt.Errorf("load journal of %s: %w", origID, err)
	}
	if run == nil || run.Phase != PhaseDone {
		return nil, fmt.Sprintf("%s never ran a rotation (it ended %s), so there is nothing to roll back.", origID, oreq.State), nil
	}
	switch run.Result {
	case approvals.StateSucceeded:
	case approvals.StateFailed:
		if !leftChanges(run) {
			return nil, fmt.Sprintf("%s failed without leaving anything changed, so there is nothing to roll back.", origID), nil
		}
	case approvals.StateRolledBack:
		return nil, fmt.Sprintf("%s was already rolled back automatically when it failed.", origID), nil
	default:
		return nil, fmt.Sprintf("%s ended %s, so there is nothing to roll back.", origID, run.Result), nil
	}
	if by := run.RolledBackBy; by != "" && by != selfID {
		other, err := e.cfg.Requests.Get(ctx, by)
		if err != nil && !errors.Is(err, approvals.ErrNotFound) {
			return nil, "", fmt.Errorf("load request %s: %w", by, err)
		}
		// A failed earlier rollback may be tried again (its steps are idempotent).
		if err == nil && (other.State.Open() || other.State == approvals.StateSucceeded) {
			return nil, fmt.Sprintf("%s is already rolled back by %s (%s).", origID, by, other.State), nil
		}
	}
	rot, ok := e.cfg.Rotators[oreq.Target]
	if !ok {
		return nil, fmt.Sprintf("Target %q is no longer configured, so rotary cannot run its rollback steps; restore it by hand.", oreq.Target), nil
	}
	plan := rot.Plan(rotators.Spec{RequestID: selfID, Target: oreq.Target, Env: oreq.Env, RollbackOf: origID})
	if len(plan.Rollback) == 0 {
		return nil, fmt.Sprintf("The procedure of %s has no rollback steps; restore it by hand.", oreq.Target), nil
	}
	// Rolling back a finished rotation is opt-in per kind: after its last
	// steps (an old key revoked, an old role dropped) the automatic
	// rollback's steps would restore a dead secret and undo the working one.
	// Only a kind that can judge that from the facts (a Reverter) allows it.
	rv, ok := rot.(rotators.Reverter)
	if !ok {
		return nil, fmt.Sprintf("The %s procedure cannot roll back a finished rotation: its last steps (such as revoking the old secret) cannot be undone, so restoring the old value would break %s. Open a new rotation instead.", oreq.Kind, oreq.Target), nil
	}
	// A copy: the rotator must not change the journal it is shown.
	if err := rv.CanRevert(maps.Clone(run.Facts)); err != nil {
		return nil, fmt.Sprintf("%s cannot be rolled back: %s", origID, userText(err)), nil
	}
	return run, "", nil
}

// leftChanges reports whether a failed run left something changed: its
// automatic rollback stopped short, or there was no rollback step to run
// after forward steps had acted.
func leftChanges(run *Run) bool {
	for _, s := range run.Rollback {
		if s.Status != StepDone && s.Status != StepSkipped {
			return true
		}
	}
	if len(run.Rollback) > 0 {
		return false
	}
	for _, s := range run.Steps {
		if s.Status == StepDone {
			return true
		}
	}
	return false
}

// userText is an error's user-facing text.
func userText(err error) string {
	var um interface{ UserMessage() string }
	if errors.As(err, &um) {
		return um.UserMessage()
	}
	return err.Error()
}

// cancelFollowUpsOf cancels what the original run still has pending —
// scheduled, failed (it could be run again) or interrupted follow-ups —
// and records the rollback request, under the original's key, so no
// follow-up of it runs during or after the restore (removing the old JWT
// public key after the old key was restored would break every token).
func (e *Executor) cancelFollowUpsOf(ctx context.Context, origID, byID string, log *slog.Logger) error {
	if origID == byID {
		return fmt.Errorf("request %s is marked as its own rollback", byID)
	}
	if !e.claim(origID) {
		log.InfoContext(ctx, "waiting for a follow-up of the original request to finish before rolling back", "rollback_of", origID)
		if err := e.claimWait(ctx, origID); err != nil {
			return err
		}
	}
	defer e.release(origID)
	run, err := e.cfg.Journal.LoadRun(ctx, origID)
	if err != nil {
		return fmt.Errorf("load journal of %s: %w", origID, err)
	}
	if run == nil {
		return nil
	}
	now := e.cfg.Now()
	var notices []approvals.Notice
	for i := range run.FollowUps {
		fu := &run.FollowUps[i]
		switch fu.Status {
		case FollowUpScheduled, FollowUpFailed, FollowUpRunning:
			fu.Status, fu.FinishedAt = FollowUpCancelled, now
			fu.History = append(fu.History, FollowUpEvent{At: now, Action: ActionCancelled, Detail: "rolled back by " + byID})
			notices = append(notices, reply(origID, EventFollowUpCancelled, fu.Name, ""))
			log.InfoContext(ctx, "follow-up of the original request cancelled", "rollback_of", origID, "follow_up", fu.Name)
		}
	}
	if len(notices) == 0 && run.RolledBackBy == byID {
		return nil
	}
	run.RolledBackBy = byID
	if len(notices) > 0 {
		notices = append(notices, progress(origID))
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalWriteTimeout)
	defer cancel()
	if err := e.cfg.Journal.SaveRun(wctx, run, notices...); err != nil {
		return fmt.Errorf("journal %s: %w", origID, err)
	}
	return nil
}

// finishRollbackRequest ends a rollback request after its steps: there is no
// rollback of a rollback, so a failed step ends it with manual action needed.
func (x *runner) finishRollbackRequest(ctx context.Context, failed string) error {
	orig := x.req.RollbackOf
	if failed != "" {
		for _, s := range x.run.Steps {
			if s.Name == failed {
				return x.finish(ctx, approvals.StateFailed, fmt.Sprintf(
					"rollback of %s stopped: step %q failed: %s — manual action needed", orig, s.Title, s.Error))
			}
		}
	}
	for _, s := range x.run.Steps {
		if s.Status == StepDone {
			return x.finish(ctx, approvals.StateSucceeded, "restored what "+orig+" replaced")
		}
	}
	return x.finish(ctx, approvals.StateFailed, "nothing to roll back: "+orig+" changed nothing")
}
