// Package rotatorstest is a recording implementation of rotators.Run for the
// kinds' unit tests; it is not for production.
//
// A Run keeps facts in a map (what the executor would persist), secrets in
// memory, and records every progress line, prompt and fact key in order, so a
// test can run a Step directly and then inspect what it did. Restarted gives
// the same run after a process restart: facts survive, memory-only secrets
// do not. All methods are safe for a step and its goroutines to call at once;
// the hook fields (Answer, OnRecord, AfterRecord) are set by the test while
// no step runs.
package rotatorstest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Default people and clock of a new Run.
const (
	DefaultRequester = "U01ALICE"
	DefaultApprover  = "U02BOB"
)

// DefaultNow is the clock of a new Run: fixed, so stamps are deterministic.
var DefaultNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// ErrNoAnswer is what Ask returns when the test set no Answer.
var ErrNoAnswer = errors.New("rotatorstest: nobody answers in this test")

// Run implements rotators.Run in memory and records what a step did.
type Run struct {
	// Spec is the request the run is for.
	Spec rotators.Spec
	// RequesterID and ApproverID are what Requester and Approver return.
	RequesterID, ApproverID string
	// Answer answers Ask; nil makes Ask fail with ErrNoAnswer.
	Answer func(ctx context.Context, p rotators.Prompt) (secret.Value, error)
	// OnRecord, if set, sees each Record before the fact is stored; an
	// error fails the Record and the fact is not stored (a crash before
	// the journal write).
	OnRecord func(key, value string) error
	// AfterRecord, if set, sees each Record after the fact is stored; an
	// error fails the Record with the fact kept (a crash right after the
	// intent was persisted).
	AfterRecord func(key, value string) error

	mu       sync.Mutex
	now      time.Time
	facts    map[string]string
	records  []string
	secrets  map[string]secret.Value
	progress []string
	prompts  []rotators.Prompt
	sleeps   []time.Duration
	logBuf   *syncBuffer
	log      *slog.Logger
}

var _ rotators.Run = (*Run)(nil)

// New returns a Run for spec at DefaultNow, with the default people, no
// facts, and a debug-level JSON logger writing to a buffer (see LogText).
func New(spec rotators.Spec) *Run {
	buf := &syncBuffer{}
	return &Run{
		Spec: spec, RequesterID: DefaultRequester, ApproverID: DefaultApprover,
		now: DefaultNow, facts: map[string]string{}, secrets: map[string]secret.Value{},
		logBuf: buf, log: slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// Restarted is the same run after a process restart: facts, the clock, the
// Answer, the log and what the thread already showed (progress, prompts,
// record order) carry on; memory-only secrets and the record hooks (which
// simulate one process's crash) do not.
func (r *Run) Restarted() *Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &Run{
		Spec: r.Spec, RequesterID: r.RequesterID, ApproverID: r.ApproverID,
		Answer: r.Answer,
		now:    r.now, facts: maps.Clone(r.facts), records: slices.Clone(r.records),
		secrets: map[string]secret.Value{}, progress: slices.Clone(r.progress),
		prompts: slices.Clone(r.prompts), logBuf: r.logBuf, log: r.log,
	}
}

func (r *Run) RequestID() string { return r.Spec.RequestID }
func (r *Run) Target() string    { return r.Spec.Target }
func (r *Run) Env() string       { return r.Spec.Env }
func (r *Run) Emergency() bool   { return r.Spec.Emergency }
func (r *Run) Requester() string { return r.RequesterID }
func (r *Run) Approver() string  { return r.ApproverID }
func (r *Run) Log() *slog.Logger { return r.log }

// Now returns the run's clock, which only SetNow moves.
func (r *Run) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

// SetNow moves the run's clock.
func (r *Run) SetNow(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = t
}

func (r *Run) Fact(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.facts[key]
}

// Record stores a fact, running OnRecord before and AfterRecord after.
func (r *Run) Record(_ context.Context, key, value string) error {
	if r.OnRecord != nil {
		if err := r.OnRecord(key, value); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.facts[key] = value
	r.records = append(r.records, key)
	r.mu.Unlock()
	if r.AfterRecord != nil {
		return r.AfterRecord(key, value)
	}
	return nil
}

// SetFact stores a fact without a Record: a fact an earlier step or
// process left, as a test sets the scene.
func (r *Run) SetFact(key, value string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.facts[key] = value
}

// DeleteFact removes a fact, as if it had never been recorded.
func (r *Run) DeleteFact(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.facts, key)
}

// Facts returns a copy of every fact.
func (r *Run) Facts() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.facts)
}

// Records returns the fact keys in the order Record stored them.
func (r *Run) Records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.records)
}

func (r *Run) Secret(key string) (secret.Value, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.secrets[key]
	return v, ok
}

func (r *Run) KeepSecret(key string, v secret.Value) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[key] = v
}

func (r *Run) Progress(_ context.Context, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = append(r.progress, detail)
}

// ProgressLines returns every progress line, in order.
func (r *Run) ProgressLines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.progress)
}

// ProgressText is the progress lines joined by newlines.
func (r *Run) ProgressText() string {
	return strings.Join(r.ProgressLines(), "\n")
}

// Sleep advances the run's clock by d at once (or fails if ctx is done), so
// a waiting step runs instantly and deterministically. Sleeps records every wait.
func (r *Run) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleeps = append(r.sleeps, d)
	r.now = r.now.Add(d)
	return nil
}

// Sleeps returns every duration Sleep was called with, in order.
func (r *Run) Sleeps() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sleeps)
}

// Ask records the prompt and answers it with Answer.
func (r *Run) Ask(ctx context.Context, p rotators.Prompt) (secret.Value, error) {
	r.mu.Lock()
	r.prompts = append(r.prompts, p)
	r.mu.Unlock()
	if r.Answer == nil {
		return secret.Value{}, ErrNoAnswer
	}
	return r.Answer(ctx, p)
}

// Prompts returns every prompt asked, in order.
func (r *Run) Prompts() []rotators.Prompt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.prompts)
}

// LogText is everything written to Log so far.
func (r *Run) LogText() string { return r.logBuf.String() }

// Texts is everything the run made visible, for leak checks: progress
// lines, facts as key=value, prompt labels and buttons, and the log.
func (r *Run) Texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.progress)
	for k, v := range r.facts {
		out = append(out, k+"="+v)
	}
	for _, p := range r.prompts {
		out = append(out, p.Label, p.Button)
	}
	return append(out, r.logBuf.String())
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a step and
// its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
