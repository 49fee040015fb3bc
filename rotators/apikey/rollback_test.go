package apikey

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
)

func rollbackSteps() []string {
	return []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepRevokeNewKey}
}

func TestRollbackNothingToUndo(t *testing.T) {
	tests := []struct {
		name  string
		facts map[string]string
	}{
		{"nothing ran", nil},
		{"key creation never started", map[string]string{}},
		{"no previous version", map[string]string{factPrevVersion: noVersion}},
	}
	for _, p := range allProviders() {
		for _, tt := range tests {
			t.Run(p+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, p)
				run := f.newRun()
				for k, v := range tt.facts {
					run.SetFact(k, v)
				}
				for _, name := range rollbackSteps() {
					if err := f.run(run, name); !errors.Is(err, rotators.ErrNothingToUndo) {
						t.Errorf("%s: err = %v, want ErrNothingToUndo", name, err)
					}
				}
				if f.store.adds != 0 || len(f.cluster.callList()) != 0 || f.deletes() != 0 {
					t.Error("a rollback step with nothing to undo acted")
				}
			})
		}
	}
}

// Verify fails after everything was switched: rollback puts the previous
// value back, re-syncs, restarts and revokes the new key — each once.
func TestRollbackAfterFailedVerify(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.mustRun(run, StepNewKey, StepStoreVersion, StepSync, StepRestart)
			f.cluster.scans["ai-orchestrator"] = kube.LogScan{Pods: 1, Lines: 10, Matches: map[string]int{"ai-orchestrator-x": 2}}
			if err := f.run(run, StepVerify); err == nil {
				t.Fatal("verify passed")
			}
			syncsBefore := len(f.cluster.callList())
			run.SetNow(testNow.Add(5 * time.Minute)) // rollback runs later
			at := run.Now().Unix()

			for _, name := range rollbackSteps() {
				f.mustRun(run, name, name) // twice: one effect
			}
			base := f.store.secretName + "/versions/"
			if got := f.store.enabledSet(); !slices.Equal(got, []string{base + "1", base + "3"}) {
				t.Errorf("enabled = %v, want the previous and the restored version", got)
			}
			if f.store.value(base+"3") != testOldValue || f.store.adds != 2 {
				t.Errorf("restored value wrong or added %d times", f.store.adds)
			}
			calls := f.cluster.callList()[syncsBefore:]
			want := []string{
				fmt.Sprintf("force-sync aivo-prod/external-services %d", at),
				fmt.Sprintf("wait-sync aivo-prod/external-services %d", at),
				fmt.Sprintf("force-sync aivo-prod/external-services %d", at),
				fmt.Sprintf("wait-sync aivo-prod/external-services %d", at),
				"restart aivo-prod/ai-orchestrator 2026-11-26T10:05:00Z",
				"wait-rollout aivo-prod/ai-orchestrator",
				"restart aivo-prod/ai-worker 2026-11-26T10:05:00Z",
				"wait-rollout aivo-prod/ai-worker",
				"restart aivo-prod/ai-orchestrator 2026-11-26T10:05:00Z",
				"wait-rollout aivo-prod/ai-orchestrator",
				"restart aivo-prod/ai-worker 2026-11-26T10:05:00Z",
				"wait-rollout aivo-prod/ai-worker",
			}
			if !slices.Equal(calls, want) {
				t.Errorf("rollback cluster calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
			}
			if p == ProviderManual {
				if last := run.ProgressLines()[len(run.ProgressLines())-1]; !strings.Contains(last, "delete it by hand") || !strings.Contains(last, "dashboard.stripe.com") {
					t.Errorf("progress = %q", last)
				}
				return
			}
			if got := f.keyNames(); len(got) != 0 {
				t.Errorf("keys left = %v", got)
			}
			if f.deletes() != 1 {
				t.Errorf("deletes = %d, want 1", f.deletes())
			}
		})
	}
}

