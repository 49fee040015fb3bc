package approvals

import (
	"errors"
	"fmt"
)

// Sentinel errors. The transport maps each to a user-facing message in one
// place (bot/blocks); callers test them with errors.Is / errors.As.
var (
	ErrNotFound       = errors.New("no such request")
	ErrSelfApproval   = errors.New("the requester cannot approve their own request")
	ErrNotApprover    = errors.New("not an approver for this target and environment")
	ErrNotRequester   = errors.New("only the requester can cancel a request")
	ErrUnknownTarget  = errors.New("unknown target")
	ErrUnknownEnv     = errors.New("unknown environment for target")
	ErrReasonRequired = errors.New("a reason is required")
	// ErrEmergencyReason: an emergency always carries its reason, because it
	// goes to the whole channel and into the incident record.
	ErrEmergencyReason = errors.New("an emergency request needs a reason")
	// ErrNoReview: the request was not started by break-glass, so there is nothing to review.
	ErrNoReview = errors.New("the request needs no review")
	// ErrSelfReview: the person who broke glass cannot review their own rotation.
	ErrSelfReview = errors.New("the requester cannot review their own break-glass rotation")
	// ErrRollbackOfRollback: undoing a rollback is a new rotation, not a rollback.
	ErrRollbackOfRollback = errors.New("a rollback request cannot itself be rolled back")
	// ErrNotParticipant: only the requester or an approver may manage a request's follow-ups.
	ErrNotParticipant = errors.New("only the requester or an approver may do that")
)

// AlreadyReviewedError is returned when a break-glass rotation was reviewed already.
type AlreadyReviewedError struct {
	ID, By string
}

func (e *AlreadyReviewedError) Error() string {
	return fmt.Sprintf("request %s was already reviewed by %s", e.ID, e.By)
}

// SupersededError is returned for a rollback of a rotation that a later
// rotation of the same target already replaced: restoring what the older one
// replaced would undo the later one too.
type SupersededError struct {
	ID, Latest string
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("request %s was superseded by the later rotation %s", e.ID, e.Latest)
}

// StillOpenError is returned for a rollback of a request that has not finished.
type StillOpenError struct {
	ID    string
	State State
}

func (e *StillOpenError) Error() string {
	return fmt.Sprintf("request %s is still %s; only a finished rotation can be rolled back", e.ID, e.State)
}

// NotPendingError is returned for a decision on a request that is no longer pending.
type NotPendingError struct {
	ID    string
	State State
	By    string
}

func (e *NotPendingError) Error() string {
	return fmt.Sprintf("request %s is already %s", e.ID, e.State)
}

// ActiveExistsError is returned when the target already has an open request.
type ActiveExistsError struct {
	Target, Env, ID string
	State           State
}

func (e *ActiveExistsError) Error() string {
	return fmt.Sprintf("%s/%s already has open request %s (%s)", e.Target, e.Env, e.ID, e.State)
}
