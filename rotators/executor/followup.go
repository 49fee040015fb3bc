package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
)

// Notice events of follow-ups (NoticeReply, Step = the follow-up's name).
const (
	EventFollowUpScheduled = "followup_scheduled"
	EventFollowUpStarted   = "followup_started"
	EventFollowUpDone      = "followup_done"
	EventFollowUpFailed    = "followup_failed"
	// EventFollowUpRunNow and EventFollowUpPostponed carry the Actor who pressed the button.
	EventFollowUpRunNow    = "followup_run_now"
	EventFollowUpPostponed = "followup_postponed"
	// EventFollowUpCancelled: a rollback request cancelled it (on the original request's thread).
	EventFollowUpCancelled = "followup_cancelled"
)

// followUpTimeLayout is how due times appear in outcomes, history and messages.
const followUpTimeLayout = "2006-01-02 15:04 MST"

// errNotYet: a due follow-up cannot start because its request is still open
// (approved or running) but not in flight here; it is retried after
// RescanInterval, by which time the rescan has picked the request up.
var errNotYet = errors.New("its request has not finished yet")

func formatTime(t time.Time) string { return t.UTC().Format(followUpTimeLayout) }

func reply(requestID, event, step, actor string) approvals.Notice {
	return approvals.Notice{Kind: approvals.NoticeReply, RequestID: requestID, Event: event, Step: step, Actor: actor}
}

// scheduleFollowUps adds the plan's follow-ups to the run (not yet saved:
// the caller's finish saves them with Phase done) and returns their notices.
func (x *runner) scheduleFollowUps() []approvals.Notice {
	now := x.e.cfg.Now()
	var notices []approvals.Notice
	for _, f := range x.plan.FollowUps {
		if _, ok := x.run.FollowUp(f.Name); ok {
			continue // a repeated finish after a failed journal write
		}
		due := now.Add(f.Delay)
		x.run.FollowUps = append(x.run.FollowUps, FollowUpRecord{
			Name: f.Name, Title: f.Title, Status: FollowUpScheduled, DueAt: due, Steps: pendingSteps(f.Steps),
			History: []FollowUpEvent{{At: now, Action: ActionScheduled, Detail: "due " + formatTime(due)}},
		})
		notices = append(notices, reply(x.req.ID, EventFollowUpScheduled, f.Name, ""))
	}
	return notices
}

// schedule is the loop's follow-up timer state.
type schedule struct {
	// scanned is the clock reading of the last follow-up scan: a due time at
	// or before it was seen and either started or found blocked (a blocked
	// one is retried on a release, a wake-up or the rescan tick).
	scanned time.Time
	// until is when the armed timer should fire.
	until time.Time
	// parked: the last timer fired before until on the executor's clock (an
	// immediate Config.After). Re-arming would spin, so the loop waits for
	// another event.
	parked bool
}

func (s *schedule) fired(now time.Time) {
	if now.Before(s.until) {
		s.parked = true
	}
}

