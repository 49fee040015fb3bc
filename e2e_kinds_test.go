package main

// End-to-end runs of the Secret-backed and database kinds from Slack: the
// same signed requests, approval and executor as the API-key scenarios.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

const encryptionTarget = `
  encryption:
    kind: encryption
    approvers:
      prod: {users: [UAPPROVER]}
    namespace: aivo-{env}
    secret: app-encryption
    deployments: [ai-orchestrator]
    migration_job: |
      apiVersion: batch/v1
      kind: Job
      metadata: {name: ai-reencrypt}
      spec:
        backoffLimit: 0
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: reencrypt
                image: registry.example.com/aivo/ai-orchestrator:stable
                command: [npm, run, reencrypt]
`

// withTargets rewrites the harness's config with extra targets appended.
func (h *e2e) withTargets(t *testing.T, yaml string) {
	t.Helper()
	path := filepath.Join(h.dir, "rotary.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, yaml...), 0o600); err != nil {
		t.Fatal(err)
	}
	if h.cfg, err = loadValid(path); err != nil {
		t.Fatal(err)
	}
}

// oldEncryptionKey is the app-encryption Secret's key before a rotation.
const oldEncryptionKey = "6f6c642d6b65792d6f6c642d6b65792d6f6c642d6b65792d6f6c642d6b657921"

// withEncryption adds the encryption target and its Secret, holding oldEncryptionKey.
func (h *e2e) withEncryption(t *testing.T) {
	t.Helper()
	if _, err := h.cs.CoreV1().Secrets("aivo-prod").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "app-encryption", Namespace: "aivo-prod"},
		Data:       map[string][]byte{"ENCRYPTION_KEY": []byte(oldEncryptionKey)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.withTargets(t, encryptionTarget)
}

