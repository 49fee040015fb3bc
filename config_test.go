package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
)

// minimalConfig is the smallest valid file.
const minimalConfig = `
slack:
  request_channel: C0REQUESTS
targets:
  openai:
    kind: apikey
    approvers:
      prod: {users: [U01ALICE]}
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rotary.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadText(t *testing.T, text string) (*Config, []rotators.Problem) {
	t.Helper()
	cfg, problems, err := LoadConfig(writeConfig(t, text))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg == nil {
		t.Fatal("LoadConfig returned a nil Config without an error")
	}
	return cfg, problems
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, problems := loadText(t, minimalConfig)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if cfg.Listen != ":8080" || cfg.StatePath != "rotary.db" || cfg.RequestTTL != time.Hour ||
		cfg.SweepInterval != 30*time.Second || cfg.DefaultEnv != "prod" || cfg.RequireReason ||
		cfg.RequestChannel != "C0REQUESTS" || cfg.AnnounceChannel != "" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestLoadConfigNullKeepsDefaults(t *testing.T) {
	cfg, problems := loadText(t, minimalConfig+"listen: ~\nrequest_ttl:\nsweep_interval: null\nrequire_reason:\ndefault_env:\n")
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if cfg.Listen != defaultListen || cfg.RequestTTL != defaultRequestTTL || cfg.SweepInterval != defaultSweepInterval ||
		cfg.RequireReason || cfg.DefaultEnv != defaultEnvName {
		t.Fatalf("null values did not keep the defaults: %+v", cfg)
	}
}

func TestLoadConfigAllKeys(t *testing.T) {
	cfg, problems := loadText(t, `
listen: "127.0.0.1:9090"
state_path: /var/lib/rotary/rotary.db
slack:
  request_channel: C0REQUESTS
  announce_channel: G0PRIVATE
request_ttl: 2h
default_env: staging
require_reason: true
sweep_interval: 10s
targets:
  zeta:
    kind: apikey
    description: first in the file
    approvers:
      staging: {users: [U01ALICE, W02BOB], groups: [S0PLATFORM]}
      prod:
        groups: [S0PLATFORM]
    provider: manual
    deployments: [a, b]
  alpha:
    kind: other
    approvers:
      staging: {users: [U01ALICE]}
