package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// assets are the page's files, built into the binary: no build step, no
// files to find at run time. (A go:embed variable is necessarily a
// package-level one; it is read-only.)
//
//go:embed assets
var assets embed.FS

// Server timeouts. There is no write timeout: the event stream is a
// response that stays open.
const (
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownTimeout   = 5 * time.Second
	// heartbeat keeps an idle event stream from being cut by a proxy, and
	// lets the server notice a page that went away.
	heartbeat = 15 * time.Second
	// reconnectMillis is how soon a page reconnects a dropped stream.
	reconnectMillis = 1000
)

// contentSecurityPolicy allows the page its own files and nothing else:
// no inline script, no third-party request, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the page, its files and its API.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.handlePage)
	mux.Handle("GET /static/", http.StripPrefix("/static/", c.static))
	// No icon: answered, so the browser does not log a missing one.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /api/state", c.handleState)
	mux.HandleFunc("GET /api/events", c.handleEvents)
	mux.Handle("POST /api/command", apiHandler(c, c.command))
	mux.Handle("POST /api/action", apiHandler(c, c.action))
	mux.Handle("POST /api/submit", apiHandler(c, c.submit))
	mux.Handle("POST /api/close", apiHandler(c, c.closeView))
	return guard(mux)
}

// guard answers only requests addressed to a loopback host name (a page
// on another site that rebinds its own name to 127.0.0.1 gets nothing) and
// refuses writes from another origin or in another format than JSON (which
// a cross-site form cannot send without the browser asking first).
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, fmt.Sprintf("rotary try answers only at 127.0.0.1 or localhost, not %q", r.Host), http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method == http.MethodPost {
			if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
				http.Error(w, "cross-origin requests are refused", http.StatusForbidden)
				return
			}
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				http.Error(w, "send JSON (Content-Type: application/json)", http.StatusUnsupportedMediaType)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pageData is what the page template shows before any script runs.
type pageData struct {
	People      []Person
	Channels    []Channel
	Commands    []string
	Simulated   bool
	Platform    []string
	Unavailable []Unavailable
	Guide       []string
}

func (c *Console) handlePage(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	data := pageData{
		People: c.people, Channels: append([]Channel(nil), c.channels...), Commands: c.commands,
		Simulated: c.simulated, Platform: c.platform, Unavailable: c.unavailList, Guide: c.guide,
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := c.page.Execute(w, data); err != nil {
		c.log.WarnContext(r.Context(), "console: page", "err", err)
	}
}

// handleEvents streams a "change" event with the state's version whenever
// anything changes; the page then fetches its state.
func (c *Console) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", reconnectMillis); err != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		c.mu.Lock()
		version, changed := c.version, c.changed
		c.mu.Unlock()
		if _, err := fmt.Fprintf(w, "event: change\ndata: %s\n\n", strconv.FormatUint(version, 10)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		for waiting := true; waiting; {
			select {
			case <-changed:
				waiting = false
			case <-tick.C:
				if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			case <-r.Context().Done():
				return
			case <-c.closing:
				return
			}
		}
	}
}

// Serve serves the page on ln until ctx ends, then shuts down: event
// streams end first, so the shutdown does not wait for them.
func (c *Console) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           c.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
	}
	var wg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	defer func() {
		stopWatch()
		wg.Wait()
	}()
	wg.Go(func() { c.watch(wctx) })

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("console: serve: %w", err)
	case <-ctx.Done():
	}
	c.stopStreams()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("console: shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("console: serve: %w", err)
	}
	return nil
}
