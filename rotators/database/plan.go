package database

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Step names: stable identifiers stored in journals. Never rename one.
const (
	StepNewRole      = "new_role"
	StepCheckRole    = "check_role"
	StepStoreVersion = "store_version"
	StepSync         = "sync"
	StepRestart      = "restart"
	StepVerify       = "verify"
	StepRetireOld    = "retire_old_role"

	StepRestoreVersion  = "restore_version"
	StepRollbackSync    = "rollback_sync"
	StepRollbackRestart = "rollback_restart"
	StepDropNewRole     = "drop_new_role"
)

// PromptRetireNow is the button that drops the old role before retire_after.
const (
	PromptRetireNow = "retire_now"
	retireButton    = "Drop old role now"
)

// Facts (persisted, never secret) and the memory-only secret.
const (
	// factPrevVersion: the version the old DSN was read from, recorded
	// before anything is made; rollback re-adds its value.
	factPrevVersion = "prev_version"
	// factOldRole: the role in that DSN, to be retired.
	factOldRole = "old_role"
	// factNewRole: the new role's name, recorded before it is created.
	factNewRole = "new_role"
	// factNewVersion: the version holding the new DSN. Once set, the new
	// role's password must never change again.
	factNewVersion = "new_version"
	// factSyncAt, factRestartAt: the force-sync and restart stamps.
	factSyncAt    = "sync_at"
	factRestartAt = "restart_at"
	// factRolloutDoneAt: when every rollout had finished; a session of the
	// old role that starts later comes from a consumer that was missed.
	factRolloutDoneAt = "rollout_done_at"
	// factVerifiedAt: verification passed; from here on rollback undoes
	// nothing and the old role is retired.
	factVerifiedAt = "verified_at"
	// factRetireDueAt: when the old role is dropped without the button.
	factRetireDueAt = "retire_due_at"
	// factRetireStarted: the old role was made NOLOGIN (it may be gone).
	factRetireStarted = "retire_started"
	// factOldRoleDropped: the old role no longer exists.
	factOldRoleDropped = "old_role_dropped"
	// Rollback's own facts.
	factRestoredVersion   = "restored_version"
	factRollbackSyncAt    = "rollback_sync_at"
	factRollbackRestartAt = "rollback_restart_at"
	factNewRoleDropped    = "new_role_dropped"
	// factNewRoleDropStarted: the new role was made NOLOGIN (it may be gone).
	factNewRoleDropStarted = "new_role_drop_started"

	// secretPassword is the memory-only key of the new role's password.
	secretPassword = "new_password"
)

// Step limits beyond the rotators defaults.
const (
	// stepMargin is added to a step's own wait so the step, not its
	// deadline, reports a timeout.
	stepMargin = time.Minute
	// retireGrace is how long after retire_after the retire step keeps
	// trying (and waiting for the button) while the old role is refused.
	retireGrace = 24 * time.Hour
	// maxRoleSuffix bounds the _2, _3 … tried when a role name is taken.
	maxRoleSuffix = 99
)

// rotation is one request's plan: the target's settings with {env} expanded.
type rotation struct {
	r              *Rotator
	spec           rotators.Spec
	namespace      string
	secretName     string
	externalSecret string
	deployments    []string
	rolePattern    string
	dsnTemplate    string
	database       string
	schemas        []string
	checkSchema    string
	checkTable     string
	adminDSNEnv    string
	// marker is the comment on the role this request makes.
	marker string
	// checkAppName is the application_name of rotary's sessions as the new
	// role, which connection counts leave out.
	checkAppName string
}

func (r *Rotator) expand(spec rotators.Spec) *rotation {
	env := func(s string) string { return strings.ReplaceAll(s, EnvPlaceholder, spec.Env) }
	s := r.s
	x := &rotation{
		r:              r,
		spec:           spec,
		namespace:      env(s.Namespace),
		secretName:     gsm.SecretName(env(s.SecretManager.Project), env(s.SecretManager.Secret)),
		externalSecret: env(s.ExternalSecret),
		rolePattern:    env(s.RolePattern),
		dsnTemplate:    env(s.DSNTemplate),
		database:       env(s.Database),
		adminDSNEnv:    env(s.AdminDSNEnv),
		marker:         RoleComment(spec.RequestID),
		checkAppName:   adminAppName + "/" + spec.RequestID,
	}
	for _, d := range s.Deployments {
		x.deployments = append(x.deployments, env(d))
	}
	for _, sc := range s.Schemas {
		x.schemas = append(x.schemas, env(sc))
	}
	if s.CheckTable != "" {
		x.checkSchema, x.checkTable = splitTable(env(s.CheckTable))
	}
	return x
}

