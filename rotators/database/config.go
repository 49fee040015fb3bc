package database

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kindconfig"
)

// Defaults of optional settings.
const (
	DefaultCheckQuery     = "SELECT 1"
	DefaultSchema         = "public"
	DefaultRetireAfter    = time.Hour
	DefaultSyncTimeout    = 2 * time.Minute
	DefaultRolloutTimeout = 10 * time.Minute
)

// Bounds that catch a mistyped unit ("2h" for "2m") before it holds a
// rotation step for hours (or, for retire_after, the target's slot for weeks).
const (
	maxSyncTimeout    = 30 * time.Minute
	maxRolloutTimeout = 2 * time.Hour
	maxRetireAfter    = 7 * 24 * time.Hour
)

// Placeholders. {env} may appear in every string but check_query (SQL may
// hold braces of its own); the others only where their doc says.
const (
	EnvPlaceholder      = kindconfig.EnvPlaceholder
	DatePlaceholder     = "{date}"     // role_pattern: yyyymmdd (UTC)
	RequestPlaceholder  = "{request}"  // role_pattern: the request id, lowercase, - as _
	UserPlaceholder     = "{user}"     // dsn_template userinfo
	PasswordPlaceholder = "{password}" // dsn_template userinfo
)

// Sample values that stand in for placeholders when a value is validated
// before any request exists.
const (
	sampleEnv     = kindconfig.SampleEnv
	sampleDate    = "20261126"
	sampleRequest = "r_23456789"
)

// maxIdentLen is PostgreSQL's identifier limit (NAMEDATALEN-1 bytes); the
// server truncates longer names silently, which would make rotary look for
// a role that does not exist under the name it recorded.
const maxIdentLen = 63

// Config is a database target's settings, as decoded from the config file
// (the generic keys kind, description and approvers are the loader's).
// Durations are strings so a bad one is reported with its path.
type Config struct {
	Namespace         string              `yaml:"namespace"`
	SecretManager     SecretManagerConfig `yaml:"secret_manager"`
	ExternalSecret    string              `yaml:"external_secret"`
	Deployments       []string            `yaml:"deployments"`
	RolePattern       string              `yaml:"role_pattern"`
	DSNTemplate       string              `yaml:"dsn_template"`
	Database          string              `yaml:"database"`
	Schemas           []string            `yaml:"schemas"`
	CheckQuery        string              `yaml:"check_query"`
	CheckTable        string              `yaml:"check_table"`
	VerifyConnections bool                `yaml:"verify_connections"`
	RetireAfter       string              `yaml:"retire_after"`
	SyncTimeout       string              `yaml:"sync_timeout"`
	RolloutTimeout    string              `yaml:"rollout_timeout"`
	AdminDSNEnv       string              `yaml:"admin_dsn_env"`
}

// SecretManagerConfig names the Google Secret Manager secret holding the DSN.
type SecretManagerConfig struct {
	Project string `yaml:"project"`
	Secret  string `yaml:"secret"`
}

// settings is a validated Config with defaults applied and durations parsed.
type settings struct {
	Config
	retireAfter    time.Duration
	syncTimeout    time.Duration
	rolloutTimeout time.Duration
}

// Patterns of names that Kubernetes and Secret Manager accept, checked with
// {env} replaced by sampleEnv.
const (
	dnsLabelPattern     = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	dnsSubdomainPattern = `^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`
	gcpProjectPattern   = `^[a-z][-a-z0-9]{4,28}[a-z0-9]$`
	gsmSecretIDPattern  = `^[A-Za-z0-9_-]{1,255}$`
	credNamePattern     = `^[A-Za-z_][A-Za-z0-9_]*$`
)

// dsnUserinfo is what the userinfo of dsn_template must be.
const dsnUserinfo = UserPlaceholder + ":" + PasswordPlaceholder

// validate checks c and returns its settings, or the problems found, with
// paths relative to the target.
func validate(c Config) (settings, []rotators.Problem) {
	v := validator{kindconfig.Validator{DurationExample: "2m, 90s", MorePlaceholders: true}}
	s := settings{Config: c}

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
	s.Deployments = slices.Clone(c.Deployments)

	v.rolePattern("role_pattern", c.RolePattern)
	dbOK := v.ident("database", c.Database, true)
	if dbOK {
		v.dsnTemplate("dsn_template", c.DSNTemplate, c.Database)
	} else if c.DSNTemplate == "" {
		v.Add("dsn_template", "is required")
	}

	s.Schemas = slices.Clone(c.Schemas)
	if c.Schemas == nil {
		s.Schemas = []string{DefaultSchema}
	} else if len(c.Schemas) == 0 {
		v.Add("schemas", "must list at least one schema (leave it out for [public])")
	}
	for i, sc := range c.Schemas {
		path := fmt.Sprintf("schemas[%d]", i)
		v.ident(path, sc, true)
		if slices.Index(c.Schemas, sc) < i {
			v.Add(path, fmt.Sprintf("%q is listed twice", sc))
		}
	}

	if strings.TrimSpace(c.CheckQuery) == "" {
		if c.CheckQuery != "" {
			v.Add("check_query", "is blank (leave it out for "+DefaultCheckQuery+")")
		}
		s.CheckQuery = DefaultCheckQuery
	} else if strings.ContainsRune(c.CheckQuery, 0) {
		v.Add("check_query", "contains a NUL character")
	}
	if c.CheckTable != "" {
		schema, table := splitTable(c.CheckTable)
		if strings.HasPrefix(c.CheckTable, ".") || strings.HasSuffix(c.CheckTable, ".") {
			v.Add("check_table", fmt.Sprintf("%q has an empty schema or table name (write table or schema.table)", c.CheckTable))
		} else {
			v.ident("check_table", schema, false)
			v.ident("check_table", table, true)
		}
	}

	s.retireAfter = v.Duration("retire_after", c.RetireAfter, DefaultRetireAfter, maxRetireAfter, true)
	s.syncTimeout = v.Duration("sync_timeout", c.SyncTimeout, DefaultSyncTimeout, maxSyncTimeout, false)
	s.rolloutTimeout = v.Duration("rollout_timeout", c.RolloutTimeout, DefaultRolloutTimeout, maxRolloutTimeout, false)
	v.Name("admin_dsn_env", c.AdminDSNEnv, credNamePattern, "a credential name (an environment variable name)")
	return s, v.Problems()
}

