package e2e

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

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/rotators/database"
	"github.com/aivo-platform/rotary/rotators/encryption"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/redis"
)

// --- encryption ---------------------------------------------------------

const (
	encryptionDeployment = "ai-orchestrator"
	encryptionSecret     = "app-encryption"
	encryptionOldKey     = "6f6c642d6b65792d6f6c642d6b65792d6f6c642d6b65792d6f6c642d6b657921"
	requestLabel         = "rotary.aivo.io/request"
)

func encryptionSteps() []string {
	return []string{encryption.StepBackup, encryption.StepNewKey, encryption.StepDualKeys, encryption.StepRestartDual,
		encryption.StepMigrate, encryption.StepVerify, encryption.StepRemoveOldKey, encryption.StepRestartFinal}
}

// newEncryptionWorld: the key lives in Secret app-encryption, loaded by
// ai-orchestrator; the migration Job's pod completes under kwok (or fails,
// with the job-fails marker).
func newEncryptionWorld(t *testing.T, s *suite, name string, d deploymentSpec, jobMarker string) *world {
	t.Helper()
	w := newWorld(t, s, name)
	w.kubeSecret(encryptionSecret, map[string]string{"ENCRYPTION_KEY": encryptionOldKey})
	d.name, d.replicas, d.envFrom = encryptionDeployment, 2, []string{encryptionSecret}
	w.deployment(d)
	jobLabels := ""
	if jobMarker != "" {
		jobLabels = fmt.Sprintf("\n          metadata: {labels: {%s: \"true\"}}", jobMarker)
	}
	w.writeConfig(fmt.Sprintf(`  encryption:
    kind: encryption
    approvers:
      prod: {users: [%s]}
    namespace: %s
    secret: %s
    deployments: [%s]
    rollout_timeout: 60s
    job_timeout: 2m
    migration_job: |
      apiVersion: batch/v1
      kind: Job
      metadata: {name: ai-reencrypt}
      spec:
        backoffLimit: 0
        template:%s
          spec:
            restartPolicy: Never
            containers:
              - name: reencrypt
                image: registry.example.com/aivo/ai-orchestrator:stable
                command: [npm, run, reencrypt]
                envFrom:
                  - secretRef: {name: %s}
`, approver, w.ns, encryptionSecret, encryptionDeployment, jobLabels, encryptionSecret))
	return w
}

func testEncryption(t *testing.T, s *suite, f fault) {
	marker := ""
	if f.midRollout != "" {
		marker = markerSlowReady
	}
	w := newEncryptionWorld(t, s, "enc-"+f.name(), deploymentSpec{marker: marker}, "")
	w.startRotary(f.afterStep)
	id, rootTS := w.approve("encryption")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeSucceeded {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeSucceeded, w.logs.String())
	}
	data := w.secretData(encryptionSecret)
	newKey := data["ENCRYPTION_KEY"]
	if len(data) != 1 || len(newKey) != 64 || newKey == encryptionOldKey {
		t.Fatalf("Secret %s after the rotation has keys %v; want only a new 64-hex-digit ENCRYPTION_KEY", encryptionSecret, keysOf(data))
	}
	backup := w.secretData(kube.BackupName(encryptionSecret, id))
	if backup["ENCRYPTION_KEY"] != encryptionOldKey {
		t.Fatal("the backup Secret does not hold the old key")
	}
	jobs := w.jobsOf(id)
	if len(jobs) != 1 || !jobSucceeded(&jobs[0]) {
		t.Fatalf("%d migration Jobs labelled with %s; want one, succeeded", len(jobs), id)
	}
	// Two restarts: both keys, then the new key only.
	w.assertRolled(encryptionDeployment, 2, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertNoLeak(encryptionOldKey, newKey)
}

func encryptionRollbackSteps() []string {
	return []string{encryption.StepRestoreSecret, encryption.StepRollbackRestart}
}

// testEncryptionFailedMigration: the migration Job fails, so the Secret is
// restored from the backup exactly and the deployment restarted on it.
// Under fault f (a rollback step) rotary is SIGKILLed after that rollback
// step and restarted: the rollback resumes and does each step once.
func testEncryptionFailedMigration(t *testing.T, s *suite, f fault) {
	name := rollbackScenarioName(t, "enc-bad-migration", "enc-rb-", encryptionSteps(), f)
	w := newEncryptionWorld(t, s, name, deploymentSpec{}, markerJobFails)
	w.startRotary(f.afterStep)
	id, rootTS := w.approve("encryption")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeRolledBack {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeRolledBack, w.logs.String())
	}
	if data := w.secretData(encryptionSecret); len(data) != 1 || data["ENCRYPTION_KEY"] != encryptionOldKey {
		t.Fatalf("Secret %s after the rollback has keys %v; want exactly the old ENCRYPTION_KEY", encryptionSecret, keysOf(data))
	}
	backup := w.secretData(kube.BackupName(encryptionSecret, id))
	if len(backup) != 1 || backup["ENCRYPTION_KEY"] != encryptionOldKey {
		t.Fatalf("the backup Secret has keys %v after the rollback; want exactly the old ENCRYPTION_KEY", keysOf(backup))
	}
	jobs := w.jobsOf(id)
	if len(jobs) != 1 || jobSucceeded(&jobs[0]) {
		t.Fatalf("%d migration Jobs of %s; want one, failed", len(jobs), id)
	}
	// restart_dual, then the rollback's restart.
	w.assertRolled(encryptionDeployment, 2, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertRolledBackOnce(id, encryption.StepMigrate, encryptionRollbackSteps())
	w.assertNoLeak(encryptionOldKey)
}

