package blocks

import (
	"errors"
	"slices"
	"strings"

	"github.com/aivo-platform/rotary/approvals"
)

// Hints is what ErrorText and Help need to know besides the error: facts the
// transport has at hand when it answers a user.
type Hints struct {
	// Targets are the configured target names. When empty, Envs' keys are used.
	Targets []string
	// Envs are the configured environments per target.
	Envs map[string][]string
	// Target is the target the user's command named, if any (to list its
	// environments on ErrUnknownEnv).
	Target string
	// Env is the environment the user's command named, if any (for ErrUnknownEnv).
	Env string
	// RequestID is the request the command or button named, if any (for ErrNotFound).
	RequestID string
	// Ref correlates an unexpected error with the transport's log line.
	Ref string
}

// userMessager is implemented by errors whose text is written for users
// (the command parser's errors).
type userMessager interface{ UserMessage() string }

// ErrorText is the single mapping from an error to the ephemeral text a user
// sees. Known errors get guidance; anything else gets only h.Ref, because
// internal error text can name hosts, paths or provider responses that users
// must not see. Every value taken from the error or the hints is escaped.
func ErrorText(err error, h Hints) string {
	if err == nil {
		return ""
	}
	var (
		um       userMessager
		np       *approvals.NotPendingError
		active   *approvals.ActiveExistsError
		reviewed *approvals.AlreadyReviewedError
		open     *approvals.StillOpenError
		later    *approvals.SupersededError
	)
	switch {
	case errors.As(err, &um):
		if msg := text(um.UserMessage(), maxErrorMessageLen); msg != "" {
			return fit(msg, maxSectionText)
		}
		return internalText(h)
	case errors.As(err, &np):
		return notPendingText(np)
	case errors.As(err, &active):
		return "*" + target(active.Target, active.Env) + "* already has an open request, *" + name(active.ID) +
			"* (" + stateWord(active.State) + "). Only one rotation per target and environment can be open: see `/rotate status " + name(active.ID) + "`."
	case errors.Is(err, approvals.ErrNotFound):
		if h.RequestID == "" {
			return "No such request. `/rotate list` shows open requests."
		}
		return "No request " + name(h.RequestID) + ". `/rotate list` shows open requests."
	case errors.Is(err, approvals.ErrSelfApproval):
		return "You opened this request, so you can't approve it: a second person must."
	case errors.Is(err, approvals.ErrNotApprover):
		return "You're not an approver for this target and environment. Approvers are configured per target and environment in rotary's configuration; ask one of them, or the platform team to change the list."
	case errors.Is(err, approvals.ErrNotRequester):
		return "Only the person who opened a request can cancel it. Approvers can deny it instead."
	case errors.Is(err, approvals.ErrUnknownTarget):
		return "Unknown target" + named(h.Target) + ". Known targets: " + list(targets(h)) + "."
	case errors.Is(err, approvals.ErrUnknownEnv):
		return unknownEnvText(h)
	case errors.As(err, &reviewed):
		return "Request " + name(reviewed.ID) + " was already reviewed by " + mention(reviewed.By, "someone") + "."
	case errors.As(err, &open):
		return "Request " + name(open.ID) + " is still " + stateWord(open.State) + ": only a finished rotation can be rolled back. Cancel or deny it instead, or wait until it ends."
	case errors.As(err, &later):
		return "Request " + name(later.ID) + " can't be rolled back: " + name(later.Latest) + " rotated the same target after it, so restoring what " + name(later.ID) +
			" replaced would undo " + name(later.Latest) + " too. Roll back " + name(later.Latest) + " instead, or open a new rotation."
	case errors.Is(err, approvals.ErrEmergencyReason):
		return "An emergency needs a reason: add `--reason \"what happened\"`. It goes to the whole channel and into the incident record."
	case errors.Is(err, approvals.ErrNoReview):
		return "This request was not started by break-glass, so there is nothing to review."
	case errors.Is(err, approvals.ErrSelfReview):
		return "You started this rotation by break-glass, so you can't review it: a second responder must."
	case errors.Is(err, approvals.ErrRollbackOfRollback):
		return "A rollback cannot itself be rolled back: open a new rotation of the target instead."
	case errors.Is(err, approvals.ErrNotParticipant):
		return "Only the requester or an approver of this target can do that."
	case errors.Is(err, approvals.ErrReasonRequired):
		return "A reason is required: add `--reason \"why\"` (it is shown to approvers and kept in the audit trail)."
	default:
		return internalText(h)
	}
}

func internalText(h Hints) string {
	ref := inline(h.Ref, maxNameLen)
	if ref == "" {
		ref = "none"
	}
	return "Something went wrong on rotary's side (ref: `" + ref + "`); the team has been told."
}

// notPendingText explains, per state, why a decision came too late.
func notPendingText(e *approvals.NotPendingError) string {
	id := "Request " + name(e.ID)
	by := mention(e.By, "")
	switch e.State {
	case approvals.StateApproved:
		return id + " is already approved" + byWhom(by) + "."
	case approvals.StateRunning:
		return id + " is already approved" + byWhom(by) + " and its rotation is running."
	case approvals.StateSucceeded, approvals.StateFailed, approvals.StateRolledBack:
		return id + " has already finished (" + stateWord(e.State) + ")."
	case approvals.StateDenied:
		return id + " was already denied" + byWhom(by) + "."
	case approvals.StateCancelled:
		return id + " was cancelled by its requester."
	case approvals.StateExpired:
		return id + " expired before anyone approved it. The requester can open a new one."
	default:
		return id + " is no longer pending (" + stateWord(e.State) + ")."
	}
}

// named is " x" (escaped) for a value the user typed, or "" when there is none.
func named(s string) string {
	if s == "" {
		return ""
	}
	return " " + name(s)
}

func byWhom(m string) string {
	if m == "" {
		return ""
	}
	return " by " + m
}

func unknownEnvText(h Hints) string {
	if envs, ok := h.Envs[h.Target]; ok && h.Target != "" {
		return "Unknown environment" + named(h.Env) + " for *" + name(h.Target) + "*. Its environments: " + list(envs) + "."
	}
	var parts []string
	for _, t := range targets(h) {
		parts = append(parts, name(t)+": "+list(h.Envs[t]))
	}
	if len(parts) == 0 {
		return "Unknown environment for this target."
	}
	return "Unknown environment for this target. Environments per target: " + strings.Join(parts, "; ") + "."
}

// targets is the configured target names, sorted.
func targets(h Hints) []string {
	ts := slices.Clone(h.Targets)
	if len(ts) == 0 {
		for t := range h.Envs {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

// list renders names as `a`, `b`, `c`, sorted, or "none configured".
func list(names []string) string {
	names = slices.Sorted(slices.Values(names))
	if len(names) == 0 {
		return "none configured"
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, "`"+name(n)+"`")
	}
	return strings.Join(out, ", ")
}

// IsInternal reports whether ErrorText shows err as an internal error (only
// a reference): the transport then logs err with that reference.
func IsInternal(err error) bool {
	return err != nil && ErrorText(err, Hints{}) == internalText(Hints{})
}
