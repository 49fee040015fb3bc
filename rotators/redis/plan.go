package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Step names: stable identifiers stored in journals. Never rename one.
const (
	StepPreflight      = "preflight"
	StepBackup         = "backup_secret"
	StepAddPassword    = "add_password"    // acl
	StepUpdateSecret   = "update_secret"   // both
	StepSetRequirepass = "set_requirepass" // requirepass
	StepRestart        = "restart"
	StepVerify         = "verify"              // acl
	StepRemoveOld      = "remove_old_password" // acl
	StepPersist        = "persist"

	StepRestoreOldPassword = "restore_old_password" // acl
	StepRestoreRequirepass = "restore_requirepass"  // requirepass
	StepRestoreSecret      = "restore_secret"
	StepRollbackRestart    = "rollback_restart"
	StepRemoveNewPassword  = "remove_new_password" // acl
	StepRollbackPersist    = "rollback_persist"
)

// Facts (persisted, never a password or a hash) and the memory-only secret.
// The "intent" facts are recorded before the change they announce and tell
// rollback what may have happened.
const (
	// factBackup: the backup Secret's name; the old password is read from it.
	factBackup = "backup_secret"
	// factPasswordAdded (acl): intent to add a password to the ACL user.
	factPasswordAdded = "password_added"
	// factSecretUpdated: intent to write a new password to the Secret.
	factSecretUpdated = "secret_updated"
	// factRequirepassSet (requirepass): intent to CONFIG SET requirepass.
	factRequirepassSet = "requirepass_set"
	// factRestartAt, factRollbackRestartAt: restart stamps, recorded before use.
	factRestartAt         = "restart_at"
	factRollbackRestartAt = "rollback_restart_at"
	// factOldRemoved (acl): intent to remove the old password.
	factOldRemoved = "old_password_removed"
	// factPersisted: intent to persist; the files may hold the new password.
	factPersisted = "persisted"

	intentStarted = "started"

	// secretNew is the memory-only key of the new password until it is in the Secret.
	secretNew = "new_password"
)

// stepMargin is added to a step's own wait so the step, not its deadline,
// reports a timeout.
const stepMargin = time.Minute

// rotation is one request's plan: the target's settings with {env} expanded.
type rotation struct {
	r           *Rotator
	spec        rotators.Spec
	address     string
	namespace   string
	secretName  string
	secretKey   string
	aclUser     string
	adminUser   string
	adminCred   string
	deployments []string
}

func (r *Rotator) expand(spec rotators.Spec) *rotation {
	env := func(s string) string { return strings.ReplaceAll(s, EnvPlaceholder, spec.Env) }
	s := r.s
	x := &rotation{
		r:          r,
		spec:       spec,
		address:    env(s.Address),
		namespace:  env(s.Namespace),
		secretName: env(s.Secret),
		secretKey:  env(s.SecretKey),
		aclUser:    env(s.ACLUser),
		adminUser:  env(s.AdminUser),
		adminCred:  env(s.AdminPasswordEnv),
	}
	for _, d := range s.Deployments {
		x.deployments = append(x.deployments, env(d))
	}
	return x
}

// appUser is the Redis user the consumers log in as.
func (x *rotation) appUser() string {
	if x.r.s.Mode == ModeRequirepass {
		return redisDefaultUser
	}
	return x.aclUser
}

