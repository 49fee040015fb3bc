package encryption

import (
	"context"
	"errors"
	"fmt"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// restoreSecret puts the backed-up Secret back, exactly. It refuses once
// removing the old key has started: the data is then encrypted with the
// new key, and the Secret must keep it. Before restoring it copies the
// Secret as it is (with the new key), because the migration Job and the
// restarted pods may already have encrypted data with the new key.
func (x *rotation) restoreSecret(ctx context.Context, run rotators.Run) error {
	backup := run.Fact(factBackup)
	if run.Fact(factRemoveStarted) != "" {
		return rotators.Permanent(fmt.Errorf("not restoring Secret %s: removing the old key had started, so the data is encrypted with the new key, which the Secret keeps; the old key is in backup Secret %s/%s (as %s) if it is needed by hand",
			x.secretRef(), x.namespace, backup, x.keyName))
	}
	if backup == "" || run.Fact(factDualKeysStarted) == "" {
		return rotators.ErrNothingToUndo // the Secret was not changed
	}
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	live, err := cl.SecretData(ctx, x.namespace, x.secretName)
	if err != nil {
		return fmt.Errorf("reading Secret %s: %w", x.secretRef(), err)
	}
	orig, err := cl.SecretData(ctx, x.namespace, backup)
	if err != nil {
		return fmt.Errorf("reading backup Secret %s/%s: %w", x.namespace, backup, err)
	}
	if equalData(live, orig) {
		if run.Fact(factRestoreStarted) == "" {
			return rotators.ErrNothingToUndo // writing both keys never landed
		}
		run.Progress(ctx, fmt.Sprintf("Secret %s holds the backed-up data", x.secretRef()))
		return nil // restored by an earlier attempt
	}
	if n := live[x.newKeyName]; !n.IsZero() && !n.Equal(orig[x.newKeyName]) && run.Fact(factNewKeyCopy) == "" {
		// BackupSecret never overwrites, so a repeat keeps the first copy.
		copyName, err := cl.BackupSecret(ctx, x.namespace, x.secretName, run.RequestID()+newKeyCopySuffix)
		if err != nil {
			return fmt.Errorf("keeping a copy of Secret %s with the new key before restoring: %w", x.secretRef(), err)
		}
		if err := run.Record(ctx, factNewKeyCopy, copyName); err != nil {
			return err
		}
	}
	if run.Fact(factRestoreStarted) == "" {
		if err := run.Record(ctx, factRestoreStarted, "true"); err != nil {
			return err
		}
	}
	if err := cl.RestoreSecret(ctx, x.namespace, x.secretName, backup); err != nil {
		return fmt.Errorf("restoring Secret %s from %s/%s: %w", x.secretRef(), x.namespace, backup, err)
	}
	msg := fmt.Sprintf("Restored Secret %s from backup %s/%s", x.secretRef(), x.namespace, backup)
	if c := run.Fact(factNewKeyCopy); c != "" {
		msg += fmt.Sprintf("; the new key (data the migration or the restarted pods encrypted with it needs it) is kept in Secret %s/%s as %s", x.namespace, c, x.newKeyName)
	}
	run.Log().InfoContext(ctx, "restored the secret", "secret", x.secretRef(), "backup", backup, "new_key_copy", run.Fact(factNewKeyCopy))
	run.Progress(ctx, msg)
	return nil
}

// rollbackRestart restarts the deployments again if they were restarted
// with both keys, so they load the previous key.
func (x *rotation) rollbackRestart(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRemoveStarted) != "" {
		return rotators.Permanent(errors.New("not restarting: removing the old key had started and the Secret was not restored"))
	}
	if run.Fact(factRestartAt) == "" {
		return rotators.ErrNothingToUndo // the pods never saw the new key
	}
	return x.restartAll(ctx, run, factRollbackRestartAt, factRestartAt, factFinalRestartAt)
}

// equalData compares two Secrets' data without revealing it.
func equalData(a, b map[string]secret.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !va.Equal(vb) {
			return false
		}
	}
	return true
}
