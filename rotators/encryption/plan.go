package encryption

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Step names: stable identifiers stored in journals. Never rename one.
const (
	StepBackup       = "backup"
	StepNewKey       = "new_key"
	StepDualKeys     = "dual_keys"
	StepRestartDual  = "restart_dual"
	StepMigrate      = "migrate"
	StepVerify       = "verify"
	StepRemoveOldKey = "remove_old_key"
	StepRestartFinal = "restart_final"

	StepRestoreSecret   = "restore_secret"
	StepRollbackRestart = "rollback_restart"
)

// Facts (persisted, never secret) and the memory-only secret.
const (
	// factBackup: the backup Secret's name, recorded once it exists.
	factBackup = "backup_secret"
	// factDualKeysStarted: the Secret may hold the new key from now on.
	factDualKeysStarted = "dual_keys_started"
	// factRestartAt, factFinalRestartAt: the restart stamps, recorded before use.
	factRestartAt      = "restart_at"
	factFinalRestartAt = "final_restart_at"
	// factRemoveStarted: the old key may be gone from the Secret; rollback must not run.
	factRemoveStarted = "old_key_removal_started"
	// factRestoreStarted: rollback is putting the backup's data back.
	factRestoreStarted = "restore_started"
	// factNewKeyCopy: the Secret rollback copied (with the new key) before restoring.
	factNewKeyCopy = "new_key_copy"
	// factRollbackRestartAt: rollback's restart stamp.
	factRollbackRestartAt = "rollback_restart_at"

	// secretNewKey is the memory-only key under which the new key is kept.
	secretNewKey = "new_key"
)

// Job facts, per Job: its name (recorded before it is created), the wait's
// deadline (RFC3339, recorded once, so a restart waits only for the rest) and
// its success.
const (
	factJobName      = "_job"
	factJobDeadline  = "_job_deadline"
	factJobSucceeded = "_job_succeeded"
)

// Limits beyond the rotators defaults.
const (
	// keyBytes is the new key's length: 256 bits, hex-encoded as the
	// runbook's `openssl rand -hex 32`.
	keyBytes = 32
	// stepMargin is added to a step's own wait so the step, not its
	// deadline, reports a timeout.
	stepMargin = time.Minute
	// minJobCheck is the least time given to read a Job's status when its
	// recorded deadline has passed (e.g. it finished while rotary was down).
	minJobCheck = 30 * time.Second
	// newKeyCopySuffix makes the request id under which rollback copies the
	// Secret holding the new key (the backup itself is never overwritten).
	newKeyCopySuffix = "-newkey"
)

// jobPlan is one Job of a request: the migration or the verification.
type jobPlan struct {
	role     string // "migration" or "verification": fact prefix and wording
	template string // the template's metadata.name
	name     string // JobName(template, requestID)
	job      *batchv1.Job
	err      error // the template did not decode for this environment
}

func (j *jobPlan) fact(suffix string) string { return j.role + suffix }

// rotation is one request's plan: the target's settings with {env} expanded.
type rotation struct {
	r            *Rotator
	spec         rotators.Spec
	namespace    string
	secretName   string
	keyName      string
	oldKeyName   string
	newKeyName   string
	deployments  []string
	migration    *jobPlan
	verification *jobPlan // nil when none is configured
}

func (r *Rotator) expand(spec rotators.Spec) *rotation {
	env := func(s string) string { return expandEnv(s, spec.Env) }
	s := r.s
	x := &rotation{
		r:          r,
		spec:       spec,
		namespace:  env(s.Namespace),
		secretName: env(s.Secret),
		keyName:    env(s.KeyName),
		oldKeyName: env(s.OldKeyName),
		newKeyName: env(s.NewKeyName),
	}
	for _, d := range s.Deployments {
		x.deployments = append(x.deployments, env(d))
	}
	x.migration = x.jobPlan("migration", s.MigrationJob)
	if strings.TrimSpace(s.VerificationJob) != "" {
		x.verification = x.jobPlan("verification", s.VerificationJob)
	}
	return x
}

func (x *rotation) jobPlan(role, text string) *jobPlan {
	jp := &jobPlan{role: role}
	tpl, err := decodeJob(text, x.spec.Env)
	if err == nil {
		if ps := checkJob(tpl, x.namespace); len(ps) > 0 {
			err = fmt.Errorf("%s", ps[0])
		}
	}
	if err != nil {
		// Validated at Build with a sample environment; only an odd
		// environment name can get here.
		jp.err = fmt.Errorf("the %s_job template for environment %q: %w", role, x.spec.Env, err)
		return jp
	}
	jp.template = tpl.Name
	jp.name = JobName(tpl.Name, x.spec.RequestID)
	jp.job = buildJob(tpl, x.namespace, jp.name, x.spec.RequestID)
	return jp
}