`)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	if cfg.Listen != "127.0.0.1:9090" || cfg.StatePath != "/var/lib/rotary/rotary.db" || cfg.RequestTTL != 2*time.Hour ||
		cfg.SweepInterval != 10*time.Second || cfg.DefaultEnv != "staging" || !cfg.RequireReason ||
		cfg.RequestChannel != "C0REQUESTS" || cfg.AnnounceChannel != "G0PRIVATE" {
		t.Fatalf("settings not read: %+v", cfg)
	}
	var names []string
	for _, tc := range cfg.Targets {
		names = append(names, tc.Name)
	}
	if !slices.Equal(names, []string{"zeta", "alpha"}) {
		t.Fatalf("targets %v, want file order [zeta alpha]", names)
	}
	z := cfg.Targets[0]
	if z.Kind != "apikey" || z.Description != "first in the file" {
		t.Fatalf("zeta = %+v", z)
	}
	want := map[string]approvals.Approvers{
		"staging": {Users: []string{"U01ALICE", "W02BOB"}, Groups: []string{"S0PLATFORM"}},
		"prod":    {Groups: []string{"S0PLATFORM"}},
	}
	if len(z.Approvers) != len(want) {
		t.Fatalf("approvers %+v, want %+v", z.Approvers, want)
	}
	for env, a := range want {
		got := z.Approvers[env]
		if !slices.Equal(got.Users, a.Users) || !slices.Equal(got.Groups, a.Groups) {
			t.Fatalf("approvers[%s] = %+v, want %+v", env, got, a)
		}
	}
	// The params hold only the kind's keys, in order.
	var keys []string
	for i := 0; i < len(z.params.Content); i += 2 {
		keys = append(keys, z.params.Content[i].Value)
	}
	if !slices.Equal(keys, []string{"provider", "deployments"}) {
		t.Fatalf("params keys %v", keys)
	}

	pol := cfg.Policy()
	if pol.TTL != 2*time.Hour || pol.DefaultEnv != "staging" || !pol.RequireReason || len(pol.Targets) != 2 {
		t.Fatalf("policy %+v", pol)
	}
	pz := pol.Targets["zeta"]
	if pz.Name != "zeta" || pz.Kind != "apikey" || !slices.Equal(pz.Envs(), []string{"prod", "staging"}) ||
		!pz.Approvers["staging"].Allows("W02BOB", nil) || !pz.Approvers["prod"].Allows("U09X", []string{"S0PLATFORM"}) {
		t.Fatalf("policy target %+v", pz)
	}
	// The policy does not share slices with the config.
	pz.Approvers["staging"].Users[0] = "U0CHANGED"
	if z.Approvers["staging"].Users[0] != "U01ALICE" {
		t.Fatal("Policy shares approver slices with the Config")
	}
}

func TestLoadConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want maps each expected problem path to a substring of its message.
		want map[string]string
	}{
		{
			name: "empty file",
			yaml: "",
			want: map[string]string{
				"slack.request_channel": "is required",
				"targets":               "is required",
			},
		},
		{
			name: "not a mapping",
			yaml: "- a\n- b\n",
			want: map[string]string{"(file)": "line 1: the file must be a mapping"},
		},
		{
			name: "two documents",
			yaml: minimalConfig + "---\nlisten: :1\n",
			want: map[string]string{"(file)": "a second YAML document"},
		},
		{
			name: "unknown top-level keys",
			yaml: minimalConfig + "listn: :9090\ntarget: {}\n",
			want: map[string]string{
				"listn":  `line 9: unknown key "listn"; the known keys are listen, state_path`,
				"target": `unknown key "target"`,
			},
		},
		{
			name: "duplicate top-level key",
			yaml: minimalConfig + "listen: :1\nlisten: :2\n",
			want: map[string]string{"listen": `line 10: "listen" is given twice (first at line 9)`},
		},
		{
			name: "bad scalars and ranges",
			yaml: minimalConfig + `
listen: "8080"
state_path: ""
request_ttl: 30s
sweep_interval: soon
require_reason: maybe
default_env: Prod
`,
			want: map[string]string{
				"listen":         `"8080" is not an address`,
				"state_path":     "is empty",
				"request_ttl":    "30s is out of range: use a duration between 1m0s and 24h0m0s",
				"sweep_interval": `"soon" is not a duration`,
				"require_reason": "must be true or false",
				"default_env":    `invalid environment "Prod"`,
			},
		},
		{
			name: "ttl too long and listen port out of range",
			yaml: minimalConfig + "request_ttl: 25h\nlisten: :70000\n",
			want: map[string]string{
				"request_ttl": "out of range",
				"listen":      "is not an address",
			},
		},
		{
			name: "duration without unit",
			yaml: minimalConfig + "request_ttl: 3600\n",
			want: map[string]string{"request_ttl": `"3600" is not a duration`},
		},
		{
			name: "slack problems",
			yaml: `
slack:
  request_channel: rotations
  announce_channel: "#platform"
  annouce_channel: C0X
targets:
  openai: {kind: apikey, approvers: {prod: {users: [U01ALICE]}}}
`,
			want: map[string]string{
				"slack.request_channel":  `line 3: "rotations" is not a Slack channel ID`,
				"slack.announce_channel": `"#platform" is not a Slack channel ID`,
				"slack.annouce_channel":  `unknown key "annouce_channel"`,
			},
		},
		{
			name: "slack without request channel",
			yaml: `
slack: {announce_channel: C0X}
targets:
  openai: {kind: apikey, approvers: {prod: {users: [U01ALICE]}}}
`,
			want: map[string]string{"slack.request_channel": "is required"},
		},
		{
			name: "slack not a mapping",
			yaml: `
