package database

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// adminSession connects to the test server as its superuser, and drops the
// roles starting with the returned prefix after the test.
func adminSession(t *testing.T) (*pgx.Conn, *pgx.ConnConfig, string) {
	t.Helper()
	ctx := testCtx(t)
	cfg, err := pgx.ParseConfig(postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "rdbt_" + uniqueSuffix(t)
	t.Cleanup(func() {
		ctx := context.Background()
		rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", prefix)
		if err == nil {
			roles, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, r := range roles {
				if _, err := conn.Exec(ctx, "DROP ROLE "+ident(r)); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
		_ = conn.Close(ctx)
	})
	return conn, cfg, prefix
}

// Identifiers and literals with quotes, backslashes, spaces and non-ASCII
// letters survive the round trip through the server unchanged.
func TestQuotingRoundTrip(t *testing.T) {
	t.Parallel()
	conn, _, prefix := adminSession(t)
	ctx := testCtx(t)
	values := []string{
		`plain`, `it's`, `"double"`, `back\slash`, `\'`, `'; DROP ROLE postgres; --`, `ü é 日本`, ` spaced `, `$$dollar$$`, `E'x'`,
	}
	lits, err := quoteLiterals(ctx, conn, values...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		var got string
		if err := conn.QueryRow(ctx, "SELECT "+lits[i]).Scan(&got); err != nil || got != v {
			t.Errorf("literal %s of %q came back as %q (%v)", lits[i], v, got, err)
		}
		name := prefix + " " + v
		if _, err := conn.Exec(ctx, "CREATE ROLE "+ident(name)+" NOLOGIN"); err != nil {
			t.Errorf("CREATE ROLE %s: %v", ident(name), err)
			continue
		}
		if _, err := conn.Exec(ctx, "COMMENT ON ROLE "+ident(name)+" IS "+lits[i]); err != nil {
			t.Errorf("COMMENT ON ROLE: %v", err)
		}
		info, ok, err := lookupRole(ctx, conn, name)
		if err != nil || !ok || info.comment != v {
			t.Errorf("role %q: found %v, comment %q, %v", name, ok, info.comment, err)
		}
	}
	if _, ok, _ := lookupRole(ctx, conn, "postgres"); !ok {
		t.Error("a literal dropped a role")
	}
}

// The verifier rotary sends is stored as is, and the password it was made
// from logs in (through SCRAM, as pgx and libpq do) while another does not.
func TestSCRAMVerifierLogsIn(t *testing.T) {
	t.Parallel()
	conn, cfg, prefix := adminSession(t)
	ctx := testCtx(t)
	r := rand.NewChaCha8(seed(t))
	for _, pw := range []string{`it's a "quoted" \back slashed pass`, "Zz0-_generated_like_rotary_makes_them_40", "x"} {
		name := prefix + " login " + pw[:1]
		v, err := scramVerifier(secret.FromString(pw), r)
		if err != nil {
			t.Fatal(err)
		}
		lits, err := quoteLiterals(ctx, conn, v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE ROLE "+ident(name)+" LOGIN PASSWORD "+lits[0]); err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", name).Scan(&stored); err != nil || stored != v {
			t.Errorf("stored %q, sent %q (%v)", stored, v, err)
		}
		for _, try := range []struct {
			pw string
			ok bool
		}{{pw, true}, {pw + "x", false}} {
			c, err := connect(ctx, cfg, "postgres", name, secret.FromString(try.pw), "rotary-test", false)
			if (err == nil) != try.ok {
				t.Errorf("login of %q with the right password %v: %v", name, try.ok, err)
			}
			if err == nil {
				_ = c.Close(ctx)
			} else if strings.Contains(err.Error(), try.pw) {
				t.Errorf("the connect error holds the password: %v", err)
			}
		}
	}
}

// new_role refuses what it must not take over, and picks a free name.
func TestNewRoleChecks(t *testing.T) {
	t.Parallel()
	f := newPGFixture(t, fixtureOpts{})
	runFor := func(id string) *fakeRun {
		spec := f.spec
		spec.RequestID = id
		f.plan = f.rot.Plan(spec)
		return newFakeRun(spec, f.now)
	}
	addDSN := func(user, pw string) {
		f.store.mu.Lock()
		f.store.add(f.dsn(user, pw))
		f.store.mu.Unlock()
	}
	permanent := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want a permanent error saying %q", err, want)
		}
		if roles := f.newRoles(); len(roles) != 0 {
			t.Errorf("roles were made: %q", roles)
		}
	}

	t.Run("the admin role is in the DSN", func(t *testing.T) {
		addDSN(f.base.User, "whatever")
		permanent(t, f.run(runFor("R-ADMIN"), StepNewRole), "rotary's own admin role")
	})
	t.Run("a superuser is in the DSN", func(t *testing.T) {
		f.exec("", "CREATE ROLE "+ident(f.prefix+"_super")+" SUPERUSER LOGIN")
		addDSN(f.prefix+"_super", "whatever")
		permanent(t, f.run(runFor("R-SUPER"), StepNewRole), "is a superuser")
	})
	t.Run("the DSN's role does not exist", func(t *testing.T) {
		addDSN(f.prefix+"_ghost", "whatever")
		permanent(t, f.run(runFor("R-GHOST"), StepNewRole), "does not exist")
	})
	t.Run("the DSN names no user", func(t *testing.T) {
		f.store.mu.Lock()
		f.store.add(secret.FromString("postgresql://db.internal/aivo"))
		f.store.mu.Unlock()
		permanent(t, f.run(runFor("R-NOUSER"), StepNewRole), "names no user")
	})
	t.Run("no version", func(t *testing.T) {
		empty := newFakeStore(f.store.secretName)
		r := *f.rot
		r.clients.Store = empty
		x := r.expand(f.spec)
		permanent(t, x.newRole(f.ctx, runFor("R-EMPTY")), "has no enabled version")
	})

	// From here on the DSN is the application's again.
	addDSN(f.n.old, f.n.oldPassword)

	t.Run("a missing schema leaves no role behind", func(t *testing.T) {
		r := *f.rot
		r.s.Schemas = []string{"public", "no such schema"}
		x := r.expand(f.spec)
		permanent(t, x.newRole(f.ctx, runFor("R-SCHEMA")), `no schema "no such schema"`)
	})
	t.Run("a name taken by another role gets a suffix", func(t *testing.T) {
		base := expandRolePattern(f.n.pattern, "prod", f.now.Format("20060102"), "")
		f.exec("", "CREATE ROLE "+ident(base)+" NOLOGIN")
		run := runFor("R-TAKEN")
		f.mustRun(run, StepNewRole)
		if got := run.Fact(factNewRole); got != base+"_2" {
			t.Errorf("new role %q, want %q", got, base+"_2")
		}
		var comment string
		if err := f.admin.QueryRow(f.ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", base).Scan(&comment); err == nil && comment != "" {
			t.Errorf("the other role was changed: comment %q", comment)
		}
		// A repeat after a restart resets the same role's password.
		again := run.Restarted()
		f.mustRun(again, StepNewRole)
		if again.Fact(factNewRole) != base+"_2" || !strings.Contains(again.ProgressText(), "Set a new password for role "+base+"_2") {
			t.Errorf("the repeat did not reset the same role:\n%s", again.ProgressText())
		}
		// check_table that cannot be read fails check_role, naming it.
		f.exec(f.n.db, "REVOKE ALL ON "+ident(f.n.schema)+".items FROM "+ident(base+"_2"))
		err := f.run(again, StepCheckRole)
		if err == nil || !strings.Contains(err.Error(), "cannot read") || !strings.Contains(err.Error(), "items") {
			t.Errorf("err = %v, want check_table's failure", err)
		}
		// A role under the recorded name that this request did not make is
		// never altered.
		f.exec("", "COMMENT ON ROLE "+ident(base+"_2")+" IS 'someone else'")
		err = f.run(again.Restarted(), StepNewRole)
		if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "was not made by this request") {
			t.Errorf("err = %v, want a refusal", err)
		}
	})
}

