package database

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
)

// validYAML is the example target of the package doc.
const validYAML = `
namespace: aivo-{env}
secret_manager:
  project: aivo-platform
  secret: aivo-{env}-auth-database-url
external_secret: database-credentials
deployments: [auth-svc]
role_pattern: auth_{date}
dsn_template: postgresql://{user}:{password}@db.internal:5432/aivo_auth?sslmode=require
database: aivo_auth
admin_dsn_env: ROTARY_DB_ADMIN_DSN
`

func build(t *testing.T, src string) (*Rotator, []rotators.Problem) {
	t.Helper()
	r, problems := Build("auth-db", yamlDecode(src), rotators.Deps{})
	if r == nil {
		return nil, problems
	}
	return r.(*Rotator), problems
}

func TestConfigDefaults(t *testing.T) {
	r, problems := build(t, validYAML)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	s := r.s
	if !slices.Equal(s.Schemas, []string{"public"}) || s.CheckQuery != DefaultCheckQuery || s.CheckTable != "" || s.VerifyConnections {
		t.Errorf("defaults: schemas %v, check_query %q, check_table %q, verify_connections %v", s.Schemas, s.CheckQuery, s.CheckTable, s.VerifyConnections)
	}
	if s.retireAfter != time.Hour || s.syncTimeout != 2*time.Minute || s.rolloutTimeout != 10*time.Minute {
		t.Errorf("durations: retire_after %s, sync_timeout %s, rollout_timeout %s", s.retireAfter, s.syncTimeout, s.rolloutTimeout)
	}
	if r.clients.Store != nil || r.clients.Cluster != nil {
		t.Error("nil deps became non-nil interfaces")
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		path    string
		message string
	}{
		{"unknown key", add("retire_afer: 1h"), "", "field retire_afer not found"},
		{"no namespace", drop("namespace:"), "namespace", "is required"},
		{"bad namespace", set("namespace: Aivo_{env}"), "namespace", "is not a Kubernetes namespace name"},
		{"placeholder typo", set("namespace: aivo-{ENV}"), "namespace", "placeholder other than"},
		{"bad project", set("  project: X"), "secret_manager.project", "GCP project"},
		{"no deployments", set("deployments: []"), "deployments", "at least one"},
		{"duplicate deployment", set("deployments: [a, a]"), "deployments[1]", "listed twice"},
		{"no role pattern", drop("role_pattern:"), "role_pattern", "is required"},
		{"role pattern placeholder", set("role_pattern: auth_{day}"), "role_pattern", "placeholder other than"},
		{"role pattern too long", set("role_pattern: " + strings.Repeat("a", 55) + "_{date}"), "role_pattern", "longer than 63 bytes"},
		{"role pattern leaves no room for a suffix", set("role_pattern: " + strings.Repeat("a", 53) + "_{date}"), "role_pattern", "a _99 suffix"},
		{"role pattern reserved prefix", set("role_pattern: pg_{date}"), "role_pattern", "starts with pg_"},
		{"role pattern control char", set(`role_pattern: "a\tb{date}"`), "role_pattern", "control character"},
		{"no template", drop("dsn_template:"), "dsn_template", "is required"},
		{"template userinfo", set("dsn_template: postgresql://app:{password}@db:5432/aivo_auth"), "dsn_template", "must be postgresql://{user}:{password}@"},
		{"template placeholder typo", set("dsn_template: postgresql://{user}:{pass}@db:5432/aivo_auth"), "dsn_template", "placeholder other than"},
		{"template literal password", set("dsn_template: postgresql://{user}:hunter2@db:5432/aivo_auth"), "dsn_template", "must be postgresql://{user}:{password}@"},
		{"template scheme", set("dsn_template: mysql://{user}:{password}@db:5432/aivo_auth"), "dsn_template", "must be postgresql://"},
		{"template password elsewhere", set("dsn_template: postgresql://{user}:{password}@db:5432/aivo_auth?x={password}"), "dsn_template", "outside the userinfo"},
		{"template no host", set("dsn_template: postgresql://{user}:{password}@/aivo_auth"), "dsn_template", "no host"},
		{"template other database", set("dsn_template: postgresql://{user}:{password}@db:5432/other"), "dsn_template", `not to "aivo_auth"`},
		{"no database", drop("database:"), "database", "is required"},
		{"empty schemas", add("schemas: []"), "schemas", "at least one"},
		{"duplicate schema", add("schemas: [public, public]"), "schemas[1]", "listed twice"},
		{"blank check query", add(`check_query: "  "`), "check_query", "is blank"},
		{"bad check table", add(`check_table: "a.b\u0001"`), "check_table", "control character"},
		{"check table without schema name", add(`check_table: .users`), "check_table", "empty schema or table name"},
		{"bad retire_after", add("retire_after: 1 hour"), "retire_after", "is not a duration"},
		{"negative retire_after", add("retire_after: -1h"), "retire_after", "must be positive"},
		{"long retire_after", add("retire_after: 200h"), "retire_after", "longer than the maximum"},
		{"zero sync_timeout", add("sync_timeout: 0s"), "sync_timeout", "must be positive"},
		{"long rollout_timeout", add("rollout_timeout: 3h"), "rollout_timeout", "longer than the maximum"},
		{"no admin dsn env", drop("admin_dsn_env:"), "admin_dsn_env", "is required"},
		{"bad admin dsn env", set("admin_dsn_env: postgres://x"), "admin_dsn_env", "credential name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.edit(validYAML)
			r, problems := build(t, src)
			if r != nil {
				t.Fatalf("accepted:\n%s", src)
			}
			for _, p := range problems {
				if p.Path == tt.path && strings.Contains(p.Message, tt.message) {
					return
				}
			}
			t.Errorf("problems %v; want %s: …%s…", problems, tt.path, tt.message)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
	}{
		{"all optional keys", add("schemas: [public, app]\ncheck_query: SELECT count(*) FROM users\ncheck_table: app.users\nverify_connections: true\nretire_after: 0s\nsync_timeout: 5m\nrollout_timeout: 20m")},
		{"postgres scheme and env everywhere", set("dsn_template: postgres://{user}:{password}@db-{env}.internal/aivo_{env}")},
		{"nasty names are quoted, not refused", set(`role_pattern: "a'b \"c\" d\\e é {date}_{request}_{env}"`)},
		{"braces in the check query are SQL", add("check_query: SELECT '{1,2}'::int[]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.edit(validYAML)
			if tt.name == "postgres scheme and env everywhere" {
				src = strings.Replace(src, "database: aivo_auth", "database: aivo_{env}", 1)
			}
			if _, problems := build(t, src); len(problems) > 0 {
				t.Errorf("problems %v:\n%s", problems, src)
			}
		})
	}
}

// add appends lines; set replaces the line with the same key; drop removes it.
func add(lines string) func(string) string {
	return func(s string) string { return s + lines + "\n" }
}

func set(line string) func(string) string {
	key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
	return func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if k, _, _ := strings.Cut(strings.TrimSpace(l), ":"); k == key && indent(l) == indent(line) {
				lines[i] = line
			}
		}
		return strings.Join(lines, "\n")
	}
}

