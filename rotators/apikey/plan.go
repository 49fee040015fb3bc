package apikey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsmsteps"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Step names: stable identifiers stored in journals. Never rename one.
const (
	StepNewKey       = "new_key"
	StepStoreVersion = "store_version"
	StepSync         = "sync"
	StepRestart      = "restart"
	StepVerify       = "verify"
	StepRevoke       = "revoke"

	StepRestoreVersion  = "restore_version"
	StepRollbackSync    = "rollback_sync"
	StepRollbackRestart = "rollback_restart"
	StepRevokeNewKey    = "revoke_new_key"
)

// Prompt ids.
const (
	PromptPasteKey = "paste_key"
	PromptRevoked  = "revoked"
)

// Facts (persisted, never secret) and the memory-only secret.
const (
	// factNewKeyName: the name the new key gets, recorded before creating it.
	factNewKeyName = "new_key_name"
	// factNewKeyID: the new key's id at the provider (OpenAI: service account id).
	factNewKeyID = "new_key_id"
	// factNewKeyReceived: manual provider; the requester pasted a key.
	factNewKeyReceived = "new_key_received"
	// factPrevVersion: the version enabled before, recorded before adding one ("none").
	factPrevVersion = "prev_version"
	// factNewVersion: the version holding the new key.
	factNewVersion = "new_version"
	// factSyncAt, factRestartAt: the force-sync and restart stamps, recorded before use.
	factSyncAt    = "sync_at"
	factRestartAt = "restart_at"
	// factRevokeStarted: the old key or version may be gone; rollback must not run.
	factRevokeStarted = "revoke_started"
	// factOldKeyRevoked: manual provider; a participant confirmed the revocation.
	factOldKeyRevoked = "old_key_revoked"
	// factRestoredVersion: the version rollback added with the previous value.
	factRestoredVersion = "restored_version"
	// factRollbackSyncAt, factRollbackRestartAt: rollback's own stamps.
	factRollbackSyncAt    = "rollback_sync_at"
	factRollbackRestartAt = "rollback_restart_at"
	// factNewKeyRevoked: rollback deleted the new key.
	factNewKeyRevoked = "new_key_revoked"

	// noVersion is factPrevVersion's value when the secret had no enabled version.
	noVersion = "none"
	// secretNewKey is the memory-only key under which the new value is kept.
	secretNewKey = "new_key"
)

// Step limits beyond the rotators defaults.
const (
	// stepMargin is added to a step's own wait so the step, not its
	// deadline, reports a timeout.
	stepMargin = time.Minute
	// humanStepTimeout is how long a step waits for a person to answer.
	humanStepTimeout = 2 * time.Hour
	// humanStepAttempts: a prompt nobody answered is not asked again.
	humanStepAttempts = 1
	// maxPodsListed bounds the pods named in a verify failure.
	maxPodsListed = 10
)

// rotation is one request's plan: the target's settings with {env} expanded.
type rotation struct {
	r              *Rotator
	spec           rotators.Spec
	namespace      string
	secretName     string
	externalSecret string
	deployments    []string
	pattern        string
	keyName        string
	keyPrefix      string
	openAI         *OpenAIConfig
	sendGrid       *SendGridConfig
	dashboardURL   string
}

func (r *Rotator) expand(spec rotators.Spec) *rotation {
	env := func(s string) string { return strings.ReplaceAll(s, EnvPlaceholder, spec.Env) }
	s := r.s
	x := &rotation{
		r:              r,
		spec:           spec,
		namespace:      env(s.Namespace),
		secretName:     gsm.SecretName(env(s.SecretManager.Project), env(s.SecretManager.Secret)),
		externalSecret: env(s.ExternalSecret),
		pattern:        expandPattern(s.LogErrorPattern, spec.Env),
		keyName:        KeyName(r.target, spec.Env, spec.RequestID),
		keyPrefix:      KeyPrefix(r.target, spec.Env),
	}
	for _, d := range s.Deployments {
		x.deployments = append(x.deployments, env(d))
	}
	if s.OpenAI != nil {
		x.openAI = &OpenAIConfig{APIBase: env(s.OpenAI.APIBase), ProjectID: env(s.OpenAI.ProjectID), AdminKeyEnv: env(s.OpenAI.AdminKeyEnv)}
	}
	if s.SendGrid != nil {
		g := &SendGridConfig{APIBase: env(s.SendGrid.APIBase), AdminKeyEnv: env(s.SendGrid.AdminKeyEnv)}
		for _, sc := range s.SendGrid.Scopes {
			g.Scopes = append(g.Scopes, env(sc))
		}
		x.sendGrid = g
	}
	if s.Manual != nil {
		x.dashboardURL = env(s.Manual.DashboardURL)
	}
	return x
}