// Missing collaborators fail clearly and permanently, before anything is done.
func TestMissingClients(t *testing.T) {
	r, problems := build(t, validYAML)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	spec := rotators.Spec{RequestID: "R-1", Target: "auth-db", Env: "prod"}
	store := newFakeStore(gsm.SecretName("aivo-platform", "aivo-prod-auth-database-url"), secret.FromString("postgresql://app:pw@db/aivo_auth"))
	tests := []struct {
		name    string
		clients Clients
		step    string
		want    string
	}{
		{"no randomness", Clients{Store: store, Creds: fakeCreds{}}, StepNewRole, "no source of randomness"},
		{"no store", Clients{Rand: rand.NewChaCha8([32]byte{}), Creds: fakeCreds{}}, StepNewRole, "no Secret Manager client"},
		{"no creds", Clients{Store: store, Rand: rand.NewChaCha8([32]byte{})}, StepNewRole, "no credential source"},
		{"unknown credential", Clients{Store: store, Rand: rand.NewChaCha8([32]byte{}), Creds: fakeCreds{}}, StepNewRole, "credential ROTARY_DB_ADMIN_DSN"},
		{"unparsable admin DSN", Clients{Store: store, Rand: rand.NewChaCha8([32]byte{}), Creds: fakeCreds{"ROTARY_DB_ADMIN_DSN": "postgres://u:hunter2@h:notaport/db"}}, StepNewRole, "its text is not shown"},
		{"no cluster", Clients{}, StepSync, "no Kubernetes client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot := *r
			rot.clients = tt.clients
			run := newFakeRun(spec, testNowFixed)
			run.SetFact(factNewVersion, "v")
			if tt.step == StepNewRole {
				run.DeleteFact(factNewVersion)
			}
			var step rotators.Step
			for _, s := range rot.Plan(spec).Steps {
				if s.Name == tt.step {
					step = s
				}
			}
			err := step.Run(context.Background(), run)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a permanent error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes the admin DSN: %v", err)
			}
			if len(store.all()) != 1 {
				t.Error("something was stored")
			}
		})
	}
}

