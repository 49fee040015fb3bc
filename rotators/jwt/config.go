package jwt

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kindconfig"
)

// Backends: where rotary writes the keys.
const (
	BackendKubernetes    = "kubernetes"
	BackendSecretManager = "secret_manager"
)

// Defaults of optional settings.
const (
	DefaultSecret          = "jwt-keys"
	DefaultPrivateKey      = "JWT_PRIVATE_KEY"
	DefaultPublicKey       = "JWT_PUBLIC_KEY"
	DefaultPublicKeyOld    = "JWT_PUBLIC_KEY_OLD"
	DefaultKeyID           = "JWT_KEY_ID"
	DefaultDeployment      = "auth-svc"
	DefaultRolloutTimeout  = 10 * time.Minute
	DefaultTokenLifetime   = 15 * time.Minute
	DefaultGracePeriod     = 24 * time.Hour
	DefaultKeyBits         = 4096
	DefaultSyncTimeout     = 2 * time.Minute
	DefaultInvalidateAfter = 5 * time.Minute
)

// DefaultInvalidateCommand is the runbook's `npm run invalidate-all-sessions`.
func DefaultInvalidateCommand() []string { return []string{"npm", "run", "invalidate-all-sessions"} }

// Bounds that catch a mistyped unit ("15h" for "15m") before it holds a
// rotation step for hours.
const (
	maxRolloutTimeout    = 2 * time.Hour
	maxTokenLifetime     = 24 * time.Hour
	maxGracePeriod       = 30 * 24 * time.Hour
	maxSyncTimeout       = 30 * time.Minute
	maxInvalidateTimeout = time.Hour
)

// EnvPlaceholder is replaced by the request's environment in every string
// setting.
const EnvPlaceholder = kindconfig.EnvPlaceholder

// Config is a jwt target's settings, as decoded from the config file (the
// generic keys kind, description and approvers are the loader's). Durations
// are strings so a bad one is reported with its path.
type Config struct {
	Namespace string `yaml:"namespace"`
	// Secret is the Kubernetes Secret the application reads the keys from
	// (with backend secret_manager: the ExternalSecret's target).
	Secret         string     `yaml:"secret"`
	Keys           KeysConfig `yaml:"keys"`
	Deployment     string     `yaml:"deployment"`
	RolloutTimeout string     `yaml:"rollout_timeout"`
	// TokenLifetime is how long an access token signed with the old key
	// may still be presented; the rotation waits it out.
	TokenLifetime string `yaml:"token_lifetime"`
	// GracePeriod is how long JWT_PUBLIC_KEY_OLD stays after the rotation.
	GracePeriod string `yaml:"grace_period"`
	KeyBits     int    `yaml:"key_bits"`
	// SyncTimeout bounds the wait for ExternalSecrets to sync.
	SyncTimeout        string           `yaml:"sync_timeout"`
	InvalidateSessions InvalidateConfig `yaml:"invalidate_sessions"`
	Backend            string           `yaml:"backend"`
	// SecretManager is required with backend secret_manager, refused otherwise.
	SecretManager *SecretManagerConfig `yaml:"secret_manager"`
}

// KeysConfig names the four Secret keys.
type KeysConfig struct {
	Private   string `yaml:"private"`
	Public    string `yaml:"public"`
	PublicOld string `yaml:"public_old"`
	KeyID     string `yaml:"key_id"`
}

// InvalidateConfig is the command an emergency rotation runs in one ready
// pod of the deployment to invalidate every session.
type InvalidateConfig struct {
	// Command is run without a shell; nil means DefaultInvalidateCommand.
	Command []string `yaml:"command"`
	// Container defaults to the pod's default container.
	Container string `yaml:"container"`
	Timeout   string `yaml:"timeout"`
}

// SecretManagerConfig names the Secret Manager secret holding the keys as a
// JSON object, and the ExternalSecret that extracts it into the Secret.
type SecretManagerConfig struct {
	Project        string `yaml:"project"`
	Secret         string `yaml:"secret"`
	ExternalSecret string `yaml:"external_secret"`
}

// settings is a validated Config with defaults applied and durations parsed.
type settings struct {
	Config
	rolloutTimeout    time.Duration
	tokenLifetime     time.Duration
	gracePeriod       time.Duration
	syncTimeout       time.Duration
	invalidateTimeout time.Duration
}

func (s settings) secretManager() bool { return s.Backend == BackendSecretManager }

// Name patterns, checked with {env} replaced by a sample.
const (
	dnsLabelPattern     = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	dnsSubdomainPattern = `^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`
	// secretKeyPattern is what Kubernetes accepts as a Secret data key.
	secretKeyPattern  = `^[-._a-zA-Z0-9]{1,253}$`
	gcpProjectPattern = `^[a-z][-a-z0-9]{4,28}[a-z0-9]$`
	gsmSecretPattern  = `^[A-Za-z0-9_-]{1,255}$`
)