slack: C0REQUESTS
targets:
  openai: {kind: apikey, approvers: {prod: {users: [U01ALICE]}}}
`,
			want: map[string]string{"slack": "must be a mapping"},
		},
		{
			name: "no targets",
			yaml: "slack: {request_channel: C0X}\ntargets: {}\n",
			want: map[string]string{"targets": "has no targets"},
		},
		{
			name: "targets not a mapping",
			yaml: "slack: {request_channel: C0X}\ntargets: [openai]\n",
			want: map[string]string{"targets": "must be a mapping"},
		},
		{
			name: "duplicate target",
			yaml: `
slack: {request_channel: C0X}
targets:
  openai:
    kind: apikey
    approvers: {prod: {users: [U01ALICE]}}
  openai:
    kind: apikey
    approvers: {prod: {users: [U02BOB]}}
`,
			want: map[string]string{"targets.openai": `line 7: "openai" is given twice (first at line 4); keep one`},
		},
		{
			name: "target names",
			yaml: `
slack: {request_channel: C0X}
targets:
  OpenAI: {kind: apikey, approvers: {prod: {users: [U01ALICE]}}}
  list: {kind: apikey, approvers: {prod: {users: [U01ALICE]}}}
  rollback: {kind: apikey, approvers: {prod: {users: [U01ALICE]}}}
  openai: not-a-mapping
`,
			want: map[string]string{
				"targets.OpenAI":   `line 4: invalid target "OpenAI"`,
				"targets.list":     "reserved word",
				"targets.rollback": "reserved word",
				"targets.openai":   "line 7: must be a mapping with kind, approvers",
			},
		},
		{
			name: "target missing kind and approvers",
			yaml: `
slack: {request_channel: C0X}
targets:
  openai:
    description: no kind
  sendgrid:
    kind: ""
    approvers: {}
`,
			want: map[string]string{
				"targets.openai.kind":        "line 4: is required",
				"targets.openai.approvers":   "line 4: is required",
				"targets.sendgrid.kind":      "line 7: is empty",
				"targets.sendgrid.approvers": "line 8: must map each environment",
			},
		},
		{
			name: "approver problems",
			yaml: `
slack: {request_channel: C0X}
targets:
  openai:
    kind: apikey
    approvers:
      prod:
        users: [U01ALICE, alice, U01ALICE, C0CHANNEL]
        groups: [S0PLATFORM, "@platform"]
      staging: {users: []}
      Dev: {users: [U01ALICE]}
      qa: {users: U01ALICE}
      perf: {user: [U01ALICE]}
      load: [U01ALICE]
`,
			want: map[string]string{
				"targets.openai.approvers.prod.users[1]":  `line 8: "alice" is not a Slack user ID`,
				"targets.openai.approvers.prod.users[2]":  "U01ALICE is listed twice",
				"targets.openai.approvers.prod.users[3]":  `"C0CHANNEL" is not a Slack user ID`,
				"targets.openai.approvers.prod.groups[1]": `line 9: "@platform" is not a Slack user group ID`,
				"targets.openai.approvers.staging":        "line 10: has no approvers",
				"targets.openai.approvers.Dev":            `line 11: invalid environment "Dev"`,
				"targets.openai.approvers.qa.users":       "must be a list",
				"targets.openai.approvers.qa":             "has no approvers",
				"targets.openai.approvers.perf.user":      `unknown key "user"; the known keys are users, groups`,
				"targets.openai.approvers.perf":           "has no approvers",
				"targets.openai.approvers.load":           "must be a mapping with users and/or groups",
			},
		},
		{
			name: "default env missing from a target",
			yaml: `
slack: {request_channel: C0X}
targets:
  openai:
    kind: apikey
    approvers: {prod: {users: [U01ALICE]}}
  sandbox:
    kind: apikey
    approvers: {staging: {users: [U01ALICE]}}
