package jwt

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
)

func TestBuildDefaults(t *testing.T) {
	rot, problems := Build("jwt", yamlDecode("namespace: aivo-{env}\n"), rotators.Deps{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	r := rot.(*Rotator)
	s := r.s
	want := settings{
		Config: Config{
			Namespace: "aivo-{env}", Secret: DefaultSecret, Deployment: DefaultDeployment, KeyBits: DefaultKeyBits, Backend: BackendKubernetes,
			Keys:               KeysConfig{Private: DefaultPrivateKey, Public: DefaultPublicKey, PublicOld: DefaultPublicKeyOld, KeyID: DefaultKeyID},
			InvalidateSessions: InvalidateConfig{Command: DefaultInvalidateCommand()},
		},
		rolloutTimeout: DefaultRolloutTimeout, tokenLifetime: DefaultTokenLifetime, gracePeriod: DefaultGracePeriod,
		syncTimeout: DefaultSyncTimeout, invalidateTimeout: DefaultInvalidateAfter,
	}
	if s.Namespace != want.Namespace || s.Secret != want.Secret || s.Deployment != want.Deployment || s.KeyBits != want.KeyBits ||
		s.Backend != want.Backend || s.Keys != want.Keys || !slices.Equal(s.InvalidateSessions.Command, want.InvalidateSessions.Command) ||
		s.rolloutTimeout != want.rolloutTimeout || s.tokenLifetime != want.tokenLifetime || s.gracePeriod != want.gracePeriod ||
		s.syncTimeout != want.syncTimeout || s.invalidateTimeout != want.invalidateTimeout || s.SecretManager != nil {
		t.Errorf("settings = %+v\nwant       %+v", s, want)
	}
	if r.clients.Cluster != nil || r.clients.Exec != nil || r.clients.Store != nil {
		t.Error("nil clients must stay nil interfaces")
	}
	if r.clients.Rand == nil || r.clients.NewKey == nil {
		t.Error("no default randomness or key generator")
	}
}

func TestBuildExplicit(t *testing.T) {
	src := `namespace: aivo-{env}
secret: auth-keys
keys: {private: PRIV, public: PUB, public_old: PUB_OLD, key_id: KID}
deployment: auth-api
rollout_timeout: 15m
token_lifetime: 0s
grace_period: 48h
key_bits: 3072
sync_timeout: 5m
invalidate_sessions:
  command: [node, scripts/invalidate.js, '--env={env}']
  container: api
  timeout: 10m
backend: secret_manager
secret_manager: {project: aivo-platform, secret: 'aivo-{env}-jwt', external_secret: auth-keys}
`
	rot, problems := Build("jwt", yamlDecode(src), rotators.Deps{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	s := rot.(*Rotator).s
	if s.Keys != (KeysConfig{"PRIV", "PUB", "PUB_OLD", "KID"}) || s.KeyBits != 3072 || s.tokenLifetime != 0 || s.gracePeriod != 48*time.Hour ||
		s.rolloutTimeout != 15*time.Minute || s.syncTimeout != 5*time.Minute || s.invalidateTimeout != 10*time.Minute ||
		s.InvalidateSessions.Container != "api" || !s.secretManager() || s.SecretManager.ExternalSecret != "auth-keys" {
		t.Errorf("settings = %+v", s)
	}
	x := rot.(*Rotator).expand(rotators.Spec{RequestID: "R1", Env: "staging"})
	if x.gsmSecret != "projects/aivo-platform/secrets/aivo-staging-jwt" || x.namespace != "aivo-staging" || x.command[2] != "--env=staging" {
		t.Errorf("expanded: %s %s %v", x.gsmSecret, x.namespace, x.command)
	}
}

func TestBuildProblems(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantPath string
		wantMsg  string
	}{
		{"unknown key", "namespace: a\nrotate_every: 90d\n", "", "rotate_every"},
		{"unknown nested key", "namespace: a\nkeys: {privat: X}\n", "", "privat"},
		{"no namespace", "secret: jwt-keys\n", "namespace", "is required"},
		{"bad namespace", "namespace: Aivo_Prod\n", "namespace", "Kubernetes namespace"},
		{"bad secret", "namespace: a\nsecret: 'JWT Keys'\n", "secret", "a Secret name"},
		{"other placeholder", "namespace: 'aivo-{ENV}'\n", "namespace", "placeholder"},
		{"bad deployment", "namespace: a\ndeployment: Auth_Svc\n", "deployment", "a Deployment name"},
		{"bad key name", "namespace: a\nkeys: {private: 'JWT PRIVATE'}\n", "keys.private", "a Secret data key"},
		{"same key names", "namespace: a\nkeys: {public_old: JWT_PUBLIC_KEY}\n", "keys.public_old", `"JWT_PUBLIC_KEY" is also keys.public`},
		{"key bits", "namespace: a\nkey_bits: 1024\n", "key_bits", "use 2048, 3072 or 4096"},
		{"bad duration", "namespace: a\ntoken_lifetime: 15 minutes\n", "token_lifetime", "not a duration"},
		{"zero grace", "namespace: a\ngrace_period: 0s\n", "grace_period", "must be positive"},
		{"too long", "namespace: a\ntoken_lifetime: 48h\n", "token_lifetime", "longer than the maximum 24h"},
		{"rollout too long", "namespace: a\nrollout_timeout: 10h\n", "rollout_timeout", "longer than the maximum"},
		{"empty command", "namespace: a\ninvalidate_sessions: {command: []}\n", "invalidate_sessions.command", "is empty"},
		{"empty program", "namespace: a\ninvalidate_sessions: {command: ['', x]}\n", "invalidate_sessions.command[0]", "the program to run"},
		{"command placeholder", "namespace: a\ninvalidate_sessions: {command: [npm, '{ENV}']}\n", "invalidate_sessions.command[1]", "placeholder"},
		{"bad container", "namespace: a\ninvalidate_sessions: {container: App}\n", "invalidate_sessions.container", "a container name"},
		{"invalidate timeout", "namespace: a\ninvalidate_sessions: {timeout: 2h}\n", "invalidate_sessions.timeout", "longer than the maximum 1h"},
		{"unknown backend", "namespace: a\nbackend: vault\n", "backend", `"vault" is not a backend`},
		{"secret_manager section missing", "namespace: a\nbackend: secret_manager\n", "secret_manager", "is required with backend: secret_manager"},
		{"secret_manager section unused", "namespace: a\nsecret_manager: {project: aivo-platform, secret: s, external_secret: e}\n", "secret_manager", "only used with backend: secret_manager"},
		{"bad project", "namespace: a\nbackend: secret_manager\nsecret_manager: {project: P, secret: s, external_secret: e}\n", "secret_manager.project", "GCP project id"},
		{"bad gsm secret", "namespace: a\nbackend: secret_manager\nsecret_manager: {project: aivo-platform, secret: 'a/b', external_secret: e}\n", "secret_manager.secret", "Secret Manager secret id"},
		{"no external secret", "namespace: a\nbackend: secret_manager\nsecret_manager: {project: aivo-platform, secret: s}\n", "secret_manager.external_secret", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot, problems := Build("jwt", yamlDecode(tt.src), rotators.Deps{})
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

// Every problem is reported at once.
func TestBuildReportsAllProblems(t *testing.T) {
	_, problems := Build("jwt", yamlDecode("namespace: A\nkey_bits: 1\ngrace_period: x\nbackend: y\n"), rotators.Deps{})
	var paths []string
	for _, p := range problems {
		paths = append(paths, p.Path)
	}
	if want := []string{"namespace", "grace_period", "key_bits", "backend"}; !slices.Equal(paths, want) {
		t.Errorf("problem paths %v, want %v", paths, want)
	}
}
