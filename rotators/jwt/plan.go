package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Step and follow-up names: stable identifiers stored in journals. Never
// rename one.
const (
	StepBackup             = "backup"
	StepGenerate           = "generate"
	StepUpdate             = "update"
	StepSync               = "sync"
	StepRestart            = "restart"
	StepVerify             = "verify"
	StepWaitTokens         = "wait_tokens"
	StepInvalidateSessions = "invalidate_sessions"
	StepSyncAll            = "sync_all_external_secrets"

	FollowUpRemoveOldKey = "remove_old_public_key"
	StepRemoveOldKey     = "remove_old_key"
	StepFollowUpSync     = "followup_sync"
	StepFollowUpRestart  = "followup_restart"

	StepRestore         = "restore"
	StepRollbackSync    = "rollback_sync"
	StepRollbackRestart = "rollback_restart"
	StepRollbackVerify  = "rollback_verify"
)

// Facts (persisted, never secret: names, ids, fingerprints, stamps) and the
// memory-only secret.
const (
	// factBackup: the backup Secret's name (backend kubernetes).
	factBackup = "backup_secret"
	// factPrevVersion: the Secret Manager version in use before; the backup
	// (backend secret_manager).
	factPrevVersion = "prev_version"
	// factNewKID, factNewFingerprint: the generated key's id and the
	// fingerprint of its public key, recorded before it is kept in memory.
	factNewKID         = "new_kid"
	factNewFingerprint = "new_public_fingerprint"
	// factOldKID, factOldFingerprint: the key pair in use before, recorded
	// before the write (factOldKID is noKID when there was none).
	factOldKID         = "old_kid"
	factOldFingerprint = "old_public_fingerprint"
	// factUpdateStarted: the store may hold the new key from now on.
	factUpdateStarted = "update_started"
	// factNewVersion: the Secret Manager version holding the new key.
	factNewVersion = "new_version"
	// Stamps of syncs and restarts, recorded before use.
	factSyncAt            = "sync_at"
	factRestartAt         = "restart_at"
	factSyncAllAt         = "sync_all_at"
	factFollowUpSyncAt    = "followup_sync_at"
	factFollowUpRestartAt = "followup_restart_at"
	factRollbackSyncAt    = "rollback_sync_at"
	factRollbackRestartAt = "rollback_restart_at"
	// factTokensExpireAt: when the last token signed with the old key
	// expires (RFC3339), recorded once so a resumed wait does not restart.
	factTokensExpireAt = "tokens_expire_at"
	// factSessionsPod: the pod the invalidation command is run in (intent).
	factSessionsPod = "sessions_pod"
	// factSessionsResult: the command succeeded (exit code, output size).
	factSessionsResult = "sessions_invalidated"
	// factSyncAllResult: every ExternalSecret was force-synced (summary).
	factSyncAllResult = "synced_external_secrets"
	// factRemovalStarted: the follow-up may have removed the old public key.
	factRemovalStarted = "old_key_removal_started"
	// factRemovalVersion: the Secret Manager version without the old key.
	factRemovalVersion = "old_key_removal_version"
	// factRemovalOutcome: what the follow-up found and did (removal*).
	factRemovalOutcome = "old_key_removal"
	// factRestoreStarted: rollback is putting the backup back.
	factRestoreStarted = "restore_started"
	// factRestoredVersion: the version rollback added with the previous keys.
	factRestoredVersion = "restored_version"

	// secretPrivateKey is the memory-only key of the new private key's PEM.
	secretPrivateKey = "private_key"
	// noKID is factOldKID's value when the keys had no key id.
	noKID = "none"
)

// factRemovalOutcome values.
const (
	removalRemoved     = "removed"
	removalAlreadyGone = "already_gone"
	removalSuperseded  = "superseded"
)

// Limits beyond the rotators defaults.
const (
	// stepMargin is added to a step's own wait so the step, not its
	// deadline, reports a timeout.
	stepMargin = time.Minute
	// waitSlice is the longest single Sleep of the token wait, so the
	// thread shows the remaining time at least every minute.
	waitSlice = time.Minute
	// maxStampWait bounds the wait for a sync stamp's second to begin.
	maxStampWait = time.Second
	// invalidateAttempts: a command that may have run is repeated at most
	// once more (invalidating all sessions twice is harmless, but slow).
	invalidateAttempts = 2
)

