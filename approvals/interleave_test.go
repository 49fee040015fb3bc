package approvals_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
)

// The two-person rule under concurrency: thousands of requests, each hit at
// once from several goroutines by a random mix of approvals (by approvers,
// a group member, the requester, an outsider), duplicate deliveries of the
// same click, denials, cancels and the expiry sweep, while two executor
// loops (the wake-up one and the rescan one) race to claim approved
// requests. Real service, real bbolt store.
const (
	interleaveSeed = 0x5EED_2B0B
	// interleavings is the number of requests (each one interleaving).
	interleavings = 10_240
	// interleaveSlots requests run at once, one per target.
	interleaveSlots = 64
	// interleaveWait bounds the wait for the executor loops to drain a
	// round; it is never slept, only waited on.
	interleaveWait = 30 * time.Second
	// expireOneIn: one round in this many has the TTL pass mid-round.
	expireOneIn = 5
)

// Actors of the interleavings. ilApproverA/B are named approvers, ilGroupie
// approves through the user group, ilOutsider is nobody.
const (
	ilRequester = "UREQ"
	ilApproverA = "UAPPA"
	ilApproverB = "UAPPB"
	ilGroupie   = "UGROUPIE"
	ilOutsider  = "UOUT"
	ilGroup     = "SAPPROVERS"
)

// ilAuthorized are the users allowed to approve any interleave target.
var ilAuthorized = []string{ilApproverA, ilApproverB, ilGroupie}

// ilClock is a clock the expiry action moves forward.
type ilClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ilClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *ilClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type ilDirectory struct{}

func (ilDirectory) GroupsOf(_ context.Context, user string) ([]string, error) {
	if user == ilGroupie {
		return []string{ilGroup}, nil
	}
	return nil, nil
}

// ilExecutor plays the executor's claim: it takes approved requests from
// wake-ups and from rescans, claims each with MarkRunning, and records
// every claim that started a run (an execution).
type ilExecutor struct {
	t     *testing.T
	svc   *approvals.Service
	wakes chan string

	mu         sync.Mutex
	executions map[string]int
	// unauthorized lists executions whose approver was not a distinct,
	// authorized person.
	unauthorized []string
	pending      sync.WaitGroup
}

func (e *ilExecutor) Wake(id string) {
	e.pending.Add(1)
	e.wakes <- id
}

// claim is the executor's start: MarkRunning is the one transactional
// claim; a true "started" is an execution, which then finishes.
func (e *ilExecutor) claim(ctx context.Context, id string) {
	r, started, err := e.svc.MarkRunning(ctx, id)
	if err != nil {
		var te *approvals.TransitionError
		if errors.As(err, &te) {
			return // not approved (any more): nothing to run
		}
		e.t.Errorf("claim %s: %v", id, err)
		return
	}
	if !started {
		return
	}
	e.mu.Lock()
	e.executions[id]++
	if r.DecidedBy == r.Requester || !slices.Contains(ilAuthorized, r.DecidedBy) {
		e.unauthorized = append(e.unauthorized, fmt.Sprintf("%s approved by %q, requested by %q", id, r.DecidedBy, r.Requester))
	}
	e.mu.Unlock()
	if _, err := e.svc.Finish(ctx, id, approvals.StateSucceeded, "done"); err != nil {
		e.t.Errorf("finish %s: %v", id, err)
	}
}

// loops runs the wake-up loop and a rescan loop until ctx ends.
func (e *ilExecutor) loops(ctx context.Context, rescan <-chan struct{}, rescanned chan<- struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-e.wakes:
				e.claim(ctx, id)
				e.pending.Done()
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-rescan:
			}
			open, err := e.svc.ListOpen(ctx)
			if err != nil {
				e.t.Errorf("rescan: %v", err)
			}
			for _, r := range open {
				if r.State == approvals.StateApproved {
					e.claim(ctx, r.ID)
				}
			}
			rescanned <- struct{}{}
		}
	})
	return &wg
}