func (w *world) jobsOf(id string) []batchv1.Job {
	w.t.Helper()
	jobs, err := w.s.cs.BatchV1().Jobs(w.ns).List(w.ctx, metav1.ListOptions{LabelSelector: requestLabel + "=" + id})
	if err != nil {
		w.t.Fatal(err)
	}
	return jobs.Items
}

func jobSucceeded(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// --- database (PostgreSQL) ---------------------------------------------

const (
	databaseDeployment = "auth-svc"
	databaseGSMID      = "aivo-prod-auth-database-url"
)

func databaseSteps() []string {
	return []string{database.StepNewRole, database.StepCheckRole, database.StepStoreVersion, database.StepSync,
		database.StepRestart, database.StepVerify, database.StepRetireOld}
}

// testDatabase rotates a PostgreSQL login role of its own (database and
// roles named after the case) on the server test/services.sh started.
func testDatabase(t *testing.T, s *suite, f fault) {
	admin := os.Getenv(envPostgres)
	if admin == "" {
		t.Skipf("%s is not set: run `eval \"$(bash test/services.sh start)\"` to test the database kind against PostgreSQL", envPostgres)
	}
	marker := ""
	if f.midRollout != "" {
		marker = markerSlowReady
	}
	w := newWorld(t, s, "db-"+strings.ReplaceAll(f.name(), "_", "-"))
	ctx := w.ctx
	suffix := strings.ReplaceAll(strings.TrimPrefix(w.ns, "e2e-db-"), "-", "_")
	db, oldRole, oldPassword := "e2e_db_"+suffix, "e2e_old_"+suffix, "old-Pa55'word-"+suffix
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pgExec := func(c *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var lit string
	if err := conn.QueryRow(ctx, "SELECT format('%L', $1::text)", oldPassword).Scan(&lit); err != nil {
		t.Fatal(err)
	}
	pgExec(conn, "CREATE ROLE "+oldRole+" LOGIN PASSWORD "+lit)
	pgExec(conn, "CREATE DATABASE "+db+" OWNER "+oldRole)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.WithoutCancel(ctx), admin)
		if err != nil {
			return
		}
		defer c.Close(context.WithoutCancel(ctx))
		_, _ = c.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		rows, _ := c.Query(context.WithoutCancel(ctx), "SELECT rolname FROM pg_roles WHERE rolname LIKE 'e2e_%'||$1", suffix)
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			_, _ = c.Exec(context.WithoutCancel(ctx), "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	appDSN := func(user, password string) string {
		return (&url.URL{Scheme: "postgresql", User: url.UserPassword(user, password), Host: u.Host, Path: "/" + db, RawQuery: "sslmode=disable"}).String()
	}
	appConn, err := pgx.Connect(ctx, appDSN(oldRole, oldPassword))
	if err != nil {
		t.Fatal(err)
	}
	pgExec(appConn, "CREATE TABLE items (id serial PRIMARY KEY, name text)")
	_ = appConn.Close(ctx)

	oldDSN := appDSN(oldRole, oldPassword)
	w.gsmSecret(databaseGSMID, oldDSN)
	w.externalSecret("external-services", "auth-database", "DATABASE_URL", databaseGSMID)
	w.deployment(deploymentSpec{name: databaseDeployment, replicas: 2, marker: marker, envFrom: []string{"auth-database"}})
	w.env["ROTARY_DB_ADMIN_DSN"] = admin
	w.writeConfig(fmt.Sprintf(`  database:
    kind: database
    approvers:
      prod: {users: [%s]}
    namespace: %s
    secret_manager:
      project: %s
      secret: %s
    external_secret: external-services
    deployments: [%s]
    role_pattern: e2e_new_%s
    dsn_template: "postgresql://{user}:{password}@%s/%s?sslmode=disable"
    database: %s
    retire_after: 1h
    sync_timeout: 30s
    rollout_timeout: 60s
    admin_dsn_env: ROTARY_DB_ADMIN_DSN
`, approver, w.ns, gsmProject, databaseGSMID, databaseDeployment, suffix, u.Host, db, db))

	w.startRotary(f.afterStep)
	id, rootTS := w.approve("database")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeSucceeded {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeSucceeded, w.logs.String())
	}
	vs := w.gsmVersions(databaseGSMID)
	if len(vs) != 2 {
		t.Fatalf("Secret Manager versions after the rotation: %s; want exactly one new one", versionStates(vs))
	}
	newDSN := string(vs[1].Payload)
	if got := w.secretData("auth-database")["DATABASE_URL"]; got != newDSN {
		t.Fatal("Secret auth-database does not hold the new DSN after the sync")
	}
	nc, err := pgx.Connect(ctx, newDSN)
	if err != nil {
		t.Fatalf("the new DSN does not connect: %v", err)
	}
	pgExec(nc, "INSERT INTO items (name) VALUES ('after rotation')")
	_ = nc.Close(ctx)
	if c, err := pgx.Connect(ctx, oldDSN); err == nil {
		_ = c.Close(ctx)
		t.Fatal("the old role still logs in after retirement")
	}
	var roles int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'e2e_new_'||$1||'%'", suffix).Scan(&roles); err != nil || roles != 1 {
		t.Fatalf("%d new roles exist (err %v); want exactly one", roles, err)
	}
	w.assertRolled(databaseDeployment, 1, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	pw := ""
	if pu, err := url.Parse(newDSN); err == nil {
		pw, _ = pu.User.Password()
	}
	w.assertNoLeak(oldPassword, pw, admin, oldDSN, newDSN)
}