func TestE2EEncryptionKey(t *testing.T) {
	h := newE2E(t)
	ctx := context.Background()
	h.withEncryption(t)
	h.start()
	id, rootTS := h.open("encryption")
	root, _ := h.slack.Message(requestChannel, rootTS)
	if !strings.Contains(string(root.Blocks), "re-encrypts data") {
		t.Fatalf("the request message does not say that data is re-encrypted: %s", root.Blocks)
	}
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, rootTS, approvals.StateSucceeded)

	s, err := h.cs.CoreV1().Secrets("aivo-prod").Get(ctx, "app-encryption", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newKey := string(s.Data["ENCRYPTION_KEY"])
	if len(s.Data) != 1 || len(newKey) != 64 || newKey == oldEncryptionKey {
		t.Fatalf("final Secret keys %v", keys(s.Data))
	}
	jobs, _ := h.cs.BatchV1().Jobs("aivo-prod").List(ctx, metav1.ListOptions{})
	if len(jobs.Items) != 1 || jobs.Items[0].Labels["rotary.aivo.io/request"] != id {
		t.Fatalf("migration jobs: %d", len(jobs.Items))
	}
	backup, err := h.cs.CoreV1().Secrets("aivo-prod").Get(ctx, "app-encryption-backup-"+strings.ToLower(id), metav1.GetOptions{})
	if err != nil || string(backup.Data["ENCRYPTION_KEY"]) != oldEncryptionKey {
		t.Fatalf("backup: %v", err)
	}
	h.stop()
	h.assertNoLeak(oldEncryptionKey, newKey)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// pgTarget is what withPostgres made for a database target.
type pgTarget struct {
	admin         string // the server's superuser DSN (a secret itself)
	adminPassword string // its password alone
	oldDSN        string // the application's DSN before the rotation
}

// withPostgres prepares a database target on the PostgreSQL server of
// test/services.sh (the test skips without it): a login role with
// oldPassword owning a database of its own, the Secret Manager secret
// holding its DSN, the auth-svc Deployment, the target's config and the
// admin DSN's env. Names are prefix_{app,old,new}_<pid> so that scenarios
// and concurrent runs on the shared server do not meet; the database and
// the old and new roles are dropped after the test.
func (h *e2e) withPostgres(t *testing.T, prefix, oldPassword string) pgTarget {
	t.Helper()
	admin := os.Getenv("ROTARY_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("ROTARY_TEST_POSTGRES_URL not set: run `eval \"$(bash test/services.sh start)\"` to test the database kind against PostgreSQL")
	}
	u, err := url.Parse(admin)
	if err != nil {
		// The parse error quotes the URL, password included.
		t.Fatal("ROTARY_TEST_POSTGRES_URL is not a URL: set it to the postgres://user:password@host:port/db that test/services.sh prints")
	}
	adminPassword, _ := u.User.Password()
	ctx := context.Background()
	suffix := fmt.Sprintf("%x", os.Getpid())
	db, oldRole, newRole := prefix+"_app_"+suffix, prefix+"_old_"+suffix, prefix+"_new_"+suffix
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var lit string
	if err := conn.QueryRow(ctx, "SELECT format('%L', $1::text)", oldPassword).Scan(&lit); err != nil {
		t.Fatal(err)
	}
	pgExec(t, conn, "CREATE ROLE "+oldRole+" LOGIN PASSWORD "+lit)
	pgExec(t, conn, "CREATE DATABASE "+db+" OWNER "+oldRole)
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("cleanup: database %s and roles %s* are left on the server: %v", db, prefix, err)
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		// The rotation names its role newRole, or newRole_2 … if taken.
		rows, _ := c.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname = $1 OR starts_with(rolname, $2)", oldRole, newRole)
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
		}
	})
	oldDSN := (&url.URL{Scheme: "postgresql", User: url.UserPassword(oldRole, oldPassword), Host: u.Host, Path: "/" + db, RawQuery: "sslmode=disable"}).String()

	h.seedSecret(t, "projects/aivo-platform/secrets/aivo-prod-auth-database-url", oldDSN)
	if _, err := h.cs.AppsV1().Deployments("aivo-prod").Create(ctx, kubesim.NewDeployment("aivo-prod", "auth-svc", 1, map[string]string{"app": "auth-svc"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.withTargets(t, fmt.Sprintf(`
  database:
    kind: database
    approvers:
      prod: {users: [UAPPROVER]}
    namespace: aivo-{env}
    secret_manager:
      project: aivo-platform
      secret: aivo-{env}-auth-database-url
    external_secret: external-services
    deployments: [auth-svc]
    role_pattern: %s
    dsn_template: "postgresql://{user}:{password}@%s/%s?sslmode=disable"
    database: %s
    retire_after: 1h
    admin_dsn_env: ROTARY_DB_ADMIN_DSN
`, newRole, u.Host, db, db))
	h.extraEnv = map[string]string{"ROTARY_DB_ADMIN_DSN": admin}
	return pgTarget{admin: admin, adminPassword: adminPassword, oldDSN: oldDSN}
}

// pgExec runs one statement that must succeed.
func pgExec(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestE2EDatabase rotates a PostgreSQL login role from Slack against the
// real server started by test/services.sh.
func TestE2EDatabase(t *testing.T) {
	ctx := context.Background()
	const oldPassword = "old-Pa55'word"
	h := newE2E(t)
	pg := h.withPostgres(t, "e2e", oldPassword)
	appConn, err := pgx.Connect(ctx, pg.oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	pgExec(t, appConn, "CREATE TABLE items (id serial PRIMARY KEY, name text)")
	_ = appConn.Close(ctx)
	h.start()
	id, rootTS := h.open("database")
	h.click(approver, blocks.ActionApprove, id)

	// The old role is retired from the thread's button, not after the hour.
	ref := blocks.PromptRef(id, "retire_now")
	h.waitCalls("drop-old-role button", func([]slackfake.Call) bool { return h.threadHas(rootTS, ref) })
	h.click(approver, blocks.ActionPrompt, ref)
	h.finished(id, rootTS, approvals.StateSucceeded)

	// The stored DSN is the new role's, and it works against the real server.
	vs := h.gsmVersions("aivo-prod-auth-database-url")
	newDSN := string(vs[len(vs)-1].Payload)
	nc, err := pgx.Connect(ctx, newDSN)
	if err != nil {
		t.Fatalf("the new DSN does not connect: %v", err)
	}
	pgExec(t, nc, "INSERT INTO items (name) VALUES ('after rotation')")
	_ = nc.Close(ctx)
	if c, err := pgx.Connect(ctx, pg.oldDSN); err == nil {
		_ = c.Close(ctx)
		t.Fatal("the old role still logs in after retirement")
	}
	h.stop()
	pw := ""
	if pu, err := url.Parse(newDSN); err == nil {
		pw, _ = pu.User.Password()
	}
	h.assertNoLeak(oldPassword, pw, pg.admin)
}

// startPrivateRedis runs a redis-server of the test's own on a free
// loopback port (rotations rewrite its config file) and returns its address.
// Readiness is the server's own log line, read from its stdout.
func startPrivateRedis(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ROTARY_TEST_REDIS_SERVER")
	if bin == "" {
		t.Skip("ROTARY_TEST_REDIS_SERVER not set: run `eval \"$(bash test/services.sh start)\"` to test against Redis")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	_ = ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "bind 127.0.0.1\nport %s\ndir %s\nsave \"\"\nappendonly no\nlogfile \"\"\n", port, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-time.After(e2eWait):
		t.Fatal("redis-server did not become ready")
	}
	return addr
}

// withRedisACL prepares an ACL-mode redis target on the redis-server at
// addr: an admin user and the application's user with oldPassword, the
// application's Secret holding it, and the admin credential.
func (h *e2e) withRedisACL(t *testing.T, addr, adminPassword, oldPassword string) {
	t.Helper()
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: addr})
	defer admin.Close()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "rotary-admin", "on", ">" + adminPassword, "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "aivo-app", "on", ">" + oldPassword, "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd[:3], err)
		}
	}

	if _, err := h.cs.CoreV1().Secrets("aivo-prod").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "redis-credentials", Namespace: "aivo-prod"},
		Data:       map[string][]byte{"REDIS_PASSWORD": []byte(oldPassword)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.withTargets(t, fmt.Sprintf(`
  redis:
    kind: redis
    approvers:
      prod: {users: [UAPPROVER]}
    mode: acl
    address: %q
    namespace: aivo-{env}
    secret: redis-credentials
    secret_key: REDIS_PASSWORD
    deployments: [ai-orchestrator]
    acl_user: aivo-app
    admin_user: rotary-admin
    admin_password_env: REDIS_ADMIN_PASSWORD
`, addr))
	h.extraEnv = map[string]string{"REDIS_ADMIN_PASSWORD": adminPassword}
}

// TestE2ERedisACL rotates an application's Redis ACL password from Slack
// against a real redis-server: the new password is in the Secret and works,
// the old one no longer does.
func TestE2ERedisACL(t *testing.T) {
	addr := startPrivateRedis(t)
	ctx := context.Background()
	const adminPassword, oldPassword = "e2e-admin-Pa55", "e2e-app-OLD-pa55word"
	h := newE2E(t)
	h.withRedisACL(t, addr, adminPassword, oldPassword)
	h.start()
	id, rootTS := h.open("redis")
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, rootTS, approvals.StateSucceeded)

	s, err := h.cs.CoreV1().Secrets("aivo-prod").Get(ctx, "redis-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newPassword := string(s.Data["REDIS_PASSWORD"])
	if newPassword == "" || newPassword == oldPassword {
		t.Fatal("the Secret does not hold a new password")
	}
	login := func(pw string) error {
		c := goredis.NewClient(&goredis.Options{Addr: addr, Username: "aivo-app", Password: pw})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	if err := login(newPassword); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	if err := login(oldPassword); err == nil {
		t.Fatal("the old password still logs in")
	}
	h.stop()
	h.assertNoLeak(oldPassword, newPassword, adminPassword)
}
