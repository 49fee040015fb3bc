package main

// try.go is `rotary try`: the real bot (the same config loading, HTTP
// handlers, bbolt store, policy and executor as `serve`) behind a local web
// console that plays Slack for several people (bot/console), on a platform
// simulated in-process: Secret Manager (gsmfake, over real gRPC),
// Kubernetes (client-go's fakes with kubesim's controllers, paced so that a
// rollout visibly takes a few seconds), and the OpenAI/SendGrid admin APIs
// (apikeytest). KUBECONFIG or SECRETMANAGER_EMULATOR_HOST replace the
// simulated Kubernetes or Secret Manager with real ones. Nothing in the
// core knows it is a demo: the console talks to the bot over HTTP as Slack
// does, and the bot talks to the console's Web API stand-in as it talks to
// slack.com.
//
// What the simulation seeds follows each target's settings: deployments
// with ready pods, ExternalSecrets, a first Secret Manager version, the
// encryption kind's Secret, the jwt kind's Secret with a real key pair; a
// pods/exec endpoint (kubesim's) runs the emergency session invalidation
// as a no-op. A jwt target's token_lifetime is cut to 30s so a rotation
// ends while someone watches (the page says so).
//
// The database and redis kinds need a real PostgreSQL or Redis server,
// which the simulation does not have: their targets are taken out of the
// config and the page lists them as unavailable, with the reason.

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aivo-platform/rotary/bot"
	"github.com/aivo-platform/rotary/bot/console"
	"github.com/aivo-platform/rotary/commands"
	"github.com/aivo-platform/rotary/rotators/apikey"
	"github.com/aivo-platform/rotary/rotators/apikey/apikeytest"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// bundledConfig is examples/aivo.yaml, built in so that `rotary try` runs
// from any directory. (go:embed needs a package-level variable; it is only
// read.)
//
//go:embed examples/aivo.yaml
var bundledConfig []byte

// Defaults and bounds of `rotary try`.
const (
	bundledConfigName = "examples/aivo.yaml (bundled)"
	// tryDefaultPort is easy to remember and to bookmark; when it is taken
	// and --port was not given, any free port is used instead.
	tryDefaultPort = 8780
	// tryDefaultSimDelay is how long each simulated controller step takes:
	// long enough to watch a rollout progress, short enough not to bore.
	tryDefaultSimDelay = 700 * time.Millisecond
	maxSimDelay        = time.Minute
	// trySecretBytes is the randomness of generated secrets.
	trySecretBytes = 24
	// tryReplicas is the size of each simulated deployment.
	tryReplicas = 2
	// tryHTTPTimeout bounds the bot's calls to the platform and Slack.
	tryHTTPTimeout = 30 * time.Second
	// tryProviderHeaderTimeout bounds a request header to the provider fakes.
	tryProviderHeaderTimeout = 5 * time.Second
	// earlierRequest names the key a simulated provider holds before the
	// first rotation, as if an earlier rotation had made it.
	earlierRequest = "R-EARLIER1"
	// tryDefaultLogLevel keeps the terminal quiet; ROTARY_LOG_LEVEL overrides.
	tryDefaultLogLevel = slog.LevelWarn
)

// Kinds the simulation plays, and those it cannot.
const (
	kindAPIKey     = "apikey"
	kindEncryption = "encryption"
	kindDatabase   = "database"
	kindRedis      = "redis"
	kindJWT        = "jwt"
)

// Settings of the simulated cluster.
const (
	// seedKeyBits is the size of the JWT key pair the simulation starts
	// with (the rotation makes its own, of the configured size).
	seedKeyBits = 2048
	// keyIDBytes makes a 16-hex-digit key id, as the jwt kind does.
	keyIDBytes = 8
	// tryTokenLifetime replaces a longer jwt token_lifetime, which an
	// ordinary rotation waits out before it reports its outcome.
	tryTokenLifetime = 30 * time.Second
	// Defaults of the kinds' settings the simulation seeds from.
	defaultEncryptionKeyName = "ENCRYPTION_KEY"
	defaultJWTSecret         = "jwt-keys"
	defaultJWTDeployment     = "auth-svc"
)

// tryOptions are `rotary try`'s settings.
type tryOptions struct {
	configPath string // "" is the bundled config
	port       int
	portGiven  bool
	statePath  string // "" is a temporary file
	simDelay   time.Duration
	stdout     io.Writer
	stderr     io.Writer
	getenv     func(string) string
}

