package database

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Runs every path that handles a password — creation, a lost password, a
// wrong one, a failed check, a failed add, a failed verification, the whole
// rollback, a refused and a successful retirement — and scans everything
// made visible (errors, progress lines, prompts, facts, the log) for every
// password, every DSN and the admin credential.
func TestNoSecretInErrorsProgressFactsOrLogs(t *testing.T) {
	t.Parallel()
	f := newPGFixture(t, fixtureOpts{nasty: true})
	var errs []string
	try := func(r *fakeRun, name string) error {
		err := f.run(r, name)
		if err != nil {
			errs = append(errs, err.Error())
		}
		return err
	}

	// Request 1: lost and wrong passwords, failures, then a rollback.
	run := f.newRun()
	try(run, StepNewRole)
	run = run.Restarted() // the password is lost
	try(run, StepCheckRole)
	try(run, StepNewRole)
	wrong := "wrong-password-" + f.prefix
	good, _ := run.Secret(secretPassword)
	run.KeepSecret(secretPassword, secret.FromString(wrong))
	if try(run, StepCheckRole) == nil {
		t.Fatal("check_role passed with a wrong password")
	}
	run.KeepSecret(secretPassword, good)
	f.exec(f.n.db, "REVOKE ALL ON "+ident(f.n.schema)+".items FROM "+ident(run.Fact(factNewRole)))
	if try(run, StepCheckRole) == nil {
		t.Fatal("check_role passed without SELECT on check_table")
	}
	try(run, StepNewRole) // grants again
	f.store.failAdd, f.store.addThenFail = errors.New("fake: deadline exceeded"), true
	try(run, StepStoreVersion)
	f.store.failAdd = nil
	for _, s := range []string{StepCheckRole, StepStoreVersion, StepSync, StepRestart} {
		try(run, s)
	}
	straggler, err := f.connectDSN(f.oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	if try(run, StepVerify) == nil {
		t.Fatal("verify passed with an old-role session after the restart")
	}
	f.closeConn(straggler)
	run.SetNow(f.now.Add(5 * time.Second))
	for _, s := range []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepDropNewRole} {
		try(run, s)
	}

	// Request 2: a full rotation with a refused retirement.
	spec := f.spec
	spec.RequestID = "R-LEAK2"
	f.plan = f.rot.Plan(spec)
	run2 := newFakeRun(spec, f.now.Add(time.Minute))
	run2.Answer = press
	for _, s := range []string{StepNewRole, StepCheckRole, StepStoreVersion, StepSync, StepRestart, StepVerify} {
		try(run2, s)
	}
	held, err := f.connectDSN(f.oldDSN)
	if err != nil {
		t.Fatal(err)
	}
	f.inUse(held)
	presses := 0
	run2.Answer = func(ctx context.Context, p rotators.Prompt) (secret.Value, error) {
		presses++
		if presses == 2 {
			f.closeConn(held)
		}
		if presses > 2 {
			return blockUntilDone(ctx, p)
		}
		return secret.Value{}, nil
	}
	if try(run2, StepRetireOld) != nil || f.roleExists(f.n.old) {
		t.Fatal("the second rotation did not finish")
	}

	if len(errs) < 5 {
		t.Fatalf("the scenario produced too few errors to be meaningful: %q", errs)
	}
	secrets := []string{f.n.oldPassword, wrong, "rotary-test-admin", f.adminURL}
	for _, v := range f.store.all() {
		secrets = append(secrets, string(v.Reveal()), dsnPassword(t, v), url.QueryEscape(dsnPassword(t, v)))
	}
	if len(f.store.all()) < 5 {
		t.Fatalf("only %d versions were stored; the scenario did not run", len(f.store.all()))
	}
	texts := append(append(errs, run.Texts()...), run2.Texts()...)
	assertNoLeak(t, secrets, texts...)
}
