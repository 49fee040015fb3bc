package redis

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
)

// A full acl-mode rotation against a real Redis: a consumer's open
// connection works after every step, the old password works until the
// remove step, the new one from the moment it is added, and in the end the
// user has only the new password, in Redis and in the persisted file.
func TestRotateACL(t *testing.T) {
	tests := []struct {
		name string
		su   setup
		file string // what persisted the users
	}{
		{"users in redis.conf, persist chosen", setup{mode: ModeACL}, "redis.conf"},
		{"users in an aclfile, persist chosen", setup{mode: ModeACL, aclfile: true}, "users.acl"},
		{"config_rewrite, own admin user", setup{mode: ModeACL, persist: PersistConfigRewrite, adminUser: "rotary"}, "redis.conf"},
		{"acl_save, own admin user", setup{mode: ModeACL, persist: PersistACLSave, aclfile: true, adminUser: "rotary"}, "users.acl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.su)
			app := f.srv.appClient(t, testAppUser, testOld)
			run := f.newRun()
			added := false
			err := f.drive(run, StepPreflight, func(step string) {
				app.check("after " + step)
				if step == StepAddPassword {
					added = true
				}
				gen := f.generated()
				if added && (len(gen) != 1 || !f.srv.logsIn(t, testAppUser, gen[0])) {
					t.Errorf("after %s: the new password does not log in (generated %d)", step, len(gen))
				}
				if step != StepRemoveOld && step != StepPersist && !f.srv.logsIn(t, testAppUser, testOld) {
					t.Errorf("after %s: the old password stopped working before the remove step", step)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			gen := f.generated()
			if len(gen) != 1 {
				t.Fatalf("generated %d passwords, want 1", len(gen))
			}
			newPw := gen[0]
			if got := f.userPasswords(); !slices.Equal(got, []string{hashStr(newPw)}) {
				t.Errorf("user passwords = %d hashes, want only the new one", len(got))
			}
			if f.srv.logsIn(t, testAppUser, testOld) || !f.srv.logsIn(t, testAppUser, newPw) {
				t.Error("after the rotation the old password must be refused and the new one accepted")
			}
			assertSecret(t, f, newPw)
			files := f.srv.files(t)
			if !strings.Contains(files, "user "+testAppUser+" on #"+hashStr(newPw)) {
				t.Errorf("%s does not hold the new password's hash:\n%s", tt.file, files)
			}
			if strings.Contains(files, hashStr(testOld)) || strings.Contains(files, testOld) {
				t.Errorf("a persisted file still holds the old password:\n%s", files)
			}
			assertConsumersOn(t, f, newPw)
		})
	}
}

// A full requirepass rotation: in the end Redis refuses the old password and
// accepts the new one, and redis.conf (and the aclfile, if Redis has one)
// hold the new one only.
func TestRotateRequirepass(t *testing.T) {
	tests := []struct {
		name string
		su   setup
	}{
		{"admin is the default user", setup{mode: ModeRequirepass}},
		{"own admin user", setup{mode: ModeRequirepass, adminUser: "rotary"}},
		{"default user in an aclfile", setup{mode: ModeRequirepass, aclfile: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.su)
			// A connection opened before the change stays logged in: only
			// new connections need the new password.
			app := f.srv.appClient(t, redisDefaultUser, testOld)
			run := f.newRun()
			err := f.drive(run, StepPreflight, func(step string) {
				app.check("after " + step)
				switch step {
				case StepUpdateSecret:
					if !f.srv.logsIn(t, redisDefaultUser, testOld) {
						t.Error("Redis was switched before the set step")
					}
				case StepSetRequirepass:
					// The window the request message warns about.
					if f.srv.logsIn(t, redisDefaultUser, testOld) {
						t.Error("the old password still logs in after CONFIG SET requirepass")
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			gen := f.generated()
			if len(gen) != 1 {
				t.Fatalf("generated %d passwords, want 1", len(gen))
			}
			newPw := gen[0]
			if f.srv.logsIn(t, redisDefaultUser, testOld) || !f.srv.logsIn(t, redisDefaultUser, newPw) {
				t.Error("after the rotation the old password must be refused and the new one accepted")
			}
			assertSecret(t, f, newPw)
			files := f.srv.files(t)
			if !strings.Contains(files, `requirepass "`+newPw+`"`) {
				t.Errorf("redis.conf has no requirepass with the new password:\n%s", files)
			}
			if tt.su.aclfile && !strings.Contains(files, "user default on #"+hashStr(newPw)) {
				t.Errorf("the aclfile does not hold the new password's hash:\n%s", files)
			}
			if strings.Contains(files, testOld) || strings.Contains(files, hashStr(testOld)) {
				t.Errorf("a persisted file still holds the old password:\n%s", files)
			}
			assertConsumersOn(t, f, newPw)
		})
	}
}

// assertSecret checks the Secret holds pw, kept its other keys, and that
// its backup holds the old password.
func assertSecret(t *testing.T, f *fixture, pw string) {
	t.Helper()
	if got := f.cluster.data(testNS, testSecret); got[testKey] != pw || got["REDIS_HOST"] != "redis" || len(got) != 2 {
		t.Errorf("Secret keys = %v (values hidden); want the password and REDIS_HOST unchanged", slices.Sorted(maps.Keys(got)))
	}
	backup := kube.BackupName(testSecret, testReqID)
	if got := f.cluster.value(testNS, backup, testKey); got != testOld {
		t.Errorf("backup %s does not hold the old password", backup)
	}
}

// assertConsumersOn checks every deployment was restarted once and its pods
// started with pw (they log in: the fake's rollout requires it).
func assertConsumersOn(t *testing.T, f *fixture, pw string) {
	t.Helper()
	for _, d := range []string{"ai-orchestrator", "auth-svc"} {
		if f.cluster.podPassword[d] != pw {
			t.Errorf("deployment %s runs with another password", d)
		}
	}
	restarts := 0
	for _, c := range f.cluster.callList() {
		if strings.HasPrefix(c, "restart ") {
			restarts++
		}
	}
	if restarts != 2 {
		t.Errorf("restarts = %d, want 2: %v", restarts, f.cluster.callList())
	}
}

// Preflight refuses, before anything changes, every state in which the
// rotation could not finish or would lock someone out.
func TestPreflightRefuses(t *testing.T) {
	otherHash := hashStr("someone-elses-password")
	tests := []struct {
		name      string
		su        setup
		want      string
		transient bool
	}{
		{"acl: Secret and Redis disagree", setup{mode: ModeACL, secretValue: "not-the-password"}, "the Secret and Redis disagree", false},
		{"acl: no such user", setup{mode: ModeACL, appUserLine: "user someone on >" + testOld}, "Redis has no user app", false},
		{"acl: nopass user", setup{mode: ModeACL, appUserLine: "user app on nopass ~* +@all"}, "has nopass", false},
		{"acl: disabled user", setup{mode: ModeACL, appUserLine: "user app off >" + testOld + " ~* +@all"}, "is disabled", false},
		{"acl: other passwords", setup{mode: ModeACL, appUserLine: "user app on >" + testOld + " #" + otherHash + " ~* +@all"}, "has 1 other password(s) besides", false},
		{"requirepass: default user has other passwords", setup{mode: ModeRequirepass, adminUser: "rotary", conf: []string{"user default on >" + testOld + " #" + otherHash + " ~* &* +@all"}}, "CONFIG SET requirepass would remove", false},
		{"acl: acl_save without aclfile", setup{mode: ModeACL, persist: PersistACLSave}, "no aclfile", false},
		{"acl: config_rewrite with aclfile", setup{mode: ModeACL, persist: PersistConfigRewrite, aclfile: true}, "use persist: acl_save", false},
		{"acl: wrong admin password", setup{mode: ModeACL, creds: fakeCreds{testCredName: "wrong"}}, "refuses the password in credential REDIS_ADMIN_test as user default", false},
		{"acl: admin credential missing", setup{mode: ModeACL, creds: fakeCreds{}}, "credential REDIS_ADMIN_test is not set", false},
		{"requirepass: Secret and Redis disagree", setup{mode: ModeRequirepass, secretValue: "not-the-password"}, "refuses the password in Secret aivo-test/redis-credentials as user default: its password was changed outside", false},
		{"requirepass, own admin: Secret and Redis disagree", setup{mode: ModeRequirepass, adminUser: "rotary", secretValue: "not-the-password"}, "the Secret and Redis disagree", false},
		{"requirepass: no requirepass", setup{mode: ModeRequirepass, noRequirepass: true}, "Redis has no requirepass", false},
		{"Secret lacks the key", setup{mode: ModeACL, yaml: []string{"secret_key: REDIS_PASS"}}, "has no key REDIS_PASS", false},
		{"Redis unreachable", setup{mode: ModeACL, address: "127.0.0.1:1"}, "connecting to Redis at 127.0.0.1:1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.su)
			before := f.srv.files(t)
			run := f.newRun()
			err := f.run(run, StepPreflight)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("preflight = %v, want an error containing %q", err, tt.want)
			}
			if rotators.IsPermanent(err) == tt.transient {
				t.Errorf("permanent = %v, want %v", rotators.IsPermanent(err), !tt.transient)
			}
			if got := f.cluster.secretNames(); len(got) != 1 || f.secretValue() != tt.su.secretValueOr(testOld) {
				t.Errorf("the cluster changed: %v", got)
			}
			if f.srv.files(t) != before || len(run.Facts()) != 0 {
				t.Error("preflight changed Redis's files or recorded facts")
			}
		})
	}
}

func (su setup) secretValueOr(def string) string {
	if su.secretValue != "" {
		return su.secretValue
	}
	return def
}

// Every step run twice in a row (the executor repeats the step in flight)
// has one effect: one password generated, one Secret write, one restart per
// deployment.
func TestStepsIdempotent(t *testing.T) {
	for _, mode := range []string{ModeACL, ModeRequirepass} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, setup{mode: mode})
			run := f.newRun()
			for _, name := range f.forward() {
				f.mustRun(run, name, name)
			}
			assertRotated(t, f)
			if n := len(f.generated()); n != 1 {
				t.Errorf("generated %d passwords, want 1", n)
			}
			if f.cluster.writes != 1 {
				t.Errorf("Secret writes = %d, want 1", f.cluster.writes)
			}
			assertConsumersOn(t, f, f.generated()[0])
		})
	}
}

