package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// stepRun is what one step sees: rotators.Run.
type stepRun struct {
	x    *runner
	step string
	// rec is the step's journal record. Held by pointer because step names
	// are unique only within one list: a follow-up step may share its name
	// with a forward step.
	rec *StepRecord
}

var _ rotators.Run = (*stepRun)(nil)

func (s *stepRun) RequestID() string { return s.x.req.ID }
func (s *stepRun) Target() string    { return s.x.req.Target }
func (s *stepRun) Env() string       { return s.x.req.Env }
func (s *stepRun) Emergency() bool   { return s.x.req.Emergency }
func (s *stepRun) Requester() string { return s.x.req.Requester }
func (s *stepRun) Approver() string  { return s.x.req.DecidedBy }
func (s *stepRun) Now() time.Time    { return s.x.e.cfg.Now() }
func (s *stepRun) Log() *slog.Logger { return s.x.log.With("step", s.step) }

func (s *stepRun) Fact(key string) string {
	s.x.journalMu.Lock()
	defer s.x.journalMu.Unlock()
	return s.x.run.Facts[key]
}

func (s *stepRun) Record(ctx context.Context, key, value string) error {
	s.x.journalMu.Lock()
	s.x.run.Facts[key] = value
	s.x.journalMu.Unlock()
	return s.x.save(ctx)
}

func (s *stepRun) Secret(key string) (secret.Value, bool) {
	e := s.x.e
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.mem[s.x.req.ID][key]
	return v, ok
}

func (s *stepRun) KeepSecret(key string, v secret.Value) {
	e := s.x.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mem[s.x.req.ID] == nil {
		e.mem[s.x.req.ID] = map[string]secret.Value{}
	}
	e.mem[s.x.req.ID][key] = v
}

// record is the step's journal record; callers hold journalMu.
func (s *stepRun) record() *StepRecord { return s.rec }

func (s *stepRun) Progress(ctx context.Context, detail string) {
	s.x.journalMu.Lock()
	if rec := s.record(); rec != nil {
		rec.Detail = s.x.redact(detail)
	}
	s.x.journalMu.Unlock()
	if err := s.x.save(ctx, progress(s.x.req.ID)); err != nil {
		s.Log().WarnContext(ctx, "progress not journaled", "err", err)
	}
}

// Sleep waits d on the executor's clock (Config.After), or until ctx ends.
func (s *stepRun) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.x.e.cfg.After(d):
		return nil
	}
}

// Ask posts the prompt and waits for Answer, or ctx (the step's timeout).
// A prompt with Park set does not wait: once it is journaled and posted,
// Ask returns errParked and the step ends; Answer starts the run again, and
// the repeated step's Ask returns the answer without posting anything. The
// prompt's deadline is the one the first Ask had (its step's timeout).
func (s *stepRun) Ask(ctx context.Context, p rotators.Prompt) (secret.Value, error) {
	e := s.x.e
	id := s.x.req.ID
	e.mu.Lock()
	if w := e.prompts[id]; w != nil && w.parked && w.prompt.ID == p.ID {
		// The step asked before and was parked: this is its re-run.
		select {
		case v := <-w.answer:
			delete(e.prompts, id)
			e.mu.Unlock()
			return v, s.unprompt(ctx, nil)
		default:
		}
		if w.expired(e.cfg.Now()) {
			delete(e.prompts, id)
			e.mu.Unlock()
			return secret.Value{}, s.unprompt(ctx, fmt.Errorf("nobody answered %q: %w", p.Label, context.DeadlineExceeded))
		}
		e.mu.Unlock()
		// Started without an answer (a missed wake-up): keep waiting without
		// asking twice, but journal the prompt again (reloading the run for
		// this attempt cleared it), so the progress message keeps its button.
		if err := s.journalPrompt(ctx, p); err != nil {
			return secret.Value{}, err
		}
		return secret.Value{}, errParked
	}
	w := &waiter{prompt: p, req: s.x.req, answer: make(chan secret.Value, 1), parked: p.Park && s.x.canPark}
	if d, ok := ctx.Deadline(); ok {
		// On the executor's clock, which decides when it has passed.
		w.expires = e.cfg.Now().Add(time.Until(d))
	}
	e.prompts[id] = w
	e.mu.Unlock()

	if err := s.journalPrompt(ctx, p,
		approvals.Notice{Kind: approvals.NoticeReply, RequestID: id, Event: EventInputNeeded, Step: s.step, Prompt: p.ID}); err != nil {
		e.dropPrompt(id, w)
		return secret.Value{}, err
	}
	if w.parked {
		return secret.Value{}, errParked
	}
	defer e.dropPrompt(id, w)

	var (
		v   secret.Value
		err error
	)
	select {
	case v = <-w.answer:
	case <-ctx.Done():
		err = fmt.Errorf("nobody answered %q: %w", p.Label, ctx.Err())
	}
	return v, s.unprompt(ctx, err)
}