// rotation is one request's plan: the target's settings with {env} expanded.
type rotation struct {
	r              *Rotator
	spec           rotators.Spec
	emergency      bool
	namespace      string
	secretName     string
	deployment     string
	keys           KeysConfig
	command        []string
	container      string
	gsmSecret      string // full Secret Manager name (backend secret_manager)
	externalSecret string // (backend secret_manager)
}

func (r *Rotator) expand(spec rotators.Spec) *rotation {
	env := func(s string) string { return expandEnv(s, spec.Env) }
	s := r.s
	x := &rotation{
		r:          r,
		spec:       spec,
		emergency:  spec.Emergency,
		namespace:  env(s.Namespace),
		secretName: env(s.Secret),
		deployment: env(s.Deployment),
		keys: KeysConfig{
			Private: env(s.Keys.Private), Public: env(s.Keys.Public),
			PublicOld: env(s.Keys.PublicOld), KeyID: env(s.Keys.KeyID),
		},
		container: env(s.InvalidateSessions.Container),
	}
	for _, a := range s.InvalidateSessions.Command {
		x.command = append(x.command, env(a))
	}
	if sm := s.SecretManager; sm != nil && s.secretManager() {
		x.gsmSecret = gsm.SecretName(env(sm.Project), env(sm.Secret))
		x.externalSecret = env(sm.ExternalSecret)
	}
	return x
}

// Plan returns the steps of a rotation of r's target for spec: the
// emergency procedure when spec.Emergency is set.
func (r *Rotator) Plan(spec rotators.Spec) rotators.Plan {
	x := r.expand(spec)
	s := r.s
	restartTimeout := s.rolloutTimeout + stepMargin
	syncTimeout := s.syncTimeout + stepMargin

	update := rotators.Step{Name: StepUpdate, Run: x.update}
	switch {
	case x.emergency && x.sm():
		update.Title = fmt.Sprintf("Add a Secret Manager version of %s with the new key pair, without %s", x.gsmSecret, x.keys.PublicOld)
	case x.emergency:
		update.Title = fmt.Sprintf("Write the new key pair to Secret %s and remove %s", x.secretRef(), x.keys.PublicOld)
	case x.sm():
		update.Title = fmt.Sprintf("Add a Secret Manager version of %s with the new key pair, the old public key as %s", x.gsmSecret, x.keys.PublicOld)
	default:
		update.Title = fmt.Sprintf("Write the new key pair to Secret %s, keeping the old public key as %s", x.secretRef(), x.keys.PublicOld)
	}
	backup := rotators.Step{Name: StepBackup, Title: "Back up Secret " + x.secretRef(), Run: x.backup}
	if x.sm() {
		backup.Title = "Record the Secret Manager version in use (the backup)"
	}
	steps := []rotators.Step{
		backup,
		{Name: StepGenerate, Title: fmt.Sprintf("Generate a %d-bit RSA key pair and a key id", s.KeyBits), Run: x.generate},
		update,
	}
	if x.sm() {
		steps = append(steps, rotators.Step{Name: StepSync, Title: "Force-sync ExternalSecret " + x.esRef(), Timeout: syncTimeout, Run: x.sync})
	}
	steps = append(steps, rotators.Step{Name: StepRestart, Title: "Rolling restart " + x.deployment, Timeout: restartTimeout, Run: x.restart})
	verify := rotators.Step{Name: StepVerify, Title: fmt.Sprintf("Verify that Secret %s holds the new key pair", x.secretRef()), Run: x.verify}

	p := rotators.Plan{Rollback: x.rollbackSteps(restartTimeout, syncTimeout)}
	if spec.RollbackOf != "" {
		// `/rotate rollback`: the executor runs Rollback with the original
		// run's facts. Steps are the same, so no reading of the plan can
		// rotate again, and there is no follow-up to schedule.
		p.Steps = p.Rollback
		p.Notes = x.rollbackNotes()
		return p
	}
	if x.emergency {
		p.Steps = append(steps,
			rotators.Step{
				Name: StepInvalidateSessions, Title: fmt.Sprintf("Invalidate all sessions: run `%s` in a ready %s pod", strings.Join(x.command, " "), x.deployment),
				Timeout: s.invalidateTimeout + stepMargin, Attempts: invalidateAttempts, Run: x.invalidateSessions,
			},
			rotators.Step{Name: StepSyncAll, Title: "Force-sync every ExternalSecret in namespace " + x.namespace, Timeout: syncTimeout, Run: x.syncAll},
			verify,
		)
		p.Notes = x.emergencyNotes()
		return p
	}
	p.Steps = append(steps, verify, rotators.Step{
		Name: StepWaitTokens, Title: fmt.Sprintf("Wait %s for access tokens signed with the old key to expire", human(s.tokenLifetime)),
		Timeout: s.tokenLifetime + stepMargin, Run: x.waitTokens,
	})
	p.FollowUps = []rotators.FollowUp{x.removalFollowUp(restartTimeout, syncTimeout)}
	p.Notes = x.notes()
	return p
}