// assertRotated checks the end state of any finished rotation: exactly one
// password, the Secret's, which is not the old one, in Redis and on disk.
func assertRotated(t *testing.T, f *fixture) {
	t.Helper()
	pw := f.secretValue()
	if pw == testOld || !slices.Contains(f.generated(), pw) {
		t.Fatal("the Secret does not hold a generated password")
	}
	if f.su.mode == ModeACL {
		if got := f.userPasswords(); !slices.Equal(got, []string{hashStr(pw)}) {
			t.Errorf("user has %d passwords, want only the Secret's", len(got))
		}
	}
	if !f.srv.logsIn(t, f.appUser(), pw) {
		t.Error("the Secret's password does not log in")
	}
	for _, other := range append([]string{testOld}, f.generated()...) {
		if other != pw && f.srv.logsIn(t, f.appUser(), other) {
			t.Error("a password other than the Secret's still logs in")
		}
	}
	files := f.srv.files(t)
	if !strings.Contains(files, hashStr(pw)) {
		t.Errorf("the persisted file lacks the new password's hash:\n%s", files)
	}
	for _, other := range append([]string{testOld}, f.generated()...) {
		if other != pw && (strings.Contains(files, hashStr(other)) || strings.Contains(files, other)) {
			t.Errorf("the persisted file holds a password other than the Secret's:\n%s", files)
		}
	}
}