// validate checks c and returns its settings, or the problems found, with
// paths relative to the target.
func validate(c Config) (settings, []rotators.Problem) {
	v := kindconfig.Validator{DurationExample: "15m, 24h"}
	s := settings{Config: c}

	v.Name("namespace", c.Namespace, dnsLabelPattern, "a Kubernetes namespace name")
	s.Secret = orDefault(c.Secret, DefaultSecret)
	v.Name("secret", s.Secret, dnsSubdomainPattern, "a Secret name")
	s.Deployment = orDefault(c.Deployment, DefaultDeployment)
	v.Name("deployment", s.Deployment, dnsSubdomainPattern, "a Deployment name")

	s.Keys = KeysConfig{
		Private:   orDefault(c.Keys.Private, DefaultPrivateKey),
		Public:    orDefault(c.Keys.Public, DefaultPublicKey),
		PublicOld: orDefault(c.Keys.PublicOld, DefaultPublicKeyOld),
		KeyID:     orDefault(c.Keys.KeyID, DefaultKeyID),
	}
	keys := []struct{ path, name string }{
		{"keys.private", s.Keys.Private}, {"keys.public", s.Keys.Public},
		{"keys.public_old", s.Keys.PublicOld}, {"keys.key_id", s.Keys.KeyID},
	}
	for i, k := range keys {
		v.Name(k.path, k.name, secretKeyPattern, "a Secret data key")
		for _, earlier := range keys[:i] {
			if k.name == earlier.name {
				v.Add(k.path, fmt.Sprintf("%q is also %s: each key needs its own name", k.name, earlier.path))
			}
		}
	}

	s.rolloutTimeout = v.Duration("rollout_timeout", c.RolloutTimeout, DefaultRolloutTimeout, maxRolloutTimeout, false)
	s.tokenLifetime = v.Duration("token_lifetime", c.TokenLifetime, DefaultTokenLifetime, maxTokenLifetime, true)
	s.gracePeriod = v.Duration("grace_period", c.GracePeriod, DefaultGracePeriod, maxGracePeriod, false)
	s.syncTimeout = v.Duration("sync_timeout", c.SyncTimeout, DefaultSyncTimeout, maxSyncTimeout, false)

	// The RSA sizes rotary generates: 2048 is the least RS256 allows,
	// 4096 what the runbook uses.
	switch c.KeyBits {
	case 2048, 3072, 4096:
	case 0:
		s.KeyBits = DefaultKeyBits
	default:
		v.Add("key_bits", fmt.Sprintf("%d is not a supported RSA key size: use 2048, 3072 or 4096", c.KeyBits))
	}

	inv := c.InvalidateSessions
	switch {
	case inv.Command == nil:
		s.InvalidateSessions.Command = DefaultInvalidateCommand()
	case len(inv.Command) == 0:
		v.Add("invalidate_sessions.command", "is empty: leave it out for the default [npm, run, invalidate-all-sessions], or give the program and its arguments")
	default:
		s.InvalidateSessions.Command = slices.Clone(inv.Command)
		for i, arg := range inv.Command {
			path := fmt.Sprintf("invalidate_sessions.command[%d]", i)
			if arg == "" && i == 0 {
				v.Add(path, "is empty: the first element is the program to run")
				continue
			}
			v.Placeholders(path, arg)
		}
	}
	if inv.Container != "" {
		v.Name("invalidate_sessions.container", inv.Container, dnsLabelPattern, "a container name")
	}
	s.invalidateTimeout = v.Duration("invalidate_sessions.timeout", inv.Timeout, DefaultInvalidateAfter, maxInvalidateTimeout, false)

	switch c.Backend {
	case "", BackendKubernetes:
		s.Backend = BackendKubernetes
		if c.SecretManager != nil {
			v.Add("secret_manager", "is only used with backend: secret_manager")
		}
	case BackendSecretManager:
		if c.SecretManager == nil {
			v.Add("secret_manager", "is required with backend: secret_manager (project, secret and external_secret)")
			break
		}
		sm := *c.SecretManager
		v.Name("secret_manager.project", sm.Project, gcpProjectPattern, "a GCP project id")
		v.Name("secret_manager.secret", sm.Secret, gsmSecretPattern, "a Secret Manager secret id")
		v.Name("secret_manager.external_secret", sm.ExternalSecret, dnsSubdomainPattern, "an ExternalSecret name")
		s.SecretManager = &sm
	default:
		v.Add("backend", fmt.Sprintf("%q is not a backend: use %s (rotary writes the Secret) or %s (rotary adds a Secret Manager version that an ExternalSecret syncs)",
			c.Backend, BackendKubernetes, BackendSecretManager))
	}
	return s, v.Problems()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// expandEnv replaces {env} in s.
func expandEnv(s, env string) string {
	return strings.ReplaceAll(s, EnvPlaceholder, env)
}