// tryCmd parses `rotary try`'s flags and runs it until ctx ends.
func tryCmd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := newFlagSet("try")
	path := fs.String("config", "", "config file (default: the bundled examples/aivo.yaml)")
	port := fs.Int("port", tryDefaultPort, "port of the console on 127.0.0.1 (0: any free port)")
	state := fs.String("state", "", "bbolt state file (default: a temporary file, removed on exit)")
	delay := fs.Duration("sim-delay", tryDefaultSimDelay, "time each simulated Kubernetes step takes (0: instant)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	portGiven := false
	fs.Visit(func(f *flag.Flag) { portGiven = portGiven || f.Name == "port" })
	if *port < 0 || *port > 65535 {
		return usageError{fmt.Sprintf("--port %d is not a port: give 1-65535, or 0 for any free port", *port)}
	}
	if *delay < 0 || *delay > maxSimDelay {
		return usageError{fmt.Sprintf("--sim-delay %s is out of range: give 0 (instant) up to %s, e.g. --sim-delay 1s", *delay, maxSimDelay)}
	}
	return runTry(ctx, tryOptions{
		configPath: *path, port: *port, portGiven: portGiven, statePath: *state, simDelay: *delay,
		stdout: stdout, stderr: os.Stderr, getenv: getenv,
	})
}

// runTry assembles the simulated platform, the bot and the console, serves
// until ctx ends and shuts everything down.
func runTry(ctx context.Context, o tryOptions) (err error) {
	work, err := os.MkdirTemp("", "rotary-try-")
	if err != nil {
		return fmt.Errorf("try: make a working directory: %w", err)
	}
	defer os.RemoveAll(work)
	statePath := o.statePath
	if statePath == "" {
		statePath = filepath.Join(work, "rotary.db")
	} else if statePath, err = filepath.Abs(statePath); err != nil {
		return fmt.Errorf("try: --state: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(o.stderr, &slog.HandlerOptions{Level: tryLogLevel(o.getenv)}))

	raw, source, err := tryConfigSource(o.configPath, work)
	if err != nil {
		return err
	}
	doc, targets, err := readTryTargets(raw)
	if err != nil {
		return fmt.Errorf("try: %s: %w", source, err)
	}

	plat := &tryPlatform{log: log, delay: o.simDelay, creds: map[string]string{}, apiBase: map[string]string{}}
	defer plat.close()
	realKube, realGSM := o.getenv(envKubeconfig) != "", o.getenv(envGSMEmulator) != ""
	unavailable, err := plat.start(ctx, targets, realKube, realGSM)
	if err != nil {
		return err
	}

	cfg, err := tryConfig(doc, work, statePath, unavailable, plat.apiBase, source)
	if err != nil {
		return err
	}
	people, groups := tryPeople(cfg)

	signing := tryRandomHex(trySecretBytes)
	botLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("try: listen for the bot: %w", err)
	}
	defer botLn.Close() // after run, a no-op
	con, err := console.New(console.Config{
		BotURL:        "http://" + botLn.Addr().String(),
		SigningSecret: secret.FromString(signing),
		Channels:      tryChannels(cfg),
		People:        people,
		Groups:        groups,
		Commands:      []string{bot.CommandRotate, bot.CommandRotateJWT},
		Simulated:     true,
		Platform:      plat.lines(realKube, realGSM, o.getenv),
		Unavailable:   unavailable,
		Guide:         tryGuide(cfg, targets, people),
		Log:           log,
	})
	if err != nil {
		return fmt.Errorf("try: %w", err)
	}
	defer con.Close()

	set := map[string]string{
		envSigningSecret: signing,
		envBotToken:      con.BotToken(),
		envSlackAPIURL:   con.SlackAPIURL(),
	}
	pass := []string{envKubeconfig, envLogLevel}
	if realGSM {
		pass = append(pass, envGSMEmulator)
	} else {
		set[envGSMEmulator] = plat.gsm.Addr()
	}
	for name, v := range plat.creds {
		set[name] = v
	}
	env := appEnv{
		getenv:   tryGetenv(o.getenv, set, pass),
		now:      time.Now,
		newID:    newRequestID,
		rand:     rand.Reader,
		http:     &http.Client{Timeout: tryHTTPTimeout},
		log:      log,
		kube:     plat.kube, // nil with KUBECONFIG: newApp loads it
		listener: botLn,
	}
	a, err := newApp(ctx, cfg, env)
	if err != nil {
		return fmt.Errorf("try: %w", err)
	}
	conLn, note, err := tryListenConsole(o.port, o.portGiven)
	if err != nil {
		a.close()
		return err
	}
	printTryBanner(o.stdout, "http://"+conLn.Addr().String()+"/", note, source, statePath, o.statePath == "", unavailable, realKube, realGSM)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var appErr, conErr error
	wg.Go(func() {
		defer stop()
		if err := a.run(runCtx); err != nil {
			appErr = fmt.Errorf("try: rotary: %w", err)
		}
	})
	wg.Go(func() {
		defer stop()
		conErr = con.Serve(runCtx, conLn)
	})
	wg.Wait()
	return errors.Join(appErr, conErr)
}

// tryLogLevel is ROTARY_LOG_LEVEL, or warn.
func tryLogLevel(getenv func(string) string) slog.Level {
	level := tryDefaultLogLevel
	if v := getenv(envLogLevel); v != "" {
		_ = level.UnmarshalText([]byte(v)) // a bad value keeps the default, as serve does
	}
	return level
}

// tryConfigSource returns the config's text and a name for messages. The
// config is checked as it is first, so its own problems are reported
// against it, not against try's adjusted copy.
func tryConfigSource(path, work string) ([]byte, string, error) {
	if path == "" {
		copyPath := filepath.Join(work, "aivo.yaml")
		if err := os.WriteFile(copyPath, bundledConfig, 0o600); err != nil {
			return nil, "", fmt.Errorf("try: write the bundled config: %w", err)
		}
		if _, err := loadValid(copyPath); err != nil {
			return nil, "", fmt.Errorf("try: the bundled %s is not valid (this build of rotary is broken): %w", bundledConfigName, err)
		}
		return bundledConfig, bundledConfigName, nil
	}
	if _, err := loadValid(path); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read config: %w", err)
	}
	return b, path, nil
}

