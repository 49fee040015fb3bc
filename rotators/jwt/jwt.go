// Package jwt is the "jwt" rotator kind: it rotates the RSA key pair an
// auth service signs and verifies JSON Web Tokens with, following the
// runbook's "JWT Key Rotation" and, for `--emergency`, its "Emergency
// Procedures".
//
// The keys live in one Kubernetes Secret (names configurable):
//
//	JWT_PRIVATE_KEY     the signing key, PEM "PRIVATE KEY" (PKCS#8)
//	JWT_PUBLIC_KEY      its public key, PEM "PUBLIC KEY" (PKIX)
//	JWT_PUBLIC_KEY_OLD  the previous public key, while tokens it signed may live
//	JWT_KEY_ID          the signing key's id (16 hex digits), the tokens' "kid"
//
// The application signs with JWT_PRIVATE_KEY under kid JWT_KEY_ID and
// verifies a token with JWT_PUBLIC_KEY when its kid is JWT_KEY_ID, else
// with JWT_PUBLIC_KEY_OLD when present. rotary writes the Secret directly
// (backend kubernetes) or adds the four keys as a JSON object to a Secret
// Manager secret that an ExternalSecret extracts into the Secret (backend
// secret_manager); other keys of the Secret or object are kept as they are.
//
// An ordinary rotation backs the keys up, generates a pair, writes it with
// the previous public key as JWT_PUBLIC_KEY_OLD, restarts the deployment,
// verifies, and waits out the access-token lifetime; a follow-up removes
// JWT_PUBLIC_KEY_OLD after the grace period and restarts again. An
// emergency rotation (a compromised key) removes JWT_PUBLIC_KEY_OLD at once,
// so stolen tokens stop verifying when the rollout completes, then
// invalidates every session by running a command in one ready pod through
// the Kubernetes exec API, and force-syncs every ExternalSecret in the
// namespace.
//
// Rules this package keeps:
//   - The private key exists in process memory (Run.KeepSecret) until it is
//     written; after that it is only in the Secret (and Secret Manager). It
//     is never generated twice for a write that may have landed: a step that
//     lost it first checks whether the store already holds the journaled
//     kid. Facts carry key ids and SHA-256 fingerprints of public keys,
//     never a PEM; errors, progress and log lines carry names, ids,
//     fingerprints, exit codes and byte counts, never key material or a
//     command's output.
//   - The keys are backed up before anything is overwritten: an immutable,
//     labelled copy of the Secret (kube.Client.BackupSecret), or, with
//     Secret Manager, the version in use (recorded as a fact). Rollback,
//     automatic or `/rotate rollback`, restores exactly that.
//   - Every step is idempotent through facts recorded before the external
//     call they announce; restart and sync stamps come from the journal
//     (kubesteps). The follow-up acts only while the Secret still holds
//     this rotation's kid and old public key: a later rotation supersedes it.
//   - Rollback never restores over keys a later rotation wrote (the store
//     must hold this rotation's kid or the previous one). An emergency
//     rotation's automatic rollback does not put the compromised key back;
//     only an approved `/rotate rollback` does.
//   - A repeated step never sends an older sync or restart stamp over a
//     later step's: that would be a second sync or rollout.
//   - Kubernetes, exec and Secret Manager are reached through the small
//     interfaces below (*kube.Client and *gsm.Client satisfy them), so the
//     flow is tested with fakes and Build runs without clients (config check).
//
// Configuration (a target of kind jwt; {env} is replaced by the request's
// environment in every string):
//
//	targets:
//	  jwt:
//	    kind: jwt
//	    approvers: {prod: {users: [U0EXAMPLE1]}}
//	    namespace: aivo-{env}      # required
//	    secret: jwt-keys           # optional, default shown
//	    keys:                      # optional, defaults shown
//	      private: JWT_PRIVATE_KEY
//	      public: JWT_PUBLIC_KEY
//	      public_old: JWT_PUBLIC_KEY_OLD
//	      key_id: JWT_KEY_ID
//	    deployment: auth-svc       # optional, default shown
//	    rollout_timeout: 10m       # optional (max 2h)
//	    token_lifetime: 15m        # optional (0s: no wait; max 24h)
//	    grace_period: 24h          # optional (max 720h)
//	    key_bits: 4096             # optional: 2048, 3072 or 4096
//	    sync_timeout: 2m           # optional (max 30m)
//	    invalidate_sessions:       # emergency only; optional, defaults shown
//	      command: [npm, run, invalidate-all-sessions]
//	      container: app           # optional; default: the pod's default container
//	      timeout: 5m              # max 1h
//	    backend: kubernetes        # or secret_manager:
//	    secret_manager:            # only with backend: secret_manager
//	      project: aivo-platform
//	      secret: aivo-{env}-jwt-keys
//	      external_secret: jwt-keys
package jwt

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// KindName is the `kind:` value of targets this package handles.
const KindName = "jwt"

