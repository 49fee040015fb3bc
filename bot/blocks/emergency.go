package blocks

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// channelMention notifies everyone in a channel. Only Alert and the
// emergency announcements use it: a channel-wide ping is for compromised
// secrets and missed break-glass reviews, never for routine rotations.
const channelMention = "<!channel>"

// Alert renders the channel-wide notification posted in the request channel
// (outside the thread) for an emergency and for an overdue break-glass
// review. permalink links to the request's root message ("" when unknown);
// escalate are the user and group IDs mentioned on an escalation.
func Alert(n approvals.Notice, r *approvals.Request, permalink string, escalate approvals.Approvers) (string, []slack.Block) {
	s := alertText(n, r, permalink, escalate)
	return fallback(s), []slack.Block{section(s)}
}

func alertText(n approvals.Notice, r *approvals.Request, permalink string, escalate approvals.Approvers) string {
	where := "*" + target(r.Target, r.Env) + "*"
	link := ""
	if permalink != "" {
		link = " <" + esc(permalink) + "|Open the thread>."
	}
	switch n.Event {
	case approvals.EventReviewOverdue:
		count := ""
		if r.Review != nil {
			count = fmt.Sprintf(" (escalation %d)", r.Review.Escalations)
		}
		who := groupMentions(escalate)
		if who != "" {
			who += ": "
		}
		return channelMention + " :rotating_light: " + who + "the break-glass rotation of " + where + " (" + name(r.ID) + "), started by " +
			mention(r.Requester, "a responder") + " without approval, has not been reviewed" + count +
			". A second responder must check it and press *Reviewed* on the request." + link
	default:
		s := channelMention + " :rotating_light: *EMERGENCY rotation of " + target(r.Target, r.Env) + "* (" + name(r.ID) + ") requested by " +
			mention(r.Requester, "someone") + ": " + reason(r.Reason) + "."
		if r.BreakGlass {
			s += " It started at once by break-glass; a second responder must review it."
		} else {
			s += " A responder other than the requester must approve it before " + date(r.ExpiresAt) + "."
		}
		return s + link
	}
}

// groupMentions renders users and user groups as mentions.
func groupMentions(a approvals.Approvers) string {
	var out []string
	for _, u := range a.Users {
		out = append(out, mention(u, ""))
	}
	for _, g := range a.Groups {
		if isSlackID(g) {
			out = append(out, "<!subteam^"+g+">")
		}
	}
	return strings.Join(out, " ")
}

// reviewButton is the break-glass request's Reviewed button; its value is the request ID.
func reviewButton(r *approvals.Request) *slack.ButtonBlockElement {
	b := slack.NewButtonBlockElement(ActionReview, r.ID, plain("Reviewed", maxButtonText)).WithStyle(slack.StylePrimary)
	return b.WithConfirm(slack.NewConfirmationBlockObject(
		plain("Mark as reviewed?", maxConfirmTitle),
		md("You confirm, as the second person, that the break-glass rotation of *"+target(r.Target, r.Env)+"* was justified.", maxConfirmText),
		plain("Reviewed", maxConfirmButton),
		plain("Not yet", maxConfirmButton),
	))
}

// reviewBlocks is the root message's break-glass part: the Reviewed button
// while the review is outstanding, or who reviewed.
func reviewBlocks(r *approvals.Request) []slack.Block {
	if !r.BreakGlass || r.Review == nil {
		return nil
	}
	if r.Review.By != "" {
		return []slack.Block{contextBlock(":eyes: Break-glass rotation reviewed by " + mention(r.Review.By, "—") + " at " + date(r.Review.At) + ".")}
	}
	line := ":warning: Started by break-glass without approval. A responder other than " + mention(r.Requester, "the requester") +
		" must review it by " + date(r.Review.DueAt) + "; otherwise the channel is alerted again."
	return []slack.Block{
		section(line),
		slack.NewActionBlock(BlockReview, reviewButton(r)),
	}
}

// reviewStatus is the review line of `/rotate status`, or "".
func reviewStatus(r *approvals.Request, now time.Time) string {
	if !r.BreakGlass || r.Review == nil {
		return ""
	}
	if r.Review.By != "" {
		return ":eyes: Break-glass: reviewed by " + mention(r.Review.By, "—") + " " + when(r.Review.At, now)
	}
	return fmt.Sprintf(":warning: Break-glass: *not reviewed*; next escalation %s (%d so far)", when(r.Review.DueAt, now), r.Review.Escalations)
}

// rollbackLine says what a rollback request restores, or "".
func rollbackLine(r *approvals.Request) string {
	if r.RollbackOf == "" {
		return ""
	}
	return ":leftwards_arrow_with_hook: Rollback of *" + name(r.RollbackOf) + "*: restores what that rotation replaced, restarts the consumers and verifies."
}

// timelineEntry is one line of an incident timeline.
type timelineEntry struct {
	at   time.Time
	line string
}

// Timeline renders an emergency's incident timeline: who did what and when,
// and each step's result, in time order. It ends the thread of an emergency
// and is meant to be copied into the incident record (`rotary audit export`
// has the full JSON).
func Timeline(r *approvals.Request, run *executor.Run) (string, []slack.Block) {
	var es []timelineEntry
	for _, e := range r.Events {
		line := mention(e.Actor, "rotary") + " · " + eventWord(e.Action)
		if e.Detail != "" {
			line += " — " + inline(e.Detail, maxOutcomeLen)
		}
		es = append(es, timelineEntry{e.At, line})
	}
	if run != nil {
		add := func(prefix string, steps []executor.StepRecord) {
			for _, s := range steps {
				if s.StartedAt.IsZero() {
					continue
				}
				line := stepEmoji(s.Status) + " " + prefix + stepTitle(s) + " · " + string(s.Status)
				if s.Error != "" {
					line += " — " + inline(s.Error, maxStepTextLen)
				}
				at := s.FinishedAt
				if at.IsZero() {
					at = s.StartedAt
				}
				es = append(es, timelineEntry{at, line})
			}
		}
		add("", run.Steps)
		add("rollback: ", run.Rollback)
	}
	slices.SortStableFunc(es, func(a, b timelineEntry) int { return cmp.Compare(a.at.UnixNano(), b.at.UnixNano()) })
	title := ":spiral_note_pad: *Incident timeline* · " + target(r.Target, r.Env) + " · " + name(r.ID)
	blocks := []slack.Block{section(title)}
	var cur []string
	size := 0
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, section(strings.Join(cur, "\n")))
			cur, size = nil, 0
		}
	}
	for _, e := range es {
		line := date(e.at) + " · " + e.line
		if size+len(line)+1 > maxSectionText {
			flush()
		}
		if len(blocks) >= maxBlocks-1 {
			break
		}
		cur = append(cur, line)
		size += len(line) + 1
	}
	flush()
	blocks = append(blocks, contextBlock("Full history as JSON: `rotary audit export "+name(r.ID)+"`"))
	return fallback("Incident timeline of " + target(r.Target, r.Env) + " (" + name(r.ID) + ")"), blocks
}
