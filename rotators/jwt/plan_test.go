package jwt

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

func TestPlanShape(t *testing.T) {
	tests := []struct {
		backend   string
		emergency bool
		rollback  bool
		steps     []string
		rollbacks []string
		followUp  []string
		notes     []string
	}{
		{
			backend:   BackendKubernetes,
			steps:     []string{StepBackup, StepGenerate, StepUpdate, StepRestart, StepVerify, StepWaitTokens},
			rollbacks: []string{StepRestore, StepRollbackRestart, StepRollbackVerify},
			followUp:  []string{StepRemoveOldKey, StepFollowUpRestart},
			notes:     []string{"backed up to aivo-prod/jwt-keys-backup-r-jwt0001", "stays valid as JWT_PUBLIC_KEY_OLD for 24h, then is removed automatically", "waits 15m for access tokens"},
		},
		{
			backend:   BackendSecretManager,
			steps:     []string{StepBackup, StepGenerate, StepUpdate, StepSync, StepRestart, StepVerify, StepWaitTokens},
			rollbacks: []string{StepRestore, StepRollbackSync, StepRollbackRestart, StepRollbackVerify},
			followUp:  []string{StepRemoveOldKey, StepFollowUpSync, StepFollowUpRestart},
			notes:     []string{"the version in use now is the backup"},
		},
		{
			backend: BackendKubernetes, emergency: true,
			steps:     []string{StepBackup, StepGenerate, StepUpdate, StepRestart, StepInvalidateSessions, StepSyncAll, StepVerify},
			rollbacks: []string{StepRestore, StepRollbackRestart, StepRollbackVerify},
			notes:     []string{"EMERGENCY", "no grace period", "`npm run invalidate-all-sessions`", "its default container", "NOT put back automatically"},
		},
		{
			backend: BackendSecretManager, emergency: true,
			steps:     []string{StepBackup, StepGenerate, StepUpdate, StepSync, StepRestart, StepInvalidateSessions, StepSyncAll, StepVerify},
			rollbacks: []string{StepRestore, StepRollbackSync, StepRollbackRestart, StepRollbackVerify},
			notes:     []string{"EMERGENCY"},
		},
		{
			backend: BackendKubernetes, rollback: true,
			steps:     []string{StepRestore, StepRollbackRestart, StepRollbackVerify},
			rollbacks: []string{StepRestore, StepRollbackRestart, StepRollbackVerify},
			notes:     []string{"Restores the keys R-JWT0001 replaced, from backup Secret aivo-prod/jwt-keys-backup-r-jwt0001"},
		},
	}
	for _, tt := range tests {
		name := tt.backend
		if tt.emergency {
			name += "/emergency"
		}
		if tt.rollback {
			name += "/rollback request"
		}
		t.Run(name, func(t *testing.T) {
			w := &world{backend: tt.backend}
			var cfg Config
			if err := yamlDecode(w.targetYAML())(&cfg); err != nil {
				t.Fatal(err)
			}
			rot, problems := New("jwt", cfg, Clients{})
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			spec := rotators.Spec{RequestID: testReqID, Target: "jwt", Env: "prod", Emergency: tt.emergency}
			if tt.rollback {
				spec = rotators.Spec{RequestID: "R-JWT0009", Target: "jwt", Env: "prod", RollbackOf: testReqID}
			}
			p := rot.Plan(spec)
			if got := stepNames(p.Steps); !slices.Equal(got, tt.steps) {
				t.Errorf("steps %v, want %v", got, tt.steps)
			}
			if got := stepNames(p.Rollback); !slices.Equal(got, tt.rollbacks) {
				t.Errorf("rollback %v, want %v", got, tt.rollbacks)
			}
			var fu []string
			if len(p.FollowUps) > 0 {
				fu = stepNames(p.FollowUps[0].Steps)
			}
			if !slices.Equal(fu, tt.followUp) {
				t.Errorf("follow-up %v, want %v", fu, tt.followUp)
			}
			notes := strings.Join(p.Notes, "\n")
			for _, n := range tt.notes {
				if !strings.Contains(notes, n) {
					t.Errorf("notes lack %q:\n%s", n, notes)
				}
			}
			for _, s := range slices.Concat(p.Steps, p.Rollback) {
				if s.Title == "" || s.Run == nil {
					t.Errorf("step %s has no title or no Run", s.Name)
				}
			}
		})
	}
}

// Without clients (config check) a step fails permanently, naming what is
// missing, instead of panicking.
func TestStepsWithoutClients(t *testing.T) {
	for _, backend := range backends {
		w := &world{backend: backend}
		var cfg Config
		if err := yamlDecode(w.targetYAML())(&cfg); err != nil {
			t.Fatal(err)
		}
		rot, _ := New("jwt", cfg, Clients{})
		run := rotatorstest.New(rotators.Spec{RequestID: testReqID, Env: "prod", Emergency: true})
		run.SetFact(factNewKID, "0011223344556677")
		run.SetFact(factUpdateStarted, "true")
		for _, s := range rot.Plan(run.Spec).Steps {
			if s.Name == StepGenerate {
				continue
			}
			err := s.Run(ctxTimeout(t), run)
			if err == nil || !rotators.IsPermanent(err) || !regexp.MustCompile(`no (Kubernetes|Kubernetes exec|Secret Manager) client is configured`).MatchString(err.Error()) {
				t.Errorf("%s/%s without clients: err = %v, want a permanent error naming the missing client", backend, s.Name, err)
			}
		}
	}
}

// key_bits 4096 (the runbook's size) with the real generator.
func TestGenerate4096(t *testing.T) {
	var cfg Config
	if err := yamlDecode("namespace: aivo-{env}\nkey_bits: 4096\n")(&cfg); err != nil {
		t.Fatal(err)
	}
	rot, problems := New("jwt", cfg, Clients{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	run := rotatorstest.New(rotators.Spec{RequestID: testReqID, Env: "prod"})
	start := time.Now()
	if err := findStep(t, rot.Plan(run.Spec), StepGenerate).Run(ctxTimeout(t), run); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated a 4096-bit key in %s", time.Since(start))
	v, ok := run.Secret(secretPrivateKey)
	if !ok {
		t.Fatal("no private key kept")
	}
	block, _ := pem.Decode(v.Reveal())
	if block == nil || block.Type != pemPrivateKey {
		t.Fatalf("kept key is not PEM %q", pemPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != 4096 {
		t.Fatalf("kept key is a %T of %d bits, want RSA 4096", k, rk.N.BitLen())
	}
	if fp := mustFingerprint(t, &rk.PublicKey); run.Fact(factNewFingerprint) != fp || len(run.Fact(factNewKID)) != 16 {
		t.Errorf("facts %v, want the key's fingerprint %s and a 16-digit kid", run.Facts(), fp)
	}
}

func TestHumanDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24h", 15 * time.Minute: "15m", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 0: "0s", 720 * time.Hour: "720h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		15 * time.Minute: "15m", 14*time.Minute + time.Second: "15m", 30 * time.Second: "1m", 61 * time.Minute: "1h01m", 24 * time.Hour: "24h00m",
	} {
		if got := remaining(d); got != want {
			t.Errorf("remaining(%v) = %q, want %q", d, got, want)
		}
	}
}
