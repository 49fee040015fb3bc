package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/rotators/executor"
)

const (
	// seedBatch requests are written per transaction.
	seedBatch = 10_000
	// runEvery: one stored request in this many has a finished run journal.
	runEvery = 10
	// idAlphabet is rotary's request ID alphabet, in byte order, so seeded
	// IDs sort in the order they are written (bbolt appends cheaply).
	idAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	// sampleIDs is how many IDs the -ids file gets, spread over the file.
	sampleIDs = 1000
	// readyPoll is the interval of `loadgen ready`: it waits for another
	// process, which cannot signal this one.
	readyPoll = 2 * time.Millisecond
)

// seedID is the i-th seeded request ID: "R-" and 8 characters of rotary's alphabet.
func seedID(i int) string {
	var b [8]byte
	for k := 7; k >= 0; k-- {
		b[k] = idAlphabet[i%len(idAlphabet)]
		i /= len(idAlphabet)
	}
	return "R-" + string(b[:])
}

// seedCmd fills a new state file with requests as a long-lived rotary would
// hold them: nearly all finished (succeeded, cancelled, denied, expired,
// failed), a few open, each with its audit events, one in ten with its run
// journal. It uses the store's own API, so the file is what rotary writes.
func seedCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	path := fs.String("state", "", "the state file to create (must not exist)")
	total := fs.Int("requests", 100_000, "requests to store")
	open := fs.Int("open", 20, "of which pending (one per slot bench00/e00, bench01/e00, ...)")
	targets := fs.Int("targets", 64, "targets in the config, for the open requests' slots")
	idsOut := fs.String("ids", "", "write a sample of the stored request IDs here (for `run -scenario status`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("seed needs -state FILE")
	}
	if _, err := os.Stat(*path); err == nil {
		return fmt.Errorf("%s exists: seed only creates new state files", *path)
	}
	if *total < 1 || *open < 0 || *open > *total {
		return fmt.Errorf("-requests %d -open %d: need 0 <= open <= requests and requests >= 1", *total, *open)
	}
	// Seeding is preparation, not the benchmark: no fsync per transaction
	// (the file is synced once when closed).
	st, err := boltstore.Open(*path, boltstore.Options{NoSync: true})
	if err != nil {
		return err
	}
	start := time.Now()
	base := start.Add(-365 * 24 * time.Hour)
	terminal := []approvals.State{approvals.StateSucceeded, approvals.StateSucceeded, approvals.StateSucceeded,
		approvals.StateCancelled, approvals.StateDenied, approvals.StateExpired, approvals.StateFailed, approvals.StateRolledBack}
	var runs []*executor.Run
	for lo := 0; lo < *total; lo += seedBatch {
		hi := min(lo+seedBatch, *total)
		runs = runs[:0]
		err := st.Update(ctx, func(tx approvals.Tx) error {
			for i := lo; i < hi; i++ {
				at := base.Add(time.Duration(i) * time.Second)
				r := &approvals.Request{
					ID: seedID(i), Kind: "apikey", Reason: "quarterly rotation", Requester: requesterUser,
					CreatedAt: at, ExpiresAt: at.Add(time.Hour),
					Slack:  approvals.SlackRefs{Channel: benchChannel, RootTS: fmt.Sprintf("%d.%06d", at.Unix(), i%1_000_000)},
					Events: []approvals.Event{{At: at, Actor: requesterUser, Action: "requested", Detail: "quarterly rotation"}},
				}
				if i < *open {
					r.Target, r.Env = slot(i, *targets)
					r.State = approvals.StatePending
					r.CreatedAt, r.ExpiresAt = start, start.Add(time.Hour)
				} else {
					// Finished requests use targets the config does not
					// have, as old configs did: they never take a slot.
					r.Target, r.Env = fmt.Sprintf("old%03d", i%500), "prod"
					finish(r, terminal[i%len(terminal)], at)
				}
				if err := tx.Put(r); err != nil {
					return err
				}
				if i >= *open && i%runEvery == 0 && r.State == approvals.StateSucceeded {
					runs = append(runs, finishedRun(r))
				}
			}
			return nil
		})
		if err != nil {
			_ = st.Close()
			return fmt.Errorf("seed requests %d..%d: %w", lo, hi, err)
		}
		for _, run := range runs {
			if err := st.SaveRun(ctx, run); err != nil {
				_ = st.Close()
				return fmt.Errorf("seed run %s: %w", run.RequestID, err)
			}
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	if err := syncFile(*path); err != nil {
		return err
	}
	if *idsOut != "" {
		var b strings.Builder
		step := max(*total/sampleIDs, 1)
		for i := 0; i < *total; i += step {
			b.WriteString(seedID(i) + "\n")
		}
		if err := os.WriteFile(*idsOut, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write -ids: %w", err)
		}
	}
	fi, err := os.Stat(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d requests (%d open) into %s: %d MiB in %s\n", *total, *open, *path, fi.Size()>>20, time.Since(start).Round(time.Millisecond))
	return nil
}

// finish gives r the history of a request that ended in state.
func finish(r *approvals.Request, state approvals.State, at time.Time) {
	decided := at.Add(3 * time.Minute)
	r.State = state
	switch state {
	case approvals.StateCancelled:
		r.DecidedBy, r.DecidedAt = requesterUser, decided
		r.Events = append(r.Events, approvals.Event{At: decided, Actor: requesterUser, Action: string(state)})
	case approvals.StateDenied:
		r.DecidedBy, r.DecidedAt, r.DenyReason = approverUser, decided, "change freeze"
		r.Events = append(r.Events, approvals.Event{At: decided, Actor: approverUser, Action: string(state), Detail: "change freeze"})
	case approvals.StateExpired:
		r.DecidedAt = r.ExpiresAt
		r.Events = append(r.Events, approvals.Event{At: r.ExpiresAt, Action: string(state)})
	default:
		end := decided.Add(4 * time.Minute)
		r.DecidedBy, r.DecidedAt, r.StartedAt, r.FinishedAt = approverUser, decided, decided, end
		r.Outcome = "6 steps completed"
		if state != approvals.StateSucceeded {
			r.Outcome = `step "Rolling restart bench-app" failed: rollout did not complete in 5m0s; the previous secret was restored`
		}
		r.Events = append(r.Events,
			approvals.Event{At: decided, Actor: approverUser, Action: string(approvals.StateApproved)},
			approvals.Event{At: decided, Action: string(approvals.StateRunning)},
			approvals.Event{At: end, Action: string(state), Detail: r.Outcome})
	}
}

// finishedRun is the journal of a finished six-step API-key rotation.
func finishedRun(r *approvals.Request) *executor.Run {
	run := &executor.Run{RequestID: r.ID, Target: r.Target, Phase: executor.PhaseDone, Result: r.State, Outcome: r.Outcome,
		Facts: map[string]string{"new_key_name": "rotary:" + r.Target + ":prod:" + r.ID, "prev_version": "41", "new_version": "42"}}
	for _, name := range []string{"new_key", "store_version", "sync", "restart", "verify", "revoke"} {
		run.Steps = append(run.Steps, executor.StepRecord{Name: name, Title: name, Status: executor.StepDone, Attempts: 1,
			StartedAt: r.StartedAt, FinishedAt: r.FinishedAt})
	}
	return run
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// readyCmd waits until url answers 200 and prints the milliseconds since
// -since (a Unix time in nanoseconds, e.g. taken just before starting the
// server), or since it started waiting.
func readyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	url := fs.String("url", "", "URL that answers 200 when ready (e.g. http://127.0.0.1:8080/readyz)")
	since := fs.Int64("since", 0, "Unix time in nanoseconds to measure from (date +%s%N before the start)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	pid := fs.Int("pid", 0, "the server's process ID: give up at once if it exits")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(ctx, *url); err != nil {
		return err
	}
	from := time.Now()
	if *since > 0 {
		from = time.Unix(0, *since)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
		if err != nil {
			return fmt.Errorf("ready: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(stdout, "%.1f\n", float64(time.Since(from).Microseconds())/1000)
				return nil
			}
		}
		if *pid > 0 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", *pid)); err != nil {
				return fmt.Errorf("process %d exited before %s answered 200", *pid, *url)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %s", *url, *timeout)
		case <-tick.C:
		}
	}
}