// Plan returns the steps of a rotation of r's target for spec.
func (r *Rotator) Plan(spec rotators.Spec) rotators.Plan {
	x := r.expand(spec)
	deps := strings.Join(x.deployments, ", ")
	sec := x.namespace + "/" + x.secretName
	restartTimeout := time.Duration(len(x.deployments))*r.s.rolloutTimeout + stepMargin
	backup := rotators.Step{Name: StepBackup, Title: "Back up Secret " + sec, Run: x.backup}
	restart := rotators.Step{Name: StepRestart, Title: "Rolling restart " + deps, Timeout: restartTimeout, Run: x.restart}
	restoreSecret := rotators.Step{Name: StepRestoreSecret, Title: "Restore Secret " + sec + " from its backup", Run: x.restoreSecret}
	rollbackRestart := rotators.Step{Name: StepRollbackRestart, Title: "Rolling restart " + deps + " again", Timeout: restartTimeout, Run: x.rollbackRestart}
	backupNote := fmt.Sprintf("Secret %s is backed up first (to %s-backup-…, labelled with the request); the backup holds the old password and is left in place: delete it once the rotation is settled.", sec, sec)
	restartNote := fmt.Sprintf("Deployments %s in namespace %s will be restarted, in this order.", deps, x.namespace)

	if r.s.Mode == ModeRequirepass {
		return rotators.Plan{
			Steps: []rotators.Step{
				{Name: StepPreflight, Title: fmt.Sprintf("Check Redis at %s, Secret %s and the config file", x.address, sec), Run: x.preflight},
				backup,
				{Name: StepUpdateSecret, Title: fmt.Sprintf("Write a new password to Secret %s (key %s)", sec, x.secretKey), Run: x.updateSecretRequirepass},
				{Name: StepSetRequirepass, Title: "Set the new password in Redis (CONFIG SET requirepass)", Run: x.setRequirepass},
				restart,
				{Name: StepPersist, Title: "Persist Redis's config (CONFIG REWRITE)", Run: x.persist},
			},
			Rollback: []rotators.Step{
				{Name: StepRestoreRequirepass, Title: "Set the old password in Redis again (CONFIG SET requirepass)", Run: x.restoreRequirepass},
				restoreSecret,
				rollbackRestart,
				{Name: StepRollbackPersist, Title: "Persist Redis's config again (CONFIG REWRITE)", Run: x.rollbackPersist},
			},
			Notes: []string{
				fmt.Sprintf("Clients fail to authenticate between the password change and their restart: once Redis requires the new password (requirepass mode), every new connection made with the old one is refused until %s have restarted (open connections stay logged in). Use mode acl for a rotation without downtime.", deps),
				fmt.Sprintf("The new password is written to Secret %s just before Redis is switched to it, so it is never held only in memory; a pod started in that moment fails to log in until the switch, a second later.", sec),
				backupNote,
				restartNote,
			},
		}
	}
	return rotators.Plan{
		Steps: []rotators.Step{
			{Name: StepPreflight, Title: fmt.Sprintf("Check Redis user %s at %s, Secret %s and how Redis persists users", x.aclUser, x.address, sec), Run: x.preflight},
			backup,
			{Name: StepAddPassword, Title: fmt.Sprintf("Add a new password to Redis user %s (the old one keeps working)", x.aclUser), Run: x.addPassword},
			{Name: StepUpdateSecret, Title: fmt.Sprintf("Write the new password to Secret %s (key %s)", sec, x.secretKey), Run: x.updateSecretACL},
			restart,
			{Name: StepVerify, Title: fmt.Sprintf("Check that user %s logs in with the new password", x.aclUser), Run: x.verify},
			{Name: StepRemoveOld, Title: fmt.Sprintf("Remove the old password from user %s", x.aclUser), Run: x.removeOld},
			{Name: StepPersist, Title: "Persist Redis's users (ACL SAVE or CONFIG REWRITE)", Run: x.persist},
		},
		Rollback: []rotators.Step{
			{Name: StepRestoreOldPassword, Title: fmt.Sprintf("Make sure user %s accepts the old password", x.aclUser), Run: x.restoreOldPassword},
			restoreSecret,
			rollbackRestart,
			{Name: StepRemoveNewPassword, Title: fmt.Sprintf("Remove the new password from user %s", x.aclUser), Run: x.removeNewPassword},
			{Name: StepRollbackPersist, Title: "Persist Redis's users again", Run: x.rollbackPersist},
		},
		Notes: []string{
			fmt.Sprintf("No downtime: the new password is added to Redis user %s next to the old one, and the old one is removed only after %s have restarted and the new one was checked.", x.aclUser, deps),
			backupNote,
			restartNote,
		},
	}
}

// recordOnce records an intent fact unless an earlier attempt did.
func recordOnce(ctx context.Context, run rotators.Run, key string) error {
	if run.Fact(key) != "" {
		return nil
	}
	return run.Record(ctx, key, intentStarted)
}

func (x *rotation) random() io.Reader {
	if x.r.clients.Rand != nil {
		return x.r.clients.Rand
	}
	return rand.Reader
}

// errChangedElsewhere: the Secret differs from its backup but this rotation
// never wrote it.
func errChangedElsewhere(sec string) error {
	return rotators.Permanent(fmt.Errorf("Secret %s changed since its backup, but not by this rotation: refusing to go on", sec))
}

// --- forward steps ---

