package main

// Tests of the command line (run, exitCode), `config check`, `plan`,
// serve's start-up checks, the operational endpoints of the assembled app
// (/healthz, /readyz, /metrics) and request IDs. The app is assembled with
// the e2e harness (e2e_test.go); nothing here talks to a real network.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/commands"
)

// examplePath is the documented example config, relative to the package.
const examplePath = "examples/aivo.yaml"

// serveWait bounds a serve that should fail at once, so a regression that
// starts serving fails the test instead of hanging it.
const serveWait = 10 * time.Second

// envRecorder is a getenv that serves fixed values and records every name
// asked for, so a test can prove a command never consulted the environment.
type envRecorder struct {
	mu     sync.Mutex
	values map[string]string
	asked  []string
}

func (e *envRecorder) getenv(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, name)
	return e.values[name]
}

func (e *envRecorder) names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.asked)
}

// runCLI runs the command line as main does, returning stdout and the error.
func runCLI(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), serveWait)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, &out, getenv)
	if ctx.Err() != nil {
		t.Fatalf("rotary %s did not return before its deadline", strings.Join(args, " "))
	}
	return out.String(), err
}

// absExample is the example config's absolute path, for tests that change
// the working directory.
func absExample(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// assertDirEmpty fails when dir holds anything (e.g. a state file a
// command should not have created).
func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s appeared in %s", e.Name(), dir)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no args", nil, "no command given"},
		{"empty args", []string{}, "no command given"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"config alone", []string{"config"}, `did you mean "rotary config check"`},
		{"config unknown subcommand", []string{"config", "lint"}, `did you mean "rotary config check"`},
		{"serve bad flag", []string{"serve", "--conifg", "x.yaml"}, "-conifg"},
		{"plan bad flag after target", []string{"plan", "openai", "--envv", "prod"}, "-envv"},
		{"plan bad flag before target", []string{"plan", "--verbose", "openai"}, "-verbose"},
		{"config check bad flag", []string{"config", "check", "--bogus"}, "-bogus"},
		{"flag missing its value", []string{"config", "check", "--config"}, "-config"},
		{"plan without target", []string{"plan"}, "plan needs exactly one target"},
		{"plan with flags only", []string{"plan", "--env", "prod", "--config", examplePath}, "plan needs exactly one target"},
		{"plan with two targets", []string{"plan", "openai", "stripe", "--config", examplePath}, "plan needs exactly one target"},
		{"config check with a file argument", []string{"config", "check", "new.yaml"}, "did you mean --config new.yaml"},
		{"serve with a stray argument", []string{"serve", "--config", examplePath, "extra"}, `unexpected argument "extra"`},
		{"serve -h", []string{"serve", "-h"}, "rotary serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &envRecorder{}
			out, err := runCLI(t, env.getenv, tc.args...)
			var u usageError
			if !errors.As(err, &u) {
				t.Fatalf("rotary %q: error %v (%T), want a usage error", tc.args, err, err)
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			// A usage error shows how to use rotary.
			if !strings.HasSuffix(err.Error(), usage) {
				t.Errorf("error does not end with the usage text: %q", err)
			}
			if out != "" {
				t.Errorf("usage error wrote to stdout: %q", out)
			}
			if n := env.names(); len(n) != 0 {
				t.Errorf("a usage error consulted the environment: %v", n)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			out, err := runCLI(t, (&envRecorder{}).getenv, arg)
			if err != nil {
				t.Fatalf("rotary %s: %v", arg, err)
			}
			if out != usage+"\n" {
				t.Fatalf("rotary %s printed %q, want the usage text", arg, out)
			}
			for _, cmd := range []string{"rotary serve", "rotary plan", "rotary config check"} {
				if !strings.Contains(out, cmd) {
					t.Errorf("usage lacks %q", cmd)
				}
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"usage error", usageError{"x"}, 2},
		{"wrapped usage error", fmt.Errorf("context: %w", usageError{"x"}), 2},
		{"other error", errors.New("config has 3 problem(s)"), 1},
		{"wrapped other error", fmt.Errorf("open state file: %w", os.ErrPermission), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestConfigCheckExample(t *testing.T) {
	env := &envRecorder{}
	out, err := runCLI(t, env.getenv, "config", "check", "--config", examplePath)
	if err != nil {
		t.Fatalf("config check of %s: %v\n%s", examplePath, err, out)
	}
	cfg, err := loadValid(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s: OK (%d targets)\n", examplePath, len(cfg.Targets)); out != want || len(cfg.Targets) < 3 {
		t.Fatalf("output %q, want %q", out, want)
	}
	// It checks the file, not the surroundings: no credential is needed.
	if n := env.names(); len(n) != 0 {
		t.Fatalf("config check read the environment: %v", n)
	}
}

// brokenConfig has one problem of each family; the line numbers below
// refer to it.
const brokenConfig = `listen: ":8080"
state_pth: x.db
slack:
  request_channel: "#rotations"
targets:
  alpha:
    kind: nosuch
    approvers:
      prod: {users: [UAPPROVER]}
  beta:
    kind: apikey
    provider: manual
    namespace: aivo-{env}
    secret_manager: {project: aivo-platform, secret: s}
    external_secret: es
    deployments: [d]
  gamma:
    kind: apikey
    approvers:
      prod: {users: [UAPPROVER]}
    provider: manual
    namespace: aivo-{env}
    secret_manager: {project: aivo-platform, secret: s}
    external_secret: es
    deployments: [d]
    rollout_timeot: 5m
  delta:
    kind: apikey
    approvers:
      prod: {users: [UAPPROVER]}
    provider: opneai
    namespace: aivo-{env}
    secret_manager: {project: aivo-platform, secret: s}
    external_secret: es
    deployments: [d]
`

func TestConfigCheckReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte(brokenConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, (&envRecorder{}).getenv, "config", "check", "--config", path)
	if err == nil {
		t.Fatalf("a broken config passed:\n%s", out)
	}
	if code := exitCode(err); code != 1 {
		t.Errorf("exit code %d, want 1 (a bad file is not a usage error)", code)
	}
	// Each problem: the key path, and the line where the file has it.
	want := []struct{ path, text string }{
		{"state_pth: line 2: ", `unknown key "state_pth"`},
		{"slack.request_channel: line 4: ", `"#rotations" is not a Slack channel ID`},
		{"targets.beta.approvers: line 10: ", "is required"},
		{"targets.alpha.kind: line 7: ", `unknown kind "nosuch"`},
		{"targets.gamma.rollout_timeot: line 26: ", `unknown key "rollout_timeot"`},
		{"targets.delta.provider: ", `"opneai" is not a provider`},
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d problems printed, want %d:\n%s", len(lines), len(want), out)
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, path+": "+w.path) && strings.Contains(l, w.text) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line %q…%q in:\n%s", path+": "+w.path, w.text, out)
		}
	}
	if wantErr := fmt.Sprintf("%d problem(s)", len(want)); !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not count %s", err, wantErr)
	}
}

