package redis

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const aclYAML = `
address: redis.aivo-{env}.svc:6379
namespace: aivo-{env}
secret: redis-credentials
secret_key: REDIS_PASSWORD
deployments: [ai-orchestrator, auth-svc]
acl_user: aivo-app
admin_password_env: REDIS_ADMIN_PASSWORD
`

const requirepassYAML = `
mode: requirepass
address: redis.aivo-{env}.svc:6379
namespace: aivo-{env}
secret: redis-credentials
secret_key: REDIS_PASSWORD
deployments: [ai-orchestrator, auth-svc]
`

// with returns src with top-level keys changed: each argument is
// "key: yaml value" (replacing or adding key) or "key: -" (deleting it).
func with(src string, changes ...string) string {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
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
	tests := []struct {
		name        string
		src         string
		wantMode    string
		wantAdmin   string
		wantRollout time.Duration
		wantRotated bool
	}{
		{"acl defaults", aclYAML, ModeACL, "default", DefaultRolloutTimeout, false},
		{"acl explicit", with(aclYAML, "mode: acl", "tls: true", "persist: acl_save", "admin_user: rotary", "rollout_timeout: 90s"), ModeACL, "rotary", 90 * time.Second, false},
		{"acl user default with own admin", with(aclYAML, "acl_user: default", "admin_user: rotary", "persist: config_rewrite"), ModeACL, "rotary", DefaultRolloutTimeout, false},
		{"requirepass, admin is default", requirepassYAML, ModeRequirepass, "default", DefaultRolloutTimeout, true},
		{"requirepass, own admin", with(requirepassYAML, "admin_user: rotary", "admin_password_env: REDIS_ADMIN_{env}"), ModeRequirepass, "rotary", DefaultRolloutTimeout, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot, problems := Build("redis", yamlDecode(tt.src), rotators.Deps{})
			if len(problems) > 0 {
				t.Fatalf("problems: %v", problems)
			}
			r := rot.(*Rotator)
			if r.s.Mode != tt.wantMode || r.s.AdminUser != tt.wantAdmin || r.s.rolloutTimeout != tt.wantRollout || r.s.adminRotated() != tt.wantRotated {
				t.Errorf("settings = %q %q %s rotated=%v", r.s.Mode, r.s.AdminUser, r.s.rolloutTimeout, r.s.adminRotated())
			}
			if r.clients.Cluster != nil || r.clients.Creds != nil || r.clients.Rand != nil {
				t.Error("nil deps must stay nil interfaces")
			}
		})
	}
}

