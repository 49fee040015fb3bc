package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// envRedisServer names the redis-server binary the tests start privately:
// they change requirepass and rewrite the config file, which must never
// happen to the shared server.
const envRedisServer = "ROTARY_TEST_REDIS_SERVER"

const (
	// redisStartTimeout bounds the wait for "Ready to accept connections".
	redisStartTimeout = 10 * time.Second
	// redisStartAttempts: a free port picked by the test can be taken by
	// another process before redis-server binds it; try another one.
	redisStartAttempts = 5
	// testTimeout bounds each test's Redis and step calls.
	testTimeout = 30 * time.Second
	// redisReadyLine is what redis-server logs once it accepts connections.
	redisReadyLine = "Ready to accept connections"
)

// testRedis is a private redis-server with its config file (and aclfile)
// in a temporary directory.
type testRedis struct {
	addr     string
	confPath string
	aclPath  string // "" without an aclfile
}

// serverLog collects redis-server's output and signals readiness.
type serverLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func (l *serverLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if strings.Contains(l.buf.String(), redisReadyLine) {
		l.once.Do(func() { close(l.ready) })
	}
	return len(p), nil
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startRedis starts redis-server with conf (lines added to a base config)
// and, when acl is not nil, an aclfile holding acl. It is killed when the
// test ends. It skips the test when no redis-server is configured.
func startRedis(t *testing.T, conf, acl []string) *testRedis {
	t.Helper()
	bin := os.Getenv(envRedisServer)
	if bin == "" {
		t.Skipf("%s is not set: run `eval \"$(bash test/services.sh start)\"` to test against a real Redis", envRedisServer)
	}
	dir := t.TempDir()
	srv := &testRedis{confPath: filepath.Join(dir, "redis.conf")}
	if acl != nil {
		srv.aclPath = filepath.Join(dir, "users.acl")
		if err := os.WriteFile(srv.aclPath, []byte(strings.Join(acl, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for range redisStartAttempts {
		port := freePort(t)
		lines := []string{
			"bind 127.0.0.1",
			fmt.Sprintf("port %d", port),
			fmt.Sprintf("dir %q", dir),
			`save ""`,
			"appendonly no",
			"daemonize no",
			`logfile ""`,
		}
		if srv.aclPath != "" {
			lines = append(lines, fmt.Sprintf("aclfile %q", srv.aclPath))
		}
		lines = append(lines, conf...)
		if err := os.WriteFile(srv.confPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		log := &serverLog{ready: make(chan struct{})}
		cmd := exec.Command(bin, srv.confPath)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-log.ready:
			t.Cleanup(func() {
				_ = cmd.Process.Kill() // it may have exited already
				<-exited
			})
			srv.addr = fmt.Sprintf("127.0.0.1:%d", port)
			return srv
		case err := <-exited:
			if strings.Contains(log.String(), "Address already in use") {
				continue
			}
			t.Fatalf("redis-server exited (%v):\n%s", err, log.String())
		case <-time.After(redisStartTimeout):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("redis-server not ready after %s:\n%s", redisStartTimeout, log.String())
		}
	}
	t.Fatalf("redis-server found no free port in %d attempts", redisStartAttempts)
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// files returns the config file and the aclfile (if any), concatenated.
func (s *testRedis) files(t *testing.T) string {
	t.Helper()
	out := ""
	for _, p := range []string{s.confPath, s.aclPath} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out += string(b)
	}
	return out
}

func (s *testRedis) client(user, password string) *goredis.Client {
	if user == redisDefaultUser {
		user = ""
	}
	return goredis.NewClient(&goredis.Options{
		Addr: s.addr, Username: user, Password: password, Protocol: respVersion,
		DisableIdentity: true, MaxRetries: -1, PoolSize: 1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// logsIn reports whether user logs in with password on a fresh connection.
func (s *testRedis) logsIn(t *testing.T, user, password string) bool {
	t.Helper()
	c := s.client(user, password)
	defer c.Close()
	err := c.Ping(testCtx(t)).Err()
	switch {
	case err == nil:
		return true
	case goredis.IsAuthError(err):
		return false
	}
	t.Fatalf("logging in as %s: %v", user, err)
	return false
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// appClient is one long-lived connection of a consumer that is not
// restarted: it must keep working (same connection, never re-dialled).
type appClient struct {
	t     *testing.T
	c     *goredis.Client
	dials atomic.Int32
	id    int64
}

func (s *testRedis) appClient(t *testing.T, user, password string) *appClient {
	t.Helper()
	if user == redisDefaultUser {
		user = ""
	}
	a := &appClient{t: t}
	dialer := &net.Dialer{}
	a.c = goredis.NewClient(&goredis.Options{
		Addr: s.addr, Username: user, Password: password, Protocol: respVersion,
		DisableIdentity: true, MaxRetries: -1, PoolSize: 1, ConnMaxIdleTime: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			a.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { _ = a.c.Close() })
	id, err := a.c.ClientID(testCtx(t)).Result()
	if err != nil {
		t.Fatalf("app client: %v", err)
	}
	a.id = id
	return a
}

// check fails unless the app's connection still works and is the same one.
func (a *appClient) check(when string) {
	a.t.Helper()
	ctx := testCtx(a.t)
	if err := a.c.Set(ctx, "rotary-test-key", when, 0).Err(); err != nil {
		a.t.Errorf("%s: the app's open connection fails: %v", when, err)
		return
	}
	id, err := a.c.ClientID(ctx).Result()
	if err != nil || id != a.id || a.dials.Load() != 1 {
		a.t.Errorf("%s: the app's connection was replaced (id %d→%d, %d dials, err %v)", when, a.id, id, a.dials.Load(), err)
	}
}

// Test passwords: distinct, greppable, with characters that need care.
const (
	testOld      = "old-App-Pa55word-7f3a9c"
	testAdmin    = "admin-Secr3t-5e1d88"
	testNS       = "aivo-test"
	testSecret   = "redis-credentials"
	testKey      = "REDIS_PASSWORD"
	testReqID    = "R0042"
	testAppUser  = "app"
	testCredName = "REDIS_ADMIN_test"
)

// setup describes one fixture: the mode and how Redis is configured.
type setup struct {
	mode      string
	persist   string // acl mode: "", acl_save or config_rewrite
	aclfile   bool   // users in an aclfile rather than redis.conf
	adminUser string // "" = default
	// secretValue is the Secret's password ("" = testOld).
	secretValue string
	// appUserLine replaces the app user's ACL line (acl mode).
	appUserLine string
	// conf, acl: more lines; noRequirepass leaves the default user nopass.
	conf, acl     []string
	noRequirepass bool
	// yaml: more settings; address overrides the server's.
	yaml    []string
	address string
	creds   fakeCreds
}

// fixture is one target wired to a private Redis and a fake cluster.
type fixture struct {
	t       *testing.T
	su      setup
	srv     *testRedis
	cluster *fakeCluster
	rand    *recordingReader
	rot     *Rotator
	spec    rotators.Spec
	plan    rotators.Plan
}

func newFixture(t *testing.T, su setup) *fixture {
	t.Helper()
	if su.secretValue == "" {
		su.secretValue = testOld
	}
	if su.creds == nil {
		su.creds = fakeCreds{testCredName: testAdmin}
	}
	users := []string{}
	adminIsDefault := su.adminUser == "" || su.adminUser == redisDefaultUser
	switch {
	case su.mode == ModeRequirepass && su.noRequirepass:
		users = append(users, "user default on nopass ~* &* +@all")
	case su.mode == ModeRequirepass && su.aclfile:
		// requirepass cannot be combined with an aclfile in redis.conf;
		// the default user's password lives in the aclfile.
		users = append(users, "user default on #"+hashOf(secret.FromString(testOld))+" ~* &* +@all")
	case su.mode == ModeACL && adminIsDefault:
		users = append(users, "user default on >"+testAdmin+" ~* &* +@all")
	case su.mode == ModeACL:
		users = append(users, "user default off")
	}
	if !adminIsDefault {
		users = append(users, "user "+su.adminUser+" on >"+testAdmin+" ~* &* +@all")
	}
	if su.mode == ModeACL {
		line := su.appUserLine
		if line == "" {
			line = "user " + testAppUser + " on >" + testOld + " ~* &* +@all"
		}
		users = append(users, line)
	}
	conf := append([]string(nil), su.conf...)
	var acl []string
	if su.aclfile {
		acl = append(users, su.acl...)
	} else {
		conf = append(conf, users...)
		if su.mode == ModeRequirepass && !su.noRequirepass {
			conf = append(conf, "requirepass "+testOld)
		}
	}
	f := &fixture{t: t, su: su, srv: startRedis(t, conf, acl), cluster: newFakeCluster(), rand: &recordingReader{}}
	f.cluster.put(testNS, testSecret, map[string]string{testKey: su.secretValue, "REDIS_HOST": "redis"})
	f.cluster.consumerSecret, f.cluster.consumerKey = testNS+"/"+testSecret, testKey
	appUser := testAppUser
	if su.mode == ModeRequirepass {
		appUser = redisDefaultUser
	}
	f.cluster.login = func(ctx context.Context, pw string) error {
		c := f.srv.client(appUser, pw)
		defer c.Close()
		return c.Ping(ctx).Err()
	}

	address := f.srv.addr
	if su.address != "" {
		address = su.address
	}
	src := []string{
		"mode: " + su.mode,
		"address: " + address,
		"namespace: aivo-{env}",
		"secret: " + testSecret,
		"secret_key: " + testKey,
		"deployments: [ai-orchestrator, auth-svc]",
	}
	if su.mode == ModeACL {
		src = append(src, "acl_user: "+testAppUser)
	}
	if su.persist != "" {
		src = append(src, "persist: "+su.persist)
	}
	if !adminIsDefault {
		src = append(src, "admin_user: "+su.adminUser)
	}
	if su.mode == ModeACL || !adminIsDefault {
		src = append(src, "admin_password_env: REDIS_ADMIN_{env}")
	}
	// A line of su.yaml replaces the setting of the same key.
	for _, line := range su.yaml {
		key, _, _ := strings.Cut(line, ":")
		i := slices.IndexFunc(src, func(l string) bool { return strings.HasPrefix(l, key+":") })
		if i < 0 {
			src = append(src, line)
		} else {
			src[i] = line
		}
	}
	var cfg Config
	if err := yamlDecode(strings.Join(src, "\n"))(&cfg); err != nil {
		t.Fatal(err)
	}
	rot, problems := New("redis", cfg, Clients{Cluster: f.cluster, Creds: su.creds, Rand: f.rand})
	if len(problems) > 0 {
		t.Fatalf("config problems: %v", problems)
	}
	f.rot = rot
	f.spec = rotators.Spec{RequestID: testReqID, Target: "redis", Env: "test"}
	f.plan = rot.Plan(f.spec)
	return f
}

func (f *fixture) newRun() *fakeRun { return newFakeRun(f.spec) }

func (f *fixture) appUser() string {
	if f.su.mode == ModeRequirepass {
		return redisDefaultUser
	}
	return testAppUser
}

func (f *fixture) forward() []string {
	var out []string
	for _, s := range f.plan.Steps {
		out = append(out, s.Name)
	}
	return out
}

func (f *fixture) rollback() []string {
	var out []string
	for _, s := range f.plan.Rollback {
		out = append(out, s.Name)
	}
	return out
}

func (f *fixture) step(name string) rotators.Step {
	f.t.Helper()
	for _, s := range append(append([]rotators.Step{}, f.plan.Steps...), f.plan.Rollback...) {
		if s.Name == name {
			return s
		}
	}
	f.t.Fatalf("no step %q", name)
	return rotators.Step{}
}

func (f *fixture) run(run *fakeRun, name string) error {
	return f.step(name).Run(testCtx(f.t), run)
}

func (f *fixture) mustRun(run *fakeRun, names ...string) {
	f.t.Helper()
	for _, n := range names {
		if err := f.run(run, n); err != nil {
			f.t.Fatalf("step %s: %v", n, err)
		}
	}
}

// maxLostRestarts is the executor's bound on going back for a lost secret.
const maxLostRestarts = 3

// drive runs the forward steps from step from to the end as the executor
// does: a SecretLostError goes back to the step that makes the secret.
// after, if set, runs after each successful step.
func (f *fixture) drive(run *fakeRun, from string, after func(step string)) error {
	names := f.forward()
	i, lost := indexOf(names, from), 0
	for i < len(names) {
		err := f.run(run, names[i])
		var le *rotators.SecretLostError
		if errors.As(err, &le) && lost < maxLostRestarts {
			lost++
			i = indexOf(names, le.From)
			continue
		}
		if err != nil {
			return fmt.Errorf("step %s: %w", names[i], err)
		}
		if after != nil {
			after(names[i])
		}
		i++
	}
	return nil
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	panic("no step " + name)
}

// userPasswords are the app user's password hashes, read as an admin would.
func (f *fixture) userPasswords() []string {
	f.t.Helper()
	admin := f.adminClient()
	defer admin.Close()
	reply, err := admin.Do(testCtx(f.t), "ACL", "GETUSER", f.appUser()).Result()
	if err != nil {
		f.t.Fatalf("ACL GETUSER: %v", err)
	}
	u, err := aclUserFrom(reply)
	if err != nil {
		f.t.Fatal(err)
	}
	return u.passwords
}

// adminClient logs in as the admin, whatever the rotation did to its password.
func (f *fixture) adminClient() *goredis.Client {
	f.t.Helper()
	if f.su.mode == ModeACL || (f.su.adminUser != "" && f.su.adminUser != redisDefaultUser) {
		user := f.su.adminUser
		if user == "" {
			user = redisDefaultUser
		}
		return f.srv.client(user, testAdmin)
	}
	for _, pw := range append([]string{testOld}, f.rand.passwords()...) {
		if f.srv.logsIn(f.t, redisDefaultUser, pw) {
			return f.srv.client(redisDefaultUser, pw)
		}
	}
	f.t.Fatal("no known password logs in as default")
	return nil
}

func (f *fixture) secretValue() string { return f.cluster.value(testNS, testSecret, testKey) }

// generated are the passwords the rotation generated.
func (f *fixture) generated() []string { return f.rand.passwords() }

// hashStr is the ACL hash of a test password.
func hashStr(pw string) string { return hashOf(secret.FromString(pw)) }
