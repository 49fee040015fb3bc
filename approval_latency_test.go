package main

// TestApprovalToFirstStep measures, in process, the time from sending an
// Approve click (signed HTTP, as Slack sends it) to the executor logging
// that the rotation's first step started: verify, decide (a bbolt commit
// with fsync), wake the executor, create the journal, claim the request and
// journal the step's first attempt. It checks that every approval starts
// its run and logs p50/p99; bench/run.sh runs it with more approvals
// (ROTARY_FIRST_STEP_N) and reports the figures. It is a test rather than
// a benchmark because it drives the e2e harness, which takes a *testing.T.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/bot/blocks"
)

// firstStepEnvs is how many request slots the benchmark has (one target,
// this many environments): each iteration approves a fresh request, whose
// run then waits at its first step for a paste.
const firstStepEnvs = 400

// stepWatch is a slog.Handler that reports when a request's step started.
type stepWatch struct {
	attrs []slog.Attr
	state *stepWatchState
}

type stepWatchState struct {
	mu      sync.Mutex
	waiting map[string]chan time.Time
}

func (w *stepWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *stepWatch) WithGroup(string) slog.Handler            { return w }
func (w *stepWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &stepWatch{attrs: append(slices.Clip(w.attrs), as...), state: w.state}
}

func (w *stepWatch) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "step started" {
		return nil
	}
	id := ""
	for _, a := range w.attrs {
		if a.Key == "request_id" {
			id = a.Value.String()
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "request_id" {
			id = a.Value.String()
		}
		return true
	})
	w.state.mu.Lock()
	ch := w.state.waiting[id]
	delete(w.state.waiting, id)
	w.state.mu.Unlock()
	if ch != nil {
		ch <- r.Time
	}
	return nil
}

// expect registers interest in the first "step started" of id.
func (s *stepWatchState) expect(id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	s.mu.Lock()
	s.waiting[id] = ch
	s.mu.Unlock()
	return ch
}

const (
	// firstStepCI approvals in an ordinary run; envFirstStepN overrides.
	firstStepCI   = 40
	envFirstStepN = "ROTARY_FIRST_STEP_N"
)

func TestApprovalToFirstStep(t *testing.T) {
	n := firstStepCI
	if s := os.Getenv(envFirstStepN); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > firstStepEnvs {
			t.Fatalf("%s=%q: give 1 to %d approvals", envFirstStepN, s, firstStepEnvs)
		}
		n = v
	}
	h := newE2E(t)
	envs := make([]string, firstStepEnvs)
	for i := range envs {
		envs[i] = fmt.Sprintf("e%03d", i)
	}
	envs[0] = "prod" // the default environment must have approvers
	h.withTargets(t, manualTargets("first", 1, envs...))
	watch := &stepWatchState{waiting: map[string]chan time.Time{}}
	h.startWithLog(t, slog.New(&stepWatch{state: watch}))
	lat := make([]time.Duration, 0, n)
	for i := range n {
		text := h.commandText(requester, "/rotate", "first000 --env "+envs[i])
		id := openedID.FindString(text)
		if id == "" {
			t.Fatalf("open: %s", text)
		}
		started := watch.expect(id)
		sent := time.Now()
		if code := h.clickCode(approver, blocks.ActionApprove, id); code != http.StatusOK {
			t.Fatalf("approve %s: HTTP %d", id, code)
		}
		select {
		case at := <-started:
			lat = append(lat, at.Sub(sent))
		case <-time.After(e2eWait):
			t.Fatalf("the first step of %s did not start within %s of its approval", id, e2eWait)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		k := min(max(int(p*float64(len(lat))+0.5)-1, 0), len(lat)-1)
		return float64(lat[k].Microseconds()) / 1000
	}
	t.Logf("FIGURE approval_to_first_step n=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f", n, pct(0.50), pct(0.99), pct(1))
}

// clickCode sends a signed Approve click from any goroutine and returns the status.
func (h *e2e) clickCode(user, actionID, value string) int {
	payload := fmt.Sprintf(`{"type":"block_actions","user":{"id":%q},"trigger_id":"trig-%d","channel":{"id":%q},"container":{"type":"message","channel_id":%q},"actions":[{"action_id":%q,"block_id":"b","type":"button","value":%q}]}`,
		user, triggers.Add(1), requestChannel, requestChannel, actionID, value)
	body := "payload=" + url.QueryEscape(payload)
	req, err := http.NewRequest(http.MethodPost, h.url+"/slack/interactions", strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header = sign(body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// startWithLog is start with the process's logger replaced (the benchmark
// watches the executor's log instead of keeping it).
func (h *e2e) startWithLog(tb testing.TB, log *slog.Logger) {
	tb.Helper()
	immediate := func(time.Duration) <-chan time.Time { c := make(chan time.Time, 1); c <- time.Time{}; return c }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	a, err := newApp(context.Background(), h.cfg, appEnv{
		getenv: h.getenv, now: h.clock.Now,
		newID: func() string { return fmt.Sprintf("R-TEST%04d", h.ids.Add(1)) },
		rand:  strings.NewReader(strings.Repeat("deterministic randomness ", 1000)),
		http:  &http.Client{Timeout: 10 * time.Second}, log: log, kube: h.kube, after: immediate, listener: ln,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.app, h.cancel, h.done, h.url = a, cancel, make(chan error, 1), "http://"+ln.Addr().String()
	go func() { h.done <- a.run(ctx) }()
	tb.Cleanup(h.stop)
}
