package blocks

import (
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// maxListed is how many requests List shows before summarising the rest,
// leaving room under Slack's block limit for the header and footer.
const maxListed = 40

// maxHistory is how many of a request's latest events Status shows.
const maxHistory = 10

// Request renders a request's root message for its current state. A pending
// request that has not yet expired at now gets the Approve and Deny buttons;
// every other state shows who decided and how it ended, and no buttons, so an
// old message can never offer a decision that no longer applies. run may be
// nil; notes are the plan's warnings.
func Request(r *approvals.Request, run *executor.Run, notes []string, now time.Time) (string, []slack.Block) {
	blocks := []slack.Block{header(requestHeader(r))}

	pairs := [][2]string{
		{"Target", name(r.Target)},
		{"Environment", name(r.Env)},
		{"Requester", mention(r.Requester, "—")},
		{"Request ID", name(r.ID)},
	}
	if r.State == approvals.StatePending {
		pairs = append(pairs, [2]string{"Expires", date(r.ExpiresAt)})
	}
	blocks = append(blocks, fields(pairs...), section("*Reason*\n"+reason(r.Reason)))
	if l := rollbackLine(r); l != "" {
		blocks = append(blocks, section(l))
	}

	if len(notes) > 0 {
		lines := make([]string, 0, len(notes))
		for _, n := range notes {
			lines = append(lines, ":information_source: "+text(n, maxNoteLen))
		}
		blocks = append(blocks, contextBlock(lines...))
	}

	blocks = append(blocks, stateBlocks(r, run, now)...)
	blocks = append(blocks, reviewBlocks(r)...)
	return fallback(requestSummary(r)), blocks
}

// requestHeader is plain text: the raw names are only cleaned, never escaped.
func requestHeader(r *approvals.Request) string {
	where := oneLine(r.Target) + " (" + oneLine(r.Env) + ")"
	switch {
	case r.Emergency:
		return ":rotating_light: EMERGENCY rotation: " + where
	case r.RollbackOf != "":
		return ":leftwards_arrow_with_hook: Rollback request: " + where
	}
	return ":key: Rotation request: " + where
}

// requestSummary is the one-line description used as fallback text.
func requestSummary(r *approvals.Request) string {
	kind := "Rotation request"
	if r.Emergency {
		kind = "EMERGENCY rotation request"
	}
	return fmt.Sprintf("%s %s for %s by %s: %s", kind, name(r.ID), target(r.Target, r.Env), mention(r.Requester, "someone"), stateWord(r.State))
}

func reason(s string) string {
	if s = text(s, MaxReasonLen); s == "" {
		return "—"
	}
	return s
}

// stateWord is a state as people say it.
func stateWord(s approvals.State) string {
	switch s {
	case approvals.StatePending:
		return "waiting for approval"
	case approvals.StateApproved:
		return "approved"
	case approvals.StateRunning:
		return "running"
	case approvals.StateSucceeded:
		return "rotated"
	case approvals.StateFailed:
		return "failed"
	case approvals.StateRolledBack:
		return "rolled back"
	case approvals.StateDenied:
		return "denied"
	case approvals.StateCancelled:
		return "cancelled"
	case approvals.StateExpired:
		return "expired"
	default:
		return "in state " + inline(string(s), maxNameLen)
	}
}

// stateBlocks is the root message's lower part: the decision buttons while
// pending, otherwise the outcome and who decided.
func stateBlocks(r *approvals.Request, run *executor.Run, now time.Time) []slack.Block {
	if r.State == approvals.StatePending {
		if !now.Before(r.ExpiresAt) {
			return []slack.Block{section(":hourglass: This request passed its expiry at " + date(r.ExpiresAt) + " and can no longer be approved.")}
		}
		return []slack.Block{
			slack.NewActionBlock(BlockDecision, approveButton(r), denyButton(r)),
			contextBlock("Needs approval by someone other than " + mention(r.Requester, "the requester") + "."),
		}
	}
	main, extra := outcome(r, run)
	extra = append(extra, followUpLines(run, time.Time{})...)
	blocks := []slack.Block{section(main)}
	if len(extra) > 0 {
		blocks = append(blocks, contextBlock(extra...))
	}
	return blocks
}

func approveButton(r *approvals.Request) *slack.ButtonBlockElement {
	b := slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve", maxButtonText)).WithStyle(slack.StylePrimary)
	// Approving starts a production change at once, so one stray click must not do it.
	return b.WithConfirm(slack.NewConfirmationBlockObject(
		plain("Approve this rotation?", maxConfirmTitle),
		md("Rotation of *"+target(r.Target, r.Env)+"* starts as soon as you approve.", maxConfirmText),
		plain("Approve", maxConfirmButton),
		plain("Not yet", maxConfirmButton),
	))
}

func denyButton(r *approvals.Request) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(ActionDeny, r.ID, plain("Deny", maxButtonText)).WithStyle(slack.StyleDanger)
}

