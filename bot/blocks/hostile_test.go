package blocks

import (
	"errors"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// evil is put in every string field: it would ping the channel, mention a
// user, post a disguised link and forge a date if any part of it reached
// mrkdwn unescaped.
const evil = "<!channel> <@UEVIL> <https://evil.example|approve here> <!date^0^{date}|forged> & \u202e\x1b[31m"

// hostileRequest has evil in every string field a message can show.
func hostileRequest(s approvals.State) *approvals.Request {
	r := request(s)
	r.ID, r.Target, r.Kind, r.Env = "R-"+evil, evil, evil, evil
	r.Reason, r.DenyReason, r.Outcome = evil, evil, evil
	r.Requester, r.DecidedBy = "U1>"+evil, "U2>"+evil
	for i := range r.Events {
		r.Events[i].Actor, r.Events[i].Action, r.Events[i].Detail = evil, evil, evil
	}
	return r
}

func hostileRun() *executor.Run {
	run := runFailedAt(executor.PhaseRollback, executor.StepFailed, executor.StepWaiting)
	for _, ss := range [][]executor.StepRecord{run.Steps, run.Rollback} {
		for i := range ss {
			ss[i].Title, ss[i].Detail, ss[i].Error = evil, evil, evil
		}
	}
	run.Steps[3].Name, run.FailedStep = evil, evil
	run.Prompt = &executor.PromptRecord{ID: "p", Step: evil, Label: evil, Secret: true, Audience: string(rotators.AudienceParticipants)}
	return run
}

// TestNoFieldRenderedUnescaped renders every message from a request, run,
// notes and hints that are hostile in every field, and holds all mrkdwn and
// fallback text to the token rule (only mentions of real Slack IDs and this
// package's date tokens may appear between < and >).
func TestNoFieldRenderedUnescaped(t *testing.T) {
	type out struct {
		name   string
		text   string
		blocks []slack.Block
	}
	var outs []out
	add := func(name, text string, blocks []slack.Block) { outs = append(outs, out{name, text, blocks}) }
	run := hostileRun()
	notes := []string{evil, evil}

	for _, s := range append(approvals.AllStates, "evil>state") {
		r := hostileRequest(s)
		text, blocks := Request(r, run, notes, tNow)
		add("request "+string(s), text, blocks)
		text, blocks = Request(r, run, notes, tCreated)
		add("request early "+string(s), text, blocks)
		text, blocks = Progress(r, run)
		add("progress "+string(s), text, blocks)
		text, blocks = Status(r, run, tNow)
		add("status "+string(s), text, blocks)
		for _, ev := range append(toStrings(approvals.AllStates), EventInputNeeded, evil) {
			n := approvals.Notice{Event: ev, Actor: evil, Step: evil, Prompt: "p"}
			text, blocks = Reply(n, r, run)
			add("reply "+ev, text, blocks)
			text, blocks = Announcement(n, r)
			add("announce "+ev, text, blocks)
		}
	}
	text, blocks := List([]*approvals.Request{hostileRequest(approvals.StatePending), hostileRequest(approvals.StateRunning)}, tNow)
	add("list", text, blocks)

	sawEscaped := false
	for _, o := range outs {
		checkSlackRules(t, o.name, o.text, o.blocks)
		sawEscaped = sawEscaped || strings.Contains(string(marshal(t, o.blocks, "")), "&lt;!channel&gt;")
	}
	// The hostile text must be shown (escaped), not silently dropped, or
	// this test would pass for the wrong reason.
	if !sawEscaped {
		t.Error("no message shows the escaped hostile text")
	}

	h := Hints{Targets: []string{evil}, Envs: map[string][]string{evil: {evil}}, Target: evil, RequestID: evil, Ref: evil}
	for _, err := range []error{
		approvals.ErrNotFound, approvals.ErrUnknownTarget, approvals.ErrUnknownEnv, errors.New(evil),
		&parseError{msg: evil},
		&approvals.NotPendingError{ID: evil, State: approvals.StateApproved, By: evil},
		&approvals.NotPendingError{ID: evil, State: evil},
		&approvals.ActiveExistsError{Target: evil, Env: evil, ID: evil, State: evil},
	} {
		checkMrkdwn(t, "ErrorText "+err.Error(), ErrorText(err, h), maxSectionText)
	}
	h.Target = ""
	checkMrkdwn(t, "ErrorText unknown env, all targets", ErrorText(approvals.ErrUnknownEnv, h), maxSectionText)
	checkMrkdwn(t, "Help", Help(h), maxSectionText)

	deny := DenyModal(evil)
	checkModal(t, "deny modal", deny)
	paste := PasteModal(evil, evil, evil)
	checkModal(t, "paste modal", paste)
}

func toStrings(states []approvals.State) []string {
	out := make([]string, 0, len(states))
	for _, s := range states {
		out = append(out, string(s))
	}
	return out
}