func (x *rotation) notes() []string {
	s := x.r.s
	notes := []string{x.backupNote()}
	notes = append(notes,
		fmt.Sprintf("A new %d-bit RSA key pair with a new key id replaces the signing key; the old public key stays valid as %s for %s, then is removed automatically (and %s restarted).",
			s.KeyBits, x.keys.PublicOld, human(s.gracePeriod), x.deployment),
		fmt.Sprintf("After the rollout of %s the rotation waits %s for access tokens signed with the old key to expire.", x.deployment, human(s.tokenLifetime)),
	)
	return notes
}

func (x *rotation) emergencyNotes() []string {
	s := x.r.s
	container := "its default container"
	if x.container != "" {
		container = "container " + x.container
	}
	return []string{
		fmt.Sprintf("EMERGENCY: %s is removed in the same rotation, with no grace period: tokens signed with the old key stop verifying as soon as the rollout of %s completes.", x.keys.PublicOld, x.deployment),
		fmt.Sprintf("All sessions are invalidated: `%s` runs in one ready %s pod (%s) through the Kubernetes exec API; its exit code is reported, its output never (it may hold secrets).", strings.Join(x.command, " "), x.deployment, container),
		fmt.Sprintf("Every ExternalSecret in namespace %s is force-synced; those whose refresh is disabled are listed, not synced.", x.namespace),
		x.backupNote() + " If a step fails after the new key is written, the compromised key is NOT put back automatically; `/rotate rollback` can restore it, with approval.",
		fmt.Sprintf("A new %d-bit RSA key pair with a new key id replaces the signing key.", s.KeyBits),
	}
}

func (x *rotation) rollbackNotes() []string {
	from := fmt.Sprintf("backup Secret %s/%s", x.namespace, kube.BackupName(x.secretName, x.spec.RollbackOf))
	if x.sm() {
		from = fmt.Sprintf("the Secret Manager version of %s that was in use before %s (added again as the newest version; the versions %s added are disabled)",
			x.gsmSecret, x.spec.RollbackOf, x.spec.RollbackOf)
	}
	return []string{
		fmt.Sprintf("Restores the keys %s replaced, from %s, restarts %s and verifies the previous key id.", x.spec.RollbackOf, from, x.deployment),
		fmt.Sprintf("Tokens signed with the key %s made stop verifying once the rollout completes.", x.spec.RollbackOf),
	}
}

func (x *rotation) backupNote() string {
	if x.sm() {
		return fmt.Sprintf("The keys are in Secret Manager secret %s, synced into Secret %s by ExternalSecret %s; the version in use now is the backup.", x.gsmSecret, x.secretRef(), x.esRef())
	}
	return fmt.Sprintf("Secret %s is backed up to %s/%s first.", x.secretRef(), x.namespace, kube.BackupName(x.secretName, x.spec.RequestID))
}

func (x *rotation) sm() bool          { return x.gsmSecret != "" }
func (x *rotation) secretRef() string { return x.namespace + "/" + x.secretName }
func (x *rotation) esRef() string     { return x.namespace + "/" + x.externalSecret }

