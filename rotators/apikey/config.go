package apikey

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kindconfig"
)

// Providers.
const (
	ProviderOpenAI   = "openai"
	ProviderSendGrid = "sendgrid"
	ProviderManual   = "manual"
)

// Defaults of optional settings.
const (
	DefaultLogErrorPattern = "(?i)error"
	DefaultSyncTimeout     = 2 * time.Minute
	DefaultRolloutTimeout  = 10 * time.Minute
	DefaultOpenAIBase      = "https://api.openai.com"
	DefaultSendGridBase    = "https://api.sendgrid.com"
)

// Bounds that catch a mistyped unit ("2h" for "2m") before it holds a
// rotation step for hours.
const (
	maxSyncTimeout    = 30 * time.Minute
	maxRolloutTimeout = 2 * time.Hour
)

// EnvPlaceholder is the one placeholder a string value may contain; Plan
// replaces it with the request's environment.
const EnvPlaceholder = kindconfig.EnvPlaceholder

// sampleEnv stands in for the environment when a value is validated before
// any request exists.
const sampleEnv = kindconfig.SampleEnv

// Config is an apikey target's settings, as decoded from the config file
// (the generic keys kind, description and approvers are the loader's).
// Durations are strings so a bad one is reported with its path.
type Config struct {
	Provider        string              `yaml:"provider"`
	Namespace       string              `yaml:"namespace"`
	SecretManager   SecretManagerConfig `yaml:"secret_manager"`
	ExternalSecret  string              `yaml:"external_secret"`
	Deployments     []string            `yaml:"deployments"`
	LogErrorPattern string              `yaml:"log_error_pattern"`
	SyncTimeout     string              `yaml:"sync_timeout"`
	RolloutTimeout  string              `yaml:"rollout_timeout"`
	OpenAI          *OpenAIConfig       `yaml:"openai"`
	SendGrid        *SendGridConfig     `yaml:"sendgrid"`
	Manual          *ManualConfig       `yaml:"manual"`
}

// SecretManagerConfig names the Google Secret Manager secret.
type SecretManagerConfig struct {
	Project string `yaml:"project"`
	Secret  string `yaml:"secret"`
}

// OpenAIConfig is the openai provider's section.
type OpenAIConfig struct {
	APIBase   string `yaml:"api_base"`
	ProjectID string `yaml:"project_id"`
	// AdminKeyEnv names the credential holding the OpenAI admin key.
	AdminKeyEnv string `yaml:"admin_key_env"`
}

// SendGridConfig is the sendgrid provider's section.
type SendGridConfig struct {
	APIBase string   `yaml:"api_base"`
	Scopes  []string `yaml:"scopes"`
	// AdminKeyEnv names the credential holding a SendGrid key allowed to manage API keys.
	AdminKeyEnv string `yaml:"admin_key_env"`
}

// ManualConfig is the manual provider's optional section.
type ManualConfig struct {
	DashboardURL string `yaml:"dashboard_url"`
}

// settings is a validated Config with defaults applied and durations parsed.
type settings struct {
	Config
	syncTimeout    time.Duration
	rolloutTimeout time.Duration
}

// Patterns of names that Kubernetes, Secret Manager and the providers accept.
// They are checked with {env} replaced by sampleEnv.
const (
	dnsLabelPattern     = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	dnsSubdomainPattern = `^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`
	gcpProjectPattern   = `^[a-z][-a-z0-9]{4,28}[a-z0-9]$`
	gsmSecretIDPattern  = `^[A-Za-z0-9_-]{1,255}$`
	providerIDPattern   = `^[A-Za-z0-9_-]{1,128}$`
	credNamePattern     = `^[A-Za-z_][A-Za-z0-9_]*$`
	scopePattern        = `^[a-z0-9_.]+$`
)