`,
			want: map[string]string{"targets.sandbox.approvers": `line 7: has no "prod" environment, which is default_env`},
		},
		{
			name: "null keeps defaults, non-scalars are problems",
			yaml: `
listen: ~
request_ttl:
state_path: [a, b]
default_env: {prod: true}
? [complex]
: key
slack: {request_channel: C0X}
targets:
  openai:
    kind: ~
    description: [not, text]
    approvers: {prod: {users: [U01ALICE, [U02BOB]]}}
  sendgrid:
    kind: {name: apikey}
    approvers: {prod: {groups: [S0X]}}
`,
			want: map[string]string{
				"state_path":                             "line 4: must be a single value, not a list or mapping",
				"default_env":                            "must be a single value",
				"(file)":                                 "line 6: a key must be a plain name",
				"targets.openai.kind":                    "line 11: is empty",
				"targets.openai.description":             "must be a single value",
				"targets.openai.approvers.prod.users[1]": "line 13: must be a single ID",
				"targets.sendgrid.kind":                  "must be a single value",
			},
		},
		{
			name: "merge keys are refused",
			yaml: `
slack: {request_channel: C0X}
base: &base
  kind: apikey
targets:
  openai:
    <<: *base
    approvers: {prod: {users: [U01ALICE]}}
`,
			want: map[string]string{
				"base":                "unknown key",
				"targets.openai":      "line 7: merge keys (<<) are not supported",
				"targets.openai.kind": "is required",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := loadText(t, tt.yaml)
			assertProblems(t, problems, tt.want)
		})
	}
}

// assertProblems checks that problems are exactly the wanted paths, each
// with its message fragment.
func assertProblems(t *testing.T, problems []rotators.Problem, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, p := range problems {
		if _, dup := got[p.Path]; dup {
			t.Errorf("two problems at %s: %q and %q", p.Path, got[p.Path], p.Message)
		}
		got[p.Path] = p.Message
	}
	for path, frag := range want {
		msg, ok := got[path]
		if !ok {
			t.Errorf("no problem at %s (want %q); got %v", path, frag, problems)
			continue
		}
		if !strings.Contains(msg, frag) {
			t.Errorf("problem at %s = %q, want it to contain %q", path, msg, frag)
		}
	}
	for path, msg := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("unexpected problem %s: %s", path, msg)
		}
	}
}

func TestLoadConfigAliasesResolve(t *testing.T) {
	cfg, problems := loadText(t, `
slack: {request_channel: C0X}
x_platform: &platform {users: [U01ALICE], groups: [S0PLATFORM]}
targets:
  openai:
    kind: apikey
    approvers: {prod: *platform}
`)
	// The anchor's key is unknown, but the alias itself resolves.
	assertProblems(t, problems, map[string]string{"x_platform": "unknown key"})
	if got := cfg.Targets[0].Approvers["prod"]; !slices.Equal(got.Users, []string{"U01ALICE"}) || !slices.Equal(got.Groups, []string{"S0PLATFORM"}) {
		t.Fatalf("aliased approvers = %+v", got)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	if _, _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
	for name, text := range map[string]string{
		"syntax":          "targets: [unclosed\n",
		"tab indentation": "targets:\n\topenai: {}\n",
		"bad second doc":  minimalConfig + "---\n[unclosed\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, problems, err := LoadConfig(writeConfig(t, text))
			if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
				t.Fatalf("err = %v, want a YAML error (cfg %v, problems %v)", err, cfg, problems)
			}
		})
	}
}

// fakeParams is a kind's settings for the Build tests.
type fakeParams struct {
	Provider string `yaml:"provider"`
	Nested   struct {
		Count int      `yaml:"count"`
		Names []string `yaml:"names"`
	} `yaml:"nested"`
	Items []struct {
		Name string `yaml:"name"`
	} `yaml:"items"`
	Timeout time.Duration `yaml:"timeout"`
}

type fakeRotator struct{ p fakeParams }

func (fakeRotator) Plan(rotators.Spec) rotators.Plan { return rotators.Plan{} }

// fakeKind decodes into fakeParams and reports a problem when provider is "bad".
func fakeKind(got map[string]fakeParams) rotators.Kind {
	return rotators.Kind{Name: "fake", Build: func(target string, decode func(any) error, _ rotators.Deps) (rotators.Rotator, []rotators.Problem) {
		var p fakeParams
		if err := decode(&p); err != nil {
			// What a kind typically does; Build replaces it with the decode's own problems.
			return nil, []rotators.Problem{{Message: "cannot decode: " + err.Error()}}
		}
		got[target] = p
		if p.Provider == "bad" {
			return nil, []rotators.Problem{{Path: "provider", Message: "is bad"}, {Message: "whole target"}}
		}
		return fakeRotator{p}, nil
	}}
}

func TestBuild(t *testing.T) {
	cfg, problems := loadText(t, `
