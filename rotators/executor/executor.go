// Package executor runs approved rotations, step by step, and is where crash
// safety lives (once, for every kind): forward steps, automatic rollback,
// scheduled follow-ups and rollback requests all go through the same
// journaled step machinery.
//
// Rules:
//   - The journal is written before every step attempt and after it, and a
//     step records its intent (Run.Record) before each external call; so on
//     start-up every running request resumes from its journal, repeating at
//     most the one step that was in flight, which steps are written to allow.
//   - One writer per run: the approved→running claim is a transaction, and a
//     process-local in-flight set keyed by request ID guards everything that
//     writes a request's journal — its steps, its follow-ups, a rollback
//     request cancelling them, and the run-now/postpone buttons (which refuse
//     while the key is held rather than wait).
//   - A failed step starts the plan's rollback; a stop (SIGTERM) does not: the
//     run is left as journaled and resumed on the next start.
//   - Follow-ups (rotators.FollowUp) are scheduled by the same journal write
//     that records the forward steps' success, so the request finishes and
//     frees its target slot while the tail stays scheduled. The journal
//     indexes them by due time, so they survive restarts; the loop sleeps
//     until the next one (Config.After, at most RescanInterval) and runs each
//     once. A follow-up is never rolled back: a failure leaves it failed,
//     visibly, until someone runs it again; a stop leaves it running and the
//     next start resumes it. It never runs while its request is in flight.
//   - A rollback request (approvals.Request.RollbackOf) runs the original
//     plan's Rollback steps as its forward steps, over a copy of the original
//     run's facts, so manual and automatic rollback are one code path. Before
//     its first step it cancels the original's pending follow-ups (they would
//     undo the restore). It schedules no follow-ups and is never itself
//     rolled back: a failed step ends it failed, "manual action needed".
//   - The exported methods that act for a person (FollowUpNow,
//     PostponeFollowUp, CheckRevertible) check the state of things, not who
//     is asking: authorization is the caller's job. Their refusals are
//     errors with a UserMessage saying what happened and what to do.
//   - A step waiting for a person on a Prompt.Park prompt holds no
//     goroutine: the step ends once the prompt is journaled and posted, and
//     the answer starts the run again (the same attempt; the repeated step's
//     Ask returns the answer). Its memory-only secrets stay meanwhile. Past
//     the first Ask's deadline, the next rescan (RescanInterval) starts it to
//     fail as timed out. A restart loses the prompt, as it always did: the
//     resumed step asks again.
//   - Secret values stay in process memory, are scrubbed from every error
//     message that reaches the journal, and are dropped when the run ends.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Named limits.
const (
	// RescanInterval is how often approved requests are looked for, in case a wake-up was missed.
	RescanInterval = time.Minute
	// maxErrorLen caps an error message kept in the journal and shown in Slack.
	maxErrorLen = 400
	// maxSecretLostRestarts bounds how often a run goes back to re-create a lost secret.
	maxSecretLostRestarts = 3
	// retryBase is the first backoff between attempts of a failing step; it doubles.
	retryBase = 2 * time.Second
)

// Requests is what the executor needs of the approvals service.
type Requests interface {
	Get(ctx context.Context, id string) (*approvals.Request, error)
	ListOpen(ctx context.Context) ([]*approvals.Request, error)
	MarkRunning(ctx context.Context, id string) (*approvals.Request, bool, error)
	Finish(ctx context.Context, id string, to approvals.State, outcome string) (*approvals.Request, error)
}

// Observer receives step timings (metrics). May be nil.
type Observer interface {
	StepFinished(target, step string, d time.Duration, err error)
}

