package database

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// postgresURLEnv names the real PostgreSQL the tests use (test/services.sh).
const postgresURLEnv = "ROTARY_TEST_POSTGRES_URL"

// testTimeout bounds one test's database work.
const testTimeout = time.Minute

const (
	testReqID   = "R-2345ABCD"
	adminCredKV = "ROTARY_DB_ADMIN_DSN_prod"
)

// postgresURL returns the test server's admin URL or skips the test.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(postgresURLEnv)
	if u == "" {
		t.Skipf("%s is not set: start the test servers with `eval \"$(bash test/services.sh start)\"` to run the PostgreSQL tests", postgresURLEnv)
	}
	return u
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

var fixtureCounter atomic.Uint32

// uniqueSuffix names one test's objects on the shared server: other
// engineers' tests (and another run of this one) use the same server.
func uniqueSuffix(t *testing.T) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d/%d/%d", t.Name(), os.Getpid(), fixtureCounter.Add(1), time.Now().UnixNano())
	return fmt.Sprintf("%08x", h.Sum32())
}

// naming is the set of names one fixture uses; nasty names hold quotes,
// spaces, backslashes and non-ASCII letters.
type naming struct {
	db, old, schema, group, reader, mig, pattern string
	oldPassword                                  string
}

func names(sfx string, nasty bool) naming {
	p := "rdbt_" + sfx
	if !nasty {
		return naming{
			db: p, old: p + "_old", schema: "app", group: p + "_grp", reader: p + "_reader", mig: p + "_mig",
			pattern: p + "_new_{date}", oldPassword: "old-password-" + sfx,
		}
	}
	return naming{
		db:          p + ` d'b "x"`,
		old:         p + ` o'ld "r\ole" é`,
		schema:      `app "s" é'`,
		group:       p + ` g'rp`,
		reader:      p + ` re"ader`,
		mig:         p + ` m\ig`,
		pattern:     p + ` n'ew "r\ole" é {date}`,
		oldPassword: `pa'ss "w\ord" é ü @:/?% ` + sfx,
	}
}

// pgFixture is one target wired to a real database (made for the test and
// dropped after it) and fake Secret Manager and Kubernetes, where the
// "application" is a real session that reconnects with the synced DSN at
// every restart.
type pgFixture struct {
	t        *testing.T
	ctx      context.Context
	adminURL string
	base     *pgx.ConnConfig
	admin    *pgx.Conn // to database postgres
	n        naming
	prefix   string
	oldDSN   secret.Value
	store    *fakeStore
	cluster  *fakeCluster
	app      *testApp
	rot      *Rotator
	spec     rotators.Spec
	plan     rotators.Plan
	now      time.Time
}

type fixtureOpts struct {
	nasty bool
	// yaml is appended to the target's settings.
	yaml string
	// noVerifyConnections sets verify_connections: false.
	noVerifyConnections bool
}