slack: {request_channel: C0X}
shared: &names [a, b]
targets:
  good:
    kind: fake
    approvers: {prod: {users: [U01ALICE]}}
    provider: p
    nested:
      count: 3
      names: *names
    items:
      - name: one
    timeout: 2m
  typo:
    kind: fake
    description: described
    approvers: {prod: {users: [U01ALICE]}}
    provder: p
    nested: {count: many, nams: [x]}
    items:
      - name: one
      - nme: two
  invalid:
    kind: fake
    approvers: {prod: {users: [U01ALICE]}}
    provider: bad
  unknownkind:
    kind: apikey
    approvers: {prod: {users: [U01ALICE]}}
  dupnested:
    kind: fake
    approvers: {prod: {users: [U01ALICE]}}
    nested:
      count: 1
      count: 2
`)
	assertProblems(t, problems, map[string]string{"shared": "unknown key"})
	decoded := map[string]fakeParams{}
	rots, problems := cfg.Build([]rotators.Kind{fakeKind(decoded), {Name: "other"}}, rotators.Deps{})
	assertProblems(t, problems, map[string]string{
		"targets.typo.provder":           `line 19: unknown key "provder"`,
		"targets.typo.nested.count":      "line 20: wrong type: got !!str `many`, want int",
		"targets.typo.nested.nams":       `line 20: unknown key "nams"`,
		"targets.typo.items[1].nme":      `line 23: unknown key "nme"`,
		"targets.invalid.provider":       "is bad",
		"targets.invalid":                "whole target",
		"targets.unknownkind.kind":       `line 29: unknown kind "apikey"; the known kinds are fake, other`,
		"targets.dupnested.nested.count": `line 36: mapping key "count" is given twice (first at line 35)`,
	})
	if len(rots) != 1 || rots["good"] == nil {
		t.Fatalf("rotators %v, want only good", rots)
	}
	g := decoded["good"]
	if g.Provider != "p" || g.Nested.Count != 3 || !slices.Equal(g.Nested.Names, []string{"a", "b"}) ||
		len(g.Items) != 1 || g.Items[0].Name != "one" || g.Timeout != 2*time.Minute {
		t.Fatalf("good decoded as %+v", g)
	}
}

func TestBuildOddKinds(t *testing.T) {
	cfg, problems := loadText(t, `
slack: {request_channel: C0X}
targets:
  silent:
    kind: silent
    approvers: {prod: {users: [U01ALICE]}}
  nonpointer:
    kind: nonpointer
    approvers: {prod: {users: [U01ALICE]}}
    provider: p
`)
	assertProblems(t, problems, nil)
	kinds := []rotators.Kind{
		// Returns neither a rotator nor a problem.
		{Name: "silent", Build: func(string, func(any) error, rotators.Deps) (rotators.Rotator, []rotators.Problem) { return nil, nil }},
		// Passes a non-pointer to decode.
		{Name: "nonpointer", Build: func(_ string, decode func(any) error, _ rotators.Deps) (rotators.Rotator, []rotators.Problem) {
			if err := decode(fakeParams{}); err != nil {
				return nil, []rotators.Problem{{Message: err.Error()}}
			}
			return fakeRotator{}, nil
		}},
	}
	rots, problems := cfg.Build(kinds, rotators.Deps{})
	assertProblems(t, problems, map[string]string{
		"targets.silent":     "line 4: kind silent made no rotator and reported no problem",
		"targets.nonpointer": "line 7: kind nonpointer decodes into main.fakeParams, not a pointer",
	})
	if len(rots) != 0 {
		t.Fatalf("rotators %v, want none", rots)
	}
}

func TestBuildSkipsTargetsWithoutKind(t *testing.T) {
	cfg, problems := loadText(t, `
