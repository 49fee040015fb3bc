// Package encryption is the "encryption" rotator kind: it rotates an
// application's data-encryption key held in a Kubernetes Secret, following
// the runbook's "Encryption Key Rotation": back the Secret up, generate a new
// 32-byte key, give the application both keys and restart it, run a
// migration Job that re-encrypts the data, verify, then remove the old key
// and restart again.
//
// The Secret's layout (all names configurable):
//
//	before and after a rotation   key_name (ENCRYPTION_KEY) = the key
//	during a rotation             old_key_name (OLD_ENCRYPTION_KEY) = the previous key
//	                              new_key_name (NEW_ENCRYPTION_KEY) = the new key
//	                              (key_name is removed, unless it is new_key_name)
//
// With the defaults the application reads ENCRYPTION_KEY normally, and in
// the rotation decrypts with OLD_ENCRYPTION_KEY and encrypts with
// NEW_ENCRYPTION_KEY; the last step renames NEW_ENCRYPTION_KEY back to
// ENCRYPTION_KEY. An application that always reads NEW_ENCRYPTION_KEY (and
// OLD_ENCRYPTION_KEY when set) sets key_name: NEW_ENCRYPTION_KEY; the last
// step then only removes OLD_ENCRYPTION_KEY. Workloads should read the keys
// with envFrom (or secretKeyRef with optional: true), since the set of keys
// changes during the rotation. The Secret must not be managed by an
// ExternalSecret, which would overwrite rotary's changes.
//
// Rules this package keeps:
//   - The new key exists in process memory (Run.KeepSecret) until it is
//     written to the Secret; after that it is read back from the Secret,
//     never generated again: pods may already encrypt with it, and a second
//     key would make that data unreadable. Errors, progress lines, log lines
//     and facts carry Secret and key names, never a value.
//   - The Secret is backed up (kube.Client.BackupSecret, an immutable copy
//     labelled with the request) before it is touched; the backup is the
//     source of the previous key and what rollback restores, exactly.
//   - Every step is idempotent through facts recorded before the external
//     call they announce. Jobs are named JobName(template, requestID) and
//     labelled with the request, so a repeated step finds its Job instead of
//     starting a second migration; the Job's wait deadline is recorded, so a
//     restart waits only for the remainder. A Job that vanishes before rotary
//     saw it finish fails the step rather than being re-created, so keep a
//     template's ttlSecondsAfterFinished long (or unset). A Job still running
//     at job_timeout fails the step and is not stopped (rotary has no
//     delete-Job call): the step's error says so.
//   - Rollback restores the backed-up Secret only until removing the old key
//     has started; after that it refuses, because the data is encrypted with
//     the new key. Before restoring, a copy of the Secret holding the new key
//     is kept, since data written since the restart (by the application or
//     the migration Job) may need it.
//   - The package depends on a small Cluster interface that *kube.Client
//     satisfies, so it is tested with a fake and Build can run without a
//     client (config check).
//
// Configuration (a target of kind encryption; {env} is replaced by the
// request's environment in every value and in the Job templates' text):
//
//	targets:
//	  encryption:
//	    kind: encryption
//	    approvers: {prod: {users: [U0EXAMPLE1]}}
//	    namespace: aivo-{env}          # where the Secret, deployments and Jobs are
//	    secret: app-encryption         # Kubernetes Secret holding the key
//	    key_name: ENCRYPTION_KEY       # optional, default shown
//	    old_key_name: OLD_ENCRYPTION_KEY  # optional, default shown
//	    new_key_name: NEW_ENCRYPTION_KEY  # optional, default shown
//	    deployments: [ai-orchestrator] # restarted (in order) twice
//	    job_timeout: 1h                # optional: wait per Job (max 24h)
//	    rollout_timeout: 10m           # optional: wait per rollout (max 2h)
//	    migration_job: |               # required: a batch/v1 Job manifest
//	      apiVersion: batch/v1
//	      kind: Job
//	      metadata:
//	        name: reencrypt            # the Job is named reencrypt-<request id>
//	      spec:
//	        backoffLimit: 0
//	        template:
//	          spec:
//	            restartPolicy: Never
//	            containers:
//	              - name: reencrypt
//	                image: registry.example.com/aivo/ai-orchestrator:stable
//	                command: [npm, run, reencrypt]
//	                envFrom: [{secretRef: {name: app-encryption}}]
//	    verification_job: |            # optional: same form; must succeed too
//	      ...
package encryption

import (
	"context"
	"crypto/rand"
	"io"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
)

// KindName is the `kind:` value of targets this package handles.
const KindName = "encryption"

// Cluster is what the kind needs of Kubernetes (*kube.Client satisfies it).
type Cluster interface {
	kubesteps.SecretStore
	// CreateJob creates job; an existing Job of the same request is success.
	CreateJob(ctx context.Context, ns string, job *batchv1.Job) error
	// WaitJob waits for Complete (nil) or Failed (an error wrapping kube.ErrJobFailed).
	WaitJob(ctx context.Context, ns, name string, progress func(string)) error
	RestartDeployment(ctx context.Context, ns, name string, at time.Time) error
	WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error
}

// The adapter must keep satisfying the interface above.
var _ Cluster = (*kube.Client)(nil)

// Clients are a Rotator's collaborators. Cluster may be nil while
// configuration is only checked; a step that needs it then fails clearly.
type Clients struct {
	Cluster Cluster
	// Rand is the source of new keys; nil means crypto/rand.
	Rand io.Reader
}

// Kind is the encryption kind, for main's list of kinds.
func Kind() rotators.Kind {
	return rotators.Kind{Name: KindName, Build: Build}
}

// Build decodes and validates a target's settings. It only keeps deps' clients.
func Build(target string, decode func(into any) error, deps rotators.Deps) (rotators.Rotator, []rotators.Problem) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, []rotators.Problem{{Path: "", Message: "cannot decode the encryption settings: " + err.Error()}}
	}
	c := Clients{Rand: deps.Rand}
	// A nil *kube.Client in an interface would not compare equal to nil;
	// keep the interface nil so steps report the missing client.
	if deps.Kube != nil {
		c.Cluster = deps.Kube
	}
	r, problems := New(target, cfg, c)
	if len(problems) > 0 {
		return nil, problems
	}
	return r, nil
}

// Rotator rotates one configured encryption target.
type Rotator struct {
	target  string
	s       settings
	clients Clients
	// jobCheck is the least time a Job's status is waited for (minJobCheck;
	// tests shorten it).
	jobCheck time.Duration
}

var _ rotators.Rotator = (*Rotator)(nil)

// New validates cfg and returns the target's Rotator, or the problems found
// (paths relative to the target). clients are only kept.
func New(target string, cfg Config, clients Clients) (*Rotator, []rotators.Problem) {
	s, problems := validate(cfg)
	if len(problems) > 0 {
		return nil, problems
	}
	if clients.Rand == nil {
		clients.Rand = rand.Reader
	}
	return &Rotator{target: target, s: s, clients: clients, jobCheck: minJobCheck}, nil
}
