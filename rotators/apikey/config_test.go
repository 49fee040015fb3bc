package apikey

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
)

const openAIYAML = `
provider: openai
namespace: aivo-{env}
secret_manager:
  project: aivo-platform
  secret: aivo-{env}-openai-api-key
external_secret: external-services
deployments: [ai-orchestrator]
openai:
  project_id: proj_aivo{env}
  admin_key_env: OPENAI_ADMIN_KEY
`

// withOpenAI returns openAIYAML with top-level keys changed: each argument
// is "key: yaml value" (replacing or adding key) or "key: -" (deleting it).
func withOpenAI(changes ...string) string {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(openAIYAML), &doc); err != nil {
		panic(err)
	}
	for _, c := range changes {
		key, val, _ := strings.Cut(c, ": ")
		if val == "-" {
			delete(doc, key)
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(val), &v); err != nil {
			panic(err)
		}
		doc[key] = v
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return string(out)
}

func TestBuildValid(t *testing.T) {
	sendgrid := `
provider: sendgrid
namespace: aivo-{env}
secret_manager:
  project: aivo-platform
  secret: aivo-{env}-sendgrid-api-key
external_secret: external-services
deployments: [notify-svc, mailer]
log_error_pattern: "(?i)(error|unauthorized)"
sync_timeout: 90s
rollout_timeout: 15m
sendgrid:
  api_base: https://api.sendgrid.com
  scopes: [mail.send]
  admin_key_env: SENDGRID_ADMIN_KEY
`
	manual := `
provider: manual
namespace: aivo-{env}
secret_manager:
  project: aivo-platform
  secret: aivo-{env}-stripe-key
external_secret: external-services
deployments: [billing]
manual: {dashboard_url: "https://dashboard.stripe.com/apikeys"}
`
	tests := []struct {
		name, src      string
		wantSync       time.Duration
		wantRollout    time.Duration
		wantPattern    string
		wantOpenAIBase string
	}{
		{"openai defaults", openAIYAML, DefaultSyncTimeout, DefaultRolloutTimeout, DefaultLogErrorPattern, DefaultOpenAIBase},
		{"sendgrid explicit", sendgrid, 90 * time.Second, 15 * time.Minute, "(?i)(error|unauthorized)", ""},
		{"manual", manual, DefaultSyncTimeout, DefaultRolloutTimeout, DefaultLogErrorPattern, ""},
		{"manual without section", strings.Replace(manual, `manual: {dashboard_url: "https://dashboard.stripe.com/apikeys"}`, "", 1), DefaultSyncTimeout, DefaultRolloutTimeout, DefaultLogErrorPattern, ""},
		{"loopback http base", withOpenAI("openai: {api_base: 'http://127.0.0.1:8080', project_id: proj_x, admin_key_env: K}"), DefaultSyncTimeout, DefaultRolloutTimeout, DefaultLogErrorPattern, "http://127.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot, problems := Build("openai", yamlDecode(tt.src), rotators.Deps{})
			if len(problems) > 0 {
				t.Fatalf("problems: %v", problems)
			}
			r := rot.(*Rotator)
			if r.s.syncTimeout != tt.wantSync || r.s.rolloutTimeout != tt.wantRollout || r.s.LogErrorPattern != tt.wantPattern {
				t.Errorf("settings = %v %v %q", r.s.syncTimeout, r.s.rolloutTimeout, r.s.LogErrorPattern)
			}
			if tt.wantOpenAIBase != "" && r.s.OpenAI.APIBase != tt.wantOpenAIBase {
				t.Errorf("openai.api_base = %q, want %q", r.s.OpenAI.APIBase, tt.wantOpenAIBase)
			}
			if r.clients.Store != nil || r.clients.Cluster != nil {
				t.Error("nil deps must stay nil interfaces")
			}
		})
	}
}