// Steps that need what an earlier step made refuse to guess.
func TestStepsNeedEarlierFacts(t *testing.T) {
	r, _ := build(t, validYAML)
	spec := rotators.Spec{RequestID: "R-1", Target: "auth-db", Env: "prod"}
	for _, name := range []string{StepCheckRole, StepStoreVersion, StepSync, StepRetireOld} {
		var step rotators.Step
		for _, s := range r.Plan(spec).Steps {
			if s.Name == name {
				step = s
			}
		}
		err := step.Run(context.Background(), newFakeRun(spec, testNowFixed))
		if err == nil || !rotators.IsPermanent(err) {
			t.Errorf("%s without earlier facts: err = %v, want permanent", name, err)
		}
	}
	// A lost password sends the run back to new_role.
	run := newFakeRun(spec, testNowFixed)
	run.SetFact(factNewRole, "auth_x")
	run.SetFact(factPrevVersion, "v1")
	for _, name := range []string{StepCheckRole, StepStoreVersion} {
		var step rotators.Step
		for _, s := range r.Plan(spec).Steps {
			if s.Name == name {
				step = s
			}
		}
		var lost *rotators.SecretLostError
		if err := step.Run(context.Background(), run); !errors.As(err, &lost) || lost.From != StepNewRole {
			t.Errorf("%s without the password: err = %v, want SecretLostError from %s", name, err, StepNewRole)
		}
	}
}