// Config builds an Executor.
type Config struct {
	Requests Requests
	Journal  Journal
	Rotators map[string]rotators.Rotator // by target name
	Now      func() time.Time
	Log      *slog.Logger
	Observer Observer
	// After waits between attempts, in Run.Sleep, and until the next
	// follow-up is due; tests inject a fake clock's. Default time.After. An
	// After that fires before d has passed on Now's clock (an immediate one)
	// is detected: the scheduler then waits for a wake-up or RescanInterval
	// instead of spinning.
	After func(time.Duration) <-chan time.Time
	// StepDone, if set, is called after a step's completion is journaled.
	// It exists for fault injection (the crash/resume end-to-end suite kills
	// the process here); production leaves it nil.
	StepDone func(requestID, step string)
}

// Executor runs rotations.
type Executor struct {
	cfg  Config
	log  *slog.Logger
	wake chan string
	// fuWake asks the loop to look for due follow-ups (after a guard is
	// released, or a follow-up was made due by a person).
	fuWake chan struct{}

	mu sync.Mutex
	// inflight holds the request IDs whose journal is being written in this
	// process; the channel is closed when the key is released.
	inflight map[string]chan struct{}
	mem      map[string]map[string]secret.Value // request → memory-only secrets
	prompts  map[string]*waiter                 // request → open prompt
	// fuRetry holds follow-ups that could not start (an internal error, or
	// their request is open but not in flight): not before this time, so a
	// release does not retry them in a tight loop.
	fuRetry map[string]time.Time
	wg      sync.WaitGroup
}

type waiter struct {
	prompt rotators.Prompt
	req    *approvals.Request
	answer chan secret.Value
	// parked: the step ended while waiting (Prompt.Park), so nothing
	// receives on answer; the run is started again once answer holds a
	// value, or once expires (the first Ask's deadline; zero: none) passed.
	parked  bool
	expires time.Time
}

func (w *waiter) expired(now time.Time) bool {
	return !w.expires.IsZero() && !now.Before(w.expires)
}

// dropPrompt forgets request id's prompt if it is still w.
func (e *Executor) dropPrompt(id string, w *waiter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prompts[id] == w {
		delete(e.prompts, id)
	}
}

// New builds an Executor. Call Run to start it.
func New(cfg Config) *Executor {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	return &Executor{
		cfg:      cfg,
		log:      cfg.Log,
		wake:     make(chan string, 256),
		fuWake:   make(chan struct{}, 1),
		inflight: map[string]chan struct{}{},
		mem:      map[string]map[string]secret.Value{},
		prompts:  map[string]*waiter{},
		fuRetry:  map[string]time.Time{},
	}
}

// Wake asks the executor to pick up an approved request. It never blocks.
func (e *Executor) Wake(id string) {
	select {
	case e.wake <- id:
	default: // the rescan finds it
	}
}

// Run resumes every approved or running request and every due or
// interrupted follow-up, then runs newly approved requests and follow-ups as
// they fall due until ctx ends; then it waits for the runs in flight to reach
// a safe point (they stop at their current step, journaled) and returns.
func (e *Executor) Run(ctx context.Context) error {
	defer e.wg.Wait()
	if err := e.rescan(ctx); err != nil {
		e.log.ErrorContext(ctx, "resume on start failed", "err", err)
	}
	// Follow-ups after requests: a request resumed above holds its key, so
	// its follow-ups wait for it (its release wakes the loop).
	var sched schedule
	sched.scanned = e.scanFollowUps(ctx)
	tick := time.NewTicker(RescanInterval)
	defer tick.Stop()
	for {
		due := e.followUpTimer(ctx, &sched)
		select {
		case <-ctx.Done():
			return nil
		case id := <-e.wake:
			e.start(ctx, id)
		case <-e.fuWake:
			sched.scanned = e.scanFollowUps(ctx)
		case <-due:
			sched.fired(e.cfg.Now())
			sched.scanned = e.scanFollowUps(ctx)
			continue // keep a parked timer parked until another event
		case <-tick.C:
			if err := e.rescan(ctx); err != nil {
				e.log.ErrorContext(ctx, "rescan failed", "err", err)
			}
			sched.scanned = e.scanFollowUps(ctx)
		}
		sched.parked = false
	}
}