func TestBuildProblems(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantPath string
		wantMsg  string
	}{
		{"unknown key", aclYAML + "passwrd: x\n", "", "field passwrd not found"},
		{"bad mode", with(aclYAML, "mode: sentinel"), "mode", `"sentinel" is not a mode`},
		{"no address", with(aclYAML, "address: -"), "address", "is required"},
		{"address without port", with(aclYAML, "address: redis.local"), "address", "is not host:port"},
		{"address bad port", with(aclYAML, "address: 'redis.local:99999'"), "address", "no valid port"},
		{"address bad placeholder", with(aclYAML, "address: 'redis.{ENV}.svc:6379'"), "address", "placeholder other than {env}"},
		{"no namespace", with(aclYAML, "namespace: -"), "namespace", "is required"},
		{"bad namespace", with(aclYAML, "namespace: Aivo_Prod"), "namespace", "is not a Kubernetes namespace name"},
		{"no secret", with(aclYAML, "secret: -"), "secret", "is required"},
		{"bad secret key", with(aclYAML, "secret_key: 'REDIS PASSWORD'"), "secret_key", "is not a Secret key"},
		{"no deployments", with(aclYAML, "deployments: -"), "deployments", "at least one deployment"},
		{"bad deployment", with(aclYAML, "deployments: [ok, Not_OK]"), "deployments[1]", "is not a Deployment name"},
		{"duplicate deployment", with(aclYAML, "deployments: [a, b, a]"), "deployments[2]", "listed twice"},
		{"acl without user", with(aclYAML, "acl_user: -"), "acl_user", "is required"},
		{"acl user like a rule", with(aclYAML, "acl_user: '>app'"), "acl_user", "is not a Redis user name"},
		{"acl user is admin", with(aclYAML, "acl_user: default"), "acl_user", "is also admin_user"},
		{"bad persist", with(aclYAML, "persist: bgsave"), "persist", `"bgsave" is not a way to persist`},
		{"acl without admin credential", with(aclYAML, "admin_password_env: -"), "admin_password_env", "is required"},
		{"bad admin credential", with(aclYAML, "admin_password_env: 'REDIS-PW'"), "admin_password_env", "is not a credential name"},
		{"bad admin user", with(aclYAML, "admin_user: 'ro tary'"), "admin_user", "is not a Redis user name"},
		{"requirepass with acl user", with(requirepassYAML, "acl_user: app"), "acl_user", "only used in acl mode"},
		{"requirepass with persist", with(requirepassYAML, "persist: acl_save"), "persist", "always persists with CONFIG REWRITE"},
		{"requirepass default admin with credential", with(requirepassYAML, "admin_password_env: REDIS_ADMIN"), "admin_password_env", "would be stale after the first rotation"},
		{"requirepass own admin without credential", with(requirepassYAML, "admin_user: rotary"), "admin_password_env", "is required"},
		{"bad rollout timeout", with(aclYAML, "rollout_timeout: soon"), "rollout_timeout", "is not a duration"},
		{"rollout timeout too long", with(aclYAML, "rollout_timeout: 3h"), "rollout_timeout", "longer than the maximum"},
		{"negative rollout timeout", with(aclYAML, "rollout_timeout: -1m"), "rollout_timeout", "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := Build("redis", yamlDecode(tt.src), rotators.Deps{})
			found := false
			for _, p := range problems {
				if p.Path == tt.wantPath && strings.Contains(p.Message, tt.wantMsg) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems = %v, want %s: …%s…", problems, tt.wantPath, tt.wantMsg)
			}
		})
	}
}

func TestPlanStepsTitlesAndNotes(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		steps     []string
		rollback  []string
		firstNote string
	}{
		{
			"acl", aclYAML,
			[]string{
				"preflight | Check Redis user aivo-app at redis.aivo-prod.svc:6379, Secret aivo-prod/redis-credentials and how Redis persists users",
				"backup_secret | Back up Secret aivo-prod/redis-credentials",
				"add_password | Add a new password to Redis user aivo-app (the old one keeps working)",
				"update_secret | Write the new password to Secret aivo-prod/redis-credentials (key REDIS_PASSWORD)",
				"restart | Rolling restart ai-orchestrator, auth-svc",
				"verify | Check that user aivo-app logs in with the new password",
				"remove_old_password | Remove the old password from user aivo-app",
				"persist | Persist Redis's users (ACL SAVE or CONFIG REWRITE)",
			},
			[]string{StepRestoreOldPassword, StepRestoreSecret, StepRollbackRestart, StepRemoveNewPassword, StepRollbackPersist},
			"No downtime",
		},
		{
			"requirepass", requirepassYAML,
			[]string{
				"preflight | Check Redis at redis.aivo-prod.svc:6379, Secret aivo-prod/redis-credentials and the config file",
				"backup_secret | Back up Secret aivo-prod/redis-credentials",
				"update_secret | Write a new password to Secret aivo-prod/redis-credentials (key REDIS_PASSWORD)",
				"set_requirepass | Set the new password in Redis (CONFIG SET requirepass)",
				"restart | Rolling restart ai-orchestrator, auth-svc",
				"persist | Persist Redis's config (CONFIG REWRITE)",
			},
			[]string{StepRestoreRequirepass, StepRestoreSecret, StepRollbackRestart, StepRollbackPersist},
			"Clients fail to authenticate between the password change and their restart",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot, problems := Build("redis", yamlDecode(tt.src), rotators.Deps{})
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			plan := rot.Plan(rotators.Spec{RequestID: "R1", Target: "redis", Env: "prod"})
			var got, rb []string
			for _, s := range plan.Steps {
				got = append(got, s.Name+" | "+s.Title)
			}
			for _, s := range plan.Rollback {
				rb = append(rb, s.Name)
			}
			if !slices.Equal(got, tt.steps) {
				t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.steps, "\n"))
			}
			if !slices.Equal(rb, tt.rollback) {
				t.Errorf("rollback = %v, want %v", rb, tt.rollback)
			}
			if len(plan.Notes) == 0 || !strings.HasPrefix(plan.Notes[0], tt.firstNote) {
				t.Errorf("notes = %q", plan.Notes)
			}
			if !strings.Contains(strings.Join(plan.Notes, " "), "ai-orchestrator, auth-svc in namespace aivo-prod") {
				t.Errorf("notes do not name the deployments: %q", plan.Notes)
			}
			for _, s := range append(plan.Steps, plan.Rollback...) {
				if (s.Name == StepRestart || s.Name == StepRollbackRestart) && s.Timeout <= 2*DefaultRolloutTimeout {
					t.Errorf("%s timeout %s does not cover two rollouts", s.Name, s.Timeout)
				}
			}
		})
	}
}

