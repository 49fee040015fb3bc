package redis

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kindconfig"
)

// Modes.
const (
	ModeACL         = "acl"
	ModeRequirepass = "requirepass"
)

// Ways to persist the ACL in acl mode.
const (
	PersistACLSave       = "acl_save"
	PersistConfigRewrite = "config_rewrite"
)

// Defaults of optional settings.
const (
	DefaultMode           = ModeACL
	DefaultAdminUser      = "default"
	DefaultRolloutTimeout = 10 * time.Minute
)

// maxRolloutTimeout catches a mistyped unit ("2h" for "2m") before it holds
// a rotation step for hours.
const maxRolloutTimeout = 2 * time.Hour

// EnvPlaceholder is the one placeholder a string value may contain; Plan
// replaces it with the request's environment.
const EnvPlaceholder = kindconfig.EnvPlaceholder

// sampleEnv stands in for the environment when a value is validated before
// any request exists.
const sampleEnv = kindconfig.SampleEnv

// redisDefaultUser is Redis's built-in user, the one requirepass sets.
const redisDefaultUser = "default"

// Config is a redis target's settings, as decoded from the config file (the
// generic keys kind, description and approvers are the loader's). Durations
// are strings so a bad one is reported with its path.
type Config struct {
	Mode             string   `yaml:"mode"`
	Address          string   `yaml:"address"`
	TLS              bool     `yaml:"tls"`
	Namespace        string   `yaml:"namespace"`
	Secret           string   `yaml:"secret"`
	SecretKey        string   `yaml:"secret_key"`
	Deployments      []string `yaml:"deployments"`
	ACLUser          string   `yaml:"acl_user"`
	Persist          string   `yaml:"persist"`
	AdminUser        string   `yaml:"admin_user"`
	AdminPasswordEnv string   `yaml:"admin_password_env"`
	RolloutTimeout   string   `yaml:"rollout_timeout"`
}

// settings is a validated Config with defaults applied and durations parsed.
type settings struct {
	Config
	rolloutTimeout time.Duration
}

// adminRotated reports whether the admin connection logs in as the very user
// whose password is rotated (requirepass mode, admin_user default): its
// password is then the Secret's, not a credential.
func (s settings) adminRotated() bool {
	return s.Mode == ModeRequirepass && s.AdminUser == redisDefaultUser
}

// Patterns of names that Kubernetes and Redis accept. They are checked with
// {env} replaced by sampleEnv.
const (
	dnsLabelPattern     = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	dnsSubdomainPattern = `^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`
	secretKeyPattern    = `^[-._a-zA-Z0-9]{1,253}$`
	credNamePattern     = `^[A-Za-z_][A-Za-z0-9_]*$`
	// ACL user names: no spaces or control characters in Redis; rotary
	// also keeps out the characters ACL rules start with (> < # ! ~ & + - %),
	// so a name can never be read as a rule.
	aclUserPattern = `^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,63}$`
)

// validate checks c and returns its settings, or the problems found, with
// paths relative to the target.
func validate(c Config) (settings, []rotators.Problem) {
	v := validator{kindconfig.Validator{DurationExample: "10m, 90s"}}
	s := settings{Config: c}
	if s.Mode == "" {
		s.Mode = DefaultMode
	}
	if s.AdminUser == "" {
		s.AdminUser = DefaultAdminUser
	}

	switch s.Mode {
	case ModeACL, ModeRequirepass:
	default:
		v.Add("mode", fmt.Sprintf("%q is not a mode (acl or requirepass)", c.Mode))
	}
	v.address("address", c.Address)
	v.Name("namespace", c.Namespace, dnsLabelPattern, "a Kubernetes namespace name")
	v.Name("secret", c.Secret, dnsSubdomainPattern, "a Secret name")
	v.Name("secret_key", c.SecretKey, secretKeyPattern, "a Secret key (letters, digits, -, _ and .)")
	if len(c.Deployments) == 0 {
		v.Add("deployments", "is required: at least one deployment that reads the password")
	}
	for i, d := range c.Deployments {
		path := fmt.Sprintf("deployments[%d]", i)
		v.Name(path, d, dnsSubdomainPattern, "a Deployment name")
		if slices.Index(c.Deployments, d) < i {
			v.Add(path, fmt.Sprintf("%q is listed twice", d))
		}
	}
	v.Name("admin_user", s.AdminUser, aclUserPattern, "a Redis user name")

	switch s.Mode {
	case ModeACL:
		v.Name("acl_user", c.ACLUser, aclUserPattern, "a Redis user name")
		if c.ACLUser != "" && c.ACLUser == s.AdminUser {
			v.Add("acl_user", fmt.Sprintf("%q is also admin_user: rotary must not log in as the user whose passwords it removes; give rotary its own admin user", c.ACLUser))
		}
		switch c.Persist {
		case "", PersistACLSave, PersistConfigRewrite:
		default:
			v.Add("persist", fmt.Sprintf("%q is not a way to persist (acl_save or config_rewrite; leave it out to choose by whether Redis has an aclfile)", c.Persist))
		}
		v.Name("admin_password_env", c.AdminPasswordEnv, credNamePattern, "a credential name (an environment variable name)")
	case ModeRequirepass:
		if c.ACLUser != "" {
			v.Add("acl_user", "is only used in acl mode (requirepass mode rotates the default user's password)")
		}
		if c.Persist != "" {
			v.Add("persist", "is only used in acl mode (requirepass mode always persists with CONFIG REWRITE)")
		}
		if s.adminRotated() {
			if c.AdminPasswordEnv != "" {
				v.Add("admin_password_env", "must be left out in requirepass mode when admin_user is default: the admin's password is the rotated one, which rotary reads from the Secret; a credential would be stale after the first rotation")
			}
		} else {
			v.Name("admin_password_env", c.AdminPasswordEnv, credNamePattern, "a credential name (an environment variable name)")
		}
	}
	s.rolloutTimeout = v.Duration("rollout_timeout", c.RolloutTimeout, DefaultRolloutTimeout, maxRolloutTimeout, false)
	s.Deployments = slices.Clone(c.Deployments)
	return s, v.Problems()
}

// validator is the shared kindconfig.Validator plus this kind's own checks.
type validator struct{ kindconfig.Validator }

// address checks host:port.
func (v *validator) address(path, s string) {
	if s == "" {
		v.Add(path, "is required (host:port)")
		return
	}
	if !v.Placeholders(path, s) {
		return
	}
	host, port, err := net.SplitHostPort(strings.ReplaceAll(s, EnvPlaceholder, sampleEnv))
	if err != nil || host == "" {
		v.Add(path, fmt.Sprintf("%q is not host:port", s))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.Add(path, fmt.Sprintf("%q has no valid port (1-65535)", s))
	}
}