// Idle reports whether no run is in flight (for tests and shutdown logs).
func (e *Executor) Idle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.inflight) == 0
}

func (e *Executor) rescan(ctx context.Context) error {
	open, err := e.cfg.Requests.ListOpen(ctx)
	if err != nil {
		return fmt.Errorf("list open requests: %w", err)
	}
	for _, r := range open {
		if r.State == approvals.StateApproved || r.State == approvals.StateRunning {
			e.start(ctx, r.ID)
		}
	}
	return nil
}

func (e *Executor) start(ctx context.Context, id string) {
	if !e.claim(id) {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := e.execute(ctx, id)
		parked := errors.Is(err, errParked)
		e.releaseRun(id, parked)
		if err != nil && !parked && ctx.Err() == nil {
			e.log.ErrorContext(ctx, "rotation stopped on an internal error", "request_id", id, "err", err)
		}
	}()
}

// claim takes request id's in-flight key, or reports that it is held or
// that the request is parked on a prompt nobody has answered yet (a rescan
// must not run the step again for nothing).
func (e *Executor) claim(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, busy := e.inflight[id]; busy {
		return false
	}
	if w := e.prompts[id]; w != nil && w.parked && len(w.answer) == 0 && !w.expired(e.cfg.Now()) {
		return false
	}
	e.inflight[id] = make(chan struct{})
	return true
}

// claimWait takes request id's in-flight key, waiting while another
// goroutine holds it; errStopped if ctx ends first.
func (e *Executor) claimWait(ctx context.Context, id string) error {
	for {
		e.mu.Lock()
		held, busy := e.inflight[id]
		if !busy {
			e.inflight[id] = make(chan struct{})
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return errStopped
		}
	}
}

// release gives back a key taken for a follow-up, a button or a rollback's
// cancellation. A run parked on a prompt keeps its prompt and secrets.
func (e *Executor) release(id string) { e.releaseRun(id, e.parked(id)) }

// releaseRun gives the key back, drops the request's memory-only state (kept
// while the run is parked on a prompt: the answer continues it) and wakes
// the loop: a follow-up that was due while the key was held may run now.
func (e *Executor) releaseRun(id string, parked bool) {
	e.mu.Lock()
	if held, ok := e.inflight[id]; ok {
		close(held)
		delete(e.inflight, id)
	}
	answered := false
	if w := e.prompts[id]; parked && w != nil && w.parked {
		// An answer that came while the step was still parking found the
		// key held; its wake-up was refused, so start the run here.
		answered = len(w.answer) > 0
	} else {
		delete(e.mem, id)
		delete(e.prompts, id)
	}
	e.mu.Unlock()
	if answered {
		e.Wake(id)
	}
	e.wakeFollowUps()
}

// wakeFollowUps asks the loop to look for due follow-ups. It never blocks:
// one pending wake-up is enough.
func (e *Executor) wakeFollowUps() {
	select {
	case e.fuWake <- struct{}{}:
	default:
	}
}

// errStopped means the process is stopping: the run stays journaled as is.
var errStopped = errors.New("executor stopping")

