package blocks

import (
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// followUpReply renders a thread reply about a follow-up (n.Step names it),
// reading its current record. ok is false when n is not a follow-up event.
func followUpReply(n approvals.Notice, r *approvals.Request, run *executor.Run) (string, []slack.Block, bool) {
	switch n.Event {
	case executor.EventFollowUpScheduled, executor.EventFollowUpRunNow, executor.EventFollowUpPostponed,
		executor.EventFollowUpStarted, executor.EventFollowUpDone, executor.EventFollowUpFailed, executor.EventFollowUpCancelled:
	default:
		return "", nil, false
	}
	var f executor.FollowUpRecord
	if run != nil {
		if rec, ok := run.FollowUp(n.Step); ok {
			f = *rec
		}
	}
	if f.Name == "" {
		s := "A follow-up of this rotation changed; `/rotate status " + name(r.ID) + "` shows it."
		return fallback(s), []slack.Block{section(s)}, true
	}
	title := "*" + inline(f.Title, maxStepTextLen) + "*"
	var s string
	buttons := false
	switch n.Event {
	case executor.EventFollowUpScheduled:
		s = ":calendar: Scheduled follow-up: " + title + " at " + date(f.DueAt) + ". It is part of the approved plan and needs no new approval. " +
			mention(r.Requester, "The requester") + " or an approver can run it now or postpone it."
		buttons = true
	case executor.EventFollowUpRunNow:
		s = ":fast_forward: " + mention(n.Actor, "Someone") + " asked to run " + title + " now."
	case executor.EventFollowUpPostponed:
		s = ":arrow_right_hook: " + mention(n.Actor, "Someone") + " postponed " + title + " to " + date(f.DueAt) + "."
	case executor.EventFollowUpStarted:
		s = ":arrows_counterclockwise: Follow-up " + title + " started; progress is in the progress message above."
	case executor.EventFollowUpDone:
		s = ":white_check_mark: " + mention(r.Requester, "") + " Follow-up " + title + " done."
	case executor.EventFollowUpFailed:
		s = ":x: " + mention(r.Requester, "") + " Follow-up " + title + " failed"
		if f.Error != "" {
			s += ": " + inline(f.Error, maxStepTextLen)
		}
		s += ". Nothing was undone; fix the cause and press *Run now* to try again."
		buttons = true
	case executor.EventFollowUpCancelled:
		s = ":no_entry_sign: Follow-up " + title + " was cancelled: this rotation was rolled back."
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, "  ", " "))
	blocks := []slack.Block{section(s)}
	if buttons {
		if b := followUpButtons(r, f); b != nil {
			blocks = append(blocks, b)
		}
	}
	return fallback(s), blocks, true
}

// followUpButtons offers what the follow-up accepts now (nil when nothing).
func followUpButtons(r *approvals.Request, f executor.FollowUpRecord) *slack.ActionBlock {
	var els []slack.BlockElement
	ref := PromptRef(r.ID, f.Name)
	if f.CanRunNow() {
		b := slack.NewButtonBlockElement(ActionFollowUpNow, ref, plain("Run now", maxButtonText))
		els = append(els, b.WithConfirm(slack.NewConfirmationBlockObject(
			plain("Run it now?", maxConfirmTitle),
			md("*"+inline(f.Title, maxStepTextLen)+"* runs at once instead of at its scheduled time.", maxConfirmText),
			plain("Run now", maxConfirmButton),
			plain("Not yet", maxConfirmButton),
		)))
	}
	if f.CanPostpone() {
		els = append(els, slack.NewButtonBlockElement(ActionFollowUpPostpone, ref, plain("Postpone", maxButtonText)))
	}
	if len(els) == 0 {
		return nil
	}
	return slack.NewActionBlock(BlockFollowUp, els...)
}

// followUpWord is a follow-up's status as people say it.
func followUpWord(f executor.FollowUpRecord, now time.Time) string {
	switch f.Status {
	case executor.FollowUpScheduled:
		if now.IsZero() {
			return "scheduled for " + date(f.DueAt)
		}
		return "due " + when(f.DueAt, now)
	case executor.FollowUpRunning:
		return "running"
	case executor.FollowUpDone:
		return "done " + date(f.FinishedAt)
	case executor.FollowUpFailed:
		return "failed: " + inline(f.Error, maxStepTextLen)
	case executor.FollowUpCancelled:
		return "cancelled (rolled back)"
	default:
		return inline(string(f.Status), maxNameLen)
	}
}

// followUpLines are one line per follow-up (root message context, status).
func followUpLines(run *executor.Run, now time.Time) []string {
	if run == nil {
		return nil
	}
	var out []string
	for _, f := range run.FollowUps {
		out = append(out, ":calendar: Follow-up: *"+inline(f.Title, maxStepTextLen)+"* — "+followUpWord(f, now))
	}
	return out
}

// followUpProgress renders follow-ups that have started, for the progress message.
func followUpProgress(run *executor.Run) []slack.Block {
	var out []slack.Block
	for _, f := range run.FollowUps {
		if len(f.Steps) == 0 || f.StartedAt.IsZero() {
			continue
		}
		out = append(out, header(clip("Follow-up: "+oneLine(f.Title), maxHeaderText)))
		out = append(out, stepBlocks(f.Steps)...)
	}
	return out
}
