// Package apikey is the "apikey" rotator kind: it rotates a third-party API
// key (OpenAI, SendGrid, or any provider by hand, e.g. Stripe) that reaches
// its workloads through Google Secret Manager and an External Secrets
// Operator ExternalSecret, following the runbook's "API Key Rotation":
// create a new key, add it as a new Secret Manager version, force-sync the
// ExternalSecret, restart the deployments, check their logs, revoke the old
// key and disable the old version.
//
// Rules this package keeps:
//   - A new key's value exists only in memory (Run.KeepSecret) and goes to
//     exactly one place, a Secret Manager version. Errors, progress lines,
//     log lines and facts carry names, ids and counts, never a value; the
//     provider clients never echo a response body, and scrub key-like text
//     from the providers' error messages.
//   - Every step is idempotent through facts recorded before the external
//     call they announce (intent before action).
//   - Keys that rotary creates are named KeyName(target, env, requestID), so
//     a later rotation can find and revoke exactly the keys rotary made for
//     that target and environment, and a crashed attempt's key is found and
//     deleted before a new one is made.
//   - Once revoking has started, rollback refuses to touch keys or versions:
//     the old key may be gone, so the new key must stay.
//   - The package depends on small interfaces (SecretStore, Cluster) that
//     *gsm.Client and *kube.Client satisfy, so it is tested with fakes and
//     Build can run without clients (config check).
package apikey

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// KindName is the `kind:` value of targets this package handles.
const KindName = "apikey"

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
	ScanLogs(ctx context.Context, ns, deployment string, since time.Time, pattern *regexp.Regexp) (kube.LogScan, error)
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
	// HTTP calls the provider APIs.
	HTTP *http.Client
	// Creds resolves admin_key_env names to the providers' admin keys.
	Creds rotators.Credentials
}

// Kind is the apikey kind, for main's list of kinds.
func Kind() rotators.Kind {
	return rotators.Kind{Name: KindName, Build: Build}
}

// Build decodes and validates a target's settings. It only keeps deps' clients.
func Build(target string, decode func(into any) error, deps rotators.Deps) (rotators.Rotator, []rotators.Problem) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, []rotators.Problem{{Path: "", Message: "cannot decode the apikey settings: " + err.Error()}}
	}
	c := Clients{HTTP: deps.HTTP, Creds: deps.Creds}
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

// Rotator rotates one configured apikey target.
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
	if strings.Contains(target, keyNameSep) {
		// The separator delimits KeyName's parts; inside a target name it
		// would make one target's keys look like another's.
		problems = append(problems, rotators.Problem{Path: "", Message: "an apikey target's name must not contain " + keyNameSep})
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return &Rotator{target: target, s: s, clients: clients}, nil
}

// keyNameSep separates the parts of KeyName.
const keyNameSep = ":"

// KeyName is the name rotary gives the key (OpenAI service account, SendGrid
// API key) it creates for a request.
func KeyName(target, env, requestID string) string {
	return KeyPrefix(target, env) + requestID
}

// KeyPrefix is what the names of every key rotary creates for target in env
// start with.
func KeyPrefix(target, env string) string {
	return "rotary" + keyNameSep + target + keyNameSep + env + keyNameSep
}