func newPGFixture(t *testing.T, o fixtureOpts) *pgFixture {
	t.Helper()
	ctx := testCtx(t)
	adminURL := postgresURL(t)
	sfx := uniqueSuffix(t)
	f := &pgFixture{t: t, ctx: ctx, adminURL: adminURL, n: names(sfx, o.nasty), prefix: "rdbt_" + sfx}
	var err error
	if f.base, err = pgx.ParseConfig(adminURL); err != nil {
		t.Fatalf("parsing %s: %v", postgresURLEnv, err)
	}
	if f.admin, err = pgx.ConnectConfig(ctx, f.base); err != nil {
		t.Fatalf("connecting to the test server: %v", err)
	}
	t.Cleanup(f.cleanup)
	f.setupDatabase()

	f.oldDSN = f.dsn(f.n.old, f.n.oldPassword)
	f.spec = rotators.Spec{RequestID: testReqID, Target: "auth-db", Env: "prod"}
	f.store = newFakeStore(gsm.SecretName("aivo-platform", "aivo-prod-auth-database-url"), f.oldDSN)
	f.cluster = newFakeCluster(f.store)
	f.app = &testApp{f: f}
	f.cluster.restartPods = f.app.restart
	if err := f.app.restart(f.oldDSN); err != nil {
		t.Fatalf("the application cannot connect as the old role: %v", err)
	}
	t.Cleanup(f.app.close)

	src := fmt.Sprintf(`
namespace: aivo-{env}
secret_manager:
  project: aivo-platform
  secret: aivo-{env}-auth-database-url
external_secret: database-credentials
deployments: [auth-svc, auth-worker]
role_pattern: %s
dsn_template: %s
database: %s
schemas: [public, %s]
check_table: %s
verify_connections: %t
admin_dsn_env: ROTARY_DB_ADMIN_DSN_{env}
`, yamlQuote(f.n.pattern), yamlQuote(f.template()), yamlQuote(f.n.db), yamlQuote(f.n.schema), yamlQuote(f.n.schema+".items"), !o.noVerifyConnections) + o.yaml
	var cfg Config
	if err := yamlDecode(src)(&cfg); err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	clients := Clients{
		Store: f.store, Cluster: f.cluster,
		Creds: fakeCreds{adminCredKV: adminURL},
		Rand:  rand.NewChaCha8(seed(t)),
	}
	rot, problems := New(f.spec.Target, cfg, clients)
	if len(problems) > 0 {
		t.Fatalf("config problems: %v\n%s", problems, src)
	}
	f.rot = rot
	f.plan = rot.Plan(f.spec)
	f.now = time.Now().UTC()
	return f
}

// seed makes each test's randomness fixed (and each test's different).
func seed(t *testing.T) [32]byte {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	var s [32]byte
	copy(s[:], fmt.Sprintf("%016x", h.Sum64()))
	return s
}

// yamlQuote writes s as a double-quoted YAML scalar.
func yamlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// template is the target's dsn_template, pointing at the test server.
func (f *pgFixture) template() string {
	u, err := url.Parse(f.adminURL)
	if err != nil {
		f.t.Fatal(err)
	}
	return "postgresql://{user}:{password}@" + u.Host + "/" + url.PathEscape(f.n.db) + "?sslmode=disable"
}

