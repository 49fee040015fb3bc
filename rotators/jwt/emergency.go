package jwt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
)

// invalidateSessions runs the configured command in one ready pod of the
// deployment. Only the exit code and the output's size are reported: the
// output may hold session ids or tokens, so it is not even kept. A repeat
// after a crash runs the command again, which is harmless (it logs every
// user out again); a recorded success is not repeated.
func (x *rotation) invalidateSessions(ctx context.Context, run rotators.Run) error {
	if run.Fact(factSessionsResult) != "" {
		return nil
	}
	ex, err := x.execer()
	if err != nil {
		return err
	}
	cmd := strings.Join(x.command, " ")
	pod, err := ex.ReadyPod(ctx, x.namespace, x.deployment)
	if err != nil {
		return fmt.Errorf("finding a ready pod of %s/%s to run `%s` in: %w", x.namespace, x.deployment, cmd, err)
	}
	if err := run.Record(ctx, factSessionsPod, pod); err != nil {
		return err
	}
	run.Progress(ctx, fmt.Sprintf("Running `%s` in pod %s/%s", cmd, x.namespace, pod))
	ectx, cancel := context.WithTimeout(ctx, x.r.s.invalidateTimeout)
	defer cancel()
	// maxOutput 0: the output is counted, never kept.
	res, err := ex.Exec(ectx, x.namespace, pod, x.container, x.command, 0)
	if err != nil {
		return fmt.Errorf("running `%s` in pod %s/%s (it may or may not have run; running it again is harmless): %w", cmd, x.namespace, pod, err)
	}
	run.Log().InfoContext(ctx, "session invalidation ran", "pod", x.namespace+"/"+pod, "exit_code", res.ExitCode, "output_bytes", res.OutputBytes)
	if res.ExitCode != 0 {
		return rotators.Permanent(fmt.Errorf("`%s` in pod %s/%s exited with code %d (%d bytes of output, not shown as it may hold secrets; run it by hand with kubectl exec to see it)",
			cmd, x.namespace, pod, res.ExitCode, res.OutputBytes))
	}
	result := fmt.Sprintf("pod %s, exit code 0, %d bytes of output", pod, res.OutputBytes)
	if err := run.Record(ctx, factSessionsResult, result); err != nil {
		return err
	}
	run.Progress(ctx, fmt.Sprintf("Sessions invalidated: `%s` in pod %s/%s exited with code 0 (%d bytes of output, not shown)", cmd, x.namespace, pod, res.OutputBytes))
	return nil
}

// syncAll force-syncs every ExternalSecret in the namespace, as the
// runbook's `kubectl annotate externalsecret --all force-sync=...`: all are
// annotated with one journaled stamp, then waited for concurrently (so the
// step takes at most sync_timeout, however many there are).
//
// An ExternalSecret whose refresh is disabled (refreshInterval 0 or
// refreshPolicy CreatedOnce) is listed, not fatal: External Secrets
// Operator ignores force-sync for it by design, so a failure would only
// block the rest of an emergency; a person checks it. Any other failure
// fails the step after all were tried; a repeat re-sends the same stamp
// (no second sync) and waits again.
func (x *rotation) syncAll(ctx context.Context, run rotators.Run) error {
	if run.Fact(factSyncAllResult) != "" {
		return nil
	}
	cl, err := x.cluster()
	if err != nil {
		return err
	}
	names, err := cl.ListExternalSecrets(ctx, x.namespace)
	if err != nil {
		return fmt.Errorf("listing the ExternalSecrets in namespace %s: %w", x.namespace, err)
	}
	if len(names) == 0 {
		if err := run.Record(ctx, factSyncAllResult, "none"); err != nil {
			return err
		}
		run.Progress(ctx, "No ExternalSecrets in namespace "+x.namespace)
		return nil
	}
	at, err := kubesteps.Stamp(ctx, run, factSyncAllAt, factSyncAt)
	if err != nil {
		return err
	}
	// A stamp moved past an earlier one may lie up to a second ahead; the
	// operator's refreshTime only proves a sync after the annotation once
	// the stamp's second has begun.
	if d := at.Sub(run.Now()); d > 0 {
		if err := run.Sleep(ctx, min(d, maxStampWait)); err != nil {
			return err
		}
	}
	var annotated, disabled, failed []string
	for _, n := range names {
		err := cl.ForceSyncExternalSecret(ctx, x.namespace, n, at)
		switch {
		case err == nil:
			annotated = append(annotated, n)
		case errors.Is(err, kube.ErrRefreshDisabled):
			disabled = append(disabled, n)
			run.Log().WarnContext(ctx, "externalsecret refresh is disabled; not force-synced", "externalsecret", x.namespace+"/"+n)
		default:
			failed = append(failed, fmt.Sprintf("%s (%v)", n, err))
		}
	}
	run.Progress(ctx, fmt.Sprintf("Force-sync requested for %d of %d ExternalSecrets in %s; waiting up to %s", len(annotated), len(names), x.namespace, human(x.r.s.syncTimeout)))
	// Waited for at once: one that does not sync must not use up the
	// others' time.
	wctx, cancel := context.WithTimeout(ctx, x.r.s.syncTimeout)
	defer cancel()
	errs := make([]error, len(annotated))
	var wg sync.WaitGroup
	for i, n := range annotated {
		wg.Go(func() { errs[i] = cl.WaitExternalSecretSynced(wctx, x.namespace, n, at) })
	}
	wg.Wait()
	var synced []string
	for i, n := range annotated {
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", n, errs[i]))
			continue
		}
		synced = append(synced, n)
	}
	summary := fmt.Sprintf("synced %d of %d: %s", len(synced), len(names), orDefault(strings.Join(synced, ", "), "none"))
	if len(disabled) > 0 {
		summary += fmt.Sprintf("; refresh disabled, not synced (check them by hand): %s", strings.Join(disabled, ", "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("force-syncing the ExternalSecrets in %s: %s; failed: %s", x.namespace, summary, strings.Join(failed, "; "))
	}
	if err := run.Record(ctx, factSyncAllResult, summary); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "force-synced every externalsecret", "namespace", x.namespace, "synced", synced, "refresh_disabled", disabled)
	run.Progress(ctx, "ExternalSecrets in "+x.namespace+": "+summary)
	return nil
}
