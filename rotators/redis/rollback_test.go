package redis

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators"
)

// A failure after any forward step rolls back to the old password
// everywhere: the Secret's data exactly as before, Redis accepting only the
// old password (in memory and on disk), the consumers restarted onto it.
// Every rollback step is also run a second time after a restart, as the
// executor does after a crash. In acl mode the app's open connection works
// throughout.
func TestRollbackAfterEachStep(t *testing.T) {
	for _, mode := range []string{ModeACL, ModeRequirepass} {
		names := newPlanNames(mode)
		for k, name := range names {
			t.Run(mode+"/after "+name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, setup{mode: mode})
				var app *appClient
				if mode == ModeACL {
					app = f.srv.appClient(t, testAppUser, testOld)
				}
				check := func(when string) {
					if app != nil {
						app.check(when)
					}
				}
				original := f.cluster.data(testNS, testSecret)
				run := f.newRun()
				for _, n := range names[:k+1] {
					f.mustRun(run, n)
					check("after " + n)
				}
				secretTouched := run.Fact(factSecretUpdated) != ""
				writesBefore := f.cluster.writes

				undone := 0
				for _, n := range f.rollback() {
					err := f.run(run, n)
					switch {
					case err == nil:
						undone++
					case errors.Is(err, rotators.ErrNothingToUndo):
					default:
						t.Fatalf("rollback step %s: %v", n, err)
					}
					check("after " + n)
					run = run.Restarted()
					if err := f.run(run, n); err != nil && !errors.Is(err, rotators.ErrNothingToUndo) {
						t.Fatalf("rollback step %s, repeated after a restart: %v", n, err)
					}
					check("after " + n + " again")
				}

				changedSomething := k >= indexOf(names, StepUpdateSecret) || (mode == ModeACL && k >= indexOf(names, StepAddPassword))
				if changedSomething != (undone > 0) {
					t.Errorf("undone %d steps; something was changed: %v", undone, changedSomething)
				}
				if got := f.cluster.data(testNS, testSecret); !maps.Equal(got, original) {
					t.Error("the Secret's data is not back to what it was")
				}
				if secretTouched && f.cluster.writes != writesBefore+1 {
					t.Errorf("Secret writes during rollback = %d, want 1 (the restore)", f.cluster.writes-writesBefore)
				}
				if !f.srv.logsIn(t, f.appUser(), testOld) {
					t.Error("the old password does not log in after the rollback")
				}
				for _, pw := range f.generated() {
					if f.srv.logsIn(t, f.appUser(), pw) {
						t.Error("a new password still logs in after the rollback")
					}
				}
				if mode == ModeACL {
					if got := f.userPasswords(); !slices.Equal(got, []string{hashStr(testOld)}) {
						t.Errorf("user has %d passwords, want only the old one", len(got))
					}
				}
				files := f.srv.files(t)
				if !strings.Contains(files, testOld) && !strings.Contains(files, hashStr(testOld)) {
					t.Errorf("the persisted files lost the old password:\n%s", files)
				}
				for _, pw := range f.generated() {
					if strings.Contains(files, pw) || strings.Contains(files, hashStr(pw)) {
						t.Errorf("the persisted files still hold a new password:\n%s", files)
					}
				}
				if secretTouched {
					for _, d := range []string{"ai-orchestrator", "auth-svc"} {
						if f.cluster.podPassword[d] != testOld {
							t.Errorf("deployment %s was not restarted onto the old password", d)
						}
					}
				}
			})
		}
	}
}

// acl: rollback after the old password was removed makes it valid again
// BEFORE the Secret is restored, so consumers restarting in between log in.
func TestRollbackReaddsOldPasswordFirst(t *testing.T) {
	f := newFixture(t, setup{mode: ModeACL})
	run := f.newRun()
	f.mustRun(run, newPlanNames(ModeACL)[:indexOf(newPlanNames(ModeACL), StepRemoveOld)+1]...)
	if f.srv.logsIn(t, testAppUser, testOld) {
		t.Fatal("the old password still works after remove_old_password")
	}
	f.mustRun(run, StepRestoreOldPassword)
	if !f.srv.logsIn(t, testAppUser, testOld) || !f.srv.logsIn(t, testAppUser, f.generated()[0]) {
		t.Error("after restore_old_password both passwords must log in")
	}
	if f.secretValue() == testOld {
		t.Error("the Secret was restored before the old password worked again")
	}
}
