package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aivo-platform/rotary/rotators/apikey"
	"github.com/aivo-platform/rotary/rotators/apikey/apikeytest"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
)

// TestE2E is the whole suite: one suite setup (the rotary binary, its
// ServiceAccount and kubeconfig), then every scenario as a parallel
// subtest in a namespace of its own. Select with -run 'TestE2E/apikey/'.
func TestE2E(t *testing.T) {
	s := newSuite(t)
	t.Run("exec", func(t *testing.T) {
		t.Parallel()
		testExec(t, s)
	})
	t.Run("apikey", func(t *testing.T) {
		for _, f := range crashCases(apikeySteps(), apikeyDeployment) {
			t.Run(f.name(), func(t *testing.T) {
				t.Parallel()
				testAPIKey(t, s, f)
			})
		}
		t.Run("failed_rollout_rolls_back", func(t *testing.T) {
			t.Parallel()
			testAPIKeyFailedRollout(t, s, fault{})
		})
		for _, f := range rollbackCrashCases(apikeyRollbackSteps()) {
			t.Run("failed_rollout_"+f.name(), func(t *testing.T) {
				t.Parallel()
				testAPIKeyFailedRollout(t, s, f)
			})
		}
		t.Run("manual_kill_while_waiting_for_paste", func(t *testing.T) {
			t.Parallel()
			testAPIKeyManualPasteAfterKill(t, s)
		})
	})
	t.Run("encryption", func(t *testing.T) {
		for _, f := range crashCases(encryptionSteps(), encryptionDeployment) {
			t.Run(f.name(), func(t *testing.T) {
				t.Parallel()
				testEncryption(t, s, f)
			})
		}
		t.Run("failed_migration_rolls_back", func(t *testing.T) {
			t.Parallel()
			testEncryptionFailedMigration(t, s, fault{})
		})
		for _, f := range rollbackCrashCases(encryptionRollbackSteps()) {
			t.Run("failed_migration_"+f.name(), func(t *testing.T) {
				t.Parallel()
				testEncryptionFailedMigration(t, s, f)
			})
		}
	})
	t.Run("jwt", func(t *testing.T) {
		for _, f := range crashCases(jwtSteps(), jwtDeployment) {
			t.Run(f.name(), func(t *testing.T) {
				t.Parallel()
				testJWT(t, s, f)
			})
		}
		t.Run("emergency_exec", func(t *testing.T) {
			t.Parallel()
			testJWTEmergency(t, s)
		})
	})
	t.Run("database", func(t *testing.T) {
		for _, f := range crashCases(databaseSteps(), databaseDeployment) {
			t.Run(f.name(), func(t *testing.T) {
				t.Parallel()
				testDatabase(t, s, f)
			})
		}
	})
	t.Run("redis", func(t *testing.T) {
		for _, f := range crashCases(redisSteps(), redisDeployment) {
			t.Run(f.name(), func(t *testing.T) {
				t.Parallel()
				testRedis(t, s, f)
			})
		}
	})
}

// --- apikey (openai) ---------------------------------------------------

const (
	apikeyDeployment = "ai-orchestrator"
	apikeyGSMID      = "aivo-prod-openai-api-key"
	openaiAdminKey   = "sk-admin-E2E-ADMIN-KEY-0001"
	openaiOldKey     = "sk-proj-E2E-ORIGINAL-KEY-0001"
	openaiProject    = "proj_aivo"
	// earlierAccount made the key in use (an earlier rotation).
	earlierAccount = "rotary:openai:prod:R-EARLIER1"
)

func apikeySteps() []string {
	return []string{apikey.StepNewKey, apikey.StepStoreVersion, apikey.StepSync, apikey.StepRestart, apikey.StepVerify, apikey.StepRevoke}
}

// defaultProgressDeadline is a Deployment's default
// spec.progressDeadlineSeconds.
const defaultProgressDeadline = 600

