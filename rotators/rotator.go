// Package rotators defines what a rotation is: a Rotator turns a target's
// configuration into a Plan of named Steps, and the executor
// (rotators/executor) runs them.
//
// Rules for every kind (one package per kind under rotators/):
//   - A Step is idempotent: the executor may run it again after a crash, so it
//     checks what is already done (through Run.Fact) before acting.
//   - A Step records what it is about to do with Run.Record before the
//     external call that does it (intent before action), so a resumed run or
//     a rollback knows what may have happened.
//   - Secret values live only in memory (Run.KeepSecret, secret.Value); facts
//     are persisted and must never hold one.
//   - Nothing outside the kind's package changes when a kind is added, except
//     the one line in main.go that lists it.
package rotators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Step is one named, journaled action of a rotation.
type Step struct {
	// Name is the stable identifier stored in the journal. Never rename a
	// step that may be in flight in a deployed journal.
	Name string
	// Title is what people see in the thread and in `rotary plan`.
	Title string
	// Timeout bounds one attempt. Zero means DefaultStepTimeout.
	Timeout time.Duration
	// Attempts is how often a transient failure is tried. Zero means DefaultAttempts.
	Attempts int
	Run      func(ctx context.Context, run Run) error
}

// Default limits, named so they can be found and reasoned about.
const (
	DefaultStepTimeout = 5 * time.Minute
	DefaultAttempts    = 3
)

// Plan is what a rotation will do.
type Plan struct {
	Steps []Step
	// Rollback runs, in order, when a step fails. Each rollback step must be
	// a no-op returning ErrNothingToUndo when its precondition (a fact a
	// forward step recorded) is absent.
	Rollback []Step
	// Notes are warnings shown on the request message (e.g. "you will be asked to paste the key").
	Notes []string
	// FollowUps are parts of the approved plan that run later, after the
	// forward steps succeeded and the request finished (e.g. removing an old
	// JWT public key after a 24 h grace period). They need no new approval.
	// The executor persists their due time, so they survive restarts, and
	// runs each exactly once when due (or at once from a button).
	FollowUps []FollowUp
}

// FollowUp is a scheduled, detached tail of a plan. Its steps follow the same
// rules as forward steps (idempotent, intent before action) and must also be
// safe when the world moved on meanwhile: a later rotation of the same target
// may have superseded what the follow-up was meant to clean up, so a step
// checks a fact recorded by the forward steps before it acts.
type FollowUp struct {
	// Name is the stable identifier stored in the journal. Never rename.
	Name string
	// Title is what people see ("Remove the old public key").
	Title string
	// Delay is how long after the forward steps succeed it becomes due.
	Delay time.Duration
	// PostponeBy is how far the Postpone button moves it. Zero means Delay.
	PostponeBy time.Duration
	Steps      []Step
}

// Spec is the request a Plan is made for.
type Spec struct {
	RequestID string
	Target    string
	Env       string
	Emergency bool
	// RollbackOf is set when the request is `/rotate rollback <id>`: the
	// executor runs the plan's Rollback steps as the forward steps, with the
	// original run's facts, so manual and automatic rollback share one code path.
	RollbackOf string
}

// Reverter is implemented by a Rotator whose completed rotations cannot
// always be rolled back (the old key was revoked, the old role dropped).
// CanRevert is given the finished run's facts and returns a user-facing
// reason when a rollback would restore something dead; nil means it may.
type Reverter interface {
	CanRevert(facts map[string]string) error
}

// Rotator is one configured target's procedure.
type Rotator interface {
	Plan(spec Spec) Plan
}

// Prompt asks a person for input while a step waits.
type Prompt struct {
	// ID is unique within the request (e.g. "paste_key").
	ID string
	// Label explains what is asked.
	Label string
	// Secret: the answer is a secret pasted in a modal; otherwise it is a confirmation button.
	Secret bool
	// Audience: who may answer.
	Audience Audience
	// Button is the confirmation button's label (default "Done"); unused for secrets.
	Button string
	// Park says the step only waits for this answer, so the executor may end
	// the step while nobody has answered and run it again from its start
	// once someone does: a paste can take hours, and a waiting step should
	// not hold a goroutine and its memory meanwhile. The re-run reaches the
	// same Ask, which then returns the answer at once. Only for a step whose
	// code up to the Ask is safe to repeat (every step's must be: a resumed
	// step repeats) and that does not wait for anything else at the same
	// time (the database retire step races its early-retire button against a
	// timer, so it must not park).
	Park bool
}

// Audience is who may answer a Prompt. Stored values; never reorder.
type Audience string

const (
	AudienceRequester    Audience = "requester"
	AudienceParticipants Audience = "participants" // requester or approver
)

// Run is what a Step sees of its rotation. The executor implements it.
type Run interface {
	RequestID() string
	Target() string
	Env() string
	Emergency() bool
	Requester() string
	Approver() string
	// Fact returns a persisted, non-secret fact recorded by an earlier step or attempt.
	Fact(key string) string
	// Record persists a fact at once (before the step's next external call).
	Record(ctx context.Context, key, value string) error
	// Secret returns a memory-only value kept by an earlier step of this process.
	Secret(key string) (secret.Value, bool)
	KeepSecret(key string, v secret.Value)
	// Progress sets the step's detail line in the thread's progress message.
	Progress(ctx context.Context, detail string)
	// Ask posts a prompt and waits for the answer (or ctx). With p.Park it
	// may instead return an error the step must pass up unchanged (wrapped
	// with %w is fine): the executor then runs the step again when the
	// answer arrives, and that Ask returns it.
	Ask(ctx context.Context, p Prompt) (secret.Value, error)
	// Sleep waits d (or until ctx ends) on the executor's clock, so tests with
	// a fake clock do not wait in real time. A step that waits long records
	// its deadline as a fact first, so a resumed step does not start over.
	Sleep(ctx context.Context, d time.Duration) error
	Now() time.Time
	Log() *slog.Logger
}

// ErrNothingToUndo is returned by a rollback step whose forward step never acted.
var ErrNothingToUndo = errors.New("nothing to undo")

// SecretLostError is returned by a step that needs a memory-only secret that
// a restart has lost. The executor re-runs the plan from step From, which
// must produce the secret again (and clean up what it made before).
type SecretLostError struct{ From string }

func (e *SecretLostError) Error() string {
	return fmt.Sprintf("the value made by step %q was held in memory and lost in a restart", e.From)
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Problem is one configuration error, with the key path where it is.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// Credentials gives access to credentials named in config (environment
// variables or files); never from the YAML itself.
type Credentials interface {
	Lookup(name string) (secret.Value, error)
}

// Deps are the shared clients a kind may use. Any may be nil when the
// caller only validates configuration (`rotary config check`, `rotary plan`):
// Build must not use them, only keep them.
type Deps struct {
	SecretManager *gsm.Client
	Kube          *kube.Client
	HTTP          *http.Client
	Creds         Credentials
	Now           func() time.Time
	Rand          io.Reader
	Log           *slog.Logger
}

// Kind is a rotator kind that main lists.
type Kind struct {
	Name string
	// Build decodes the target's parameters (decode is strict: unknown keys
	// fail) and returns its Rotator, or the problems found, with paths
	// relative to the target.
	Build func(target string, decode func(into any) error, deps Deps) (Rotator, []Problem)
}