func TestConfigCheckUnreadable(t *testing.T) {
	dir := t.TempDir()
	notYAML := filepath.Join(dir, "tabs.yaml")
	if err := os.WriteFile(notYAML, []byte("listen:\n\t- x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing file", filepath.Join(dir, "nope.yaml"), "read config"},
		{"not YAML", notYAML, "not valid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, (&envRecorder{}).getenv, "config", "check", "--config", tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if exitCode(err) != 1 || strings.Contains(out, "OK") {
				t.Fatalf("exit code %d, output %q", exitCode(err), out)
			}
		})
	}
}

// deployManifest reads a YAML file of deploy/ into v.
func deployManifest(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("deploy/%s: %v", name, err)
	}
}

// TestDeployConfigMapPassesCheck: the config shipped in deploy/ is valid,
// and agrees with the Deployment that runs it.
func TestDeployConfigMapPassesCheck(t *testing.T) {
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	deployManifest(t, "configmap.yaml", &cm)
	text, ok := cm.Data["config.yaml"]
	if cm.Kind != "ConfigMap" || !ok {
		t.Fatalf("deploy/configmap.yaml: kind %q, keys %v; want a ConfigMap with config.yaml", cm.Kind, cm.Data)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, (&envRecorder{}).getenv, "config", "check", "--config", path)
	if err != nil {
		t.Fatalf("deploy/configmap.yaml's config.yaml fails config check: %v\n%s", err, out)
	}
	if !strings.HasSuffix(out, ": OK (3 targets)\n") {
		t.Fatalf("output %q", out)
	}
	cfg, err := loadValid(path)
	if err != nil {
		t.Fatal(err)
	}

	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name  string `yaml:"name"`
						Ports []struct {
							ContainerPort int `yaml:"containerPort"`
						} `yaml:"ports"`
						Env []struct {
							Name string `yaml:"name"`
						} `yaml:"env"`
						VolumeMounts []struct {
							Name      string `yaml:"name"`
							MountPath string `yaml:"mountPath"`
							ReadOnly  bool   `yaml:"readOnly"`
						} `yaml:"volumeMounts"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	deployManifest(t, "deployment.yaml", &dep)
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "rotary" {
		t.Fatalf("deploy/deployment.yaml: want one container named rotary, got %+v", cs)
	}
	c := cs[0]
	// The state file is on the only writable mount (the root FS is read-only).
	var writable []string
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			writable = append(writable, m.MountPath)
		}
	}
	if len(writable) != 1 || filepath.Dir(cfg.StatePath) != writable[0] {
		t.Errorf("state_path %s is not on the Deployment's writable mount %v", cfg.StatePath, writable)
	}
	// The server listens on the container's port.
	if len(c.Ports) != 1 || cfg.Listen != ":"+strconv.Itoa(c.Ports[0].ContainerPort) {
		t.Errorf("listen %q does not match the container ports %+v", cfg.Listen, c.Ports)
	}
	// Every credential the process needs is in the Deployment's environment
	// (a missing one stops the pod at start, which is the point of listing it).
	var envNames []string
	for _, e := range c.Env {
		envNames = append(envNames, e.Name)
	}
	for _, need := range append([]string{envSigningSecret, envBotToken}, adminKeyEnvs(t, text)...) {
		if !slices.Contains(envNames, need) && !slices.Contains(envNames, need+credentialFileSuffix) {
			t.Errorf("the config needs credential %s but deploy/deployment.yaml sets neither %s nor %s%s", need, need, need, credentialFileSuffix)
		}
	}
}

// adminKeyEnvs lists the credential names a config's targets refer to
// (the admin_key_env of any provider section).
func adminKeyEnvs(t *testing.T, text string) []string {
	t.Helper()
	var doc struct {
		Targets map[string]map[string]any `yaml:"targets"`
	}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, target := range doc.Targets {
		for _, v := range target {
			if section, ok := v.(map[string]any); ok {
				if name, ok := section["admin_key_env"].(string); ok {
					names = append(names, name)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("the deploy config names no admin key: the test no longer checks anything")
	}
	return names
}

// Step titles of an apikey rotation, in the runbook's order, with {env}
// and {deployment} filled in per case. Matched as substrings so that
// wording can improve without hiding a change of order.
var (
	forwardSteps = []string{
		"Create a new",
		"Add a new Secret Manager version",
		"Force-sync ExternalSecret aivo-{env}/external-services",
		"Rolling restart {deployment}",
		"Check {deployment} logs",
		"Revoke the old key",
	}
	rollbackSteps = []string{
		"Restore the previous Secret Manager version",
		"Force-sync ExternalSecret aivo-{env}/external-services again",
		"Rolling restart {deployment} again",
		"Revoke the new key",
	}
)

// numbered returns the items of the numbered list that follows header in out.
func numbered(t *testing.T, out, header string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(out, header+"\n")
	if !ok {
		t.Fatalf("no %q in:\n%s", header, out)
	}
	var items []string
	for i, l := range strings.Split(rest, "\n") {
		prefix := fmt.Sprintf("  %d. ", i+1)
		if !strings.HasPrefix(l, prefix) {
			break
		}
		items = append(items, strings.TrimPrefix(l, prefix))
	}
	return items
}

func assertSteps(t *testing.T, what string, got, want []string, env, deployment string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d steps %q, want %d", what, len(got), got, len(want))
	}
	fill := strings.NewReplacer("{env}", env, "{deployment}", deployment)
	for i, w := range want {
		if w = fill.Replace(w); !strings.Contains(got[i], w) {
			t.Errorf("%s step %d is %q, want it to contain %q", what, i+1, got[i], w)
		}
	}
}

func TestPlan(t *testing.T) {
	cfgPath := absExample(t)
	for _, tc := range []struct {
		name       string
		args       []string
		env        string
		deployment string
		approvers  string
		notes      []string
	}{
		{"openai prod, flags after target", []string{"plan", "openai", "--env", "prod", "--config", cfgPath},
			"prod", "ai-orchestrator", "Approvers (prod): users U0EXAMPLE1, U0EXAMPLE2; groups S0EXAMPLE1", nil},
		{"openai prod, flags before target", []string{"plan", "--env", "prod", "--config", cfgPath, "openai"},
			"prod", "ai-orchestrator", "Approvers (prod): users U0EXAMPLE1, U0EXAMPLE2; groups S0EXAMPLE1", nil},
		{"openai, default env", []string{"plan", "openai", "--config", cfgPath},
			"prod", "ai-orchestrator", "Approvers (prod): users U0EXAMPLE1, U0EXAMPLE2; groups S0EXAMPLE1", nil},
		{"openai staging, flags on both sides", []string{"plan", "--config", cfgPath, "openai", "--env", "staging"},
			"staging", "ai-orchestrator", "Approvers (staging): users U0EXAMPLE1, U0EXAMPLE2, U0EXAMPLE3; groups none", nil},
		{"openai staging, flags before target", []string{"plan", "--config", cfgPath, "--env", "staging", "openai"},
			"staging", "ai-orchestrator", "Approvers (staging): users U0EXAMPLE1, U0EXAMPLE2, U0EXAMPLE3; groups none", nil},
		{"stripe staging, = flags", []string{"plan", "stripe", "--env=staging", "--config=" + cfgPath},
			"staging", "billing-svc", "Approvers (staging): users U0EXAMPLE1, U0EXAMPLE2, U0EXAMPLE3; groups none",
			[]string{"paste the new key", "revoked"}},
		{"sendgrid prod", []string{"plan", "sendgrid", "--config", cfgPath, "--env", "prod"},
			"prod", "notification-svc", "Approvers (prod): users U0EXAMPLE1, U0EXAMPLE2; groups S0EXAMPLE1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An empty working directory: plan must leave it so (no state file).
			dir := t.TempDir()
			t.Chdir(dir)
			env := &envRecorder{}
			out, err := runCLI(t, env.getenv, tc.args...)
			if err != nil {
				t.Fatalf("rotary %q: %v\n%s", tc.args, err, out)
			}
			target := tc.args[slices.IndexFunc(tc.args[1:], func(a string) bool {
				return a == "openai" || a == "stripe" || a == "sendgrid"
			})+1]
			header := fmt.Sprintf("Rotation of %s (%s, kind apikey):", target, tc.env)
			if !strings.HasPrefix(out, header+"\n") {
				t.Fatalf("output does not start with %q:\n%s", header, out)
			}
			assertSteps(t, "forward", numbered(t, out, header), forwardSteps, tc.env, tc.deployment)
			assertSteps(t, "rollback", numbered(t, out, "If a step fails, rollback:"), rollbackSteps, tc.env, tc.deployment)
			if !strings.HasSuffix(out, tc.approvers+"\n") {
				t.Errorf("output does not end with %q:\n%s", tc.approvers, out)
			}
			for _, n := range tc.notes {
				if !strings.Contains(out, "Note: ") || !strings.Contains(out, n) {
					t.Errorf("no note about %q:\n%s", n, out)
				}
			}
			// The other environment's namespace must not leak into this plan.
			other := map[string]string{"prod": "aivo-staging", "staging": "aivo-prod"}[tc.env]
			if strings.Contains(out, other) {
				t.Errorf("plan for %s mentions %s:\n%s", tc.env, other, out)
			}
			// Touches nothing: no credential asked for, no file created.
			if n := env.names(); len(n) != 0 {
				t.Errorf("plan read the environment (credentials?): %v", n)
			}
			assertDirEmpty(t, dir)
		})
	}
}

func TestPlanErrors(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte(brokenConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown target", []string{"plan", "nosuch", "--config", examplePath},
			[]string{`unknown target "nosuch"`, "openai, ", "sendgrid, ", "stripe"}},
		{"unknown env", []string{"plan", "openai", "--env", "qa", "--config", examplePath},
			[]string{`"openai"`, `no environment "qa"`, "prod, staging"}},
		{"broken config", []string{"plan", "openai", "--config", broken},
			[]string{"6 problem(s)", "state_pth", "targets.alpha.kind", "rotary config check --config " + broken}},
		{"missing config", []string{"plan", "openai", "--config", filepath.Join(t.TempDir(), "nope.yaml")},
			[]string{"read config", "nope.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, (&envRecorder{}).getenv, tc.args...)
			if err == nil {
				t.Fatalf("rotary %q succeeded:\n%s", tc.args, out)
			}
			if code := exitCode(err); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("a failed plan printed %q", out)
			}
		})
	}
}

// TestServeFailsFastWithoutSlackCredentials: serve checks the credentials
// before it opens anything, and says how to get them.
func TestServeFailsFastWithoutSlackCredentials(t *testing.T) {
	const signingValue = "signing-secret-VALUE-0001"
	example := absExample(t) // before any Chdir
	secretFile := filepath.Join(t.TempDir(), "signing-secret")
	if err := os.WriteFile(secretFile, []byte(signingValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		missing string
	}{
		{"empty environment", nil, envSigningSecret},
		{"only the signing secret", map[string]string{envSigningSecret: signingValue}, envBotToken},
		{"signing secret from a file", map[string]string{envSigningSecret + credentialFileSuffix: secretFile}, envBotToken},
	} {
		for _, cfgKind := range []string{"example config (relative state_path)", "temp config (state_path in a temp dir)"} {
			t.Run(tc.name+"/"+cfgKind, func(t *testing.T) {
				cwd := t.TempDir()
				t.Chdir(cwd)
				cfgPath, stateDir := example, cwd
				if strings.HasPrefix(cfgKind, "temp") {
					stateDir = t.TempDir()
					b, err := os.ReadFile(cfgPath)
					if err != nil {
						t.Fatal(err)
					}
					text := strings.Replace(string(b), "state_path: rotary.db", "state_path: "+strconv.Quote(filepath.Join(stateDir, "rotary.db")), 1)
					text = strings.Replace(text, `listen: ":8080"`, `listen: "127.0.0.1:0"`, 1)
					cfgPath = filepath.Join(t.TempDir(), "rotary.yaml")
					if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
					if cfg, err := loadValid(cfgPath); err != nil || filepath.Dir(cfg.StatePath) != stateDir {
						t.Fatalf("temp config: %v (state_path not rewritten?)", err)
					}
				}
				env := &envRecorder{values: tc.env}
				out, err := runCLI(t, env.getenv, "serve", "--config", cfgPath)
				if err == nil {
					t.Fatal("serve started without Slack credentials")
				}
				msg := err.Error()
				for _, w := range []string{tc.missing + " is not set", "manifest.yaml", "From an app manifest", tc.missing + credentialFileSuffix} {
					if !strings.Contains(msg, w) {
						t.Errorf("error does not mention %q:\n%s", w, msg)
					}
				}
				if tc.missing == envBotToken && strings.Contains(msg, envSigningSecret+" is not set") {
					t.Errorf("the signing secret was given, but the error says it is not:\n%s", msg)
				}
				if strings.Contains(msg, signingValue) {
					t.Errorf("the error shows the signing secret's value:\n%s", msg)
				}
				if code := exitCode(err); code != 1 {
					t.Errorf("exit code %d, want 1", code)
				}
				if out != "" {
					t.Errorf("serve printed %q", out)
				}
				// Nothing was opened: no state file, here or at state_path.
				assertDirEmpty(t, cwd)
				assertDirEmpty(t, stateDir)
				// Only credentials (and the log level) were consulted: no
				// client (Slack, Secret Manager, Kubernetes) was set up.
				for _, name := range env.names() {
					switch name {
					case envSigningSecret, envSigningSecret + credentialFileSuffix,
						envBotToken, envBotToken + credentialFileSuffix, envLogLevel:
					default:
						t.Errorf("serve read %s before failing on a missing credential", name)
					}
				}
			})
		}
	}
}

// scrape fetches /metrics from the running app.
func (h *e2e) scrape() string {
	h.t.Helper()
	code, body := h.get("/metrics")
	if code != http.StatusOK {
		h.t.Fatalf("GET /metrics: HTTP %d %s", code, body)
	}
	return body
}

func (h *e2e) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the series name{labels} in a text
// exposition. client_golang writes labels sorted by name, so the series is
// looked up in that canonical form.
func metricValue(t *testing.T, text, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	series := name
	if len(labels) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
		}
		series += "{" + strings.Join(parts, ",") + "}"
	}
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("series %s has value %q", series, v)
			}
			return f, true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, text, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := metricValue(t, text, name, labels)
	if !ok {
		t.Fatalf("no series %s%v in /metrics:\n%s", name, labels, text)
	}
	return v
}

var stepCountSeries = regexp.MustCompile(`^rotary_step_duration_seconds_count\{result="([^"]*)",step="([^"]*)",target="([^"]*)"\} (\S+)$`)

