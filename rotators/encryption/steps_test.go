package encryption

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
)

const testJobName = "reencrypt-r-abcd2345"

func TestPlanStepsTitlesAndNotes(t *testing.T) {
	f := newFixture(t, targetYAML("verification_job: |\n"+indent(verifyJob)))
	var got []string
	for _, s := range f.plan.Steps {
		got = append(got, s.Name+" | "+s.Title)
	}
	want := []string{
		"backup | Back up Secret aivo-prod/app-encryption",
		"new_key | Generate a new 256-bit key",
		"dual_keys | Put OLD_ENCRYPTION_KEY (current key) and NEW_ENCRYPTION_KEY (new key) in Secret aivo-prod/app-encryption",
		"restart_dual | Rolling restart ai-orchestrator, ai-worker with both keys",
		"migrate | Re-encrypt the data: run Job aivo-prod/reencrypt-r-abcd2345",
		"verify | Verify: run Job aivo-prod/reencrypt-verify-r-abcd2345",
		"remove_old_key | Remove OLD_ENCRYPTION_KEY from Secret aivo-prod/app-encryption, keeping the new key as ENCRYPTION_KEY (renamed from NEW_ENCRYPTION_KEY)",
		"restart_final | Rolling restart ai-orchestrator, ai-worker with the new key only",
	}
	if !slices.Equal(got, want) {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var rb []string
	for _, s := range f.plan.Rollback {
		rb = append(rb, s.Name)
	}
	if !slices.Equal(rb, rollbackSteps()) {
		t.Errorf("rollback = %v", rb)
	}
	notes := strings.Join(f.plan.Notes, "\n")
	for _, w := range []string{
		"This rotation re-encrypts data: it runs Job aivo-prod/reencrypt-r-abcd2345 from template reencrypt (image registry.example.com/aivo/ai-orchestrator:stable, command `npm run reencrypt`), and waits up to 1h0m0s",
		"Then it verifies with Job aivo-prod/reencrypt-verify-r-abcd2345 from template reencrypt-verify",
		"backed up to aivo-prod/app-encryption-backup-r-abcd2345",
		"restarted twice",
		"kept in Secret aivo-prod/app-encryption-backup-r-abcd2345-newkey",
		"no rollback",
	} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
	// Waiting steps outlast their own waits.
	for name, min := range map[string]time.Duration{
		StepMigrate: DefaultJobTimeout, StepVerify: DefaultJobTimeout,
		StepRestartDual: 2 * DefaultRolloutTimeout, StepRestartFinal: 2 * DefaultRolloutTimeout, StepRollbackRestart: 2 * DefaultRolloutTimeout,
	} {
		if s := f.step(name); s.Timeout <= min {
			t.Errorf("%s timeout %s does not exceed %s", name, s.Timeout, min)
		}
	}
}

func TestHappyPath(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, forward()...)

	keys := f.rand.keys()
	if len(keys) != 1 {
		t.Fatalf("generated %d keys, want 1", len(keys))
	}
	newKey := keys[0]
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(newKey) {
		t.Errorf("new key is not 32 hex-encoded bytes: len %d", len(newKey))
	}
	if got, want := f.cluster.data(testNS, testSec), map[string]string{"ENCRYPTION_KEY": newKey, "DATABASE_URL": testOther}; !maps.Equal(got, want) {
		t.Errorf("final Secret keys = %v, want ENCRYPTION_KEY (the new key) and DATABASE_URL", slices.Sorted(maps.Keys(got)))
	}
	backup := "app-encryption-backup-r-abcd2345"
	if got := f.cluster.data(testNS, backup); !maps.Equal(got, original()) {
		t.Error("the backup does not hold the original data")
	}
	if got := f.cluster.secretNames(); !slices.Equal(got, []string{testNS + "/" + testSec, testNS + "/" + backup}) {
		t.Errorf("secrets = %v", got)
	}
	want := []string{
		"read aivo-prod/app-encryption",
		"backup aivo-prod/app-encryption R-ABCD2345",
		"read aivo-prod/" + backup,
		"update aivo-prod/app-encryption set [NEW_ENCRYPTION_KEY OLD_ENCRYPTION_KEY] remove [ENCRYPTION_KEY]",
		"restart aivo-prod/ai-orchestrator 2026-11-26T10:00:00Z",
		"wait-rollout aivo-prod/ai-orchestrator",
		"restart aivo-prod/ai-worker 2026-11-26T10:00:00Z",
		"wait-rollout aivo-prod/ai-worker",
		"create-job aivo-prod/" + testJobName,
		"wait-job aivo-prod/" + testJobName,
		"read aivo-prod/app-encryption",
		"read aivo-prod/" + backup,
		"update aivo-prod/app-encryption set [ENCRYPTION_KEY] remove [OLD_ENCRYPTION_KEY NEW_ENCRYPTION_KEY]",
		"restart aivo-prod/ai-orchestrator 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/ai-orchestrator",
		"restart aivo-prod/ai-worker 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/ai-worker",
	}
	if got := f.cluster.callList(); !slices.Equal(got, want) {
		t.Errorf("cluster calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want1 := "Secret aivo-prod/app-encryption holds only the new key, as ENCRYPTION_KEY; the old key is kept in backup Secret aivo-prod/" + backup + " (as ENCRYPTION_KEY)"
	if !slices.Contains(run.ProgressLines(), want1) {
		t.Errorf("progress lacks %q:\n%s", want1, strings.Join(run.ProgressLines(), "\n"))
	}
	rotatorstest.AssertNoLeak(t, f.secretsToHide(), run.Texts()...)
}

// The application that always reads NEW_ENCRYPTION_KEY: no rename, the
// last step only drops the old key.
func TestHappyPathKeyNameIsNewKeyName(t *testing.T) {
	f := newFixture(t, targetYAML("key_name: NEW_ENCRYPTION_KEY"))
	f.cluster.seed(testNS, testSec, map[string]string{"NEW_ENCRYPTION_KEY": testOldKey, "DATABASE_URL": testOther})
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys)
	newKey := f.rand.keys()[0]
	if got, want := f.cluster.data(testNS, testSec), map[string]string{"OLD_ENCRYPTION_KEY": testOldKey, "NEW_ENCRYPTION_KEY": newKey, "DATABASE_URL": testOther}; !maps.Equal(got, want) {
		t.Errorf("dual-key Secret keys = %v", slices.Sorted(maps.Keys(got)))
	}
	f.mustRun(run, StepRestartDual, StepMigrate, StepVerify, StepRemoveOldKey, StepRestartFinal)
	if got, want := f.cluster.data(testNS, testSec), map[string]string{"NEW_ENCRYPTION_KEY": newKey, "DATABASE_URL": testOther}; !maps.Equal(got, want) {
		t.Errorf("final Secret keys = %v", slices.Sorted(maps.Keys(got)))
	}
	calls := f.cluster.callList()
	if !slices.Contains(calls, "update aivo-prod/app-encryption set [] remove [OLD_ENCRYPTION_KEY]") {
		t.Errorf("calls = %v", calls)
	}
}

// The Job is the template, named after the request, labelled with it (Job
// and pods), in the namespace, with {env} expanded and its spec untouched.
func TestMigrationJobSpec(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual, StepMigrate)
	job := f.cluster.job(testNS, testJobName)
	if job == nil {
		t.Fatalf("no Job %s; calls %v", testJobName, f.cluster.callList())
	}
	if job.Name != testJobName || job.Namespace != testNS || len(job.Name) > 63 {
		t.Errorf("job = %s/%s", job.Namespace, job.Name)
	}
	if job.Labels[kube.RequestLabel] != testReqID || job.Spec.Template.Labels[kube.RequestLabel] != testReqID {
		t.Errorf("labels = %v / %v", job.Labels, job.Spec.Template.Labels)
	}
	if job.Labels["app.kubernetes.io/name"] != "reencrypt" || job.Annotations["owner"] != "platform" {
		t.Error("the template's labels and annotations were not kept")
	}
	if job.Spec.TTLSecondsAfterFinished == nil || *job.Spec.TTLSecondsAfterFinished != 604800 || *job.Spec.BackoffLimit != 0 {
		t.Error("the template's spec was changed")
	}
	c := job.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/aivo/ai-orchestrator:stable" || !slices.Equal(c.Command, []string{"npm", "run", "reencrypt"}) {
		t.Errorf("container = %s %v", c.Image, c.Command)
	}
	if !slices.Equal(c.Env, []corev1.EnvVar{{Name: "APP_ENV", Value: "prod"}}) {
		t.Errorf("env = %v, want {env} expanded", c.Env)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("restartPolicy changed")
	}
	if run.Fact("migration_job") != testJobName || run.Fact("migration_job_succeeded") == "" {
		t.Errorf("facts = %v", run.Facts())
	}
}