slack: {request_channel: C0X}
targets:
  openai:
    approvers: {prod: {users: [U01ALICE]}}
`)
	assertProblems(t, problems, map[string]string{"targets.openai.kind": "is required"})
	rots, problems := cfg.Build(nil, rotators.Deps{})
	if len(rots) != 0 || len(problems) != 0 {
		t.Fatalf("Build = %v, %v; want nothing (LoadConfig reported the missing kind)", rots, problems)
	}
}

func TestBuildAliasBomb(t *testing.T) {
	// Each level doubles the nodes; 2^14 leaves exceed maxParamNodes.
	var b strings.Builder
	b.WriteString("slack: {request_channel: C0X}\nl0: &l0 [x, x]\n")
	for i := 1; i <= 14; i++ {
		b.WriteString("l" + strconv.Itoa(i) + ": &l" + strconv.Itoa(i) + " [*l" + strconv.Itoa(i-1) + ", *l" + strconv.Itoa(i-1) + "]\n")
	}
	b.WriteString("targets:\n  big:\n    kind: fake\n    approvers: {prod: {users: [U01ALICE]}}\n    nested: {names: *l14}\n")
	cfg, _ := loadText(t, b.String())
	_, problems := cfg.Build([]rotators.Kind{fakeKind(map[string]fakeParams{})}, rotators.Deps{})
	if len(problems) != 1 || problems[0].Path != "targets.big" || !strings.Contains(problems[0].Message, "more than") {
		t.Fatalf("problems = %v, want one about the expansion", problems)
	}
}

func TestDecodeErrorReachesKind(t *testing.T) {
	cfg, _ := loadText(t, `
slack: {request_channel: C0X}
targets:
  typo:
    kind: fake
    approvers: {prod: {users: [U01ALICE]}}
    provder: p
`)
	var seen error
	kind := rotators.Kind{Name: "fake", Build: func(_ string, decode func(any) error, _ rotators.Deps) (rotators.Rotator, []rotators.Problem) {
		var p fakeParams
		seen = decode(&p)
		// A kind that ignores the error still gets no rotator built.
		return fakeRotator{p}, nil
	}}
	rots, problems := cfg.Build([]rotators.Kind{kind}, rotators.Deps{})
	if seen == nil || !strings.Contains(seen.Error(), `targets.typo.provder: line 7: unknown key "provder"`) {
		t.Fatalf("decode error = %v", seen)
	}
	if len(rots) != 0 || len(problems) != 1 {
		t.Fatalf("Build = %v, %v; want no rotator and one problem", rots, problems)
	}
}

func TestExampleConfig(t *testing.T) {
	cfg, problems, err := LoadConfig(filepath.Join("examples", "aivo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("examples/aivo.yaml has problems: %v", problems)
	}
	var names []string
	kindsSeen := map[string]bool{}
	for _, tc := range cfg.Targets {
		names = append(names, tc.Name)
		kindsSeen[tc.Kind] = true
		if len(tc.Approvers["prod"].Users) == 0 || len(tc.Approvers["staging"].Users) == 0 {
			t.Errorf("target %s: %+v", tc.Name, tc)
		}
	}
	// The example models every kind rotary has, each with prod and staging.
	for _, k := range kinds() {
		if !kindsSeen[k.Name] {
			t.Errorf("examples/aivo.yaml has no %s target", k.Name)
		}
	}
	if !slices.Contains(names, "openai") || !slices.Contains(names, "stripe") {
		t.Fatalf("targets %v", names)
	}
	// The real kinds accept every target, and plan a rotation.
	rots, problems := cfg.Build(kinds(), rotators.Deps{})
	if len(problems) > 0 || len(rots) != len(names) {
		t.Fatalf("Build: %v, %v", rots, problems)
	}
	for _, name := range names {
		if p := rots[name].Plan(rotators.Spec{RequestID: "R-TEST01", Target: name, Env: "staging"}); len(p.Steps) == 0 {
			t.Errorf("%s: empty plan", name)
		}
	}
}

func TestLoadConfigEmergency(t *testing.T) {
	cfg, problems := loadText(t, minimalConfig+`
