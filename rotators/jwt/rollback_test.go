package jwt

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

type runType = rotatorstest.Run

// Rollback puts back exactly what the backup holds, whether it runs as
// `/rotate rollback` after the rotation (and after the follow-up), or
// automatically after a failed step; what never happened is not undone.
func TestRollbackRestoresTheBackup(t *testing.T) {
	tests := []struct {
		name string
		// forward runs steps of the rotation; manual runs the rollback as
		// its own request, else on the rotation's own run.
		forward  func(f *fixture) []string
		followUp bool
		manual   bool
		// nothingToUndo lists rollback steps that must find nothing to do.
		nothingToUndo []string
		restarted     bool
	}{
		{name: "rollback request after the rotation", forward: (*fixture).forward, manual: true, restarted: true},
		{name: "rollback request after the follow-up", forward: (*fixture).forward, followUp: true, manual: true, restarted: true},
		{
			name:    "automatic, the restart failed",
			forward: func(f *fixture) []string { return slicesWithout(f.forward(), StepRestart, StepVerify, StepWaitTokens) },
			// restart_at is recorded only by the restart step: the pods
			// never loaded the new keys.
			nothingToUndo: []string{StepRollbackRestart},
		},
		{
			name:          "automatic, generating failed",
			forward:       func(*fixture) []string { return []string{StepBackup} },
			nothingToUndo: []string{StepRestore, StepRollbackSync, StepRollbackRestart, StepRollbackVerify},
		},
	}
	for _, backend := range backends {
		for _, tt := range tests {
			t.Run(backend+"/"+tt.name, func(t *testing.T) {
				w := newWorld(t, backend)
				f := w.rotation(t, testReqID, false)
				run := f.newRun()
				oldTok := sign(t, w.oldKey, testOldKID)
				f.mustRun(t, run, tt.forward(f)...)
				if tt.followUp {
					run.SetNow(run.Now().Add(DefaultGracePeriod))
					f.mustRun(t, run, f.followUp()...)
				}
				gen := w.generation(t)
				plan, rr := f.plan, run
				if tt.manual {
					plan, rr = f.rollbackRequest(t, run)
				}
				// Later than the forward stamps, as any rollback is.
				rr.SetNow(rr.Now().Add(time.Minute))
				for _, s := range plan.Rollback {
					err := s.Run(ctxTimeout(t), rr)
					want := slices.Contains(tt.nothingToUndo, s.Name)
					if want != errors.Is(err, rotators.ErrNothingToUndo) || (!want && err != nil) {
						t.Errorf("rollback step %s: err = %v, want nothing to undo: %v", s.Name, err, want)
					}
				}
				if got := w.keysData(t); !maps.Equal(got, w.original) {
					t.Errorf("after rollback the Secret holds keys %v, want exactly the original data", keysOf(got))
				}
				if backend == BackendSecretManager {
					if got := w.latestKeys(t); !maps.Equal(got, w.original) {
						t.Errorf("after rollback the latest version holds %v, want the original keys", keysOf(got))
					}
				}
				if err := w.verify(t, oldTok); err != nil {
					t.Errorf("after rollback the old key's token does not verify: %v", err)
				}
				if restarted := w.generation(t) == gen+1; restarted != tt.restarted {
					t.Errorf("restarted by the rollback: %v, want %v", restarted, tt.restarted)
				}
			})
		}
	}
}

// An emergency rotation's automatic rollback does not put the compromised
// key back; an approved `/rotate rollback` does.
func TestEmergencyRollback(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, backend)
			f := w.rotation(t, testReqID, true)
			run := f.newRun()
			f.mustRun(t, run, f.forward()...)
			rotated := w.keysData(t)

			err := f.run(t, run, StepRestore)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "not restoring the compromised key automatically") || !strings.Contains(err.Error(), "/rotate rollback "+testReqID) {
				t.Fatalf("automatic restore: err = %v", err)
			}
			if !maps.Equal(w.keysData(t), rotated) || run.Fact(factRestoreStarted) != "" {
				t.Fatal("the automatic rollback touched the keys")
			}

			plan, rr := f.rollbackRequest(t, run)
			rr.SetNow(rr.Now().Add(time.Minute))
			for _, s := range plan.Rollback {
				if err := s.Run(ctxTimeout(t), rr); err != nil {
					t.Fatalf("rollback request step %s: %v", s.Name, err)
				}
			}
			if got := w.keysData(t); !maps.Equal(got, w.original) {
				t.Errorf("after the rollback request the Secret holds %v, want the original data", keysOf(got))
			}
		})
	}
}

// `/rotate rollback` of a rotation that a later one superseded refuses:
// it would throw the later rotation's keys away.
func TestRollbackRefusesSupersededRotation(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, backend)
			first := w.rotation(t, testReqID, false)
			run := first.newRun()
			first.mustRun(t, run, first.forward()...)
			second := w.rotation(t, "R-JWT0002", false)
			r2 := second.newRun()
			r2.SetNow(run.Now().Add(time.Hour))
			second.mustRun(t, r2, second.forward()...)
			keys := w.keysData(t)

			plan, rr := first.rollbackRequest(t, run)
			rr.SetNow(r2.Now().Add(time.Hour))
			err := findStep(t, plan, StepRestore).Run(ctxTimeout(t), rr)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "which a later rotation wrote") || !strings.Contains(err.Error(), r2.Fact(factNewKID)) {
				t.Fatalf("restore err = %v, want a refusal naming the later kid", err)
			}
			if !maps.Equal(w.keysData(t), keys) || rr.Fact(factRestoreStarted) != "" {
				t.Error("the refused rollback touched the keys")
			}
		})
	}
}

func TestCanRevert(t *testing.T) {
	tests := []struct {
		name    string
		backend string
		facts   map[string]string
		want    string
	}{
		{name: "backed up and changed", backend: BackendKubernetes, facts: map[string]string{factBackup: "jwt-keys-backup-r1", factUpdateStarted: "true"}},
		{name: "version recorded and changed", backend: BackendSecretManager, facts: map[string]string{factPrevVersion: testGSMSecret + "/versions/1", factUpdateStarted: "true"}},
		{name: "no backup", backend: BackendKubernetes, facts: map[string]string{factUpdateStarted: "true"}, want: "no backup (a backup Secret)"},
		{name: "kubernetes fact on secret_manager", backend: BackendSecretManager, facts: map[string]string{factBackup: "x", factUpdateStarted: "true"}, want: "no backup (the Secret Manager version in use before)"},
		{name: "never changed", backend: BackendKubernetes, facts: map[string]string{factBackup: "jwt-keys-backup-r1"}, want: "never changed the keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &world{backend: tt.backend}
			var cfg Config
			if err := yamlDecode(w.targetYAML())(&cfg); err != nil {
				t.Fatal(err)
			}
			rot, problems := New("jwt", cfg, Clients{})
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			err := rot.CanRevert(tt.facts)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CanRevert = %v, want %q", err, tt.want)
			}
		})
	}
}

func slicesWithout(s []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(v string) bool { return slices.Contains(drop, v) })
}

func keysOf(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