// Every forward step run twice (the executor repeats the step in flight
// after a crash) has one effect.
func TestForwardStepsIdempotent(t *testing.T) {
	f := newFixture(t, targetYAML("verification_job: |\n"+indent(verifyJob)))
	run := newFakeRun(f.spec)
	for _, name := range forward() {
		f.mustRun(run, name, name)
	}
	if len(f.rand.keys()) != 1 || len(f.cluster.newValues) != 1 {
		t.Errorf("keys made %d, written %d; want 1", len(f.rand.keys()), len(f.cluster.newValues))
	}
	if f.cluster.jobCreates[testJobName] != 1 || f.cluster.jobCreates["reencrypt-verify-r-abcd2345"] != 1 {
		t.Errorf("job creates = %v", f.cluster.jobCreates)
	}
	stamps := map[string]bool{}
	for _, c := range f.cluster.callList() {
		if strings.HasPrefix(c, "restart ") {
			stamps[c] = true
		}
	}
	if len(stamps) != 4 {
		t.Errorf("distinct restarts = %v, want 2 deployments × 2 stamps", slices.Sorted(maps.Keys(stamps)))
	}
	if got := f.cluster.data(testNS, testSec); got["ENCRYPTION_KEY"] != f.rand.keys()[0] || len(got) != 2 {
		t.Error("final Secret wrong")
	}
}