// ilAction is one thing done to a request; it returns whether it decided it.
type ilAction struct {
	name string
	do   func(ctx context.Context, svc *approvals.Service, id string) error
}

func TestTwoPersonRuleUnderRandomInterleavings(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "rotary.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	clk := &ilClock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	policy := approvals.Policy{TTL: time.Hour, DefaultEnv: "prod", Targets: map[string]approvals.Target{}}
	for i := range interleaveSlots {
		name := fmt.Sprintf("t%02d", i)
		policy.Targets[name] = approvals.Target{Name: name, Kind: "apikey", Approvers: map[string]approvals.Approvers{
			"prod": {Users: []string{ilApproverA, ilApproverB}, Groups: []string{ilGroup}},
		}}
	}
	ex := &ilExecutor{t: t, wakes: make(chan string, 4*interleaveSlots), executions: map[string]int{}}
	var ids atomic.Int64
	svc := approvals.NewService(approvals.Deps{
		Store: store, Policy: policy, Dir: ilDirectory{}, Starter: ex, Now: clk.Now,
		NewID: func() string { return fmt.Sprintf("R-%06d", ids.Add(1)) },
	})
	ex.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rescan, rescanned := make(chan struct{}), make(chan struct{})
	loops := ex.loops(ctx, rescan, rescanned)
	defer loops.Wait()
	defer cancel()

	rng := rand.New(rand.NewPCG(interleaveSeed, interleaveSeed>>1))
	users := []string{ilRequester, ilApproverA, ilApproverB, ilGroupie, ilOutsider}
	pick := func() string { return users[rng.IntN(len(users))] }
	actions := func(requester string) []ilAction {
		var out []ilAction
		for range 1 + rng.IntN(3) {
			switch k := rng.IntN(6); k {
			case 0, 1: // an approval by anyone, the requester included (self-approval)
				u := pick()
				out = append(out, ilAction{"approve by " + u, func(ctx context.Context, s *approvals.Service, id string) error {
					_, err := s.Approve(ctx, id, u)
					return err
				}})
			case 2: // duplicate delivery: the same click twice
				u := ilAuthorized[rng.IntN(len(ilAuthorized))]
				a := ilAction{"approve (delivered twice) by " + u, func(ctx context.Context, s *approvals.Service, id string) error {
					_, err := s.Approve(ctx, id, u)
					return err
				}}
				out = append(out, a, a)
			case 3: // explicit self-approval
				out = append(out, ilAction{"self-approval", func(ctx context.Context, s *approvals.Service, id string) error {
					_, err := s.Approve(ctx, id, requester)
					return err
				}})
			case 4:
				u := pick()
				out = append(out, ilAction{"deny by " + u, func(ctx context.Context, s *approvals.Service, id string) error {
					_, err := s.Deny(ctx, id, u, "not now")
					return err
				}})
			case 5:
				u := []string{requester, pick()}[rng.IntN(2)]
				out = append(out, ilAction{"cancel by " + u, func(ctx context.Context, s *approvals.Service, id string) error {
					_, err := s.Cancel(ctx, id, u)
					return err
				}})
			}
		}
		return out
	}

	type record struct {
		id        string
		requester string
		actions   []string
		// decided counts decision calls that succeeded.
		decided atomic.Int64
	}
	var all []*record
	for round := 0; round*interleaveSlots < interleavings; round++ {
		type job struct {
			rec *record
			act ilAction
		}
		var jobs []job
		expire := false
		for slot := range interleaveSlots {
			requester := []string{ilRequester, ilApproverA}[rng.IntN(2)] // approvers request too
			r, err := svc.Open(ctx, approvals.OpenInput{Target: fmt.Sprintf("t%02d", slot), Requester: requester, Reason: "interleave"})
			if err != nil {
				t.Fatalf("round %d: open: %v", round, err)
			}
			rec := &record{id: r.ID, requester: requester}
			all = append(all, rec)
			for _, a := range actions(requester) {
				rec.actions = append(rec.actions, a.name)
				jobs = append(jobs, job{rec, a})
			}
		}
		// The clock is shared, so expiry is per round: in one round of
		// expireOneIn, the TTL passes while the round's decisions are in flight.
		if rng.IntN(expireOneIn) == 0 {
			expire = true
			for _, rec := range all[len(all)-interleaveSlots:] {
				rec.actions = append(rec.actions, "expiry sweep")
			}
		}
		rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Go(func() {
				<-start
				if err := j.act.do(ctx, svc, j.rec.id); err == nil {
					j.rec.decided.Add(1)
				}
			})
		}
		if expire {
			// The TTL passes while the decisions are in flight; the sweep races them.
			wg.Go(func() {
				<-start
				clk.Advance(time.Hour)
				if _, err := svc.ExpireDue(ctx); err != nil {
					t.Errorf("round %d: sweep: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		// A round leaves nothing open: whatever no action decided expires,
		// and the executor loops drain (one rescan after the wake-ups).
		clk.Advance(time.Hour + time.Second)
		if _, err := svc.ExpireDue(ctx); err != nil {
			t.Fatalf("round %d: final sweep: %v", round, err)
		}
		drained := make(chan struct{})
		go func() { ex.pending.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(interleaveWait):
			t.Fatalf("round %d: the executor loops did not drain in %s", round, interleaveWait)
		}
		rescan <- struct{}{}
		<-rescanned
	}

	// Stop the executor loops before reading what they recorded.
	cancel()
	loops.Wait()
	if len(all) < interleavings {
		t.Fatalf("only %d interleavings ran", len(all))
	}
	terminalEvents := map[string]bool{}
	for _, s := range approvals.AllStates {
		terminalEvents[string(s)] = s.Terminal()
	}
	counts := map[approvals.State]int{}
	for _, rec := range all {
		r, err := svc.Get(context.Background(), rec.id)
		if err != nil {
			t.Fatal(err)
		}
		counts[r.State]++
		where := fmt.Sprintf("%s (requester %s; %v)", rec.id, rec.requester, rec.actions)
		if !r.State.Terminal() {
			t.Errorf("%s ended %s, not in a terminal state", where, r.State)
		}
		terminal, decisions := 0, 0
		for _, e := range r.Events {
			if terminalEvents[e.Action] {
				terminal++
			}
			switch approvals.State(e.Action) {
			case approvals.StateApproved, approvals.StateDenied, approvals.StateCancelled, approvals.StateExpired:
				decisions++
			}
		}
		if terminal != 1 || decisions != 1 {
			t.Errorf("%s has %d terminal and %d decision events: %+v", where, terminal, decisions, r.Events)
		}
		if rec.decided.Load() > 1 {
			t.Errorf("%s: %d decision calls succeeded; exactly one may", where, rec.decided.Load())
		}
		runs := ex.executions[rec.id]
		switch {
		case runs > 1:
			t.Errorf("%s executed %d times", where, runs)
		case r.State == approvals.StateSucceeded && runs != 1:
			t.Errorf("%s succeeded without an execution", where)
		case r.State != approvals.StateSucceeded && runs != 0:
			t.Errorf("%s ended %s but was executed", where, r.State)
		}
	}
	for _, u := range ex.unauthorized {
		t.Errorf("executed without a distinct authorized approver: %s", u)
	}
	// The mix must actually reach every outcome, or the test proves little.
	for _, s := range []approvals.State{approvals.StateSucceeded, approvals.StateDenied, approvals.StateCancelled, approvals.StateExpired} {
		if counts[s] < interleavings/50 {
			t.Errorf("only %d requests ended %s: the random mix does not exercise it", counts[s], s)
		}
	}
	t.Logf("%d interleavings: %v", len(all), counts)
}
