package approvals_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type wakes struct {
	mu  sync.Mutex
	ids []string
}

func (w *wakes) Wake(id string) { w.mu.Lock(); w.ids = append(w.ids, id); w.mu.Unlock() }
func (w *wakes) count() int     { w.mu.Lock(); defer w.mu.Unlock(); return len(w.ids) }

// groups is a Directory with fixed memberships.
type groups map[string][]string

func (g groups) GroupsOf(_ context.Context, user string) ([]string, error) { return g[user], nil }

type fixture struct {
	svc   *approvals.Service
	store *boltstore.Store
	clock *clock
	wakes *wakes
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith builds the fixture after edit changed the policy (nil: as is).
func newFixtureWith(t *testing.T, edit func(*approvals.Policy)) *fixture {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "rotary.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	c := &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	w := &wakes{}
	var n atomic.Int64
	policy := approvals.Policy{TTL: time.Hour, DefaultEnv: "prod", Targets: map[string]approvals.Target{
		"openai": {Name: "openai", Kind: "apikey", Approvers: map[string]approvals.Approvers{
			"prod":    {Users: []string{"UALICE", "UBOB"}, Groups: []string{"SPLATFORM"}},
			"staging": {Users: []string{"UCAROL"}},
		}},
		"stripe": {Name: "stripe", Kind: "apikey", Approvers: map[string]approvals.Approvers{"prod": {Users: []string{"UALICE"}}}},
	}}
	if edit != nil {
		edit(&policy)
	}
	svc := approvals.NewService(approvals.Deps{
		Store:   store,
		Policy:  policy,
		Dir:     groups{"UDAVE": {"SPLATFORM"}, "UERIN": {"SOTHER"}},
		Starter: w,
		Now:     c.Now,
		NewID:   func() string { return fmt.Sprintf("R-%06d", n.Add(1)) },
	})
	return &fixture{svc: svc, store: store, clock: c, wakes: w}
}

var ctx = context.Background()

func (f *fixture) open(t *testing.T, requester string) *approvals.Request {
	t.Helper()
	r, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: requester, Reason: "quarterly"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOpenValidatesTargetEnvAndOneActive(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Open(ctx, approvals.OpenInput{Target: "nope", Requester: "U1"}); !errors.Is(err, approvals.ErrUnknownTarget) {
		t.Fatalf("unknown target: %v", err)
	}
	if _, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Env: "qa", Requester: "U1"}); !errors.Is(err, approvals.ErrUnknownEnv) {
		t.Fatalf("unknown env: %v", err)
	}
	r := f.open(t, "UREQ")
	if r.Env != "prod" || r.State != approvals.StatePending || !r.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("bad new request %+v", r)
	}
	_, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Requester: "UOTHER"})
	var active *approvals.ActiveExistsError
	if !errors.As(err, &active) || active.ID != r.ID {
		t.Fatalf("second open request for openai/prod: %v", err)
	}
	// Another environment is another slot.
	if _, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Env: "staging", Requester: "UOTHER"}); err != nil {
		t.Fatal(err)
	}
}

func TestApprovePolicy(t *testing.T) {
	cases := []struct {
		name     string
		approver string
		want     error
	}{
		{"requester cannot approve", "UREQ", approvals.ErrSelfApproval},
		{"outsider cannot approve", "UMALLORY", approvals.ErrNotApprover},
		{"member of another group cannot approve", "UERIN", approvals.ErrNotApprover},
		{"listed user approves", "UBOB", nil},
		{"group member approves", "UDAVE", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.open(t, "UREQ")
			got, err := f.svc.Approve(ctx, r.ID, tc.approver)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			stored, _ := f.svc.Get(ctx, r.ID)
			if tc.want != nil {
				if stored.State != approvals.StatePending || f.wakes.count() != 0 {
					t.Fatalf("refused approval changed state to %s or woke the executor", stored.State)
				}
				return
			}
			if got.State != approvals.StateApproved || got.DecidedBy != tc.approver || f.wakes.count() != 1 {
				t.Fatalf("approval not recorded: %+v wakes=%d", got, f.wakes.count())
			}
		})
	}
}