// Plan returns the steps of a rotation of r's target for spec.
func (r *Rotator) Plan(spec rotators.Spec) rotators.Plan {
	x := r.expand(spec)
	manual := r.s.Provider == ProviderManual
	deps := strings.Join(x.deployments, ", ")

	newKey := rotators.Step{Name: StepNewKey, Title: "Create a new " + x.providerTitle() + " key", Run: x.newKey}
	revoke := rotators.Step{Name: StepRevoke, Title: "Revoke the old key and disable the old Secret Manager version", Run: x.revoke}
	if manual {
		newKey.Timeout, newKey.Attempts = humanStepTimeout, humanStepAttempts
		revoke.Timeout, revoke.Attempts = humanStepTimeout, humanStepAttempts
	}
	syncTimeout := r.s.syncTimeout + stepMargin
	restartTimeout := time.Duration(len(x.deployments))*r.s.rolloutTimeout + stepMargin
	p := rotators.Plan{
		Steps: []rotators.Step{
			newKey,
			{Name: StepStoreVersion, Title: "Add a new Secret Manager version", Run: x.storeVersion},
			{Name: StepSync, Title: fmt.Sprintf("Force-sync ExternalSecret %s/%s", x.namespace, x.externalSecret), Timeout: syncTimeout, Run: x.sync},
			{Name: StepRestart, Title: "Rolling restart " + deps, Timeout: restartTimeout, Run: x.restart},
			{Name: StepVerify, Title: fmt.Sprintf("Check %s logs for errors", deps), Run: x.verify},
			revoke,
		},
		Rollback: []rotators.Step{
			{Name: StepRestoreVersion, Title: "Restore the previous Secret Manager version", Run: x.restoreVersion},
			{Name: StepRollbackSync, Title: fmt.Sprintf("Force-sync ExternalSecret %s/%s again", x.namespace, x.externalSecret), Timeout: syncTimeout, Run: x.rollbackSync},
			{Name: StepRollbackRestart, Title: "Rolling restart " + deps + " again", Timeout: restartTimeout, Run: x.rollbackRestart},
			{Name: StepRevokeNewKey, Title: "Revoke the new key", Run: x.revokeNewKey},
		},
	}
	if manual {
		p.Notes = append(p.Notes,
			"The requester will be asked to paste the new key.",
			"The requester or approver will be asked to confirm that the old key was revoked.")
	}
	p.Notes = append(p.Notes, fmt.Sprintf("Deployments %s in namespace %s will be restarted, in this order.", deps, x.namespace))
	return p
}

// providerTitle names the provider in step titles.
func (x *rotation) providerTitle() string {
	switch x.r.s.Provider {
	case ProviderOpenAI:
		return "OpenAI"
	case ProviderSendGrid:
		return "SendGrid"
	}
	// A manual target is named for its provider (stripe → "Stripe").
	t := x.r.target
	if t == "" {
		return t
	}
	return strings.ToUpper(t[:1]) + t[1:]
}

// dashboardRef is " (<dashboard_url>)", or "" when none is configured.
func (x *rotation) dashboardRef() string {
	if x.dashboardURL == "" {
		return ""
	}
	return " (" + x.dashboardURL + ")"
}

// Missing collaborators are permanent failures: retrying cannot supply them.
func (x *rotation) store() (SecretStore, error) {
	if x.r.clients.Store == nil {
		return nil, rotators.Permanent(errors.New("no Secret Manager client is configured"))
	}
	return x.r.clients.Store, nil
}

func (x *rotation) cluster() (Cluster, error) {
	if x.r.clients.Cluster == nil {
		return nil, rotators.Permanent(errors.New("no Kubernetes client is configured"))
	}
	return x.r.clients.Cluster, nil
}

