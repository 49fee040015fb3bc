// Package kube is rotary's adapter to Kubernetes: it performs the handful of
// kubectl-equivalent operations a rotation needs (force an External Secrets
// Operator sync, restart a Deployment, wait for its rollout, scan its logs,
// back up / read / update / restore a Secret's data, run a Job to completion,
// pick a ready pod of a Deployment and run a command in it).
//
// Rules this package keeps:
//   - It does what kubectl does, reusing kubectl's own code where it can
//     (the rollout "done" judgement and messages come from
//     k8s.io/kubectl/pkg/polymorphichelpers), so an operator reading a Slack
//     message sees the same words `kubectl rollout status` would print.
//   - Every mutating call is idempotent for the same caller-supplied instant
//     `at`: the executor may repeat a step after a crash, and a repeat must not
//     start a second rollout or a second sync.
//   - Secret data leaves this package only as secret.Value (SecretData) and
//     never appears in an error or log record: errors name namespaces,
//     objects and keys, never values. Backups are copied server-side
//     objects, never returned. Objects rotary creates (backup Secrets, Jobs)
//     carry RequestLabel, so a repeated step recognises its own object and
//     never overwrites or adopts anyone else's.
//   - It never returns log content: ScanLogs only counts lines, because
//     application logs can contain secrets.
//   - Exec returns a command's output only as secret.Value (a command may
//     print secrets); errors and log records carry exit codes and byte counts.
//   - Errors wrap the cause with %w and name namespace/object.
package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultPollInterval is how often a wait re-reads the object when a watch
// cannot be established (or was closed by the server).
const DefaultPollInterval = 2 * time.Second

// userAgent identifies rotary in API server audit logs, so a reviewer can tell
// rotary's patches from a human's kubectl.
const userAgent = "rotary"

// External Secrets Operator API coordinates.
const (
	// ExternalSecretsGroup is the API group of ESO's ExternalSecret.
	ExternalSecretsGroup = "external-secrets.io"
	// ExternalSecretsV1 is the version current ESO releases serve.
	ExternalSecretsV1 = "v1"
	// ExternalSecretsV1Beta1 is the version older ESO releases serve.
	ExternalSecretsV1Beta1 = "v1beta1"
	// ExternalSecretsResource is the plural resource name.
	ExternalSecretsResource = "externalsecrets"
)

// ErrRefreshDisabled reports an ExternalSecret that ESO will not re-sync on a
// force-sync annotation: spec.refreshInterval is 0 (and refreshPolicy is not
// OnChange) or refreshPolicy is CreatedOnce, so after its first sync ESO
// ignores metadata changes.
var ErrRefreshDisabled = errors.New("externalsecret refresh is disabled: ESO ignores force-sync")

// ErrZeroInstant reports a zero `at`: the idempotency key of a mutating call
// must come from the caller's journal, and a zero value means it was lost.
var ErrZeroInstant = errors.New("zero instant: the step's `at` must be set")

// Options configures a Client. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now. Used only for log fields (how
	// long a wait took) and a backup's informational time annotation; every
	// idempotency-relevant instant comes from the caller.
	Now func() time.Time
	// PollInterval is the re-read period when no watch is available; zero
	// means DefaultPollInterval.
	PollInterval time.Duration
	// Log receives debug/info records; nil discards them.
	Log *slog.Logger
	// ExternalSecretsVersion selects the ESO API version: ExternalSecretsV1
	// (default when empty) or ExternalSecretsV1Beta1 for older operators.
	// NewForConfig rejects other values; New uses the value as given.
	ExternalSecretsVersion string
	// RESTConfig is the connection Exec opens its streams with (the
	// typed and dynamic clients cannot stream). NewForConfig sets it; with
	// New it may be nil, and Exec then fails with ErrNoRESTConfig.
	RESTConfig *rest.Config
}

// Client performs the kubectl-equivalent operations rotations need. It is safe
// for concurrent use.
type Client struct {
	cs    kubernetes.Interface
	dyn   dynamic.Interface
	now   func() time.Time
	poll  time.Duration
	log   *slog.Logger
	esVer string
	// restCfg is Options.RESTConfig: only Exec uses it.
	restCfg *rest.Config
}

// New wraps existing clients (real or fake).
func New(cs kubernetes.Interface, dyn dynamic.Interface, opts Options) *Client {
	c := &Client{cs: cs, dyn: dyn, now: opts.Now, poll: opts.PollInterval, log: opts.Log, esVer: opts.ExternalSecretsVersion, restCfg: opts.RESTConfig}
	if c.now == nil {
		c.now = time.Now
	}
	if c.poll <= 0 {
		c.poll = DefaultPollInterval
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.esVer == "" {
		c.esVer = ExternalSecretsV1
	}
	return c
}

// NewForConfig builds the typed and dynamic clients from cfg, and keeps cfg
// (as Options.RESTConfig) for Exec.
func NewForConfig(cfg *rest.Config, opts Options) (*Client, error) {
	switch opts.ExternalSecretsVersion {
	case "", ExternalSecretsV1, ExternalSecretsV1Beta1:
	default:
		return nil, fmt.Errorf("kube: unsupported ExternalSecrets API version %q (want %s or %s)",
			opts.ExternalSecretsVersion, ExternalSecretsV1, ExternalSecretsV1Beta1)
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: building clientset: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: building dynamic client: %w", err)
	}
	opts.RESTConfig = cfg
	return New(cs, dyn, opts), nil
}

// LoadRESTConfig loads the kubeconfig at path (the KUBECONFIG value, a single
// file) or, when path is "", the in-cluster service-account config.
func LoadRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kube: in-cluster config (set KUBECONFIG to run outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kube: loading kubeconfig %q: %w", kubeconfig, err)
	}
	return cfg, nil
}