func TestBuildProblems(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		target   string
		wantPath string
		wantMsg  string
	}{
		{"unknown key", withOpenAI("rotate_every: 90d"), "", "", "rotate_every"},
		{"no provider", withOpenAI("provider: -"), "", "provider", "required"},
		{"bad provider", withOpenAI("provider: stripe"), "", "provider", `"stripe" is not a provider`},
		{"no namespace", withOpenAI("namespace: -"), "", "namespace", "required"},
		{"bad namespace", withOpenAI("namespace: Aivo_Prod"), "", "namespace", "Kubernetes namespace"},
		{"no secret", withOpenAI("secret_manager: {project: aivo-platform}"), "", "secret_manager.secret", "required"},
		{"bad project", withOpenAI("secret_manager: {project: X, secret: s}"), "", "secret_manager.project", "GCP project"},
		{"no external secret", withOpenAI("external_secret: -"), "", "external_secret", "required"},
		{"no deployments", withOpenAI("deployments: []"), "", "deployments", "at least one"},
		{"duplicate deployment", withOpenAI("deployments: [a, b, a]"), "", "deployments[2]", "listed twice"},
		{"bad deployment", withOpenAI("deployments: [ok, 'Not OK']"), "", "deployments[1]", "Deployment name"},
		{"bad regexp", withOpenAI("log_error_pattern: '(?i)error('"), "", "log_error_pattern", "regexp"},
		{"bad duration", withOpenAI("sync_timeout: 2 minutes"), "", "sync_timeout", "not a duration"},
		{"bare number", withOpenAI("rollout_timeout: '600'"), "", "rollout_timeout", "not a duration"},
		{"negative duration", withOpenAI("sync_timeout: -1m"), "", "sync_timeout", "positive"},
		{"too long", withOpenAI("rollout_timeout: 10h"), "", "rollout_timeout", "maximum"},
		{"missing openai section", withOpenAI("openai: -"), "", "openai", "required when provider is openai"},
		{"missing sendgrid section", withOpenAI("provider: sendgrid", "openai: -"), "", "sendgrid", "required when provider is sendgrid"},
		{"misplaced section", withOpenAI("sendgrid: {scopes: [mail.send], admin_key_env: K}"), "", "sendgrid", "only used when provider is sendgrid"},
		{"no project id", withOpenAI("openai: {admin_key_env: K}"), "", "openai.project_id", "required"},
		{"no admin key env", withOpenAI("openai: {project_id: proj_x}"), "", "openai.admin_key_env", "required"},
		{"bad admin key env", withOpenAI("openai: {project_id: proj_x, admin_key_env: 'OPENAI KEY'}"), "", "openai.admin_key_env", "credential name"},
		{"plain http", withOpenAI("openai: {api_base: 'http://api.openai.com', project_id: p, admin_key_env: K}"), "", "openai.api_base", "https"},
		{"credentials in url", withOpenAI("openai: {api_base: 'https://u:p@api.openai.com', project_id: p, admin_key_env: K}"), "", "openai.api_base", "credentials"},
		{"relative url", withOpenAI("openai: {api_base: 'api.openai.com', project_id: p, admin_key_env: K}"), "", "openai.api_base", "absolute"},
		{"sendgrid without scopes", withOpenAI("provider: sendgrid", "openai: -", "sendgrid: {admin_key_env: K}"), "", "sendgrid.scopes", "full access"},
		{"bad scope", withOpenAI("provider: sendgrid", "openai: -", "sendgrid: {admin_key_env: K, scopes: ['mail send']}"), "", "sendgrid.scopes[0]", "scope"},
		{"manual bad url", withOpenAI("provider: manual", "openai: -", "manual: {dashboard_url: 'ftp://x'}"), "", "manual.dashboard_url", "https"},
		{"other placeholder", withOpenAI("namespace: aivo-{ENV}"), "", "namespace", "placeholder"},
		{"unknown placeholder", withOpenAI("secret_manager: {project: aivo-platform, secret: '{target}-key'}"), "", "secret_manager.secret", "placeholder"},
		{"stray brace", withOpenAI("openai: {project_id: 'proj_{env', admin_key_env: K}"), "", "openai.project_id", "placeholder"},
		{"separator in target", openAIYAML, "open:ai", "", "must not contain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "openai"
			}
			rot, problems := Build(target, yamlDecode(tt.src), rotators.Deps{})
			if rot != nil {
				t.Fatalf("Build accepted:\n%s", tt.src)
			}
			i := slices.IndexFunc(problems, func(p rotators.Problem) bool {
				return p.Path == tt.wantPath && strings.Contains(p.Message, tt.wantMsg)
			})
			if i < 0 {
				t.Fatalf("want a problem at %q containing %q, got %v", tt.wantPath, tt.wantMsg, problems)
			}
		})
	}
}

// A regexp's braces are repetition, not placeholders; {env} in it is literal.
func TestPatternBracesAndEnv(t *testing.T) {
	rot, problems := Build("openai", yamlDecode(withOpenAI(`log_error_pattern: 'x{2,3}|{env}\.failed'`)), rotators.Deps{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	x := rot.(*Rotator).expand(rotators.Spec{Env: "a.b", RequestID: "R1"})
	if want := `x{2,3}|a\.b\.failed`; x.pattern != want {
		t.Errorf("pattern = %q, want %q", x.pattern, want)
	}
}
