package apikey

import (
	"context"
	"errors"
	"fmt"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
)

// errRevokeStarted refuses a rollback once revoking began: the old key may
// already be revoked, so restoring it would break the workloads, and the
// new key is the only working one.
func errRevokeStarted(what string) error {
	return rotators.Permanent(fmt.Errorf("not %s: revoking the old key had started, so the old key may no longer work and the new key stays in place; finish revoking the old key by hand", what))
}

// restoreVersion adds the previous version's value as the newest version
// and disables the versions this rotation added.
func (x *rotation) restoreVersion(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRevokeStarted) != "" {
		return errRevokeStarted("restoring the previous Secret Manager version")
	}
	prev := run.Fact(factPrevVersion)
	if prev == "" || prev == noVersion {
		// Nothing was added, or there was nothing before to go back to.
		return rotators.ErrNothingToUndo
	}
	store, err := x.store()
	if err != nil {
		return err
	}
	restored := run.Fact(factRestoredVersion)
	if restored == "" {
		// prev_version is recorded before the add, so an add whose answer
		// was lost (no new_version fact) shows here as a newer latest.
		latest, err := store.LatestEnabled(ctx, x.secretName)
		if err != nil && !errors.Is(err, gsm.ErrNoVersion) {
			return fmt.Errorf("reading the current version of %s: %w", x.secretName, err)
		}
		if latest == prev {
			return rotators.ErrNothingToUndo
		}
		value, err := store.Access(ctx, prev)
		if err != nil {
			return fmt.Errorf("reading the previous version %s: %w", prev, err)
		}
		// A crash between this add and its Record adds the same value
		// twice, which is harmless.
		restored, err = store.AddVersion(ctx, x.secretName, value)
		if err != nil {
			return fmt.Errorf("adding the previous value to %s: %w", x.secretName, err)
		}
		if err := run.Record(ctx, factRestoredVersion, restored); err != nil {
			return err
		}
	}
	// The versions this rotation added (new_version and any orphan) hold a
	// key that revoke_new_key deletes: take them out of service.
	prevN, _ := versionNumber(prev)
	restoredN, _ := versionNumber(restored)
	enabled, err := store.EnabledVersions(ctx, x.secretName)
	if err != nil {
		return fmt.Errorf("listing the versions of %s: %w", x.secretName, err)
	}
	var disabled []string
	for _, v := range enabled {
		if n, ok := versionNumber(v); ok && n > prevN && n < restoredN {
			if err := store.Disable(ctx, v); err != nil {
				return fmt.Errorf("disabling %s: %w", v, err)
			}
			disabled = append(disabled, v)
		}
	}
	run.Log().InfoContext(ctx, "restored the previous secret version", "previous", prev, "restored", restored, "disabled", disabled)
	run.Progress(ctx, fmt.Sprintf("Restored the value of %s as %s", prev, restored))
	return nil
}

// rollbackSync force-syncs again once the previous value is back.
func (x *rotation) rollbackSync(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRestoredVersion) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.forceSync(ctx, run, factRollbackSyncAt, factSyncAt)
}

// rollbackRestart restarts again, if the forward restart ran, so the pods
// load the previous value.
func (x *rotation) rollbackRestart(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRestoredVersion) == "" || run.Fact(factRestartAt) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.restartAll(ctx, run, factRollbackRestartAt, factRestartAt)
}

// revokeNewKey deletes the key this rotation made, once Secret Manager no
// longer serves it.
func (x *rotation) revokeNewKey(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRevokeStarted) != "" {
		return errRevokeStarted("revoking the new key")
	}
	if run.Fact(factNewKeyRevoked) != "" {
		return nil
	}
	if x.r.s.Provider == ProviderManual {
		if run.Fact(factNewKeyReceived) == "" {
			return rotators.ErrNothingToUndo
		}
		if err := x.checkNewKeyUnused(ctx, run); err != nil {
			return err
		}
		run.Log().WarnContext(ctx, "the new key must be deleted by hand")
		run.Progress(ctx, "The new key is no longer used: delete it by hand in the "+x.providerTitle()+" dashboard"+x.dashboardRef()+".")
		return nil
	}
	if run.Fact(factNewKeyName) == "" {
		return rotators.ErrNothingToUndo
	}
	if err := x.checkNewKeyUnused(ctx, run); err != nil {
		return err
	}
	prov, err := x.provider()
	if err != nil {
		return err
	}
	newID := run.Fact(factNewKeyID)
	deleted, err := x.deleteKeys(ctx, prov, func(k providerKey) bool {
		return k.Name == x.keyName || (newID != "" && k.ID == newID)
	})
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		return rotators.ErrNothingToUndo // creating it never succeeded
	}
	if err := run.Record(ctx, factNewKeyRevoked, "true"); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "revoked the new key", "key_ids", deleted)
	run.Progress(ctx, fmt.Sprintf("Revoked %s %s", prov.noun(), x.keyName))
	return nil
}

// checkNewKeyUnused refuses while Secret Manager's latest version may hold
// the new key (the restore did not happen or failed): deleting the key then
// would break the workloads at their next sync.
func (x *rotation) checkNewKeyUnused(ctx context.Context, run rotators.Run) error {
	prev := run.Fact(factPrevVersion)
	if prev == "" || prev == noVersion {
		// Never added, or there was no previous value to protect.
		return nil
	}
	store, err := x.store()
	if err != nil {
		return err
	}
	latest, err := store.LatestEnabled(ctx, x.secretName)
	switch {
	case errors.Is(err, gsm.ErrNoVersion):
		return nil
	case err != nil:
		return fmt.Errorf("reading the current version of %s: %w", x.secretName, err)
	case latest == prev || latest == run.Fact(factRestoredVersion):
		return nil
	}
	return rotators.Permanent(fmt.Errorf("not revoking the new key: %s, the latest version of %s, may hold it; restore %s first", latest, x.secretName, prev))
}