// provider returns the configured provider's client, with its admin key
// looked up now (not at Build, which runs without credentials).
func (x *rotation) provider() (provider, error) {
	c := x.r.clients
	if c.HTTP == nil {
		return nil, rotators.Permanent(errors.New("no HTTP client is configured"))
	}
	if c.Creds == nil {
		return nil, rotators.Permanent(errors.New("no credential source is configured"))
	}
	if strings.Contains(x.spec.Env, keyNameSep) {
		return nil, rotators.Permanent(fmt.Errorf("environment %q contains %s, which key names use as a separator", x.spec.Env, keyNameSep))
	}
	lookup := func(what, name string) (secret.Value, error) {
		v, err := c.Creds.Lookup(name)
		if err != nil {
			return secret.Value{}, rotators.Permanent(fmt.Errorf("looking up the %s admin key (credential %s): %w", what, name, err))
		}
		if v.IsZero() {
			return secret.Value{}, rotators.Permanent(fmt.Errorf("the %s admin key (credential %s) is empty", what, name))
		}
		return v, nil
	}
	switch {
	case x.openAI != nil:
		key, err := lookup("OpenAI", x.openAI.AdminKeyEnv)
		if err != nil {
			return nil, err
		}
		return newOpenAIClient(c.HTTP, x.openAI.APIBase, key, x.openAI.ProjectID)
	case x.sendGrid != nil:
		key, err := lookup("SendGrid", x.sendGrid.AdminKeyEnv)
		if err != nil {
			return nil, err
		}
		return newSendGridClient(c.HTTP, x.sendGrid.APIBase, key, x.sendGrid.Scopes)
	}
	return nil, rotators.Permanent(fmt.Errorf("provider %q has no API", x.r.s.Provider))
}

// --- forward steps ---

// newKey creates the new key and keeps its value in memory.
func (x *rotation) newKey(ctx context.Context, run rotators.Run) error {
	if run.Fact(factNewVersion) != "" {
		return nil // the key is already in Secret Manager
	}
	if _, ok := run.Secret(secretNewKey); ok {
		return nil
	}
	if x.r.s.Provider == ProviderManual {
		return x.askNewKey(ctx, run)
	}
	prov, err := x.provider()
	if err != nil {
		return err
	}
	if err := run.Record(ctx, factNewKeyName, x.keyName); err != nil {
		return err
	}
	// A key of this name exists only if an earlier attempt made it and
	// lost its value (a crash, or a response that never arrived): delete
	// it, so exactly one key per request exists.
	deleted, err := x.deleteKeys(ctx, prov, func(k providerKey) bool { return k.Name == x.keyName })
	if err != nil {
		return err
	}
	if len(deleted) > 0 {
		run.Log().InfoContext(ctx, "deleted a key left by an earlier attempt", "key_ids", deleted)
	}
	key, value, err := prov.create(ctx, x.keyName)
	if err != nil {
		return err
	}
	run.KeepSecret(secretNewKey, value)
	if err := run.Record(ctx, factNewKeyID, key.ID); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "created a new key", "key_name", x.keyName, "key_id", key.ID)
	run.Progress(ctx, fmt.Sprintf("Created %s %s (%s)", prov.noun(), x.keyName, key.ID))
	return nil
}

// askNewKey asks the requester to make the key by hand and paste it.
func (x *rotation) askNewKey(ctx context.Context, run rotators.Run) error {
	label := "Create a new restricted key in the " + x.providerTitle() + " dashboard" + x.dashboardRef() + " and paste it here"
	answer, err := run.Ask(ctx, rotators.Prompt{ID: PromptPasteKey, Label: label, Secret: true, Audience: rotators.AudienceRequester, Park: true})
	if err != nil {
		return fmt.Errorf("waiting for the new key: %w", err)
	}
	// A pasted value often carries a newline; stored, it would break the key.
	value := secret.New(bytes.TrimSpace(answer.Reveal()))
	if value.IsZero() {
		return errors.New("the pasted key is empty")
	}
	run.KeepSecret(secretNewKey, value)
	if err := run.Record(ctx, factNewKeyReceived, "true"); err != nil {
		return err
	}
	run.Progress(ctx, "Received the new key")
	return nil
}

