package blocks

import (
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
)

// breakGlass is a running emergency started by break-glass, not yet reviewed.
func breakGlass() *approvals.Request {
	r := request(approvals.StateRunning)
	r.Target, r.Emergency, r.BreakGlass, r.Reason = "jwt", true, true, "signing key found in a public repo"
	r.DecidedBy = alice
	r.Review = &approvals.Review{DueAt: tDecided.Add(30 * time.Minute)}
	return r
}

func TestEmergencyGolden(t *testing.T) {
	emergency := request(approvals.StatePending)
	emergency.Target, emergency.Emergency, emergency.Reason = "jwt", true, "signing key found in a public repo"
	link := "https://aivo.slack.com/archives/C0REQ/p1700000000000100"

	t.Run("alert_emergency", func(t *testing.T) {
		text, blocks := Alert(approvals.Notice{Kind: approvals.NoticeAlert, Event: approvals.EventEmergency}, emergency, link, approvals.Approvers{})
		if !strings.HasPrefix(text, "<!channel>") {
			t.Fatalf("alert text %q must start with <!channel>: Slack notifies from the text", text)
		}
		checkMessage(t, "alert_emergency", text, blocks)
	})
	t.Run("alert_break_glass", func(t *testing.T) {
		text, blocks := Alert(approvals.Notice{Kind: approvals.NoticeAlert, Event: approvals.EventEmergency}, breakGlass(), link, approvals.Approvers{})
		checkMessage(t, "alert_break_glass", text, blocks)
	})
	t.Run("alert_review_overdue", func(t *testing.T) {
		r := breakGlass()
		r.Review.Escalations = 2
		text, blocks := Alert(approvals.Notice{Kind: approvals.NoticeAlert, Event: approvals.EventReviewOverdue}, r, link,
			approvals.Approvers{Users: []string{"U0CISO"}, Groups: []string{"S0SECURITY"}})
		if !strings.Contains(text, "<!subteam^S0SECURITY>") || !strings.Contains(text, "<@U0CISO>") {
			t.Fatalf("escalation does not mention its targets: %q", text)
		}
		checkMessage(t, "alert_review_overdue", text, blocks)
	})
	t.Run("announce_emergency", func(t *testing.T) {
		text, blocks := Announcement(approvals.Notice{Kind: approvals.NoticeAnnounce, Event: approvals.EventEmergency}, emergency)
		checkMessage(t, "announce_emergency", text, blocks)
	})
	t.Run("request_break_glass", func(t *testing.T) {
		text, blocks := Request(breakGlass(), runRunning(), nil, tNow)
		checkMessage(t, "request_break_glass", text, blocks)
	})
	t.Run("request_break_glass_reviewed", func(t *testing.T) {
		r := breakGlass()
		r.Review.By, r.Review.At = bob, tNow
		text, blocks := Request(r, runRunning(), nil, tNow)
		checkMessage(t, "request_break_glass_reviewed", text, blocks)
	})
	t.Run("status_break_glass", func(t *testing.T) {
		text, blocks := Status(breakGlass(), runRunning(), tNow)
		checkMessage(t, "status_break_glass", text, blocks)
	})
	t.Run("reply_break_glass", func(t *testing.T) {
		text, blocks := Reply(approvals.Notice{Kind: approvals.NoticeReply, Event: approvals.EventBreakGlass, Actor: alice}, breakGlass(), nil)
		checkMessage(t, "reply_break_glass", text, blocks)
	})
	t.Run("reply_reviewed", func(t *testing.T) {
		text, blocks := Reply(approvals.Notice{Kind: approvals.NoticeReply, Event: approvals.EventReviewed, Actor: bob}, breakGlass(), nil)
		checkMessage(t, "reply_reviewed", text, blocks)
	})
	t.Run("timeline", func(t *testing.T) {
		r := request(approvals.StateSucceeded)
		r.Target, r.Emergency = "jwt", true
		text, blocks := Reply(approvals.Notice{Kind: approvals.NoticeReply, Event: approvals.EventTimeline}, r, runSucceeded())
		checkMessage(t, "timeline", text, blocks)
	})
	t.Run("request_rollback", func(t *testing.T) {
		r := request(approvals.StatePending)
		r.RollbackOf = "R-5A1B2C"
		text, blocks := Request(r, nil, nil, tNow)
		checkMessage(t, "request_rollback", text, blocks)
	})
}

func TestTimelineStaysWithinLimits(t *testing.T) {
	r := request(approvals.StateFailed)
	r.Emergency = true
	for i := range 400 {
		r.Events = append(r.Events, approvals.Event{At: tNow.Add(time.Duration(i) * time.Second), Actor: bob, Action: "review_overdue", Detail: strings.Repeat("x", 300)})
	}
	text, blocks := Timeline(r, runRolledBack())
	checkSlackRules(t, "timeline_long", text, blocks)
	if len(blocks) > maxBlocks {
		t.Fatalf("%d blocks", len(blocks))
	}
}