// A crash after any step (or inside it, after its effect) resumes with the
// facts only: the step in flight runs again, a lost new password is made
// again, and the rotation ends with one password. In acl mode the app's open
// connection survives it all.
func TestResumeAfterEachStep(t *testing.T) {
	for _, mode := range []string{ModeACL, ModeRequirepass} {
		names := newPlanNames(mode)
		for k, name := range names {
			t.Run(mode+"/"+name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, setup{mode: mode})
				var app *appClient
				if mode == ModeACL {
					app = f.srv.appClient(t, testAppUser, testOld)
				}
				run := f.newRun()
				f.mustRun(run, names[:k+1]...)
				run = run.Restarted()
				check := func(step string) {
					if app != nil {
						app.check("after " + step)
					}
				}
				if err := f.drive(run, name, check); err != nil {
					t.Fatal(err)
				}
				assertRotated(t, f)
				if n := len(f.generated()); n > 2 {
					t.Errorf("generated %d passwords, want at most 2 (one lost in the crash)", n)
				}
			})
		}
	}
}

// A crash right after an intent fact is recorded, before the change it
// announces: the resumed run makes the change once.
func TestResumeAfterIntent(t *testing.T) {
	tests := []struct {
		mode, step, fact string
	}{
		{ModeACL, StepAddPassword, factPasswordAdded},
		{ModeACL, StepUpdateSecret, factSecretUpdated},
		{ModeACL, StepRemoveOld, factOldRemoved},
		{ModeACL, StepPersist, factPersisted},
		{ModeRequirepass, StepUpdateSecret, factSecretUpdated},
		{ModeRequirepass, StepSetRequirepass, factRequirepassSet},
		{ModeRequirepass, StepPersist, factPersisted},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.fact, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, setup{mode: tt.mode})
			run := f.newRun()
			names := f.forward()
			f.mustRun(run, names[:indexOf(names, tt.step)]...)
			crashAfter(run, tt.fact)
			if err := f.run(run, tt.step); !errors.Is(err, errCrash) {
				t.Fatalf("%s = %v, want the simulated crash", tt.step, err)
			}
			run = run.Restarted()
			if err := f.drive(run, tt.step, nil); err != nil {
				t.Fatal(err)
			}
			assertRotated(t, f)
		})
	}
}