func drop(prefix string) func(string) string {
	return func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

func TestKind(t *testing.T) {
	k := Kind()
	if k.Name != "database" || k.Build == nil {
		t.Fatalf("Kind() = %+v", k)
	}
}

// The plan: step order and names, timeouts that cover their waits, and
// notes that tell the approver about the delayed retirement.
func TestPlan(t *testing.T) {
	r, problems := build(t, set("deployments: [auth-svc, auth-worker]")(validYAML)+"retire_after: 2h\n")
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	p := r.Plan(rotators.Spec{RequestID: "R-1", Target: "auth-db", Env: "staging"})
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, forward()) {
		t.Errorf("steps %v, want %v", names, forward())
	}
	var rb []string
	for _, s := range p.Rollback {
		rb = append(rb, s.Name)
	}
	if want := []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepDropNewRole}; !slices.Equal(rb, want) {
		t.Errorf("rollback %v, want %v", rb, want)
	}
	byName := map[string]rotators.Step{}
	for _, s := range p.Steps {
		byName[s.Name] = s
	}
	if got := byName[StepRetireOld].Timeout; got < 2*time.Hour+retireGrace {
		t.Errorf("retire timeout %s does not cover retire_after + grace", got)
	}
	if got := byName[StepRestart].Timeout; got < 2*DefaultRolloutTimeout {
		t.Errorf("restart timeout %s does not cover two rollouts", got)
	}
	notes := strings.Join(p.Notes, "\n")
	for _, want := range []string{"stays running", "third role", "rolls nothing back", "aivo-staging", "auth-svc, auth-worker"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}
}