// The new key was lost in a restart before it was written: dual_keys asks
// for it to be made again. Once it was written it is read back, never made
// again (pods may already encrypt with it).
func TestLostNewKey(t *testing.T) {
	t.Run("before it was written", func(t *testing.T) {
		f := newFixture(t, targetYAML())
		run := newFakeRun(f.spec)
		f.mustRun(run, StepBackup, StepNewKey)
		run = run.Restarted()
		var lost *rotators.SecretLostError
		if err := f.run(run, StepDualKeys); !errors.As(err, &lost) || lost.From != StepNewKey {
			t.Fatalf("err = %v, want SecretLostError from new_key", err)
		}
		f.mustRun(run, StepNewKey, StepDualKeys)
		if got := f.cluster.data(testNS, testSec)["NEW_ENCRYPTION_KEY"]; got != f.rand.keys()[1] || len(f.cluster.newValues) != 1 {
			t.Error("the second key was not the one written, or two were written")
		}
	})
	t.Run("intent recorded, write failed", func(t *testing.T) {
		f := newFixture(t, targetYAML())
		run := newFakeRun(f.spec)
		f.mustRun(run, StepBackup, StepNewKey)
		f.cluster.before = func(op string) error {
			if op == "update" {
				return errors.New("connection reset")
			}
			return nil
		}
		if err := f.run(run, StepDualKeys); err == nil {
			t.Fatal("want the injected failure")
		}
		f.cluster.before = nil
		run = run.Restarted()
		var lost *rotators.SecretLostError
		if err := f.run(run, StepDualKeys); !errors.As(err, &lost) {
			t.Fatalf("err = %v, want SecretLostError: the write never landed", err)
		}
	})
	t.Run("after it was written", func(t *testing.T) {
		f := newFixture(t, targetYAML())
		run := newFakeRun(f.spec)
		f.cluster.after = func(op string) error {
			if op == "update" {
				return errors.New("response lost")
			}
			return nil
		}
		f.mustRun(run, StepBackup, StepNewKey)
		if err := f.run(run, StepDualKeys); err == nil {
			t.Fatal("want the injected failure")
		}
		f.cluster.after = nil
		run = run.Restarted()
		f.mustRun(run, StepDualKeys, StepRestartDual, StepMigrate, StepVerify, StepRemoveOldKey, StepRestartFinal)
		if len(f.rand.keys()) != 1 || f.cluster.data(testNS, testSec)["ENCRYPTION_KEY"] != f.rand.keys()[0] {
			t.Error("a second key was made, or the written key was not kept")
		}
	})
}

