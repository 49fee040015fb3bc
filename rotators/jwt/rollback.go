package jwt

import (
	"context"
	"fmt"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsmsteps"
)

// rollbackSteps put the backup back, restart and verify. They run after a
// failed step, and as the forward steps of `/rotate rollback <id>` with the
// original rotation's facts; each is a no-op (ErrNothingToUndo) when what
// it undoes never happened.
func (x *rotation) rollbackSteps(restartTimeout, syncTimeout time.Duration) []rotators.Step {
	restore := rotators.Step{Name: StepRestore, Title: fmt.Sprintf("Restore Secret %s from its backup", x.secretRef()), Run: x.restore}
	if x.sm() {
		restore.Title = "Restore the previous Secret Manager version of " + x.gsmSecret
	}
	steps := []rotators.Step{restore}
	if x.sm() {
		steps = append(steps, rotators.Step{Name: StepRollbackSync, Title: "Force-sync ExternalSecret " + x.esRef() + " again", Timeout: syncTimeout, Run: x.rollbackSync})
	}
	return append(steps,
		rotators.Step{Name: StepRollbackRestart, Title: "Rolling restart " + x.deployment + " with the previous keys", Timeout: restartTimeout, Run: x.rollbackRestart},
		rotators.Step{Name: StepRollbackVerify, Title: fmt.Sprintf("Verify that Secret %s holds the previous keys", x.secretRef()), Run: x.rollbackVerify},
	)
}

// restore puts back exactly what the backup holds. An emergency rotation's
// automatic rollback refuses: the backup holds the compromised key, and
// putting it back is a decision for people (`/rotate rollback`, approved).
func (x *rotation) restore(ctx context.Context, run rotators.Run) error {
	backupFact := factBackup
	if x.sm() {
		backupFact = factPrevVersion
	}
	backup := run.Fact(backupFact)
	if backup == "" || run.Fact(factUpdateStarted) == "" {
		return rotators.ErrNothingToUndo // the keys were never changed
	}
	if run.Emergency() && x.spec.RollbackOf == "" {
		return rotators.Permanent(fmt.Errorf("not restoring the compromised key automatically: the new key stays in place. The previous keys are in %s; `/rotate rollback %s` restores them, with approval",
			x.backupRef(backup), run.RequestID()))
	}
	if err := x.checkNotSuperseded(ctx, run); err != nil {
		return err
	}
	if run.Fact(factRestoreStarted) == "" {
		if err := run.Record(ctx, factRestoreStarted, "true"); err != nil {
			return err
		}
	}
	if x.sm() {
		restored, err := gsmsteps.Restore(ctx, run, x.r.clients.Store, x.gsmSecret, backup, factRestoredVersion)
		if err != nil {
			return err
		}
		run.Progress(ctx, fmt.Sprintf("Restored the keys of %s as %s", backup, restored))
		return nil
	}
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	if err := cl.RestoreSecret(ctx, x.namespace, x.secretName, backup); err != nil {
		return fmt.Errorf("restoring Secret %s from %s: %w", x.secretRef(), x.backupRef(backup), err)
	}
	run.Log().InfoContext(ctx, "restored the secret", "secret", x.secretRef(), "backup", backup)
	run.Progress(ctx, fmt.Sprintf("Restored Secret %s from %s", x.secretRef(), x.backupRef(backup)))
	return nil
}

// checkNotSuperseded refuses to restore over keys a later rotation wrote:
// the store must hold this rotation's kid, or the previous one (the write
// never landed, or an earlier attempt restored it already).
func (x *rotation) checkNotSuperseded(ctx context.Context, run rotators.Run) error {
	cur, err := x.current(ctx)
	if err != nil {
		return err
	}
	kid := orDefault(x.kidOf(cur), noKID)
	if kid == run.Fact(factNewKID) || kid == run.Fact(factOldKID) {
		return nil
	}
	return rotators.Permanent(fmt.Errorf("not restoring: %s now holds kid %s, which a later rotation wrote (this one wrote %s); restoring this rotation's backup would throw that away, so roll back the later rotation instead",
		cur.where, kid, run.Fact(factNewKID)))
}

func (x *rotation) backupRef(backup string) string {
	if x.sm() {
		return "Secret Manager version " + backup
	}
	return "backup Secret " + x.namespace + "/" + backup
}

// restored reports whether the restore step put the backup back.
func (x *rotation) restored(run rotators.Run) bool {
	if x.sm() {
		return run.Fact(factRestoredVersion) != ""
	}
	return run.Fact(factRestoreStarted) != ""
}

func (x *rotation) rollbackSync(ctx context.Context, run rotators.Run) error {
	if !x.restored(run) {
		return rotators.ErrNothingToUndo
	}
	return x.forceSync(ctx, run, factRollbackSyncAt, factSyncAt, factFollowUpSyncAt)
}

// rollbackRestart restarts again, if a restart loaded the new keys.
func (x *rotation) rollbackRestart(ctx context.Context, run rotators.Run) error {
	if !x.restored(run) || run.Fact(factRestartAt) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.restartWith(ctx, run, factRollbackRestartAt, factRestartAt, factFollowUpRestartAt)
}

// rollbackVerify checks that the Secret the application reads holds the
// backup's key id and public key again.
func (x *rotation) rollbackVerify(ctx context.Context, run rotators.Run) error {
	if !x.restored(run) {
		return rotators.ErrNothingToUndo
	}
	prev, err := x.previous(ctx, run)
	if err != nil {
		return err
	}
	wantFP, err := x.checkSteadyState(prev)
	if err != nil {
		return err
	}
	sn, err := x.secretSnapshot(ctx, x.secretName)
	if err != nil {
		return err
	}
	wantKID, gotKID := orDefault(x.kidOf(prev), noKID), orDefault(x.kidOf(sn), noKID)
	gotFP, fpErr := publicFingerprint(sn.keys[x.keys.Public])
	if gotKID != wantKID || fpErr != nil || gotFP != wantFP {
		return rotators.Permanent(fmt.Errorf("Secret %s holds kid %s and public key %s, want the previous kid %s and public key %s",
			x.secretRef(), gotKID, orDefault(gotFP, "(unreadable)"), wantKID, wantFP))
	}
	run.Progress(ctx, fmt.Sprintf("Secret %s holds the previous keys again (kid %s, public key %s)", x.secretRef(), gotKID, gotFP))
	return nil
}
