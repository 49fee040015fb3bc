package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// Labels and annotations rotary puts on the objects it creates.
const (
	// RequestLabel carries the ID of the rotation request that created an
	// object (a backup Secret, a Job). It is how a repeated step recognises
	// its own earlier write after a crash.
	RequestLabel = "rotary.aivo.io/request"
	// BackupOfLabel labels every backup Secret with its source Secret's name.
	BackupOfLabel = "rotary.aivo.io/backup-of"
	// BackupRequestLabel labels every backup Secret with the request ID.
	BackupRequestLabel = RequestLabel
	// BackupSourceVersionAnnotation records the source Secret's
	// resourceVersion at copy time, so an operator can tell which revision a
	// backup holds.
	BackupSourceVersionAnnotation = "rotary.aivo.io/backup-source-resource-version"
	// BackupTimeAnnotation records when the backup was taken (RFC3339, UTC).
	BackupTimeAnnotation = "rotary.aivo.io/backup-time"
)

// backupInfix joins a backup's source name and request ID.
const backupInfix = "-backup-"

// backupHashLen is how many hex digits of the request ID's SHA-256 a backup
// name carries when the ID had to be altered to fit: enough to keep distinct
// IDs apart, short enough to leave room for the source name.
const backupHashLen = 10

// maxBackupSuffix caps the request-ID part of a backup name, so a long ID
// cannot crowd out the source name (which is what an operator looks for).
const maxBackupSuffix = 63

// ErrForeignObject reports that an object rotary wanted to create already
// exists but was not made by this request (its rotary.aivo.io/request label
// differs or is missing). rotary never overwrites or adopts such an object.
var ErrForeignObject = errors.New("object exists but was not created by this request")

// ErrImmutableSecret reports a Secret with immutable: true, whose data cannot
// be changed in place.
var ErrImmutableSecret = errors.New("secret is immutable")

// BackupName is the name BackupSecret gives the backup of Secret name for
// requestID: "<name>-backup-<lowercased requestID>". When that is not a valid
// Secret name (a DNS subdomain of at most 253 characters), the request ID is
// reduced to [a-z0-9-] and followed by a hash of the original ID, and name is
// shortened to fit; the result is deterministic, so a repeated step finds the
// same backup.
func BackupName(name, requestID string) string {
	plain := name + backupInfix + strings.ToLower(requestID)
	if len(validation.IsDNS1123Subdomain(plain)) == 0 {
		return plain
	}
	sum := sha256.Sum256([]byte(requestID))
	hash := hex.EncodeToString(sum[:])[:backupHashLen]
	var b strings.Builder
	for _, r := range strings.ToLower(requestID) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	id := strings.Trim(b.String(), "-")
	if maxID := maxBackupSuffix - backupHashLen - 1; len(id) > maxID {
		id = strings.TrimRight(id[:maxID], "-")
	}
	suffix := hash
	if id != "" {
		suffix = id + "-" + hash
	}
	if room := validation.DNS1123SubdomainMaxLength - len(backupInfix) - len(suffix); len(name) > room {
		name = strings.TrimRight(name[:room], "-.")
	}
	return name + backupInfix + suffix
}

// checkRequestID refuses request IDs that cannot be a label value: the label
// is what makes a repeated create recognise its own object.
func checkRequestID(requestID string) error {
	if requestID == "" {
		return errors.New("empty request ID")
	}
	if errs := validation.IsValidLabelValue(requestID); len(errs) > 0 {
		return fmt.Errorf("request ID %q is not a valid label value: %s", requestID, strings.Join(errs, "; "))
	}
	return nil
}

// BackupSecret copies Secret ns/name (all data and its type; not its labels or
// annotations, so no selector or controller picks the copy up) to a new,
// immutable Secret named BackupName(name, requestID), labelled
// BackupOfLabel=name and BackupRequestLabel=requestID and annotated with the
// source's resourceVersion and the time (Options.Now). It returns the
// backup's name.
//
// It never overwrites: if the backup already exists and carries the same
// request label it is returned unchanged (a repeated step; the source may have
// been changed since, and the backup must keep the original), otherwise it
// fails with ErrForeignObject. Errors name objects and keys, never data.
func (c *Client) BackupSecret(ctx context.Context, ns, name, requestID string) (string, error) {
	what := "secret " + ns + "/" + name
	if err := checkRequestID(requestID); err != nil {
		return "", fmt.Errorf("kube: backing up %s: %w", what, err)
	}
	if errs := validation.IsValidLabelValue(name); len(errs) > 0 {
		return "", fmt.Errorf("kube: backing up %s: the name cannot be the %s label value: %s", what, BackupOfLabel, strings.Join(errs, "; "))
	}
	backupName := BackupName(name, requestID)
	backupWhat := "secret " + ns + "/" + backupName

	src, err := c.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("kube: backing up %s: %w", what, err)
	}
	if src.Type == corev1.SecretTypeServiceAccountToken {
		// The token controller would fill (or delete) a copy of its own; it
		// would not hold the source's data.
		return "", fmt.Errorf("kube: backing up %s: refusing to copy a %s Secret", what, src.Type)
	}
	immutable := true
	backup := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      backupName,
			Namespace: ns,
			Labels:    map[string]string{BackupOfLabel: name, BackupRequestLabel: requestID},
			Annotations: map[string]string{
				BackupSourceVersionAnnotation: src.ResourceVersion,
				BackupTimeAnnotation:          c.now().UTC().Format(time.RFC3339),
			},
		},
		// Immutable: the API server itself then refuses any later change to
		// the backup's data, so a rollback restores what was copied here.
		Immutable: &immutable,
		Type:      src.Type,
		Data:      copyData(src.Data),
	}
	_, err = c.cs.CoreV1().Secrets(ns).Create(ctx, backup, metav1.CreateOptions{FieldManager: userAgent})
	switch {
	case err == nil:
		c.log.InfoContext(ctx, "kube: secret backed up", "secret", ns+"/"+name, "backup", backupName,
			"keys", len(src.Data), "sourceResourceVersion", src.ResourceVersion)
		return backupName, nil
	case !apierrors.IsAlreadyExists(err):
		return "", fmt.Errorf("kube: backing up %s to %s: %w", what, backupName, err)
	}
	existing, err := c.cs.CoreV1().Secrets(ns).Get(ctx, backupName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("kube: backing up %s: %s already exists and reading it failed: %w", what, backupWhat, err)
	}
	if got := existing.Labels[BackupRequestLabel]; got != requestID || existing.Labels[BackupOfLabel] != name {
		return "", fmt.Errorf("kube: backing up %s: %s already exists with labels %s=%q %s=%q, want %q %q: %w",
			what, backupWhat, BackupRequestLabel, got, BackupOfLabel, existing.Labels[BackupOfLabel], requestID, name, ErrForeignObject)
	}
	c.log.InfoContext(ctx, "kube: backup already exists for this request; keeping it", "secret", ns+"/"+name, "backup", backupName)
	return backupName, nil
}