// Plan returns the steps of a rotation of r's target for spec.
func (r *Rotator) Plan(spec rotators.Spec) rotators.Plan {
	x := r.expand(spec)
	deps := strings.Join(x.deployments, ", ")
	sec := x.namespace + "/" + x.secretName
	restartTimeout := time.Duration(len(x.deployments))*r.s.rolloutTimeout + stepMargin
	jobTimeout := r.s.jobTimeout + stepMargin

	verify := rotators.Step{Name: StepVerify, Title: "Verify that the migration Job succeeded", Run: x.verify}
	if x.verification != nil {
		verify.Title = "Verify: run Job " + x.jobRef(x.verification)
		verify.Timeout = jobTimeout
	}
	finalKeys := x.newKeyName
	if x.keyName != x.newKeyName {
		finalKeys = x.keyName + " (renamed from " + x.newKeyName + ")"
	}
	p := rotators.Plan{
		Steps: []rotators.Step{
			{Name: StepBackup, Title: "Back up Secret " + sec, Run: x.backup},
			{Name: StepNewKey, Title: "Generate a new 256-bit key", Run: x.newKey},
			{Name: StepDualKeys, Title: fmt.Sprintf("Put %s (current key) and %s (new key) in Secret %s", x.oldKeyName, x.newKeyName, sec), Run: x.dualKeys},
			{Name: StepRestartDual, Title: "Rolling restart " + deps + " with both keys", Timeout: restartTimeout, Run: x.restartDual},
			{Name: StepMigrate, Title: "Re-encrypt the data: run Job " + x.jobRef(x.migration), Timeout: jobTimeout, Run: x.migrate},
			verify,
			{Name: StepRemoveOldKey, Title: fmt.Sprintf("Remove %s from Secret %s, keeping the new key as %s", x.oldKeyName, sec, finalKeys), Run: x.removeOldKey},
			{Name: StepRestartFinal, Title: "Rolling restart " + deps + " with the new key only", Timeout: restartTimeout, Run: x.restartFinal},
		},
		Rollback: []rotators.Step{
			{Name: StepRestoreSecret, Title: "Restore Secret " + sec + " from its backup", Run: x.restoreSecret},
			{Name: StepRollbackRestart, Title: "Rolling restart " + deps + " with the previous key", Timeout: restartTimeout, Run: x.rollbackRestart},
		},
	}
	p.Notes = append(p.Notes, x.jobNote(x.migration, "This rotation re-encrypts data: it runs Job"))
	if x.verification != nil {
		p.Notes = append(p.Notes, x.jobNote(x.verification, "Then it verifies with Job"))
	}
	backup := kube.BackupName(x.secretName, spec.RequestID)
	p.Notes = append(p.Notes,
		fmt.Sprintf("Secret %s is backed up to %s/%s first. Deployments %s are restarted twice, in this order: with %s and %s, then with the new key only as %s.",
			sec, x.namespace, backup, deps, x.oldKeyName, x.newKeyName, finalKeys),
		fmt.Sprintf("A failure before the old key is removed restores the backed-up Secret; data already encrypted with the new key (by the migration or the restarted pods) then needs the new key, which is kept in Secret %s/%s. Once removing the old key has started there is no rollback: the old key is then only in %s/%s.",
			x.namespace, kube.BackupName(x.secretName, spec.RequestID+newKeyCopySuffix), x.namespace, backup),
	)
	return p
}

// jobRef names a Job for titles: "ns/name", or the template's problem.
func (x *rotation) jobRef(j *jobPlan) string {
	if j.err != nil {
		return "(invalid " + j.role + "_job template)"
	}
	return x.namespace + "/" + j.name
}

// jobNote shows the Job that will run on the request message.
func (x *rotation) jobNote(j *jobPlan, lead string) string {
	if j.err != nil {
		return fmt.Sprintf("%s from an invalid template: %v", lead, j.err)
	}
	return fmt.Sprintf("%s %s from template %s (%s), and waits up to %s for it to succeed.",
		lead, x.jobRef(j), j.template, describeJob(j.job), x.r.s.jobTimeout)
}

// cluster returns the Kubernetes client; a missing one is a permanent
// failure, as retrying cannot supply it.
func (x *rotation) cluster() (Cluster, error) {
	if x.r.clients.Cluster == nil {
		return nil, rotators.Permanent(errors.New("no Kubernetes client is configured"))
	}
	return x.r.clients.Cluster, nil
}

