// Package apikeytest runs in-process fakes of the two provider APIs the
// apikey kind calls: the OpenAI Admin API (project service accounts) and the
// SendGrid v3 API (api_keys). They speak the providers' real JSON shapes and
// status codes, so the kind's HTTP clients are exercised as they would be in
// production.
//
// Rules:
//   - No import of "testing": a demo mode can run these fakes too.
//   - A fake records each call's method, path and status, never a request or
//     response body (bodies carry keys). The key values a fake hands out are
//     available through IssuedKeys, so a test can scan logs, errors and
//     journals for leaks.
//   - Issued values are distinctive ("sk-svcacct-TESTKEY-<n>-<random>",
//     "SG.<id>.TESTKEY-<n>-<random>"): a leak is easy to spot.
//   - Every request must carry "Authorization: Bearer <admin key>"; the fake
//     answers 401 otherwise, like the real APIs.
//   - FailNext makes the next N requests fail with a given status (and the
//     provider's error body) before they have any effect.
package apikeytest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
)

// Call is one request a fake received.
type Call struct {
	Method string
	Path   string
	Status int
}

// core is what both fakes share: the server, the call log, fault injection
// and the admin key check.
type core struct {
	srv      *httptest.Server
	adminKey string
	// writeError renders the provider's error body for status and message.
	writeError func(w http.ResponseWriter, status int, msg string)

	mu          sync.Mutex
	calls       []Call
	failLeft    int
	failStatus  int
	issued      []string
	seq         int
	authFailure func(given string) string
}

func (c *core) start(mux http.Handler) {
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		c.serve(rec, r, mux)
		c.mu.Lock()
		c.calls = append(c.calls, Call{Method: r.Method, Path: r.URL.Path, Status: rec.status})
		c.mu.Unlock()
	}))
}

func (c *core) serve(w http.ResponseWriter, r *http.Request, mux http.Handler) {
	c.mu.Lock()
	failing := c.failLeft > 0
	status := c.failStatus
	if failing {
		c.failLeft--
	}
	c.mu.Unlock()
	if failing {
		c.writeError(w, status, fmt.Sprintf("injected failure (%s)", http.StatusText(status)))
		return
	}
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || given != c.adminKey {
		c.writeError(w, http.StatusUnauthorized, c.authFailure(given))
		return
	}
	mux.ServeHTTP(w, r)
}

// URL is the fake's base URL (the value for api_base).
func (c *core) URL() string { return c.srv.URL }

// Client is an HTTP client for the fake.
func (c *core) Client() *http.Client { return c.srv.Client() }

// Close stops the server.
func (c *core) Close() { c.srv.Close() }

// Calls returns the requests received so far, in order.
func (c *core) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// CountCalls counts the received requests with this method whose path starts with prefix.
func (c *core) CountCalls(method, prefix string) int {
	n := 0
	for _, call := range c.Calls() {
		if call.Method == method && strings.HasPrefix(call.Path, prefix) {
			n++
		}
	}
	return n
}

// FailNext makes the next n requests fail with status, without effect.
func (c *core) FailNext(n, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLeft, c.failStatus = n, status
}

// IssuedKeys returns every key value the fake has handed out, so tests can
// scan for leaks.
func (c *core) IssuedKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.issued)
}

// next returns a fresh sequence number and a random suffix. Callers hold mu.
func (c *core) next() (int, string) {
	c.seq++
	return c.seq, rand.Text()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// mask shows a key the way OpenAI's 401 message does: a prefix, stars and
// the last four characters. The fake echoes it so the client's scrubbing of
// key-like text in provider messages is exercised.
func mask(key string) string {
	if len(key) <= 12 {
		return "sk-***"
	}
	return key[:8] + strings.Repeat("*", 12) + key[len(key)-4:]
}
