package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// The whole rotation against the real server, with plain names and with
// names and a password full of quotes, spaces, backslashes and non-ASCII
// letters: the application keeps working through the new role (sequence,
// search_path, both schemas), the new role has what the old one had, the old
// password works until retirement and not after, and exactly one role is
// made.
func TestFullRotation(t *testing.T) {
	for _, nasty := range []bool{false, true} {
		name := "plain"
		if nasty {
			name = "nasty names"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newPGFixture(t, fixtureOpts{nasty: nasty})
			run := f.newRun()
			firstID, before, err := f.app.work("before")
			if err != nil {
				t.Fatal(err)
			}

			f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify)
			newRole := run.Fact(factNewRole)
			wantName := expandRolePattern(f.n.pattern, "prod", f.now.Format("20060102"), "")
			if newRole != wantName {
				t.Errorf("new role = %q, want %q", newRole, wantName)
			}
			if got := run.Fact(factOldRole); got != f.n.old {
				t.Errorf("old role = %q, want %q", got, f.n.old)
			}
			if got := f.app.currentUser(); got != newRole {
				t.Fatalf("after the restart the application is %q, want %q", got, newRole)
			}
			id, count, err := f.app.work("after")
			if err != nil {
				t.Fatalf("the application does not work through the new role: %v", err)
			}
			if id <= firstID || count != before+1 {
				t.Errorf("after the rotation: id %d (before %d), count %d (before %d)", id, firstID, count, before)
			}
			f.assertInherited(newRole)

			// The old role is untouched until retirement.
			c, err := f.connectDSN(f.oldDSN)
			if err != nil {
				t.Fatalf("the old password stopped working before retirement: %v", err)
			}
			f.closeConn(c)

			f.mustRun(run, StepRetireOld)
			if f.roleExists(f.n.old) {
				t.Fatal("the old role still exists after retirement")
			}
			if _, err := f.connectDSN(f.oldDSN); err == nil {
				t.Fatal("the old password still works after retirement")
			}
			if _, _, err := f.app.work("after retirement"); err != nil {
				t.Fatalf("the application broke at retirement: %v", err)
			}
			db := f.adminIn(f.n.db)
			var tableOwner, dbOwner string
			if err := db.QueryRow(f.ctx, "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'items'", f.n.schema).Scan(&tableOwner); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(f.ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").Scan(&dbOwner); err != nil {
				t.Fatal(err)
			}
			if tableOwner != newRole || dbOwner != newRole {
				t.Errorf("after retirement items is owned by %q and the database by %q, want %q", tableOwner, dbOwner, newRole)
			}
			if roles := f.newRoles(); len(roles) != 1 || roles[0] != newRole {
				t.Errorf("roles made: %q, want exactly [%q]", roles, newRole)
			}
			if got := f.store.enabledNames(); len(got) != 2 || got[0] != run.Fact(factNewVersion) {
				t.Errorf("enabled versions %v; want the new one (%s) first and the old one", got, run.Fact(factNewVersion))
			}
			p := run.Prompts()
			if len(p) != 1 || p[0].ID != PromptRetireNow || p[0].Button != retireButton || p[0].Audience != rotators.AudienceParticipants {
				t.Errorf("prompts = %+v, want one %q button for the participants", p, PromptRetireNow)
			}
			if !strings.Contains(run.ProgressText(), "Dropped the old role") {
				t.Errorf("progress does not say the old role was dropped:\n%s", run.ProgressText())
			}
		})
	}
}

