package encryption

import (
	"errors"
	"testing"

	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

// Runs every path that handles a key — generation, a lost key (before and
// after it was written), a failed Job, the whole rollback, a refused
// rollback, a completed rotation — and scans everything made visible
// (errors, progress lines, facts, the log output) for the new keys, the old
// key and the other value in the Secret.
func TestNoKeyInLogsProgressFactsOrErrors(t *testing.T) {
	var errs []string
	try := func(f *fixture, r *fakeRun, name string) {
		if err := f.run(r, name); err != nil {
			errs = append(errs, err.Error())
		}
	}

	// A lost key, a write whose answer was lost, a failed Job, rollback.
	f1 := newFixture(t, targetYAML())
	run1 := newFakeRun(f1.spec)
	try(f1, run1, StepBackup)
	try(f1, run1, StepNewKey)
	run1 = run1.Restarted()
	try(f1, run1, StepDualKeys) // lost
	try(f1, run1, StepNewKey)
	f1.cluster.after = func(op string) error {
		if op == "update" {
			return errors.New("response lost")
		}
		return nil
	}
	try(f1, run1, StepDualKeys)
	f1.cluster.after = nil
	run1 = run1.Restarted()
	try(f1, run1, StepDualKeys) // read back from the Secret
	try(f1, run1, StepRestartDual)
	f1.cluster.jobFail[testJobName] = "BackoffLimitExceeded"
	try(f1, run1, StepMigrate)
	for _, name := range rollbackSteps() {
		try(f1, run1, name)
	}

	// A refused rollback after the old key's removal started, and a Secret
	// someone changed.
	f2 := newFixture(t, targetYAML("verification_job: |\n"+indent(verifyJob)))
	run2 := newFakeRun(f2.spec)
	for _, name := range forward() {
		try(f2, run2, name)
	}
	for _, name := range rollbackSteps() {
		try(f2, run2, name)
	}
	f2.cluster.seed(testNS, testSec, map[string]string{"OLD_ENCRYPTION_KEY": testOther, "NEW_ENCRYPTION_KEY": testOldKey})
	run2.DeleteFact(factRemoveStarted)
	try(f2, run2, StepRemoveOldKey)
	f2.cluster.seed(testNS, testSec, map[string]string{"ENCRYPTION_KEY": testOldKey, "OLD_ENCRYPTION_KEY": testOther})
	try(f2, newFakeRun(f2.spec), StepBackup)

	if len(errs) < 6 {
		t.Fatalf("the scenario produced too few errors to be meaningful: %q", errs)
	}
	if len(f1.rand.keys()) != 2 || len(f2.rand.keys()) != 1 {
		t.Fatalf("keys made: %d and %d; the lost-key path did not run", len(f1.rand.keys()), len(f2.rand.keys()))
	}
	secrets := append(f1.secretsToHide(), f2.secretsToHide()...)
	texts := append(append(errs, run1.Texts()...), run2.Texts()...)
	rotatorstest.AssertNoLeak(t, secrets, texts...)
}