// storeVersion adds the new key as a new Secret Manager version.
func (x *rotation) storeVersion(ctx context.Context, run rotators.Run) error {
	if run.Fact(factNewVersion) != "" {
		return nil
	}
	value, ok := run.Secret(secretNewKey)
	if !ok {
		return &rotators.SecretLostError{From: StepNewKey}
	}
	store, err := x.store()
	if err != nil {
		return err
	}
	prev := run.Fact(factPrevVersion)
	if prev == "" {
		// Recorded once, before the first add: a repeat after an add whose
		// answer was lost must not take that add for the previous version.
		latest, err := store.LatestEnabled(ctx, x.secretName)
		switch {
		case errors.Is(err, gsm.ErrNoVersion):
			latest = noVersion
		case err != nil:
			return fmt.Errorf("reading the current version of %s: %w", x.secretName, err)
		}
		if err := run.Record(ctx, factPrevVersion, latest); err != nil {
			return err
		}
		prev = latest
	}
	if x.r.s.Provider == ProviderManual && prev != noVersion {
		// A person may paste the old key by mistake; revoking it later
		// would then break everything.
		old, err := store.Access(ctx, prev)
		if err != nil {
			return fmt.Errorf("reading %s to compare: %w", prev, err)
		}
		if old.Equal(value) {
			return rotators.Permanent(fmt.Errorf("the pasted key is the one %s already holds; paste a new key", prev))
		}
	}
	version, err := store.AddVersion(ctx, x.secretName, value)
	if err != nil {
		return fmt.Errorf("adding a version to %s: %w", x.secretName, err)
	}
	if err := run.Record(ctx, factNewVersion, version); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "added a secret version", "version", version, "previous", prev)
	run.Progress(ctx, fmt.Sprintf("Added %s (previous: %s)", version, prev))
	return nil
}

func (x *rotation) sync(ctx context.Context, run rotators.Run) error {
	return x.forceSync(ctx, run, factSyncAt)
}

// forceSync force-syncs the ExternalSecret with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) forceSync(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.ForceSync(ctx, run, x.r.clients.Cluster, x.namespace, x.externalSecret, key, x.r.s.syncTimeout, after...)
}

func (x *rotation) restart(ctx context.Context, run rotators.Run) error {
	return x.restartAll(ctx, run, factRestartAt)
}

// restartAll restarts the deployments in order with the stamp under key.
// A missing Cluster is refused by kubesteps as a permanent failure.
func (x *rotation) restartAll(ctx context.Context, run rotators.Run, key string, after ...string) error {
	return kubesteps.RestartAll(ctx, run, x.r.clients.Cluster, x.namespace, x.deployments, key, x.r.s.rolloutTimeout, after...)
}

// verify fails when a restarted deployment logged lines matching the
// pattern. It reports counts and pod names only: logs can hold secrets.
func (x *rotation) verify(ctx context.Context, run rotators.Run) error {
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	since, err := time.Parse(time.RFC3339, run.Fact(factRestartAt))
	if err != nil {
		return rotators.Permanent(fmt.Errorf("no restart time recorded (fact %s): the restart step has not run", factRestartAt))
	}
	pattern, err := regexp.Compile(x.pattern)
	if err != nil {
		return rotators.Permanent(fmt.Errorf("log_error_pattern for environment %q: %w", x.spec.Env, err))
	}
	var failures, notes []string
	for _, d := range x.deployments {
		scan, err := cl.ScanLogs(ctx, x.namespace, d, since, pattern)
		if err != nil {
			return fmt.Errorf("reading the logs of %s/%s: %w", x.namespace, d, err)
		}
		if scan.Pods == 0 {
			notes = append(notes, d+": no pods to check")
			continue
		}
		matching := 0
		pods := make([]string, 0, len(scan.Matches))
		for pod, n := range scan.Matches {
			if n > 0 {
				matching += n
				pods = append(pods, pod)
			}
		}
		if matching == 0 {
			notes = append(notes, fmt.Sprintf("%s: %d lines in %d pods, none match", d, scan.Lines, scan.Pods))
			continue
		}
		slices.Sort(pods)
		listed := make([]string, 0, min(len(pods), maxPodsListed))
		for _, pod := range pods[:min(len(pods), maxPodsListed)] {
			listed = append(listed, fmt.Sprintf("%s (%d)", pod, scan.Matches[pod]))
		}
		if len(pods) > maxPodsListed {
			listed = append(listed, fmt.Sprintf("and %d more pods", len(pods)-maxPodsListed))
		}
		failures = append(failures, fmt.Sprintf("%s: %d of %d lines match %s: %s", d, matching, scan.Lines, x.pattern, strings.Join(listed, ", ")))
	}
	if len(failures) > 0 {
		return rotators.Permanent(fmt.Errorf("logs since the restart show errors — %s", strings.Join(failures, "; ")))
	}
	run.Progress(ctx, strings.Join(notes, "; "))
	return nil
}