// tryTarget is what the simulation reads of a target: the keys the kinds
// share, decoded loosely (the kinds validate them; unknown keys are theirs).
type tryTarget struct {
	Name          string
	Envs          []string
	Kind          string `yaml:"kind"`
	Namespace     string `yaml:"namespace"`
	SecretManager struct {
		Project        string `yaml:"project"`
		Secret         string `yaml:"secret"`
		ExternalSecret string `yaml:"external_secret"`
	} `yaml:"secret_manager"`
	ExternalSecret string   `yaml:"external_secret"`
	Deployments    []string `yaml:"deployments"`
	// Deployment is the jwt kind's one deployment.
	Deployment string `yaml:"deployment"`
	Provider   string `yaml:"provider"`
	OpenAI     *struct {
		ProjectID   string `yaml:"project_id"`
		AdminKeyEnv string `yaml:"admin_key_env"`
	} `yaml:"openai"`
	SendGrid *struct {
		Scopes      []string `yaml:"scopes"`
		AdminKeyEnv string   `yaml:"admin_key_env"`
	} `yaml:"sendgrid"`
	Secret  string `yaml:"secret"`
	KeyName string `yaml:"key_name"`
	// Keys, Backend and TokenLifetime are the jwt kind's.
	Keys *struct {
		Private   string `yaml:"private"`
		Public    string `yaml:"public"`
		PublicOld string `yaml:"public_old"`
		KeyID     string `yaml:"key_id"`
	} `yaml:"keys"`
	Backend       string               `yaml:"backend"`
	TokenLifetime string               `yaml:"token_lifetime"`
	Approvers     map[string]yaml.Node `yaml:"approvers"`
}

// tryExpand replaces {env} as the kinds do.
func tryExpand(s, env string) string { return strings.ReplaceAll(s, apikey.EnvPlaceholder, env) }

// readTryTargets parses the config text and reads its targets.
func readTryTargets(raw []byte) (*yaml.Node, []tryTarget, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	root := yamlRoot(&doc)
	if root == nil {
		return nil, nil, errors.New("the file is not a mapping of settings")
	}
	tm := yamlDeref(yamlValue(root, yamlKeyTargets))
	if tm == nil || tm.Kind != yaml.MappingNode {
		return nil, nil, errors.New("no targets: section")
	}
	var out []tryTarget
	for i := 0; i+1 < len(tm.Content); i += 2 {
		var t tryTarget
		if err := yamlDeref(tm.Content[i+1]).Decode(&t); err != nil {
			return nil, nil, fmt.Errorf("targets.%s: %w", tm.Content[i].Value, err)
		}
		t.Name = tm.Content[i].Value
		for env := range t.Approvers {
			t.Envs = append(t.Envs, env)
		}
		slices.Sort(t.Envs)
		out = append(out, t)
	}
	return &doc, out, nil
}

// Keys of the config file that try reads or rewrites (its own copies, so
// that try follows the file format, not the loader's internals).
const (
	yamlKeyTargets   = "targets"
	yamlKeyStatePath = "state_path"
	yamlKeyListen    = "listen"
)

// yamlDeref follows an alias to its anchored node.
func yamlDeref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func yamlRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	return doc
}

