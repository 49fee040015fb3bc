package bot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// recorder is a handler behind the verify middleware that records what it saw.
type recorder struct {
	calls     int
	body      string // read from r.Body
	ctxBody   string // handed on in the context
	bodyError error
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.calls++
	b, err := io.ReadAll(r.Body)
	rc.body, rc.bodyError = string(b), err
	if cb, ok := r.Context().Value(bodyKey{}).([]byte); ok {
		rc.ctxBody = string(cb)
	}
	w.WriteHeader(http.StatusNoContent)
}

func verifyThrough(h http.Handler, body string, hd http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/slack/commands", strings.NewReader(body))
	r.Header = hd
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const sampleBody = "command=%2Frotate&text=openai&user_id=UREQUESTER"

func TestVerifyAdmitsValidSignatureWithTheSameBody(t *testing.T) {
	h := newHarness(t)
	rc := &recorder{}
	w := verifyThrough(h.bot.verified(rc), sampleBody, sign(signingSecret, sampleBody, time.Now()))
	if w.Code != http.StatusNoContent || rc.calls != 1 {
		t.Fatalf("valid request: HTTP %d, handler called %d times", w.Code, rc.calls)
	}
	if rc.body != sampleBody || rc.ctxBody != sampleBody || rc.bodyError != nil {
		t.Fatalf("handler saw body %q (err %v) and context body %q, want %q", rc.body, rc.bodyError, rc.ctxBody, sampleBody)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	valid := func() http.Header { return sign(signingSecret, sampleBody, now) }
	with := func(mod func(http.Header)) http.Header { hd := valid(); mod(hd); return hd }
	goodSig := valid().Get("X-Slack-Signature")
	cases := []struct {
		name string
		body string
		hd   http.Header
	}{
		{"forged signature", sampleBody, with(func(hd http.Header) { hd.Set("X-Slack-Signature", "v0="+strings.Repeat("ab", 32)) })},
		{"wrong secret", sampleBody, sign("not-the-signing-secret", sampleBody, now)},
		{"body tampered after signing", strings.Replace(sampleBody, "openai", "stripe", 1), valid()},
		{"signature over another timestamp", sampleBody, with(func(hd http.Header) {
			hd.Set("X-Slack-Request-Timestamp", sign(signingSecret, sampleBody, now.Add(-time.Second)).Get("X-Slack-Request-Timestamp"))
		})},
		{"no headers", sampleBody, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
		{"no signature header", sampleBody, with(func(hd http.Header) { hd.Del("X-Slack-Signature") })},
		{"no timestamp header", sampleBody, with(func(hd http.Header) { hd.Del("X-Slack-Request-Timestamp") })},
		{"signature without v0= prefix", sampleBody, with(func(hd http.Header) { hd.Set("X-Slack-Signature", strings.TrimPrefix(goodSig, "v0=")) })},
		{"v1= prefix", sampleBody, with(func(hd http.Header) { hd.Set("X-Slack-Signature", "v1="+strings.TrimPrefix(goodSig, "v0=")) })},
		{"non-hex signature", sampleBody, with(func(hd http.Header) { hd.Set("X-Slack-Signature", "v0="+strings.Repeat("zz", 32)) })},
		{"truncated signature", sampleBody, with(func(hd http.Header) { hd.Set("X-Slack-Signature", goodSig[:len(goodSig)-2]) })},
		{"non-numeric timestamp", sampleBody, with(func(hd http.Header) { hd.Set("X-Slack-Request-Timestamp", "yesterday") })},
		{"stale timestamp (over 5 min old)", sampleBody, sign(signingSecret, sampleBody, now.Add(-5*time.Minute-30*time.Second))},
		{"future timestamp (over 5 min ahead)", sampleBody, sign(signingSecret, sampleBody, now.Add(5*time.Minute+30*time.Second))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			rc := &recorder{}
			w := verifyThrough(h.bot.verified(rc), tc.body, tc.hd)
			if w.Code != http.StatusUnauthorized || rc.calls != 0 {
				t.Fatalf("HTTP %d, handler called %d times; want 401 and never", w.Code, rc.calls)
			}
			if len(h.logs.find(t, "refused unsigned or forged Slack request")) != 1 {
				t.Fatalf("refusal not logged:\n%s", h.logs)
			}
			if strings.Contains(h.logs.String(), signingSecret) {
				t.Fatal("the signing secret was logged")
			}
		})
	}
}

// A timestamp within the window on either side is Slack's clock skew, not an attack.
func TestVerifyAdmitsSkewWithinWindow(t *testing.T) {
	for _, skew := range []time.Duration{-4 * time.Minute, 4 * time.Minute} {
		h := newHarness(t)
		rc := &recorder{}
		if w := verifyThrough(h.bot.verified(rc), sampleBody, sign(signingSecret, sampleBody, time.Now().Add(skew))); w.Code != http.StatusNoContent {
			t.Errorf("skew %s: HTTP %d", skew, w.Code)
		}
	}
}

func TestVerifyRefusesReplay(t *testing.T) {
	h := newHarness(t)
	rc := &recorder{}
	handler := h.bot.verified(rc)
	now := time.Now()
	good := sign(signingSecret, sampleBody, now)

	// A forged request carrying the good signature must not use up its slot.
	if w := verifyThrough(handler, sampleBody+"&x=1", good.Clone()); w.Code != http.StatusUnauthorized {
		t.Fatalf("tampered body: HTTP %d", w.Code)
	}
	if w := verifyThrough(handler, sampleBody, good.Clone()); w.Code != http.StatusNoContent {
		t.Fatalf("first valid request: HTTP %d", w.Code)
	}
	if w := verifyThrough(handler, sampleBody, good.Clone()); w.Code != http.StatusUnauthorized {
		t.Fatalf("replayed request: HTTP %d, want 401", w.Code)
	}
	if rc.calls != 1 {
		t.Fatalf("handler called %d times, want once", rc.calls)
	}
	if len(h.logs.find(t, "refused replayed Slack request")) != 1 {
		t.Fatalf("replay not logged:\n%s", h.logs)
	}
	// The same body signed at another second is another request (Slack's retry
	// of a command would be signed anew).
	if w := verifyThrough(handler, sampleBody, sign(signingSecret, sampleBody, now.Add(-time.Second))); w.Code != http.StatusNoContent {
		t.Fatalf("same body, new signature: HTTP %d", w.Code)
	}
}

func TestVerifyBodyLimit(t *testing.T) {
	h := newHarness(t)
	rc := &recorder{}
	handler := h.bot.verified(rc)

	atLimit := strings.Repeat("a", MaxBodyBytes)
	if w := verifyThrough(handler, atLimit, sign(signingSecret, atLimit, time.Now())); w.Code != http.StatusNoContent || len(rc.body) != MaxBodyBytes {
		t.Fatalf("body of exactly MaxBodyBytes: HTTP %d, handler saw %d bytes", w.Code, len(rc.body))
	}
	over := strings.Repeat("a", MaxBodyBytes+1)
	if w := verifyThrough(handler, over, sign(signingSecret, over, time.Now())); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over MaxBodyBytes: HTTP %d, want 413", w.Code)
	}
	if rc.calls != 1 {
		t.Fatalf("handler called %d times, want once (for the body at the limit)", rc.calls)
	}
}

// The routes are behind the middleware: an unsigned command reaches nothing.
func TestRoutesAreVerified(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/slack/commands", "/slack/interactions"} {
		w := h.serve(path, "command=%2Frotate&text=list", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s unsigned: HTTP %d", path, w.Code)
		}
	}
	if calls := h.fake.Calls(); len(calls) != 0 {
		t.Fatalf("unsigned requests caused Slack calls: %+v", calls)
	}
}