// followUpTimer arms a timer for the next follow-up not yet seen due, at
// most RescanInterval away; nil when there is none (or it is parked).
func (e *Executor) followUpTimer(ctx context.Context, s *schedule) <-chan time.Time {
	if s.parked {
		return nil
	}
	next, ok, err := e.cfg.Journal.NextFollowUp(ctx)
	if err != nil {
		e.log.ErrorContext(ctx, "reading the follow-up schedule failed; retrying on the next rescan", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	now := e.cfg.Now()
	d := RescanInterval
	if next.After(s.scanned) {
		d = min(next.Sub(now), RescanInterval)
	}
	d = max(d, 0)
	s.until = now.Add(d)
	return e.cfg.After(d)
}

// scanFollowUps starts every due follow-up whose request is not in flight,
// and returns the clock reading it scanned at.
func (e *Executor) scanFollowUps(ctx context.Context) time.Time {
	now := e.cfg.Now()
	refs, err := e.cfg.Journal.DueFollowUps(ctx, now)
	if err != nil {
		e.log.ErrorContext(ctx, "looking for due follow-ups failed; retrying on the next rescan", "err", err)
		return now
	}
	due := make(map[string]bool, len(refs))
	for _, ref := range refs {
		due[retryKey(ref.RequestID, ref.Name)] = true
		e.startFollowUp(ctx, ref, now)
	}
	e.mu.Lock()
	for key := range e.fuRetry {
		if !due[key] {
			delete(e.fuRetry, key) // no longer due: it ran, moved or was cancelled
		}
	}
	e.mu.Unlock()
	return now
}

func retryKey(requestID, name string) string { return requestID + "\x00" + name }

func (e *Executor) startFollowUp(ctx context.Context, ref FollowUpRef, now time.Time) {
	key := retryKey(ref.RequestID, ref.Name)
	e.mu.Lock()
	notBefore, deferred := e.fuRetry[key]
	e.mu.Unlock()
	if deferred && now.Before(notBefore) {
		return
	}
	// Held: the request or another follow-up of it is in flight; its
	// release wakes the loop, which finds this one again.
	if !e.claim(ref.RequestID) {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.release(ref.RequestID)
		err := e.runFollowUp(ctx, ref.RequestID, ref.Name)
		e.mu.Lock()
		if err == nil || errors.Is(err, errStopped) {
			delete(e.fuRetry, key)
		} else {
			e.fuRetry[key] = now.Add(RescanInterval)
		}
		e.mu.Unlock()
		switch {
		case err == nil, errors.Is(err, errStopped), ctx.Err() != nil:
		case errors.Is(err, errNotYet):
			e.log.InfoContext(ctx, "follow-up due, but its request has not finished; retrying later",
				"request_id", ref.RequestID, "follow_up", ref.Name)
		default:
			e.log.ErrorContext(ctx, "follow-up stopped on an internal error; retrying later",
				"request_id", ref.RequestID, "follow_up", ref.Name, "err", err)
		}
	}()
}

// runFollowUp runs (or resumes) one follow-up. The caller holds the request's key.
func (e *Executor) runFollowUp(ctx context.Context, requestID, name string) error {
	req, err := e.cfg.Requests.Get(ctx, requestID)
	if err != nil {
		return fmt.Errorf("load request: %w", err)
	}
	if req.State.Open() {
		return errNotYet
	}
	run, err := e.cfg.Journal.LoadRun(ctx, requestID)
	if err != nil {
		return fmt.Errorf("load journal: %w", err)
	}
	if run == nil {
		return fmt.Errorf("follow-up %q is indexed but request %s has no journal", name, requestID)
	}
	fu, ok := run.FollowUp(name)
	if !ok {
		return fmt.Errorf("follow-up %q is indexed but not in the journal of %s", name, requestID)
	}
	now := e.cfg.Now()
	switch {
	case fu.Status == FollowUpScheduled && !fu.DueAt.After(now):
	case fu.Status == FollowUpRunning:
	default:
		return nil // postponed, finished or cancelled since the scan
	}
	log := e.log.With("request_id", req.ID, "target", req.Target, "follow_up", name)
	x := &runner{e: e, req: req, run: run, log: log}
	def, why := e.followUpDef(req, name)
	if why != "" {
		return x.failFollowUp(ctx, fu, why)
	}
	if fu.Status == FollowUpScheduled {
		fu.Title = def.Title
		fu.Status = FollowUpRunning
		fu.StartedAt, fu.FinishedAt, fu.Error = now, time.Time{}, ""
		fu.Steps = restartSteps(fu.Steps, def.Steps)
		fu.History = append(fu.History, FollowUpEvent{At: now, Action: ActionStarted})
		// Intent before action: running is journaled before any step.
		if err := x.save(ctx, progress(req.ID), reply(req.ID, EventFollowUpStarted, name, "")); err != nil {
			return err
		}
		log.InfoContext(ctx, "follow-up started")
	} else {
		// A prompt open when the process stopped died with it; the step asks again.
		run.Prompt = nil
		fu.Steps = align(fu.Steps, def.Steps)
		log.InfoContext(ctx, "resuming follow-up")
	}
	for i, step := range def.Steps {
		rec := &fu.Steps[i]
		if rec.Status == StepDone || rec.Status == StepSkipped {
			continue
		}
		err := x.attempt(ctx, step, rec)
		switch {
		case err == nil, errors.Is(err, rotators.ErrNothingToUndo):
			continue
		case errors.Is(err, errStopped):
			log.InfoContext(ctx, "follow-up interrupted by shutdown; it will resume")
			return err
		}
		if rec.Status != StepFailed {
			// A lost memory-only secret: a follow-up has no producing step to go back to.
			rec.Status, rec.Error, rec.FinishedAt = StepFailed, x.redact(err.Error()), e.cfg.Now()
		}
		return x.failFollowUp(ctx, fu, fmt.Sprintf("step %q failed: %s", rec.Title, rec.Error))
	}
	fu.Status = FollowUpDone
	fu.FinishedAt = e.cfg.Now()
	fu.History = append(fu.History, FollowUpEvent{At: fu.FinishedAt, Action: ActionDone})
	if err := x.save(ctx, progress(req.ID), reply(req.ID, EventFollowUpDone, name, "")); err != nil {
		return err
	}
	log.InfoContext(ctx, "follow-up done")
	return nil
}

// followUpDef finds the follow-up in the target's current plan, or says why
// it cannot run (the configuration changed since it was scheduled).
func (e *Executor) followUpDef(req *approvals.Request, name string) (rotators.FollowUp, string) {
	rot, ok := e.cfg.Rotators[req.Target]
	if !ok {
		return rotators.FollowUp{}, fmt.Sprintf("target %q is no longer configured", req.Target)
	}
	plan := rot.Plan(rotators.Spec{RequestID: req.ID, Target: req.Target, Env: req.Env, Emergency: req.Emergency})
	for _, f := range plan.FollowUps {
		if f.Name == name {
			return f, ""
		}
	}
	return rotators.FollowUp{}, fmt.Sprintf("%q is no longer part of the target's plan (the configuration changed); nothing was done", name)
}

// restartSteps prepares a follow-up's steps for a (re)start: steps are
// matched by name with the current plan; a step done in an earlier, failed
// run stays done (steps are idempotent, and the run picks up where it
// failed); every other step starts afresh, with a full set of attempts.
func restartSteps(recs []StepRecord, steps []rotators.Step) []StepRecord {
	out := align(recs, steps)
	for i := range out {
		if out[i].Status != StepDone {
			out[i] = StepRecord{Name: out[i].Name, Title: out[i].Title, Status: StepPending}
		}
	}
	return out
}

// failFollowUp ends a follow-up failed, visibly. It is not rolled back.
func (x *runner) failFollowUp(ctx context.Context, fu *FollowUpRecord, why string) error {
	why = x.redact(why)
	now := x.e.cfg.Now()
	fu.Status, fu.Error, fu.FinishedAt = FollowUpFailed, why, now
	fu.History = append(fu.History, FollowUpEvent{At: now, Action: ActionFailed, Detail: why})
	if err := x.save(ctx, progress(x.req.ID), reply(x.req.ID, EventFollowUpFailed, fu.Name, "")); err != nil {
		return err
	}
	x.log.WarnContext(ctx, "follow-up failed", "err", why)
	return nil
}

// FollowUpNow makes a scheduled or failed follow-up due at once and wakes
// the loop to run it. It checks state only: whether actor may do this is the
// caller's decision (the requester or an approver of the target). Refusals
// are errors with a UserMessage; other errors are internal.
func (e *Executor) FollowUpNow(ctx context.Context, requestID, name, actor string) error {
	err := e.changeFollowUp(ctx, requestID, name, func(_ *approvals.Request, fu *FollowUpRecord, now time.Time) (approvals.Notice, error) {
		if !fu.CanRunNow() {
			return approvals.Notice{}, followUpRefusal(requestID, fu, "run")
		}
		detail := "was due " + formatTime(fu.DueAt)
		if fu.Status == FollowUpFailed {
			detail = "after it failed: " + fu.Error
		}
		fu.Status, fu.DueAt = FollowUpScheduled, now
		fu.History = append(fu.History, FollowUpEvent{At: now, Actor: actor, Action: ActionRunNow, Detail: detail})
		return reply(requestID, EventFollowUpRunNow, name, actor), nil
	})
	if err != nil {
		return err
	}
	e.log.InfoContext(ctx, "follow-up run now", "request_id", requestID, "follow_up", name, "actor", actor)
	// A person asked: an internal-error backoff does not delay it.
	e.mu.Lock()
	delete(e.fuRetry, retryKey(requestID, name))
	e.mu.Unlock()
	e.wakeFollowUps()
	return nil
}

// PostponeFollowUp moves a scheduled follow-up to max(DueAt, now) plus its
// PostponeBy (its Delay when zero, both from the target's current plan) and
// returns the new due time. Like FollowUpNow it checks state, not who asks.
func (e *Executor) PostponeFollowUp(ctx context.Context, requestID, name, actor string) (time.Time, error) {
	var due time.Time
	err := e.changeFollowUp(ctx, requestID, name, func(req *approvals.Request, fu *FollowUpRecord, now time.Time) (approvals.Notice, error) {
		if !fu.CanPostpone() {
			return approvals.Notice{}, followUpRefusal(requestID, fu, "postpone")
		}
		def, why := e.followUpDef(req, name)
		if why != "" {
			return approvals.Notice{}, userError(fmt.Sprintf("%s of %s cannot be postponed: %s. When due, it fails and says so.", quote(fu.Title), requestID, why))
		}
		by := def.PostponeBy
		if by <= 0 {
			by = def.Delay
		}
		if by <= 0 {
			return approvals.Notice{}, userError(fmt.Sprintf("%s of %s has no delay to postpone it by; run it now or leave it as scheduled.", quote(fu.Title), requestID))
		}
		from := fu.DueAt
		if now.After(from) {
			from = now
		}
		due = from.Add(by)
		fu.History = append(fu.History, FollowUpEvent{At: now, Actor: actor, Action: ActionPostponed,
			Detail: fmt.Sprintf("from %s to %s", formatTime(fu.DueAt), formatTime(due))})
		fu.DueAt = due
		return reply(requestID, EventFollowUpPostponed, name, actor), nil
	})
	if err != nil {
		return time.Time{}, err
	}
	e.log.InfoContext(ctx, "follow-up postponed", "request_id", requestID, "follow_up", name, "actor", actor, "due_at", due)
	e.wakeFollowUps()
	return due, nil
}

// changeFollowUp applies change to one follow-up under the request's key and
// journals it with change's notice. It refuses, rather than waits, while the
// request is in flight: a person pressing a button gets an answer at once.
func (e *Executor) changeFollowUp(ctx context.Context, requestID, name string,
	change func(req *approvals.Request, fu *FollowUpRecord, now time.Time) (approvals.Notice, error)) error {
	req, err := e.cfg.Requests.Get(ctx, requestID)
	if err != nil {
		if errors.Is(err, approvals.ErrNotFound) {
			return userError(fmt.Sprintf("There is no request %s. Check the ID in the request's thread or with /rotate status.", requestID))
		}
		return fmt.Errorf("load request %s: %w", requestID, err)
	}
	if !e.claim(requestID) {
		if run, err := e.cfg.Journal.LoadRun(ctx, requestID); err == nil && run != nil {
			if fu, ok := run.FollowUp(name); ok && fu.Status == FollowUpRunning {
				return userError(fmt.Sprintf("%s of %s is running right now; its result will be posted in the thread.", quote(fu.Title), requestID))
			}
		}
		return userError(fmt.Sprintf("Request %s is busy right now (a step or follow-up of it is running). Try again once it has finished.", requestID))
	}
	defer e.release(requestID)
	run, err := e.cfg.Journal.LoadRun(ctx, requestID)
	if err != nil {
		return fmt.Errorf("load journal of %s: %w", requestID, err)
	}
	if run == nil {
		return userError(fmt.Sprintf("Request %s never ran, so it has no follow-ups.", requestID))
	}
	fu, ok := run.FollowUp(name)
	if !ok {
		return unknownFollowUp(run, name)
	}
	n, err := change(req, fu, e.cfg.Now())
	if err != nil {
		return err
	}
	if err := e.cfg.Journal.SaveRun(ctx, run, n, progress(requestID)); err != nil {
		return fmt.Errorf("journal follow-up %s of %s: %w", name, requestID, err)
	}
	return nil
}

func unknownFollowUp(run *Run, name string) error {
	if len(run.FollowUps) == 0 {
		return userError(fmt.Sprintf("Request %s has no follow-ups.", run.RequestID))
	}
	names := make([]string, 0, len(run.FollowUps))
	for _, f := range run.FollowUps {
		names = append(names, f.Name)
	}
	return userError(fmt.Sprintf("Request %s has no follow-up %q; its follow-ups are: %s.", run.RequestID, name, strings.Join(names, ", ")))
}

// followUpRefusal explains why a follow-up in its current status cannot be run or postponed.
func followUpRefusal(requestID string, fu *FollowUpRecord, verb string) error {
	what := quote(fu.Title) + " of " + requestID
	switch fu.Status {
	case FollowUpRunning:
		return userError(what + " is already running; its result will be posted in the thread.")
	case FollowUpDone:
		return userError(fmt.Sprintf("%s already ran (finished %s); there is nothing left to %s.", what, formatTime(fu.FinishedAt), verb))
	case FollowUpCancelled:
		return userError(fmt.Sprintf("%s was cancelled (%s); it will not run.", what, lastDetail(fu, ActionCancelled)))
	case FollowUpFailed:
		return userError(fmt.Sprintf("%s failed (%s) and is not scheduled, so there is nothing to postpone. Fix the cause, then use Run now.", what, fu.Error))
	}
	return userError(fmt.Sprintf("%s is %s and cannot be %s now.", what, fu.Status, verb))
}

func lastDetail(fu *FollowUpRecord, action FollowUpAction) string {
	for i := len(fu.History) - 1; i >= 0; i-- {
		if fu.History[i].Action == action && fu.History[i].Detail != "" {
			return fu.History[i].Detail
		}
	}
	return string(action)
}

func quote(s string) string { return "“" + s + "”" }