// yamlValue returns the value of key in mapping m, or nil.
func yamlValue(m *yaml.Node, key string) *yaml.Node {
	m = yamlDeref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// yamlSetString sets key in mapping m to a string.
func yamlSetString(m *yaml.Node, key, value string) {
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// yamlDelete removes key from mapping m.
func yamlDelete(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

// tryConfig writes the config as try runs it (unavailable targets out,
// provider APIs pointed at the fakes, the state file set) and loads it the
// way serve does.
func tryConfig(doc *yaml.Node, work, statePath string, unavailable []console.Unavailable, apiBase map[string]string, source string) (*Config, error) {
	root := yamlRoot(doc)
	shortenWaits(yamlDeref(yamlValue(root, yamlKeyTargets)))
	yamlSetString(root, yamlKeyStatePath, statePath)
	yamlSetString(root, yamlKeyListen, "127.0.0.1:0") // unused: the bot gets a listener
	tm := yamlDeref(yamlValue(root, yamlKeyTargets))
	for _, u := range unavailable {
		yamlDelete(tm, u.Target)
	}
	if len(tm.Content) == 0 {
		return nil, fmt.Errorf("try: no target of %s can run here: %s", source, tryDescribeUnavailable(unavailable))
	}
	for name, base := range apiBase {
		t := yamlDeref(yamlValue(tm, name))
		for _, section := range []string{apikey.ProviderOpenAI, apikey.ProviderSendGrid} {
			if s := yamlDeref(yamlValue(t, section)); s != nil && s.Kind == yaml.MappingNode {
				yamlSetString(s, "api_base", base)
			}
		}
	}
	text, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("try: write the adjusted config: %w", err)
	}
	path := filepath.Join(work, "rotary-try.yaml")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		return nil, fmt.Errorf("try: write the adjusted config: %w", err)
	}
	cfg, err := loadValid(path)
	if err != nil {
		return nil, fmt.Errorf("try: the config adjusted for try (from %s) is not valid; this is a bug in rotary try: %w", source, err)
	}
	return cfg, nil
}

// shortenWaits caps the jwt kind's token_lifetime, which an ordinary
// rotation waits out before its outcome, at tryTokenLifetime, so the
// rotation finishes while someone watches. (The follow-up that removes the
// old public key keeps its grace period; its "Run now" button runs it.)
func shortenWaits(targets *yaml.Node) {
	if targets == nil || targets.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(targets.Content); i += 2 {
		t := yamlDeref(targets.Content[i+1])
		if k := yamlDeref(yamlValue(t, "kind")); t == nil || t.Kind != yaml.MappingNode || k == nil || k.Value != kindJWT {
			continue
		}
		if v := yamlDeref(yamlValue(t, "token_lifetime")); v != nil {
			if d, err := time.ParseDuration(v.Value); err == nil && d <= tryTokenLifetime {
				continue
			}
		}
		yamlSetString(t, "token_lifetime", tryTokenLifetime.String())
	}
}

func tryDescribeUnavailable(us []console.Unavailable) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.Target + " (" + u.Reason + ")"
	}
	return strings.Join(parts, "; ")
}

// tryGetenv is the bot's environment in try mode: the generated
// credentials and endpoints, a few real variables passed through, and
// nothing else (no real credential of the caller's reaches the demo).
func tryGetenv(real func(string) string, set map[string]string, pass []string) func(string) string {
	return func(k string) string {
		if v, ok := set[k]; ok {
			return v
		}
		if slices.Contains(pass, k) {
			return real(k)
		}
		return ""
	}
}

func tryRandomHex(n int) string { return hex.EncodeToString(tryRandomBytes(n)) }

// tryListenConsole listens on 127.0.0.1:port; when the default port is taken,
// on any free port, with a note saying so.
func tryListenConsole(port int, given bool) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err == nil {
		return ln, "", nil
	}
	if given {
		return nil, "", fmt.Errorf("try: listen on 127.0.0.1:%d: %w (choose another with --port, or --port 0 for any free port)", port, err)
	}
	ln, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err2 != nil {
		return nil, "", fmt.Errorf("try: listen on 127.0.0.1: %w", errors.Join(err, err2))
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return ln, fmt.Sprintf("port %d is in use, so the console is on %s", port, p), nil
}