func TestReplayGuardWindow(t *testing.T) {
	g := newReplayGuard(replayWindow)
	steps := []struct {
		at   time.Duration
		sig  string
		want bool
	}{
		{0, "a", true},
		{time.Second, "a", false},
		{0, "b", true}, // other signatures are independent
		{replayWindow, "a", false},
		{replayWindow + time.Nanosecond, "a", true}, // forgotten: slack-go refuses its timestamp by now
		{replayWindow + 2*time.Nanosecond, "a", false},
	}
	for _, s := range steps {
		if got := g.first(s.sig, t0.Add(s.at)); got != s.want {
			t.Fatalf("first(%q) at +%s = %v, want %v", s.sig, s.at, got, s.want)
		}
	}
}

func TestReplayGuardSweepIsBounded(t *testing.T) {
	g := newReplayGuard(replayWindow)
	size := func() int { g.mu.Lock(); defer g.mu.Unlock(); return len(g.seen) }
	sweepEvery := replayWindow / 5

	for i := range 100 {
		g.first(fmt.Sprintf("old-%d", i), t0)
	}
	g.first("mid", t0.Add(30*time.Second))
	g.first("young", t0.Add(2*time.Minute))
	if n := size(); n != 102 {
		t.Fatalf("%d entries, want 102", n)
	}
	// The first call after the window sweeps the old entries out and keeps
	// the ones still inside it.
	afterWindow := t0.Add(replayWindow + time.Second)
	g.first("late", afterWindow)
	if n := size(); n != 3 {
		t.Fatalf("after the window: %d entries, want 3 (mid, young, late)", n)
	}
	// "mid" expires before the next sweep is due. It stays in memory until
	// then (the sweep is paid at most once per window/5)...
	beforeNext := afterWindow.Add(sweepEvery - time.Second)
	g.first("x", beforeNext)
	if n := size(); n != 4 {
		t.Fatalf("a sweep ran before it was due: %d entries, want 4", n)
	}
	// ...but it no longer counts as seen.
	if !g.first("mid", beforeNext) {
		t.Fatal("an expired entry still counted as seen")
	}
	// Once due, the sweep drops everything older than the window.
	g.first("y", beforeNext.Add(replayWindow+time.Second))
	if n := size(); n != 1 {
		t.Fatalf("after the next due sweep: %d entries, want 1", n)
	}
}

// TestVerifyRefusesReplayOfAFutureStampedRequest: a request stamped ahead of
// our clock stays valid for longer than replayWindow after it arrives; its
// replay must still be refused then.
func TestVerifyRefusesReplayOfAFutureStampedRequest(t *testing.T) {
	h := newHarness(t)
	rc := &recorder{}
	hd := sign(signingSecret, sampleBody, time.Now().Add(4*time.Minute))
	if w := verifyThrough(h.bot.verified(rc), sampleBody, hd); w.Code != http.StatusNoContent {
		t.Fatalf("first delivery: HTTP %d", w.Code)
	}
	// Age the remembered signature past replayWindow (but within its validity).
	sig := hd.Get("X-Slack-Signature")
	h.bot.replay.mu.Lock()
	h.bot.replay.seen[sig] = time.Now().Add(-replayWindow - time.Second)
	h.bot.replay.mu.Unlock()
	if w := verifyThrough(h.bot.verified(rc), sampleBody, hd); w.Code != http.StatusUnauthorized || rc.calls != 1 {
		t.Fatalf("replay 5 min later: HTTP %d, handler called %d times", w.Code, rc.calls)
	}
}
