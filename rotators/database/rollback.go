package database

import (
	"context"
	"fmt"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsmsteps"
)

// afterVerification is every rollback step's answer once verification has
// passed: the application runs on the new role and the old one may be
// NOLOGIN or gone, so going back would break it.
func afterVerification(run rotators.Run) error {
	if run.Fact(factVerifiedAt) == "" {
		return nil
	}
	return fmt.Errorf("verification passed at %s and the application uses role %s; a rollback would break it: %w",
		run.Fact(factVerifiedAt), run.Fact(factNewRole), rotators.ErrNothingToUndo)
}

// restoreVersion adds the old DSN (the value of prev_version) as the newest
// version, and disables the versions this rotation added: their role is
// dropped last.
func (x *rotation) restoreVersion(ctx context.Context, run rotators.Run) error {
	if err := afterVerification(run); err != nil {
		return err
	}
	prev := run.Fact(factPrevVersion)
	restored, err := gsmsteps.Restore(ctx, run, x.r.clients.Store, x.secretName, prev, factRestoredVersion)
	if err != nil {
		return err
	}
	run.Progress(ctx, fmt.Sprintf("Re-added the DSN of %s (role %s) as %s", prev, run.Fact(factOldRole), restored))
	return nil
}

// rollbackSync force-syncs again once the old DSN is back.
func (x *rotation) rollbackSync(ctx context.Context, run rotators.Run) error {
	if err := afterVerification(run); err != nil {
		return err
	}
	if run.Fact(factRestoredVersion) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.forceSync(ctx, run, factRollbackSyncAt, factSyncAt)
}

// rollbackRestart restarts again, if the forward restart ran, so the pods
// load the old DSN.
func (x *rotation) rollbackRestart(ctx context.Context, run rotators.Run) error {
	if err := afterVerification(run); err != nil {
		return err
	}
	if run.Fact(factRestoredVersion) == "" || run.Fact(factRestartAt) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.restartAll(ctx, run, factRollbackRestartAt, factRestartAt)
}

// dropNewRole drops the role this request made, once Secret Manager no
// longer serves its DSN and nothing is connected as it.
func (x *rotation) dropNewRole(ctx context.Context, run rotators.Run) error {
	if err := afterVerification(run); err != nil {
		return err
	}
	if run.Fact(factNewRoleDropped) != "" {
		return nil
	}
	name, oldName := run.Fact(factNewRole), run.Fact(factOldRole)
	if name == "" {
		return rotators.ErrNothingToUndo
	}
	if err := x.checkNewRoleUnused(ctx, run); err != nil {
		return err
	}
	conn, base, err := x.admin(ctx, x.database)
	if err != nil {
		return err
	}
	defer closeConn(ctx, run, conn)
	info, ok, err := lookupRole(ctx, conn, name)
	if err != nil {
		return err
	}
	if !ok {
		return rotators.ErrNothingToUndo // creating it never committed
	}
	if info.comment != x.marker {
		return rotators.Permanent(fmt.Errorf("role %q was not made by this request (its comment is not %q); not dropping it", name, x.marker))
	}
	dbs, err := x.dropRole(ctx, run, conn, base, info, oldName, factNewRoleDropStarted, false)
	if err != nil {
		return err
	}
	if err := run.Record(ctx, factNewRoleDropped, run.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "dropped the new database role", "role", name, "databases", dbs)
	run.Progress(ctx, fmt.Sprintf("Dropped the new role %s; the application uses %s again", name, oldName))
	return nil
}

// checkNewRoleUnused refuses while Secret Manager's latest version may hold
// the new role's DSN (the restore did not happen or failed): dropping the
// role then would break the workloads at their next sync.
func (x *rotation) checkNewRoleUnused(ctx context.Context, run rotators.Run) error {
	prev := run.Fact(factPrevVersion)
	latest, err := gsmsteps.LatestAdded(ctx, x.r.clients.Store, x.secretName, prev, run.Fact(factRestoredVersion))
	if err != nil || latest == "" {
		return err
	}
	return rotators.Permanent(fmt.Errorf("not dropping the new role: %s, the latest version of %s, may hold its DSN; restore %s first", latest, x.secretName, prev))
}