func (x *rotation) secretRef() string { return x.namespace + "/" + x.secretName }

// --- forward steps ---

// backup checks that the Secret is in its steady state (key_name set, no
// rotation under way) and copies it. The backup is what the previous key
// is read from, and what rollback restores.
func (x *rotation) backup(ctx context.Context, run rotators.Run) error {
	if run.Fact(factBackup) != "" {
		return nil
	}
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	live, err := cl.SecretData(ctx, x.namespace, x.secretName)
	if err != nil {
		return fmt.Errorf("reading Secret %s: %w", x.secretRef(), err)
	}
	if err := x.checkSteadyState(live); err != nil {
		return err
	}
	name, err := cl.BackupSecret(ctx, x.namespace, x.secretName, run.RequestID())
	if err != nil {
		if errors.Is(err, kube.ErrForeignObject) {
			err = rotators.Permanent(err)
		}
		return fmt.Errorf("backing up Secret %s: %w", x.secretRef(), err)
	}
	if err := run.Record(ctx, factBackup, name); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "backed up the secret", "secret", x.secretRef(), "backup", name, "keys", len(live))
	run.Progress(ctx, fmt.Sprintf("Backed up Secret %s (keys %s) to %s/%s", x.secretRef(), strings.Join(keyNames(live), ", "), x.namespace, name))
	return nil
}

// checkSteadyState refuses a Secret without the current key, or one that
// already holds a rotation's keys: an unfinished rotation (rotary's or a
// person's) must be finished or undone first, or its old key would be lost.
func (x *rotation) checkSteadyState(live map[string]secret.Value) error {
	if live[x.keyName].IsZero() {
		return rotators.Permanent(fmt.Errorf("Secret %s has no key %s (key_name) to rotate, or it is empty; its keys: %s",
			x.secretRef(), x.keyName, strings.Join(keyNames(live), ", ")))
	}
	busy := []string{x.oldKeyName}
	if x.newKeyName != x.keyName {
		busy = append(busy, x.newKeyName)
	}
	for _, k := range busy {
		if _, ok := live[k]; ok {
			return rotators.Permanent(fmt.Errorf("Secret %s already has %s: an earlier key rotation has not finished; finish or undo it by hand first", x.secretRef(), k))
		}
	}
	return nil
}

// newKey generates the new key and keeps it in memory only.
func (x *rotation) newKey(ctx context.Context, run rotators.Run) error {
	if _, ok := run.Secret(secretNewKey); ok {
		return nil
	}
	raw := make([]byte, keyBytes)
	if _, err := io.ReadFull(x.r.clients.Rand, raw); err != nil {
		return fmt.Errorf("reading %d random bytes for the new key: %w", keyBytes, err)
	}
	encoded := make([]byte, hex.EncodedLen(len(raw)))
	hex.Encode(encoded, raw)
	clear(raw)
	run.KeepSecret(secretNewKey, secret.New(encoded))
	run.Log().InfoContext(ctx, "generated a new key", "bits", keyBytes*8)
	run.Progress(ctx, fmt.Sprintf("Generated a new %d-bit key (in memory until it is written to the Secret)", keyBytes*8))
	return nil
}

// previousKey reads the key in use before the rotation from the backup.
func (x *rotation) previousKey(ctx context.Context, cl Cluster, run rotators.Run) (string, secret.Value, error) {
	backup := run.Fact(factBackup)
	if backup == "" {
		return "", secret.Value{}, rotators.Permanent(fmt.Errorf("no backup recorded (fact %s): the backup step has not run", factBackup))
	}
	data, err := cl.SecretData(ctx, x.namespace, backup)
	if err != nil {
		return "", secret.Value{}, fmt.Errorf("reading backup Secret %s/%s: %w", x.namespace, backup, err)
	}
	old := data[x.keyName]
	if old.IsZero() {
		return "", secret.Value{}, rotators.Permanent(fmt.Errorf("backup Secret %s/%s has no key %s", x.namespace, backup, x.keyName))
	}
	return backup, old, nil
}