// outcome is a decided request's status line and its context lines.
func outcome(r *approvals.Request, run *executor.Run) (string, []string) {
	approved := "Approved by " + mention(r.DecidedBy, "an approver") + " at " + date(r.DecidedAt)
	if r.BreakGlass {
		approved = "Started by break-glass by " + mention(r.DecidedBy, "a responder") + " at " + date(r.DecidedAt) + ", without approval"
	}
	switch r.State {
	case approvals.StateApproved:
		return ":ballot_box_with_check: " + approved + ". The rotation starts shortly.", nil
	case approvals.StateRunning:
		return ":arrows_counterclockwise: Rotation running — progress in thread", []string{approved, "Started " + date(r.StartedAt)}
	case approvals.StateSucceeded:
		return ":white_check_mark: *Rotated*" + dash(r.Outcome), []string{approved, "Finished " + date(r.FinishedAt)}
	case approvals.StateFailed:
		return ":x: *Failed*" + dash(r.Outcome), failedContext(approved, r, run)
	case approvals.StateRolledBack:
		return ":leftwards_arrow_with_hook: *Rolled back*" + dash(r.Outcome), failedContext(approved, r, run)
	case approvals.StateDenied:
		return ":no_entry: Denied by " + mention(r.DecidedBy, "an approver") + ": " + reason(r.DenyReason), []string{"Decided " + date(r.DecidedAt)}
	case approvals.StateCancelled:
		return ":wastebasket: Cancelled by the requester", []string{"Cancelled " + date(r.DecidedAt)}
	case approvals.StateExpired:
		return ":hourglass: Expired unapproved after " + duration(r.ExpiresAt.Sub(r.CreatedAt)), []string{"Expired " + date(r.ExpiresAt)}
	default:
		return "Request is " + stateWord(r.State) + ".", nil
	}
}

func failedContext(approved string, r *approvals.Request, run *executor.Run) []string {
	lines := []string{approved, "Finished " + date(r.FinishedAt)}
	if s, ok := failedStep(run); ok {
		lines = append(lines, "Failed step: *"+stepTitle(s)+"*")
	}
	return lines
}

// dash appends an outcome after an em dash, when there is one.
func dash(s string) string {
	if s = inline(s, maxOutcomeLen); s == "" {
		return ""
	}
	return " — " + s
}

// Status renders the answer to `/rotate status`: the request, its steps and
// its latest history. It is ephemeral and read at once, so times also show
// how long ago they were, relative to now.
func Status(r *approvals.Request, run *executor.Run, now time.Time) (string, []slack.Block) {
	title := "*" + name(r.ID) + "* · " + target(r.Target, r.Env) + " · *" + stateWord(r.State) + "*"
	if r.Emergency {
		title = ":rotating_light: EMERGENCY · " + title
	}
	blocks := []slack.Block{section(title)}

	pairs := [][2]string{
		{"Requester", mention(r.Requester, "—")},
		{"Requested", when(r.CreatedAt, now)},
	}
	switch {
	case r.State == approvals.StatePending:
		pairs = append(pairs, [2]string{"Expires", when(r.ExpiresAt, now)})
	case r.DecidedBy != "" || !r.DecidedAt.IsZero():
		pairs = append(pairs, [2]string{"Decided by", mention(r.DecidedBy, "—")}, [2]string{"Decided", when(r.DecidedAt, now)})
	}
	if !r.StartedAt.IsZero() {
		pairs = append(pairs, [2]string{"Started", when(r.StartedAt, now)})
	}
	if !r.FinishedAt.IsZero() {
		pairs = append(pairs, [2]string{"Finished", when(r.FinishedAt, now)})
	}
	blocks = append(blocks, fields(pairs...), section("*Reason*\n"+reason(r.Reason)))
	if l := rollbackLine(r); l != "" {
		blocks = append(blocks, section(l))
	}
	if l := reviewStatus(r, now); l != "" {
		blocks = append(blocks, section(l))
	}

	if r.State == approvals.StatePending {
		blocks = append(blocks, contextBlock("Needs approval by someone other than "+mention(r.Requester, "the requester")+"."))
	} else {
		main, _ := outcome(r, run)
		blocks = append(blocks, section(main))
	}

	if run != nil {
		blocks = append(blocks, stepSections("*Steps*", run.Steps)...)
		if len(run.Rollback) > 0 {
			blocks = append(blocks, stepSections("*Rollback*", run.Rollback)...)
		}
		if lines := followUpLines(run, now); len(lines) > 0 {
			blocks = append(blocks, section(strings.Join(lines, "\n")))
		}
		if p := run.Prompt; p != nil {
			blocks = append(blocks, section(":raised_hand: *Waiting for input:* "+inline(p.Label, maxStepTextLen)+"\nWho can answer: "+audience(r, p)))
		}
	}

	if len(r.Events) > 0 {
		events := r.Events
		if len(events) > maxHistory {
			events = events[len(events)-maxHistory:]
		}
		lines := []string{"*History*"}
		for _, e := range events {
			line := date(e.At) + " · " + mention(e.Actor, "rotary") + " · " + eventWord(e.Action)
			if e.Detail != "" {
				line += " — " + inline(e.Detail, maxOutcomeLen)
			}
			lines = append(lines, line)
		}
		blocks = append(blocks, section(strings.Join(lines, "\n")))
	}
	return fallback(requestSummary(r)), blocks
}

