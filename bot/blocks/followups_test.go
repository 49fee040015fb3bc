package blocks

import (
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// runWithFollowUp is a succeeded run with one follow-up in status st.
func runWithFollowUp(st executor.FollowUpStatus) *executor.Run {
	run := runSucceeded()
	f := executor.FollowUpRecord{
		Name: "remove_old_public_key", Title: "Remove the old public key", Status: st,
		DueAt:   tFinished.Add(24 * time.Hour),
		History: []executor.FollowUpEvent{{At: tFinished, Action: executor.ActionScheduled}},
	}
	switch st {
	case executor.FollowUpRunning, executor.FollowUpDone, executor.FollowUpFailed:
		f.StartedAt = f.DueAt
		f.Steps = []executor.StepRecord{
			{Name: "remove_old", Title: "Remove JWT_PUBLIC_KEY_OLD", Status: executor.StepDone, StartedAt: f.DueAt, FinishedAt: f.DueAt.Add(time.Second)},
			{Name: "restart", Title: "Restart auth-svc", Status: executor.StepRunning, StartedAt: f.DueAt.Add(time.Second)},
		}
	}
	switch st {
	case executor.FollowUpDone:
		f.Steps[1].Status, f.FinishedAt = executor.StepDone, f.DueAt.Add(time.Minute)
	case executor.FollowUpFailed:
		f.Steps[1].Status, f.Steps[1].Error = executor.StepFailed, "rollout of auth-svc timed out"
		f.Error, f.FinishedAt = "step \"Restart auth-svc\" failed: rollout of auth-svc timed out", f.DueAt.Add(10*time.Minute)
	}
	run.FollowUps = []executor.FollowUpRecord{f}
	return run
}

func TestFollowUpGolden(t *testing.T) {
	r := request(approvals.StateSucceeded)
	r.Target = "jwt"
	for _, tc := range []struct {
		name  string
		event string
		st    executor.FollowUpStatus
		actor string
	}{
		{"scheduled", executor.EventFollowUpScheduled, executor.FollowUpScheduled, ""},
		{"postponed", executor.EventFollowUpPostponed, executor.FollowUpScheduled, bob},
		{"run_now", executor.EventFollowUpRunNow, executor.FollowUpScheduled, alice},
		{"started", executor.EventFollowUpStarted, executor.FollowUpRunning, ""},
		{"done", executor.EventFollowUpDone, executor.FollowUpDone, ""},
		{"failed", executor.EventFollowUpFailed, executor.FollowUpFailed, ""},
		{"cancelled", executor.EventFollowUpCancelled, executor.FollowUpCancelled, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := approvals.Notice{Kind: approvals.NoticeReply, RequestID: r.ID, Event: tc.event, Step: "remove_old_public_key", Actor: tc.actor}
			text, blocks := Reply(n, r, runWithFollowUp(tc.st))
			checkMessage(t, "reply_followup_"+tc.name, text, blocks)
		})
	}
	t.Run("unknown_follow_up", func(t *testing.T) {
		n := approvals.Notice{Kind: approvals.NoticeReply, Event: executor.EventFollowUpDone, Step: "gone"}
		text, blocks := Reply(n, r, runSucceeded())
		checkMessage(t, "reply_followup_unknown", text, blocks)
	})
	t.Run("request", func(t *testing.T) {
		text, blocks := Request(r, runWithFollowUp(executor.FollowUpScheduled), nil, tNow)
		checkMessage(t, "request_followup_scheduled", text, blocks)
	})
	t.Run("status", func(t *testing.T) {
		text, blocks := Status(r, runWithFollowUp(executor.FollowUpScheduled), tFinished.Add(time.Hour))
		checkMessage(t, "status_followup_scheduled", text, blocks)
	})
	t.Run("progress", func(t *testing.T) {
		text, blocks := Progress(r, runWithFollowUp(executor.FollowUpFailed))
		checkMessage(t, "progress_followup_failed", text, blocks)
	})
}