func printTryBanner(w io.Writer, url, note, source, state string, tempState bool, unavailable []console.Unavailable, realKube, realGSM bool) {
	fmt.Fprintf(w, "rotary try is running: open %s\n", url)
	if note != "" {
		fmt.Fprintf(w, "  (%s)\n", note)
	}
	fmt.Fprintf(w, "  config:    %s\n", source)
	parts := []string{"Slack (this console)", "provider APIs"}
	if !realGSM {
		parts = append(parts, "Secret Manager")
	}
	if !realKube {
		parts = append(parts, "Kubernetes")
	}
	fmt.Fprintf(w, "  SIMULATED: %s\n", strings.Join(parts, ", "))
	if realGSM {
		fmt.Fprintf(w, "  real:      Secret Manager at %s\n", envGSMEmulator)
	}
	if realKube {
		fmt.Fprintf(w, "  real:      Kubernetes from %s\n", envKubeconfig)
	}
	for _, u := range unavailable {
		fmt.Fprintf(w, "  not here:  %s: %s\n", u.Target, u.Reason)
	}
	if tempState {
		fmt.Fprintf(w, "  state:     %s (removed on exit; --state FILE keeps it)\n", state)
	} else {
		fmt.Fprintf(w, "  state:     %s\n", state)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

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

// tryUnavailableReason says why the simulation cannot play a kind, or "".
func tryUnavailableReason(kind string) string {
	switch kind {
	case kindDatabase:
		return "needs a PostgreSQL server, which the simulation does not have. Run `rotary serve` against a real one; the database rotator's own tests use a local server (test/services.sh)."
	case kindRedis:
		return "needs a Redis server (redis-server), which the simulation does not have. Run `rotary serve` against a real one; the redis rotator's own tests use a local server (test/services.sh)."
	}
	return ""
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

// trySeeds is what the simulated platform starts with: Kubernetes objects
// (each once, however many targets name it) and Secret Manager secrets
// with their first value.
type trySeeds struct {
	objs, ess []runtime.Object
	seen      map[string]bool
	gsm       []gsmSeed
}

type gsmSeed struct{ name, value string }

func newTrySeeds() *trySeeds { return &trySeeds{seen: map[string]bool{}} }

func (s *trySeeds) add(list *[]runtime.Object, key string, obj runtime.Object) {
	if !s.seen[key] {
		s.seen[key] = true
		*list = append(*list, obj)
	}
}

func (s *trySeeds) addSecretManager(name, value string) {
	if !s.seen["gsm/"+name] {
		s.seen["gsm/"+name] = true
		s.gsm = append(s.gsm, gsmSeed{name: name, value: value})
	}
}

func (s *trySeeds) deployment(ns, name string) {
	labels := map[string]string{"app": name}
	s.add(&s.objs, "deploy/"+ns+"/"+name, kubesim.NewDeployment(ns, name, tryReplicas, labels))
	for i := range tryReplicas {
		pod := kubesim.NewRunningPod(ns, name+"-sim-"+strconv.Itoa(i), labels)
		// Ready, as a replica of a finished rollout is (the jwt kind's
		// session invalidation runs in a ready pod).
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
		}
		s.add(&s.objs, "pod/"+ns+"/"+pod.Name, pod)
	}
}

func (s *trySeeds) secret(ns, name string, data map[string][]byte) {
	s.add(&s.objs, "secret/"+ns+"/"+name, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	})
}

func (s *trySeeds) externalSecret(ns, name string) {
	s.add(&s.ess, "es/"+ns+"/"+name, kubesim.NewExternalSecret(ns, name, "1h"))
}

// target seeds what one target names in one environment: its deployments
// with ready pods, its ExternalSecret, and per kind the secret it rotates,
// holding a made-up value of the right shape.
func (s *trySeeds) target(t tryTarget, env string) error {
	ns := tryExpand(t.Namespace, env)
	if ns == "" {
		return nil
	}
	for _, d := range t.Deployments {
		s.deployment(ns, tryExpand(d, env))
	}
	if es := tryExpand(t.ExternalSecret, env); es != "" {
		s.externalSecret(ns, es)
	}
	smName := ""
	if t.SecretManager.Project != "" && t.SecretManager.Secret != "" {
		smName = gsm.SecretName(tryExpand(t.SecretManager.Project, env), tryExpand(t.SecretManager.Secret, env))
	}
	switch t.Kind {
	case kindAPIKey:
		if smName != "" {
			s.addSecretManager(smName, "SIMULATED-"+t.Name+"-"+env+"-"+tryRandomHex(trySecretBytes))
		}
	case kindEncryption:
		key := cmp.Or(t.KeyName, defaultEncryptionKeyName)
		s.secret(ns, tryExpand(t.Secret, env), map[string][]byte{key: []byte(base64.StdEncoding.EncodeToString(tryRandomBytes(32)))})
	case kindJWT:
		return s.jwt(t, env, ns, smName)
	default:
		// A kind the simulation has no model of gets the objects its
		// settings name, holding a made-up value.
		if sec := tryExpand(t.Secret, env); sec != "" {
			s.secret(ns, sec, map[string][]byte{cmp.Or(t.KeyName, "value"): []byte("SIMULATED-" + tryRandomHex(trySecretBytes))})
		}
		if smName != "" {
			s.addSecretManager(smName, "SIMULATED-"+t.Name+"-"+env+"-"+tryRandomHex(trySecretBytes))
		}
	}
	return nil
}

// jwt seeds the jwt kind's Secret with a real key pair (the rotation reads
// the current public key to keep it as the old one), its deployment, and,
// with backend secret_manager, the Secret Manager secret holding the keys
// as a JSON object and the ExternalSecret that extracts it.
func (s *trySeeds) jwt(t tryTarget, env, ns, smName string) error {
	names := struct{ private, public, keyID string }{"JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "JWT_KEY_ID"}
	if k := t.Keys; k != nil {
		names.private, names.public, names.keyID = cmp.Or(k.Private, names.private), cmp.Or(k.Public, names.public), cmp.Or(k.KeyID, names.keyID)
	}
	key, err := rsa.GenerateKey(rand.Reader, seedKeyBits)
	if err != nil {
		return fmt.Errorf("generate a key pair: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode the private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode the public key: %w", err)
	}
	data := map[string][]byte{
		names.private: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		names.public:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		names.keyID:   []byte(hex.EncodeToString(tryRandomBytes(keyIDBytes))),
	}
	s.deployment(ns, tryExpand(cmp.Or(t.Deployment, defaultJWTDeployment), env))
	s.secret(ns, tryExpand(cmp.Or(t.Secret, defaultJWTSecret), env), data)
	if t.Backend == "secret_manager" && smName != "" {
		obj := map[string]string{}
		for k, v := range data {
			obj[k] = string(v)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode the keys: %w", err)
		}
		s.addSecretManager(smName, string(b))
		if es := tryExpand(t.SecretManager.ExternalSecret, env); es != "" {
			s.externalSecret(ns, es)
		}
	}
	return nil
}

func tryRandomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return b
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

// lines describe the platform for the page.
func (p *tryPlatform) lines(realKube, realGSM bool, getenv func(string) string) []string {
	out := []string{"Slack: this page. It serves the Web API the bot calls and posts signed commands, clicks and modal submissions to the bot's real /slack endpoints."}
	if realGSM {
		out = append(out, "Secret Manager: REAL, the emulator at "+getenv(envGSMEmulator)+" ("+envGSMEmulator+").")
	} else {
		out = append(out, fmt.Sprintf("Secret Manager: simulated in-process over real gRPC, with %d secrets holding made-up values.", p.gsmCount))
	}
	if realKube {
		out = append(out, "Kubernetes: REAL, the cluster of "+envKubeconfig+"="+getenv(envKubeconfig)+".")
	} else {
		out = append(out, fmt.Sprintf("Kubernetes: simulated (client-go fakes with kubesim's Deployment, External Secrets and Job controllers); each controller step takes %s, so rollouts visibly progress.", p.delay),
			"Commands run in pods (the emergency session invalidation) are simulated: they run nothing and exit 0.")
	}
	if p.jwt {
		out = append(out, fmt.Sprintf("jwt targets wait out an access-token lifetime of at most %s here (try shortens token_lifetime), so a rotation finishes while you watch.", tryTokenLifetime))
	}
	out = append(out,
		"OpenAI and SendGrid admin APIs: simulated; every key they issue is made up. Stripe keys are pasted by a person: paste anything.",
		"Credentials (the Slack signing secret and token, provider admin keys): generated for this run; none of yours is read.")
	return out
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

// tryPacedWatchReactor serves cluster-wide watches (the simulated
// controllers' view: rotary itself watches single objects in a namespace)
// with every event delayed, so each controller step takes that long.
func tryPacedWatchReactor(tracker k8stesting.ObjectTracker, delay time.Duration) k8stesting.WatchReactionFunc {
	return func(action k8stesting.Action) (bool, watch.Interface, error) {
		if action.GetNamespace() != "" {
			return false, nil, nil
		}
		var opts metav1.ListOptions
		if wa, ok := action.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := tracker.Watch(action.GetResource(), "", opts)
		if err != nil {
			return true, nil, err
		}
		return true, tryPaceWatch(w, delay), nil
	}
}

// tryPacedWatch passes a watch's events on, each delay after it arrived, in
// order. It reads its source at once into a queue: the fakes' watchers
// panic when their buffer is full.
type tryPacedWatch struct {
	in   watch.Interface
	out  chan watch.Event
	stop chan struct{}
	once sync.Once
}

func tryPaceWatch(in watch.Interface, delay time.Duration) *tryPacedWatch {
	p := &tryPacedWatch{in: in, out: make(chan watch.Event), stop: make(chan struct{})}
	go p.run(delay)
	return p
}

func (p *tryPacedWatch) Stop() {
	p.once.Do(func() {
		close(p.stop)
		p.in.Stop()
	})
}

func (p *tryPacedWatch) ResultChan() <-chan watch.Event { return p.out }

func (p *tryPacedWatch) run(delay time.Duration) {
	defer close(p.out)
	type pending struct {
		ev  watch.Event
		due time.Time
	}
	var queue []pending
	src := p.in.ResultChan()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for src != nil || len(queue) > 0 {
		var send chan<- watch.Event
		var next watch.Event
		var wake <-chan time.Time
		if len(queue) > 0 {
			if wait := time.Until(queue[0].due); wait > 0 {
				timer.Reset(wait)
				wake = timer.C
			} else {
				send, next = p.out, queue[0].ev
			}
		}
		select {
		case ev, ok := <-src:
			if !ok {
				src = nil
				continue
			}
			queue = append(queue, pending{ev: ev, due: time.Now().Add(delay)})
		case send <- next:
			queue = queue[1:]
		case <-wake:
		case <-p.stop:
			return
		}
	}
}

// tryChannels are the config's channels, named for the page.
func tryChannels(cfg *Config) []console.Channel {
	out := []console.Channel{{
		ID: cfg.RequestChannel, Name: "secret-rotations",
		Purpose: "The config's request_channel (" + cfg.RequestChannel + "): requests, approvals and each rotation's thread.",
	}}
	if cfg.AnnounceChannel != "" {
		out = append(out, console.Channel{
			ID: cfg.AnnounceChannel, Name: "platform-announcements",
			Purpose: "The config's announce_channel (" + cfg.AnnounceChannel + "): a line when a rotation starts and when it ends.",
		})
	}
	return out
}

// Synthetic Slack IDs for the people the config does not name.
const (
	idRequester  = "U0TRYREQUESTER"
	idApprover   = "U0TRYAPPROVER"
	idOutsider   = "U0TRYOUTSIDER"
	idResponder  = "U0TRYRESPONDER"
	idGroupBase  = "U0TRYGROUPMEMBER"
	roleApprover = "approver"
)

// tryCandidate is someone the config authorises in the default
// environment: a listed user, or a member the console gives a listed group.
type tryCandidate struct {
	id, group string
}

// tryPeople derives the people of the page from the config's approver sets
// in its default environment: the requester is an approver too when the
// config names enough people (so the refusal shows the two-person rule, not
// a missing permission), the two approvers are a listed user and a member
// of a listed user group where possible, and the responder comes from the
// emergency section (a break-glass user first). It returns the people and
// every user group the config names, with the members the console gives it.
func tryPeople(cfg *Config) ([]console.Person, map[string][]string) {
	env := cfg.DefaultEnv
	var users, groupsOrder []string
	counts := map[string]int{}
	groups := map[string][]string{}
	knowGroup := func(g string) {
		if _, ok := groups[g]; !ok {
			groups[g] = []string{}
		}
	}
	for _, t := range cfg.Targets {
		for e, ap := range t.Approvers {
			for _, g := range ap.Groups {
				knowGroup(g)
				if e == env {
					if counts[g] == 0 {
						groupsOrder = append(groupsOrder, g)
					}
					counts[g]++
				}
			}
			if e != env {
				continue
			}
			for _, u := range ap.Users {
				if counts[u] == 0 {
					users = append(users, u)
				}
				counts[u]++
			}
		}
	}
	em := cfg.Emergency
	for _, g := range slices.Concat(em.Responders.Groups, em.BreakGlass.EscalateTo.Groups) {
		knowGroup(g)
	}
	byCount := func(ids []string) {
		slices.SortStableFunc(ids, func(a, b string) int { return counts[b] - counts[a] })
	}
	byCount(users)
	byCount(groupsOrder)
	var pool []tryCandidate
	for _, u := range users {
		pool = append(pool, tryCandidate{id: u})
	}
	for i, g := range groupsOrder {
		pool = append(pool, tryCandidate{id: idGroupBase + strconv.Itoa(i+1), group: g})
	}
	take := func(fallback string) tryCandidate {
		if len(pool) == 0 {
			return tryCandidate{id: fallback}
		}
		c := pool[0]
		pool = pool[1:]
		return c
	}
	requester := tryCandidate{id: idRequester}
	if len(pool) >= 3 {
		requester = take(idRequester)
	}
	first, second := take(idApprover+"1"), take(idApprover+"2")
	used := []string{requester.id, first.id, second.id}
	responder := tryCandidate{id: idResponder}
	var candidates []tryCandidate
	if em.BreakGlass.Enabled {
		for _, u := range em.BreakGlass.Users {
			candidates = append(candidates, tryCandidate{id: u})
		}
	}
	for _, u := range em.Responders.Users {
		candidates = append(candidates, tryCandidate{id: u})
	}
	if len(em.Responders.Groups) > 0 {
		candidates = append(candidates, tryCandidate{id: idResponder, group: em.Responders.Groups[0]})
	}
	for _, c := range candidates {
		if !slices.Contains(used, c.id) {
			responder = c
			break
		}
	}
	for _, c := range []tryCandidate{requester, first, second, responder} {
		if c.group != "" && !slices.Contains(groups[c.group], c.id) {
			groups[c.group] = append(groups[c.group], c.id)
		}
	}

	policy := cfg.Policy()
	approves := func(c tryCandidate) []string {
		var in []string
		if c.group != "" {
			in = []string{c.group}
		}
		var out []string
		for _, t := range cfg.Targets {
			if ap, ok := policy.Targets[t.Name].Approvers[env]; ok && ap.Allows(c.id, in) {
				out = append(out, t.Name)
			}
		}
		return out
	}
	how := func(c tryCandidate) string {
		if c.group != "" {
			return "as a member of user group " + c.group + ", which the config lists (this workspace makes them a member)"
		}
		return "listed by ID in the config"
	}
	approverAbout := func(c tryCandidate) string {
		ts := approves(c)
		if len(ts) == 0 {
			return "The config names no further approver for " + env + ", so this person is refused like anyone outside the approver sets."
		}
		return "Approver for " + strings.Join(ts, ", ") + " in " + env + ", " + how(c) + "."
	}
	reqAbout := "Opens the requests. Not an approver."
	if ts := approves(requester); len(ts) > 0 {
		reqAbout = "Opens the requests. Also an approver for " + strings.Join(ts, ", ") + " in " + env + " (" + how(requester) +
			"), yet rotary refuses to let them approve their own request: a second person must."
	}
	var resp []string
	if em.Responders.Allows(responder.id, tryGroupsOf(groups, responder.id)) {
		resp = append(resp, "An emergency responder (emergency.responders, "+how(responder)+"): may approve or deny emergency requests.")
	}
	if em.BreakGlass.Enabled && slices.Contains(em.BreakGlass.Users, responder.id) {
		resp = append(resp, "May break glass (emergency.break_glass): their emergency rotations start at once, and a second person reviews them afterwards.")
	}
	respAbout := strings.Join(resp, " ")
	if respAbout == "" {
		respAbout = "On call for emergencies. This config names no emergency responders, so rotary treats them like anyone else."
	}
	secondRole := roleApprover
	if second.group != "" {
		secondRole = roleApprover + " (group)"
	}
	return []console.Person{
		{ID: requester.id, Name: "Riya", Role: "requester", About: reqAbout},
		{ID: first.id, Name: "Arun", Role: roleApprover, About: approverAbout(first)},
		{ID: second.id, Name: "Bea", Role: secondRole, About: approverAbout(second)},
		{ID: idOutsider, Name: "Otto", Role: "outsider", About: "In the channel, but in no approver set: rotary refuses his approvals and denials."},
		{ID: responder.id, Name: "Rosa", Role: "responder", About: respAbout},
	}, groups
}

// tryGroupsOf lists the groups that have user as a member.
func tryGroupsOf(groups map[string][]string, user string) []string {
	var out []string
	for g, ms := range groups {
		if slices.Contains(ms, user) {
			out = append(out, g)
		}
	}
	return out
}

// tryGuide is the page's walk-through, with the config's own names.
func tryGuide(cfg *Config, targets []tryTarget, people []console.Person) []string {
	target, manual, jwt := "", "", false
	for _, t := range cfg.Targets {
		if t.Name == apikey.ProviderOpenAI || (target == "" && t.Kind == kindAPIKey) {
			target = t.Name
		}
		jwt = jwt || t.Name == commands.TargetJWT
	}
	for _, t := range targets {
		if manual == "" && t.Kind == kindAPIKey && t.Provider == apikey.ProviderManual {
			manual = t.Name
		}
	}
	if target == "" && len(cfg.Targets) > 0 {
		target = cfg.Targets[0].Name
	}
	req, appr, outsider, responder := people[0].Name, people[1].Name, people[3].Name, people[4].Name
	out := []string{
		"As " + req + " (requester), type /rotate " + target + ` --reason "quarterly" and press Enter.`,
		"Click Approve as " + req + ": rotary refuses, because a second person must approve.",
		"Switch to " + appr + " (approver) and click Approve.",
		"Watch the steps arrive in the request's thread; the announcements channel gets the start and the outcome.",
	}
	also := "Also try Deny (it asks for a reason), /rotate list, and " + outsider + " approving"
	if manual != "" {
		also += ", and /rotate " + manual + " (the requester pastes a key)"
	}
	out = append(out, also+".")
	if jwt {
		out = append(out, `An emergency: /rotate-jwt --emergency --reason "key leaked" alerts the whole channel; `+responder+" (responder) or an approver approves it.")
	}
	return out
}