// execute claims (or resumes) one request and runs it to its end.
func (e *Executor) execute(ctx context.Context, id string) error {
	req, err := e.cfg.Requests.Get(ctx, id)
	if err != nil {
		return err
	}
	if req.State != approvals.StateApproved && req.State != approvals.StateRunning {
		return nil
	}
	rot, ok := e.cfg.Rotators[req.Target]
	if !ok {
		// The config lost the target while a request was open: fail it visibly.
		return e.finishWithoutRun(ctx, req, fmt.Sprintf("target %q is no longer configured", req.Target))
	}
	plan := rot.Plan(rotators.Spec{RequestID: req.ID, Target: req.Target, Env: req.Env, Emergency: req.Emergency, RollbackOf: req.RollbackOf})
	if req.RollbackOf != "" {
		// A rollback request runs the rollback steps as its forward steps:
		// nothing undoes them and nothing is scheduled after them.
		plan = rotators.Plan{Steps: plan.Rollback, Notes: plan.Notes}
	}

	run, err := e.cfg.Journal.LoadRun(ctx, id)
	if err != nil {
		return fmt.Errorf("load journal: %w", err)
	}
	log := e.log.With("request_id", req.ID, "target", req.Target)
	unparked := e.parked(id)
	if run == nil {
		facts := map[string]string{}
		if req.RollbackOf != "" {
			orig, why, err := e.revertible(ctx, req.RollbackOf, req)
			if err != nil {
				return err
			}
			if why != "" {
				log.WarnContext(ctx, "rollback request refused", "rollback_of", req.RollbackOf, "why", why)
				return e.finishWithoutRun(ctx, req, "Rollback refused. "+why)
			}
			// The rollback steps read what the original's forward steps recorded.
			maps.Copy(facts, orig.Facts)
		}
		run = newRun(req, plan, facts)
		// The journal exists before the request is marked running: a crash
		// in between resumes a run that has not done anything yet.
		if err := e.cfg.Journal.SaveRun(ctx, run, progress(req.ID)); err != nil {
			return fmt.Errorf("create journal: %w", err)
		}
	} else {
		if !unparked {
			run.Resumes++
			log.InfoContext(ctx, "resuming rotation", "phase", run.Phase, "resumes", run.Resumes)
		}
		reconcile(run, plan)
	}
	if req.RollbackOf != "" && run.Phase == PhaseForward {
		// Every (re)start, before any rollback step: idempotent, and it covers
		// a crash between creating this journal and cancelling.
		if err := e.cancelFollowUpsOf(ctx, req.RollbackOf, req.ID, log); err != nil {
			return err
		}
	}
	if req, _, err = e.cfg.Requests.MarkRunning(ctx, id); err != nil {
		return err
	}
	ex := &runner{e: e, req: req, run: run, plan: plan, log: log, canPark: true, unparked: unparked}
	return ex.drive(ctx)
}

// parked reports whether request id's run ended on a parked prompt (its
// next start continues it; it is not a resume after a restart).
func (e *Executor) parked(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.prompts[id]
	return w != nil && w.parked
}

func (e *Executor) finishWithoutRun(ctx context.Context, req *approvals.Request, why string) error {
	if req.State == approvals.StateApproved {
		if _, _, err := e.cfg.Requests.MarkRunning(ctx, req.ID); err != nil {
			return err
		}
	}
	_, err := e.cfg.Requests.Finish(ctx, req.ID, approvals.StateFailed, why)
	return err
}

func newRun(req *approvals.Request, plan rotators.Plan, facts map[string]string) *Run {
	return &Run{RequestID: req.ID, Target: req.Target, Phase: PhaseForward, Facts: facts, Steps: pendingSteps(plan.Steps)}
}

func pendingSteps(steps []rotators.Step) []StepRecord {
	out := make([]StepRecord, 0, len(steps))
	for _, s := range steps {
		out = append(out, StepRecord{Name: s.Name, Title: s.Title, Status: StepPending})
	}
	return out
}

// reconcile aligns a journal read back from disk with the current plan: step
// names are the identity, so records are matched by name and a step the
// journal does not know starts pending. A step that was waiting for a person
// lost its prompt with the process: it runs again.
func reconcile(run *Run, plan rotators.Plan) {
	if run.Facts == nil {
		run.Facts = map[string]string{}
	}
	run.Prompt = nil
	run.Steps = align(run.Steps, plan.Steps)
	if run.Phase == PhaseRollback {
		run.Rollback = align(run.Rollback, plan.Rollback)
	}
}