// revoke deletes the old key and disables the old version(s). It reads
// everything first, so a failure before acting leaves the old key working
// and rollback possible; then it records factRevokeStarted, after which
// rollback refuses to run.
func (x *rotation) revoke(ctx context.Context, run rotators.Run) error {
	store, err := x.store()
	if err != nil {
		return err
	}
	newVersion := run.Fact(factNewVersion)
	if newVersion == "" {
		return rotators.Permanent(fmt.Errorf("no new version recorded (fact %s): refusing to revoke anything", factNewVersion))
	}
	manual := x.r.s.Provider == ProviderManual
	var (
		prov    provider
		oldKeys []providerKey
	)
	if !manual {
		newID := run.Fact(factNewKeyID)
		if newID == "" {
			return rotators.Permanent(fmt.Errorf("no new key id recorded (fact %s): refusing to revoke keys", factNewKeyID))
		}
		if prov, err = x.provider(); err != nil {
			return err
		}
		keys, err := prov.list(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			// Every key rotary made for this target and environment, but
			// the new one.
			if k.ID != newID && strings.HasPrefix(k.Name, x.keyPrefix) {
				oldKeys = append(oldKeys, k)
			}
		}
	}
	versions, err := x.versionsToDisable(ctx, run, store, newVersion)
	if err != nil {
		return err
	}

	if run.Fact(factRevokeStarted) == "" {
		if err := run.Record(ctx, factRevokeStarted, "true"); err != nil {
			return err
		}
	}
	var summary []string
	switch {
	case manual:
		if run.Fact(factOldKeyRevoked) == "" {
			label := "Revoke the old key in the " + x.providerTitle() + " dashboard" + x.dashboardRef() + ", then click Revoked"
			if _, err := run.Ask(ctx, rotators.Prompt{ID: PromptRevoked, Label: label, Audience: rotators.AudienceParticipants, Park: true}); err != nil {
				return fmt.Errorf("waiting for the old key to be revoked: %w", err)
			}
			if err := run.Record(ctx, factOldKeyRevoked, "confirmed"); err != nil {
				return err
			}
		}
		summary = append(summary, "The old key was revoked by hand.")
	case len(oldKeys) == 0:
		// The key in use before was made by hand: rotary cannot tell which
		// one it is, so a person must revoke it.
		summary = append(summary, fmt.Sprintf("No older key made by rotary exists: the old key was made by hand and must be revoked by hand %s (keep %s).", prov.where(), x.keyName))
		run.Log().WarnContext(ctx, "old key must be revoked by hand", "where", prov.where())
	default:
		var ids []string
		for _, k := range oldKeys {
			if err := prov.delete(ctx, k.ID); err != nil {
				return err
			}
			ids = append(ids, k.ID)
		}
		run.Log().InfoContext(ctx, "revoked old keys", "key_ids", ids)
		summary = append(summary, fmt.Sprintf("Revoked %d old %s(s): %s.", len(ids), prov.noun(), strings.Join(ids, ", ")))
	}
	for _, v := range versions {
		if err := store.Disable(ctx, v); err != nil {
			return fmt.Errorf("disabling %s: %w", v, err)
		}
	}
	if len(versions) > 0 {
		run.Log().InfoContext(ctx, "disabled old secret versions", "versions", versions)
		summary = append(summary, "Disabled "+strings.Join(versions, ", ")+".")
	}
	run.Progress(ctx, strings.Join(summary, " "))
	return nil
}

// deleteKeys deletes the provider's keys that match and returns their ids.
func (x *rotation) deleteKeys(ctx context.Context, prov provider, match func(providerKey) bool) ([]string, error) {
	keys, err := prov.list(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, k := range keys {
		if !match(k) {
			continue
		}
		if err := prov.delete(ctx, k.ID); err != nil {
			return deleted, err
		}
		deleted = append(deleted, k.ID)
	}
	return deleted, nil
}

// versionsToDisable lists the previous version, and every enabled version
// newer than it other than keep (the orphans of a crashed attempt).
func (x *rotation) versionsToDisable(ctx context.Context, run rotators.Run, store SecretStore, keep string) ([]string, error) {
	prev := run.Fact(factPrevVersion)
	prevN := uint64(0)
	if prev != noVersion {
		n, ok := gsmsteps.VersionNumber(prev)
		if !ok {
			return nil, rotators.Permanent(fmt.Errorf("fact %s=%q is not a version name", factPrevVersion, prev))
		}
		prevN = n
	}
	enabled, err := store.EnabledVersions(ctx, x.secretName)
	if err != nil {
		return nil, fmt.Errorf("listing the versions of %s: %w", x.secretName, err)
	}
	var out []string
	if prev != noVersion {
		out = append(out, prev) // even if already disabled: Disable is idempotent
	}
	for _, v := range enabled {
		if n, ok := gsmsteps.VersionNumber(v); ok && v != keep && v != prev && n > prevN {
			out = append(out, v)
		}
	}
	return out, nil
}