func TestBackupRefusesSecretNotAtRest(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		want string
	}{
		{"no current key", map[string]string{"DATABASE_URL": testOther}, "has no key ENCRYPTION_KEY (key_name) to rotate, or it is empty; its keys: DATABASE_URL"},
		{"old key present", map[string]string{"ENCRYPTION_KEY": testOldKey, "OLD_ENCRYPTION_KEY": "x"}, "already has OLD_ENCRYPTION_KEY"},
		{"new key present", map[string]string{"ENCRYPTION_KEY": testOldKey, "NEW_ENCRYPTION_KEY": "x"}, "already has NEW_ENCRYPTION_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, targetYAML())
			f.cluster.seed(testNS, testSec, tt.data)
			run := newFakeRun(f.spec)
			err := f.run(run, StepBackup)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a permanent error containing %q", err, tt.want)
			}
			if len(f.cluster.secretNames()) != 1 || run.Fact(factBackup) != "" {
				t.Error("a backup was made of a Secret that was refused")
			}
		})
	}
}

// Someone changed the Secret between the steps: the old key is not removed.
func TestRemoveOldKeyRefusesChangedSecret(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual, StepMigrate, StepVerify)
	f.cluster.seed(testNS, testSec, map[string]string{"OLD_ENCRYPTION_KEY": "something-else", "NEW_ENCRYPTION_KEY": f.rand.keys()[0]})
	err := f.run(run, StepRemoveOldKey)
	if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "someone changed it") {
		t.Fatalf("err = %v", err)
	}
	if run.Fact(factRemoveStarted) != "" {
		t.Error("removal recorded as started although nothing was removed: rollback would be refused")
	}
}

func TestJobOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		arrange   func(f *fixture)
		wantErr   string
		permanent bool
	}{
		{"failed", func(f *fixture) { f.cluster.jobFail[testJobName] = "BackoffLimitExceeded" }, "the migration Job aivo-prod/" + testJobName + " failed (see `kubectl logs -n aivo-prod job/" + testJobName + "`)", true},
		{"created by another request", func(f *fixture) {
			f.cluster.jobs[testNS+"/"+testJobName] = buildJob(mustDecode(reencryptJob), testNS, testJobName, "R-OTHER234")
		}, "object exists but was not created by this request", true},
		{"transient create failure", func(f *fixture) {
			f.cluster.before = func(op string) error {
				if op == "create-job" {
					return errors.New("etcdserver: request timed out")
				}
				return nil
			}
		}, "creating Job aivo-prod/" + testJobName, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, targetYAML())
			run := newFakeRun(f.spec)
			f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual)
			tt.arrange(f)
			err := f.run(run, StepMigrate)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || rotators.IsPermanent(err) != tt.permanent {
				t.Fatalf("err = %v (permanent %v), want %q permanent=%v", err, rotators.IsPermanent(err), tt.wantErr, tt.permanent)
			}
			if run.Fact("migration_job_succeeded") != "" {
				t.Error("success recorded")
			}
		})
	}
}

