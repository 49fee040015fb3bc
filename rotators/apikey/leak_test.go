package apikey

import (
	"testing"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

// Runs every path that handles a key — creation, a lost value, provider
// faults, a failed verification, the whole rollback — and scans everything
// made visible (errors, progress lines, prompts, facts, the log output) for
// the new keys, the old value and the admin key.
func TestNoSecretInLogsProgressFactsOrErrors(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			var errs []string
			try := func(r *fakeRun, name string) {
				if err := f.run(r, name); err != nil {
					errs = append(errs, err.Error())
				}
			}

			f.failNext(1, 500)
			try(run, StepNewKey)
			try(run, StepNewKey)
			run = run.Restarted() // the value is lost
			try(run, StepStoreVersion)
			try(run, StepNewKey)
			try(run, StepStoreVersion)
			try(run, StepSync)
			try(run, StepRestart)
			f.cluster.scans["ai-worker"] = kube.LogScan{Pods: 1, Lines: 3, Matches: map[string]int{"ai-worker-1": 1}}
			try(run, StepVerify)
			for _, name := range rollbackSteps() {
				try(run, name)
			}

			// And a successful rotation with revocation, on a fresh request.
			f2 := newFixture(t, p)
			run2 := f2.newRun()
			for _, name := range forward() {
				try(run2, name)
			}

			if len(errs) < 2 {
				t.Fatalf("the scenario produced too few errors to be meaningful: %q", errs)
			}
			secrets := append(append(f.issued(), f2.issued()...), testAdminKey, testOldValue)
			texts := append(append(errs, run.Texts()...), run2.Texts()...)
			rotatorstest.AssertNoLeak(t, secrets, texts...)
			if p != ProviderManual && len(f.issued()) < 2 {
				t.Errorf("issued %d keys; the lost-value path did not run", len(f.issued()))
			}
		})
	}
}
