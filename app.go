package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/apikey"
	"github.com/aivo-platform/rotary/rotators/database"
	"github.com/aivo-platform/rotary/rotators/encryption"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/jwt"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/redis"
)

// kinds lists every rotator kind rotary knows. Adding a kind is one line here.
func kinds() []rotators.Kind {
	return []rotators.Kind{
		apikey.Kind(),
		database.Kind(),
		encryption.Kind(),
		jwt.Kind(),
		redis.Kind(),
	}
}

// Environment variables rotary reads. Credentials may also come from a file
// named by the variable with a _FILE suffix (Kubernetes Secret volumes).
const (
	envSigningSecret = "SLACK_SIGNING_SECRET"
	envBotToken      = "SLACK_BOT_TOKEN"
	envSlackAPIURL   = "SLACK_API_URL"
	envGSMEmulator   = "SECRETMANAGER_EMULATOR_HOST"
	envKubeconfig    = "KUBECONFIG"
	envLogLevel      = "ROTARY_LOG_LEVEL"
)

// Named timeouts of the process.
const (
	shutdownTimeout   = 30 * time.Second
	readHeaderTimeout = 5 * time.Second
	// writeTimeout is above Slack's 3 s ack budget so a slow handler is cut
	// by its own context first.
	writeTimeout = 10 * time.Second
	idleTimeout  = 60 * time.Second
)

const slackSetupHelp = `Create the Slack app from manifest.yaml: https://api.slack.com/apps → Create New App → From an app manifest → paste manifest.yaml (replace rotary.example.com with your host) → Install to Workspace. Then:
  export %s=...   # Basic Information → App Credentials → Signing Secret
  export %s=...   # OAuth & Permissions → Bot User OAuth Token (xoxb-...)
(or put each in a file and set %s_FILE / %s_FILE to its path)`

// missingCredential explains exactly what is missing (the lookup's own
// error names the variable or file and never a value) and how to get it.
func missingCredential(err error) error {
	return fmt.Errorf("%w\n"+slackSetupHelp, err, envSigningSecret, envBotToken, envSigningSecret, envBotToken)
}

// appEnv is everything the process takes from its surroundings; tests
// replace what they need (clock, IDs, clients).
type appEnv struct {
	getenv func(string) string
	now    func() time.Time
	newID  func() string
	rand   io.Reader
	http   *http.Client
	log    *slog.Logger
	// kube, when set, is used instead of KUBECONFIG / in-cluster config.
	kube *kube.Client
	// listener, when set, is served instead of listening on the config's address.
	listener net.Listener
	// adminListener, when set, serves the admin endpoints; when listener is
	// set and this is not, they are off (tests run many apps at once).
	adminListener net.Listener
	// after is the executor's wait between step attempts (tests: immediate).
	after func(time.Duration) <-chan time.Time
}

func defaultEnv(getenv func(string) string, stdout io.Writer) appEnv {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(getenv(envLogLevel)))
	return appEnv{
		getenv: getenv,
		now:    time.Now,
		newID:  newRequestID,
		rand:   rand.Reader,
		http:   &http.Client{Timeout: 30 * time.Second},
		log:    slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
}

// app is an assembled rotary.
type app struct {
	cfg      *Config
	env      appEnv
	store    *boltstore.Store
	gsm      *gsm.Client
	service  *approvals.Service
	executor *executor.Executor
	bot      *bot.Bot
	handler  http.Handler
	ready    *readiness
	metrics  *metrics
}

func serve(ctx context.Context, path string, stdout io.Writer, getenv func(string) string) error {
	cfg, err := loadValid(path)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, defaultEnv(getenv, stdout))
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// loadValid loads a config and turns its problems into one error.
func loadValid(path string) (*Config, error) {
	cfg, problems, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if _, more := cfg.Build(kinds(), rotators.Deps{}); len(more) > 0 {
		problems = append(problems, more...)
	}
	if len(problems) > 0 {
		return nil, problemsError(path, problems)
	}
	return cfg, nil
}

func problemsError(path string, problems []rotators.Problem) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d problem(s):", path, len(problems))
	for _, p := range problems {
		fmt.Fprintf(&b, "\n  %s", p)
	}
	b.WriteString("\n(run `rotary config check --config " + path + "` after fixing)")
	return errors.New(b.String())
}