// dualKeys writes the previous key under old_key_name and the new key under
// new_key_name (removing key_name, so the application cannot mistake which
// key encrypts). Once this may have landed, the new key is never made again:
// a restart that lost it reads it back from the Secret.
func (x *rotation) dualKeys(ctx context.Context, run rotators.Run) error {
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	_, old, err := x.previousKey(ctx, cl, run)
	if err != nil {
		return err
	}
	newKey, ok := run.Secret(secretNewKey)
	if !ok {
		if run.Fact(factDualKeysStarted) != "" {
			live, err := cl.SecretData(ctx, x.namespace, x.secretName)
			if err != nil {
				return fmt.Errorf("reading Secret %s: %w", x.secretRef(), err)
			}
			if x.holdsBothKeys(live, old) {
				run.Progress(ctx, fmt.Sprintf("Secret %s already holds %s and %s", x.secretRef(), x.oldKeyName, x.newKeyName))
				return nil
			}
		}
		// Not written: making a new key is safe.
		return &rotators.SecretLostError{From: StepNewKey}
	}
	if newKey.Equal(old) {
		return rotators.Permanent(errors.New("the new key equals the current key: the random source is broken"))
	}
	if run.Fact(factDualKeysStarted) == "" {
		if err := run.Record(ctx, factDualKeysStarted, "true"); err != nil {
			return err
		}
	}
	set := map[string]secret.Value{x.oldKeyName: old, x.newKeyName: newKey}
	var remove []string
	if x.keyName != x.newKeyName {
		remove = []string{x.keyName}
	}
	if err := cl.UpdateSecretData(ctx, x.namespace, x.secretName, set, remove); err != nil {
		return fmt.Errorf("writing both keys to Secret %s: %w", x.secretRef(), err)
	}
	run.Log().InfoContext(ctx, "secret holds both keys", "secret", x.secretRef(), "old_key", x.oldKeyName, "new_key", x.newKeyName, "removed", remove)
	run.Progress(ctx, fmt.Sprintf("Secret %s holds %s (the current key) and %s (the new key)", x.secretRef(), x.oldKeyName, x.newKeyName))
	return nil
}

// holdsBothKeys reports whether the Secret is as dualKeys leaves it.
func (x *rotation) holdsBothKeys(live map[string]secret.Value, old secret.Value) bool {
	n := live[x.newKeyName]
	if !live[x.oldKeyName].Equal(old) || n.IsZero() || n.Equal(old) {
		return false
	}
	_, hasKey := live[x.keyName]
	return x.keyName == x.newKeyName || !hasKey
}

// doneRemoving reports whether the Secret is as removeOldKey leaves it.
func (x *rotation) doneRemoving(live map[string]secret.Value) bool {
	if _, ok := live[x.oldKeyName]; ok {
		return false
	}
	if x.keyName == x.newKeyName {
		return !live[x.newKeyName].IsZero()
	}
	_, hasNew := live[x.newKeyName]
	return !hasNew && !live[x.keyName].IsZero()
}

func (x *rotation) restartDual(ctx context.Context, run rotators.Run) error {
	return x.restartAll(ctx, run, factRestartAt)
}

func (x *rotation) migrate(ctx context.Context, run rotators.Run) error {
	return x.runJob(ctx, run, x.migration)
}

// verify confirms the migration's recorded success and runs the
// verification Job, if one is configured.
func (x *rotation) verify(ctx context.Context, run rotators.Run) error {
	if run.Fact(x.migration.fact(factJobSucceeded)) == "" {
		return rotators.Permanent(errors.New("the migration Job's success is not recorded: the migrate step has not finished"))
	}
	if x.verification == nil {
		run.Progress(ctx, fmt.Sprintf("Job %s succeeded; no verification Job is configured", x.jobRef(x.migration)))
		return nil
	}
	return x.runJob(ctx, run, x.verification)
}