func TestOperationalEndpoints(t *testing.T) {
	h := newE2E(t)
	h.start()

	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{http.MethodGet, "/healthz", http.StatusOK, "ok\n"},
		{http.MethodGet, "/readyz", http.StatusOK, "ready\n"},
		{http.MethodGet, "/no-such-route-4711", http.StatusNotFound, ""},
		{http.MethodGet, "/slack/commands", http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/slack/interactions", http.StatusMethodNotAllowed, ""},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, ""},
	} {
		req, err := http.NewRequest(tc.method, h.url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("%s %s: HTTP %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
		if tc.code == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without an Allow header", tc.method, tc.path)
		}
	}

	// Before any request: the open-request gauges exist and are zero.
	m := h.scrape()
	for _, state := range []approvals.State{approvals.StatePending, approvals.StateApproved, approvals.StateRunning} {
		if v := mustMetric(t, m, "rotary_requests", map[string]string{"state": string(state)}); v != 0 {
			t.Errorf("rotary_requests{state=%q} = %v before any request", state, v)
		}
	}

	id, rootTS := h.open("openai")
	m = h.scrape()
	if v := mustMetric(t, m, "rotary_requests", map[string]string{"state": "pending"}); v != 1 {
		t.Errorf("rotary_requests{state=pending} = %v after opening one request, want 1", v)
	}
	if v := mustMetric(t, m, "rotary_outbox_depth", nil); v < 0 {
		t.Errorf("rotary_outbox_depth = %v", v)
	}
	for _, tc := range []struct{ route, code string }{
		{"GET /healthz", "200"},
		{"GET /readyz", "200"},
		{"GET /metrics", "200"},
		{"POST /slack/commands", "200"},
		{"unmatched", "404"},
		{"unmatched", "405"},
	} {
		if v := mustMetric(t, m, "rotary_http_requests_total", map[string]string{"route": tc.route, "code": tc.code}); v < 1 {
			t.Errorf("rotary_http_requests_total{route=%q,code=%q} = %v", tc.route, tc.code, v)
		}
	}
	// Route labels are patterns: a path a client made up is not a label.
	if strings.Contains(m, "no-such-route-4711") {
		t.Error("an unknown path became a metric label")
	}

	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, rootTS, approvals.StateSucceeded)
	m = h.scrape()
	if v := mustMetric(t, m, "rotary_requests", map[string]string{"state": "pending"}); v != 0 {
		t.Errorf("rotary_requests{state=pending} = %v after the rotation finished", v)
	}
	var steps []string
	for _, l := range strings.Split(m, "\n") {
		s := stepCountSeries.FindStringSubmatch(l)
		if s == nil {
			continue
		}
		if s[1] != "ok" || s[3] != "openai" {
			t.Errorf("unexpected step series %s", l)
		}
		if n, err := strconv.ParseFloat(s[4], 64); err != nil || n < 1 {
			t.Errorf("step series %s has count %q", l, s[4])
		}
		steps = append(steps, s[2])
	}
	if len(steps) != len(forwardSteps) {
		t.Errorf("rotary_step_duration_seconds has steps %q, want the %d forward steps", steps, len(forwardSteps))
	}
	if strings.Contains(m, "rotary_step_failures_total{") {
		t.Error("a step failure was counted in a rotation that succeeded")
	}

	// No secret value anywhere in the metrics.
	secrets := append([]string{signingSecret, slackfake.DefaultToken, adminKey, oldKeyValue}, h.openai.IssuedKeys()...)
	for _, p := range h.gsm.Payloads() {
		secrets = append(secrets, string(p))
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(m, s) {
			t.Errorf("secret value %.8s… appears in /metrics", s)
		}
	}

	// Not ready once shutting down (the handler outlives the listener).
	h.stop()
	rec := httptest.NewRecorder()
	h.app.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz after shutdown: HTTP %d, want 503", rec.Code)
	}
}