// Missing collaborators are permanent failures: retrying cannot supply them.
func (x *rotation) cluster() (Cluster, error) {
	if x.r.clients.Cluster == nil {
		return nil, rotators.Permanent(errors.New("no Kubernetes client is configured"))
	}
	return x.r.clients.Cluster, nil
}

func (x *rotation) store() (Store, error) {
	if x.r.clients.Store == nil {
		return nil, rotators.Permanent(errors.New("no Secret Manager client is configured"))
	}
	return x.r.clients.Store, nil
}

func (x *rotation) execer() (Execer, error) {
	if x.r.clients.Exec == nil {
		return nil, rotators.Permanent(errors.New("no Kubernetes exec client is configured"))
	}
	return x.r.clients.Exec, nil
}

// --- reading the keys ---

// snapshot is the keys as one store holds them.
type snapshot struct {
	keys keySet
	// raw is the Secret Manager JSON object (every member), nil for a Secret.
	raw map[string]json.RawMessage
	// version is the Secret Manager version read, "" for a Secret.
	version string
	// where names the Secret or version, for messages.
	where string
}

// kidOf is the key id a snapshot holds ("" when none).
func (x *rotation) kidOf(sn snapshot) string { return string(sn.keys[x.keys.KeyID].Reveal()) }

// secretSnapshot reads Secret ns/name.
func (x *rotation) secretSnapshot(ctx context.Context, name string) (snapshot, error) {
	cl, err := x.cluster()
	if err != nil {
		return snapshot{}, err
	}
	data, err := cl.SecretData(ctx, x.namespace, name)
	if err != nil {
		return snapshot{}, fmt.Errorf("reading Secret %s/%s: %w", x.namespace, name, err)
	}
	return snapshot{keys: data, where: "Secret " + x.namespace + "/" + name}, nil
}

// versionSnapshot reads a Secret Manager version.
func (x *rotation) versionSnapshot(ctx context.Context, version string) (snapshot, error) {
	st, err := x.store()
	if err != nil {
		return snapshot{}, err
	}
	v, err := st.Access(ctx, version)
	if err != nil {
		return snapshot{}, fmt.Errorf("reading %s: %w", version, err)
	}
	ks, raw, err := decodePayload(v)
	if err != nil {
		return snapshot{}, rotators.Permanent(fmt.Errorf("%s is not the keys' JSON object: %w", version, err))
	}
	return snapshot{keys: ks, raw: raw, version: version, where: version}, nil
}

// current reads the keys where rotary writes them: the Secret, or the
// latest enabled Secret Manager version.
func (x *rotation) current(ctx context.Context) (snapshot, error) {
	if !x.sm() {
		return x.secretSnapshot(ctx, x.secretName)
	}
	st, err := x.store()
	if err != nil {
		return snapshot{}, err
	}
	latest, err := st.LatestEnabled(ctx, x.gsmSecret)
	if errors.Is(err, gsm.ErrNoVersion) {
		return snapshot{}, rotators.Permanent(fmt.Errorf("Secret Manager secret %s has no enabled version: there are no keys to rotate; create the first version by hand", x.gsmSecret))
	}
	if err != nil {
		return snapshot{}, fmt.Errorf("reading the current version of %s: %w", x.gsmSecret, err)
	}
	return x.versionSnapshot(ctx, latest)
}

// previous reads the backup: the backup Secret, or the version in use before.
func (x *rotation) previous(ctx context.Context, run rotators.Run) (snapshot, error) {
	if x.sm() {
		prev := run.Fact(factPrevVersion)
		if prev == "" {
			return snapshot{}, rotators.Permanent(fmt.Errorf("no previous version recorded (fact %s): the backup step has not run", factPrevVersion))
		}
		return x.versionSnapshot(ctx, prev)
	}
	backup := run.Fact(factBackup)
	if backup == "" {
		return snapshot{}, rotators.Permanent(fmt.Errorf("no backup recorded (fact %s): the backup step has not run", factBackup))
	}
	return x.secretSnapshot(ctx, backup)
}