// preflight checks, before anything changes, that rotary can log in, that
// the Secret's password is the one Redis accepts for the app user, and that
// the result can be persisted.
func (x *rotation) preflight(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	cur, err := s.current(ctx)
	if err != nil {
		return err
	}
	if _, err := s.connectAdmin(ctx); err != nil {
		return err
	}
	sec := s.secretRef() + " (key " + x.secretKey + ")"
	if x.r.s.Mode == ModeRequirepass {
		if !x.r.s.adminRotated() {
			ok, err := s.authenticates(ctx, redisDefaultUser, cur)
			if err != nil {
				return err
			}
			if !ok {
				return rotators.Permanent(fmt.Errorf("Redis refuses the password in Secret %s for the default user: the Secret and Redis disagree; fix that by hand first", sec))
			}
		}
		u, err := s.getUser(ctx, redisDefaultUser)
		if err != nil {
			return err
		}
		if u == nil || u.hasFlag("nopass") {
			return rotators.Permanent(errors.New("Redis has no requirepass (the default user has nopass): there is no password to rotate"))
		}
		if len(u.passwords) > 1 {
			// CONFIG SET requirepass replaces all of them.
			return rotators.Permanent(fmt.Errorf("the default user has %d other password(s) besides the one in Secret %s, which CONFIG SET requirepass would remove; remove them first (ACL SETUSER default !<sha256>) if no one uses them, or use mode acl", len(u.passwords)-1, sec))
		}
	} else {
		u, err := s.getUser(ctx, x.aclUser)
		if err != nil {
			return err
		}
		switch {
		case u == nil:
			return rotators.Permanent(fmt.Errorf("Redis has no user %s", x.aclUser))
		case u.hasFlag("nopass"):
			return rotators.Permanent(fmt.Errorf("user %s has nopass (any password logs in): rotating its password would protect nothing; remove nopass first", x.aclUser))
		case !u.hasFlag("on"):
			return rotators.Permanent(fmt.Errorf("user %s is disabled (off)", x.aclUser))
		case !u.hasPassword(hashOf(cur)):
			return rotators.Permanent(fmt.Errorf("the password in Secret %s is not a password of user %s: the Secret and Redis disagree; fix that by hand first", sec, x.aclUser))
		case len(u.passwords) > 1:
			// The last step removes every password but the new one, so
			// any other must be known to be stale before starting.
			return rotators.Permanent(fmt.Errorf("user %s has %d other password(s) besides the one in Secret %s; rotary removes all but the new one at the end, so remove the others first (ACL SETUSER %s !<sha256>) if no one uses them", x.aclUser, len(u.passwords)-1, sec, x.aclUser))
		}
	}
	cmds, err := s.persistCommands(ctx)
	if err != nil {
		return err
	}
	run.Progress(ctx, fmt.Sprintf("Redis accepts the Secret's password for user %s; will persist with %s", x.appUser(), strings.Join(cmds, " and ")))
	return nil
}

// backup copies the Secret; the copy is where the old password is read from.
func (x *rotation) backup(ctx context.Context, run rotators.Run) error {
	if run.Fact(factBackup) != "" {
		return nil
	}
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	// A repeat returns the same backup, unchanged: it keeps the original.
	name, err := s.cl.BackupSecret(ctx, x.namespace, x.secretName, run.RequestID())
	if err != nil {
		return fmt.Errorf("backing up Secret %s: %w", s.secretRef(), err)
	}
	if _, err := s.readKey(ctx, name); err != nil {
		return err
	}
	if err := run.Record(ctx, factBackup, name); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "backed up the Secret", "secret", s.secretRef(), "backup", name)
	run.Progress(ctx, fmt.Sprintf("Backed up Secret %s to %s/%s", s.secretRef(), x.namespace, name))
	return nil
}

// addPassword (acl) adds a new password to the user, next to the old one.
func (x *rotation) addPassword(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	cur, old, err := s.currentAndOld(ctx)
	if err != nil {
		return err
	}
	if !cur.Equal(old) {
		// The Secret holds a new password, which was added before it was
		// written: this step is done.
		return nil
	}
	u, err := x.requireUser(ctx, s)
	if err != nil {
		return err
	}
	var rules []string
	pw, ok := run.Secret(secretNew)
	if !ok {
		if pw, err = newPassword(x.random()); err != nil {
			return err
		}
		run.KeepSecret(secretNew, pw)
		// Passwords other than the old one were added by an earlier
		// attempt whose value was lost (preflight saw only the old one):
		// nobody can use them, so they go in the same command.
		for _, h := range u.passwordsBut(hashOf(old)) {
			rules = append(rules, "!"+h)
		}
	}
	s.sc.add(pw)
	if u.hasPassword(hashOf(pw)) {
		run.Progress(ctx, fmt.Sprintf("User %s already has the new password", x.aclUser))
		return nil
	}
	if err := recordOnce(ctx, run, factPasswordAdded); err != nil {
		return err
	}
	if err := s.setUser(ctx, x.aclUser, append(rules, "#"+hashOf(pw))...); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "added a password to the Redis user", "user", x.aclUser, "removed_lost", len(rules))
	detail := fmt.Sprintf("Added a new password to user %s; the old one still works", x.aclUser)
	if len(rules) > 0 {
		detail += fmt.Sprintf(" (removed %d password(s) of an earlier attempt whose value was lost)", len(rules))
	}
	run.Progress(ctx, detail)
	return nil
}

