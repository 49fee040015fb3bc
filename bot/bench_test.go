package bot

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// BenchmarkVerify is the signature check every Slack request passes first:
// read the body, v0 HMAC-SHA256 over "v0:<ts>:<body>", the timestamp
// window, the replay guard. Each request is distinct (as Slack's are), so
// signing is done outside the timer.
func BenchmarkVerify(b *testing.B) {
	h := newHarness(b)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	gate := h.bot.verified(ok)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		body := fmt.Sprintf("command=%%2Frotate&text=openai&user_id=UREQUESTER&trigger_id=trig-%d", i)
		hd := sign(signingSecret, body, time.Now())
		i++
		b.StartTimer()
		if w := verifyThrough(gate, body, hd); w.Code != http.StatusNoContent {
			b.Fatalf("HTTP %d", w.Code)
		}
	}
}

// BenchmarkCommandList is a whole `/rotate list` through the routes
// (verify, parse, read the open set, render) with a request open.
func BenchmarkCommandList(b *testing.B) {
	h := newHarness(b)
	h.openRequest("openai")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		body := fmt.Sprintf("command=%%2Frotate&text=list&user_id=UREQUESTER&channel_id=C0REQUEST&trigger_id=trig-%d", i)
		hd := sign(signingSecret, body, time.Now())
		i++
		b.StartTimer()
		if w := h.serve("/slack/commands", body, hd); w.Code != http.StatusOK {
			b.Fatalf("HTTP %d", w.Code)
		}
	}
}
