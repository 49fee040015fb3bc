package apikey

import (
	"context"
	"fmt"
	"testing"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/apikey/apikeytest"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const (
	testAdminKey = "sk-admin-TESTADMINKEY-0123456789abcdef"
	testOldValue = "OLDVALUE-the-key-in-use-before"
	testProject  = "proj_aivoprod"
	testReqID    = "R0042"
)

// fixture is one target wired to fakes: a provider API fake (OpenAI or
// SendGrid, none for manual), a Secret Manager holding the old value, and a
// cluster.
type fixture struct {
	t        *testing.T
	provider string
	openai   *apikeytest.OpenAI
	sendgrid *apikeytest.SendGrid
	store    *fakeStore
	cluster  *fakeCluster
	rot      *Rotator
	spec     rotators.Spec
	plan     rotators.Plan
}

func newFixture(t *testing.T, provider string, extraYAML ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, provider: provider, cluster: newFakeCluster()}
	f.spec = rotators.Spec{RequestID: testReqID, Target: "ai", Env: "prod"}
	f.store = newFakeStore(t, gsm.SecretName("aivo-platform", "aivo-prod-ai-key"), testOldValue)
	src := `
provider: ` + provider + `
namespace: aivo-{env}
secret_manager:
  project: aivo-platform
  secret: aivo-{env}-ai-key
external_secret: external-services
deployments: [ai-orchestrator, ai-worker]
`
	clients := Clients{Store: f.store, Cluster: f.cluster, Creds: fakeCreds{"ADMIN_KEY_prod": testAdminKey}}
	switch provider {
	case ProviderOpenAI:
		f.openai = apikeytest.NewOpenAI(apikeytest.OpenAIOptions{AdminKey: testAdminKey, ProjectID: testProject})
		t.Cleanup(f.openai.Close)
		clients.HTTP = f.openai.Client()
		src += fmt.Sprintf("openai:\n  api_base: %s\n  project_id: proj_aivo{env}\n  admin_key_env: ADMIN_KEY_{env}\n", f.openai.URL())
	case ProviderSendGrid:
		f.sendgrid = apikeytest.NewSendGrid(apikeytest.SendGridOptions{AdminKey: testAdminKey})
		t.Cleanup(f.sendgrid.Close)
		clients.HTTP = f.sendgrid.Client()
		src += fmt.Sprintf("sendgrid:\n  api_base: %s\n  scopes: [mail.send]\n  admin_key_env: ADMIN_KEY_{env}\n", f.sendgrid.URL())
	case ProviderManual:
		src += "manual:\n  dashboard_url: https://dashboard.stripe.com/apikeys\n"
	}
	for _, e := range extraYAML {
		src += e + "\n"
	}
	var cfg Config
	if err := yamlDecode(src)(&cfg); err != nil {
		t.Fatal(err)
	}
	rot, problems := New(f.spec.Target, cfg, clients)
	if len(problems) > 0 {
		t.Fatalf("config problems: %v\n%s", problems, src)
	}
	f.rot = rot
	f.plan = rot.Plan(f.spec)
	return f
}

func (f *fixture) newRun() *fakeRun {
	r := newFakeRun(f.spec)
	if f.provider == ProviderManual {
		r.Answer = func(_ context.Context, p rotators.Prompt) (secret.Value, error) {
			if p.ID == PromptPasteKey {
				return secret.FromString("  rk_live_MANUALNEWKEY-pasted\n"), nil
			}
			return secret.Value{}, nil
		}
	}
	return r
}

// step returns the plan's forward or rollback step called name.
func (f *fixture) step(name string) rotators.Step {
	f.t.Helper()
	for _, s := range append(append([]rotators.Step{}, f.plan.Steps...), f.plan.Rollback...) {
		if s.Name == name {
			return s
		}
	}
	f.t.Fatalf("no step %q", name)
	return rotators.Step{}
}

// run runs the named step once.
func (f *fixture) run(run *fakeRun, name string) error {
	return f.step(name).Run(context.Background(), run)
}

// mustRun runs the named steps in order and fails on an error.
func (f *fixture) mustRun(run *fakeRun, names ...string) {
	f.t.Helper()
	for _, n := range names {
		if err := f.run(run, n); err != nil {
			f.t.Fatalf("step %s: %v", n, err)
		}
	}
}

// issued is every key value the provider handed out (or the pasted one).
func (f *fixture) issued() []string {
	switch {
	case f.openai != nil:
		return f.openai.IssuedKeys()
	case f.sendgrid != nil:
		return f.sendgrid.IssuedKeys()
	}
	return []string{"rk_live_MANUALNEWKEY-pasted"}
}

// keyNames lists the names of the keys at the provider.
func (f *fixture) keyNames() []string {
	var names []string
	switch {
	case f.openai != nil:
		for _, sa := range f.openai.ServiceAccounts() {
			names = append(names, sa.Name)
		}
	case f.sendgrid != nil:
		for _, k := range f.sendgrid.APIKeys() {
			names = append(names, k.Name)
		}
	}
	return names
}

// seedKey adds a pre-existing key at the provider and returns its id.
func (f *fixture) seedKey(name string) string {
	switch {
	case f.openai != nil:
		return f.openai.AddServiceAccount(name)
	case f.sendgrid != nil:
		return f.sendgrid.AddAPIKey(name, []string{"mail.send"})
	}
	f.t.Fatal("no provider API")
	return ""
}

// creates counts create calls at the provider.
func (f *fixture) creates() int {
	switch {
	case f.openai != nil:
		return f.openai.CountCalls("POST", "/v1/")
	case f.sendgrid != nil:
		return f.sendgrid.CountCalls("POST", "/v3/")
	}
	return 0
}

func (f *fixture) deletes() int {
	switch {
	case f.openai != nil:
		return f.openai.CountCalls("DELETE", "/v1/")
	case f.sendgrid != nil:
		return f.sendgrid.CountCalls("DELETE", "/v3/")
	}
	return 0
}

func (f *fixture) failNext(n, status int) {
	switch {
	case f.openai != nil:
		f.openai.FailNext(n, status)
	case f.sendgrid != nil:
		f.sendgrid.FailNext(n, status)
	}
}

// forward lists the forward step names.
func forward() []string {
	return []string{StepNewKey, StepStoreVersion, StepSync, StepRestart, StepVerify, StepRevoke}
}