// splitTable splits check_table's "schema.table" (or "table") at the first
// dot; names holding a dot are not supported there.
func splitTable(s string) (schema, table string) {
	if schema, table, ok := strings.Cut(s, "."); ok {
		return schema, table
	}
	return "", s
}

// validator is the shared kindconfig.Validator plus this kind's own checks.
type validator struct{ kindconfig.Validator }

// ident checks a PostgreSQL identifier (any characters are quoted, but not
// NUL or control characters, and not longer than the server keeps).
func (v *validator) ident(path, s string, required bool) bool {
	if s == "" {
		if required {
			v.Add(path, "is required")
		}
		return false
	}
	if !v.Placeholders(path, s) {
		return false
	}
	if msg := identProblem(strings.ReplaceAll(s, EnvPlaceholder, sampleEnv)); msg != "" {
		v.Add(path, fmt.Sprintf("%q %s", s, msg))
		return false
	}
	return true
}

// identProblem says what is wrong with a PostgreSQL identifier, or "".
func identProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "contains a control character"
	case len(s) > maxIdentLen:
		return fmt.Sprintf("is longer than %d bytes (PostgreSQL would truncate it)", maxIdentLen)
	}
	return ""
}

// rolePattern checks role_pattern with sample values, leaving room for a
// "_<n>" suffix.
func (v *validator) rolePattern(path, s string) {
	if s == "" {
		v.Add(path, "is required (e.g. auth_{date})")
		return
	}
	if !v.Placeholders(path, s, DatePlaceholder, RequestPlaceholder) {
		return
	}
	name := expandRolePattern(s, sampleEnv, sampleDate, sampleRequest)
	if msg := roleNameProblem(name, len(roleSuffix(maxRoleSuffix))); msg != "" {
		v.Add(path, fmt.Sprintf("%q gives %q, which %s", s, name, msg))
	}
}

// dsnTemplate checks dsn_template: a postgres URL whose userinfo is
// exactly {user}:{password} and whose path is the database.
func (v *validator) dsnTemplate(path, s, database string) {
	if s == "" {
		v.Add(path, "is required (e.g. postgresql://{user}:{password}@db.internal:5432/aivo_auth?sslmode=require)")
		return
	}
	if !v.Placeholders(path, s, UserPlaceholder, PasswordPlaceholder) {
		return
	}
	expanded := strings.ReplaceAll(s, EnvPlaceholder, sampleEnv)
	scheme, rest, ok := splitTemplate(expanded)
	if !ok {
		v.Add(path, fmt.Sprintf("must be postgresql://%s@host:port/database…", dsnUserinfo))
		return
	}
	if strings.Contains(rest, UserPlaceholder) || strings.Contains(rest, PasswordPlaceholder) {
		v.Add(path, fmt.Sprintf("uses %s or %s outside the userinfo", UserPlaceholder, PasswordPlaceholder))
		return
	}
	u, err := url.Parse(scheme + "://u:p@" + rest)
	switch {
	case err != nil:
		v.Add(path, "is not a valid URL once {user} and {password} are filled in")
	case u.Host == "":
		v.Add(path, "has no host")
	case u.Fragment != "":
		v.Add(path, "must not have a fragment")
	case strings.TrimPrefix(u.Path, "/") != strings.ReplaceAll(database, EnvPlaceholder, sampleEnv):
		// The application must reach the database the grants are made in.
		v.Add(path, fmt.Sprintf("connects to database %q, not to %q (database)", strings.TrimPrefix(u.Path, "/"), database))
	}
}

// splitTemplate splits "<scheme>://{user}:{password}@<rest>".
func splitTemplate(t string) (scheme, rest string, ok bool) {
	for _, sc := range []string{"postgresql", "postgres"} {
		if r, found := strings.CutPrefix(t, sc+"://"+dsnUserinfo+"@"); found {
			return sc, r, true
		}
	}
	return "", "", false
}