// assertInherited checks that the new role has what the old role had: its
// attributes, group membership, the membership of the migration role in
// it, its settings, and default privileges both ways.
func (f *pgFixture) assertInherited(newRole string) {
	t := f.t
	t.Helper()
	var (
		connLimit     int32
		inGroup       bool
		migMember     bool
		canReadLater  bool
		readerSees    bool
		publicExecFun bool
		searchPath    string
		stmtTimeout   string
	)
	q := func(sql string, args []any, dst ...any) {
		t.Helper()
		if err := f.admin.QueryRow(f.ctx, sql, args...).Scan(dst...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", []any{newRole}, &connLimit)
	q("SELECT pg_has_role($1, $2, 'MEMBER')", []any{newRole, f.n.group}, &inGroup)
	q("SELECT pg_has_role($1, $2, 'MEMBER')", []any{f.n.mig, newRole}, &migMember)
	if connLimit != 20 || !inGroup || !migMember {
		t.Errorf("connection limit %d (want 20), member of group %v, migration role member of it %v", connLimit, inGroup, migMember)
	}

	// Settings, as the application sees them.
	if err := f.app.conn.QueryRow(f.ctx, "SELECT current_setting('search_path'), current_setting('statement_timeout')").Scan(&searchPath, &stmtTimeout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(searchPath, "public") || stmtTimeout != "30s" {
		t.Errorf("search_path %q, statement_timeout %q: the old role's settings were not copied", searchPath, stmtTimeout)
	}

	// The migration role's tables reach the new role (default privileges
	// it gave the old role); the new role's tables reach the reader, and
	// its functions not PUBLIC (default privileges the old role set).
	s := ident(f.n.schema)
	f.exec(f.n.db, "SET ROLE "+ident(f.n.mig), "CREATE TABLE "+s+".later (x int)")
	if err := f.app.exec("INSERT INTO " + s + ".later VALUES (1)"); err != nil {
		t.Errorf("the new role cannot use a table the migration role made later: %v", err)
	}
	if err := f.app.exec("CREATE TABLE " + s + ".by_new (x int)"); err != nil {
		t.Fatalf("the new role cannot create a table in the schema: %v", err)
	}
	if err := f.app.exec("CREATE FUNCTION " + s + ".fn() RETURNS int LANGUAGE sql AS 'SELECT 1'"); err != nil {
		t.Fatalf("the new role cannot create a function: %v", err)
	}
	db := f.adminIn(f.n.db)
	later := ident(f.n.schema) + ".later"
	if err := db.QueryRow(f.ctx, "SELECT has_table_privilege($1, $2, 'SELECT')", newRole, later).Scan(&canReadLater); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(f.ctx, "SELECT has_table_privilege($1, $2, 'SELECT')", f.n.reader, s+".by_new").Scan(&readerSees); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(f.ctx, "SELECT has_function_privilege($1, $2, 'EXECUTE')", f.n.reader, s+".fn()").Scan(&publicExecFun); err != nil {
		t.Fatal(err)
	}
	if !canReadLater || !readerSees || publicExecFun {
		t.Errorf("default privileges: new role reads later %v (want true), reader reads by_new %v (want true), PUBLIC executes fn %v (want false)", canReadLater, readerSees, publicExecFun)
	}
}

// Retirement is refused while the old role is connected, and the old
// password still works meanwhile; it succeeds on the next press once that
// session is gone.
func TestRetireRefusedWhileOldRoleConnected(t *testing.T) {
	t.Parallel()
	f := newPGFixture(t, fixtureOpts{})
	run := f.newRun()
	f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify)

	held, err := f.connectDSN(f.oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	f.inUse(held)
	var presses atomic.Int32
	var between error
	run.Answer = func(ctx context.Context, p rotators.Prompt) (secret.Value, error) {
		switch presses.Add(1) {
		case 1:
			return secret.Value{}, nil
		case 2:
			// The first press was refused: the old role is untouched.
			c, err := f.connectDSN(f.oldDSN)
			if err != nil {
				between = err
			} else {
				f.closeConn(c)
			}
			f.closeConn(held)
			return secret.Value{}, nil
		}
		return blockUntilDone(ctx, p)
	}
	f.mustRun(run, StepRetireOld)

	if between != nil {
		t.Errorf("the old password stopped working after a refused retirement: %v", between)
	}
	if n := presses.Load(); n != 2 {
		t.Errorf("the button was pressed %d times, want 2 (refused, then done)", n)
	}
	if !strings.Contains(run.ProgressText(), "still has 1 session") {
		t.Errorf("the refusal is not reported:\n%s", run.ProgressText())
	}
	if f.roleExists(f.n.old) {
		t.Error("the old role still exists")
	}
}

// An idle session left as the old role (not in use) does not block
// retirement: it is terminated, as the runbook's retirement does.
func TestRetireTerminatesIdleSessions(t *testing.T) {
	t.Parallel()
	f := newPGFixture(t, fixtureOpts{})
	run := f.newRun()
	f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify)
	idle, err := f.connectDSN(f.oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(f.ctx)
	run.Answer = func(context.Context, rotators.Prompt) (secret.Value, error) { return secret.Value{}, nil }
	f.mustRun(run, StepRetireOld)
	if f.roleExists(f.n.old) {
		t.Fatal("the old role still exists")
	}
	if !strings.Contains(run.ProgressText(), "Terminated 1 idle session") {
		t.Errorf("the termination is not reported:\n%s", run.ProgressText())
	}
	if err := idle.Ping(f.ctx); err == nil {
		t.Error("the idle old-role session survived retirement")
	}
}

// Without a press, the old role is dropped once retire_due_at has come.
func TestRetireWhenDue(t *testing.T) {
	t.Parallel()
	f := newPGFixture(t, fixtureOpts{yaml: "retire_after: 30m\n"})
	run := f.newRun()
	f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify)
	run.Answer = blockUntilDone
	run.SetNow(f.now.Add(31 * time.Minute))
	f.mustRun(run, StepRetireOld)
	if want := f.now.Add(30 * time.Minute).UTC().Format(time.RFC3339); run.Fact(factRetireDueAt) != want {
		t.Errorf("retire_due_at = %q, want %q", run.Fact(factRetireDueAt), want)
	}
	if f.roleExists(f.n.old) {
		t.Error("the old role still exists")
	}
	// A repeat (a restart after the drop) is a no-op.
	f.mustRun(run.Restarted(), StepRetireOld)
}

// When the step ends while the old role is refused (or nobody pressed and
// the time has not come), the error says why and that rollback will not
// undo the rotation; the old role is left as it is.
func TestRetireGivesUp(t *testing.T) {
	t.Parallel()
	f := newPGFixture(t, fixtureOpts{})
	run := f.newRun()
	f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify)
	held, err := f.connectDSN(f.oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	f.inUse(held)
	defer f.closeConn(held)

	ctx, cancel := context.WithCancel(f.ctx)
	var presses atomic.Int32
	run.Answer = func(actx context.Context, p rotators.Prompt) (secret.Value, error) {
		if presses.Add(1) == 1 {
			return secret.Value{}, nil
		}
		cancel() // the step's time runs out while the role is refused
		return blockUntilDone(actx, p)
	}
	err = f.step(StepRetireOld).Run(ctx, run)
	if err == nil || !rotators.IsPermanent(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a permanent error wrapping the context's", err)
	}
	for _, want := range []string{"still has 1 session", "rollback will not undo", "DROP ROLE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !f.roleExists(f.n.old) {
		t.Error("the old role was dropped although it was refused")
	}
	var login bool
	if err := f.admin.QueryRow(f.ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", f.n.old).Scan(&login); err != nil || !login {
		t.Errorf("the refused old role lost LOGIN (%v, %v)", login, err)
	}

	// Nobody pressed and the time has not come.
	run2 := f.newRun()
	for k, v := range run.Facts() {
		run2.SetFact(k, v)
	}
	run2.Answer = blockUntilDone
	ctx2, cancel2 := context.WithTimeout(f.ctx, 50*time.Millisecond)
	defer cancel2()
	err = f.step(StepRetireOld).Run(ctx2, run2)
	if err == nil || !strings.Contains(err.Error(), "nobody pressed") || !strings.Contains(err.Error(), "rollback will not undo") {
		t.Errorf("err = %v, want the deadline explained", err)
	}
}

// Crash and resume after every step, and inside the steps that record an
// intent before acting: each rotation finishes with exactly one new role, a
// working application and the old role dropped. The rotations run one
// after the other on one database, so each rotates the role the one before
// made: role names alternate between the pattern's name and its _2.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	type crash struct {
		name string
		// after runs the forward steps before this index with one run.
		after int
		// crashAt, crashBefore: a Record that fails like a crash.
		crashAt     string
		crashBefore bool
	}
	var cases []crash
	for i := 1; i <= len(forward()); i++ {
		cases = append(cases, crash{name: "after " + forward()[i-1], after: i})
	}
	cases = append(cases,
		crash{name: "new_role recorded, role not made", after: 1, crashAt: factNewRole},
		crash{name: "version added, not recorded", after: stepIndex(StepStoreVersion) + 1, crashAt: factNewVersion, crashBefore: true},
		crash{name: "old role made NOLOGIN, not dropped", after: stepIndex(StepRetireOld) + 1, crashAt: factRetireStarted},
	)
	f := newPGFixture(t, fixtureOpts{})
	oldRole := f.n.old
	for i, c := range cases {
		spec := f.spec
		spec.RequestID = fmt.Sprintf("R-CRASH%02d", i)
		plan := f.rot.Plan(spec)
		// Each rotation's stamps are later than the one before (the same
		// restart stamp would be a no-op patch, as in Kubernetes).
		run := newFakeRun(spec, f.now.Add(time.Duration(i)*time.Minute))
		run.Answer = press
		crashAt(run, c.crashAt, c.crashBefore)
		var crashed error
		for j := 0; j < c.after; j++ {
			if err := plan.Steps[j].Run(f.ctx, run); err != nil {
				if !errors.Is(err, errCrash) {
					t.Fatalf("%s: step %s: %v", c.name, plan.Steps[j].Name, err)
				}
				crashed = err
				break
			}
		}
		if c.crashAt != "" && crashed == nil {
			t.Fatalf("%s: the crash at %s never happened", c.name, c.crashAt)
		}
		// The process restarts; the step in flight runs again.
		resumed := run.Restarted()
		if err := f.drive(plan, resumed, c.after-1); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}

		newRole := resumed.Fact(factNewRole)
		base := expandRolePattern(f.n.pattern, "prod", resumed.Now().UTC().Format("20060102"), "")
		if newRole != base && newRole != base+"_2" {
			t.Errorf("%s: new role %q, want %q or its _2", c.name, newRole, base)
		}
		if got := resumed.Fact(factOldRole); got != oldRole {
			t.Errorf("%s: rotated %q, want the role in use, %q", c.name, got, oldRole)
		}
		if roles := f.newRoles(); len(roles) != 1 || roles[0] != newRole {
			t.Errorf("%s: roles: %q, want exactly [%q]", c.name, roles, newRole)
		}
		if f.roleExists(oldRole) {
			t.Errorf("%s: the old role %q still exists", c.name, oldRole)
		}
		if got := f.app.currentUser(); got != newRole {
			t.Errorf("%s: the application is %q, want %q", c.name, got, newRole)
		}
		if _, _, err := f.app.work(c.name); err != nil {
			t.Errorf("%s: the application does not work: %v", c.name, err)
		}
		// The newest DSN holds the password that works.
		conn, err := f.connectDSN(f.store.latest())
		if err != nil {
			t.Fatalf("%s: the stored DSN does not work: %v", c.name, err)
		}
		f.closeConn(conn)
		oldRole = newRole
	}
}