// An approver listed for prod is not an approver for staging.
func TestApproversArePerEnvironment(t *testing.T) {
	f := newFixture(t)
	r, err := f.svc.Open(ctx, approvals.OpenInput{Target: "openai", Env: "staging", Requester: "UREQ"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, r.ID, "UBOB"); !errors.Is(err, approvals.ErrNotApprover) {
		t.Fatalf("prod approver approved staging: %v", err)
	}
	if _, err := f.svc.Approve(ctx, r.ID, "UCAROL"); err != nil {
		t.Fatal(err)
	}
}

func TestDenyCancelAndDecisionsAfterTheFact(t *testing.T) {
	f := newFixture(t)
	r := f.open(t, "UREQ")
	if _, err := f.svc.Deny(ctx, r.ID, "UBOB", ""); !errors.Is(err, approvals.ErrReasonRequired) {
		t.Fatalf("deny without reason: %v", err)
	}
	if _, err := f.svc.Deny(ctx, r.ID, "UMALLORY", "no"); !errors.Is(err, approvals.ErrNotApprover) {
		t.Fatalf("outsider denied: %v", err)
	}
	if _, err := f.svc.Cancel(ctx, r.ID, "UBOB"); !errors.Is(err, approvals.ErrNotRequester) {
		t.Fatalf("non-requester cancelled: %v", err)
	}
	d, err := f.svc.Deny(ctx, r.ID, "UBOB", "not during the launch")
	if err != nil || d.State != approvals.StateDenied || d.DenyReason != "not during the launch" {
		t.Fatalf("deny: %+v %v", d, err)
	}
	var np *approvals.NotPendingError
	if _, err := f.svc.Approve(ctx, r.ID, "UALICE"); !errors.As(err, &np) || np.State != approvals.StateDenied || np.By != "UBOB" {
		t.Fatalf("approve after deny: %v", err)
	}
	// The slot is free again once the request is decided.
	r2 := f.open(t, "UREQ")
	c, err := f.svc.Cancel(ctx, r2.ID, "UREQ")
	if err != nil || c.State != approvals.StateCancelled {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if _, err := f.svc.Get(ctx, "R-NOPE"); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	r := f.open(t, "UREQ")
	f.clock.Advance(59 * time.Minute)
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 0 {
		t.Fatalf("expired early: %d %v", n, err)
	}
	f.clock.Advance(time.Minute)
	// A click that arrives after the TTL but before the sweep is refused, and expires the request.
	var np *approvals.NotPendingError
	if _, err := f.svc.Approve(ctx, r.ID, "UBOB"); !errors.As(err, &np) || np.State != approvals.StateExpired {
		t.Fatalf("approve after TTL: %v", err)
	}
	if n, _ := f.svc.ExpireDue(ctx); n != 0 {
		t.Fatal("expired twice")
	}
	r2, _ := f.svc.Open(ctx, approvals.OpenInput{Target: "stripe", Requester: "UREQ"})
	f.clock.Advance(2 * time.Hour)
	if n, err := f.svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	got, _ := f.svc.Get(ctx, r2.ID)
	if got.State != approvals.StateExpired || f.wakes.count() != 0 {
		t.Fatalf("state %s", got.State)
	}
}

// TestConcurrentApprovalsExecuteOnce fires many approvals, denials and
// cancels at one request at once: exactly one decision wins.
func TestConcurrentApprovalsExecuteOnce(t *testing.T) {
	f := newFixture(t)
	r := f.open(t, "UREQ")
	var wg sync.WaitGroup
	var approved atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			var err error
			switch i % 4 {
			case 0, 1:
				_, err = f.svc.Approve(ctx, r.ID, []string{"UBOB", "UALICE"}[i%2])
				if err == nil {
					approved.Add(1)
				}
			case 2:
				_, err = f.svc.Approve(ctx, r.ID, "UREQ")
			case 3:
				_, err = f.svc.Deny(ctx, r.ID, "UDAVE", "race")
			}
			_ = err
		})
	}
	wg.Wait()
	got, _ := f.svc.Get(ctx, r.ID)
	decisions := 0
	for _, e := range got.Events {
		if e.Action == string(approvals.StateApproved) || e.Action == string(approvals.StateDenied) {
			decisions++
		}
	}
	if decisions != 1 || int(approved.Load()) != f.wakes.count() || f.wakes.count() > 1 {
		t.Fatalf("decisions=%d approvals=%d wakes=%d state=%s", decisions, approved.Load(), f.wakes.count(), got.State)
	}
}

func TestRunningLifecycle(t *testing.T) {
	f := newFixture(t)
	r := f.open(t, "UREQ")
	if _, _, err := f.svc.MarkRunning(ctx, r.ID); err == nil {
		t.Fatal("a pending request started running")
	}
	if _, err := f.svc.Approve(ctx, r.ID, "UBOB"); err != nil {
		t.Fatal(err)
	}
	_, started, err := f.svc.MarkRunning(ctx, r.ID)
	if err != nil || !started {
		t.Fatalf("start: %v %v", started, err)
	}
	if _, again, err := f.svc.MarkRunning(ctx, r.ID); err != nil || again {
		t.Fatalf("a resume must not count as a start: %v %v", again, err)
	}
	if _, err := f.svc.Finish(ctx, r.ID, approvals.StatePending, ""); err == nil {
		t.Fatal("finished into pending")
	}
	done, err := f.svc.Finish(ctx, r.ID, approvals.StateSucceeded, "6 steps")
	if err != nil || done.State != approvals.StateSucceeded || done.FinishedAt.IsZero() {
		t.Fatalf("finish: %+v %v", done, err)
	}
	if _, err := f.svc.Finish(ctx, r.ID, approvals.StateFailed, ""); err == nil {
		t.Fatal("finished twice")
	}
}

func TestTransitionTable(t *testing.T) {
	for _, from := range approvals.AllStates {
		for _, to := range approvals.AllStates {
			want := false
			switch from {
			case approvals.StatePending:
				want = to == approvals.StateApproved || to == approvals.StateDenied || to == approvals.StateCancelled || to == approvals.StateExpired
			case approvals.StateApproved:
				want = to == approvals.StateRunning
			case approvals.StateRunning:
				want = to == approvals.StateSucceeded || to == approvals.StateFailed || to == approvals.StateRolledBack
			}
			if got := from.CanTransition(to); got != want {
				t.Errorf("%s → %s: %v, want %v", from, to, got, want)
			}
		}
		if from.Terminal() == from.Open() {
			t.Errorf("%s must be exactly one of open/terminal", from)
		}
	}
	if approvals.State("bogus").Valid() {
		t.Error("unknown state valid")
	}
}
