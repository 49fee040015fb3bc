// Package approvals owns the rotation request: its state machine, the
// two-person policy, and the service that applies decisions.
//
// Rules this package keeps:
//   - It knows nothing of Slack. Users are opaque IDs, output is Notices that a
//     transport renders later.
//   - Every state change happens inside one Store transaction that also checks
//     the policy and enqueues the notices it causes, so a crash can never leave
//     a decision without its message or a message without its decision.
//   - No secret value ever enters a Request.
package approvals

import (
	"context"
	"time"
)

// Request is one rotation request and its audit trail.
type Request struct {
	ID        string `json:"id"`
	Target    string `json:"target"`
	Kind      string `json:"kind"`
	Env       string `json:"env"`
	Reason    string `json:"reason,omitempty"`
	Requester string `json:"requester"`
	Emergency bool   `json:"emergency,omitempty"`
	// RollbackOf is the ID of the finished request a `/rotate rollback`
	// request restores; empty for an ordinary rotation.
	RollbackOf string `json:"rollback_of,omitempty"`
	// BreakGlass: an emergency request a named responder started without
	// approval; Review records the second person's acknowledgement afterwards.
	BreakGlass bool    `json:"break_glass,omitempty"`
	Review     *Review `json:"review,omitempty"`
	State      State   `json:"state"`

	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`

	// DecidedBy is the approver, denier or canceller; DecidedAt when.
	DecidedBy  string    `json:"decided_by,omitempty"`
	DecidedAt  time.Time `json:"decided_at,omitzero"`
	DenyReason string    `json:"deny_reason,omitempty"`

	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Outcome is a one-line, secret-free summary of how the rotation ended.
	Outcome string `json:"outcome,omitempty"`

	Slack SlackRefs `json:"slack"`

	Events []Event `json:"events"`
}

// Review is the after-the-fact second look a break-glass rotation needs.
type Review struct {
	// DueAt is when the next escalation fires if nobody has reviewed.
	DueAt time.Time `json:"due_at"`
	By    string    `json:"by,omitempty"`
	At    time.Time `json:"at,omitzero"`
	// Escalations counts the re-notifications sent because nobody reviewed in time.
	Escalations int `json:"escalations,omitempty"`
}

// SlackRefs are the transport's handles on the request's messages. They are
// opaque to this package; the transport stores them in the same commit that
// marks the notice which posted the message delivered.
type SlackRefs struct {
	Channel    string `json:"channel,omitempty"`
	RootTS     string `json:"root_ts,omitempty"`
	ProgressTS string `json:"progress_ts,omitempty"`
}

// Event is one line of a request's audit history.
type Event struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor,omitempty"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

// transition moves r to state to, if the table allows it, and records the event.
func (r *Request) transition(to State, at time.Time, actor, detail string) error {
	if !r.State.CanTransition(to) {
		return &TransitionError{From: r.State, To: to}
	}
	r.State = to
	r.Events = append(r.Events, Event{At: at, Actor: actor, Action: string(to), Detail: detail})
	return nil
}

// NoticeKind says which message a Notice asks the transport to produce.
type NoticeKind string

const (
	// NoticeRoot: post the request's root message, or update it to the current state.
	NoticeRoot NoticeKind = "root"
	// NoticeProgress: post or update the single progress message in the request's thread.
	NoticeProgress NoticeKind = "progress"
	// NoticeReply: a reply in the request's thread about Event.
	NoticeReply NoticeKind = "reply"
	// NoticeAnnounce: a line in the announcement channel about Event.
	NoticeAnnounce NoticeKind = "announce"
	// NoticeAlert: a channel-wide notification (@channel) in the request
	// channel, outside the thread: emergencies and missed reviews. The same
	// event goes to the announcement channel as a NoticeAnnounce, so each
	// notice is one Slack message and is delivered exactly once.
	NoticeAlert NoticeKind = "alert"
)

// Notice events that are not states.
const (
	EventRequested      = "requested"
	EventEmergency      = "emergency"
	EventBreakGlass     = "break_glass"
	EventReviewed       = "reviewed"
	EventReviewOverdue  = "review_overdue"
	EventTimeline       = "timeline"
	EventRollbackOpened = "rollback_requested"
)

// Notice is a durable request for a message. It carries facts, never text: the
// transport renders text from the request's current state when it delivers, so
// a retried notice never shows stale data and user-facing wording lives in one place.
type Notice struct {
	Kind      NoticeKind `json:"kind"`
	RequestID string     `json:"request_id"`
	// Event names what happened (a State value, or an executor event such as "input_needed").
	Event string `json:"event,omitempty"`
	Actor string `json:"actor,omitempty"`
	// Step is the executor step a notice refers to, when any.
	Step string `json:"step,omitempty"`
	// Prompt identifies an input prompt (button) the reply carries, when any.
	Prompt string `json:"prompt,omitempty"`
}

// Tx is one atomic unit of work on the store. Everything done through a Tx
// commits together or not at all.
type Tx interface {
	// Get returns the request or an error wrapping ErrNotFound.
	Get(id string) (*Request, error)
	// Put writes the request and keeps the open-request index in step with its state.
	Put(r *Request) error
	// ActiveFor returns the ID of the open request for target and env, or "".
	ActiveFor(target, env string) (string, error)
	// LatestFinished returns the ID of the latest finished rotation of
	// target and env that ran (succeeded, failed or rolled back), or "".
	LatestFinished(target, env string) (string, error)
	// Notify appends a notice to the durable outbox.
	Notify(n Notice) error
}

// Store is the persistence the service needs. approvals/boltstore implements it.
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
	// ListOpen returns every pending, approved or running request, oldest first.
	ListOpen(ctx context.Context) ([]*Request, error)
	// ListUnreviewed returns the break-glass requests whose review is outstanding.
	ListUnreviewed(ctx context.Context) ([]*Request, error)
}