func align(recs []StepRecord, steps []rotators.Step) []StepRecord {
	byName := map[string]StepRecord{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	out := make([]StepRecord, 0, len(steps))
	for _, s := range steps {
		r, ok := byName[s.Name]
		if !ok {
			r = StepRecord{Name: s.Name, Status: StepPending}
		}
		r.Title = s.Title
		if r.Status == StepWaiting {
			r.Status = StepRunning
		}
		out = append(out, r)
	}
	return out
}

func progress(id string) approvals.Notice {
	return approvals.Notice{Kind: approvals.NoticeProgress, RequestID: id}
}

// runner drives one request's run.
type runner struct {
	e    *Executor
	req  *approvals.Request
	run  *Run
	plan rotators.Plan
	log  *slog.Logger
	// canPark: a Prompt.Park prompt may end this run's step (errParked).
	// Forward and rollback steps of a request; not follow-ups, whose
	// scheduler has no way to start them again on an answer.
	canPark bool
	// unparked: this run continues a step that parked on a prompt; its
	// next attempt is the parked attempt going on, not a new one.
	unparked bool
	// journalMu serialises journal writes from a step (Record, Progress) with the runner's own.
	journalMu sync.Mutex
}

func (x *runner) save(ctx context.Context, notices ...approvals.Notice) error {
	x.journalMu.Lock()
	defer x.journalMu.Unlock()
	// Journal writes must land even while the process stops: a step that
	// finished is recorded as finished. A short detached context bounds them.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalWriteTimeout)
	defer cancel()
	if err := x.e.cfg.Journal.SaveRun(wctx, x.run, notices...); err != nil {
		return fmt.Errorf("journal %s: %w", x.run.RequestID, err)
	}
	return nil
}

// journalWriteTimeout bounds one journal commit.
const journalWriteTimeout = 10 * time.Second

func (x *runner) drive(ctx context.Context) error {
	if x.run.Phase == PhaseForward {
		failed, err := x.forward(ctx)
		if err != nil {
			return err
		}
		if x.req.RollbackOf != "" {
			return x.finishRollbackRequest(ctx, failed)
		}
		if failed == "" {
			// The same journal write that records success schedules the
			// follow-ups: a crash can lose neither without the other.
			scheduled := x.scheduleFollowUps()
			return x.finish(ctx, approvals.StateSucceeded, x.successOutcome(), scheduled...)
		}
		x.run.Phase = PhaseRollback
		x.run.FailedStep = failed
		for _, s := range x.plan.Rollback {
			x.run.Rollback = append(x.run.Rollback, StepRecord{Name: s.Name, Title: s.Title, Status: StepPending})
		}
		if err := x.save(ctx, progress(x.req.ID)); err != nil {
			return err
		}
	}
	if x.run.Phase == PhaseRollback {
		state, outcome, err := x.rollback(ctx)
		if err != nil {
			return err
		}
		return x.finish(ctx, state, outcome)
	}
	// PhaseDone: the journal has the result; a crash came before Finish.
	return x.finishRequest(ctx)
}

func (x *runner) successOutcome() string {
	out := fmt.Sprintf("%d steps completed", len(x.plan.Steps))
	for _, f := range x.run.FollowUps {
		if f.Status == FollowUpScheduled {
			out += fmt.Sprintf("; %q is scheduled for %s", f.Title, formatTime(f.DueAt))
		}
	}
	return out
}

// forward runs the plan's steps; it returns the failed step's name, or "".
func (x *runner) forward(ctx context.Context) (string, error) {
	lostRestarts := 0
	for i := 0; i < len(x.plan.Steps); i++ {
		step := x.plan.Steps[i]
		rec := &x.run.Steps[i]
		if rec.Status == StepDone || rec.Status == StepSkipped {
			continue
		}
		err := x.attempt(ctx, step, rec)
		var lost *rotators.SecretLostError
		switch {
		case err == nil:
			continue
		case errors.Is(err, rotators.ErrNothingToUndo) && x.req.RollbackOf != "":
			// A rollback request's step with nothing to undo is skipped, not failed.
			continue
		case errors.Is(err, errStopped), errors.Is(err, errParked):
			return "", err
		case errors.As(err, &lost) && lostRestarts < maxSecretLostRestarts:
			j := x.stepIndex(lost.From)
			if j < 0 || j > i {
				break
			}
			lostRestarts++
			x.log.WarnContext(ctx, "secret lost in a restart: re-running from its producing step", "step", step.Name, "from", lost.From)
			for k := j; k <= i; k++ {
				x.run.Steps[k].Status = StepPending
				x.run.Steps[k].Detail = "re-running: the value it made was lost in a restart"
			}
			if err := x.save(ctx, progress(x.req.ID)); err != nil {
				return "", err
			}
			i = j - 1
			continue
		}
		if rec.Status != StepFailed {
			// A lost secret that could not be re-made ends the step here.
			rec.Status, rec.Error, rec.FinishedAt = StepFailed, x.redact(err.Error()), x.e.cfg.Now()
			if err := x.save(ctx, progress(x.req.ID)); err != nil {
				return "", err
			}
		}
		return step.Name, nil
	}
	return "", nil
}

func (x *runner) stepIndex(name string) int {
	for i, s := range x.plan.Steps {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// attempt runs one step with retries. It returns nil when the step is done,
// errStopped when the process stops, errParked when it waits for a person
// (Prompt.Park), a *SecretLostError untouched, or the final error after the
// step was journaled as failed.
func (x *runner) attempt(ctx context.Context, step rotators.Step, rec *StepRecord) error {
	attempts := step.Attempts
	if attempts <= 0 {
		attempts = rotators.DefaultAttempts
	}
	timeout := step.Timeout
	if timeout <= 0 {
		timeout = rotators.DefaultStepTimeout
	}
	log := x.log.With("step", step.Name)
	for {
		if ctx.Err() != nil {
			return errStopped
		}
		rec.Status = StepRunning
		if x.unparked {
			x.unparked = false
		} else {
			rec.Attempts++
		}
		rec.Error = ""
		if rec.StartedAt.IsZero() {
			rec.StartedAt = x.e.cfg.Now()
		}
		// Intent before action: the attempt is journaled before the step runs.
		if err := x.save(ctx, progress(x.req.ID)); err != nil {
			return err
		}
		log.InfoContext(ctx, "step started", "attempt", rec.Attempts)
		began := x.e.cfg.Now()
		sctx, cancel := context.WithTimeout(ctx, timeout)
		err := x.call(sctx, step, rec)
		cancel()
		if errors.Is(err, errParked) && x.canPark {
			// Waiting for a person, without a goroutine: the answer starts
			// the step again, as the same attempt (see unparked).
			log.InfoContext(ctx, "step parked until a person answers")
			return errParked
		}
		if x.e.cfg.Observer != nil {
			x.e.cfg.Observer.StepFinished(x.req.Target, step.Name, x.e.cfg.Now().Sub(began), err)
		}
		if err != nil && ctx.Err() != nil {
			// Stopping, not failing: leave the step running in the journal.
			log.InfoContext(ctx, "step interrupted by shutdown; it will resume")
			return errStopped
		}
		var lost *rotators.SecretLostError
		if errors.As(err, &lost) {
			return err
		}
		if err == nil {
			rec.Status = StepDone
			rec.FinishedAt = x.e.cfg.Now()
			if err := x.save(ctx, progress(x.req.ID)); err != nil {
				return err
			}
			log.InfoContext(ctx, "step done")
			if x.e.cfg.StepDone != nil {
				x.e.cfg.StepDone(x.req.ID, step.Name)
			}
			return nil
		}
		if errors.Is(err, rotators.ErrNothingToUndo) {
			rec.Status = StepSkipped
			rec.Detail = "nothing to undo"
			rec.FinishedAt = x.e.cfg.Now()
			if err := x.save(ctx, progress(x.req.ID)); err != nil {
				return err
			}
			return rotators.ErrNothingToUndo
		}
		msg := x.redact(err.Error())
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("timed out after %s: %s", timeout, msg)
		}
		rec.Error = msg
		log.WarnContext(ctx, "step failed", "attempt", rec.Attempts, "err", msg)
		if rotators.IsPermanent(err) || rec.Attempts >= attempts {
			rec.Status = StepFailed
			rec.FinishedAt = x.e.cfg.Now()
			if err := x.save(ctx, progress(x.req.ID)); err != nil {
				return err
			}
			return errors.New(msg)
		}
		rec.Detail = fmt.Sprintf("attempt %d of %d failed; retrying", rec.Attempts, attempts)
		if err := x.save(ctx, progress(x.req.ID)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errStopped
		case <-x.e.cfg.After(retryBase << (rec.Attempts - 1)):
		}
	}
}

// call runs the step's function, turning a panic into an error so one bad
// step cannot take the bot down with a rotation half done.
func (x *runner) call(ctx context.Context, step rotators.Step, rec *StepRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = rotators.Permanent(fmt.Errorf("step %s panicked (a bug in rotary)", step.Name))
			x.log.ErrorContext(ctx, "step panicked", "step", step.Name, "panic_type", fmt.Sprintf("%T", p))
		}
	}()
	return step.Run(ctx, &stepRun{x: x, step: step.Name, rec: rec})
}

