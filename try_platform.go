package main

// try_platform.go is the simulated platform of `rotary try`: it starts the
// Secret Manager fake, the Kubernetes fakes with kubesim's controllers and
// exec endpoint, and the OpenAI/SendGrid fakes behind one routing server,
// seeds them (try_seed.go) and stops them.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aivo-platform/rotary/bot/console"
	"github.com/aivo-platform/rotary/rotators/apikey"
	"github.com/aivo-platform/rotary/rotators/apikey/apikeytest"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Kinds the simulation plays, and those it cannot.
const (
	kindAPIKey     = "apikey"
	kindEncryption = "encryption"
	kindDatabase   = "database"
	kindRedis      = "redis"
	kindJWT        = "jwt"
)

// Settings of the simulated providers.
const (
	// tryProviderHeaderTimeout bounds a request header to the provider fakes.
	tryProviderHeaderTimeout = 5 * time.Second
	// earlierRequest names the key a simulated provider holds before the
	// first rotation, as if an earlier rotation had made it.
	earlierRequest = "R-EARLIER1"
)

// tryPlatform is the simulated platform: what it runs and what it seeded.
type tryPlatform struct {
	log   *slog.Logger
	delay time.Duration

	gsm       *gsmfake.Server
	gsmCount  int
	cs        *fake.Clientset
	dyn       *dynamicfake.FakeDynamicClient
	sim       *kubesim.Sim
	stopSim   context.CancelFunc
	kube      *kube.Client
	exec      *kubesim.ExecServer
	providers *http.Server
	fakes     []interface{ Close() }
	// routes maps "<target>/<env>" to the provider fake that plays it.
	routes map[string]*httputil.ReverseProxy
	// creds are the generated credentials, by name; apiBase the provider
	// base URL per target.
	creds   map[string]string
	apiBase map[string]string
	// jwt: a jwt target is configured (its token_lifetime is shortened).
	jwt bool
}

// start runs the fakes the targets need and seeds them. It returns the
// targets the simulation cannot play.
func (p *tryPlatform) start(ctx context.Context, targets []tryTarget, realKube, realGSM bool) ([]console.Unavailable, error) {
	var unavailable []console.Unavailable
	var kept []tryTarget
	for _, t := range targets {
		if why := tryUnavailableReason(t.Kind); why != "" {
			unavailable = append(unavailable, console.Unavailable{Target: t.Name, Reason: why})
			continue
		}
		kept = append(kept, t)
	}
	if err := p.startProviders(kept); err != nil {
		return nil, err
	}
	seeds := newTrySeeds()
	for _, t := range kept {
		p.jwt = p.jwt || t.Kind == kindJWT
		for _, env := range t.Envs {
			if err := seeds.target(t, env); err != nil {
				return nil, fmt.Errorf("try: seed %s (%s): %w", t.Name, env, err)
			}
		}
	}
	if !realGSM {
		if err := p.startSecretManager(ctx, seeds); err != nil {
			return nil, err
		}
	}
	if !realKube {
		if err := p.startKubernetes(ctx, seeds); err != nil {
			return nil, err
		}
	}
	return unavailable, nil
}

// credential returns the generated value of a credential, making it once.
func (p *tryPlatform) credential(name string) string {
	if v, ok := p.creds[name]; ok {
		return v
	}
	v := "SIMULATED-" + tryRandomHex(trySecretBytes)
	p.creds[name] = v
	return v
}

// startProviders runs an OpenAI or SendGrid fake per target and
// environment behind one loopback server; each target's api_base becomes
// <server>/<target>/{env}, which the kind expands per request.
func (p *tryPlatform) startProviders(targets []tryTarget) error {
	p.routes = map[string]*httputil.ReverseProxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("try: listen for the provider fakes: %w", err)
	}
	base := "http://" + ln.Addr().String()
	for _, t := range targets {
		if t.Kind != kindAPIKey {
			continue
		}
		for _, env := range t.Envs {
			var fakeURL string
			switch {
			case t.Provider == apikey.ProviderOpenAI && t.OpenAI != nil:
				f := apikeytest.NewOpenAI(apikeytest.OpenAIOptions{
					AdminKey: p.credential(tryExpand(t.OpenAI.AdminKeyEnv, env)), ProjectID: tryExpand(t.OpenAI.ProjectID, env),
				})
				f.AddServiceAccount(apikey.KeyPrefix(t.Name, env) + earlierRequest)
				p.fakes, fakeURL = append(p.fakes, f), f.URL()
			case t.Provider == apikey.ProviderSendGrid && t.SendGrid != nil:
				f := apikeytest.NewSendGrid(apikeytest.SendGridOptions{AdminKey: p.credential(tryExpand(t.SendGrid.AdminKeyEnv, env))})
				f.AddAPIKey(apikey.KeyPrefix(t.Name, env)+earlierRequest, t.SendGrid.Scopes)
				p.fakes, fakeURL = append(p.fakes, f), f.URL()
			default:
				continue
			}
			u, err := url.Parse(fakeURL)
			if err != nil {
				_ = ln.Close()
				return fmt.Errorf("try: provider fake URL: %w", err)
			}
			proxy := httputil.NewSingleHostReverseProxy(u)
			proxy.ErrorLog = slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)
			p.routes[t.Name+"/"+env] = proxy
			p.apiBase[t.Name] = base + "/" + t.Name + "/" + apikey.EnvPlaceholder
		}
	}
	p.providers = &http.Server{Handler: http.HandlerFunc(p.serveProvider), ReadHeaderTimeout: tryProviderHeaderTimeout}
	go func() { _ = p.providers.Serve(ln) }() // ends with close
	return nil
}

