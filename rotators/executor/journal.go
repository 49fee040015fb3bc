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
type Journal interface {
	// LoadRun returns the run, or (nil, nil) when none was started.
	LoadRun(ctx context.Context, requestID string) (*Run, error)
	SaveRun(ctx context.Context, run *Run, notices ...approvals.Notice) error
}