// RoleComment is the comment rotary sets on the role it makes for a
// request: the proof, on a repeat or a rollback, that the role is its own.
func RoleComment(requestID string) string { return "rotary request " + requestID }

// Plan returns the steps of a rotation of r's target for spec.
func (r *Rotator) Plan(spec rotators.Spec) rotators.Plan {
	x := r.expand(spec)
	deps := strings.Join(x.deployments, ", ")
	syncTimeout := r.s.syncTimeout + stepMargin
	restartTimeout := time.Duration(len(x.deployments))*r.s.rolloutTimeout + stepMargin
	verifyTimeout := restartTimeout + r.verifyWait
	es := x.namespace + "/" + x.externalSecret
	p := rotators.Plan{
		Steps: []rotators.Step{
			{Name: StepNewRole, Title: "Create a new database role with the old role's privileges", Run: x.newRole},
			{Name: StepCheckRole, Title: "Connect as the new role and run the check query", Run: x.checkRole},
			{Name: StepStoreVersion, Title: "Add the new DSN as a Secret Manager version", Run: x.storeVersion},
			{Name: StepSync, Title: "Force-sync ExternalSecret " + es, Timeout: syncTimeout, Run: x.sync},
			{Name: StepRestart, Title: "Rolling restart " + deps, Timeout: restartTimeout, Run: x.restart},
			{Name: StepVerify, Title: "Verify the rollout" + x.verifyTitle(), Timeout: verifyTimeout, Run: x.verify},
			{
				Name:    StepRetireOld,
				Title:   fmt.Sprintf("Drop the old role (after %s, or at once with %q)", humanDuration(r.s.retireAfter), retireButton),
				Timeout: r.s.retireAfter + retireGrace + stepMargin,
				Run:     x.retire,
			},
		},
		Rollback: []rotators.Step{
			{Name: StepRestoreVersion, Title: "Re-add the old DSN as the newest Secret Manager version", Run: x.restoreVersion},
			{Name: StepRollbackSync, Title: "Force-sync ExternalSecret " + es + " again", Timeout: syncTimeout, Run: x.rollbackSync},
			{Name: StepRollbackRestart, Title: "Rolling restart " + deps + " again", Timeout: restartTimeout, Run: x.rollbackRestart},
			{Name: StepDropNewRole, Title: "Drop the new role", Run: x.dropNewRole},
		},
		Notes: []string{
			fmt.Sprintf("A new role (%s) gets the privileges of the role in the current DSN, in database %s; the old role is left as it is until verification passes.", r.s.RolePattern, x.database),
			fmt.Sprintf("Deployments %s in namespace %s will be restarted, in this order.", deps, x.namespace),
			fmt.Sprintf("After verification the old role is dropped after %s, or at once from the %q button, and only while no session of it is in use (idle leftover sessions are terminated). The request stays running until then, holding the target's one active slot, so that no second rotation makes a third role meanwhile.", humanDuration(r.s.retireAfter), retireButton),
			"Once verification has passed, a failure rolls nothing back: the new role stays in use.",
		},
	}
	return p
}

func (x *rotation) verifyTitle() string {
	if x.r.s.VerifyConnections {
		return " and pg_stat_activity"
	}
	return ""
}

// Missing collaborators are permanent failures: retrying cannot supply them.
func (x *rotation) store() (SecretStore, error) {
	if x.r.clients.Store == nil {
		return nil, rotators.Permanent(errors.New("no Secret Manager client is configured"))
	}
	return x.r.clients.Store, nil
}

func (x *rotation) cluster() (Cluster, error) {
	if x.r.clients.Cluster == nil {
		return nil, rotators.Permanent(errors.New("no Kubernetes client is configured"))
	}
	return x.r.clients.Cluster, nil
}

// adminConfig reads the admin DSN from the credentials now (Build runs
// without them). Its parse error is not shown: its text would quote the DSN.
func (x *rotation) adminConfig() (*pgx.ConnConfig, error) {
	creds := x.r.clients.Creds
	if creds == nil {
		return nil, rotators.Permanent(errors.New("no credential source is configured"))
	}
	v, err := creds.Lookup(x.adminDSNEnv)
	if err != nil {
		return nil, rotators.Permanent(fmt.Errorf("looking up the admin DSN (credential %s): %w", x.adminDSNEnv, err))
	}
	if v.IsZero() {
		return nil, rotators.Permanent(fmt.Errorf("the admin DSN (credential %s) is empty", x.adminDSNEnv))
	}
	cfg, err := pgx.ParseConfig(string(v.Reveal()))
	if err != nil {
		return nil, rotators.Permanent(fmt.Errorf("the admin DSN (credential %s) is not a PostgreSQL connection string pgx can parse (its text is not shown: it holds a password)", x.adminDSNEnv))
	}
	return cfg, nil
}