// checkSteadyState refuses keys without a usable public key to keep as the
// old one; it returns that key's fingerprint.
func (x *rotation) checkSteadyState(sn snapshot) (string, error) {
	pub, ok := sn.keys[x.keys.Public]
	if !ok || pub.IsZero() {
		return "", rotators.Permanent(fmt.Errorf("%s has no %s (keys: %s): there is no key pair to rotate; create the first one by hand",
			sn.where, x.keys.Public, strings.Join(sn.keys.keyNames(), ", ")))
	}
	fp, err := publicFingerprint(pub)
	if err != nil {
		return "", rotators.Permanent(fmt.Errorf("%s's %s is not a PEM RSA public key: %w", sn.where, x.keys.Public, err))
	}
	return fp, nil
}

// --- forward steps ---

// backup records what the rotation will replace: an immutable copy of the
// Secret, or the Secret Manager version in use.
func (x *rotation) backup(ctx context.Context, run rotators.Run) error {
	fact := factBackup
	if x.sm() {
		fact = factPrevVersion
	}
	if run.Fact(fact) != "" {
		return nil
	}
	sn, err := x.current(ctx)
	if err != nil {
		return err
	}
	fp, err := x.checkSteadyState(sn)
	if err != nil {
		return err
	}
	kid := orDefault(x.kidOf(sn), noKID)
	if x.sm() {
		if err := run.Record(ctx, factPrevVersion, sn.version); err != nil {
			return err
		}
		run.Log().InfoContext(ctx, "recorded the version in use as the backup", "version", sn.version, "kid", kid, "public_key", fp)
		run.Progress(ctx, fmt.Sprintf("The keys in use are %s (kid %s, public key %s); it stays as the backup", sn.version, kid, fp))
		return nil
	}
	cl, err := x.cluster()
	if err != nil {
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
	run.Log().InfoContext(ctx, "backed up the secret", "secret", x.secretRef(), "backup", name, "kid", kid, "public_key", fp)
	run.Progress(ctx, fmt.Sprintf("Backed up Secret %s (kid %s, public key %s; keys %s) to %s/%s",
		x.secretRef(), kid, fp, strings.Join(sn.keys.keyNames(), ", "), x.namespace, name))
	return nil
}

// generate makes the key pair and key id; the private key is kept in
// memory only, after its kid and fingerprint are recorded. A restart that
// lost it makes a new one, unless the store already holds the journaled kid.
func (x *rotation) generate(ctx context.Context, run rotators.Run) error {
	if _, ok := run.Secret(secretPrivateKey); ok {
		return nil
	}
	if kid := run.Fact(factNewKID); kid != "" {
		written, err := x.holdsNewKey(ctx, run)
		if err != nil {
			return err
		}
		if written {
			run.Progress(ctx, fmt.Sprintf("The new key (kid %s) is already written; not generating another", kid))
			return nil
		}
		run.Log().InfoContext(ctx, "the generated key was lost before it was written; generating another", "lost_kid", kid)
	}
	bits := x.r.s.KeyBits
	priv, err := x.r.clients.NewKey(bits)
	if err != nil {
		return fmt.Errorf("generating a %d-bit RSA key: %w", bits, err)
	}
	if got := priv.N.BitLen(); got != bits {
		return rotators.Permanent(fmt.Errorf("the key generator made a %d-bit key, want %d", got, bits))
	}
	kid, err := newKID(x.r.clients.Rand)
	if err != nil {
		return err
	}
	pemKey, err := encodePrivate(priv)
	if err != nil {
		return err
	}
	fp, err := fingerprint(&priv.PublicKey)
	if err != nil {
		return err
	}
	if err := run.Record(ctx, factNewKID, kid); err != nil {
		return err
	}
	if err := run.Record(ctx, factNewFingerprint, fp); err != nil {
		return err
	}
	run.KeepSecret(secretPrivateKey, pemKey)
	run.Log().InfoContext(ctx, "generated a key pair", "bits", bits, "kid", kid, "public_key", fp)
	run.Progress(ctx, fmt.Sprintf("Generated a %d-bit RSA key pair, kid %s, public key %s (the private key is in memory until it is written)", bits, kid, fp))
	return nil
}

// holdsNewKey reports whether the store already holds the journaled new
// key: the Secret has its kid and public key, or a Secret Manager version
// after the previous one does (then recorded as factNewVersion, for a write
// whose answer was lost).
func (x *rotation) holdsNewKey(ctx context.Context, run rotators.Run) (bool, error) {
	kid, fp := run.Fact(factNewKID), run.Fact(factNewFingerprint)
	if kid == "" {
		return false, nil
	}
	if x.sm() && run.Fact(factNewVersion) != "" {
		return true, nil
	}
	sn, err := x.current(ctx)
	if err != nil {
		return false, err
	}
	if x.sm() && sn.version == run.Fact(factPrevVersion) {
		return false, nil
	}
	if x.kidOf(sn) != kid {
		return false, nil
	}
	if got, err := publicFingerprint(sn.keys[x.keys.Public]); err != nil || got != fp {
		return false, rotators.Permanent(fmt.Errorf("%s has this rotation's kid %s but not its public key %s: someone changed it; refusing to go on", sn.where, kid, fp))
	}
	if x.sm() {
		if err := run.Record(ctx, factNewVersion, sn.version); err != nil {
			return false, err
		}
	}
	return true, nil
}

// update writes the new key pair and key id, with the previous public key
// as public_old (or, in an emergency, without public_old).
func (x *rotation) update(ctx context.Context, run rotators.Run) error {
	kid := run.Fact(factNewKID)
	if kid == "" {
		return rotators.Permanent(fmt.Errorf("no new key recorded (fact %s): the generate step has not run", factNewKID))
	}
	done, err := x.holdsNewKey(ctx, run)
	if err != nil {
		return err
	}
	if done {
		run.Progress(ctx, fmt.Sprintf("%s already holds the new key (kid %s)", x.storeRef(run), kid))
		return nil
	}
	privPEM, ok := run.Secret(secretPrivateKey)
	if !ok {
		// Not written: generating another key is safe.
		return &rotators.SecretLostError{From: StepGenerate}
	}
	prev, err := x.previous(ctx, run)
	if err != nil {
		return err
	}
	oldPub := prev.keys[x.keys.Public]
	oldFP, err := x.checkSteadyState(prev)
	if err != nil {
		return err
	}
	oldKID := orDefault(x.kidOf(prev), noKID)
	// What was replaced, recorded before anything is: the follow-up and
	// the verification compare against it.
	for _, f := range [][2]string{{factOldFingerprint, oldFP}, {factOldKID, oldKID}} {
		if run.Fact(f[0]) == "" {
			if err := run.Record(ctx, f[0], f[1]); err != nil {
				return err
			}
		}
	}
	cur, err := x.current(ctx)
	if err != nil {
		return err
	}
	if err := x.unchangedSince(prev, cur, oldFP); err != nil {
		return err
	}
	priv, err := parsePrivate(privPEM)
	if err != nil {
		return rotators.Permanent(fmt.Errorf("the generated private key: %w", err))
	}
	newPub, err := encodePublic(&priv.PublicKey)
	if err != nil {
		return err
	}
	set := keySet{x.keys.Private: privPEM, x.keys.Public: secret.New(newPub), x.keys.KeyID: secret.FromString(kid)}
	var remove []string
	if x.emergency {
		remove = []string{x.keys.PublicOld}
	} else {
		set[x.keys.PublicOld] = oldPub
	}
	if run.Fact(factUpdateStarted) == "" {
		if err := run.Record(ctx, factUpdateStarted, "true"); err != nil {
			return err
		}
	}
	if err := x.write(ctx, run, cur, set, remove, factNewVersion); err != nil {
		return err
	}
	what := fmt.Sprintf("%s as %s", oldFP, x.keys.PublicOld)
	if x.emergency {
		what = "no " + x.keys.PublicOld + ": the old key no longer verifies once the rollout completes"
	}
	run.Log().InfoContext(ctx, "wrote the new key pair", "store", x.storeRef(run), "kid", kid, "old_kid", oldKID, "old_public_key", oldFP, "emergency", x.emergency)
	run.Progress(ctx, fmt.Sprintf("%s holds the new key pair (kid %s, public key %s) and %s", x.storeRef(run), kid, run.Fact(factNewFingerprint), what))
	return nil
}

// unchangedSince refuses to overwrite keys someone changed after the
// backup: their change would be lost, and the backup would not be what
// rollback should restore.
func (x *rotation) unchangedSince(prev, cur snapshot, oldFP string) error {
	if x.sm() {
		if cur.version != prev.version {
			return rotators.Permanent(fmt.Errorf("%s now serves %s, not %s that was backed up: someone added a version; refusing to overwrite it",
				x.gsmSecret, cur.version, prev.version))
		}
		return nil
	}
	fp, err := publicFingerprint(cur.keys[x.keys.Public])
	if err != nil || fp != oldFP || x.kidOf(cur) != x.kidOf(prev) {
		return rotators.Permanent(fmt.Errorf("Secret %s no longer holds the keys that were backed up (kid %s, public key %s): someone changed it; refusing to overwrite it",
			x.secretRef(), orDefault(x.kidOf(prev), noKID), oldFP))
	}
	return nil
}

// write stores cur's keys with set and remove applied: an update of the
// Secret (other keys untouched), or a new Secret Manager version (other
// members kept), recorded under versionFact.
func (x *rotation) write(ctx context.Context, run rotators.Run, cur snapshot, set keySet, remove []string, versionFact string) error {
	if !x.sm() {
		cl, err := x.cluster()
		if err != nil {
			return err
		}
		if err := cl.UpdateSecretData(ctx, x.namespace, x.secretName, set, remove); err != nil {
			return fmt.Errorf("writing Secret %s: %w", x.secretRef(), err)
		}
		return nil
	}
	st, err := x.store()
	if err != nil {
		return err
	}
	payload, err := encodePayload(cur.raw, set, remove)
	if err != nil {
		return rotators.Permanent(err)
	}
	// A crash between this add and its Record leaves a version holding the
	// journaled kid, which holdsNewKey (or the follow-up) recognises.
	version, err := st.AddVersion(ctx, x.gsmSecret, payload)
	if err != nil {
		return fmt.Errorf("adding a version to %s: %w", x.gsmSecret, err)
	}
	return run.Record(ctx, versionFact, version)
}

// storeRef names where the keys are written, for messages.
func (x *rotation) storeRef(run rotators.Run) string {
	if x.sm() {
		if v := run.Fact(factNewVersion); v != "" {
			return v
		}
		return "Secret Manager secret " + x.gsmSecret
	}
	return "Secret " + x.secretRef()
}

func (x *rotation) sync(ctx context.Context, run rotators.Run) error {
	if supersededBy(ctx, run, factSyncAllAt, factFollowUpSyncAt, factRollbackSyncAt) {
		return nil
	}
	return x.forceSync(ctx, run, factSyncAt)
}

// supersededBy reports whether a later step already stamped the same object
// (one of the later stamp facts is recorded). A repeat of the earlier step
// must then not send its own, older stamp again: the annotation would
// change back, and the operator sync or the rollout would happen again.
func supersededBy(ctx context.Context, run rotators.Run, later ...string) bool {
	for _, k := range later {
		if run.Fact(k) != "" {
			run.Progress(ctx, "Already done: a later step ("+k+") has acted on the same object since")
			return true
		}
	}
	return false
}

// forceSync force-syncs the ExternalSecret with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) forceSync(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.ForceSync(ctx, run, x.r.clients.Cluster, x.namespace, x.externalSecret, key, x.r.s.syncTimeout, after...)
}