// dsn is the application's DSN for user and password.
func (f *pgFixture) dsn(user, password string) secret.Value {
	v, err := buildDSN(f.template(), user, secret.FromString(password))
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// adminIn opens an admin session to database db, closed after the test.
func (f *pgFixture) adminIn(db string) *pgx.Conn {
	f.t.Helper()
	cfg := f.base.Copy()
	cfg.Database = db
	c, err := pgx.ConnectConfig(f.ctx, cfg)
	if err != nil {
		f.t.Fatalf("connecting to %q: %v", db, err)
	}
	f.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// exec runs statements as the admin in database db ("" for postgres), in
// one session (SET ROLE carries over).
func (f *pgFixture) exec(db string, stmts ...string) {
	f.t.Helper()
	conn := f.admin
	if db != "" {
		conn = f.adminIn(db)
		defer conn.Close(context.Background())
	}
	for _, s := range stmts {
		if _, err := conn.Exec(f.ctx, s); err != nil {
			f.t.Fatalf("%s: %v", s, err)
		}
	}
}

// lit quotes s as a literal (test side, independent of the code under test).
func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// setupDatabase makes the application's world, owned by the old role: a
// database, a schema with a table and its sequence, a table in public, a
// group membership, role settings, and default privileges both ways.
func (f *pgFixture) setupDatabase() {
	n := f.n
	id := ident
	f.exec("",
		"CREATE ROLE "+id(n.group)+" NOLOGIN",
		"CREATE ROLE "+id(n.reader)+" NOLOGIN",
		"CREATE ROLE "+id(n.mig)+" NOLOGIN",
		"CREATE ROLE "+id(n.old)+" LOGIN CONNECTION LIMIT 20 PASSWORD "+lit(n.oldPassword),
		"GRANT "+id(n.group)+" TO "+id(n.old),
		"GRANT "+id(n.old)+" TO "+id(n.mig),
		"CREATE DATABASE "+id(n.db)+" OWNER "+id(n.old),
		"ALTER ROLE "+id(n.old)+" SET search_path TO "+lit(n.schema)+", 'public'",
		"ALTER ROLE "+id(n.old)+" IN DATABASE "+id(n.db)+" SET statement_timeout TO '30s'",
	)
	s := id(n.schema)
	f.exec(n.db,
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT CREATE ON SCHEMA public TO "+id(n.old),
		"CREATE SCHEMA "+s+" AUTHORIZATION "+id(n.old),
		"GRANT USAGE, CREATE ON SCHEMA "+s+" TO "+id(n.mig),
		"SET ROLE "+id(n.old),
		"CREATE TABLE "+s+".items (id bigserial PRIMARY KEY, note text NOT NULL)",
		"CREATE TABLE public.notes (id serial PRIMARY KEY, body text)",
		"INSERT INTO "+s+".items (note) VALUES ('made by the old role')",
		"ALTER DEFAULT PRIVILEGES IN SCHEMA "+s+" GRANT SELECT ON TABLES TO "+id(n.reader),
		"ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
		"RESET ROLE",
		"ALTER DEFAULT PRIVILEGES FOR ROLE "+id(n.mig)+" IN SCHEMA "+s+" GRANT SELECT, INSERT ON TABLES TO "+id(n.old),
	)
}

// cleanup drops the database and every role of this fixture.
func (f *pgFixture) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := f.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(f.n.db)+" WITH (FORCE)"); err != nil {
		f.t.Errorf("cleanup: dropping database: %v", err)
	}
	rows, err := f.admin.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", f.prefix)
	if err == nil {
		var roles []string
		roles, err = pgx.CollectRows(rows, pgx.RowTo[string])
		for _, r := range roles {
			if _, err := f.admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident(r)); err != nil {
				f.t.Errorf("cleanup: dropping role %q: %v", r, err)
			}
		}
	}
	if err != nil {
		f.t.Errorf("cleanup: listing roles: %v", err)
	}
	_ = f.admin.Close(ctx)
}

func (f *pgFixture) newRun() *fakeRun {
	r := newFakeRun(f.spec, f.now)
	r.Answer = press
	return r
}

// step returns the plan's forward or rollback step called name.
func (f *pgFixture) step(name string) rotators.Step {
	f.t.Helper()
	for _, s := range append(append([]rotators.Step{}, f.plan.Steps...), f.plan.Rollback...) {
		if s.Name == name {
			return s
		}
	}
	f.t.Fatalf("no step %q", name)
	return rotators.Step{}
}

func (f *pgFixture) run(run *fakeRun, name string) error {
	return f.step(name).Run(f.ctx, run)
}

// mustRun runs the named steps in order and fails on an error.
func (f *pgFixture) mustRun(run *fakeRun, names ...string) {
	f.t.Helper()
	for _, n := range names {
		if err := f.run(run, n); err != nil {
			f.t.Fatalf("step %s: %v", n, err)
		}
	}
}