// newApp assembles config → store → clients → services → server.
func newApp(ctx context.Context, cfg *Config, env appEnv) (_ *app, err error) {
	creds := newEnvCredentials(env.getenv, os.ReadFile)
	// Credentials first: without them nothing else is worth opening.
	signing, err := creds.Lookup(envSigningSecret)
	if err != nil {
		return nil, missingCredential(err)
	}
	token, err := creds.Lookup(envBotToken)
	if err != nil {
		return nil, missingCredential(err)
	}

	a := &app{cfg: cfg, env: env, ready: &readiness{}, metrics: newMetrics()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.store, err = boltstore.Open(cfg.StatePath, boltstore.Options{Now: env.now, Log: env.log})
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}

	slackOpts := []slack.Option{slack.OptionHTTPClient(env.http)}
	if u := env.getenv(envSlackAPIURL); u != "" {
		slackOpts = append(slackOpts, slack.OptionAPIURL(strings.TrimSuffix(u, "/")+"/"))
	}
	sc := slack.New(string(token.Reveal()), slackOpts...)

	a.gsm, err = gsm.Dial(ctx, env.getenv(envGSMEmulator))
	if err != nil {
		return nil, fmt.Errorf("connect to Secret Manager (set GOOGLE_APPLICATION_CREDENTIALS or use Workload Identity; %s=host:port for an emulator): %w", envGSMEmulator, err)
	}
	kc := env.kube
	if kc == nil {
		rc, err := kube.LoadRESTConfig(env.getenv(envKubeconfig))
		if err != nil {
			return nil, fmt.Errorf("connect to Kubernetes (set %s, or run in a cluster): %w", envKubeconfig, err)
		}
		if kc, err = kube.NewForConfig(rc, kube.Options{Now: env.now, Log: env.log}); err != nil {
			return nil, fmt.Errorf("connect to Kubernetes: %w", err)
		}
	}

	rots, problems := cfg.Build(kinds(), rotators.Deps{
		SecretManager: a.gsm, Kube: kc, HTTP: env.http, Creds: creds, Now: env.now, Rand: env.rand, Log: env.log,
	})
	if len(problems) > 0 {
		return nil, problemsError("config", problems)
	}
	policy := cfg.Policy()

	var groups []string
	for _, t := range policy.Targets {
		for _, ap := range t.Approvers {
			groups = append(groups, ap.Groups...)
		}
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)

	// The service wakes the executor and the executor reports to the
	// service; the closure breaks the construction cycle.
	var ex *executor.Executor
	a.service = approvals.NewService(approvals.Deps{
		Store:   a.store,
		Policy:  policy,
		Dir:     bot.NewDirectory(sc, groups, env.now),
		Starter: wakeFunc(func(id string) { ex.Wake(id) }),
		Now:     env.now,
		NewID:   env.newID,
		Log:     env.log,
	})
	ex = executor.New(executor.Config{
		Requests: a.service,
		Journal:  a.store,
		Rotators: rots,
		Now:      env.now,
		Log:      env.log,
		Observer: a.metrics,
		After:    env.after,
		StepDone: faultKillAfterStep(env.getenv(envFaultKillAfterStep), env.log),
	})
	a.executor = ex

	a.bot = bot.New(bot.Config{
		SigningSecret:   signing,
		Slack:           sc,
		Approvals:       a.service,
		Runs:            a.store,
		Prompts:         a.executor,
		FollowUps:       a.executor,
		Outbox:          a.store,
		RequestChannel:  cfg.RequestChannel,
		AnnounceChannel: cfg.AnnounceChannel,
		Hints:           hints(policy),
		Notes: func(r *approvals.Request) []string {
			if rot, ok := rots[r.Target]; ok {
				return rot.Plan(rotators.Spec{RequestID: r.ID, Target: r.Target, Env: r.Env, Emergency: r.Emergency, RollbackOf: r.RollbackOf}).Notes
			}
			return nil
		},
		Now:    env.now,
		Log:    env.log,
		NewRef: env.newID,
	})
	a.handler = a.routes()
	return a, nil
}

func hints(p approvals.Policy) blocks.Hints {
	h := blocks.Hints{Envs: map[string][]string{}}
	for name, t := range p.Targets {
		h.Targets = append(h.Targets, name)
		h.Envs[name] = t.Envs()
	}
	slices.Sort(h.Targets)
	return h
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	a.bot.Routes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("GET /readyz", a.ready)
	mux.Handle("GET /metrics", a.metrics.handler(a.store))
	return a.metrics.instrument(mux)
}