func TestJobDisappeared(t *testing.T) {
	f := newFixture(t, targetYAML())
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual)
	f.cluster.before = func(op string) error {
		if op == "wait-job" {
			f.cluster.mu.Lock()
			delete(f.cluster.jobs, testNS+"/"+testJobName)
			f.cluster.mu.Unlock()
		}
		return nil
	}
	err := f.run(run, StepMigrate)
	if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "disappeared before rotary saw it finish") {
		t.Fatalf("err = %v", err)
	}
}

// The Job's deadline is recorded once: a step repeated later (a restart)
// waits only for what is left of job_timeout, and at least minJobCheck.
func TestJobDeadlineSurvivesRestart(t *testing.T) {
	f := newFixture(t, targetYAML("job_timeout: 2h"))
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual)
	f.cluster.jobProgress = []string{"active 1, succeeded 0, failed 0", "active 1, succeeded 0, failed 0", "active 0, succeeded 1, failed 0 (complete)"}
	f.cluster.jobFail[testJobName] = "simulated"
	_ = f.run(run, StepMigrate)
	if got := run.Fact("migration_job_deadline"); got != "2026-11-26T12:00:00Z" {
		t.Fatalf("deadline = %q", got)
	}
	delete(f.cluster.jobFail, testJobName)
	run = run.Restarted()
	run.SetNow(testNow.Add(90 * time.Minute))
	f.mustRun(run, StepMigrate)
	if d := f.cluster.waitDeadline[testJobName]; d > 31*time.Minute || d < 29*time.Minute {
		t.Errorf("second wait had %s, want the remaining 30m", d)
	}
	run.SetNow(testNow.Add(3 * time.Hour))
	run.DeleteFact("migration_job_succeeded")
	f.mustRun(run, StepMigrate)
	if d := f.cluster.waitDeadline[testJobName]; d > minJobCheck || d < minJobCheck-5*time.Second {
		t.Errorf("a wait past the deadline had %s, want minJobCheck", d)
	}
	if f.cluster.jobCreates[testJobName] != 1 {
		t.Errorf("job created %d times", f.cluster.jobCreates[testJobName])
	}
	var lines []string
	for _, p := range run.ProgressLines() {
		if strings.HasPrefix(p, "Job aivo-prod/"+testJobName+": ") {
			lines = append(lines, p)
		}
	}
	if len(lines) < 2 || lines[0] != "Job aivo-prod/"+testJobName+": active 1, succeeded 0, failed 0" {
		t.Errorf("job progress lines = %q", lines)
	}
}

func TestNoClusterIsPermanent(t *testing.T) {
	var cfg Config
	if err := yamlDecode(targetYAML())(&cfg); err != nil {
		t.Fatal(err)
	}
	rot, problems := New("encryption", cfg, Clients{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	plan := rot.Plan(rotators.Spec{RequestID: testReqID, Env: "prod"})
	err := plan.Steps[0].Run(t.Context(), newFakeRun(rotators.Spec{RequestID: testReqID, Env: "prod"}))
	if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "no Kubernetes client") {
		t.Fatalf("err = %v", err)
	}
}

func mustDecode(text string) *batchv1.Job {
	j, err := decodeJob(text, "prod")
	if err != nil {
		panic(err)
	}
	return j
}

// A Job still running at its deadline fails the step for good (a retry
// would only wait longer) and says it was not stopped.
func TestJobTimeout(t *testing.T) {
	f := newFixture(t, targetYAML("job_timeout: 1m"))
	f.rot.jobCheck = time.Millisecond
	run := newFakeRun(f.spec)
	f.mustRun(run, StepBackup, StepNewKey, StepDualKeys, StepRestartDual)
	f.cluster.jobHang[testJobName] = true
	run.SetNow(testNow.Add(time.Hour)) // the recorded deadline has passed
	run.SetFact("migration_job_deadline", testNow.Add(time.Minute).Format(time.RFC3339))
	err := f.run(run, StepMigrate)
	if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "did not finish by 2026-11-26T10:01:00Z (job_timeout 1m0s); it was not stopped") {
		t.Fatalf("err = %v", err)
	}
}