// drive runs the forward steps from index from to the end as the executor
// does: a SecretLostError goes back to the step that makes the secret.
func (f *pgFixture) drive(plan rotators.Plan, run *fakeRun, from int) error {
	lost := 0
	for i := from; i < len(plan.Steps); i++ {
		err := plan.Steps[i].Run(f.ctx, run)
		var sl *rotators.SecretLostError
		if errors.As(err, &sl) && lost < 3 {
			lost++
			for j, s := range plan.Steps {
				if s.Name == sl.From {
					i = j - 1
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("step %s: %w", plan.Steps[i].Name, err)
		}
	}
	return nil
}

func stepIndex(name string) int {
	for i, n := range forward() {
		if n == name {
			return i
		}
	}
	return -1
}

func forward() []string {
	return []string{StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify, StepRetireOld}
}

// roles lists the fixture's roles whose name starts with the new-role
// pattern's fixed part.
func (f *pgFixture) newRoles() []string {
	f.t.Helper()
	base, _, _ := strings.Cut(f.n.pattern, "{")
	rows, err := f.admin.Query(f.ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1", base)
	if err != nil {
		f.t.Fatal(err)
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return roles
}

func (f *pgFixture) roleExists(name string) bool {
	f.t.Helper()
	var ok bool
	if err := f.admin.QueryRow(f.ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&ok); err != nil {
		f.t.Fatal(err)
	}
	return ok
}

// connectDSN opens a session with a DSN as the application would.
func (f *pgFixture) connectDSN(dsn secret.Value) (*pgx.Conn, error) {
	return pgx.Connect(f.ctx, string(dsn.Reveal()))
}

// inUse makes a held session count as in use (an open transaction), which
// retirement refuses; a plain idle session is a leftover it terminates.
func (f *pgFixture) inUse(c *pgx.Conn) {
	f.t.Helper()
	if _, err := c.Exec(f.ctx, "BEGIN"); err != nil {
		f.t.Fatal(err)
	}
}

// closeConn ends a test-held session and returns once the server has let
// it go: it sends Terminate itself and reads to EOF, and the server closes
// the socket only when the backend exits, after it has left
// pg_stat_activity. So the test never sleeps, and the next look at
// pg_stat_activity cannot see the session.
func (f *pgFixture) closeConn(c *pgx.Conn) {
	f.t.Helper()
	hc, err := c.PgConn().Hijack()
	if err != nil {
		f.t.Fatalf("taking over a session to close it: %v", err)
	}
	defer hc.Conn.Close()
	if _, err := hc.Conn.Write([]byte{'X', 0, 0, 0, 4}); err != nil {
		f.t.Fatalf("sending Terminate: %v", err)
	}
	if err := hc.Conn.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		f.t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, hc.Conn); err != nil {
		f.t.Fatalf("waiting for the server to close the session: %v", err)
	}
}

// testApp is the application: one session made with the DSN the pods got.
type testApp struct {
	f    *pgFixture
	mu   sync.Mutex
	conn *pgx.Conn
	user string
}

// restart is a rolling restart: the old session goes, a new one is made
// with dsn; an error means the pods never get ready.
func (a *testApp) restart(dsn secret.Value) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		a.f.closeConn(a.conn)
		a.conn = nil
	}
	conn, err := a.f.connectDSN(dsn)
	if err != nil {
		return err
	}
	a.conn = conn
	a.user = conn.Config().User
	return nil
}

func (a *testApp) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		_ = a.conn.Close(context.Background())
		a.conn = nil
	}
}

// work is what the application does: insert through the sequence into the
// table found through its role's search_path, and read back.
func (a *testApp) work(note string) (id int64, count int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		return 0, 0, errors.New("the application is not connected")
	}
	ctx := a.f.ctx
	if err := a.conn.QueryRow(ctx, "INSERT INTO items (note) VALUES ($1) RETURNING id", note).Scan(&id); err != nil {
		return 0, 0, fmt.Errorf("insert as %q: %w", a.user, err)
	}
	if _, err := a.conn.Exec(ctx, "INSERT INTO public.notes (body) VALUES ($1)", note); err != nil {
		return 0, 0, fmt.Errorf("insert into notes as %q: %w", a.user, err)
	}
	if err := a.conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&count); err != nil {
		return 0, 0, fmt.Errorf("select as %q: %w", a.user, err)
	}
	return id, count, nil
}

func (a *testApp) currentUser() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.user
}

// exec runs a statement in the application's session.
func (a *testApp) exec(sql string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.conn.Exec(a.f.ctx, sql)
	return err
}

// newPasswordFromStore returns the password in the newest DSN (what the
// rotation made), for assertions and leak scans.
func dsnPassword(t *testing.T, dsn secret.Value) string {
	t.Helper()
	u, err := url.Parse(string(dsn.Reveal()))
	if err != nil {
		t.Fatal("a stored DSN is not a URL")
	}
	p, _ := u.User.Password()
	return p
}