admin_listen: 127.0.0.1:9091
emergency:
  responders: {users: [U0ONCALL1], groups: [S0ONCALL]}
  request_ttl: 10m
  break_glass:
    enabled: true
    users: [U0ONCALL1]
    review_within: 1h
    max_escalations: 5
    escalate_to: {groups: [S0SECURITY]}
`)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	p := cfg.Policy()
	e := p.Emergency
	if cfg.AdminListen != "127.0.0.1:9091" || e.TTL != 10*time.Minute || !slices.Equal(e.Responders.Users, []string{"U0ONCALL1"}) ||
		!slices.Equal(e.Responders.Groups, []string{"S0ONCALL"}) || !e.BreakGlass.Enabled ||
		!slices.Equal(e.BreakGlass.Users, []string{"U0ONCALL1"}) || e.BreakGlass.ReviewWithin != time.Hour ||
		e.BreakGlass.MaxEscalations != 5 || !slices.Equal(e.BreakGlass.EscalateTo.Groups, []string{"S0SECURITY"}) {
		t.Fatalf("emergency policy %+v (admin %q)", e, cfg.AdminListen)
	}
	// The policy holds copies: changing it cannot change the config.
	e.BreakGlass.Users[0] = "UXXXX"
	if cfg.Emergency.BreakGlass.Users[0] != "U0ONCALL1" {
		t.Fatal("policy shares the break-glass list with the config")
	}

	def, problems := loadText(t, minimalConfig)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	d := def.Policy().Emergency
	if d.TTL != 15*time.Minute || d.BreakGlass.Enabled || d.BreakGlass.ReviewWithin != 30*time.Minute ||
		d.BreakGlass.MaxEscalations != 3 || def.AdminListen != "127.0.0.1:8081" {
		t.Fatalf("emergency defaults %+v admin %q: break-glass must be off by default", d, def.AdminListen)
	}
}

func TestLoadConfigEmergencyProblems(t *testing.T) {
	_, problems := loadText(t, minimalConfig+`
admin_listen: 0.0.0.0:9091
emergency:
  responders: [U0ONCALL1]
  request_ttl: 3h
  break_glass:
    enabled: yes please
    users: [alice]
    review_within: 1m
    max_escalations: -1
    escalate_to: {people: [U1]}
    page: true
  grace: 0s
`)
	assertProblems(t, problems, map[string]string{
		"admin_listen":                             "not a loopback address",
		"emergency.responders":                     "must be a mapping with users and/or groups",
		"emergency.request_ttl":                    "out of range",
		"emergency.break_glass.enabled":            "must be true or false",
		"emergency.break_glass.users[0]":           `"alice" is not a Slack user ID`,
		"emergency.break_glass.review_within":      "out of range",
		"emergency.break_glass.max_escalations":    "between 0 and 20",
		"emergency.break_glass.escalate_to.people": `unknown key "people"`,
		"emergency.break_glass.page":               `unknown key "page"`,
		"emergency.grace":                          `unknown key "grace"`,
	})
	_, problems = loadText(t, minimalConfig+"emergency:\n  break_glass: {enabled: true}\n")
	assertProblems(t, problems, map[string]string{
		"emergency.break_glass.users": "is required when break-glass is enabled",
	})
}