func apikeyRollbackSteps() []string {
	return []string{apikey.StepRestoreVersion, apikey.StepRollbackSync, apikey.StepRollbackRestart, apikey.StepRevokeNewKey}
}

type apikeyWorld struct {
	*world
	openai *apikeytest.OpenAI
}

// newAPIKeyWorld sets up the runbook's OpenAI deployment: the key in
// Secret Manager, synced by ExternalSecret external-services into the
// Secret ai-orchestrator loads, two replicas.
func newAPIKeyWorld(t *testing.T, s *suite, name string, d deploymentSpec) *apikeyWorld {
	t.Helper()
	w := &apikeyWorld{world: newWorld(t, s, name)}
	w.openai = apikeytest.NewOpenAI(apikeytest.OpenAIOptions{AdminKey: openaiAdminKey, ProjectID: openaiProject})
	t.Cleanup(w.openai.Close)
	w.openai.AddServiceAccount(earlierAccount)
	w.gsmSecret(apikeyGSMID, openaiOldKey)
	w.externalSecret("external-services", "external-services", "OPENAI_API_KEY", apikeyGSMID)
	d.name, d.replicas, d.envFrom = apikeyDeployment, 2, []string{"external-services"}
	w.deployment(d)
	w.env["OPENAI_ADMIN_KEY"] = openaiAdminKey
	w.writeConfig(fmt.Sprintf(`  openai:
    kind: apikey
    approvers:
      prod: {users: [%s]}
    provider: openai
    namespace: %s
    secret_manager:
      project: %s
      secret: %s
    external_secret: external-services
    deployments: [%s]
    sync_timeout: 30s
    rollout_timeout: 60s
    openai: {api_base: %q, project_id: %s, admin_key_env: OPENAI_ADMIN_KEY}
`, approver, w.ns, gsmProject, apikeyGSMID, apikeyDeployment, w.openai.URL(), openaiProject))
	return w
}

// testAPIKey: `/rotate openai` from request to revoke, under fault f.
func testAPIKey(t *testing.T, s *suite, f fault) {
	marker := ""
	if f.midRollout != "" {
		marker = markerSlowReady
	}
	w := newAPIKeyWorld(t, s, "apikey-"+f.name(), deploymentSpec{marker: marker})
	w.startRotary(f.afterStep)
	id, rootTS := w.approve("openai")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeSucceeded {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeSucceeded, w.logs.String())
	}

	// Secret Manager: exactly one new version, the provider's newest key;
	// the previous one disabled.
	vs := w.gsmVersions(apikeyGSMID)
	issued := w.openai.IssuedKeys()
	if len(vs) != 2 || vs[0].State != gsmfake.StateDisabled || vs[1].State != gsmfake.StateEnabled {
		t.Fatalf("Secret Manager versions after the rotation: %s; want [DISABLED ENABLED]", versionStates(vs))
	}
	if len(issued) == 0 || string(vs[1].Payload) != issued[len(issued)-1] {
		t.Fatalf("the new version is not the provider's newest key (%d keys issued)", len(issued))
	}
	// The provider: only this request's service account is left.
	if accts := w.openai.ServiceAccounts(); len(accts) != 1 || !strings.HasSuffix(accts[0].Name, id) {
		t.Fatalf("service accounts after the rotation: %+v; want only the one of %s", accts, id)
	}
	// The cluster: the ExternalSecret synced the new key into the Secret,
	// and the deployment rolled once.
	if got := w.secretData("external-services")["OPENAI_API_KEY"]; got != string(vs[1].Payload) {
		t.Fatal("Secret external-services does not hold the new key after the sync")
	}
	w.assertRolled(apikeyDeployment, 1, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertNoLeak(append(issued, openaiOldKey, openaiAdminKey)...)
}

