package redis

import (
	"context"
	"fmt"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Rollback puts back the old password everywhere, in an order that keeps
// the consumers working where the mode allows it:
//   - acl: the old password is made valid first (it may have been removed),
//     then the Secret is restored and the consumers restarted, and only then
//     is every other password (the new one, any lost one) removed, by hash,
//     so the new password's value is not needed.
//   - requirepass: Redis is switched back first, while the Secret still
//     holds the new password, so Redis's password is always the Secret's or
//     the backup's and the admin login works after any crash (package doc).
//
// The old password is read from the backup Secret each time.

// openWithOld opens a session and reads the old password from the backup;
// the caller closes the session when err is nil.
func (x *rotation) openWithOld(ctx context.Context, run rotators.Run) (*session, secret.Value, error) {
	s, err := x.open(run)
	if err != nil {
		return nil, secret.Value{}, err
	}
	old, err := s.old(ctx)
	if err != nil {
		s.close()
		return nil, secret.Value{}, err
	}
	return s, old, nil
}

// restoreOldPassword (acl) makes the old password valid again if it was removed.
func (x *rotation) restoreOldPassword(ctx context.Context, run rotators.Run) error {
	if run.Fact(factPasswordAdded) == "" {
		return rotators.ErrNothingToUndo
	}
	s, old, err := x.openWithOld(ctx, run)
	if err != nil {
		return err
	}
	defer s.close()
	u, err := x.requireUser(ctx, s)
	if err != nil {
		return err
	}
	if u.hasPassword(hashOf(old)) {
		if run.Fact(factOldRemoved) == "" {
			return rotators.ErrNothingToUndo
		}
		return nil // re-added by an earlier attempt
	}
	if err := s.setUser(ctx, x.aclUser, "#"+hashOf(old)); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "re-added the old password to the Redis user", "user", x.aclUser)
	run.Progress(ctx, fmt.Sprintf("User %s accepts the old password again", x.aclUser))
	return nil
}

// restoreRequirepass (requirepass) switches Redis back to the old password.
func (x *rotation) restoreRequirepass(ctx context.Context, run rotators.Run) error {
	if run.Fact(factRequirepassSet) == "" {
		return rotators.ErrNothingToUndo
	}
	s, old, err := x.openWithOld(ctx, run)
	if err != nil {
		return err
	}
	defer s.close()
	which, err := s.connectAdmin(ctx)
	if err != nil {
		return err
	}
	if which == loggedInWithOld {
		run.Progress(ctx, "Redis already requires the old password")
		return nil
	}
	if err := x.requirePassword(ctx, s, old, "old"); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "set requirepass back", "address", x.address)
	run.Progress(ctx, "Redis requires the old password again")
	return nil
}

// restoreSecret puts the backup's data back into the Secret.
func (x *rotation) restoreSecret(ctx context.Context, run rotators.Run) error {
	if run.Fact(factSecretUpdated) == "" {
		return rotators.ErrNothingToUndo
	}
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	backup := run.Fact(factBackup)
	if err := s.cl.RestoreSecret(ctx, x.namespace, x.secretName, backup); err != nil {
		return fmt.Errorf("restoring Secret %s from %s: %w", s.secretRef(), backup, err)
	}
	run.Log().InfoContext(ctx, "restored the Secret", "secret", s.secretRef(), "backup", backup)
	run.Progress(ctx, fmt.Sprintf("Restored Secret %s from %s", s.secretRef(), backup))
	return nil
}

// rollbackRestart restarts the consumers again once the Secret is back: any
// pod started since the Secret was written (not only by the forward
// restart) may hold the new password.
func (x *rotation) rollbackRestart(ctx context.Context, run rotators.Run) error {
	if run.Fact(factSecretUpdated) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.restartAll(ctx, run, factRollbackRestartAt, factRestartAt)
}

// removeNewPassword (acl) removes every password of the user but the old one.
func (x *rotation) removeNewPassword(ctx context.Context, run rotators.Run) error {
	if run.Fact(factPasswordAdded) == "" {
		return rotators.ErrNothingToUndo
	}
	s, old, err := x.openWithOld(ctx, run)
	if err != nil {
		return err
	}
	defer s.close()
	n, err := x.keepOnly(ctx, s, old, "")
	if err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "removed the new password from the Redis user", "user", x.aclUser, "removed", n)
	run.Progress(ctx, fmt.Sprintf("Removed %d password(s) from user %s; only the old one is left", n, x.aclUser))
	return nil
}

// rollbackPersist persists again if the forward persist may have written
// the new password to disk.
func (x *rotation) rollbackPersist(ctx context.Context, run rotators.Run) error {
	if run.Fact(factPersisted) == "" {
		return rotators.ErrNothingToUndo
	}
	return x.persistNow(ctx, run, "")
}
