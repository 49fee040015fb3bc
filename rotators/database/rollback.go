package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
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
	if prev == "" {
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
	run.Log().InfoContext(ctx, "restored the previous DSN", "previous", prev, "restored", restored, "disabled", disabled)
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
	if prev == "" {
		return nil // nothing was ever added
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
	return rotators.Permanent(fmt.Errorf("not dropping the new role: %s, the latest version of %s, may hold its DSN; restore %s first", latest, x.secretName, prev))
}

// versionNumber returns n of ".../versions/<n>".
func versionNumber(version string) (uint64, bool) {
	_, id, ok := strings.Cut(version, "/versions/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}