// --- redis (ACL mode) ---------------------------------------------------

const (
	redisDeployment = "ai-orchestrator"
	redisSecret     = "redis-credentials"
)

func redisSteps() []string {
	return []string{redis.StepPreflight, redis.StepBackup, redis.StepAddPassword, redis.StepUpdateSecret,
		redis.StepRestart, redis.StepVerify, redis.StepRemoveOld, redis.StepPersist}
}

// startPrivateRedis runs a redis-server of the scenario's own on a free
// loopback port (rotations rewrite its config file); readiness is the
// server's own log line.
func startPrivateRedis(t *testing.T, w *world) string {
	t.Helper()
	bin := os.Getenv(envRedis)
	if bin == "" {
		t.Skipf("%s is not set: run `eval \"$(bash test/services.sh start)\"` to test the redis kind against Redis", envRedis)
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
	case <-w.ctx.Done():
		t.Fatal("redis-server did not become ready")
	}
	return addr
}

// aclPasswords counts the password hashes in an ACL GETUSER reply (a map
// under RESP3, a flat key/value list under RESP2); -1 if there is none.
func aclPasswords(reply any) int {
	field := func(k, v any) (int, bool) {
		if fmt.Sprint(k) != "passwords" {
			return 0, false
		}
		pws, _ := v.([]any)
		return len(pws), true
	}
	switch r := reply.(type) {
	case map[any]any:
		for k, v := range r {
			if n, ok := field(k, v); ok {
				return n
			}
		}
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			if n, ok := field(r[i], r[i+1]); ok {
				return n
			}
		}
	}
	return -1
}

func testRedis(t *testing.T, s *suite, f fault) {
	marker := ""
	if f.midRollout != "" {
		marker = markerSlowReady
	}
	w := newWorld(t, s, "redis-"+strings.ReplaceAll(f.name(), "_", "-"))
	addr := startPrivateRedis(t, w)
	ctx := w.ctx
	const adminPassword, oldPassword = "e2e-admin-Pa55-redis", "e2e-app-OLD-pa55word"
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
	w.kubeSecret(redisSecret, map[string]string{"REDIS_PASSWORD": oldPassword})
	w.deployment(deploymentSpec{name: redisDeployment, replicas: 2, marker: marker, envFrom: []string{redisSecret}})
	w.env["REDIS_ADMIN_PASSWORD"] = adminPassword
	w.writeConfig(fmt.Sprintf(`  redis:
    kind: redis
    approvers:
      prod: {users: [%s]}
    mode: acl
    address: %q
    namespace: %s
    secret: %s
    secret_key: REDIS_PASSWORD
    deployments: [%s]
    acl_user: aivo-app
    admin_user: rotary-admin
    admin_password_env: REDIS_ADMIN_PASSWORD
    rollout_timeout: 60s
`, approver, addr, w.ns, redisSecret, redisDeployment))

	w.startRotary(f.afterStep)
	id, rootTS := w.approve("redis")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeSucceeded {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeSucceeded, w.logs.String())
	}
	newPassword := w.secretData(redisSecret)["REDIS_PASSWORD"]
	if newPassword == "" || newPassword == oldPassword {
		t.Fatal("Secret redis-credentials does not hold a new password")
	}
	if w.secretData(kube.BackupName(redisSecret, id))["REDIS_PASSWORD"] != oldPassword {
		t.Fatal("the backup Secret does not hold the old password")
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
	// Exactly one password is left on the user (no leftover from a repeat).
	rc := goredis.NewClient(&goredis.Options{Addr: addr, Username: "rotary-admin", Password: adminPassword})
	defer rc.Close()
	info, err := rc.Do(ctx, "ACL", "GETUSER", "aivo-app").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := aclPasswords(info); n != 1 {
		t.Fatalf("user aivo-app has %d passwords after the rotation; want 1", n)
	}
	w.assertRolled(redisDeployment, 1, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertNoLeak(oldPassword, newPassword, adminPassword)
}
