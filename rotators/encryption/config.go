package encryption

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kindconfig"
)

// Defaults of optional settings.
const (
	DefaultKeyName        = "ENCRYPTION_KEY"
	DefaultOldKeyName     = "OLD_ENCRYPTION_KEY"
	DefaultNewKeyName     = "NEW_ENCRYPTION_KEY"
	DefaultJobTimeout     = time.Hour
	DefaultRolloutTimeout = 10 * time.Minute
)

// Bounds that catch a mistyped unit ("10h" for "10m") before it holds a
// rotation step for a day.
const (
	maxJobTimeout     = 24 * time.Hour
	maxRolloutTimeout = 2 * time.Hour
)

// EnvPlaceholder is replaced by the request's environment in every string
// setting, and in the Job templates' text.
const EnvPlaceholder = kindconfig.EnvPlaceholder

// sampleEnv stands in for the environment when a value is validated before
// any request exists.
const sampleEnv = kindconfig.SampleEnv

// Config is an encryption target's settings, as decoded from the config file
// (the generic keys kind, description and approvers are the loader's).
// Durations are strings so a bad one is reported with its path.
type Config struct {
	Namespace string `yaml:"namespace"`
	// Secret is the Kubernetes Secret holding the key (not synced from
	// Secret Manager: rotary writes it directly).
	Secret string `yaml:"secret"`
	// KeyName is the key the application reads outside a rotation; the
	// rotation starts from its value and ends with the new key under it.
	KeyName string `yaml:"key_name"`
	// OldKeyName and NewKeyName hold the two keys while data is re-encrypted.
	OldKeyName  string   `yaml:"old_key_name"`
	NewKeyName  string   `yaml:"new_key_name"`
	Deployments []string `yaml:"deployments"`
	// MigrationJob and VerificationJob are batch/v1 Job manifests (YAML text).
	MigrationJob    string `yaml:"migration_job"`
	VerificationJob string `yaml:"verification_job"`
	JobTimeout      string `yaml:"job_timeout"`
	RolloutTimeout  string `yaml:"rollout_timeout"`
}

// settings is a validated Config with defaults applied and durations parsed.
type settings struct {
	Config
	jobTimeout     time.Duration
	rolloutTimeout time.Duration
}

// Name patterns, checked with {env} replaced by sampleEnv.
const (
	dnsLabelPattern     = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	dnsSubdomainPattern = `^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`
	// secretKeyPattern is what Kubernetes accepts as a Secret data key.
	secretKeyPattern = `^[-._a-zA-Z0-9]{1,253}$`
)

// validate checks c and returns its settings, or the problems found, with
// paths relative to the target.
func validate(c Config) (settings, []rotators.Problem) {
	v := validator{kindconfig.Validator{DurationExample: "45m, 2h"}}
	s := settings{Config: c}

	v.Name("namespace", c.Namespace, dnsLabelPattern, "a Kubernetes namespace name")
	v.Name("secret", c.Secret, dnsSubdomainPattern, "a Secret name")
	s.KeyName = orDefault(c.KeyName, DefaultKeyName)
	s.OldKeyName = orDefault(c.OldKeyName, DefaultOldKeyName)
	s.NewKeyName = orDefault(c.NewKeyName, DefaultNewKeyName)
	v.Name("key_name", s.KeyName, secretKeyPattern, "a Secret data key")
	v.Name("old_key_name", s.OldKeyName, secretKeyPattern, "a Secret data key")
	v.Name("new_key_name", s.NewKeyName, secretKeyPattern, "a Secret data key")
	// key_name may equal new_key_name (the application always encrypts with
	// NEW_ENCRYPTION_KEY); every other pair must differ, or one key would
	// overwrite the other.
	if s.OldKeyName == s.NewKeyName {
		v.Add("new_key_name", fmt.Sprintf("%q is also old_key_name: the two keys need two names", s.NewKeyName))
	}
	if s.OldKeyName == s.KeyName {
		v.Add("old_key_name", fmt.Sprintf("%q is also key_name: the old key would be where the application reads its key after the rotation", s.OldKeyName))
	}

	if len(c.Deployments) == 0 {
		v.Add("deployments", "is required: at least one deployment that reads the key")
	}
	for i, d := range c.Deployments {
		path := fmt.Sprintf("deployments[%d]", i)
		v.Name(path, d, dnsSubdomainPattern, "a Deployment name")
		if slices.Index(c.Deployments, d) < i {
			v.Add(path, fmt.Sprintf("%q is listed twice", d))
		}
	}
	s.Deployments = slices.Clone(c.Deployments)

	migration := v.job("migration_job", c.MigrationJob, c.Namespace, true)
	verification := v.job("verification_job", c.VerificationJob, c.Namespace, false)
	if migration != nil && verification != nil && migration.Name == verification.Name {
		// Both Jobs are named after their template and the request.
		v.Add("verification_job.metadata.name", fmt.Sprintf("%q is also the migration Job's name: the two Jobs need two names", verification.Name))
	}

	s.jobTimeout = v.Duration("job_timeout", c.JobTimeout, DefaultJobTimeout, maxJobTimeout, false)
	s.rolloutTimeout = v.Duration("rollout_timeout", c.RolloutTimeout, DefaultRolloutTimeout, maxRolloutTimeout, false)
	return s, v.Problems()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validator is the shared kindconfig.Validator plus this kind's own checks.
type validator struct{ kindconfig.Validator }

// job checks a Job template (required or not) and returns its identity, or
// nil when it is absent or has problems.
func (v *validator) job(path, text, namespace string, required bool) *templateInfo {
	if strings.TrimSpace(text) == "" {
		if required {
			v.Add(path, "is required: a batch/v1 Job manifest (inline YAML, `"+path+": |`) that re-encrypts the data")
		}
		return nil
	}
	job, err := decodeJob(text, sampleEnv)
	if err != nil {
		v.Add(path, err.Error())
		return nil
	}
	ps := checkJob(job, expandEnv(namespace, sampleEnv))
	for _, p := range ps {
		v.Add(joinPath(path, p.Path), p.Message)
	}
	if len(ps) > 0 {
		return nil
	}
	return &templateInfo{Name: job.Name}
}

// templateInfo is what validation learns about a template.
type templateInfo struct{ Name string }

func joinPath(a, b string) string {
	if b == "" {
		return a
	}
	return a + "." + b
}

// expandEnv replaces {env} in s.
func expandEnv(s, env string) string {
	return strings.ReplaceAll(s, EnvPlaceholder, env)
}
