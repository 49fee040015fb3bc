// Package gsmsteps owns the Secret Manager step behaviour the rotator kinds
// share: putting the previous version's value back as the newest version on
// rollback, taking the versions the rotation added out of service, and
// telling whether the latest version may still be one the rotation added.
//
// Rules:
//   - The version that was in use before a rotation (prev_version) is
//     recorded by the kind before it adds anything; everything here keys on
//     it, so an add whose answer was lost still shows as a newer version.
//   - Every add is recorded in the run's journal right after it returns, and
//     a repeated step reuses the recorded version instead of adding again
//     (idempotency through the journal). Disable is idempotent.
//   - The package calls Secret Manager only through the small consumer-side
//     interface Store (*gsm.Client satisfies it); a kind passes its own
//     store, which may be nil while configuration is only checked.
//   - Errors are wrapped with %w and name the secret or version; a missing
//     store is marked rotators.Permanent.
//   - Secret values pass through as secret.Value only; logs and progress
//     lines name versions, never values.
package gsmsteps

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Store is what Restore needs of Google Secret Manager. Secret names are
// "projects/<project>/secrets/<id>", version names ".../versions/<n>".
type Store interface {
	AddVersion(ctx context.Context, secretName string, v secret.Value) (versionName string, err error)
	// LatestEnabled fails with errors.Is(err, gsm.ErrNoVersion) when there is none.
	LatestEnabled(ctx context.Context, secretName string) (versionName string, err error)
	// EnabledVersions lists enabled versions, newest first.
	EnabledVersions(ctx context.Context, secretName string) ([]string, error)
	Access(ctx context.Context, versionName string) (secret.Value, error)
	// Disable is idempotent.
	Disable(ctx context.Context, versionName string) error
}

// The adapter must keep satisfying the interface above.
var _ Store = (*gsm.Client)(nil)

// errNoStore: a kind built without a Secret Manager client (configuration
// checks only) reached a step that needs one; retrying cannot supply it.
var errNoStore = errors.New("no Secret Manager client is configured")

// Restore adds the value of prev (the version in use before the rotation)
// to secretName as its newest version, records that version under
// restoredKey, and disables the enabled versions between the two: the ones
// this rotation added, including an orphan whose add was never recorded.
// It returns the restored version; the caller reports progress in its own
// words.
//
// It returns rotators.ErrNothingToUndo when prev is empty (nothing was
// added) or when prev is still the latest version and no restore was
// recorded (the rotation's add never landed).
func Restore(ctx context.Context, run rotators.Run, store Store, secretName, prev, restoredKey string) (string, error) {
	if prev == "" {
		return "", rotators.ErrNothingToUndo
	}
	if store == nil {
		return "", rotators.Permanent(errNoStore)
	}
	restored := run.Fact(restoredKey)
	if restored == "" {
		// prev_version is recorded before the add, so an add whose answer
		// was lost (no new_version fact) shows here as a newer latest.
		latest, err := store.LatestEnabled(ctx, secretName)
		if err != nil && !errors.Is(err, gsm.ErrNoVersion) {
			return "", fmt.Errorf("reading the current version of %s: %w", secretName, err)
		}
		if latest == prev {
			return "", rotators.ErrNothingToUndo
		}
		value, err := store.Access(ctx, prev)
		if err != nil {
			return "", fmt.Errorf("reading the previous version %s: %w", prev, err)
		}
		// A crash between this add and its Record adds the same value
		// twice, which is harmless.
		restored, err = store.AddVersion(ctx, secretName, value)
		if err != nil {
			return "", fmt.Errorf("adding the previous value to %s: %w", secretName, err)
		}
		if err := run.Record(ctx, restoredKey, restored); err != nil {
			return "", err
		}
	}
	// The versions this rotation added (new_version and any orphan) hold a
	// value that the kind's rollback makes useless: take them out of service.
	prevN, _ := VersionNumber(prev)
	restoredN, _ := VersionNumber(restored)
	enabled, err := store.EnabledVersions(ctx, secretName)
	if err != nil {
		return "", fmt.Errorf("listing the versions of %s: %w", secretName, err)
	}
	var disabled []string
	for _, v := range enabled {
		if n, ok := VersionNumber(v); ok && n > prevN && n < restoredN {
			if err := store.Disable(ctx, v); err != nil {
				return "", fmt.Errorf("disabling %s: %w", v, err)
			}
			disabled = append(disabled, v)
		}
	}
	run.Log().InfoContext(ctx, "restored the previous secret version", "previous", prev, "restored", restored, "disabled", disabled)
	return restored, nil
}

// LatestAdded returns the latest enabled version of secretName when it may
// be one this rotation added (it is neither prev nor restored), and ""
// when the secret serves the previous value again, or never got a version
// after prev. A rollback step that retires what the rotation made (a role,
// a key) refuses while this is not "": the workloads would read the new
// value at their next sync.
func LatestAdded(ctx context.Context, store Store, secretName, prev, restored string) (string, error) {
	if prev == "" {
		return "", nil // nothing was ever added
	}
	if store == nil {
		return "", rotators.Permanent(errNoStore)
	}
	latest, err := store.LatestEnabled(ctx, secretName)
	switch {
	case errors.Is(err, gsm.ErrNoVersion):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading the current version of %s: %w", secretName, err)
	case latest == prev || latest == restored:
		return "", nil
	}
	return latest, nil
}

// VersionNumber returns n of ".../versions/<n>".
func VersionNumber(version string) (uint64, bool) {
	_, id, ok := strings.Cut(version, "/versions/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}