// Cluster is what the kind needs of Kubernetes (*kube.Client satisfies it).
type Cluster interface {
	kubesteps.SecretStore
	RestartDeployment(ctx context.Context, ns, name string, at time.Time) error
	WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error
	// ForceSyncExternalSecret fails with errors.Is(err, kube.ErrRefreshDisabled)
	// when the operator would ignore the annotation.
	ForceSyncExternalSecret(ctx context.Context, ns, name string, at time.Time) error
	WaitExternalSecretSynced(ctx context.Context, ns, name string, since time.Time) error
	// ListExternalSecrets returns the names of the ExternalSecrets in ns, sorted.
	ListExternalSecrets(ctx context.Context, ns string) ([]string, error)
}

// Execer runs a command in a pod (emergency session invalidation).
type Execer interface {
	// ReadyPod returns a Running, Ready, not terminating pod of the deployment.
	ReadyPod(ctx context.Context, ns, deployment string) (string, error)
	// Exec runs cmd; a non-zero exit is a result, not an error. Output is
	// kept up to maxOutput bytes and may hold secrets.
	Exec(ctx context.Context, ns, pod, container string, cmd []string, maxOutput int) (kube.ExecResult, error)
}

// Store is what the secret_manager backend needs of Google Secret Manager
// (*gsm.Client satisfies it). Secret names are
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

// The adapters must keep satisfying the interfaces above.
var (
	_ Cluster = (*kube.Client)(nil)
	_ Execer  = (*kube.Client)(nil)
	_ Store   = (*gsm.Client)(nil)
)

// Clients are a Rotator's collaborators. Any may be nil while configuration
// is only checked; a step that needs a missing one fails clearly.
type Clients struct {
	Cluster Cluster
	Exec    Execer
	Store   Store
	// Rand is the source of key ids; nil means crypto/rand.
	Rand io.Reader
	// NewKey generates a key pair of the given size; nil means
	// rsa.GenerateKey with crypto/rand (which, since Go 1.26, ignores any
	// other reader). Tests inject pre-generated keys to stay fast.
	NewKey func(bits int) (*rsa.PrivateKey, error)
}

// Kind is the jwt kind, for main's list of kinds.
func Kind() rotators.Kind {
	return rotators.Kind{Name: KindName, Build: Build}
}

// Build decodes and validates a target's settings. It only keeps deps' clients.
func Build(target string, decode func(into any) error, deps rotators.Deps) (rotators.Rotator, []rotators.Problem) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, []rotators.Problem{{Path: "", Message: "cannot decode the jwt settings: " + err.Error()}}
	}
	c := Clients{Rand: deps.Rand}
	// A nil pointer in an interface would not compare equal to nil; keep
	// the interfaces nil so steps report the missing client.
	if deps.Kube != nil {
		c.Cluster, c.Exec = deps.Kube, deps.Kube
	}
	if deps.SecretManager != nil {
		c.Store = deps.SecretManager
	}
	r, problems := New(target, cfg, c)
	if len(problems) > 0 {
		return nil, problems
	}
	return r, nil
}

// Rotator rotates one configured jwt target.
type Rotator struct {
	target  string
	s       settings
	clients Clients
}

var (
	_ rotators.Rotator  = (*Rotator)(nil)
	_ rotators.Reverter = (*Rotator)(nil)
)

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
	if clients.NewKey == nil {
		clients.NewKey = func(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) }
	}
	return &Rotator{target: target, s: s, clients: clients}, nil
}

// CanRevert refuses a rollback of a finished rotation that recorded no
// backup, or never changed the keys: there is nothing to restore.
func (r *Rotator) CanRevert(facts map[string]string) error {
	backupFact, where := factBackup, "a backup Secret"
	if r.s.secretManager() {
		backupFact, where = factPrevVersion, "the Secret Manager version in use before"
	}
	switch {
	case facts[backupFact] == "":
		return errors.New("this rotation recorded no backup (" + where + "), so there is nothing to restore")
	case facts[factUpdateStarted] == "":
		return errors.New("this rotation never changed the keys, so there is nothing to roll back")
	}
	return nil
}