func (x *rotation) restart(ctx context.Context, run rotators.Run) error {
	if supersededBy(ctx, run, factFollowUpRestartAt, factRollbackRestartAt) {
		return nil
	}
	return x.restartWith(ctx, run, factRestartAt)
}

// restartWith restarts the deployment with the stamp under key and waits
// for its rollout. A missing Cluster is refused by kubesteps.
func (x *rotation) restartWith(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.RestartAll(ctx, run, x.r.clients.Cluster, x.namespace, []string{x.deployment}, key, x.r.s.rolloutTimeout, after...)
}

// verify checks the Secret the application reads: the new kid, a public
// key that matches the private key and the recorded fingerprint, and
// public_old holding the previous public key (absent in an emergency).
func (x *rotation) verify(ctx context.Context, run rotators.Run) error {
	kid, fp := run.Fact(factNewKID), run.Fact(factNewFingerprint)
	if kid == "" || run.Fact(factUpdateStarted) == "" {
		return rotators.Permanent(errors.New("no new key was written: the update step has not run"))
	}
	sn, err := x.secretSnapshot(ctx, x.secretName)
	if err != nil {
		return err
	}
	fail := func(format string, a ...any) error {
		return rotators.Permanent(fmt.Errorf("Secret %s: "+format, append([]any{x.secretRef()}, a...)...))
	}
	if got := x.kidOf(sn); got != kid {
		return fail("%s is %q, want the new kid %s", x.keys.KeyID, got, kid)
	}
	priv, err := parsePrivate(sn.keys[x.keys.Private])
	if err != nil {
		return fail("%s is not a PEM RSA private key: %v", x.keys.Private, err)
	}
	pub, err := parsePublic(sn.keys[x.keys.Public])
	if err != nil {
		return fail("%s is not a PEM RSA public key: %v", x.keys.Public, err)
	}
	if !priv.PublicKey.Equal(pub) {
		return fail("%s is not the public key of %s", x.keys.Public, x.keys.Private)
	}
	if got, err := fingerprint(pub); err != nil || got != fp {
		return fail("%s is %s, want the generated key %s", x.keys.Public, got, fp)
	}
	old, hasOld := sn.keys[x.keys.PublicOld]
	var oldNote string
	switch {
	case x.emergency && hasOld:
		return fail("still has %s: the old key would go on verifying tokens", x.keys.PublicOld)
	case x.emergency:
		oldNote = "no " + x.keys.PublicOld
	default:
		want := run.Fact(factOldFingerprint)
		if got, err := publicFingerprint(old); err != nil || got != want {
			return fail("%s is %s, want the previous public key %s", x.keys.PublicOld, orDefault(got, "missing or unreadable"), want)
		}
		oldNote = fmt.Sprintf("%s is the previous public key %s", x.keys.PublicOld, want)
	}
	run.Progress(ctx, fmt.Sprintf("Secret %s holds kid %s with a matching key pair (public key %s); %s", x.secretRef(), kid, fp, oldNote))
	return nil
}