// testAPIKeyFailedRollout: the restarted pods never become ready (kwok
// pod-failure stage), the rollout exceeds its progress deadline and the
// rotation rolls back: the previous value is restored and synced, the
// deployment rolled again (healthy: the test "fixes the app" when the
// rollback's sync arrives), and the new key revoked. Under fault f (a
// rollback step) rotary is SIGKILLed after that rollback step and
// restarted: the rollback resumes from its journal and does each of its
// steps exactly once.
func testAPIKeyFailedRollout(t *testing.T, s *suite, f fault) {
	name := rollbackScenarioName(t, "apikey-bad-rollout", "apikey-rb-", apikeySteps(), f)
	w := newAPIKeyWorld(t, s, name, deploymentSpec{marker: markerFailOnRestart, progressDeadline: 3})
	// Sync 1 was the initial one, 2 the rotation's, 3 the rollback's.
	const rollbackSync = 3
	healed := make(chan struct{})
	w.eso.onBeforeReady(func(ctx context.Context, es string, n int) {
		if n != rollbackSync {
			return
		}
		defer close(healed)
		// The fixed app rolls out normally: no failure stage, and the
		// default progress deadline, so a slow rollback restart on a busy
		// machine is not cut off at 3 s.
		patch := fmt.Sprintf(`[{"op":"remove","path":"/spec/template/metadata/labels/%s"},{"op":"replace","path":"/spec/progressDeadlineSeconds","value":%d}]`,
			strings.ReplaceAll(markerFailOnRestart, "/", "~1"), defaultProgressDeadline)
		if _, err := w.s.cs.AppsV1().Deployments(w.ns).Patch(ctx, apikeyDeployment, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Errorf("healing %s: %v", apikeyDeployment, err)
		}
	})
	w.startRotary(f.afterStep)
	id, rootTS := w.approve("openai")
	if got := w.crashAndResume(f, id, rootTS); got != outcomeRolledBack {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeRolledBack, w.logs.String())
	}
	select {
	case <-healed:
	default:
		t.Fatal("the rollback never force-synced the ExternalSecret")
	}

	// Secret Manager: the original, the rotation's (disabled), and the
	// previous value restored exactly once as the newest enabled version.
	vs := w.gsmVersions(apikeyGSMID)
	issued := w.openai.IssuedKeys()
	if len(vs) != 3 || len(issued) != 1 ||
		string(vs[0].Payload) != openaiOldKey || vs[0].State != gsmfake.StateEnabled ||
		string(vs[1].Payload) != issued[0] || vs[1].State != gsmfake.StateDisabled ||
		string(vs[2].Payload) != openaiOldKey || vs[2].State != gsmfake.StateEnabled {
		t.Fatalf("Secret Manager versions after the rollback: %s, %d provider key(s) issued; want [ENABLED(old) DISABLED(new) ENABLED(old restored once)] and one key",
			versionStates(vs), len(issued))
	}
	// The ExternalSecret: synced once by the rotation and once by the
	// rollback, never again by a resumed step.
	if got := w.secretData("external-services")["OPENAI_API_KEY"]; got != openaiOldKey {
		t.Fatal("Secret external-services does not hold the old key after the rollback")
	}
	if n := w.eso.syncCount("external-services"); n != rollbackSync {
		t.Errorf("ExternalSecret external-services synced %d times; want %d (initial, rotation, rollback)", n, rollbackSync)
	}
	// The provider: the new key revoked, the key in use before kept.
	if accts := w.openai.ServiceAccounts(); len(accts) != 1 || accts[0].Name != earlierAccount {
		t.Fatalf("service accounts after the rollback: %+v; want only %s", accts, earlierAccount)
	}
	// Restarts: the failed one and the rollback's; plus the test's fix.
	w.assertRolled(apikeyDeployment, 2, 1)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()
	w.assertRolledBackOnce(id, apikey.StepRestart, apikeyRollbackSteps())
	w.assertNoLeak(append(issued, openaiOldKey, openaiAdminKey)...)
}

func versionStates(vs []gsmfake.Version) string {
	var b strings.Builder
	b.WriteString("[")
	for i, v := range vs {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(v.State)
	}
	return b.String() + "]"
}
