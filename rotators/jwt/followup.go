package jwt

import (
	"context"
	"fmt"
	"time"

	"github.com/aivo-platform/rotary/rotators"
)

// removalFollowUp removes the old public key after the grace period. Its
// steps run with the rotation's facts, possibly days later, when a later
// rotation or a rollback may have changed the keys: it acts only while the
// store still holds this rotation's kid and, as public_old, the exact
// public key this rotation replaced.
func (x *rotation) removalFollowUp(restartTimeout, syncTimeout time.Duration) rotators.FollowUp {
	steps := []rotators.Step{{
		Name: StepRemoveOldKey, Title: fmt.Sprintf("Remove %s (the old public key) from %s", x.keys.PublicOld, x.storeTitle()), Run: x.removeOldKey,
	}}
	if x.sm() {
		steps = append(steps, rotators.Step{Name: StepFollowUpSync, Title: "Force-sync ExternalSecret " + x.esRef(), Timeout: syncTimeout, Run: x.followUpSync})
	}
	steps = append(steps, rotators.Step{Name: StepFollowUpRestart, Title: "Rolling restart " + x.deployment + " without the old public key", Timeout: restartTimeout, Run: x.followUpRestart})
	return rotators.FollowUp{
		Name:  FollowUpRemoveOldKey,
		Title: "Remove the old public key (" + x.keys.PublicOld + ")",
		Delay: x.r.s.gracePeriod,
		Steps: steps,
	}
}

func (x *rotation) storeTitle() string {
	if x.sm() {
		return "Secret Manager secret " + x.gsmSecret
	}
	return "Secret " + x.secretRef()
}

// removeOldKey deletes public_old when it is still the key this rotation
// replaced; otherwise it records why nothing was done.
func (x *rotation) removeOldKey(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRemovalOutcome) != "" {
		return nil
	}
	kid, oldFP := run.Fact(factNewKID), run.Fact(factOldFingerprint)
	if kid == "" || oldFP == "" || run.Fact(factUpdateStarted) == "" {
		return rotators.Permanent(fmt.Errorf("the rotation recorded no new kid or old public key (facts %s, %s): nothing of it to remove", factNewKID, factOldFingerprint))
	}
	cur, err := x.current(ctx)
	if err != nil {
		return err
	}
	old, hasOld := cur.keys[x.keys.PublicOld]
	switch {
	case x.kidOf(cur) != kid:
		// Rolled back, or rotated again: that rotation owns public_old now.
		return x.removalDone(ctx, run, removalSuperseded, fmt.Sprintf("Nothing removed: superseded by a later rotation (%s holds kid %s, not %s)", cur.where, orDefault(x.kidOf(cur), noKID), kid))
	case !hasOld && run.Fact(factRemovalStarted) != "":
		if x.sm() && run.Fact(factRemovalVersion) == "" {
			// The add landed but its answer was lost.
			if err := run.Record(ctx, factRemovalVersion, cur.version); err != nil {
				return err
			}
		}
		return x.removalDone(ctx, run, removalRemoved, fmt.Sprintf("Removed %s (%s) from %s", x.keys.PublicOld, oldFP, x.storeRef(run)))
	case !hasOld:
		return x.removalDone(ctx, run, removalAlreadyGone, fmt.Sprintf("%s holds no %s any more (removed by hand?); restarting %s so no pod keeps it", cur.where, x.keys.PublicOld, x.deployment))
	}
	if got, err := publicFingerprint(old); err != nil || got != oldFP {
		return x.removalDone(ctx, run, removalSuperseded, fmt.Sprintf("Nothing removed: superseded by a later rotation (%s's %s is not the key this rotation replaced, %s)", cur.where, x.keys.PublicOld, oldFP))
	}
	if run.Fact(factRemovalStarted) == "" {
		if err := run.Record(ctx, factRemovalStarted, "true"); err != nil {
			return err
		}
	}
	if err := x.write(ctx, run, cur, nil, []string{x.keys.PublicOld}, factRemovalVersion); err != nil {
		return err
	}
	where := "Secret " + x.secretRef()
	if x.sm() {
		where = run.Fact(factRemovalVersion)
	}
	return x.removalDone(ctx, run, removalRemoved, fmt.Sprintf("Removed %s (%s) from %s; tokens signed with the old key stop verifying after the restart", x.keys.PublicOld, oldFP, where))
}

func (x *rotation) removalDone(ctx context.Context, run rotators.Run, outcome, msg string) error {
	if err := run.Record(ctx, factRemovalOutcome, outcome); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "old public key removal", "outcome", outcome, "kid", run.Fact(factNewKID), "old_public_key", run.Fact(factOldFingerprint))
	run.Progress(ctx, msg)
	return nil
}

// removalChanged reports whether the follow-up changed (or found changed)
// public_old, so the pods must reload the keys.
func removalChanged(run rotators.Run) bool {
	o := run.Fact(factRemovalOutcome)
	return o == removalRemoved || o == removalAlreadyGone
}

func (x *rotation) followUpSync(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRemovalOutcome) != removalRemoved {
		run.Progress(ctx, "Nothing was removed: no sync needed")
		return nil
	}
	if supersededBy(ctx, run, factRollbackSyncAt) {
		return nil
	}
	return x.forceSync(ctx, run, factFollowUpSyncAt, factSyncAt)
}

func (x *rotation) followUpRestart(ctx context.Context, run rotators.Run) error {
	if !removalChanged(run) {
		run.Progress(ctx, "Nothing was removed: no restart needed")
		return nil
	}
	if supersededBy(ctx, run, factRollbackRestartAt) {
		return nil
	}
	return x.restartWith(ctx, run, factFollowUpRestartAt, factRestartAt)
}