// updateSecretACL (acl) writes the new password, once Redis accepts it, to
// the Secret.
func (x *rotation) updateSecretACL(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	todo, err := s.secretStillOld(ctx)
	if err != nil || !todo {
		return err // nil: the Secret already holds this rotation's password
	}
	pw, ok := run.Secret(secretNew)
	if !ok {
		return &rotators.SecretLostError{From: StepAddPassword}
	}
	s.sc.add(pw)
	if _, err := s.connectAdmin(ctx); err != nil {
		return err
	}
	u, err := s.getUser(ctx, x.aclUser)
	if err != nil {
		return err
	}
	if u == nil || !u.hasPassword(hashOf(pw)) {
		return rotators.Permanent(fmt.Errorf("user %s does not have the new password: not writing it to Secret %s", x.aclUser, s.secretRef()))
	}
	return x.writeSecret(ctx, s, pw)
}

// updateSecretRequirepass (requirepass) generates the new password and
// writes it to the Secret, before Redis is switched to it (package doc).
func (x *rotation) updateSecretRequirepass(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	todo, err := s.secretStillOld(ctx)
	if err != nil || !todo {
		return err // nil: the Secret already holds this rotation's password
	}
	// Nothing used a password generated by an earlier attempt that never
	// reached the Secret, so a new one is as good.
	pw, err := newPassword(x.random())
	if err != nil {
		return err
	}
	// Memory-only too, so the executor scrubs it from any error text.
	run.KeepSecret(secretNew, pw)
	s.sc.add(pw)
	return x.writeSecret(ctx, s, pw)
}

func (x *rotation) writeSecret(ctx context.Context, s *session, pw secret.Value) error {
	if err := recordOnce(ctx, s.run, factSecretUpdated); err != nil {
		return err
	}
	if err := s.cl.UpdateSecretData(ctx, x.namespace, x.secretName, map[string]secret.Value{x.secretKey: pw}, nil); err != nil {
		return fmt.Errorf("writing the new password to Secret %s: %w", s.secretRef(), err)
	}
	s.run.Log().InfoContext(ctx, "wrote the new password to the Secret", "secret", s.secretRef(), "key", x.secretKey)
	s.run.Progress(ctx, fmt.Sprintf("Wrote the new password to Secret %s (key %s)", s.secretRef(), x.secretKey))
	return nil
}

// currentAndOld reads the Secret's password and the old one (from the
// backup).
func (s *session) currentAndOld(ctx context.Context) (cur, old secret.Value, err error) {
	if cur, err = s.current(ctx); err != nil {
		return cur, old, err
	}
	old, err = s.old(ctx)
	return cur, old, err
}

// secretStillOld reports whether the Secret still holds the old password,
// so an update step has its write to do. Holding another password, it was
// written by this rotation if the intent was recorded, and by someone else
// otherwise, which is refused.
func (s *session) secretStillOld(ctx context.Context) (bool, error) {
	cur, old, err := s.currentAndOld(ctx)
	if err != nil {
		return false, err
	}
	if cur.Equal(old) {
		return true, nil
	}
	if s.run.Fact(factSecretUpdated) == "" {
		return false, errChangedElsewhere(s.secretRef())
	}
	return false, nil
}

// newAndOld reads the new password (from the Secret) and the old one (from
// the backup), and fails when the Secret was not updated yet.
func (s *session) newAndOld(ctx context.Context) (cur, old secret.Value, err error) {
	if cur, old, err = s.currentAndOld(ctx); err != nil {
		return cur, old, err
	}
	if cur.Equal(old) {
		return cur, old, rotators.Permanent(fmt.Errorf("Secret %s still holds the old password: step %s has not run", s.secretRef(), StepUpdateSecret))
	}
	return cur, old, nil
}

// setRequirepass (requirepass) switches Redis to the Secret's new password.
func (x *rotation) setRequirepass(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	cur, _, err := s.newAndOld(ctx)
	if err != nil {
		return err
	}
	which, err := s.connectAdmin(ctx)
	if err != nil {
		return err
	}
	if which == loggedInWithCurrent {
		run.Progress(ctx, "Redis already requires the new password")
		return nil
	}
	if err := recordOnce(ctx, run, factRequirepassSet); err != nil {
		return err
	}
	if err := x.requirePassword(ctx, s, cur, "new"); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "set requirepass", "address", x.address)
	run.Progress(ctx, "Redis now requires the new password; clients with the old one fail to log in until they restart")
	return nil
}