// newPassword reads 32 bytes and hex-encodes them; a short source is an error.
func TestNewPassword(t *testing.T) {
	r := &recordingReader{}
	pw, err := newPassword(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(pw.Reveal()); len(got) != 2*passwordBytes || got != r.passwords()[0] {
		t.Errorf("password %d chars, want the hex of the %d bytes read", len(got), passwordBytes)
	}
	if _, err := newPassword(strings.NewReader("short")); err == nil {
		t.Error("a short random source must fail")
	}
}

func TestACLUserFromBothProtocols(t *testing.T) {
	resp2 := []any{"flags", []any{"on"}, "passwords", []any{"aa", "bb"}, "commands", "+@all"}
	resp3 := map[any]any{"flags": []any{"on", "nopass"}, "passwords": []any{}}
	u, err := aclUserFrom(resp2)
	if err != nil || !u.hasFlag("on") || !slices.Equal(u.passwords, []string{"aa", "bb"}) || !slices.Equal(u.passwordsBut("aa"), []string{"bb"}) {
		t.Errorf("resp2: %+v %v", u, err)
	}
	u, err = aclUserFrom(resp3)
	if err != nil || !u.hasFlag("nopass") || len(u.passwords) != 0 {
		t.Errorf("resp3: %+v %v", u, err)
	}
	for _, bad := range []any{"x", []any{1, "a"}, []any{"flags", "on"}, map[any]any{"passwords": []any{1}}} {
		if _, err := aclUserFrom(bad); err == nil {
			t.Errorf("aclUserFrom(%v) accepted a malformed reply", bad)
		}
	}
}

// tls: true dials with TLS 1.2+ and the address's host as server name.
func TestDialTLS(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		src := aclYAML
		if tlsOn {
			src = with(aclYAML, "tls: true")
		}
		rot, problems := Build("redis", yamlDecode(src), rotators.Deps{})
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		x := rot.(*Rotator).expand(rotators.Spec{RequestID: "R1", Env: "prod"})
		c := x.dial("aivo-app", secret.FromString("pw"))
		opts := c.Options()
		_ = c.Close()
		if opts.Addr != "redis.aivo-prod.svc:6379" || opts.Username != "aivo-app" || opts.MaxRetries > 0 || opts.PoolSize != 1 {
			t.Errorf("options = %s %s retries=%d pool=%d", opts.Addr, opts.Username, opts.MaxRetries, opts.PoolSize)
		}
		switch {
		case !tlsOn && opts.TLSConfig != nil:
			t.Error("TLS without tls: true")
		case tlsOn && (opts.TLSConfig == nil || opts.TLSConfig.ServerName != "redis.aivo-prod.svc" || opts.TLSConfig.MinVersion != tls.VersionTLS12):
			t.Errorf("TLS config = %+v", opts.TLSConfig)
		}
	}
}
