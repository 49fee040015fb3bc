package apikey

import (
	"context"
	"fmt"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsmsteps"
)

// errRevokeStarted refuses a rollback once revoking began: the old key may
// already be revoked, so restoring it would break the workloads, and the
// new key is the only working one.
func errRevokeStarted(what string) error {
	return rotators.Permanent(fmt.Errorf("not %s: revoking the old key had started, so the old key may no longer work and the new key stays in place; finish revoking the old key by hand", what))
}

// restoreVersion adds the previous version's value as the newest version
// and disables the versions this rotation added: their key is deleted by
// revoke_new_key.
func (x *rotation) restoreVersion(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRevokeStarted) != "" {
		return errRevokeStarted("restoring the previous Secret Manager version")
	}
	prev := run.Fact(factPrevVersion)
	if prev == noVersion {
		// There was nothing before to go back to.
		return rotators.ErrNothingToUndo
	}
	restored, err := gsmsteps.Restore(ctx, run, x.r.clients.Store, x.secretName, prev, factRestoredVersion)
	if err != nil {
		return err
	}
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
	if prev == noVersion {
		return nil // there was no previous value to protect
	}
	latest, err := gsmsteps.LatestAdded(ctx, x.r.clients.Store, x.secretName, prev, run.Fact(factRestoredVersion))
	if err != nil || latest == "" {
		return err
	}
	return rotators.Permanent(fmt.Errorf("not revoking the new key: %s, the latest version of %s, may hold it; restore %s first", latest, x.secretName, prev))
}
