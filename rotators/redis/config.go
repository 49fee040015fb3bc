package redis

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
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
const EnvPlaceholder = "{env}"

// sampleEnv stands in for the environment when a value is validated before
// any request exists.
const sampleEnv = "env"

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
	v := validator{}
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
		v.add("mode", fmt.Sprintf("%q is not a mode (acl or requirepass)", c.Mode))
	}
	v.address("address", c.Address)
	v.name("namespace", c.Namespace, dnsLabelPattern, "a Kubernetes namespace name")
	v.name("secret", c.Secret, dnsSubdomainPattern, "a Secret name")
	v.name("secret_key", c.SecretKey, secretKeyPattern, "a Secret key (letters, digits, -, _ and .)")
	if len(c.Deployments) == 0 {
		v.add("deployments", "is required: at least one deployment that reads the password")
	}
	for i, d := range c.Deployments {
		path := fmt.Sprintf("deployments[%d]", i)
		v.name(path, d, dnsSubdomainPattern, "a Deployment name")
		if slices.Index(c.Deployments, d) < i {
			v.add(path, fmt.Sprintf("%q is listed twice", d))
		}
	}
	v.name("admin_user", s.AdminUser, aclUserPattern, "a Redis user name")

	switch s.Mode {
	case ModeACL:
		v.name("acl_user", c.ACLUser, aclUserPattern, "a Redis user name")
		if c.ACLUser != "" && c.ACLUser == s.AdminUser {
			v.add("acl_user", fmt.Sprintf("%q is also admin_user: rotary must not log in as the user whose passwords it removes; give rotary its own admin user", c.ACLUser))
		}
		switch c.Persist {
		case "", PersistACLSave, PersistConfigRewrite:
		default:
			v.add("persist", fmt.Sprintf("%q is not a way to persist (acl_save or config_rewrite; leave it out to choose by whether Redis has an aclfile)", c.Persist))
		}
		v.name("admin_password_env", c.AdminPasswordEnv, credNamePattern, "a credential name (an environment variable name)")
	case ModeRequirepass:
		if c.ACLUser != "" {
			v.add("acl_user", "is only used in acl mode (requirepass mode rotates the default user's password)")
		}
		if c.Persist != "" {
			v.add("persist", "is only used in acl mode (requirepass mode always persists with CONFIG REWRITE)")
		}
		if s.adminRotated() {
			if c.AdminPasswordEnv != "" {
				v.add("admin_password_env", "must be left out in requirepass mode when admin_user is default: the admin's password is the rotated one, which rotary reads from the Secret; a credential would be stale after the first rotation")
			}
		} else {
			v.name("admin_password_env", c.AdminPasswordEnv, credNamePattern, "a credential name (an environment variable name)")
		}
	}
	s.rolloutTimeout = v.duration("rollout_timeout", c.RolloutTimeout, DefaultRolloutTimeout, maxRolloutTimeout)
	s.Deployments = slices.Clone(c.Deployments)
	return s, v.problems
}

type validator struct{ problems []rotators.Problem }

func (v *validator) add(path, msg string) {
	v.problems = append(v.problems, rotators.Problem{Path: path, Message: msg})
}

// placeholders reports braces other than {env}: a typo such as {ENV} would
// otherwise reach Kubernetes or Redis literally.
func (v *validator) placeholders(path, s string) bool {
	if strings.ContainsAny(strings.ReplaceAll(s, EnvPlaceholder, ""), "{}") {
		v.add(path, fmt.Sprintf("%q uses a placeholder other than %s (the only one there is)", s, EnvPlaceholder))
		return false
	}
	return true
}

// name checks a required name against pattern, with {env} expanded.
func (v *validator) name(path, s, pattern, what string) {
	if s == "" {
		v.add(path, "is required")
		return
	}
	if !v.placeholders(path, s) {
		return
	}
	if !regexp.MustCompile(pattern).MatchString(strings.ReplaceAll(s, EnvPlaceholder, sampleEnv)) {
		v.add(path, fmt.Sprintf("%q is not %s", s, what))
	}
}

// address checks host:port.
func (v *validator) address(path, s string) {
	if s == "" {
		v.add(path, "is required (host:port)")
		return
	}
	if !v.placeholders(path, s) {
		return
	}
	host, port, err := net.SplitHostPort(strings.ReplaceAll(s, EnvPlaceholder, sampleEnv))
	if err != nil || host == "" {
		v.add(path, fmt.Sprintf("%q is not host:port", s))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(path, fmt.Sprintf("%q has no valid port (1-65535)", s))
	}
}

func (v *validator) duration(path, s string, def, maxD time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		v.add(path, fmt.Sprintf("%q is not a duration (e.g. 10m, 90s)", s))
	case d <= 0:
		v.add(path, "must be positive")
	case d > maxD:
		v.add(path, fmt.Sprintf("%s is longer than the maximum %s", d, maxD))
	default:
		return d
	}
	return def
}