// admin opens an admin session to database.
func (x *rotation) admin(ctx context.Context, database string) (*pgx.Conn, *pgx.ConnConfig, error) {
	base, err := x.adminConfig()
	if err != nil {
		return nil, nil, err
	}
	conn, err := connect(ctx, base, database, "", secret.Value{}, adminAppName, true)
	if err != nil {
		return nil, nil, fmt.Errorf("admin session: %w", err)
	}
	return conn, base, nil
}

// closeConn closes a session; a close error changes nothing for the step.
func closeConn(ctx context.Context, run rotators.Run, conn *pgx.Conn) {
	if err := conn.Close(context.WithoutCancel(ctx)); err != nil {
		run.Log().DebugContext(ctx, "closing a database session failed", "err", err)
	}
}

// --- forward steps ---

// newRole creates the new role (or, on a repeat, gives the role this
// request made a new password) with the old role's privileges, and keeps
// the password in memory.
func (x *rotation) newRole(ctx context.Context, run rotators.Run) error {
	if run.Fact(factNewVersion) != "" {
		return nil // the DSN is stored: its password must not change
	}
	if x.r.clients.Rand == nil {
		return rotators.Permanent(errors.New("no source of randomness is configured"))
	}
	store, err := x.store()
	if err != nil {
		return err
	}
	conn, _, err := x.admin(ctx, x.database)
	if err != nil {
		return err
	}
	defer closeConn(ctx, run, conn)

	oldName, err := x.oldRole(ctx, run, store)
	if err != nil {
		return err
	}
	old, err := x.checkOldRole(ctx, conn, oldName)
	if err != nil {
		return err
	}
	name := run.Fact(factNewRole)
	if name == "" {
		if name, err = x.pickRoleName(ctx, run, conn); err != nil {
			return err
		}
		// Intent before action: a repeat finds the role under this name.
		if err := run.Record(ctx, factNewRole, name); err != nil {
			return err
		}
	}

	// A repeat within the same process keeps the password it made; after a
	// restart the password is gone and the role gets a new one.
	password, ok := run.Secret(secretPassword)
	if !ok {
		if password, err = newPassword(x.r.clients.Rand); err != nil {
			return err
		}
		run.KeepSecret(secretPassword, password)
	}
	verifier, err := scramVerifier(password, x.r.clients.Rand)
	if err != nil {
		return err
	}
	created, n, err := x.applyRole(ctx, conn, old, name, verifier)
	if err != nil {
		return err
	}
	verb := "Created"
	if !created {
		verb = "Set a new password for"
	}
	run.Log().InfoContext(ctx, "new database role ready", "role", name, "created", created, "from", old.name, "statements", n)
	run.Progress(ctx, fmt.Sprintf("%s role %s with the privileges of %s (%d grants)", verb, name, old.name, n))
	return nil
}

// oldRole returns the role of the DSN in Secret Manager's latest version,
// reading it once and recording it (with the version) before anything is
// made: a later read could see this rotation's own version.
func (x *rotation) oldRole(ctx context.Context, run rotators.Run, store SecretStore) (string, error) {
	if old := run.Fact(factOldRole); old != "" && run.Fact(factPrevVersion) != "" {
		return old, nil
	}
	latest, err := store.LatestEnabled(ctx, x.secretName)
	if errors.Is(err, gsm.ErrNoVersion) {
		return "", rotators.Permanent(fmt.Errorf("%s has no enabled version: rotary learns the role in use from the current DSN, so add it by hand first", x.secretName))
	}
	if err != nil {
		return "", fmt.Errorf("reading the current version of %s: %w", x.secretName, err)
	}
	dsn, err := store.Access(ctx, latest)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", latest, err)
	}
	user, err := dsnUser(dsn)
	if err != nil {
		return "", rotators.Permanent(fmt.Errorf("reading the role in use from %s: %w", latest, err))
	}
	if err := run.Record(ctx, factPrevVersion, latest); err != nil {
		return "", err
	}
	if err := run.Record(ctx, factOldRole, user); err != nil {
		return "", err
	}
	return user, nil
}

