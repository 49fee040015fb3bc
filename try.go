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
//
// This file is the command and its wiring (flags, start, shutdown);
// try_config.go adjusts the config, try_platform.go, try_seed.go and
// try_pacedwatch.go are the simulated platform, and try_page.go is what the
// console page shows.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aivo-platform/rotary/bot"
	"github.com/aivo-platform/rotary/bot/console"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Defaults and bounds of `rotary try`.
const (
	// tryDefaultPort is easy to remember and to bookmark; when it is taken
	// and --port was not given, any free port is used instead.
	tryDefaultPort = 8780
	// tryDefaultSimDelay is how long each simulated controller step takes:
	// long enough to watch a rollout progress, short enough not to bore.
	tryDefaultSimDelay = 700 * time.Millisecond
	maxSimDelay        = time.Minute
	// trySecretBytes is the randomness of generated secrets.
	trySecretBytes = 24
	// tryHTTPTimeout bounds the bot's calls to the platform and Slack.
	tryHTTPTimeout = 30 * time.Second
	// tryDefaultLogLevel keeps the terminal quiet; ROTARY_LOG_LEVEL overrides.
	tryDefaultLogLevel = slog.LevelWarn
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

	env := appEnv{
		getenv:   tryBotGetenv(o.getenv, signing, con, plat, realGSM),
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

	return serveTry(ctx, a, con, conLn)
}

// tryBotGetenv is the bot's environment: the console's Slack signing
// secret, token and Web API, the simulated platform's Secret Manager
// address and generated credentials, and the real variables try passes on
// (see tryGetenv).
func tryBotGetenv(getenv func(string) string, signing string, con *console.Console, plat *tryPlatform, realGSM bool) func(string) string {
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
	return tryGetenv(getenv, set, pass)
}

// serveTry runs the bot and the console until ctx ends or either of them
// stops, which stops the other, and returns both their errors.
func serveTry(ctx context.Context, a *app, con *console.Console, conLn net.Listener) error {
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

func tryRandomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return b
}