// rollback runs the plan's rollback steps after a failure.
func (x *runner) rollback(ctx context.Context) (approvals.State, string, error) {
	failed := x.run.FailedStep
	cause := ""
	for _, s := range x.run.Steps {
		if s.Name == failed {
			cause = fmt.Sprintf("step %q failed: %s", s.Title, s.Error)
		}
	}
	undone := 0
	for i := range x.plan.Rollback {
		step := x.plan.Rollback[i]
		if i >= len(x.run.Rollback) {
			x.run.Rollback = append(x.run.Rollback, StepRecord{Name: step.Name, Title: step.Title, Status: StepPending})
		}
		rec := &x.run.Rollback[i]
		switch rec.Status {
		case StepDone:
			undone++
			continue
		case StepSkipped:
			continue
		}
		err := x.attempt(ctx, step, rec)
		switch {
		case err == nil:
			undone++
		case errors.Is(err, rotators.ErrNothingToUndo):
		case errors.Is(err, errStopped), errors.Is(err, errParked):
			return "", "", err
		default:
			return approvals.StateFailed, fmt.Sprintf("%s; rollback step %q also failed: %s — manual action needed", cause, step.Title, rec.Error), nil
		}
	}
	if undone == 0 {
		return approvals.StateFailed, cause + "; nothing had been changed", nil
	}
	return approvals.StateRolledBack, cause + "; the previous secret was restored", nil
}

func (x *runner) finish(ctx context.Context, state approvals.State, outcome string, notices ...approvals.Notice) error {
	x.run.Phase = PhaseDone
	x.run.Result = state
	x.run.Outcome = outcome
	if err := x.save(ctx, append([]approvals.Notice{progress(x.req.ID)}, notices...)...); err != nil {
		return err
	}
	return x.finishRequest(ctx)
}

func (x *runner) finishRequest(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), journalWriteTimeout)
	defer cancel()
	if _, err := x.e.cfg.Requests.Finish(fctx, x.req.ID, x.run.Result, x.run.Outcome); err != nil {
		return err
	}
	x.log.InfoContext(ctx, "rotation finished", "state", x.run.Result)
	return nil
}

// redact removes every memory-only secret of this request from msg and caps its length.
func (x *runner) redact(msg string) string {
	x.e.mu.Lock()
	for _, v := range x.e.mem[x.req.ID] {
		if !v.IsZero() {
			msg = strings.ReplaceAll(msg, string(v.Reveal()), secret.Redacted)
		}
	}
	x.e.mu.Unlock()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen] + "…"
	}
	return msg
}
