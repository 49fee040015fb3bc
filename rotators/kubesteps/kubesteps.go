// Package kubesteps owns the Kubernetes step behaviour the rotator kinds
// share: journaled restart/sync stamps, force-syncing an ExternalSecret and
// waiting for the operator, and rolling restarts of deployments one after
// the other.
//
// Rules:
//   - Every mutating call carries a stamp from the run's journal (Stamp),
//     recorded before the call, so a repeated step re-sends the same stamp
//     and the patch is a no-op (idempotency through the journal).
//   - The package calls Kubernetes only through the small consumer-side
//     interfaces below (*kube.Client satisfies them); a kind passes its own
//     Cluster, after checking it is configured.
//   - Errors are wrapped with %w and name the namespace/object; a failure
//     retrying cannot fix (ErrRefreshDisabled, a corrupt stamp fact) is
//     marked rotators.Permanent.
//   - Progress lines name objects only; nothing here ever sees a secret.
package kubesteps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// maxStampWait bounds the wait for a stamp's second to begin.
const maxStampWait = time.Second

// Syncer is what ForceSync needs of Kubernetes.
type Syncer interface {
	// ForceSyncExternalSecret fails with errors.Is(err, kube.ErrRefreshDisabled)
	// when the operator would ignore the annotation.
	ForceSyncExternalSecret(ctx context.Context, ns, name string, at time.Time) error
	WaitExternalSecretSynced(ctx context.Context, ns, name string, since time.Time) error
}

// RolloutWaiter is what WaitRollout needs of Kubernetes.
type RolloutWaiter interface {
	WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error
}

// Restarter is what RestartAll needs of Kubernetes.
type Restarter interface {
	RestartDeployment(ctx context.Context, ns, name string, at time.Time) error
	RolloutWaiter
}

// SecretStore is what the kinds that edit a Kubernetes Secret in place
// (backup first, restore on rollback) need of it; each such kind's Cluster
// embeds it and adds what else it uses.
type SecretStore interface {
	// BackupSecret copies Secret ns/name to an immutable backup named after
	// requestID and returns its name; a repeat returns the same backup unchanged.
	BackupSecret(ctx context.Context, ns, name, requestID string) (string, error)
	// SecretData reads Secret ns/name's keys (a missing key is not in the map).
	SecretData(ctx context.Context, ns, name string) (map[string]secret.Value, error)
	// UpdateSecretData sets and removes keys; a no-op when nothing changes.
	UpdateSecretData(ctx context.Context, ns, name string, set map[string]secret.Value, remove []string) error
	// RestoreSecret replaces ns/name's data with the backup's, exactly.
	RestoreSecret(ctx context.Context, ns, name, backupName string) error
}

// The adapter must keep satisfying the interfaces above.
var (
	_ Syncer      = (*kube.Client)(nil)
	_ Restarter   = (*kube.Client)(nil)
	_ SecretStore = (*kube.Client)(nil)
)

// errNoCluster: a kind built without a Kubernetes client (configuration
// checks only) reached a step that needs one; retrying cannot supply it.
var errNoCluster = errors.New("no Kubernetes client is configured")

// Stamp returns the time recorded under key, or records now there first, so
// a repeated step reuses its own earlier stamp (which makes the annotation
// patches no-ops). A new stamp is later than every stamp named in after:
// annotations have one-second precision, and a rollback's force-sync or
// restart within the same second as the forward one would otherwise be a
// no-op patch that syncs and restarts nothing.
func Stamp(ctx context.Context, run rotators.Run, key string, after ...string) (time.Time, error) {
	if s := run.Fact(key); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, rotators.Permanent(fmt.Errorf("fact %s=%q is not a time: %w", key, s, err))
		}
		return t, nil
	}
	t := run.Now().UTC().Truncate(time.Second)
	for _, k := range after {
		if prev, err := time.Parse(time.RFC3339, run.Fact(k)); err == nil && !t.After(prev) {
			t = prev.Add(time.Second)
		}
	}
	if err := run.Record(ctx, key, t.Format(time.RFC3339)); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// ForceSync annotates ExternalSecret ns/name with the stamp under key (see
// Stamp for after) and waits up to timeout until the operator has synced it.
func ForceSync(ctx context.Context, run rotators.Run, c Syncer, ns, name, key string, timeout time.Duration, after ...string) error {
	if c == nil {
		return rotators.Permanent(errNoCluster)
	}
	at, err := Stamp(ctx, run, key, after...)
	if err != nil {
		return err
	}
	// A stamp moved past an earlier one may lie up to a second ahead. The
	// operator's refreshTime (second precision) is only proof of a sync made
	// after the annotation if the annotation's second has begun, so wait for it.
	if d := at.Sub(run.Now()); d > 0 {
		select {
		case <-time.After(min(d, maxStampWait)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	es := ns + "/" + name
	if err := c.ForceSyncExternalSecret(ctx, ns, name, at); err != nil {
		if errors.Is(err, kube.ErrRefreshDisabled) {
			return rotators.Permanent(fmt.Errorf("ExternalSecret %s has refreshInterval 0, so External Secrets Operator ignores force-sync; give it a refreshInterval (e.g. 1h): %w", es, err))
		}
		return fmt.Errorf("force-syncing ExternalSecret %s: %w", es, err)
	}
	run.Progress(ctx, fmt.Sprintf("Waiting for ExternalSecret %s to sync (up to %s)", es, timeout))
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.WaitExternalSecretSynced(wctx, ns, name, at); err != nil {
		return fmt.Errorf("waiting for ExternalSecret %s to sync: %w", es, err)
	}
	run.Progress(ctx, fmt.Sprintf("ExternalSecret %s synced", es))
	return nil
}

// RestartAll restarts the deployments in ns one after the other, each with
// the stamp under key (see Stamp for after), waiting up to timeout for each
// rollout before the next: a broken new value stops at the first deployment.
func RestartAll(ctx context.Context, run rotators.Run, c Restarter, ns string, deployments []string, key string, timeout time.Duration, after ...string) error {
	if c == nil {
		return rotators.Permanent(errNoCluster)
	}
	at, err := Stamp(ctx, run, key, after...)
	if err != nil {
		return err
	}
	for i, d := range deployments {
		run.Progress(ctx, fmt.Sprintf("Restarting %s (%d of %d)", d, i+1, len(deployments)))
		if err := c.RestartDeployment(ctx, ns, d, at); err != nil {
			return fmt.Errorf("restarting deployment %s/%s: %w", ns, d, err)
		}
		if err := WaitRollout(ctx, run, c, ns, d, timeout); err != nil {
			return err
		}
	}
	run.Progress(ctx, "Restarted "+strings.Join(deployments, ", "))
	return nil
}

// WaitRollout waits up to timeout for deployment ns/name's rollout to
// complete, showing the rollout's messages as progress.
func WaitRollout(ctx context.Context, run rotators.Run, c RolloutWaiter, ns, name string, timeout time.Duration) error {
	if c == nil {
		return rotators.Permanent(errNoCluster)
	}
	last := ""
	progress := func(msg string) {
		if msg != last { // each line is a journal write: skip repeats
			last = msg
			run.Progress(ctx, name+": "+msg)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.WaitRollout(wctx, ns, name, progress); err != nil {
		return fmt.Errorf("waiting for the rollout of %s/%s: %w", ns, name, err)
	}
	return nil
}
