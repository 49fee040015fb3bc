package approvals_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
)

// emergencyPolicy adds responders (URESP, group SONCALL) and, when
// breakGlass, break-glass for URESP only.
func emergencyPolicy(breakGlass bool) func(*approvals.Policy) {
	return func(p *approvals.Policy) {
		p.Emergency = approvals.Emergency{
			Responders: approvals.Approvers{Users: []string{"URESP", "URESP2"}, Groups: []string{"SONCALL"}},
			TTL:        15 * time.Minute,
			BreakGlass: approvals.BreakGlass{
				Enabled: breakGlass, Users: []string{"URESP"},
				ReviewWithin: 30 * time.Minute, MaxEscalations: 2,
			},
		}
	}
}

// notices returns the queued notices of request id, in order.
func (f *fixture) notices(t *testing.T, id string) []approvals.Notice {
	t.Helper()
	due, err := f.store.OutboxDue(ctx, f.clock.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []approvals.Notice
	for _, e := range due {
		if e.Notice.RequestID == id {
			out = append(out, e.Notice)
		}
	}
	// OutboxDue returns only each request's head: drain to see them all.
	for len(due) > 0 {
		for _, e := range due {
			if err := f.store.OutboxDone(ctx, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		if due, err = f.store.OutboxDue(ctx, f.clock.Now().Add(time.Hour), 1000); err != nil {
			t.Fatal(err)
		}
		for _, e := range due {
			if e.Notice.RequestID == id {
				out = append(out, e.Notice)
			}
		}
	}
	return out
}

func hasNotice(ns []approvals.Notice, kind approvals.NoticeKind, event string) bool {
	return slices.ContainsFunc(ns, func(n approvals.Notice) bool { return n.Kind == kind && n.Event == event })
}

func (f *fixture) openEmergency(t *testing.T, requester string) *approvals.Request {
	t.Helper()
	r, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: requester, Reason: "key posted in a public gist", Emergency: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEmergencyOpenAlertsAndUsesShortTTL(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(false))
	if _, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: "UREQ", Emergency: true}); !errors.Is(err, approvals.ErrEmergencyReason) {
		t.Fatalf("emergency without reason: %v", err)
	}
	r := f.openEmergency(t, "UREQ")
	if r.State != approvals.StatePending || !r.ExpiresAt.Equal(f.clock.Now().Add(15*time.Minute)) || r.BreakGlass {
		t.Fatalf("emergency request %+v", r)
	}
	ns := f.notices(t, r.ID)
	if !hasNotice(ns, approvals.NoticeRoot, approvals.EventRequested) || !hasNotice(ns, approvals.NoticeAlert, approvals.EventEmergency) || !hasNotice(ns, approvals.NoticeAnnounce, approvals.EventEmergency) {
		t.Fatalf("notices %+v: want root and a channel-wide alert", ns)
	}
	if ns[0].Kind != approvals.NoticeRoot {
		t.Fatalf("the root message must come first (the alert links to it): %+v", ns)
	}
}

func TestEmergencyDecidersIncludeResponders(t *testing.T) {
	cases := []struct {
		name      string
		emergency bool
		approver  string
		want      error
	}{
		{"responder approves emergency", true, "URESP2", nil},
		{"responder group approves emergency", true, "UONCALL", nil},
		{"usual approver approves emergency", true, "UALICE", nil},
		{"requester never approves", true, "UREQ", approvals.ErrSelfApproval},
		{"outsider refused", true, "UERIN", approvals.ErrNotApprover},
		{"responder cannot approve an ordinary request", false, "URESP2", approvals.ErrNotApprover},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, emergencyPolicy(false))
			f.svc = approvals.NewService(approvals.Deps{Store: f.store, Policy: f.svc.Policy(), Dir: groups{"UONCALL": {"SONCALL"}, "UERIN": {"SOTHER"}},
				Starter: f.wakes, Now: f.clock.Now, NewID: func() string { return "R-000001" }})
			r, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: "UREQ", Reason: "leak", Emergency: tc.emergency})
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Approve(ctx, r.ID, tc.approver)
			if !errors.Is(err, tc.want) {
				t.Fatalf("approve by %s: %v, want %v", tc.approver, err, tc.want)
			}
		})
	}
}

func TestBreakGlassOffRequiresApproval(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(false))
	r := f.openEmergency(t, "URESP")
	if r.State != approvals.StatePending || r.BreakGlass || r.Review != nil || f.wakes.count() != 0 {
		t.Fatalf("break-glass off: %+v (wakes %d)", r, f.wakes.count())
	}
}

