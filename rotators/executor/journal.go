package executor

import (
	"context"
	"time"

	"github.com/aivo-platform/rotary/approvals"
)

// StepStatus is a journaled step's status. Stored values; never rename.
type StepStatus string

const (
	StepPending StepStatus = "pending"
	StepRunning StepStatus = "running"
	StepDone    StepStatus = "done"
	StepFailed  StepStatus = "failed"
	// StepSkipped: a rollback step that had nothing to undo.
	StepSkipped StepStatus = "skipped"
	// StepWaiting: the step waits for a person (a Prompt).
	StepWaiting StepStatus = "waiting"
)

// Phase is where a run is. Stored values; never rename.
type Phase string

const (
	PhaseForward  Phase = "forward"
	PhaseRollback Phase = "rollback"
	PhaseDone     Phase = "done"
)

// StepRecord is the journal entry of one step.
type StepRecord struct {
	Name       string     `json:"name"`
	Title      string     `json:"title"`
	Status     StepStatus `json:"status"`
	Attempts   int        `json:"attempts,omitempty"`
	StartedAt  time.Time  `json:"started_at,omitzero"`
	FinishedAt time.Time  `json:"finished_at,omitzero"`
	// Detail is the step's latest progress line (secret-free).
	Detail string `json:"detail,omitempty"`
	// Error is the step's last error message (secret-free: see redact).
	Error string `json:"error,omitempty"`
}

// Run is the executor's journal of one request's rotation. It is stored
// next to the request and holds no secret value.
type Run struct {
	RequestID string       `json:"request_id"`
	Target    string       `json:"target"`
	Phase     Phase        `json:"phase"`
	Steps     []StepRecord `json:"steps"`
	Rollback  []StepRecord `json:"rollback,omitempty"`
	// Facts are non-secret values steps recorded (key IDs, version names, timestamps).
	Facts map[string]string `json:"facts,omitempty"`
	// FailedStep is the forward step whose failure started the rollback.
	FailedStep string `json:"failed_step,omitempty"`
	// Resumes counts how often the run was picked up again after a restart.
	Resumes int `json:"resumes,omitempty"`
	// Prompt is the open prompt, if a step is waiting for a person.
	Prompt *PromptRecord `json:"prompt,omitempty"`
	// Result and Outcome are set when Phase becomes done, before the request
	// is finished, so a crash in between still finishes it the same way.
	Result  approvals.State `json:"result,omitempty"`
	Outcome string          `json:"outcome,omitempty"`
	// FollowUps are the plan's scheduled tails, added by the same journal
	// write that sets Phase done after the forward steps succeeded.
	FollowUps []FollowUpRecord `json:"follow_ups,omitempty"`
	// RolledBackBy is the rollback request that restored (or is restoring)
	// what this run replaced; set before that request's first step.
	RolledBackBy string `json:"rolled_back_by,omitempty"`
}

// FollowUp returns the follow-up record called name, for reading or (by the
// executor, under the request's in-flight guard) changing in place.
func (r *Run) FollowUp(name string) (*FollowUpRecord, bool) {
	for i := range r.FollowUps {
		if r.FollowUps[i].Name == name {
			return &r.FollowUps[i], true
		}
	}
	return nil, false
}

// FollowUpStatus is a follow-up's status. Stored values; never rename.
type FollowUpStatus string

const (
	// FollowUpScheduled: waiting for DueAt (indexed by the journal).
	FollowUpScheduled FollowUpStatus = "scheduled"
	// FollowUpRunning: started; a process stop leaves it so and the next
	// start resumes it (indexed, so it is found as due).
	FollowUpRunning FollowUpStatus = "running"
	FollowUpDone    FollowUpStatus = "done"
	// FollowUpFailed: a step failed. Nothing is rolled back; it stays failed
	// (not indexed) until someone runs it again (Executor.FollowUpNow).
	FollowUpFailed FollowUpStatus = "failed"
	// FollowUpCancelled: a rollback request restored what the rotation
	// replaced, so cleaning up after the rotation would undo the restore.
	FollowUpCancelled FollowUpStatus = "cancelled"
)

// FollowUpAction names one line of a follow-up's history. Stored values; never rename.
type FollowUpAction string

const (
	ActionScheduled FollowUpAction = "scheduled"
	ActionPostponed FollowUpAction = "postponed"
	ActionRunNow    FollowUpAction = "run_now"
	ActionStarted   FollowUpAction = "started"
	ActionDone      FollowUpAction = "done"
	ActionFailed    FollowUpAction = "failed"
	ActionCancelled FollowUpAction = "cancelled"
)

// FollowUpRecord is the journal entry of one scheduled follow-up.
type FollowUpRecord struct {
	Name   string         `json:"name"`
	Title  string         `json:"title"`
	Status FollowUpStatus `json:"status"`
	// DueAt is when it runs (or ran, or was due when it was cancelled).
	DueAt      time.Time    `json:"due_at"`
	Steps      []StepRecord `json:"steps,omitempty"`
	StartedAt  time.Time    `json:"started_at,omitzero"`
	FinishedAt time.Time    `json:"finished_at,omitzero"`
	// Error says why it failed (secret-free).
	Error string `json:"error,omitempty"`
	// History is its audit trail: who scheduled, postponed, ran or cancelled it, when.
	History []FollowUpEvent `json:"history,omitempty"`
}

// CanRunNow reports whether FollowUpNow accepts it (for the transport's buttons).
func (f FollowUpRecord) CanRunNow() bool {
	return f.Status == FollowUpScheduled || f.Status == FollowUpFailed
}

// CanPostpone reports whether PostponeFollowUp accepts it.
func (f FollowUpRecord) CanPostpone() bool { return f.Status == FollowUpScheduled }

// FollowUpEvent is one line of a follow-up's history. Actor is a user ID, or
// empty for rotary itself.
type FollowUpEvent struct {
	At     time.Time      `json:"at"`
	Actor  string         `json:"actor,omitempty"`
	Action FollowUpAction `json:"action"`
	Detail string         `json:"detail,omitempty"`
}

// FollowUpRef names a follow-up that is due (or in flight) in the journal's index.
type FollowUpRef struct {
	RequestID string
	Name      string
	DueAt     time.Time
}

// PromptRecord is an open prompt as stored (no answer is ever stored).
type PromptRecord struct {
	ID       string `json:"id"`
	Step     string `json:"step"`
	Label    string `json:"label"`
	Secret   bool   `json:"secret"`
	Audience string `json:"audience"`
	Button   string `json:"button,omitempty"`
}

// Journal persists runs. SaveRun writes the run and its notices in one
// transaction, so progress shown in Slack never runs ahead of the journal.
//
// The journal also indexes follow-ups, in the same transaction as SaveRun:
// every follow-up whose status is scheduled or running is in the index under
// its DueAt, and nothing else is. That is what makes a schedule survive a
// restart without scanning every run.
type Journal interface {
	// LoadRun returns the run, or (nil, nil) when none was started.
	LoadRun(ctx context.Context, requestID string) (*Run, error)
	SaveRun(ctx context.Context, run *Run, notices ...approvals.Notice) error
	// DueFollowUps returns the indexed follow-ups with DueAt <= now, earliest first.
	DueFollowUps(ctx context.Context, now time.Time) ([]FollowUpRef, error)
	// NextFollowUp returns the earliest indexed DueAt; false when none is indexed.
	NextFollowUp(ctx context.Context) (time.Time, bool, error)
}
