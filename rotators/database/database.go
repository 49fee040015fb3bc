// Package database is the "database" rotator kind: it rotates the password of
// a PostgreSQL application by alternating login roles, following the
// runbook's "Database Password Rotation": create a new role with a new
// password and the old role's privileges, check that it can connect, add its
// DSN to Google Secret Manager as a new version, force-sync the
// ExternalSecret, restart the consumers, verify, and after a delay (or at
// once from a button) retire the old role.
//
// Rules this package keeps:
//   - The new password exists only in memory (Run.KeepSecret) and goes to
//     exactly one place, the Secret Manager version, inside the DSN. The
//     database never sees it either: rotary sends a SCRAM-SHA-256 verifier
//     it computed itself (as psql's \password does), so the password cannot
//     reach the server's statement log. Errors, progress lines, log lines
//     and facts carry role names, version names and counts, never a
//     password or a DSN.
//   - DDL takes no bind parameters, so every identifier is quoted with
//     pgx.Identifier.Sanitize and every literal with the server's own
//     format('%L'); no name or value is ever spliced into SQL unquoted.
//   - Intent before action: the new role's name is recorded before the role
//     is created, and the role carries the comment "rotary request <id>"
//     (set in the same transaction), so a repeated step finds the role it
//     made, gives it a new password, and never makes a second one. A role
//     that lacks that comment is never altered or dropped as "ours".
//   - The old role is untouched until verification has passed, so a
//     rollback before then only re-adds the old DSN; after verification
//     nothing is rolled back (the new role is in use). The old role is
//     dropped last, after retire_after or from the "Drop old role now"
//     button, and never while it still has sessions.
//   - The admin connection comes from the bot's credentials (admin_dsn_env),
//     never from YAML or Slack. It must be a superuser, or a role that is a
//     member of the application roles with CREATEROLE and pg_read_all_stats.
//   - The package depends on small interfaces (SecretStore, Cluster) that
//     *gsm.Client and *kube.Client satisfy; SQL runs against the real server
//     (tests use ROTARY_TEST_POSTGRES_URL).
//
// A target's settings (the generic keys kind, description and approvers are
// the loader's; {env} is the request's environment in every string):
//
//	auth-db:
//	  kind: database
//	  namespace: aivo-{env}                 # of the ExternalSecret and deployments
//	  secret_manager:                       # the secret holding the DSN
//	    project: aivo-platform
//	    secret: aivo-{env}-auth-database-url
//	  external_secret: database-credentials
//	  deployments: [auth-svc]               # restarted in this order
//	  # The new role's name: {env}, {date} (yyyymmdd, UTC) and {request} (the
//	  # request id in lowercase, - as _). _2, _3 … is appended when taken.
//	  role_pattern: auth_{date}
//	  # The DSN stored in Secret Manager; the userinfo must be exactly
//	  # {user}:{password} (both URL-escaped when filled in) and the path the
//	  # database.
//	  dsn_template: postgresql://{user}:{password}@db.internal:5432/aivo_auth?sslmode=require
//	  database: aivo_auth
//	  schemas: [public]                     # optional; ALL on tables and sequences in these
//	  check_query: SELECT 1                 # optional; run as the new role, read-only
//	  check_table: public.users             # optional; the new role must SELECT from it
//	  verify_connections: true              # optional; check pg_stat_activity after the restart
//	  retire_after: 1h                      # optional; delay before the old role is dropped
//	  sync_timeout: 2m                      # optional
//	  rollout_timeout: 10m                  # optional, per deployment
//	  admin_dsn_env: ROTARY_DB_ADMIN_DSN    # credential holding the admin DSN
package database