func TestBreakGlassStartsAtOnceForNamedResponder(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(true))
	// A responder not named for break-glass still needs approval.
	other := f.openEmergency(t, "URESP2")
	if other.State != approvals.StatePending {
		t.Fatalf("unnamed responder: %s", other.State)
	}
	if _, err := f.svc.Cancel(ctx, other.ID, "URESP2"); err != nil {
		t.Fatal(err)
	}
	// Break-glass is for emergencies only.
	plain, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: "URESP", Reason: "routine"})
	if err != nil || plain.State != approvals.StatePending {
		t.Fatalf("ordinary request by a break-glass responder: %+v %v", plain, err)
	}
	if _, err := f.svc.Cancel(ctx, plain.ID, "URESP"); err != nil {
		t.Fatal(err)
	}

	r := f.openEmergency(t, "URESP")
	if r.State != approvals.StateApproved || !r.BreakGlass || r.DecidedBy != "URESP" || r.Review == nil ||
		!r.Review.DueAt.Equal(f.clock.Now().Add(30*time.Minute)) {
		t.Fatalf("break-glass request %+v", r)
	}
	if f.wakes.count() != 1 {
		t.Fatalf("executor woken %d times, want 1", f.wakes.count())
	}
	ns := f.notices(t, r.ID)
	if !hasNotice(ns, approvals.NoticeAlert, approvals.EventEmergency) || !hasNotice(ns, approvals.NoticeReply, approvals.EventBreakGlass) {
		t.Fatalf("notices %+v", ns)
	}
	// Nobody approves a break-glass request afterwards: it is not pending.
	var np *approvals.NotPendingError
	if _, err := f.svc.Approve(ctx, r.ID, "UALICE"); !errors.As(err, &np) {
		t.Fatalf("approve after break-glass: %v", err)
	}
}

func TestReviewRules(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(true))
	r := f.openEmergency(t, "URESP")
	for _, c := range []struct {
		user string
		want error
	}{
		{"URESP", approvals.ErrSelfReview},
		{"UERIN", approvals.ErrNotApprover},
	} {
		if _, err := f.svc.Review(ctx, r.ID, c.user); !errors.Is(err, c.want) {
			t.Fatalf("review by %s: %v, want %v", c.user, err, c.want)
		}
	}
	got, err := f.svc.Review(ctx, r.ID, "URESP2")
	if err != nil || got.Review.By != "URESP2" || !got.Review.At.Equal(f.clock.Now()) {
		t.Fatalf("review: %+v %v", got, err)
	}
	var already *approvals.AlreadyReviewedError
	if _, err := f.svc.Review(ctx, r.ID, "UALICE"); !errors.As(err, &already) || already.By != "URESP2" {
		t.Fatalf("second review: %v", err)
	}
	if left, err := f.store.ListUnreviewed(ctx); err != nil || len(left) != 0 {
		t.Fatalf("unreviewed after review: %v %v", left, err)
	}
}

func TestReviewOfOrdinaryRequestRefused(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(true))
	r := f.open(t, "UREQ")
	if _, err := f.svc.Review(ctx, r.ID, "UALICE"); !errors.Is(err, approvals.ErrNoReview) {
		t.Fatalf("review of an ordinary request: %v", err)
	}
}

func TestOverdueReviewEscalatesUpToMax(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(true))
	r := f.openEmergency(t, "URESP")
	f.notices(t, r.ID) // drain the opening notices
	if n, err := f.svc.EscalateOverdueReviews(ctx); err != nil || n != 0 {
		t.Fatalf("before the deadline: %d %v", n, err)
	}
	for i := 1; i <= 2; i++ {
		f.clock.Advance(30 * time.Minute)
		if n, err := f.svc.EscalateOverdueReviews(ctx); err != nil || n != 1 {
			t.Fatalf("escalation %d: %d %v", i, n, err)
		}
		// Idempotent within one deadline.
		if n, err := f.svc.EscalateOverdueReviews(ctx); err != nil || n != 0 {
			t.Fatalf("repeat of escalation %d: %d %v", i, n, err)
		}
		got, _ := f.svc.Get(ctx, r.ID)
		if got.Review.Escalations != i || !got.Review.DueAt.Equal(f.clock.Now().Add(30*time.Minute)) {
			t.Fatalf("after escalation %d: %+v", i, got.Review)
		}
		if ns := f.notices(t, r.ID); !hasNotice(ns, approvals.NoticeAlert, approvals.EventReviewOverdue) {
			t.Fatalf("escalation %d notices %+v: want a channel-wide alert", i, ns)
		}
	}
	f.clock.Advance(time.Hour)
	if n, err := f.svc.EscalateOverdueReviews(ctx); err != nil || n != 0 {
		t.Fatalf("past MaxEscalations: %d %v", n, err)
	}
	// A late review still counts and ends the escalations.
	if _, err := f.svc.Review(ctx, r.ID, "UALICE"); err != nil {
		t.Fatal(err)
	}
}