// TestOutboxDepthMetric: a notice Slack refused stays in the outbox and is
// counted until delivered.
func TestOutboxDepthMetric(t *testing.T) {
	h := newE2E(t)
	// Slack rate-limits the root message for an hour: it stays queued.
	h.slack.FailNext("chat.postMessage", 1, slackfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3600})
	h.start()
	if text := h.command(requester, "/rotate", `openai --reason "quarterly rotation"`); !strings.Contains(text, "Opened") {
		t.Fatalf("open: %s", text)
	}
	h.waitCalls("the refused root message", func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.Injected {
				return true
			}
		}
		return false
	})
	if v := mustMetric(t, h.scrape(), "rotary_outbox_depth", nil); v < 1 {
		t.Fatalf("rotary_outbox_depth = %v while the root message is undelivered", v)
	}
}

var requestIDPattern = regexp.MustCompile(`^R-[2-9A-HJ-NP-Z]{8}$`)

func TestNewRequestID(t *testing.T) {
	// The alphabet: 32 distinct characters, none of 0 O 1 I, and a divisor
	// of 256 so that byte%len is unbiased.
	if n := len(requestIDAlphabet); 256%n != 0 {
		t.Fatalf("alphabet of %d characters: byte %% %d is biased", n, n)
	}
	if strings.ContainsAny(requestIDAlphabet, "0O1I") {
		t.Fatalf("alphabet %q has look-alike characters", requestIDAlphabet)
	}
	for i := range len(requestIDAlphabet) {
		if strings.IndexByte(requestIDAlphabet, requestIDAlphabet[i]) != i {
			t.Fatalf("alphabet %q repeats %c", requestIDAlphabet, requestIDAlphabet[i])
		}
	}

	// 2000 IDs of 40 bits collide with probability about 2e-6.
	const n = 2000
	seen := make(map[string]bool, n)
	used := map[rune]bool{}
	for range n {
		id := newRequestID()
		if !requestIDPattern.MatchString(id) {
			t.Fatalf("request ID %q does not match %s", id, requestIDPattern)
		}
		if norm, ok := commands.NormalizeRequestID(id); !ok || norm != id {
			t.Fatalf("commands.NormalizeRequestID(%q) = %q, %v", id, norm, ok)
		}
		// People type IDs back in lowercase; that must find the same request.
		if norm, ok := commands.NormalizeRequestID(strings.ToLower(id)); !ok || norm != id {
			t.Fatalf("commands.NormalizeRequestID(%q) = %q, %v", strings.ToLower(id), norm, ok)
		}
		if seen[id] {
			t.Fatalf("request ID %q generated twice", id)
		}
		seen[id] = true
		for _, r := range id[2:] {
			used[r] = true
		}
	}
	// 16000 random characters miss one of 32 with probability ~1e-220: a
	// gap means the generator draws from part of the alphabet only.
	if len(used) != len(requestIDAlphabet) {
		t.Fatalf("only %d of %d alphabet characters were used", len(used), len(requestIDAlphabet))
	}
}

// TestServeNamesTheRealCredentialProblem: a credential file that cannot be
// read is reported as such, not as "not set".
func TestServeNamesTheRealCredentialProblem(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-file")
	env := &envRecorder{values: map[string]string{envSigningSecret + credentialFileSuffix: missing}}
	_, err := runCLI(t, env.getenv, "serve", "--config", absExample(t))
	if err == nil || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), envSigningSecret+" is not set") {
		t.Fatalf("error should name the unreadable file %s: %v", missing, err)
	}
}
