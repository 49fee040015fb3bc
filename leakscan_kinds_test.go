package main

// Leak-scan scenarios of the kinds that rotate against real servers
// (started by test/services.sh; skipped with a message without them).

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/secret"
)

func leakDatabase(t *testing.T, h *e2e, scan *leakScan) []string {
	admin := os.Getenv("ROTARY_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("ROTARY_TEST_POSTGRES_URL not set: run `eval \"$(bash test/services.sh start)\"` to scan the database kind")
	}
	ctx := context.Background()
	suffix := fmt.Sprintf("l%x", os.Getpid())
	db, oldRole, oldPassword := "leak_app_"+suffix, "leak_old_"+suffix, "leak-OLD-Pa55/word+="
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var lit string
	if err := conn.QueryRow(ctx, "SELECT format('%L', $1::text)", oldPassword).Scan(&lit); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"CREATE ROLE " + oldRole + " LOGIN PASSWORD " + lit, "CREATE DATABASE " + db + " OWNER " + oldRole} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		rows, _ := c.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'leak_%'||$1", suffix)
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range names {
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize())
		}
	})
	u, _ := url.Parse(admin)
	oldDSN := (&url.URL{Scheme: "postgresql", User: url.UserPassword(oldRole, oldPassword), Host: u.Host, Path: "/" + db, RawQuery: "sslmode=disable"}).String()
	secretName := "projects/aivo-platform/secrets/aivo-prod-auth-database-url"
	if err := h.gsm.CreateSecret(secretName); err != nil {
		t.Fatal(err)
	}
	c, err := gsm.Dial(ctx, h.gsm.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddVersion(ctx, secretName, secret.FromString(oldDSN)); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
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
    role_pattern: leak_new_%s
    dsn_template: "postgresql://{user}:{password}@%s/%s?sslmode=disable"
    database: %s
    retire_after: 1h
    admin_dsn_env: ROTARY_DB_ADMIN_DSN
`, suffix, u.Host, db, db))
	h.extraEnv = map[string]string{"ROTARY_DB_ADMIN_DSN": admin}
	h.start()
	id, rootTS := h.open("database")
	h.click(approver, blocks.ActionApprove, id)
	ref := blocks.PromptRef(id, "retire_now")
	h.waitCalls("drop-old-role button", func([]slackfake.Call) bool { return h.threadHas(rootTS, ref) })
	scan.scrape(t, h)
	h.click(approver, blocks.ActionPrompt, ref)
	h.finished(id, rootTS, approvals.StateSucceeded)
	values := []string{oldPassword, admin}
	if p, ok := u.User.Password(); ok {
		values = append(values, p)
	}
	// The new DSN and its password are among the Secret Manager payloads;
	// the password alone is scanned too.
	for _, v := range h.gsm.Payloads() {
		if pu, err := url.Parse(string(v)); err == nil {
			if pw, ok := pu.User.Password(); ok {
				values = append(values, pw)
			}
		}
	}
	return values
}

func leakRedis(t *testing.T, h *e2e, scan *leakScan) []string {
	addr := startPrivateRedis(t)
	const adminPassword, oldPassword = "leak-admin-Pa55+/=", "leak-app-OLD-pa55word&?"
	h.withRedisACL(t, addr, adminPassword, oldPassword)
	h.start()
	id, rootTS := h.open("redis")
	h.click(approver, blocks.ActionApprove, id)
	scan.scrape(t, h)
	h.finished(id, rootTS, approvals.StateSucceeded)
	return append(secretData(t, h, everyKey), oldPassword, adminPassword)
}