func finishRequest(t *testing.T, f *fixture, id string, to approvals.State) {
	t.Helper()
	if _, err := f.svc.Approve(ctx, id, "UALICE"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.MarkRunning(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Finish(ctx, id, to, "done"); err != nil {
		t.Fatal(err)
	}
}

func TestEmergencyFinishEndsWithTimeline(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(false))
	r := f.openEmergency(t, "UREQ")
	finishRequest(t, f, r.ID, approvals.StateSucceeded)
	ns := f.notices(t, r.ID)
	if !hasNotice(ns, approvals.NoticeReply, approvals.EventTimeline) || ns[len(ns)-1].Event != approvals.EventTimeline {
		t.Fatalf("notices %+v: want the timeline last", ns)
	}
	plain := f.open(t, "UREQ")
	finishRequest(t, f, plain.ID, approvals.StateSucceeded)
	if hasNotice(f.notices(t, plain.ID), approvals.NoticeReply, approvals.EventTimeline) {
		t.Fatal("an ordinary request got an incident timeline")
	}
}

func TestRollbackRequests(t *testing.T) {
	f := newFixture(t)
	orig := f.open(t, "UREQ")
	if _, err := f.svc.Open(ctx, approvals.OpenInput{RollbackOf: orig.ID, Requester: "UREQ"}); err == nil {
		t.Fatal("rollback of a pending request accepted")
	} else if se := (*approvals.StillOpenError)(nil); !errors.As(err, &se) || se.State != approvals.StatePending {
		t.Fatalf("rollback of a pending request: %v", err)
	}
	if _, err := f.svc.Open(ctx, approvals.OpenInput{RollbackOf: "R-NOPE00", Requester: "UREQ"}); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("rollback of an unknown request: %v", err)
	}
	finishRequest(t, f, orig.ID, approvals.StateSucceeded)

	// Target and env come from the original, whatever the caller sent.
	rb, err := f.svc.Open(ctx, approvals.OpenInput{RollbackOf: orig.ID, Target: "stripe", Env: "staging", Requester: "UREQ", Reason: "breaks mobile"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Target != "openai" || rb.Env != "prod" || rb.RollbackOf != orig.ID || rb.State != approvals.StatePending ||
		rb.Events[0].Action != approvals.EventRollbackOpened {
		t.Fatalf("rollback request %+v", rb)
	}
	// It needs approval like any other, and holds the target's slot.
	if _, err := f.svc.Approve(ctx, rb.ID, "UREQ"); !errors.Is(err, approvals.ErrSelfApproval) {
		t.Fatalf("self-approval of a rollback: %v", err)
	}
	var active *approvals.ActiveExistsError
	if _, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: "UX"}); !errors.As(err, &active) {
		t.Fatalf("rotation while a rollback is open: %v", err)
	}
	finishRequest(t, f, rb.ID, approvals.StateSucceeded)
	if _, err := f.svc.Open(ctx, approvals.OpenInput{RollbackOf: rb.ID, Requester: "UREQ"}); !errors.Is(err, approvals.ErrRollbackOfRollback) {
		t.Fatalf("rollback of a rollback: %v", err)
	}
}

func TestMayManage(t *testing.T) {
	f := newFixtureWith(t, emergencyPolicy(false))
	r := f.open(t, "UREQ")
	for _, c := range []struct {
		user string
		want error
	}{
		{"UREQ", nil},
		{"UBOB", nil},
		{"UDAVE", nil}, // via group SPLATFORM
		{"UERIN", approvals.ErrNotParticipant},
		{"URESP", approvals.ErrNotParticipant}, // responders only for emergencies
	} {
		if err := f.svc.MayManage(ctx, r.ID, c.user); !errors.Is(err, c.want) {
			t.Fatalf("MayManage(%s) = %v, want %v", c.user, err, c.want)
		}
	}
}

func TestRollbackOnlyOfTheLatestRotation(t *testing.T) {
	f := newFixture(t)
	first := f.open(t, "UREQ")
	finishRequest(t, f, first.ID, approvals.StateSucceeded)
	second := f.open(t, "UREQ")
	finishRequest(t, f, second.ID, approvals.StateSucceeded)
	// A request that never ran (denied) does not supersede anything.
	denied := f.open(t, "UREQ")
	if _, err := f.svc.Deny(ctx, denied.ID, "UALICE", "not now"); err != nil {
		t.Fatal(err)
	}
	var later *approvals.SupersededError
	if _, err := f.svc.Open(ctx, approvals.OpenInput{RollbackOf: first.ID, Requester: "UREQ"}); !errors.As(err, &later) || later.Latest != second.ID {
		t.Fatalf("rollback of a superseded rotation: %v", err)
	}
	if _, err := f.svc.Open(ctx, approvals.OpenInput{RollbackOf: second.ID, Requester: "UREQ"}); err != nil {
		t.Fatalf("rollback of the latest rotation: %v", err)
	}
}
