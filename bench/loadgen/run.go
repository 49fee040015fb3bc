package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and defaults of a run.
const (
	envSigningSecret = "SLACK_SIGNING_SECRET"
	// maxDuration and maxCount bound any run, whatever the flags say.
	maxDuration = 10 * time.Minute
	maxCount    = 10_000_000
	// requestTimeout bounds one request; Slack itself gives up after 3 s.
	requestTimeout = 10 * time.Second
	// maxResponseBytes bounds what is read of an answer.
	maxResponseBytes = 1 << 20
	// ApproverUser and RequesterUser match the config `loadgen config` writes.
	approverUser  = "UAPPROVER"
	requesterUser = "UREQUESTER"
	benchChannel  = "C0BENCH"
	actionApprove = "rotary_approve"
)

// requestIDPattern finds the request ID in an "Opened ..." answer (rotary
// puts it in bold, Bolt plain).
var requestIDPattern = regexp.MustCompile(`R-[0-9A-Z]{4,}`)

// runOptions are the flags of `loadgen run`.
type runOptions struct {
	url         string
	scenario    string
	concurrency int
	duration    time.Duration
	count       int
	rate        float64
	targets     int
	envs        int
	ids         string
	label       string
	jsonOut     string
	pid         int
	secret      []byte
}

func runCmd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of the app (loopback only)")
	fs.StringVar(&o.scenario, "scenario", "commands", "commands (open+cancel cycles, one slot per worker), approvals (open N pending untimed, then time N approve clicks), list, status, help")
	fs.IntVar(&o.concurrency, "c", 16, "connections (one worker each)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "time bound of the timed phase")
	fs.IntVar(&o.count, "n", 100000, "count bound of the timed phase (approvals: the number of requests opened and approved)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second across all workers (0: as fast as answered)")
	fs.IntVar(&o.targets, "targets", 64, "targets in the config (bench00..)")
	fs.IntVar(&o.envs, "envs", 64, "environments per target (e00..)")
	fs.StringVar(&o.ids, "ids", "", "file of request IDs, one a line (status scenario)")
	fs.StringVar(&o.label, "label", "", "a name for this run in the output")
	fs.StringVar(&o.jsonOut, "json", "", "append the result as one JSON line to this file")
	fs.IntVar(&o.pid, "pid", 0, "the server's process ID: report its memory before and after the load (from /proc)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	o.secret = []byte(getenv(envSigningSecret))
	if len(o.secret) == 0 {
		return fmt.Errorf("%s is not set: export the signing secret the app under test verifies with", envSigningSecret)
	}
	if err := loopbackOnly(ctx, o.url); err != nil {
		return err
	}
	res, err := run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.String())
	if o.jsonOut != "" {
		return appendJSON(o.jsonOut, res)
	}
	return nil
}

func (o *runOptions) validate() error {
	switch {
	case o.concurrency < 1 || o.concurrency > 1024:
		return fmt.Errorf("-c %d: use 1 to 1024 connections", o.concurrency)
	case o.duration <= 0 || o.duration > maxDuration:
		return fmt.Errorf("-d %s: use a duration above 0 and at most %s", o.duration, maxDuration)
	case o.count < 1 || o.count > maxCount:
		return fmt.Errorf("-n %d: use 1 to %d requests", o.count, maxCount)
	case o.rate < 0:
		return fmt.Errorf("-rate %g: use 0 (unpaced) or a positive rate", o.rate)
	case o.scenario == "commands" && o.concurrency > o.targets*o.envs:
		return fmt.Errorf("-c %d: the commands scenario needs one slot per worker and the config has %d (-targets × -envs)", o.concurrency, o.targets*o.envs)
	case o.scenario == "approvals" && o.count > o.targets*o.envs:
		return fmt.Errorf("-n %d: the approvals scenario opens one request per slot and the config has %d (-targets × -envs)", o.count, o.targets*o.envs)
	case o.scenario == "status" && o.ids == "":
		return errors.New("the status scenario needs -ids FILE (loadgen seed writes one)")
	}
	switch o.scenario {
	case "commands", "approvals", "list", "status", "help":
		return nil
	}
	return fmt.Errorf("-scenario %q: use commands, approvals, list, status or help", o.scenario)
}