// journalPrompt records that the step waits for p, with a progress notice
// (which shows the prompt's button) and the given notices.
func (s *stepRun) journalPrompt(ctx context.Context, p rotators.Prompt, notices ...approvals.Notice) error {
	s.x.journalMu.Lock()
	s.x.run.Prompt = &PromptRecord{ID: p.ID, Step: s.step, Label: p.Label, Secret: p.Secret, Audience: string(p.Audience), Button: p.Button}
	if rec := s.record(); rec != nil {
		rec.Status = StepWaiting
	}
	s.x.journalMu.Unlock()
	return s.x.save(ctx, append([]approvals.Notice{progress(s.x.req.ID)}, notices...)...)
}

// unprompt journals that the step no longer waits for a person; it returns
// err, or the journal's error when err is nil.
func (s *stepRun) unprompt(ctx context.Context, err error) error {
	s.x.journalMu.Lock()
	s.x.run.Prompt = nil
	if rec := s.record(); rec != nil && rec.Status == StepWaiting {
		rec.Status = StepRunning
	}
	s.x.journalMu.Unlock()
	if serr := s.x.save(ctx, progress(s.x.req.ID)); serr != nil && err == nil {
		err = serr
	}
	return err
}

// errParked ends a step whose Prompt.Park prompt has no answer yet: the run
// stops without failing, keeps its memory-only secrets and its prompt, and
// is started again by Answer (or, past the prompt's deadline, by a rescan).
var errParked = errors.New("step parked until a person answers")

// EventInputNeeded is the Notice event of a prompt waiting for a person.
const EventInputNeeded = "input_needed"

// Errors of Answer; their UserMessage is shown as is.
var (
	ErrNoPrompt       = userError("Nothing is waiting for that input any more (the step finished, timed out or the bot restarted; a restarted step asks again).")
	ErrNotYourPrompt  = userError("Only the requester can answer this.")
	ErrNotParticipant = userError("Only the requester or the approver can answer this.")
	ErrEmptyAnswer    = userError("The value was empty; nothing was changed.")
)

type userError string

func (e userError) Error() string       { return string(e) }
func (e userError) UserMessage() string { return string(e) }

// Answer delivers a person's answer to an open prompt. Who may answer is
// checked here against the stored request, not taken from the button.
func (e *Executor) Answer(ctx context.Context, requestID, promptID, user string, v secret.Value) error {
	w, err := e.waiterFor(requestID, promptID, user)
	if err != nil {
		return err
	}
	if w.prompt.Secret && v.IsZero() {
		return ErrEmptyAnswer
	}
	select {
	case w.answer <- v:
		e.log.InfoContext(ctx, "prompt answered", "request_id", requestID, "prompt", promptID, "user", user)
	default:
		return ErrNoPrompt
	}
	if w.parked {
		// Nothing is waiting on the channel: start the step again.
		e.Wake(requestID)
	}
	return nil
}

// MayAnswer reports why user may not answer the prompt (nil when they may),
// so the transport refuses before asking someone to paste a secret.
func (e *Executor) MayAnswer(requestID, promptID, user string) error {
	_, err := e.waiterFor(requestID, promptID, user)
	return err
}

// waiterFor finds the open prompt and checks user is in its audience.
func (e *Executor) waiterFor(requestID, promptID, user string) (*waiter, error) {
	e.mu.Lock()
	w, ok := e.prompts[requestID]
	e.mu.Unlock()
	if !ok || w.prompt.ID != promptID {
		return nil, ErrNoPrompt
	}
	allowed := []string{w.req.Requester}
	if w.prompt.Audience == rotators.AudienceParticipants {
		allowed = append(allowed, w.req.DecidedBy)
	}
	if !slices.Contains(allowed, user) {
		if w.prompt.Audience == rotators.AudienceParticipants {
			return nil, ErrNotParticipant
		}
		return nil, ErrNotYourPrompt
	}
	return w, nil
}

// PromptOpen reports whether request id waits for prompt promptID (for the transport, before it opens a modal).
func (e *Executor) PromptOpen(requestID, promptID string) (rotators.Prompt, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.prompts[requestID]
	if !ok || w.prompt.ID != promptID {
		return rotators.Prompt{}, false
	}
	return w.prompt, true
}