import (
	"context"
	"io"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// KindName is the `kind:` value of targets this package handles.
const KindName = "database"

// SecretStore is what the kind needs of Google Secret Manager
// (*gsm.Client satisfies it). Secret names are
// "projects/<project>/secrets/<id>", version names ".../versions/<n>".
type SecretStore interface {
	AddVersion(ctx context.Context, secretName string, v secret.Value) (versionName string, err error)
	// LatestEnabled fails with errors.Is(err, gsm.ErrNoVersion) when there is none.
	LatestEnabled(ctx context.Context, secretName string) (versionName string, err error)
	// EnabledVersions lists enabled versions, newest first.
	EnabledVersions(ctx context.Context, secretName string) ([]string, error)
	Access(ctx context.Context, versionName string) (secret.Value, error)
	// Disable is idempotent.
	Disable(ctx context.Context, versionName string) error
}

// Cluster is what the kind needs of Kubernetes (*kube.Client satisfies it).
type Cluster interface {
	// ForceSyncExternalSecret fails with errors.Is(err, kube.ErrRefreshDisabled)
	// when the ExternalSecret's refreshInterval is 0.
	ForceSyncExternalSecret(ctx context.Context, ns, name string, at time.Time) error
	WaitExternalSecretSynced(ctx context.Context, ns, name string, since time.Time) error
	RestartDeployment(ctx context.Context, ns, name string, at time.Time) error
	WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error
}

// The adapters must keep satisfying the interfaces above.
var (
	_ SecretStore = (*gsm.Client)(nil)
	_ Cluster     = (*kube.Client)(nil)
)

// Clients are a Rotator's collaborators. Any may be nil while configuration
// is only checked; a step that needs a missing one fails with a clear error.
type Clients struct {
	Store   SecretStore
	Cluster Cluster
	// Creds resolves admin_dsn_env to the admin DSN.
	Creds rotators.Credentials
	// Rand is the source of passwords and salts: crypto/rand.Reader in
	// production, injected in tests.
	Rand io.Reader
}

// Kind is the database kind, for main's list of kinds.
func Kind() rotators.Kind {
	return rotators.Kind{Name: KindName, Build: Build}
}

// Build decodes and validates a target's settings. It only keeps deps' clients.
func Build(target string, decode func(into any) error, deps rotators.Deps) (rotators.Rotator, []rotators.Problem) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, []rotators.Problem{{Path: "", Message: "cannot decode the database settings: " + err.Error()}}
	}
	c := Clients{Creds: deps.Creds, Rand: deps.Rand}
	// A nil *gsm.Client in an interface would not compare equal to nil;
	// keep the interface nil so steps report the missing client.
	if deps.SecretManager != nil {
		c.Store = deps.SecretManager
	}
	if deps.Kube != nil {
		c.Cluster = deps.Kube
	}
	r, problems := New(target, cfg, c)
	if len(problems) > 0 {
		return nil, problems
	}
	return r, nil
}

// Waits of the verify and retire steps. They are fields of Rotator only so
// tests can shorten them.
const (
	// VerifyConnectionWait bounds how long verify waits for the restarted
	// pods to open a connection as the new role (pools often connect on
	// first use).
	VerifyConnectionWait = 2 * time.Minute
	// verifyPollInterval is how often pg_stat_activity is read meanwhile:
	// the server offers no way to be told of a new session.
	verifyPollInterval = 5 * time.Second
	// RetireRecheckInterval is how long retire waits after a refusal (the
	// old role still has sessions) before it tries again by itself.
	RetireRecheckInterval = 10 * time.Minute
)

// Rotator rotates one configured database target.
type Rotator struct {
	target  string
	s       settings
	clients Clients

	verifyWait    time.Duration
	verifyPoll    time.Duration
	retireRecheck time.Duration
}

var _ rotators.Rotator = (*Rotator)(nil)

// New validates cfg and returns the target's Rotator, or the problems found
// (paths relative to the target). clients are only kept.
func New(target string, cfg Config, clients Clients) (*Rotator, []rotators.Problem) {
	s, problems := validate(cfg)
	if len(problems) > 0 {
		return nil, problems
	}
	return &Rotator{
		target: target, s: s, clients: clients,
		verifyWait: VerifyConnectionWait, verifyPoll: verifyPollInterval, retireRecheck: RetireRecheckInterval,
	}, nil
}