// requirePassword switches requirepass to pw and checks, on a fresh
// connection, that the default user logs in with it; what names pw ("new",
// "old") in the error.
func (x *rotation) requirePassword(ctx context.Context, s *session, pw secret.Value, what string) error {
	if err := s.setRequirepass(ctx, pw); err != nil {
		return err
	}
	ok, err := s.authenticates(ctx, redisDefaultUser, pw)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("Redis at %s refuses the %s password after CONFIG SET requirepass", x.address, what)
	}
	return nil
}

// restart restarts the deployments so they load the Secret's password.
func (x *rotation) restart(ctx context.Context, run rotators.Run) error {
	return x.restartAll(ctx, run, factRestartAt)
}

// verify (acl) logs in as the app user with the new password, on a fresh
// connection, as a restarted consumer does.
func (x *rotation) verify(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	cur, _, err := s.newAndOld(ctx)
	if err != nil {
		return err
	}
	ok, err := s.authenticates(ctx, x.aclUser, cur)
	if err != nil {
		return err
	}
	if !ok {
		return rotators.Permanent(fmt.Errorf("Redis refuses the new password for user %s", x.aclUser))
	}
	run.Progress(ctx, fmt.Sprintf("User %s logs in with the new password", x.aclUser))
	return nil
}

// removeOld (acl) removes every password of the user but the Secret's: the
// old one, and any lost by a crashed attempt.
func (x *rotation) removeOld(ctx context.Context, run rotators.Run) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	cur, _, err := s.newAndOld(ctx)
	if err != nil {
		return err
	}
	n, err := x.keepOnly(ctx, s, cur, factOldRemoved)
	if err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "removed old passwords from the Redis user", "user", x.aclUser, "removed", n)
	run.Progress(ctx, fmt.Sprintf("Removed %d old password(s) from user %s; only the new one is left", n, x.aclUser))
	return nil
}

// keepOnly removes every password of the ACL user but keep's, recording
// intent (if intent is set) first. It refuses when keep is not a password of
// the user, which would lock the consumers out.
func (x *rotation) keepOnly(ctx context.Context, s *session, keep secret.Value, intent string) (int, error) {
	u, err := x.requireUser(ctx, s)
	if err != nil {
		return 0, err
	}
	if !u.hasPassword(hashOf(keep)) {
		return 0, rotators.Permanent(fmt.Errorf("user %s does not have the password to keep: refusing to remove the others", x.aclUser))
	}
	others := u.passwordsBut(hashOf(keep))
	if len(others) == 0 {
		return 0, nil
	}
	if intent != "" {
		if err := recordOnce(ctx, s.run, intent); err != nil {
			return 0, err
		}
	}
	rules := make([]string, 0, len(others))
	for _, h := range others {
		rules = append(rules, "!"+h)
	}
	if err := s.setUser(ctx, x.aclUser, rules...); err != nil {
		return 0, err
	}
	return len(others), nil
}

// requireUser logs in as the admin and reads the ACL user, which must exist.
func (x *rotation) requireUser(ctx context.Context, s *session) (*aclUser, error) {
	if _, err := s.connectAdmin(ctx); err != nil {
		return nil, err
	}
	u, err := s.getUser(ctx, x.aclUser)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, rotators.Permanent(fmt.Errorf("Redis has no user %s", x.aclUser))
	}
	return u, nil
}

// persist saves the change to disk, so a restart of Redis keeps it.
func (x *rotation) persist(ctx context.Context, run rotators.Run) error {
	return x.persistNow(ctx, run, factPersisted)
}

func (x *rotation) persistNow(ctx context.Context, run rotators.Run, intent string) error {
	s, err := x.open(run)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := s.connectAdmin(ctx); err != nil {
		return err
	}
	cmds, err := s.persistCommands(ctx)
	if err != nil {
		return err
	}
	if intent != "" {
		if err := recordOnce(ctx, run, intent); err != nil {
			return err
		}
	}
	if err := s.persist(ctx, cmds); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "persisted Redis's passwords", "commands", cmds)
	run.Progress(ctx, "Persisted with "+strings.Join(cmds, " and "))
	return nil
}

// restartAll restarts the deployments in order with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) restartAll(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.RestartAll(ctx, run, x.r.clients.Cluster, x.namespace, x.deployments, key, x.r.s.rolloutTimeout, after...)
}
