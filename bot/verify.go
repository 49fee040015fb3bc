package bot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

type bodyKey struct{}

// verified admits a request only if it carries a valid, fresh, unseen Slack
// v0 signature over its raw body; the body is then handed on in the context.
func (b *Bot) verified(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		// slack-go's verifier: v0 HMAC-SHA256 over "v0:<ts>:<body>", a
		// 5-minute timestamp window, constant-time comparison.
		sv, err := slack.NewSecretsVerifier(r.Header, string(b.cfg.SigningSecret.Reveal()))
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		if err != nil {
			b.log.WarnContext(r.Context(), "refused unsigned or forged Slack request", "path", r.URL.Path, "reason", err.Error())
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		// A valid signature seen before is a replay: Slack does not resend
		// slash commands or interactions with the same signature.
		if !b.replay.first(r.Header.Get("X-Slack-Signature"), time.Now()) {
			b.log.WarnContext(r.Context(), "refused replayed Slack request", "path", r.URL.Path)
			http.Error(w, "replayed request", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, body)))
	})
}

// replayGuard remembers signatures for the timestamp window.
type replayGuard struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]time.Time
	// nextSweep bounds the cost of forgetting old entries.
	nextSweep time.Time
}

func newReplayGuard(window time.Duration) *replayGuard {
	return &replayGuard{window: window, seen: map[string]time.Time{}}
}

// first reports whether sig was not seen within the window, and records it.
// The wall clock is used on purpose: the window is Slack's, and slack-go
// checks the timestamp against the wall clock too.
func (g *replayGuard) first(sig string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.After(g.nextSweep) {
		for k, t := range g.seen {
			if now.Sub(t) > g.window {
				delete(g.seen, k)
			}
		}
		g.nextSweep = now.Add(g.window / 5)
	}
	if t, ok := g.seen[sig]; ok && now.Sub(t) <= g.window {
		return false
	}
	g.seen[sig] = now
	return true
}
