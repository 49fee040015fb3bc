package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/rotators/jwt"
	"github.com/aivo-platform/rotary/rotators/kube"
)

const (
	jwtDeployment = "auth-svc"
	jwtSecret     = "jwt-keys"
	jwtOldKID     = "0123456789abcdef"
)

func jwtSteps() []string {
	return []string{jwt.StepBackup, jwt.StepGenerate, jwt.StepUpdate, jwt.StepRestart, jwt.StepVerify, jwt.StepWaitTokens}
}

// newJWTWorld: auth-svc reads its RSA key pair from Secret jwt-keys; its
// container is the one kwok runs exec commands for, so the emergency's
// session invalidation really goes through pods/exec. The command touches
// a file named after the namespace in the harness's exec directory, which
// the test then looks for.
func newJWTWorld(t *testing.T, s *suite, name string, d deploymentSpec) (*world, map[string]string, string) {
	t.Helper()
	w := newWorld(t, s, name)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	original := map[string]string{
		"JWT_PRIVATE_KEY": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv})),
		"JWT_PUBLIC_KEY":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		"JWT_KEY_ID":      jwtOldKID,
	}
	w.kubeSecret(jwtSecret, original)
	d.name, d.replicas, d.envFrom, d.container = jwtDeployment, 2, []string{jwtSecret}, execContainer
	w.deployment(d)
	marker := w.ns + ".sessions-invalidated"
	w.writeConfig(fmt.Sprintf(`  jwt:
    kind: jwt
    approvers:
      prod: {users: [%s]}
    namespace: %s
    secret: %s
    deployment: %s
    rollout_timeout: 60s
    token_lifetime: 0s
    grace_period: 24h
    key_bits: 2048
    sync_timeout: 30s
    invalidate_sessions:
      command: [touch, %s]
      container: %s
      timeout: 30s
`, approver, w.ns, jwtSecret, jwtDeployment, marker, execContainer))
	return w, original, marker
}

// testJWT: an ordinary JWT key rotation under fault f. The old public key
// stays as JWT_PUBLIC_KEY_OLD (its removal is a follow-up a day later).
func testJWT(t *testing.T, s *suite, f fault) {
	marker := ""
	if f.midRollout != "" {
		marker = markerSlowReady
	}
	w, original, _ := newJWTWorld(t, s, "jwt-"+f.name(), deploymentSpec{marker: marker})
	w.startRotary(f.afterStep)
	id, rootTS := w.approve("jwt")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeSucceeded {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeSucceeded, w.logs.String())
	}
	data := w.secretData(jwtSecret)
	if data["JWT_KEY_ID"] == jwtOldKID || data["JWT_PRIVATE_KEY"] == original["JWT_PRIVATE_KEY"] || data["JWT_PUBLIC_KEY"] == original["JWT_PUBLIC_KEY"] {
		t.Fatal("Secret jwt-keys does not hold a new key pair and key id")
	}
	if data["JWT_PUBLIC_KEY_OLD"] != original["JWT_PUBLIC_KEY"] {
		t.Fatal("JWT_PUBLIC_KEY_OLD is not the previous public key during the grace period")
	}
	if _, err := parsePrivateKey(data["JWT_PRIVATE_KEY"]); err != nil {
		t.Fatalf("the new private key does not parse: %v", err)
	}
	backup := w.secretData(kube.BackupName(jwtSecret, id))
	for k, v := range original {
		if backup[k] != v {
			t.Fatalf("the backup Secret differs from the original in %s", k)
		}
	}
	w.assertRolled(jwtDeployment, 1, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertNoLeak(original["JWT_PRIVATE_KEY"], data["JWT_PRIVATE_KEY"])
}

// testJWTEmergency: `/rotate jwt --emergency` removes the compromised
// public key at once, invalidates sessions by running the configured
// command in a ready auth-svc pod through the exec API (kwok runs it on
// the host: it touches the marker file), and force-syncs every
// ExternalSecret in the namespace.
func testJWTEmergency(t *testing.T, s *suite) {
	w, original, marker := newJWTWorld(t, s, "jwt-emergency", deploymentSpec{})
	if s.execDir == "" {
		t.Fatalf("%s is not set (start.sh writes it): the emergency's exec cannot be checked", envExecDir)
	}
	markerPath := filepath.Join(s.execDir, marker)
	t.Cleanup(func() { _ = os.Remove(markerPath) })
	w.gsmSecret("aivo-prod-openai-api-key", "sk-proj-E2E-UNRELATED-0001")
	w.externalSecret("external-services", "external-services", "OPENAI_API_KEY", "aivo-prod-openai-api-key")
	w.startRotary("")
	id, rootTS := w.openWith(`jwt --emergency --reason "e2e: signing key leaked"`)
	w.click(approver, blocks.ActionApprove, id)
	w.expectOutcome(id, outcomeSucceeded)

	data := w.secretData(jwtSecret)
	if _, ok := data["JWT_PUBLIC_KEY_OLD"]; ok {
		t.Fatal("an emergency rotation kept the compromised public key as JWT_PUBLIC_KEY_OLD")
	}
	if data["JWT_PUBLIC_KEY"] == original["JWT_PUBLIC_KEY"] {
		t.Fatal("the compromised public key is still the current one")
	}
	if _, err := os.Stat(markerPath); err != nil {
		t.Fatalf("the session invalidation command did not run through pods/exec: %v", err)
	}
	if n := w.eso.syncCount("external-services"); n < 2 {
		t.Fatalf("ExternalSecret external-services synced %d times; want the initial sync and the emergency's", n)
	}
	w.assertRolled(jwtDeployment, 1, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertNoLeak(original["JWT_PRIVATE_KEY"], data["JWT_PRIVATE_KEY"])
}

func parsePrivateKey(p string) (any, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParsePKCS8PrivateKey(b.Bytes)
}
