// Package redis is the "redis" rotator kind: it rotates the password that
// workloads use to reach a Redis server, held in a Kubernetes Secret key,
// following the runbook's "Redis Password Rotation". It owns the Redis side
// (ACL and CONFIG commands through github.com/redis/go-redis/v9) and drives
// the Kubernetes side through the small Cluster interface.
//
// Two modes, per target:
//
//   - acl (default, recommended, zero downtime): the workloads log in as an
//     ACL user. The new password is added to that user next to the old one,
//     written to the Secret, the consumers are restarted and the new password
//     is checked; only then are all other passwords of the user removed and
//     the ACL persisted (ACL SAVE with an aclfile, else CONFIG REWRITE).
//   - requirepass (the runbook's procedure): the workloads log in as the
//     default user with requirepass. The new password is written to the
//     Secret, set with CONFIG SET requirepass, the consumers are restarted
//     and CONFIG REWRITE persists it. Clients fail to authenticate between
//     the password change and their restart (the request says so).
//
// Rules this package keeps:
//   - No password and no password hash is ever written to a fact, a log
//     line, a progress line or an error. A SHA-256 of a password (what ACL
//     GETUSER lists and `#<hash>`/`!<hash>` take) is an offline-crackable
//     verifier, so it is computed from values at hand and never kept.
//     Redis echoes ACL SETUSER arguments in its errors: every Redis error is
//     scrubbed of the values and hashes in play before it leaves a step.
//   - The old password is never stored by rotary: it is read, when needed,
//     from the backup Secret (kube BackupSecret) made before anything
//     changes. The new password is memory-only (Run.KeepSecret) only until
//     it is in the Secret; later steps read it from there.
//   - requirepass mode writes the Secret BEFORE CONFIG SET (the runbook sets
//     Redis first). With the default user as admin, Redis's password then
//     always equals the Secret's current value or the backup's, in every
//     state a crash can leave, so a resumed run (or a rollback) can always
//     log in by trying both; in the runbook's order a crash between CONFIG
//     SET and the Secret update would leave Redis with a password nobody
//     knows. The order also shortens the outage of a pod started in between
//     (it fails for a second, until CONFIG SET, instead of until its restart).
//   - acl mode adds to Redis before the Secret (no client ever holds a
//     password Redis refuses). A crash that loses the new password after it
//     was added leaves an orphan password nobody knows; the final step
//     removes every password of the user but the Secret's (by hash), so one
//     password is left in the end, and rollback removes every password but
//     the old one. Preflight refuses a user with passwords other than the
//     Secret's, so nothing but rotary's own passwords is ever removed.
//   - Passwords are added and removed by hash (ACL SETUSER `#<hash>`,
//     `!<hash>`), so removing the new password in a rollback, or one lost in
//     a crash, needs no plaintext that would otherwise have to be kept.
//   - Every step is idempotent: it checks Redis and the Secrets before it
//     acts, and records its intent as a fact before a change rollback must
//     undo.
//   - The backup Secret (holding the old password, useless once the
//     rotation is done) is left in place for an operator to delete.
//   - The admin connection's password comes from deps.Creds by the name in
//     admin_password_env, never from the YAML. Exception: in requirepass
//     mode with admin_user default, the admin IS the rotated default user:
//     its password is the Secret's (and, after a crash, possibly the
//     backup's), so those two are tried in turn and admin_password_env is
//     refused (a copy of it would be stale after the first rotation).
//     Failed tries show up in Redis's ACL LOG, by user name only.
//
// The admin user needs: +acl|getuser +acl|setuser +acl|save +config|get
// +config|set +config|rewrite +info +ping.
//
// Target settings (YAML, strict; {env} is replaced by the request's
// environment):
//
//	redis:
//	  kind: redis
//	  approvers: {...}
//	  # acl (default) or requirepass.
//	  mode: acl
//	  # host:port of Redis; tls: true for TLS (server name = host).
//	  address: redis.aivo-{env}.svc:6379
//	  tls: false
//	  # The Secret (and key) the consumers read the password from.
//	  namespace: aivo-{env}
//	  secret: redis-credentials
//	  secret_key: REDIS_PASSWORD
//	  # Deployments restarted, in order, to load the new password.
//	  deployments: [ai-orchestrator, auth-svc]
//	  # acl mode: the ACL user the consumers log in as.
//	  acl_user: aivo-app
//	  # acl mode, optional: acl_save or config_rewrite; default: acl_save
//	  # when Redis has an aclfile, else config_rewrite.
//	  persist: config_rewrite
//	  # The user rotary logs in as (default "default") and the credential
//	  # (environment variable, or NAME_FILE) holding its password.
//	  admin_user: default
//	  admin_password_env: REDIS_ADMIN_PASSWORD
//	  # Optional: how long to wait for each deployment's rollout. Default 10m.
//	  rollout_timeout: 10m
package redis

import (
	"context"
	"io"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
)

// KindName is the `kind:` value of targets this package handles.
const KindName = "redis"

// Cluster is what the kind needs of Kubernetes (*kube.Client provides it).
type Cluster interface {
	kubesteps.SecretStore
	RestartDeployment(ctx context.Context, ns, name string, at time.Time) error
	WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error
}

// The adapter must keep satisfying the interface above.
var _ Cluster = (*kube.Client)(nil)

// Clients are a Rotator's collaborators. Any may be nil while configuration
// is only checked; a step that needs a missing one fails with a clear error.
type Clients struct {
	Cluster Cluster
	// Creds resolves admin_password_env.
	Creds rotators.Credentials
	// Rand is the source of new passwords; nil means crypto/rand.Reader.
	Rand io.Reader
}

// Kind is the redis kind, for main's list of kinds.
func Kind() rotators.Kind {
	return rotators.Kind{Name: KindName, Build: Build}
}

// Build decodes and validates a target's settings. It only keeps deps' clients.
func Build(target string, decode func(into any) error, deps rotators.Deps) (rotators.Rotator, []rotators.Problem) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, []rotators.Problem{{Path: "", Message: "cannot decode the redis settings: " + err.Error()}}
	}
	c := Clients{Creds: deps.Creds, Rand: deps.Rand}
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

// Rotator rotates one configured redis target.
type Rotator struct {
	target  string
	s       settings
	clients Clients
}

var _ rotators.Rotator = (*Rotator)(nil)

// New validates cfg and returns the target's Rotator, or the problems found
// (paths relative to the target). clients are only kept.
func New(target string, cfg Config, clients Clients) (*Rotator, []rotators.Problem) {
	s, problems := validate(cfg)
	if len(problems) > 0 {
		return nil, problems
	}
	return &Rotator{target: target, s: s, clients: clients}, nil
}