// eventWord is a history event's action as people say it.
func eventWord(action string) string {
	switch approvals.State(action) {
	case approvals.StateRunning:
		return "started"
	case approvals.StateSucceeded:
		return "rotated"
	case approvals.StateRolledBack:
		return "rolled back"
	}
	switch action {
	case approvals.EventReviewOverdue:
		return "review overdue"
	case approvals.EventRollbackOpened:
		return "requested a rollback"
	default:
		return inline(strings.ReplaceAll(action, "_", " "), maxNameLen)
	}
}

// when is a date token followed by the time relative to now.
func when(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return date(t) + " (" + relative(t, now) + ")"
}

// List renders the answer to `/rotate list`: every open request, oldest first
// as given.
func List(rs []*approvals.Request, now time.Time) (string, []slack.Block) {
	if len(rs) == 0 {
		const none = "No open requests."
		return none, []slack.Block{section(none)}
	}
	count := fmt.Sprintf("%d open request", len(rs))
	if len(rs) != 1 {
		count += "s"
	}
	blocks := []slack.Block{section("*" + count + "*")}
	for i, r := range rs {
		if i == maxListed {
			blocks = append(blocks, contextBlock(fmt.Sprintf("…and %d more.", len(rs)-maxListed)))
			break
		}
		line := "*" + name(r.ID) + "* · " + target(r.Target, r.Env) + " · " + stateWord(r.State)
		if r.Emergency {
			line = ":rotating_light: " + line
		}
		line += "\nRequested by " + mention(r.Requester, "—") + " " + relative(r.CreatedAt, now)
		if r.State == approvals.StatePending {
			line += " · expires " + relative(r.ExpiresAt, now)
		}
		blocks = append(blocks, section(line))
	}
	blocks = append(blocks, contextBlock("`/rotate status "+esc("<request ID>")+"` shows one request in full."))
	return count + ".", blocks
}

// Opened is the ephemeral answer to the requester once a request is stored.
func Opened(r *approvals.Request) string {
	if r.BreakGlass {
		return "Started " + name(r.ID) + ": EMERGENCY rotation of *" + target(r.Target, r.Env) + "* by break-glass, without approval. The channel has been alerted; a second responder must review it by " +
			date(r.Review.DueAt) + ". Progress is in the request's thread."
	}
	if r.Emergency {
		return "Opened " + name(r.ID) + ": EMERGENCY rotation of *" + target(r.Target, r.Env) + "*. The channel has been alerted; a responder other than you must approve it before " +
			date(r.ExpiresAt) + ". `/rotate cancel " + name(r.ID) + "` withdraws it."
	}
	if r.RollbackOf != "" {
		return "Opened " + name(r.ID) + ": rollback of *" + name(r.RollbackOf) + "* (" + target(r.Target, r.Env) + "). Someone other than you must approve it before " +
			date(r.ExpiresAt) + ". `/rotate cancel " + name(r.ID) + "` withdraws it."
	}
	return "Opened " + name(r.ID) + ": rotation of *" + target(r.Target, r.Env) + "*. It is posted in the request channel; someone other than you must approve it before " +
		date(r.ExpiresAt) + ". `/rotate cancel " + name(r.ID) + "` withdraws it."
}

// Cancelled is the ephemeral answer to a successful cancel.
func Cancelled(r *approvals.Request) string {
	return "Cancelled " + name(r.ID) + " (" + target(r.Target, r.Env) + "). Nothing was changed."
}