// waitTokens waits until every access token signed with the old key has
// expired, showing the remaining time. The deadline is recorded first, so
// a resumed step waits only for the rest.
func (x *rotation) waitTokens(ctx context.Context, run rotators.Run) error {
	lifetime := x.r.s.tokenLifetime
	if lifetime == 0 {
		run.Progress(ctx, "token_lifetime is 0: not waiting")
		return nil
	}
	deadline, err := x.tokensDeadline(ctx, run, lifetime)
	if err != nil {
		return err
	}
	for {
		left := deadline.Sub(run.Now())
		if left <= 0 {
			break
		}
		run.Progress(ctx, "Tokens signed with the old key expire in "+remaining(left))
		if err := run.Sleep(ctx, min(left, waitSlice)); err != nil {
			return fmt.Errorf("waiting for tokens signed with the old key to expire (until %s): %w", deadline.Format(time.RFC3339), err)
		}
	}
	run.Progress(ctx, fmt.Sprintf("Tokens signed with the old key have expired (token lifetime %s)", human(lifetime)))
	return nil
}

func (x *rotation) tokensDeadline(ctx context.Context, run rotators.Run, lifetime time.Duration) (time.Time, error) {
	if s := run.Fact(factTokensExpireAt); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, rotators.Permanent(fmt.Errorf("fact %s=%q is not a time: %w", factTokensExpireAt, s, err))
		}
		return t, nil
	}
	// Rounded up: a token issued in the last fraction of a second before
	// the rollout must have expired too.
	t := run.Now().UTC().Add(lifetime + time.Second - 1).Truncate(time.Second)
	if err := run.Record(ctx, factTokensExpireAt, t.Format(time.RFC3339)); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// human shows a configured duration as people write it: "24h", "15m",
// "1h30m" (not Go's "24h0m0s").
func human(d time.Duration) string {
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

// remaining shows a wait in whole minutes, rounded up ("12m", "1h05m").
func remaining(d time.Duration) string {
	m := int((d + time.Minute - 1) / time.Minute)
	if m < 60 {
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dh%02dm", m/60, m%60)
}