// loopbackOnly refuses any URL whose host is not, or does not resolve only
// to, a loopback address.
func loopbackOnly(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("-url %q: give an http URL such as http://127.0.0.1:8080", raw)
	}
	host := u.Hostname()
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("-url %q: resolve %s: %w", raw, host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-url %q: %s is not a loopback address; loadgen only loads 127.0.0.1/::1 (a benchmark must never hit a real host)", raw, ip)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("-url %q: %s has no address", raw, host)
	}
	return nil
}

// result is one run's figures.
type result struct {
	Label       string  `json:"label"`
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	Throughput  float64 `json:"throughput"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// FirstError is one example, to say what went wrong.
	FirstError string `json:"first_error,omitempty"`
	// Memory of the server (-pid), in KiB: resident before the load, peak
	// resident (VmHWM) after it, and the anonymous part (heap, stacks) of
	// each; the rest of RSS is the mapped binary.
	IdleRSSKiB   int `json:"idle_rss_kib,omitempty"`
	PeakRSSKiB   int `json:"peak_rss_kib,omitempty"`
	IdleAnonKiB  int `json:"idle_anon_kib,omitempty"`
	LoadedAnonKB int `json:"loaded_anon_kib,omitempty"`
}

// procStatus reads the KiB figures of /proc/PID/status.
func procStatus(pid int) (map[string]int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read the memory of process %d: %w", pid, err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.Atoi(f[0]); err == nil {
				out[k] = n
			}
		}
	}
	return out, nil
}

func (r result) String() string {
	s := fmt.Sprintf("%-10s %-9s c=%-3d n=%-7d err=%-5d %8.0f req/s  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms",
		r.Label, r.Scenario, r.Concurrency, r.Requests, r.Errors, r.Throughput, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
	if r.FirstError != "" {
		s += "\n  first error: " + r.FirstError
	}
	return s
}

func appendJSON(path string, r result) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	b, _ := json.Marshal(r) // plain struct: cannot fail
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// client sends signed requests over a pool of keep-alive connections.
type client struct {
	base   string
	secret []byte
	http   *http.Client
	// triggers numbers trigger_id: Slack gives every command and click a
	// fresh one, so no two real requests have the same body (and signature).
	triggers atomic.Int64
}

func newClient(base string, secret []byte, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &client{base: strings.TrimSuffix(base, "/"), secret: secret, http: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

// sign returns Slack's headers for body: X-Slack-Signature is "v0=" and the
// hex HMAC-SHA256 of "v0:<timestamp>:<body>" under the signing secret.
func sign(secret []byte, body string, now time.Time) http.Header {
	stamp := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("v0:" + stamp + ":" + body))
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", stamp)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

func (c *client) trigger() string {
	return fmt.Sprintf("%d.1.bench%d", time.Now().Unix(), c.triggers.Add(1))
}

// post sends one signed form and returns the status and body.
func (c *client) post(ctx context.Context, path, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("build request: %w", err)
	}
	req.Header = sign(c.secret, body, time.Now())
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("read answer of %s: %w", path, err)
	}
	return resp.StatusCode, string(b), nil
}

// command sends a slash command and returns the ephemeral text.
func (c *client) command(ctx context.Context, user, text string) (string, error) {
	body := url.Values{
		"token": {"bench-verification-token"}, "team_id": {"T0BENCH"}, "team_domain": {"bench"},
		"channel_id": {benchChannel}, "channel_name": {"rotations"}, "user_id": {user}, "user_name": {strings.ToLower(user)},
		"command": {"/rotate"}, "text": {text}, "api_app_id": {"A0BENCH"},
		"response_url": {"https://hooks.slack.invalid/commands/T0BENCH/1/x"}, "trigger_id": {c.trigger()},
	}.Encode()
	code, resp, err := c.post(ctx, "/slack/commands", body)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("/rotate %s: HTTP %d %.200s", text, code, resp)
	}
	var msg struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(resp), &msg); err != nil {
		return "", fmt.Errorf("/rotate %s: answer is not JSON: %.200s", text, resp)
	}
	return msg.Text, nil
}

// click sends a block_actions payload for one button.
func (c *client) click(ctx context.Context, user, actionID, value string) error {
	payload, _ := json.Marshal(map[string]any{ // plain maps of strings: cannot fail
		"type":       "block_actions",
		"team":       map[string]any{"id": "T0BENCH", "domain": "bench"},
		"user":       map[string]any{"id": user, "username": strings.ToLower(user), "team_id": "T0BENCH"},
		"api_app_id": "A0BENCH",
		"token":      "bench-verification-token",
		"trigger_id": c.trigger(),
		"channel":    map[string]any{"id": benchChannel, "name": "rotations"},
		"container":  map[string]any{"type": "message", "channel_id": benchChannel, "message_ts": "1700000000.000100"},
		"actions": []map[string]any{{
			"action_id": actionID, "block_id": "actions", "type": "button", "value": value,
			"text": map[string]any{"type": "plain_text", "text": "Approve"}, "action_ts": "1700000001.000200",
		}},
		"response_url": "https://hooks.slack.invalid/actions/T0BENCH/1/x",
	})
	code, resp, err := c.post(ctx, "/slack/interactions", url.Values{"payload": {string(payload)}}.Encode())
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("click %s %s: HTTP %d %.200s", actionID, value, code, resp)
	}
	return nil
}

// slot names the target and environment of slot i (as `loadgen config` writes them).
func slot(i, targets int) (target, env string) {
	return fmt.Sprintf("bench%02d", i%targets), fmt.Sprintf("e%02d", i/targets)
}

// recorder collects latencies and errors from the workers.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	errors    int
	first     string
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latencies = append(r.latencies, d)
	if err != nil {
		r.errors++
		if r.first == "" {
			r.first = err.Error()
		}
	}
}

// timed runs one operation and records it. An operation cut off by the
// run's own time bound is not counted: it is neither a result nor an error.
func (r *recorder) timed(ctx context.Context, op func() error) error {
	start := time.Now()
	err := op()
	if err != nil && ctx.Err() != nil {
		return err
	}
	r.add(time.Since(start), err)
	return err
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pacer hands out send times at a fixed rate (open loop: a late worker does
// not lower the rate others are asked to keep).
type pacer struct {
	start    time.Time
	interval time.Duration
	next     atomic.Int64
}

func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	at := p.start.Add(time.Duration(p.next.Add(1)-1) * p.interval)
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func run(ctx context.Context, o runOptions) (result, error) {
	c := newClient(o.url, o.secret, o.concurrency)
	var idle map[string]int
	if o.pid > 0 {
		var err error
		if idle, err = procStatus(o.pid); err != nil {
			return result{}, err
		}
	}
	var ids []string
	switch o.scenario {
	case "approvals":
		var err error
		if ids, err = openPending(ctx, c, o); err != nil {
			return result{}, err
		}
	case "status":
		raw, err := os.ReadFile(o.ids)
		if err != nil {
			return result{}, fmt.Errorf("read -ids: %w", err)
		}
		ids = strings.Fields(string(raw))
		if len(ids) == 0 {
			return result{}, fmt.Errorf("-ids %s holds no request ID", o.ids)
		}
	}

	rec := &recorder{latencies: make([]time.Duration, 0, min(o.count, 1<<20))}
	tctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var issued atomic.Int64
	// take claims the next request of the count bound.
	take := func() (int, bool) {
		n := int(issued.Add(1)) - 1
		return n, n < o.count && tctx.Err() == nil
	}
	var p *pacer
	if o.rate > 0 {
		p = &pacer{start: time.Now(), interval: time.Duration(float64(time.Second) / o.rate)}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.concurrency {
		wg.Go(func() { worker(tctx, c, o, w, ids, take, p, rec) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	lat := rec.latencies
	slices.Sort(lat)
	res := result{
		Label: o.label, Scenario: o.scenario, Concurrency: o.concurrency,
		Requests: len(lat), Errors: rec.errors, Seconds: elapsed.Seconds(),
		Throughput: float64(len(lat)) / elapsed.Seconds(),
		P50ms:      ms(percentile(lat, 0.50)), P90ms: ms(percentile(lat, 0.90)),
		P99ms: ms(percentile(lat, 0.99)), MaxMs: ms(percentile(lat, 1)),
		FirstError: rec.first,
	}
	if o.pid > 0 {
		after, err := procStatus(o.pid)
		if err != nil {
			return result{}, err
		}
		res.IdleRSSKiB, res.IdleAnonKiB = idle["VmRSS"], idle["RssAnon"]
		res.PeakRSSKiB, res.LoadedAnonKB = after["VmHWM"], after["RssAnon"]
	}
	if o.scenario == "approvals" {
		// Only requests whose click surely completed: workers take IDs in
		// order, so all but the last -c of the answered ones.
		if err := checkApproved(ctx, c, ids[:max(len(lat)-o.concurrency, 0)]); err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
		}
	}
	return res, nil
}

// worker sends requests until the count or time bound is reached.
func worker(ctx context.Context, c *client, o runOptions, w int, ids []string, take func() (int, bool), p *pacer, rec *recorder) {
	target, env := slot(w, o.targets)
	user := fmt.Sprintf("UWORKER%03d", w)
	for {
		n, ok := take()
		if !ok || p.wait(ctx) != nil {
			return
		}
		switch o.scenario {
		case "commands":
			// One cycle is two commands, each committed by rotary: open
			// the worker's own slot, then cancel what was opened.
			var id string
			if rec.timed(ctx, func() error {
				text, err := c.command(ctx, user, target+" --env "+env+` --reason "load test"`)
				if err == nil {
					if id = requestIDPattern.FindString(text); id == "" || !strings.HasPrefix(text, "Opened") {
						err = fmt.Errorf("open %s/%s: unexpected answer %.200q", target, env, text)
					}
				}
				return err
			}) != nil {
				continue
			}
			_ = rec.timed(ctx, func() error {
				text, err := c.command(ctx, user, "cancel "+id)
				if err == nil && !strings.HasPrefix(text, "Cancelled") {
					err = fmt.Errorf("cancel %s: unexpected answer %.200q", id, text)
				}
				return err
			})
		case "approvals":
			_ = rec.timed(ctx, func() error { return c.click(ctx, approverUser, actionApprove, ids[n]) })
		case "list":
			_ = rec.timed(ctx, func() error {
				text, err := c.command(ctx, user, "list")
				if err == nil && !strings.Contains(text, "open request") {
					err = fmt.Errorf("list: unexpected answer %.200q", text)
				}
				return err
			})
		case "status":
			id := ids[n%len(ids)]
			_ = rec.timed(ctx, func() error {
				text, err := c.command(ctx, user, "status "+id)
				if err == nil && !strings.Contains(text, id) {
					err = fmt.Errorf("status %s: unexpected answer %.200q", id, text)
				}
				return err
			})
		case "help":
			_ = rec.timed(ctx, func() error {
				_, err := c.command(ctx, user, "help")
				return err
			})
		}
	}
}

// openPending opens o.count requests (untimed), one per slot, and returns their IDs.
func openPending(ctx context.Context, c *client, o runOptions) ([]string, error) {
	ids := make([]string, o.count)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.count || ctx.Err() != nil {
					return
				}
				target, env := slot(i, o.targets)
				text, err := c.command(ctx, requesterUser, target+" --env "+env+` --reason "approval benchmark"`)
				id := requestIDPattern.FindString(text)
				if err == nil && (id == "" || !strings.HasPrefix(text, "Opened")) {
					err = fmt.Errorf("open %s/%s: unexpected answer %.200q (is the state file fresh?)", target, env, text)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("opening the requests to approve: %w", firstErr)
	}
	return ids, ctx.Err()
}

// checkApproved asks for the status of a sample of the approved requests:
// an approval that was acknowledged but not applied is an error too.
func checkApproved(ctx context.Context, c *client, ids []string) error {
	const sample = 20
	step := max(len(ids)/sample, 1)
	for i := 0; i < len(ids); i += step {
		text, err := c.command(ctx, requesterUser, "status "+ids[i])
		if err != nil {
			return fmt.Errorf("status check: %w", err)
		}
		if strings.Contains(strings.ToLower(text), "pending") {
			return fmt.Errorf("request %s is still pending after its approval was acknowledged: %.200q", ids[i], text)
		}
	}
	return nil
}