// runJob creates the request's Job (or finds it after a restart) and waits
// until it succeeds, fails, or its recorded deadline passes.
func (x *rotation) runJob(ctx context.Context, run rotators.Run, j *jobPlan) error {
	if run.Fact(j.fact(factJobSucceeded)) != "" {
		return nil
	}
	if j.err != nil {
		return rotators.Permanent(j.err)
	}
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	ref := x.jobRef(j)
	if run.Fact(j.fact(factJobName)) == "" {
		if err := run.Record(ctx, j.fact(factJobName), j.name); err != nil {
			return err
		}
	}
	deadline, err := x.jobDeadline(ctx, run, j)
	if err != nil {
		return err
	}
	if err := cl.CreateJob(ctx, x.namespace, j.job.DeepCopy()); err != nil {
		if errors.Is(err, kube.ErrForeignObject) {
			err = rotators.Permanent(err)
		}
		return fmt.Errorf("creating Job %s: %w", ref, err)
	}
	run.Log().InfoContext(ctx, "job created or found", "job", ref, "role", j.role, "deadline", deadline)
	run.Progress(ctx, fmt.Sprintf("Job %s is running (waiting until %s)", ref, deadline.Format(time.RFC3339)))

	wait := max(deadline.Sub(run.Now()), x.r.jobCheck)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	last := ""
	progress := func(msg string) {
		if msg != last { // each line is a journal write: skip repeats
			last = msg
			run.Progress(ctx, "Job "+ref+": "+msg)
		}
	}
	err = cl.WaitJob(wctx, x.namespace, j.name, progress)
	logs := fmt.Sprintf("kubectl logs -n %s job/%s", x.namespace, j.name)
	switch {
	case err == nil:
	case errors.Is(err, kube.ErrJobFailed):
		return rotators.Permanent(fmt.Errorf("the %s Job %s failed (see `%s`): %w", j.role, ref, logs, err))
	case apierrors.IsNotFound(err):
		// Re-creating it would start the work again without knowing how
		// the first run ended.
		return rotators.Permanent(fmt.Errorf("the %s Job %s disappeared before rotary saw it finish (deleted, or removed by ttlSecondsAfterFinished): %w", j.role, ref, err))
	case ctx.Err() == nil && wctx.Err() != nil:
		return rotators.Permanent(fmt.Errorf("the %s Job %s did not finish by %s (job_timeout %s); it was not stopped: check it (`%s`) and delete it if it must not go on: %w",
			j.role, ref, deadline.Format(time.RFC3339), x.r.s.jobTimeout, logs, err))
	default:
		return fmt.Errorf("waiting for Job %s: %w", ref, err)
	}
	if err := run.Record(ctx, j.fact(factJobSucceeded), "true"); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "job succeeded", "job", ref, "role", j.role)
	run.Progress(ctx, fmt.Sprintf("Job %s succeeded", ref))
	return nil
}

// jobDeadline returns the Job's recorded deadline, recording now+job_timeout
// on the first call.
func (x *rotation) jobDeadline(ctx context.Context, run rotators.Run, j *jobPlan) (time.Time, error) {
	key := j.fact(factJobDeadline)
	if s := run.Fact(key); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, rotators.Permanent(fmt.Errorf("fact %s=%q is not a time: %w", key, s, err))
		}
		return t, nil
	}
	t := run.Now().UTC().Add(x.r.s.jobTimeout).Truncate(time.Second)
	if err := run.Record(ctx, key, t.Format(time.RFC3339)); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// removeOldKey leaves only the new key in the Secret (under key_name). It
// checks first that the Secret still holds exactly the two keys this
// rotation wrote, and records factRemoveStarted before writing: from then
// on rollback refuses.
func (x *rotation) removeOldKey(ctx context.Context, run rotators.Run) error {
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	live, err := cl.SecretData(ctx, x.namespace, x.secretName)
	if err != nil {
		return fmt.Errorf("reading Secret %s: %w", x.secretRef(), err)
	}
	backup, old, err := x.previousKey(ctx, cl, run)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("the old key is kept in backup Secret %s/%s (as %s)", x.namespace, backup, x.keyName)
	if run.Fact(factRemoveStarted) != "" && x.doneRemoving(live) {
		run.Progress(ctx, fmt.Sprintf("Secret %s holds only the new key; %s", x.secretRef(), where))
		return nil
	}
	if !x.holdsBothKeys(live, old) {
		return rotators.Permanent(fmt.Errorf("Secret %s no longer holds the keys this rotation wrote (%s = the previous key, %s = the new key): someone changed it; refusing to remove a key",
			x.secretRef(), x.oldKeyName, x.newKeyName))
	}
	if run.Fact(factRemoveStarted) == "" {
		if err := run.Record(ctx, factRemoveStarted, "true"); err != nil {
			return err
		}
	}
	var set map[string]secret.Value
	remove := []string{x.oldKeyName}
	if x.keyName != x.newKeyName {
		set = map[string]secret.Value{x.keyName: live[x.newKeyName]}
		remove = append(remove, x.newKeyName)
	}
	if err := cl.UpdateSecretData(ctx, x.namespace, x.secretName, set, remove); err != nil {
		return fmt.Errorf("removing the old key from Secret %s: %w", x.secretRef(), err)
	}
	run.Log().InfoContext(ctx, "removed the old key", "secret", x.secretRef(), "removed", remove, "backup", backup)
	run.Progress(ctx, fmt.Sprintf("Secret %s holds only the new key, as %s; %s", x.secretRef(), x.keyName, where))
	return nil
}

func (x *rotation) restartFinal(ctx context.Context, run rotators.Run) error {
	return x.restartAll(ctx, run, factFinalRestartAt, factRestartAt)
}

// restartAll restarts the deployments in order with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) restartAll(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.RestartAll(ctx, run, x.r.clients.Cluster, x.namespace, x.deployments, key, x.r.s.rolloutTimeout, after...)
}

// keyNames lists a Secret's key names, sorted (names are not secret).
func keyNames(data map[string]secret.Value) []string {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