// SecretData reads the data of Secret ns/name as secret.Values, one per key.
// A key the Secret does not have is not in the map.
func (c *Client) SecretData(ctx context.Context, ns, name string) (map[string]secret.Value, error) {
	s, err := c.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: reading secret %s/%s: %w", ns, name, err)
	}
	out := make(map[string]secret.Value, len(s.Data))
	for k, v := range s.Data {
		out[k] = secret.New(append([]byte(nil), v...))
	}
	return out, nil
}

// UpdateSecretData sets the keys in set and deletes the keys in remove on
// Secret ns/name. It reads the Secret, changes its data and updates it with
// that read's resourceVersion, so a concurrent writer's change is never lost:
// on Conflict it re-reads and retries (retry.RetryOnConflict). When the data
// already is as requested it writes nothing (a repeated step). A key in both
// set and remove, an empty value (almost surely a lost secret, not an
// intent) and an immutable Secret are refused before any write.
func (c *Client) UpdateSecretData(ctx context.Context, ns, name string, set map[string]secret.Value, remove []string) error {
	what := "secret " + ns + "/" + name
	for _, k := range remove {
		if _, ok := set[k]; ok {
			return fmt.Errorf("kube: updating %s: key %q is both set and removed", what, k)
		}
	}
	for k, v := range set {
		if v.IsZero() {
			return fmt.Errorf("kube: updating %s: refusing to set key %q to an empty value", what, k)
		}
	}
	return c.rewriteSecret(ctx, ns, name, "updating", func(s *corev1.Secret) (map[string][]byte, error) {
		data := copyData(s.Data)
		if data == nil {
			data = make(map[string][]byte, len(set))
		}
		for k, v := range set {
			data[k] = append([]byte(nil), v.Reveal()...)
		}
		for _, k := range remove {
			delete(data, k)
		}
		return data, nil
	})
}

// RestoreSecret replaces Secret ns/name's data with the data of backup Secret
// ns/backupName, exactly: keys the backup lacks are removed. It refuses a
// backup whose BackupOfLabel is not name (restoring another Secret's backup
// would be worse than not restoring) and a type mismatch. When the data
// already equals the backup's it writes nothing.
func (c *Client) RestoreSecret(ctx context.Context, ns, name, backupName string) error {
	what := "secret " + ns + "/" + name
	backup, err := c.cs.CoreV1().Secrets(ns).Get(ctx, backupName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: restoring %s from backup %s: %w", what, backupName, err)
	}
	if of := backup.Labels[BackupOfLabel]; of != name {
		return fmt.Errorf("kube: restoring %s: secret %s/%s is not its backup (%s=%q)", what, ns, backupName, BackupOfLabel, of)
	}
	return c.rewriteSecret(ctx, ns, name, "restoring", func(s *corev1.Secret) (map[string][]byte, error) {
		if s.Type != backup.Type {
			return nil, fmt.Errorf("type %s differs from backup %s's type %s", s.Type, backupName, backup.Type)
		}
		return copyData(backup.Data), nil
	})
}

// rewriteSecret is the read-modify-write shared by UpdateSecretData and
// RestoreSecret: next computes the wanted data from the current Secret; an
// unchanged result writes nothing; a Conflict re-reads and recomputes.
func (c *Client) rewriteSecret(ctx context.Context, ns, name, verb string, next func(*corev1.Secret) (map[string][]byte, error)) error {
	what := "secret " + ns + "/" + name
	secrets := c.cs.CoreV1().Secrets(ns)
	var changed bool
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		data, err := next(s)
		if err != nil {
			return err
		}
		if changed = !equalData(s.Data, data); !changed {
			return nil
		}
		if s.Immutable != nil && *s.Immutable {
			return ErrImmutableSecret
		}
		s.Data = data
		s.StringData = nil
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: userAgent})
		return err
	})
	if err != nil {
		return fmt.Errorf("kube: %s %s: %w", verb, what, err)
	}
	if changed {
		c.log.InfoContext(ctx, "kube: secret data written", "secret", ns+"/"+name, "op", verb)
	} else {
		c.log.InfoContext(ctx, "kube: secret data already as wanted; not writing", "secret", ns+"/"+name, "op", verb)
	}
	return nil
}

func copyData(in map[string][]byte) map[string][]byte {
	if in == nil {
		return nil
	}
	out := make(map[string][]byte, len(in))
	for k, v := range in {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// equalData compares two data maps; nil and empty are equal.
func equalData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || string(va) != string(vb) {
			return false
		}
	}
	return true
}