// checkOldRole refuses roles rotary must not take over and later drop.
func (x *rotation) checkOldRole(ctx context.Context, conn *pgx.Conn, name string) (roleInfo, error) {
	old, ok, err := lookupRole(ctx, conn, name)
	if err != nil {
		return roleInfo{}, err
	}
	if !ok {
		return roleInfo{}, rotators.Permanent(fmt.Errorf("role %q, the user of the current DSN, does not exist", name))
	}
	me, err := currentUser(ctx, conn)
	if err != nil {
		return roleInfo{}, err
	}
	switch {
	case name == me:
		return roleInfo{}, rotators.Permanent(fmt.Errorf("the current DSN uses role %q, rotary's own admin role: rotary will not retire it", name))
	case old.super:
		return roleInfo{}, rotators.Permanent(fmt.Errorf("role %q is a superuser: rotary does not make superusers, so it cannot take its place", name))
	}
	return old, nil
}

// pickRoleName expands role_pattern and appends _2, _3 … while the name
// is taken by a role this request did not make.
func (x *rotation) pickRoleName(ctx context.Context, run rotators.Run, conn *pgx.Conn) (string, error) {
	base := expandRolePattern(x.rolePattern, x.spec.Env, run.Now().UTC().Format("20060102"), requestToken(x.spec.RequestID))
	for n := 1; n <= maxRoleSuffix; n++ {
		name := base + roleSuffix(n)
		if msg := roleNameProblem(name, 0); msg != "" {
			return "", rotators.Permanent(fmt.Errorf("role_pattern gives %q, which %s", name, msg))
		}
		info, taken, err := lookupRole(ctx, conn, name)
		if err != nil {
			return "", err
		}
		if !taken || info.comment == x.marker {
			return name, nil
		}
	}
	return "", rotators.Permanent(fmt.Errorf("role names %s to %s are all taken", base, base+roleSuffix(maxRoleSuffix)))
}

