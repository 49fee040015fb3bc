package approvals

import "fmt"

// State is where a Request is in its life. The string values are stored in
// bbolt and shown to users: they are part of the on-disk format, so never
// rename one; add new ones instead.
type State string

const (
	StatePending    State = "pending"
	StateApproved   State = "approved"
	StateRunning    State = "running"
	StateSucceeded  State = "succeeded"
	StateFailed     State = "failed"
	StateRolledBack State = "rolled_back"
	StateDenied     State = "denied"
	StateCancelled  State = "cancelled"
	StateExpired    State = "expired"
)

// transitions is the one table of legal state changes. Every state change in
// the product goes through Request.transition, which consults it.
var transitions = map[State][]State{
	StatePending:  {StateApproved, StateDenied, StateCancelled, StateExpired},
	StateApproved: {StateRunning},
	StateRunning:  {StateSucceeded, StateFailed, StateRolledBack},
}

// AllStates lists every state, in display order.
var AllStates = []State{
	StatePending, StateApproved, StateRunning, StateSucceeded, StateFailed,
	StateRolledBack, StateDenied, StateCancelled, StateExpired,
}

// Valid reports whether s is one of the known states (for data read back from disk).
func (s State) Valid() bool {
	for _, k := range AllStates {
		if k == s {
			return true
		}
	}
	return false
}

// CanTransition reports whether the table allows s → to.
func (s State) CanTransition(to State) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s.Valid() && len(transitions[s]) == 0 }

// Open reports whether a request in s still holds its target's single active slot.
func (s State) Open() bool { return s == StatePending || s == StateApproved || s == StateRunning }

// TransitionError is returned when the table forbids a change.
type TransitionError struct {
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("request is %s and cannot become %s", e.From, e.To)
}
