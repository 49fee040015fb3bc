package redis

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators/rotatorstest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Runs every path that handles a password — a whole rotation with a crash
// and a lost password, failed preflights, a rollback after the old password
// was removed — in both modes, and scans everything made visible (errors,
// progress lines, facts, the log output) for the old, the admin and every
// generated password, and for their SHA-256 hashes.
func TestNoPasswordOrHashInLogsProgressFactsOrErrors(t *testing.T) {
	for _, mode := range []string{ModeACL, ModeRequirepass} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var errs, texts, secrets []string
			try := func(f *fixture, run *fakeRun, name string) {
				if err := f.run(run, name); err != nil {
					errs = append(errs, err.Error())
				}
			}
			collect := func(f *fixture, runs ...*fakeRun) {
				for _, r := range runs {
					texts = append(texts, r.Texts()...)
				}
				secrets = append(secrets, f.generated()...)
			}

			// A rotation with a restart after every step (acl: the lost
			// password path too).
			f := newFixture(t, setup{mode: mode})
			run := f.newRun()
			for _, name := range f.forward() {
				try(f, run, name)
				run = run.Restarted()
				try(f, run, name)
			}
			collect(f, run)

			// Failed preflights: wrong Secret, wrong admin credential.
			f2 := newFixture(t, setup{mode: mode, secretValue: "wrong-" + testOld})
			run2 := f2.newRun()
			try(f2, run2, StepPreflight)
			collect(f2, run2)
			secrets = append(secrets, "wrong-"+testOld)
			if mode == ModeACL {
				f3 := newFixture(t, setup{mode: mode, creds: fakeCreds{testCredName: "wrong-" + testAdmin}})
				run3 := f3.newRun()
				try(f3, run3, StepPreflight)
				collect(f3, run3)
				secrets = append(secrets, "wrong-"+testAdmin)
			}

			// A rollback from the last step, and steps run out of order.
			f4 := newFixture(t, setup{mode: mode})
			run4 := f4.newRun()
			for _, name := range f4.forward() {
				try(f4, run4, name)
			}
			for _, name := range f4.rollback() {
				try(f4, run4, name)
			}
			try(f4, run4.Restarted(), failingStepAfterRollback(mode))
			collect(f4, run4)

			if len(errs) < 2 {
				t.Fatalf("the scenario produced too few errors to be meaningful: %q", errs)
			}
			secrets = append(secrets, testOld, testAdmin)
			for _, s := range append([]string(nil), secrets...) {
				secrets = append(secrets, hashStr(s))
			}
			rotatorstest.AssertNoLeak(t, secrets, append(errs, texts...)...)
		})
	}
}

// failingStepAfterRollback names a step that fails after a rollback
// (the Secret holds the old password again).
func failingStepAfterRollback(mode string) string {
	if mode == ModeRequirepass {
		return StepSetRequirepass
	}
	return StepVerify
}

// Redis echoes ACL SETUSER rules in its errors ("Error in ACL SETUSER
// modifier '!<hash>'"): the error a step returns has the hash scrubbed.
func TestRedisErrorsAreScrubbed(t *testing.T) {
	f := newFixture(t, setup{mode: ModeACL})
	x := f.rot.expand(f.spec)
	s, err := x.open(f.newRun())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx := testCtx(t)
	if _, err := s.connectAdmin(ctx); err != nil {
		t.Fatal(err)
	}
	unknown := secret.FromString("never-added-password")
	s.sc.add(unknown)
	// Removing a password the user does not have is an error that echoes it.
	err = s.setUser(ctx, testAppUser, "!"+hashOf(unknown))
	if err == nil {
		t.Fatal("removing an unknown password succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, hashOf(unknown)) || !strings.Contains(msg, secret.Redacted) || !strings.Contains(msg, "ACL SETUSER app") {
		t.Errorf("error = %q: want the hash replaced by %s", msg, secret.Redacted)
	}
	// A raw rule (as if a bug put a plaintext in one) is scrubbed too.
	err = s.setUser(ctx, testAppUser, "!"+testAdmin)
	if err == nil || strings.Contains(err.Error(), testAdmin) {
		t.Errorf("error = %v: the admin password must be scrubbed", err)
	}
	// A timeout stays recognisable without exposing the raw error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = s.setUser(cctx, testAppUser, "#"+hashOf(unknown))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call = %v", err)
	}
}