// run serves until ctx ends, then shuts down in order: stop taking
// requests, let in-flight steps reach a journaled point, flush what the
// outbox can, close the store.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	ln := a.env.listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Listen); err != nil {
			return fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
		}
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(a.env.log.Handler(), slog.LevelWarn),
	}
	a.env.log.InfoContext(ctx, "rotary listening", "addr", ln.Addr().String(), "state", a.cfg.StatePath)
	adm, err := a.adminListener()
	if err != nil {
		_ = ln.Close()
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	wg.Go(func() {
		if err := a.executor.Run(bg); err != nil {
			errs <- fmt.Errorf("executor: %w", err)
		}
	})
	wg.Go(func() {
		if err := a.bot.RunOutbox(bg); err != nil {
			errs <- fmt.Errorf("outbox: %w", err)
		}
	})
	wg.Go(func() { a.sweep(bg) })
	var asrv *http.Server
	if adm != nil {
		asrv = &http.Server{Handler: a.adminRoutes(), ReadHeaderTimeout: readHeaderTimeout, WriteTimeout: writeTimeout}
		a.env.log.InfoContext(ctx, "admin endpoints listening (loopback only)", "addr", adm.Addr().String())
		wg.Go(func() {
			if err := asrv.Serve(adm); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("admin server: %w", err)
			}
		})
	}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http server: %w", err)
		}
	})
	a.ready.set(true)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	a.ready.set(false)
	a.env.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.env.log.Warn("http shutdown", "err", err)
	}
	if asrv != nil {
		if err := asrv.Shutdown(sctx); err != nil {
			a.env.log.Warn("admin http shutdown", "err", err)
		}
	}
	stopBG()
	wg.Wait()
	a.bot.Wait()
	return runErr
}

// adminListener is the admin endpoints' listener, or nil when they are off.
func (a *app) adminListener() (net.Listener, error) {
	if a.env.adminListener != nil {
		return a.env.adminListener, nil
	}
	if a.env.listener != nil || a.cfg.AdminListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.cfg.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s (set admin_listen, or \"\" to turn it off): %w", a.cfg.AdminListen, err)
	}
	return ln, nil
}

// sweep runs sweepOnce every SweepInterval.
func (a *app) sweep(ctx context.Context) {
	t := time.NewTicker(a.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sweepOnce(ctx)
		}
	}
}

// sweepOnce expires pending requests past their TTL and escalates
// break-glass rotations whose review is overdue.
func (a *app) sweepOnce(ctx context.Context) {
	if _, err := a.service.ExpireDue(ctx); err != nil && ctx.Err() == nil {
		a.env.log.ErrorContext(ctx, "expiry sweep failed", "err", err)
	}
	if _, err := a.service.EscalateOverdueReviews(ctx); err != nil && ctx.Err() == nil {
		a.env.log.ErrorContext(ctx, "review escalation sweep failed", "err", err)
	}
}

func (a *app) close() {
	if a.gsm != nil {
		_ = a.gsm.Close()
	}
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			a.env.log.Warn("close state file", "err", err)
		}
	}
}

// readiness is /readyz: ready once every loop runs, not while shutting down.
type readiness struct {
	mu sync.Mutex
	ok bool
}

func (r *readiness) set(ok bool) { r.mu.Lock(); r.ok = ok; r.mu.Unlock() }

func (r *readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	ok := r.ok
	r.mu.Unlock()
	if !ok {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// requestIDAlphabet avoids look-alikes (0/O, 1/I) so IDs read well aloud.
const requestIDAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

// newRequestID returns "R-" and 8 random characters (40 bits).
func newRequestID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the runtime guarantees it does not
	}
	out := []byte("R-")
	for _, c := range b {
		out = append(out, requestIDAlphabet[int(c)%len(requestIDAlphabet)])
	}
	return string(out)
}

// wakeFunc adapts a function to approvals.Starter.
type wakeFunc func(id string)

func (f wakeFunc) Wake(id string) { f(id) }

// envFaultKillAfterStep names a step after whose journaled completion the
// process kills itself with SIGKILL. It exists only for the crash/resume
// end-to-end suite (test/e2e), which restarts rotary on the same bbolt file;
// it is logged loudly so that nobody runs production with it by accident.
const envFaultKillAfterStep = "ROTARY_FAULT_KILL_AFTER_STEP"

func faultKillAfterStep(step string, log *slog.Logger) func(requestID, step string) {
	if step == "" {
		return nil
	}
	log.Warn("FAULT INJECTION ENABLED: the process will SIGKILL itself after a step", "env", envFaultKillAfterStep, "step", step)
	return func(requestID, done string) {
		if done != step {
			return
		}
		log.Warn("fault injection: killing the process", "request_id", requestID, "step", done)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