// serveProvider routes /<target>/<env>/<path> to that fake's /<path>.
func (p *tryPlatform) serveProvider(w http.ResponseWriter, r *http.Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 3 {
		http.NotFound(w, r)
		return
	}
	proxy, ok := p.routes[parts[0]+"/"+parts[1]]
	if !ok {
		http.Error(w, fmt.Sprintf("no simulated provider for target %s in environment %s", parts[0], parts[1]), http.StatusNotFound)
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = "/"+parts[2], ""
	proxy.ServeHTTP(w, out)
}

// startSecretManager runs the gRPC fake with the seeded secrets, each
// holding one version.
func (p *tryPlatform) startSecretManager(ctx context.Context, seeds *trySeeds) error {
	var err error
	if p.gsm, err = gsmfake.Start(); err != nil {
		return fmt.Errorf("try: start the Secret Manager fake: %w", err)
	}
	c, err := gsm.Dial(ctx, p.gsm.Addr())
	if err != nil {
		return fmt.Errorf("try: connect to the Secret Manager fake: %w", err)
	}
	defer c.Close()
	for _, sd := range seeds.gsm {
		if err := p.gsm.CreateSecret(sd.name); err != nil {
			return fmt.Errorf("try: seed Secret Manager: %w", err)
		}
		if _, err := c.AddVersion(ctx, sd.name, secret.FromString(sd.value)); err != nil {
			return fmt.Errorf("try: seed Secret Manager secret %s: %w", sd.name, err)
		}
		p.gsmCount++
	}
	return nil
}

// startKubernetes builds client-go fakes holding the seeded objects,
// starts kubesim's controllers on them (paced by p.delay), and an exec
// endpoint whose commands succeed.
func (p *tryPlatform) startKubernetes(ctx context.Context, seeds *trySeeds) error {
	p.cs = fake.NewClientset(seeds.objs...)
	p.dyn = kubesim.NewDynamicClient(seeds.ess...)
	p.sim = kubesim.New(p.cs, p.dyn, kubesim.Options{Staged: true, Log: p.log})
	if p.delay > 0 {
		p.cs.PrependWatchReactor("*", tryPacedWatchReactor(p.cs.Tracker(), p.delay))
		p.dyn.PrependWatchReactor("*", tryPacedWatchReactor(p.dyn.Tracker(), p.delay))
	}
	simCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	if err := p.sim.Start(simCtx); err != nil {
		stop()
		return fmt.Errorf("try: start the Kubernetes simulation: %w", err)
	}
	p.stopSim = stop
	var err error
	p.exec, err = kubesim.NewExecServer(trySimulatedExec, kubesim.ExecServerOptions{})
	if err != nil {
		return fmt.Errorf("try: start the simulated exec endpoint: %w", err)
	}
	p.kube = kube.New(p.cs, p.dyn, kube.Options{Log: p.log, RESTConfig: p.exec.RESTConfig()})
	return nil
}

// trySimulatedExec runs nothing and says so: every command exits 0.
func trySimulatedExec(r kubesim.ExecRequest) kubesim.ExecReply {
	return kubesim.ExecReply{Stdout: []byte("simulated: " + strings.Join(r.Command, " ") + " in " + r.Pod + "\n")}
}

// close stops everything start started.
func (p *tryPlatform) close() {
	if p.providers != nil {
		_ = p.providers.Close()
	}
	for _, f := range p.fakes {
		f.Close()
	}
	if p.exec != nil {
		if err := p.exec.Close(); err != nil {
			p.log.Warn("try: close the simulated exec endpoint", "err", err)
		}
	}
	if p.stopSim != nil {
		p.stopSim()
		<-p.sim.Done()
	}
	if p.gsm != nil {
		p.gsm.Close()
	}
}