// applyRole creates role name (or sets its password when this request
// made it), marks it as this request's, and grants it the old role's
// privileges, in one transaction: a failure leaves no half-made role.
func (x *rotation) applyRole(ctx context.Context, conn *pgx.Conn, old roleInfo, name, verifier string) (created bool, statements int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, 0, fmt.Errorf("starting a transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	existing, exists, err := lookupRole(ctx, tx, name)
	if err != nil {
		return false, 0, err
	}
	if exists && existing.comment != x.marker {
		return false, 0, rotators.Permanent(fmt.Errorf("role %q exists but was not made by this request (its comment is not %q); rotary will not change it", name, x.marker))
	}
	lits, err := quoteLiterals(ctx, tx, verifier, x.marker)
	if err != nil {
		return false, 0, err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	stmts := []string{
		verb + " ROLE " + ident(name) + " WITH " + old.attributes() + " PASSWORD " + lits[0],
		"COMMENT ON ROLE " + ident(name) + " IS " + lits[1],
	}
	grants, err := grantStatements(ctx, tx, grantSpec{database: x.database, schemas: x.schemas, old: old, newRole: name})
	var missing errSchemasMissing
	if errors.As(err, &missing) {
		return false, 0, rotators.Permanent(err)
	}
	if err != nil {
		return false, 0, err
	}
	for _, s := range append(stmts, grants...) {
		if _, err := tx.Exec(ctx, s); err != nil {
			// The statement names roles and objects only; the password
			// literal is a verifier, and the server does not echo it.
			return false, 0, fmt.Errorf("giving role %q the privileges of %q: %w%s", name, old.name, err, pgDetail(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, 0, fmt.Errorf("committing role %q: %w", name, err)
	}
	return !exists, len(grants), nil
}

// checkRole connects as the new role, runs check_query and reads
// check_table, in a read-only transaction that is rolled back.
func (x *rotation) checkRole(ctx context.Context, run rotators.Run) error {
	if run.Fact(factNewVersion) != "" {
		return nil
	}
	name := run.Fact(factNewRole)
	if name == "" {
		return rotators.Permanent(fmt.Errorf("no new role recorded (fact %s): step %s has not run", factNewRole, StepNewRole))
	}
	password, ok := run.Secret(secretPassword)
	if !ok {
		return &rotators.SecretLostError{From: StepNewRole}
	}
	base, err := x.adminConfig()
	if err != nil {
		return err
	}
	conn, err := connect(ctx, base, x.database, name, password, x.checkAppName, false)
	if err != nil {
		return err
	}
	defer closeConn(ctx, run, conn)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("starting a read-only transaction as role %q: %w", name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	rows, err := tx.Query(ctx, x.r.s.CheckQuery, pgx.QueryExecModeExec)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		return fmt.Errorf("the check query failed as role %q: %w", name, err)
	}
	done := "check query passed"
	if x.checkTable != "" {
		table := tableIdent(x.checkSchema, x.checkTable)
		rows, err := tx.Query(ctx, "SELECT 1 FROM "+table+" LIMIT 1", pgx.QueryExecModeExec)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			return fmt.Errorf("role %q cannot read %s: %w", name, table, err)
		}
		done += ", " + table + " is readable"
	}
	run.Progress(ctx, fmt.Sprintf("Connected to %s as %s: %s", x.database, name, done))
	return nil
}

// storeVersion adds the new DSN as a new Secret Manager version.
func (x *rotation) storeVersion(ctx context.Context, run rotators.Run) error {
	if run.Fact(factNewVersion) != "" {
		return nil
	}
	name, prev := run.Fact(factNewRole), run.Fact(factPrevVersion)
	if name == "" || prev == "" {
		return rotators.Permanent(fmt.Errorf("no new role or previous version recorded (facts %s, %s): step %s has not run", factNewRole, factPrevVersion, StepNewRole))
	}
	password, ok := run.Secret(secretPassword)
	if !ok {
		return &rotators.SecretLostError{From: StepNewRole}
	}
	store, err := x.store()
	if err != nil {
		return err
	}
	dsn, err := buildDSN(x.dsnTemplate, name, password)
	if err != nil {
		return rotators.Permanent(err)
	}
	// A crash between this add and its Record leaves an orphan version whose
	// password the repeat replaces (new_role runs again): harmless, since
	// the version added after it is the newest.
	version, err := store.AddVersion(ctx, x.secretName, dsn)
	if err != nil {
		return fmt.Errorf("adding a version to %s: %w", x.secretName, err)
	}
	if err := run.Record(ctx, factNewVersion, version); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "added a secret version", "version", version, "previous", prev, "role", name)
	run.Progress(ctx, fmt.Sprintf("Added %s for role %s (previous: %s)", version, name, prev))
	return nil
}

func (x *rotation) sync(ctx context.Context, run rotators.Run) error {
	if run.Fact(factNewVersion) == "" {
		return rotators.Permanent(fmt.Errorf("no new version recorded (fact %s): step %s has not run", factNewVersion, StepStoreVersion))
	}
	return x.forceSync(ctx, run, factSyncAt)
}

// forceSync force-syncs the ExternalSecret with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) forceSync(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.ForceSync(ctx, run, x.r.clients.Cluster, x.namespace, x.externalSecret, key, x.r.s.syncTimeout, after...)
}

// restart restarts the consumers and records when their rollouts finished.
func (x *rotation) restart(ctx context.Context, run rotators.Run) error {
	if err := x.restartAll(ctx, run, factRestartAt); err != nil {
		return err
	}
	if run.Fact(factRolloutDoneAt) == "" {
		return run.Record(ctx, factRolloutDoneAt, run.Now().UTC().Format(time.RFC3339))
	}
	return nil
}

// restartAll restarts the deployments in order with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) restartAll(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.RestartAll(ctx, run, x.r.clients.Cluster, x.namespace, x.deployments, key, x.r.s.rolloutTimeout, after...)
}

// verify checks that the rollouts are (still) complete and, with
// verify_connections, that the new role is connected and no session of the
// old role started after the rollouts finished. It records verified_at last.
func (x *rotation) verify(ctx context.Context, run rotators.Run) error {
	if run.Fact(factVerifiedAt) != "" {
		return nil
	}
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	for _, d := range x.deployments {
		if err := kubesteps.WaitRollout(ctx, run, cl, x.namespace, d, x.r.s.rolloutTimeout); err != nil {
			return err
		}
	}
	summary := fmt.Sprintf("%s rolled out", strings.Join(x.deployments, ", "))
	if x.r.s.VerifyConnections {
		n, err := x.verifyConnections(ctx, run)
		if err != nil {
			return err
		}
		summary += fmt.Sprintf("; %d session(s) as %s, none new as %s", n, run.Fact(factNewRole), run.Fact(factOldRole))
	}
	if err := run.Record(ctx, factVerifiedAt, run.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	run.Progress(ctx, "Verified: "+summary)
	return nil
}

// verifyConnections waits (polling pg_stat_activity: the server cannot
// signal a new session) until the new role has a session to the database,
// failing at once when an old-role session starts after the rollouts.
//
// The reference is when the rollouts finished, not the restart stamp: old
// pods keep serving (and may open pool connections) until the rolling
// update replaces them, so only a session that starts later proves a missed
// consumer. It is rotary's clock against the server's backend_start, which
// assumes NTP-synced clocks (a skew of seconds only narrows the window).
func (x *rotation) verifyConnections(ctx context.Context, run rotators.Run) (int, error) {
	newName, oldName := run.Fact(factNewRole), run.Fact(factOldRole)
	doneAt, err := time.Parse(time.RFC3339, run.Fact(factRolloutDoneAt))
	if newName == "" || oldName == "" || err != nil {
		return 0, rotators.Permanent(fmt.Errorf("facts %s, %s or %s are missing: the earlier steps have not run", factNewRole, factOldRole, factRolloutDoneAt))
	}
	conn, _, err := x.admin(ctx, x.database)
	if err != nil {
		return 0, err
	}
	defer closeConn(ctx, run, conn)
	newInfo, ok, err := lookupRole(ctx, conn, newName)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, rotators.Permanent(fmt.Errorf("the new role %q does not exist", newName))
	}
	oldInfo, oldExists, err := lookupRole(ctx, conn, oldName)
	if err != nil {
		return 0, err
	}
	deadline := time.NewTimer(x.r.verifyWait)
	defer deadline.Stop()
	for {
		if oldExists {
			started, hidden, err := sessionsSince(ctx, conn, oldInfo.oid, doneAt)
			switch {
			case err != nil:
				return 0, err
			case hidden > 0:
				return 0, rotators.Permanent(fmt.Errorf("the admin role cannot see when sessions of %q started: grant it pg_read_all_stats, or set verify_connections: false", oldName))
			case started > 0:
				return 0, rotators.Permanent(fmt.Errorf("%d session(s) of the old role %q started after the rollout finished (%s): a consumer not in deployments still uses the old DSN", started, oldName, doneAt.Format(time.RFC3339)))
			}
		}
		n, err := sessionsInDB(ctx, conn, newInfo.oid, x.database, x.checkAppName)
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
		run.Progress(ctx, fmt.Sprintf("Waiting for a session as %s in pg_stat_activity (up to %s)", newName, x.r.verifyWait))
		poll := time.NewTimer(x.r.verifyPoll)
		select {
		case <-ctx.Done():
			poll.Stop()
			return 0, fmt.Errorf("waiting for a session as %q: %w", newName, ctx.Err())
		case <-deadline.C:
			poll.Stop()
			return 0, rotators.Permanent(fmt.Errorf("no session as the new role %q reached database %q within %s of the restart: the restarted pods do not use the new DSN", newName, x.database, x.r.verifyWait))
		case <-poll.C:
		}
	}
}

// humanDuration writes 1h for 1h0m0s and 30m for 30m0s.
func humanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// --- role names ---

// expandRolePattern fills role_pattern's placeholders.
func expandRolePattern(pattern, env, date, request string) string {
	return strings.NewReplacer(EnvPlaceholder, env, DatePlaceholder, date, RequestPlaceholder, request).Replace(pattern)
}

// requestToken is {request}: the request id in lowercase with every
// character but a-z, 0-9 and _ as _, so names need no quoting in psql.
func requestToken(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '_'
	}, id)
}

// roleSuffix is "" for the first candidate, "_<n>" after it.
func roleSuffix(n int) string {
	if n <= 1 {
		return ""
	}
	return "_" + strconv.Itoa(n)
}

// reservedRoleNames cannot be created (PostgreSQL refuses them).
var reservedRoleNames = []string{"public", "none", "current_user", "session_user", "current_role"}

// roleNameProblem says why name cannot be a new role's name, with reserve
// bytes kept free for a suffix, or "".
func roleNameProblem(name string, reserve int) string {
	if msg := identProblem(name); msg != "" {
		return msg
	}
	switch {
	case len(name)+reserve > maxIdentLen:
		return fmt.Sprintf("is too long: %d bytes, and PostgreSQL keeps %d (a _%d suffix may be added)", len(name), maxIdentLen, maxRoleSuffix)
	case strings.HasPrefix(name, "pg_"):
		return "starts with pg_, which PostgreSQL reserves"
	case slices.Contains(reservedRoleNames, name):
		return "is reserved by PostgreSQL"
	}
	return ""
}
