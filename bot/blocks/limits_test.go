package blocks

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// TestLongValuesAreClipped fills every outside value with far more text than
// Slack accepts (of characters that grow when escaped) and checks that every
// message stays within Slack's limits and marks what it cut.
func TestLongValuesAreClipped(t *testing.T) {
	long := strings.Repeat("<&>", 5000)
	r := request(approvals.StateDenied)
	r.Target, r.Env, r.ID = strings.Repeat("t", 500), strings.Repeat("e", 500), strings.Repeat("R", 500)
	r.Reason, r.DenyReason, r.Outcome = long, long, long
	run := runRolledBack()
	for i := range run.Steps {
		run.Steps[i].Title, run.Steps[i].Detail, run.Steps[i].Error = long, long, long
	}
	run.Prompt = &executor.PromptRecord{ID: "p", Label: long, Secret: true}

	msgs := map[string]func() (string, []slack.Block){
		"request":  func() (string, []slack.Block) { return Request(r, run, []string{long}, tNow) },
		"progress": func() (string, []slack.Block) { return Progress(r, run) },
		"status":   func() (string, []slack.Block) { return Status(r, run, tNow) },
		"reply":    func() (string, []slack.Block) { return Reply(approvals.Notice{Event: "denied"}, r, run) },
		"announce": func() (string, []slack.Block) { return Announcement(approvals.Notice{Event: "rolled_back"}, r) },
		"list":     func() (string, []slack.Block) { return List([]*approvals.Request{r}, tNow) },
	}
	for name, render := range msgs {
		t.Run(name, func(t *testing.T) {
			text, blocks := render()
			checkSlackRules(t, name, text, blocks)
			b, _ := json.Marshal(blocks)
			if !strings.Contains(string(b), ellipsis) {
				t.Errorf("%s: nothing marked as clipped", name)
			}
		})
	}

	text, blocks := Request(r, nil, nil, tNow)
	h := blocks[0].(*slack.HeaderBlock)
	if n := len([]rune(h.Text.Text)); n > maxHeaderText || !strings.HasSuffix(h.Text.Text, ellipsis) {
		t.Errorf("header has %d characters (limit %d) and must end clipped: %q", n, maxHeaderText, h.Text.Text)
	}
	checkMrkdwn(t, "fallback", text, maxFallbackText)

	// The reason is cut before it is escaped, so the cut can never fall
	// inside an entity: it shows whole characters up to the cap.
	if got, want := reason(long), esc(clip(long, MaxReasonLen)); got != want {
		t.Errorf("reason clipped to %d runes, want %d", len([]rune(got)), len([]rune(want)))
	}
}

// TestProgressLongPlanFitsBlockLimit: a plan too long for one section per
// step is listed as lines, and every step is still shown.
func TestProgressLongPlanFitsBlockLimit(t *testing.T) {
	run := &executor.Run{Phase: executor.PhaseRollback, FailedStep: "step_39"}
	for i := range 40 {
		run.Steps = append(run.Steps, executor.StepRecord{Name: fmt.Sprintf("step_%d", i), Title: fmt.Sprintf("Step number %d", i), Status: executor.StepDone, Detail: "ok"})
		run.Rollback = append(run.Rollback, executor.StepRecord{Name: fmt.Sprintf("undo_%d", i), Title: fmt.Sprintf("Undo number %d", i), Status: executor.StepPending, Error: "boom"})
	}
	run.Prompt = &executor.PromptRecord{ID: "p", Label: "confirm", Audience: "requester"}
	text, blocks := Progress(request(approvals.StateRunning), run)
	checkSlackRules(t, "long plan", text, blocks)
	b := string(marshal(t, blocks, ""))
	for i := range 40 {
		for _, title := range []string{fmt.Sprintf("Step number %d*", i), fmt.Sprintf("Undo number %d*", i)} {
			if !strings.Contains(b, title) {
				t.Errorf("long plan does not show %q", title)
			}
		}
	}
	if !strings.Contains(b, ActionPrompt) {
		t.Error("long plan lost the prompt button")
	}
}

func TestListCapsLongLists(t *testing.T) {
	var rs []*approvals.Request
	for range maxListed + 7 {
		rs = append(rs, request(approvals.StatePending))
	}
	text, blocks := List(rs, tNow)
	checkSlackRules(t, "long list", text, blocks)
	if text != "47 open requests." {
		t.Errorf("fallback = %q", text)
	}
	if !strings.Contains(string(marshal(t, blocks, "")), "…and 7 more.") {
		t.Error("long list does not say how many it left out")
	}
}

func TestPendingButtonsOnlyWhilePending(t *testing.T) {
	for _, s := range approvals.AllStates {
		_, blocks := Request(request(s), runFor(s), nil, tNow)
		b := string(marshal(t, blocks, ""))
		hasButtons := strings.Contains(b, ActionApprove) || strings.Contains(b, ActionDeny)
		if want := s == approvals.StatePending; hasButtons != want {
			t.Errorf("%s: decision buttons shown = %v, want %v", s, hasButtons, want)
		}
	}
	_, blocks := Request(request(approvals.StatePending), nil, nil, tExpires)
	if b := string(marshal(t, blocks, "")); strings.Contains(b, ActionApprove) {
		t.Error("a pending request past its expiry still offers Approve")
	}
}