// acl: a restart between add_password and update_secret loses the new
// password after Redis got it. update_secret asks for add_password again,
// which removes the lost password in the same command that adds a new one.
func TestLostPasswordIsReplacedNotLeftBehind(t *testing.T) {
	f := newFixture(t, setup{mode: ModeACL})
	run := f.newRun()
	f.mustRun(run, StepPreflight, StepBackup, StepAddPassword)
	if got := len(f.userPasswords()); got != 2 {
		t.Fatalf("after add_password the user has %d passwords, want 2", got)
	}
	run = run.Restarted()
	err := f.run(run, StepUpdateSecret)
	var lost *rotators.SecretLostError
	if !errors.As(err, &lost) || lost.From != StepAddPassword {
		t.Fatalf("update_secret = %v, want SecretLostError from add_password", err)
	}
	if f.cluster.writes != 0 {
		t.Fatal("update_secret wrote without the password")
	}
	f.mustRun(run, StepAddPassword)
	gen := f.generated()
	want := []string{hashStr(testOld), hashStr(gen[1])}
	if got := f.userPasswords(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("user passwords: the lost one is still there or the new one is missing (%d hashes)", len(got))
	}
	if err := f.drive(run, StepUpdateSecret, nil); err != nil {
		t.Fatal(err)
	}
	assertRotated(t, f)
	if f.secretValue() != gen[1] {
		t.Error("the Secret does not hold the re-made password")
	}
}

// A missing Kubernetes client is a clear, permanent error.
func TestNoClusterIsPermanent(t *testing.T) {
	rot, problems := Build("redis", yamlDecode(aclYAML), rotators.Deps{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	plan := rot.Plan(rotators.Spec{RequestID: testReqID, Target: "redis", Env: "test"})
	for _, s := range plan.Steps {
		err := s.Run(t.Context(), newFakeRun(rotators.Spec{RequestID: testReqID}))
		if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "no Kubernetes client") {
			t.Errorf("%s = %v, want a permanent missing-client error", s.Name, err)
		}
	}
}

// newPlanNames lists a mode's forward steps without a server.
func newPlanNames(mode string) []string {
	src := aclYAML
	if mode == ModeRequirepass {
		src = requirepassYAML
	}
	rot, problems := Build("redis", yamlDecode(src), rotators.Deps{})
	if len(problems) > 0 {
		panic(problems)
	}
	var out []string
	for _, s := range rot.Plan(rotators.Spec{RequestID: testReqID, Env: "test"}).Steps {
		out = append(out, s.Name)
	}
	return out
}