// The verify step fails when a session of the old role starts after the
// rollout (a consumer was missed), and when no session of the new role
// appears in time.
func TestVerifyConnections(t *testing.T) {
	t.Run("old role connects after the restart", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		run := f.newRun()
		f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart)
		straggler, err := f.connectDSN(f.oldDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer f.closeConn(straggler)
		err = f.run(run, StepVerify)
		if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "started after the rollout finished") {
			t.Fatalf("err = %v, want a permanent failure naming the old role's new session", err)
		}
		if run.Fact(factVerifiedAt) != "" {
			t.Error("verified_at recorded although verification failed")
		}
	})
	t.Run("new role never connects", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		f.rot.verifyWait, f.rot.verifyPoll = 30*time.Millisecond, 5*time.Millisecond
		run := f.newRun()
		f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync)
		f.cluster.restartPods = func(secret.Value) error { f.app.close(); return nil } // pods that never connect
		f.mustRun(run, StepRestart)
		err := f.run(run, StepVerify)
		if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "no session as the new role") {
			t.Fatalf("err = %v, want a permanent failure", err)
		}
	})
	t.Run("off: only the rollout is checked", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{noVerifyConnections: true})
		run := f.newRun()
		f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart)
		straggler, err := f.connectDSN(f.oldDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer f.closeConn(straggler)
		f.mustRun(run, StepVerify)
		if run.Fact(factVerifiedAt) == "" {
			t.Error("verified_at not recorded")
		}
	})
}

