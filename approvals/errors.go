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
)

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
