package encryption

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

func TestRollbackNothingToUndo(t *testing.T) {
	tests := []struct {
		name  string
		steps []string
		// failUpdate makes dual_keys fail before its write lands.
		failUpdate bool
	}{
		{"nothing ran", nil, false},
		{"only the backup", []string{StepBackup}, false},
		{"key made, not written", []string{StepBackup, StepNewKey}, false},
		{"writing both keys failed", []string{StepBackup, StepNewKey, StepDualKeys}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, targetYAML())
			run := newFakeRun(f.spec)
			if tt.failUpdate {
				f.cluster.before = func(op string) error {
					if op == "update" {
						return errors.New("connection refused")
					}
					return nil
				}
			}
			for _, s := range tt.steps {
				_ = f.run(run, s)
			}
			f.cluster.before = nil
			callsBefore := len(f.cluster.callList())
			for _, name := range rollbackSteps() {
				if err := f.run(run, name); !errors.Is(err, rotators.ErrNothingToUndo) {
					t.Errorf("%s: err = %v, want ErrNothingToUndo", name, err)
				}
			}
			for _, c := range f.cluster.callList()[callsBefore:] {
				if !strings.HasPrefix(c, "read ") {
					t.Errorf("a rollback step with nothing to undo acted: %s", c)
				}
			}
			if got := f.cluster.data(testNS, testSec); !maps.Equal(got, original()) {
				t.Error("the Secret changed")
			}
		})
	}
}

// The migration Job fails: rollback puts back exactly the previous data,
// keeps a copy with the new key, and restarts with a later stamp — each once
// even when repeated.
func TestRollbackAfterJobFailure(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual)
	f.cluster.jobFail[testJobName] = "BackoffLimitExceeded: Job has reached the specified backoff limit"
	err := f.run(run, StepMigrate)
	if err == nil || !rotators.IsPermanent(err) {
		t.Fatalf("migrate: err = %v, want a permanent failure", err)
	}
	newKey := f.rand.keys()[0]
	callsBefore := len(f.cluster.callList())

	for _, name := range rollbackSteps() {
		f.mustRun(run, name, name) // twice: one effect
	}
	if got := f.cluster.data(testNS, testSec); !maps.Equal(got, original()) {
		t.Errorf("restored Secret keys = %v, want exactly the original data", slices.Sorted(maps.Keys(got)))
	}
	copyName := "app-encryption-backup-r-abcd2345-newkey"
	if got := f.cluster.data(testNS, copyName); got["NEW_ENCRYPTION_KEY"] != newKey || got["OLD_ENCRYPTION_KEY"] != testOldKey {
		t.Errorf("copy %s keys = %v, want the dual-key data", copyName, slices.Sorted(maps.Keys(got)))
	}
	var mutations []string
	for _, c := range f.cluster.callList()[callsBefore:] {
		if !strings.HasPrefix(c, "read ") {
			mutations = append(mutations, c)
		}
	}
	want := []string{
		"backup aivo-prod/app-encryption R-ABCD2345-newkey",
		"restore aivo-prod/app-encryption from app-encryption-backup-r-abcd2345",
		"restart aivo-prod/ai-orchestrator 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/ai-orchestrator",
		"restart aivo-prod/ai-worker 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/ai-worker",
		// the repeated rollback_restart reuses its stamp: a no-op patch
		"restart aivo-prod/ai-orchestrator 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/ai-orchestrator",
		"restart aivo-prod/ai-worker 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/ai-worker",
	}
	if !slices.Equal(mutations, want) {
		t.Errorf("rollback calls:\n%s\nwant:\n%s", strings.Join(mutations, "\n"), strings.Join(want, "\n"))
	}
	msg := strings.Join(run.ProgressLines(), "\n")
	if !strings.Contains(msg, "Restored Secret aivo-prod/app-encryption from backup aivo-prod/app-encryption-backup-r-abcd2345; the new key") ||
		!strings.Contains(msg, "kept in Secret aivo-prod/"+copyName+" as NEW_ENCRYPTION_KEY") {
		t.Errorf("progress does not say what was restored and where the new key is:\n%s", msg)
	}
	rotatorstest.AssertNoLeak(t, f.secretsToHide(), append(run.Texts(), err.Error())...)
}

// A rollout with both keys fails (e.g. the application does not understand
// them): rollback restores and restarts.
func TestRollbackAfterFailedRestart(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys)
	f.cluster.before = func(op string) error {
		if op == "wait-rollout" {
			return errors.New("deployment exceeded its progress deadline")
		}
		return nil
	}
	if err := f.run(run, StepRestartDual); err == nil {
		t.Fatal("restart passed")
	}
	f.cluster.before = nil
	run.SetNow(testNow) // same second as the forward restart
	f.mustRun(run, rollbackSteps()...)
	if got := f.cluster.data(testNS, testSec); !maps.Equal(got, original()) {
		t.Error("not restored")
	}
	calls := f.cluster.callList()
	if !slices.Contains(calls, "restart aivo-prod/ai-orchestrator 2026-11-26T10:00:01Z") {
		t.Errorf("the rollback restart did not get a later stamp: %v", calls)
	}
}

// Once removing the old key started, the data is encrypted with the new key:
// rollback refuses, and says where the old key is.
func TestRollbackRefusedAfterRemovalStarted(t *testing.T) {
	for _, failOn := range []string{StepRemoveOldKey, StepRestartFinal} {
		t.Run(failOn, func(t *testing.T) {
			f := newFixture(t, targetYAML())
			run := newFakeRun(f.spec)
			f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual, StepMigrate, StepVerify)
			op := "update"
			if failOn == StepRestartFinal {
				f.mustRun(run, StepRemoveOldKey)
				op = "wait-rollout"
			}
			f.cluster.before = func(o string) error {
				if o == op {
					return errors.New("injected")
				}
				return nil
			}
			if err := f.run(run, failOn); err == nil {
				t.Fatal("step passed")
			}
			f.cluster.before = nil
			if run.Fact(factRemoveStarted) == "" {
				t.Fatal("removal not recorded as started")
			}
			before := f.cluster.data(testNS, testSec)
			calls := len(f.cluster.callList())
			for _, name := range rollbackSteps() {
				err := f.run(run, name)
				if err == nil || errors.Is(err, rotators.ErrNothingToUndo) || !rotators.IsPermanent(err) {
					t.Errorf("%s: err = %v, want a permanent refusal", name, err)
				}
			}
			err := f.run(run, StepRestoreSecret)
			if !strings.Contains(err.Error(), "the old key is in backup Secret aivo-prod/app-encryption-backup-r-abcd2345 (as ENCRYPTION_KEY)") {
				t.Errorf("refusal does not say where the old key is: %v", err)
			}
			if len(f.cluster.callList()) != calls || !maps.Equal(f.cluster.data(testNS, testSec), before) {
				t.Error("a refused rollback step acted")
			}
		})
	}
}

// A crash after the restore landed but before it was recorded as done:
// the repeat sees the data restored and still restarts.
func TestRollbackRepeatedAfterRestoreLanded(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual)
	f.cluster.after = func(op string) error {
		if op == "restore" {
			return errors.New("response lost")
		}
		return nil
	}
	if err := f.run(run, StepRestoreSecret); err == nil {
		t.Fatal("want the injected failure")
	}
	f.cluster.after = nil
	run = run.Restarted()
	run.SetNow(testNow.Add(time.Minute))
	f.mustRun(run, rollbackSteps()...)
	if !maps.Equal(f.cluster.data(testNS, testSec), original()) || run.Fact(factRollbackRestartAt) == "" {
		t.Error("not restored and restarted")
	}
}