// Once revoke started, the old key may be gone: rollback must neither put
// it back nor delete the new key.
func TestRollbackRefusedAfterRevokeStarted(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.mustRun(run, StepNewKey, StepStoreVersion, StepSync, StepRestart, StepVerify)
			// revoke fails after recording its intent
			f.store.failDisable = errors.New("unavailable")
			if p == ProviderManual {
				run.Answer = nil // nobody confirms
			}
			if err := f.run(run, StepRevoke); err == nil {
				t.Fatal("revoke passed")
			}
			if run.Fact(factRevokeStarted) == "" {
				t.Fatal("revoke_started not recorded")
			}
			adds, deletes := f.store.adds, f.deletes()
			for _, name := range []string{StepRestoreVersion, StepRevokeNewKey} {
				err := f.run(run, name)
				if err == nil || errors.Is(err, rotators.ErrNothingToUndo) || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "finish revoking the old key by hand") {
					t.Errorf("%s: err = %v, want a permanent refusal", name, err)
				}
			}
			if f.store.adds != adds || f.deletes() != deletes {
				t.Error("a refused rollback step acted")
			}
		})
	}
}

// A revoke that fails while still reading (here: listing keys) has revoked
// nothing, so rollback may still restore the old key.
func TestRevokeFailingBeforeActingAllowsRollback(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.mustRun(run, StepNewKey, StepStoreVersion, StepSync, StepRestart, StepVerify)
			f.failNext(1, 500)
			if err := f.run(run, StepRevoke); err == nil {
				t.Fatal("revoke passed")
			}
			if run.Fact(factRevokeStarted) != "" {
				t.Fatal("revoke_started recorded before anything was revoked")
			}
			f.mustRun(run, rollbackSteps()...)
			if got := f.keyNames(); len(got) != 0 {
				t.Errorf("keys = %v, want the new key revoked", got)
			}
		})
	}
}

// If the previous value could not be restored, the new key is what Secret
// Manager serves: revoke_new_key refuses to delete it.
func TestRevokeNewKeyRefusedWhileServed(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.mustRun(run, StepNewKey, StepStoreVersion)
			err := f.run(run, StepRevokeNewKey)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "may hold it") {
				t.Fatalf("err = %v, want a permanent refusal", err)
			}
			if p != ProviderManual && len(f.keyNames()) != 1 {
				t.Error("the served key was deleted")
			}
		})
	}
}

// new_key failed after the provider made the key (the answer was lost):
// rollback finds it by name and deletes it; if none was made, nothing to undo.
func TestRevokeNewKeyAfterFailedCreate(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.failNext(1, 500) // the listing before the create
			if err := f.run(run, StepNewKey); err == nil {
				t.Fatal("new_key passed")
			}
			if run.Fact(factNewKeyName) == "" {
				t.Fatal("intent not recorded")
			}
			if err := f.run(run, StepRevokeNewKey); !errors.Is(err, rotators.ErrNothingToUndo) {
				t.Errorf("no key made: err = %v, want ErrNothingToUndo", err)
			}
			f.seedKey("rotary:ai:prod:R0042") // as if the create landed
			f.seedKey("rotary:ai:prod:R0001")
			f.mustRun(run, StepRevokeNewKey)
			if got := f.keyNames(); !slices.Equal(got, []string{"rotary:ai:prod:R0001"}) {
				t.Errorf("keys = %v", got)
			}
		})
	}
}

// An add whose answer was lost left no new_version fact; restore still sees
// that the latest version is not the previous one and restores it.
func TestRestoreAfterLostAdd(t *testing.T) {
	f := newFixture(t, ProviderOpenAI)
	run := f.newRun()
	f.mustRun(run, StepNewKey)
	f.store.failAdd, f.store.addThenFail = errors.New("deadline exceeded"), true
	if err := f.run(run, StepStoreVersion); err == nil {
		t.Fatal("want the injected failure")
	}
	f.store.failAdd = nil
	f.mustRun(run, StepRestoreVersion)
	base := f.store.secretName + "/versions/"
	if got := f.store.enabledSet(); !slices.Equal(got, []string{base + "1", base + "3"}) || f.store.value(base+"3") != testOldValue {
		t.Errorf("enabled = %v", got)
	}
	f.mustRun(run, StepRevokeNewKey)
	if len(f.keyNames()) != 0 {
		t.Error("the new key was not revoked")
	}
}
