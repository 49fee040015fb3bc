package blocks

import (
	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// EventInputNeeded is the executor's notice event for an open prompt.
const EventInputNeeded = "input_needed"

// Reply renders a thread reply about n.Event. It reads the request's current
// state (a retried notice must not show stale facts) and mentions the people
// who need to know or act. run may be nil.
func Reply(n approvals.Notice, r *approvals.Request, run *executor.Run) (string, []slack.Block) {
	if n.Event == approvals.EventTimeline {
		return Timeline(r, run)
	}
	if text, blocks, ok := followUpReply(n, r, run); ok {
		return text, blocks
	}
	s := replyText(n, r, run)
	return fallback(s), []slack.Block{section(s)}
}

func replyText(n approvals.Notice, r *approvals.Request, run *executor.Run) string {
	requester := mention(r.Requester, "The requester")
	approver := mention(r.DecidedBy, "the approver")
	where := "*" + target(r.Target, r.Env) + "*"
	switch n.Event {
	case string(approvals.StateApproved):
		actor := n.Actor
		if actor == "" {
			actor = r.DecidedBy
		}
		return ":ballot_box_with_check: " + requester + ", " + mention(actor, "an approver") + " approved your request. Starting the rotation of " + where + "."
	case string(approvals.StateDenied):
		return ":no_entry: " + requester + ", your request was denied by " + approver + ": " + reason(r.DenyReason)
	case string(approvals.StateCancelled):
		return ":wastebasket: " + requester + " cancelled this request. Nothing was changed."
	case string(approvals.StateExpired):
		return ":hourglass: " + requester + ", your request expired: nobody approved it within " + duration(r.ExpiresAt.Sub(r.CreatedAt)) +
			". Nothing was changed; open a new request if the rotation is still needed."
	case string(approvals.StateSucceeded):
		return ":white_check_mark: " + requester + " " + approver + ": " + where + " was rotated." + sentence(r.Outcome)
	case string(approvals.StateFailed):
		return ":x: " + requester + " " + approver + ": the rotation of " + where + " failed" + atStep(run) + "." + sentence(r.Outcome)
	case string(approvals.StateRolledBack):
		return ":leftwards_arrow_with_hook: " + requester + " " + approver + ": the rotation of " + where + " failed" + atStep(run) +
			", so it was rolled back." + sentence(r.Outcome)
	case EventInputNeeded:
		return inputNeededText(n, r, run)
	case approvals.EventBreakGlass:
		return ":rotating_light: " + requester + " started this EMERGENCY rotation by break-glass, without approval. Any responder other than them: check it and press *Reviewed* on the request."
	case approvals.EventReviewed:
		return ":eyes: " + mention(n.Actor, "A responder") + " reviewed this break-glass rotation."
	default:
		return "Request *" + name(r.ID) + "* for " + where + " is now " + stateWord(r.State) + "."
	}
}

// sentence appends an outcome as its own sentence, when there is one.
func sentence(s string) string {
	if s = inline(s, maxOutcomeLen); s == "" {
		return ""
	}
	return " " + s
}

// atStep names the failed forward step and its error, when the run knows them.
func atStep(run *executor.Run) string {
	s, ok := failedStep(run)
	if !ok {
		return ""
	}
	out := " at step *" + stepTitle(s) + "*"
	if s.Error != "" {
		out += " (" + inline(s.Error, maxStepTextLen) + ")"
	}
	return out
}

// inputNeededText asks the people who may answer an open prompt to act. The
// prompt may be answered by the time the notice is delivered; then it says so.
func inputNeededText(n approvals.Notice, r *approvals.Request, run *executor.Run) string {
	var p *executor.PromptRecord
	if run != nil {
		p = run.Prompt
	}
	if p == nil || (n.Prompt != "" && p.ID != n.Prompt) {
		return "A step of this rotation asked for input; it has been answered."
	}
	button := "Done"
	if p.Secret {
		button = "Paste key"
	}
	stepName := p.Step
	if stepName == "" {
		stepName = n.Step
	}
	what := "the rotation"
	if s, ok := findStep(run, stepName); ok {
		what = "step *" + stepTitle(s) + "*"
	}
	return ":raised_hand: " + audience(r, p) + ", " + what + " needs you: " + inline(p.Label, maxStepTextLen) +
		". Use the *" + button + "* button in the progress message above."
}

// Announcement renders the announcement channel's line about n.Event: the
// start of a rotation and how it ended.
func Announcement(n approvals.Notice, r *approvals.Request) (string, []slack.Block) {
	s := announcementText(n, r)
	return fallback(s), []slack.Block{section(s)}
}

func announcementText(n approvals.Notice, r *approvals.Request) string {
	where := "*" + target(r.Target, r.Env) + "*"
	prefix := ""
	if r.Emergency {
		prefix = ":rotating_light: EMERGENCY · "
	}
	id := " (" + name(r.ID) + ")"
	switch n.Event {
	case approvals.EventEmergency, approvals.EventReviewOverdue:
		// The transport posts Alert for these; without a link if it must.
		return alertText(n, r, "", approvals.Approvers{})
	case string(approvals.StateRunning):
		return prefix + ":arrows_counterclockwise: Rotation of " + where + " started: requested by " + mention(r.Requester, "—") +
			", approved by " + mention(r.DecidedBy, "—") + "." + id
	case string(approvals.StateSucceeded):
		return prefix + ":white_check_mark: Rotation of " + where + " succeeded." + sentence(r.Outcome) + id
	case string(approvals.StateFailed):
		return prefix + ":x: Rotation of " + where + " failed." + sentence(r.Outcome) + id
	case string(approvals.StateRolledBack):
		return prefix + ":leftwards_arrow_with_hook: Rotation of " + where + " failed and was rolled back." + sentence(r.Outcome) + id
	default:
		return prefix + "Rotation request for " + where + " is now " + stateWord(r.State) + "." + id
	}
}