// Rollback before verification re-adds the old DSN, restarts with it and
// drops the new role; after verification it undoes nothing.
func TestRollback(t *testing.T) {
	t.Run("after the restart", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		run := f.newRun()
		f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart)
		newRole := run.Fact(factNewRole)
		run.SetNow(f.now.Add(5 * time.Second)) // the rollback's stamps are later
		f.mustRun(run, StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepDropNewRole)

		if !f.store.latest().Equal(f.oldDSN) {
			t.Error("the newest version is not the old DSN")
		}
		if got := f.store.enabledNames(); len(got) != 2 || got[0] != run.Fact(factRestoredVersion) {
			t.Errorf("enabled versions %v; want the restored and the original (the new one disabled)", got)
		}
		if got := f.app.currentUser(); got != f.n.old {
			t.Errorf("the application is %q, want the old role %q", got, f.n.old)
		}
		if _, _, err := f.app.work("after rollback"); err != nil {
			t.Errorf("the application does not work after the rollback: %v", err)
		}
		if f.roleExists(newRole) {
			t.Error("the new role still exists")
		}
		if roles := f.newRoles(); len(roles) != 0 {
			t.Errorf("roles left: %q", roles)
		}
		// Repeats are no-ops.
		again := run.Restarted()
		for _, s := range []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepDropNewRole} {
			if err := f.run(again, s); err != nil && !errors.Is(err, rotators.ErrNothingToUndo) {
				t.Errorf("repeated %s: %v", s, err)
			}
		}
	})
	t.Run("after new_role only", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		run := f.newRun()
		f.mustRun(run, StepNewRole)
		for _, s := range []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart} {
			if err := f.run(run, s); !errors.Is(err, rotators.ErrNothingToUndo) {
				t.Errorf("%s: err = %v, want ErrNothingToUndo", s, err)
			}
		}
		f.mustRun(run, StepDropNewRole)
		if roles := f.newRoles(); len(roles) != 0 {
			t.Errorf("roles left: %q", roles)
		}
		if len(f.cluster.callList()) != 0 {
			t.Errorf("the cluster was touched: %v", f.cluster.callList())
		}
	})
	t.Run("refused while the new role is connected", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		run := f.newRun()
		f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart)
		run.SetNow(f.now.Add(5 * time.Second))
		f.mustRun(run, StepRestoreVersion, StepRollbackSync)
		// Not restarted yet: the application is still the new role.
		err := f.run(run, StepDropNewRole)
		var still errStillConnected
		if !errors.As(err, &still) || rotators.IsPermanent(err) {
			t.Fatalf("err = %v, want a retryable refusal", err)
		}
		f.mustRun(run, StepRollbackRestart, StepDropNewRole)
	})
	t.Run("not a role this request made", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		run := f.newRun()
		f.mustRun(run, StepNewRole)
		f.exec("", "COMMENT ON ROLE "+ident(run.Fact(factNewRole))+" IS 'someone else'")
		err := f.run(run, StepDropNewRole)
		if err == nil || !rotators.IsPermanent(err) || !f.roleExists(run.Fact(factNewRole)) {
			t.Fatalf("err = %v; a foreign role must be refused and left", err)
		}
	})
	t.Run("after verification", func(t *testing.T) {
		t.Parallel()
		f := newPGFixture(t, fixtureOpts{})
		run := f.newRun()
		f.mustRun(run, StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify)
		for _, s := range []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepDropNewRole} {
			err := f.run(run, s)
			if !errors.Is(err, rotators.ErrNothingToUndo) || !strings.Contains(err.Error(), "verification passed") {
				t.Errorf("%s: err = %v, want ErrNothingToUndo saying why", s, err)
			}
		}
		if !f.roleExists(run.Fact(factNewRole)) || f.app.currentUser() != run.Fact(factNewRole) {
			t.Error("a rollback after verification changed something")
		}
	})
}
