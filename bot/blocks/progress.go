package blocks

import (
	"strings"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// Progress renders the single progress message in a request's thread: every
// step with its status, detail and error, the rollback steps when there are
// any, and the open prompt's button. run is nil before the executor starts.
func Progress(r *approvals.Request, run *executor.Run) (string, []slack.Block) {
	where := target(r.Target, r.Env)
	blocks := []slack.Block{section("*Rotation progress* · " + where + " · " + name(r.ID))}
	if run == nil {
		blocks = append(blocks, section(stepEmoji(executor.StepPending)+" Waiting to start."))
		return fallback("Rotation of " + where + ": waiting to start"), blocks
	}

	summary := progressSummary(r, run)
	var top []string
	if summary != "" {
		top = append(top, summary)
	}
	if run.Resumes > 0 {
		top = append(top, ":repeat: Picked up again after a restart ("+times(run.Resumes)+").")
	}
	if len(top) > 0 {
		blocks = append(blocks, contextBlock(top...))
	}

	var tail []slack.Block
	if p := run.Prompt; p != nil {
		tail = promptBlocks(r, run, p)
	}

	steps := stepBlocks(run.Steps)
	var rollback []slack.Block
	if len(run.Rollback) > 0 {
		rollback = append([]slack.Block{header("Rollback")}, stepBlocks(run.Rollback)...)
	}
	// A long plan would pass Slack's block limit with one section per
	// step; then the steps are listed as lines instead.
	if len(blocks)+len(steps)+len(rollback)+len(tail) > maxBlocks {
		steps = stepSections("", run.Steps)
		if len(run.Rollback) > 0 {
			rollback = append([]slack.Block{header("Rollback")}, stepSections("", run.Rollback)...)
		}
	}
	blocks = append(blocks, steps...)
	blocks = append(blocks, rollback...)
	if fu := followUpProgress(run); len(blocks)+len(fu)+len(tail) <= maxBlocks {
		blocks = append(blocks, fu...)
	}
	blocks = append(blocks, tail...)

	line := "Rotation of " + where + ": " + stateWord(r.State)
	if run.Phase == executor.PhaseRollback {
		line = "Rotation of " + where + ": rolling back"
	}
	if p := run.Prompt; p != nil {
		line += ", waiting for " + audience(r, p)
	}
	return fallback(line), blocks
}

// progressSummary says where the run is, when that is not evident from the steps.
func progressSummary(r *approvals.Request, run *executor.Run) string {
	if run.Phase == executor.PhaseRollback {
		if s, ok := failedStep(run); ok {
			return ":warning: *" + stepTitle(s) + "* failed — rolling back."
		}
		return ":warning: Rolling back."
	}
	if run.Phase == executor.PhaseDone || r.State.Terminal() {
		main, _ := outcome(r, run)
		return main
	}
	return ""
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return unit(n, "time")
}

// promptBlocks shows what the waiting step asks, who may answer, and the button.
func promptBlocks(r *approvals.Request, run *executor.Run, p *executor.PromptRecord) []slack.Block {
	label := "Done"
	switch {
	case p.Secret:
		label = "Paste key"
	case p.Button != "":
		label = p.Button
	}
	ask := ":raised_hand: *Input needed"
	if s, ok := findStep(run, p.Step); ok {
		ask += " for " + stepTitle(s)
	}
	ask += ":* " + text(p.Label, maxStepTextLen) + "\nWho can answer: " + audience(r, p)
	btn := slack.NewButtonBlockElement(ActionPrompt, PromptRef(r.ID, p.ID), plain(label, maxButtonText)).WithStyle(slack.StylePrimary)
	return []slack.Block{section(ask), slack.NewActionBlock(BlockPrompt, btn)}
}

// audience says who may answer a prompt. An unknown audience is shown as the
// narrowest one; the transport enforces the real rule either way.
func audience(r *approvals.Request, p *executor.PromptRecord) string {
	req := mention(r.Requester, "the requester")
	if p.Audience == string(rotators.AudienceParticipants) {
		return req + " or " + mention(r.DecidedBy, "the approver")
	}
	return req
}

// stepEmoji is a step status at a glance.
func stepEmoji(s executor.StepStatus) string {
	switch s {
	case executor.StepPending:
		return ":white_circle:"
	case executor.StepRunning:
		return ":hourglass_flowing_sand:"
	case executor.StepDone:
		return ":white_check_mark:"
	case executor.StepFailed:
		return ":x:"
	case executor.StepSkipped:
		return ":heavy_minus_sign:"
	case executor.StepWaiting:
		return ":raised_hand:"
	default:
		return ":grey_question:"
	}
}

// stepTitle is the step's title, or its name when it has none.
func stepTitle(s executor.StepRecord) string {
	if s.Title != "" {
		return inline(s.Title, maxStepTextLen)
	}
	return name(s.Name)
}

// stepBlocks is one section per step, with its detail and error in a context line.
func stepBlocks(steps []executor.StepRecord) []slack.Block {
	var blocks []slack.Block
	for _, s := range steps {
		blocks = append(blocks, section(stepEmoji(s.Status)+" *"+stepTitle(s)+"*"))
		var ctx []string
		if s.Detail != "" {
			ctx = append(ctx, text(s.Detail, maxStepTextLen))
		}
		if s.Error != "" {
			ctx = append(ctx, ":warning: "+text(s.Error, maxStepTextLen))
		}
		if len(ctx) > 0 {
			blocks = append(blocks, contextBlock(ctx...))
		}
	}
	return blocks
}

// stepSections lists steps as lines, packed into as few sections as Slack's
// text limit allows, under an optional title.
func stepSections(title string, steps []executor.StepRecord) []slack.Block {
	var blocks []slack.Block
	var cur []string
	size := 0
	if title != "" {
		cur, size = []string{title}, len([]rune(title))
	}
	for _, s := range steps {
		line := stepEmoji(s.Status) + " *" + stepTitle(s) + "*"
		if s.Detail != "" {
			line += " — " + inline(s.Detail, maxStepTextLen)
		}
		if s.Error != "" {
			line += "\n        :warning: " + inline(s.Error, maxStepTextLen)
		}
		n := len([]rune(line)) + 1
		if len(cur) > 0 && size+n > maxSectionText {
			blocks = append(blocks, section(strings.Join(cur, "\n")))
			cur, size = nil, 0
		}
		cur, size = append(cur, line), size+n
	}
	if len(cur) > 0 {
		blocks = append(blocks, section(strings.Join(cur, "\n")))
	}
	return blocks
}

func findStep(run *executor.Run, stepName string) (executor.StepRecord, bool) {
	if run == nil || stepName == "" {
		return executor.StepRecord{}, false
	}
	for _, s := range run.Steps {
		if s.Name == stepName {
			return s, true
		}
	}
	for _, s := range run.Rollback {
		if s.Name == stepName {
			return s, true
		}
	}
	return executor.StepRecord{}, false
}

// failedStep is the forward step whose failure started the rollback.
func failedStep(run *executor.Run) (executor.StepRecord, bool) {
	if run == nil {
		return executor.StepRecord{}, false
	}
	return findStep(run, run.FailedStep)
}
