package main

// audit.go is `rotary audit export <id>`: a request's full history (its
// events and the executor's journal, follow-ups included) as JSON for an
// incident record. Neither holds a secret value, by construction.
//
// While the bot runs it holds the bbolt file's lock, so the command then
// asks the bot's admin endpoint, which listens on loopback only (inside the
// pod: `kubectl exec deploy/rotary -- rotary audit export R-…`).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/commands"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// auditLockTimeout is how long the command waits for the state file before
// it concludes that the bot holds it and asks the admin endpoint instead.
const auditLockTimeout = 500 * time.Millisecond

// adminTimeout bounds one admin request from the command line.
const adminTimeout = 10 * time.Second

// auditRecord is the exported JSON document.
type auditRecord struct {
	ExportedAt time.Time          `json:"exported_at"`
	Request    *approvals.Request `json:"request"`
	// Run is the executor's journal: every step with its attempts, times,
	// errors and facts, and the scheduled follow-ups with their history.
	Run *executor.Run `json:"run,omitempty"`
}

// auditSource is what an export reads.
type auditSource interface {
	View(ctx context.Context, fn func(approvals.Tx) error) error
	LoadRun(ctx context.Context, requestID string) (*executor.Run, error)
}

func readAudit(ctx context.Context, src auditSource, id string, now time.Time) (*auditRecord, error) {
	rec := &auditRecord{ExportedAt: now.UTC()}
	err := src.View(ctx, func(tx approvals.Tx) error {
		r, err := tx.Get(id)
		rec.Request = r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", id, err)
	}
	if rec.Run, err = src.LoadRun(ctx, id); err != nil {
		return nil, fmt.Errorf("journal of %s: %w", id, err)
	}
	return rec, nil
}

func writeAudit(w io.Writer, rec *auditRecord) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rec)
}

// auditExport prints request id's history as JSON to out.
func auditExport(ctx context.Context, path, rawID string, out io.Writer, now func() time.Time) error {
	id, ok := commands.NormalizeRequestID(rawID)
	if !ok {
		return usageError{fmt.Sprintf("%q is not a request ID; request IDs look like R-7K2M9Q", rawID)}
	}
	cfg, err := loadValid(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.StatePath); err != nil {
		return fmt.Errorf("state file %s: %w (is this the bot's config and working directory?)", cfg.StatePath, err)
	}
	store, err := boltstore.Open(cfg.StatePath, boltstore.Options{LockTimeout: auditLockTimeout})
	var locked *boltstore.LockedError
	switch {
	case errors.As(err, &locked):
		if cfg.AdminListen == "" {
			return fmt.Errorf("%w; the bot holds it and admin_listen is off, so run this while the bot is stopped or set admin_listen", err)
		}
		return auditFromBot(ctx, cfg.AdminListen, id, out)
	case err != nil:
		return err
	}
	defer store.Close()
	rec, err := readAudit(ctx, store, id, now())
	if errors.Is(err, approvals.ErrNotFound) {
		return fmt.Errorf("no request %s in %s", id, cfg.StatePath)
	}
	if err != nil {
		return err
	}
	return writeAudit(out, rec)
}

// auditFromBot fetches the export from the running bot's admin endpoint.
func auditFromBot(ctx context.Context, addr, id string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/audit/"+id, nil)
	if err != nil {
		return fmt.Errorf("admin request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the state file is locked by the running bot, and its admin endpoint %s did not answer: %w", addr, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		_, err = io.Copy(out, resp.Body)
		return err
	case http.StatusNotFound:
		return fmt.Errorf("no request %s", id)
	default:
		return fmt.Errorf("admin endpoint %s answered %s", addr, resp.Status)
	}
}

// adminRoutes are served on the loopback-only admin listener.
func (a *app) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /audit/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := commands.NormalizeRequestID(r.PathValue("id"))
		if !ok {
			http.Error(w, "not a request ID", http.StatusBadRequest)
			return
		}
		rec, err := readAudit(r.Context(), a.store, id, a.env.now())
		switch {
		case errors.Is(err, approvals.ErrNotFound):
			http.Error(w, "no such request", http.StatusNotFound)
			return
		case err != nil:
			a.env.log.ErrorContext(r.Context(), "audit export failed", "request_id", id, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = writeAudit(w, rec)
	})
	// Go's profiler, for the operator on the pod (kubectl port-forward) and
	// for bench/run.sh. Loopback only, like the rest of this listener: the
	// profiles hold stack traces and allocation sites, never secret values,
	// but they are not for the Slack-facing listener. CPU profiles are
	// bounded by the server's write timeout (seconds < 10).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}
