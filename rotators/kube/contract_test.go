package kube_test

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// issue5Cluster is the interface the database/redis/encryption kinds code
// against (notes/issue5.md); this assertion keeps the signatures from
// drifting under them.
type issue5Cluster interface {
	BackupSecret(ctx context.Context, ns, name, requestID string) (string, error)
	SecretData(ctx context.Context, ns, name string) (map[string]secret.Value, error)
	UpdateSecretData(ctx context.Context, ns, name string, set map[string]secret.Value, remove []string) error
	RestoreSecret(ctx context.Context, ns, name, backupName string) error
	CreateJob(ctx context.Context, ns string, job *batchv1.Job) error
	WaitJob(ctx context.Context, ns, name string, progress func(string)) error
}

var (
	_ issue5Cluster = (*kube.Client)(nil)
	_               = [...]string{kube.BackupOfLabel, kube.BackupRequestLabel}
	_ error         = kube.ErrJobFailed
)