// validate checks c and returns its settings, or the problems found, with
// paths relative to the target.
func validate(c Config) (settings, []rotators.Problem) {
	v := validator{kindconfig.Validator{DurationExample: "2m, 90s"}}
	s := settings{Config: c}

	switch c.Provider {
	case ProviderOpenAI, ProviderSendGrid, ProviderManual:
	case "":
		v.Add("provider", "is required (openai, sendgrid or manual)")
	default:
		v.Add("provider", fmt.Sprintf("%q is not a provider (openai, sendgrid or manual)", c.Provider))
	}

	v.Name("namespace", c.Namespace, dnsLabelPattern, "a Kubernetes namespace name")
	v.Name("secret_manager.project", c.SecretManager.Project, gcpProjectPattern, "a GCP project id")
	v.Name("secret_manager.secret", c.SecretManager.Secret, gsmSecretIDPattern, "a Secret Manager secret id")
	v.Name("external_secret", c.ExternalSecret, dnsSubdomainPattern, "an ExternalSecret name")
	if len(c.Deployments) == 0 {
		v.Add("deployments", "is required: at least one deployment to restart")
	}
	for i, d := range c.Deployments {
		path := fmt.Sprintf("deployments[%d]", i)
		v.Name(path, d, dnsSubdomainPattern, "a Deployment name")
		if slices.Index(c.Deployments, d) < i {
			v.Add(path, fmt.Sprintf("%q is listed twice", d))
		}
	}

	if s.LogErrorPattern == "" {
		s.LogErrorPattern = DefaultLogErrorPattern
	}
	// A regexp may use braces as repetition ({2,3}), so only {env} is
	// expanded here and nothing else is treated as a placeholder.
	if _, err := regexp.Compile(expandPattern(s.LogErrorPattern, sampleEnv)); err != nil {
		v.Add("log_error_pattern", fmt.Sprintf("is not a valid Go regexp: %v", err))
	}
	s.syncTimeout = v.Duration("sync_timeout", c.SyncTimeout, DefaultSyncTimeout, maxSyncTimeout, false)
	s.rolloutTimeout = v.Duration("rollout_timeout", c.RolloutTimeout, DefaultRolloutTimeout, maxRolloutTimeout, false)

	v.section("openai", c.OpenAI != nil, c.Provider == ProviderOpenAI, true)
	v.section("sendgrid", c.SendGrid != nil, c.Provider == ProviderSendGrid, true)
	v.section("manual", c.Manual != nil, c.Provider == ProviderManual, false)
	if c.OpenAI != nil {
		o := *c.OpenAI
		if o.APIBase == "" {
			o.APIBase = DefaultOpenAIBase
		}
		v.baseURL("openai.api_base", o.APIBase)
		v.Name("openai.project_id", o.ProjectID, providerIDPattern, "an OpenAI project id (proj_…)")
		v.Name("openai.admin_key_env", o.AdminKeyEnv, credNamePattern, "a credential name (an environment variable name)")
		s.OpenAI = &o
	}
	if c.SendGrid != nil {
		g := *c.SendGrid
		if g.APIBase == "" {
			g.APIBase = DefaultSendGridBase
		}
		v.baseURL("sendgrid.api_base", g.APIBase)
		// SendGrid gives a key without scopes full access: rotary never
		// creates one by omission.
		if len(g.Scopes) == 0 {
			v.Add("sendgrid.scopes", "is required: the new key's scopes (SendGrid grants full access when none are given)")
		}
		for i, sc := range g.Scopes {
			v.Name(fmt.Sprintf("sendgrid.scopes[%d]", i), sc, scopePattern, "a SendGrid scope (e.g. mail.send)")
		}
		g.Scopes = slices.Clone(g.Scopes)
		v.Name("sendgrid.admin_key_env", g.AdminKeyEnv, credNamePattern, "a credential name (an environment variable name)")
		s.SendGrid = &g
	}
	if c.Manual != nil {
		m := *c.Manual
		if m.DashboardURL != "" {
			v.Placeholders("manual.dashboard_url", m.DashboardURL)
			if u, err := url.Parse(strings.ReplaceAll(m.DashboardURL, EnvPlaceholder, sampleEnv)); err != nil || u.Scheme != "https" || u.Host == "" {
				v.Add("manual.dashboard_url", "must be an https:// URL")
			}
		}
		s.Manual = &m
	}
	s.Deployments = slices.Clone(c.Deployments)
	return s, v.Problems()
}

// validator is the shared kindconfig.Validator plus this kind's own checks.
type validator struct{ kindconfig.Validator }

// section checks that a provider section is present when its provider is
// chosen (if required) and absent otherwise, so a misplaced section is not
// silently ignored.
func (v *validator) section(path string, present, chosen, required bool) {
	switch {
	case chosen && required && !present:
		v.Add(path, "is required when provider is "+path)
	case !chosen && present:
		v.Add(path, "is only used when provider is "+path)
	}
}

// baseURL accepts https URLs, and plain http to a loopback address (a local
// proxy or test server): the admin key must not cross a network in clear.
func (v *validator) baseURL(path, s string) {
	if !v.Placeholders(path, s) {
		return
	}
	u, err := url.Parse(strings.ReplaceAll(s, EnvPlaceholder, sampleEnv))
	switch {
	case err != nil || u.Host == "" || !u.IsAbs():
		v.Add(path, fmt.Sprintf("%q is not an absolute URL", s))
	case u.User != nil:
		v.Add(path, "must not contain credentials; name them in admin_key_env")
	case u.RawQuery != "" || u.Fragment != "":
		v.Add(path, "must not have a query or fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		v.Add(path, "must be https:// (plain http only to a loopback address)")
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// expandPattern replaces {env} in a log pattern with env as a literal.
func expandPattern(pattern, env string) string {
	return strings.ReplaceAll(pattern, EnvPlaceholder, regexp.QuoteMeta(env))
}
