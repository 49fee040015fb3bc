package boltstore

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
)

// TestIndexAcrossEveryTransition walks every path through the state table and
// checks, after each Put, the stored record, the slot index and the open set.
func TestIndexAcrossEveryTransition(t *testing.T) {
	paths := [][]approvals.State{
		{approvals.StatePending, approvals.StateApproved, approvals.StateRunning, approvals.StateSucceeded},
		{approvals.StatePending, approvals.StateApproved, approvals.StateRunning, approvals.StateFailed},
		{approvals.StatePending, approvals.StateApproved, approvals.StateRunning, approvals.StateRolledBack},
		{approvals.StatePending, approvals.StateDenied},
		{approvals.StatePending, approvals.StateCancelled},
		{approvals.StatePending, approvals.StateExpired},
	}
	for _, path := range paths {
		name := string(path[len(path)-1])
		t.Run(name, func(t *testing.T) {
			s := openTemp(t)
			r := newReq("r1", "db-password", "prod", path[0], t0())
			for i, state := range path {
				if i > 0 && !path[i-1].CanTransition(state) {
					t.Fatalf("test path is illegal: %s → %s", path[i-1], state)
				}
				r.State = state
				r.Events = append(r.Events, approvals.Event{At: t0().Add(time.Duration(i) * time.Minute), Action: string(state)})
				put(t, s, r)

				got, err := get(t, s, "r1")
				if err != nil {
					t.Fatalf("%s: Get: %v", state, err)
				}
				if !reflect.DeepEqual(got, r) {
					t.Fatalf("%s: stored request differs:\n got %+v\nwant %+v", state, got, r)
				}
				wantActive, wantOpen := "", []string{}
				if state.Open() {
					wantActive, wantOpen = "r1", []string{"r1"}
				}
				if a := activeFor(t, s, "db-password", "prod"); a != wantActive {
					t.Errorf("%s: ActiveFor = %q, want %q", state, a, wantActive)
				}
				if ids := openIDs(t, s); !slices.Equal(ids, wantOpen) {
					t.Errorf("%s: ListOpen = %v, want %v", state, ids, wantOpen)
				}
				st, err := s.Stats(context.Background())
				if err != nil {
					t.Fatalf("Stats: %v", err)
				}
				for _, k := range []approvals.State{approvals.StatePending, approvals.StateApproved, approvals.StateRunning} {
					want := 0
					if k == state {
						want = 1
					}
					if n, ok := st.Open[k]; !ok || n != want {
						t.Errorf("%s: Stats.Open[%s] = %d (present %v), want %d", state, k, n, ok, want)
					}
				}
			}
			// The slot is free again: a new request for the same target may open.
			put(t, s, newReq("r2", "db-password", "prod", approvals.StatePending, t0().Add(time.Hour)))
			if a := activeFor(t, s, "db-password", "prod"); a != "r2" {
				t.Errorf("after terminal state, ActiveFor = %q, want r2", a)
			}
		})
	}
}

func TestGetMissingIsNotFound(t *testing.T) {
	s := openTemp(t)
	_, err := get(t, s, "nope")
	if !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

// TestOneActiveDefence: Put itself refuses a second open request for a held
// slot, even when the caller skipped ActiveFor.
func TestOneActiveDefence(t *testing.T) {
	s := openTemp(t)
	put(t, s, newReq("a", "api", "prod", approvals.StateApproved, t0()))

	err := s.Update(context.Background(), func(tx approvals.Tx) error {
		return tx.Put(newReq("b", "api", "prod", approvals.StatePending, t0()))
	})
	var ae *approvals.ActiveExistsError
	if !errors.As(err, &ae) {
		t.Fatalf("second open Put = %v, want ActiveExistsError", err)
	}
	if ae.ID != "a" || ae.State != approvals.StateApproved || ae.Target != "api" || ae.Env != "prod" {
		t.Errorf("ActiveExistsError = %+v, want holder a (approved) for api/prod", ae)
	}
	if _, err := get(t, s, "b"); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("refused request was stored: %v", err)
	}
	// Same target in another env, and a terminal request for the held slot, are fine.
	put(t, s,
		newReq("c", "api", "staging", approvals.StatePending, t0()),
		newReq("d", "api", "prod", approvals.StateDenied, t0()),
	)
	// Re-putting the holder in another open state keeps its slot.
	put(t, s, newReq("a", "api", "prod", approvals.StateRunning, t0()))
	if a := activeFor(t, s, "api", "prod"); a != "a" {
		t.Errorf("ActiveFor(api/prod) = %q, want a", a)
	}
	if ids := openIDs(t, s); !slices.Equal(ids, []string{"a", "c"}) {
		t.Errorf("ListOpen = %v, want [a c]", ids)
	}
}

// TestPutAfterGetStillRefusesAMovedSlot: Put's target/env check uses what
// Get decoded in the same transaction; changing them on the returned copy
// is refused as it is without a Get.
func TestPutAfterGetStillRefusesAMovedSlot(t *testing.T) {
	for name, move := range map[string]func(r *approvals.Request){
		"target": func(r *approvals.Request) { r.Target = "other" },
		"env":    func(r *approvals.Request) { r.Env = "staging" },
	} {
		t.Run(name, func(t *testing.T) {
			s := openTemp(t)
			put(t, s, newReq("held", "api", "prod", approvals.StatePending, t0()))
			err := s.Update(context.Background(), func(tx approvals.Tx) error {
				r, err := tx.Get("held")
				if err != nil {
					return err
				}
				move(r)
				return tx.Put(r)
			})
			if err == nil || !strings.Contains(err.Error(), "cannot change") {
				t.Fatalf("Update = %v, want the move refused", err)
			}
			if a := activeFor(t, s, "api", "prod"); a != "held" {
				t.Errorf("ActiveFor = %q, want held", a)
			}
		})
	}
}

// TestRefusedPutWritesNothing: every refused Put leaves the store as it was,
// even if the caller ignores the error and commits.
func TestRefusedPutWritesNothing(t *testing.T) {
	mod := func(f func(r *approvals.Request)) *approvals.Request {
		r := newReq("x", "api", "prod", approvals.StatePending, t0())
		f(r)
		return r
	}
	tests := []struct {
		name string
		r    *approvals.Request
		want string
	}{
		{"nil", nil, "nil request"},
		{"unknown state", mod(func(r *approvals.Request) { r.State = "paused" }), "unknown state"},
		{"empty state", mod(func(r *approvals.Request) { r.State = "" }), "unknown state"},
		{"no id", mod(func(r *approvals.Request) { r.ID = "" }), "no ID"},
		{"long id", mod(func(r *approvals.Request) { r.ID = strings.Repeat("i", maxKeyLen+1) }), "limit"},
		{"no target", mod(func(r *approvals.Request) { r.Target = "" }), "no target"},
		{"no env", mod(func(r *approvals.Request) { r.Env = "" }), "no target or env"},
		{"nul in target", mod(func(r *approvals.Request) { r.Target = "a\x00b" }), "NUL"},
		{"nul in env", mod(func(r *approvals.Request) { r.Env = "p\x00" }), "NUL"},
		{"target changes", mod(func(r *approvals.Request) { r.ID = "held"; r.Target = "other" }), "cannot change"},
		{"env changes", mod(func(r *approvals.Request) { r.ID = "held"; r.Env = "staging" }), "cannot change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			put(t, s, newReq("held", "api", "prod", approvals.StatePending, t0()))
			var putErr error
			err := s.Update(context.Background(), func(tx approvals.Tx) error {
				putErr = tx.Put(tt.r)
				return nil // ignore it on purpose: the Put must not have written anything
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if putErr == nil || !strings.Contains(putErr.Error(), tt.want) {
				t.Fatalf("Put error = %v, want it to mention %q", putErr, tt.want)
			}
			if ids := openIDs(t, s); !slices.Equal(ids, []string{"held"}) {
				t.Errorf("ListOpen = %v, want [held]", ids)
			}
			if a := activeFor(t, s, "api", "prod"); a != "held" {
				t.Errorf("ActiveFor = %q, want held", a)
			}
			held, err := get(t, s, "held")
			if err != nil || held.Target != "api" || held.Env != "prod" {
				t.Errorf("held request changed: %+v, %v", held, err)
			}
			var n int
			if err := s.ListRequests(context.Background(), func(*approvals.Request) bool { n++; return true }); err != nil || n != 1 {
				t.Errorf("ListRequests saw %d requests (%v), want 1", n, err)
			}
		})
	}
}

func TestListOpenOldestFirst(t *testing.T) {
	s := openTemp(t)
	put(t, s,
		newReq("a", "t1", "prod", approvals.StatePending, t0().Add(3*time.Minute)),
		newReq("b", "t2", "prod", approvals.StateRunning, t0().Add(1*time.Minute)),
		newReq("c", "t3", "prod", approvals.StateApproved, t0().Add(2*time.Minute)),
		newReq("d", "t4", "prod", approvals.StatePending, t0().Add(1*time.Minute)),
		newReq("e", "t5", "prod", approvals.StateSucceeded, t0()),
	)
	if ids := openIDs(t, s); !slices.Equal(ids, []string{"b", "d", "c", "a"}) {
		t.Errorf("ListOpen = %v, want [b d c a] (by CreatedAt, then ID)", ids)
	}
}

func TestListRequestsAndStats(t *testing.T) {
	s := openTemp(t)
	put(t, s,
		newReq("c", "t1", "prod", approvals.StatePending, t0()),
		newReq("a", "t2", "prod", approvals.StateRunning, t0()),
		newReq("b", "t3", "prod", approvals.StateFailed, t0()),
		newReq("d", "t4", "prod", approvals.StatePending, t0()),
	)
	var all []string
	if err := s.ListRequests(context.Background(), func(r *approvals.Request) bool {
		all = append(all, r.ID)
		return true
	}); err != nil {
		t.Fatalf("ListRequests: %v", err)
	}
	if !slices.Equal(all, []string{"a", "b", "c", "d"}) {
		t.Errorf("ListRequests = %v, want [a b c d]", all)
	}
	var first []string
	if err := s.ListRequests(context.Background(), func(r *approvals.Request) bool {
		first = append(first, r.ID)
		return len(first) < 2
	}); err != nil {
		t.Fatalf("ListRequests: %v", err)
	}
	if !slices.Equal(first, []string{"a", "b"}) {
		t.Errorf("ListRequests with early stop = %v, want [a b]", first)
	}

	notify(t, s, approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "c"})
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := Stats{
		Open:        map[approvals.State]int{approvals.StatePending: 2, approvals.StateApproved: 0, approvals.StateRunning: 1},
		OutboxDepth: 1,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func TestUpdateRollsBackOnError(t *testing.T) {
	s := openTemp(t)
	boom := errors.New("policy says no")
	err := s.Update(context.Background(), func(tx approvals.Tx) error {
		if err := tx.Put(newReq("r1", "api", "prod", approvals.StatePending, t0())); err != nil {
			return err
		}
		if err := tx.Notify(approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update = %v, want the callback's error unchanged", err)
	}
	if _, err := get(t, s, "r1"); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("request survived rollback: %v", err)
	}
	if a := activeFor(t, s, "api", "prod"); a != "" {
		t.Errorf("slot survived rollback: %q", a)
	}
	if ids := openIDs(t, s); len(ids) != 0 {
		t.Errorf("open set survived rollback: %v", ids)
	}
	if n := depth(t, s); n != 0 {
		t.Errorf("outbox depth after rollback = %d, want 0", n)
	}
	if signalled(s) {
		t.Error("rolled-back transaction signalled the outbox")
	}
}

func TestUpdatePanicRollsBack(t *testing.T) {
	s := openTemp(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic did not propagate")
			}
		}()
		_ = s.Update(context.Background(), func(tx approvals.Tx) error {
			if err := tx.Put(newReq("r1", "api", "prod", approvals.StatePending, t0())); err != nil {
				return err
			}
			panic("callback bug")
		})
	}()
	if _, err := get(t, s, "r1"); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("request survived a panicking transaction: %v", err)
	}
	// The store is still usable: bbolt released its writer lock.
	put(t, s, newReq("r2", "api", "prod", approvals.StatePending, t0()))
}

func TestSignalAfterCommitOnlyWithNotices(t *testing.T) {
	s := openTemp(t)
	put(t, s, newReq("r1", "api", "prod", approvals.StatePending, t0()))
	if signalled(s) {
		t.Error("commit without notices signalled")
	}
	notify(t, s, approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"})
	notify(t, s, approvals.Notice{Kind: approvals.NoticeReply, RequestID: "r1"})
	if !signalled(s) {
		t.Fatal("commit with notices did not signal")
	}
	if signalled(s) {
		t.Error("signal is not coalesced: capacity must be 1")
	}
}

func TestViewIsReadOnly(t *testing.T) {
	s := openTemp(t)
	err := s.View(context.Background(), func(tx approvals.Tx) error {
		if err := tx.Put(newReq("r1", "api", "prod", approvals.StatePending, t0())); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("Put in View = %v, want read-only error", err)
		}
		if err := tx.Notify(approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"}); err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("Notify in View = %v, want read-only error", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
}

func TestTxUnusableAfterCallback(t *testing.T) {
	s := openTemp(t)
	var leaked approvals.Tx
	if err := s.Update(context.Background(), func(tx approvals.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if _, err := leaked.Get("r1"); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("Get on a finished tx = %v, want finished error", err)
	}
	if err := leaked.Put(newReq("r1", "api", "prod", approvals.StatePending, t0())); err == nil {
		t.Error("Put on a finished tx succeeded")
	}
	if _, err := leaked.ActiveFor("api", "prod"); err == nil {
		t.Error("ActiveFor on a finished tx succeeded")
	}
	if err := leaked.Notify(approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"}); err == nil {
		t.Error("Notify on a finished tx succeeded")
	}
}

func TestCancelledContext(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	fn := func(approvals.Tx) error { called = true; return nil }
	calls := map[string]func() error{
		"Update":       func() error { return s.Update(ctx, fn) },
		"View":         func() error { return s.View(ctx, fn) },
		"ListOpen":     func() error { _, err := s.ListOpen(ctx); return err },
		"ListRequests": func() error { return s.ListRequests(ctx, func(*approvals.Request) bool { called = true; return true }) },
		"Stats":        func() error { _, err := s.Stats(ctx); return err },
		"LoadRun":      func() error { _, err := s.LoadRun(ctx, "r1"); return err },
		"OutboxDue":    func() error { _, err := s.OutboxDue(ctx, t0(), 10); return err },
		"OutboxDone":   func() error { return s.OutboxDone(ctx, 1) },
		"OutboxDepth":  func() error { _, err := s.OutboxDepth(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled ctx = %v, want context.Canceled", name, err)
		}
	}
	if called {
		t.Error("a callback ran despite the cancelled context")
	}
}

// TestConcurrentUpdates races writers on distinct targets, writers contending
// for one slot, and readers. Run under -race.
func TestConcurrentUpdates(t *testing.T) {
	s := openTemp(t)
	const distinct, contenders, readers = 24, 16, 4
	ctx := context.Background()
	errs := make(chan error, distinct+contenders+readers)
	won := make(chan string, contenders)
	start := make(chan struct{})
	done := make(chan struct{})

	for i := range distinct {
		go func() {
			<-start
			id := "d" + string(rune('a'+i))
			errs <- s.Update(ctx, func(tx approvals.Tx) error {
				if err := tx.Put(newReq(id, "target-"+id, "prod", approvals.StatePending, t0())); err != nil {
					return err
				}
				return tx.Notify(approvals.Notice{Kind: approvals.NoticeRoot, RequestID: id})
			})
		}()
	}
	for i := range contenders {
		go func() {
			<-start
			id := "c" + string(rune('a'+i))
			err := s.Update(ctx, func(tx approvals.Tx) error {
				active, err := tx.ActiveFor("shared", "prod")
				if err != nil {
					return err
				}
				if active != "" {
					return &approvals.ActiveExistsError{Target: "shared", Env: "prod", ID: active}
				}
				if err := tx.Put(newReq(id, "shared", "prod", approvals.StatePending, t0())); err != nil {
					return err
				}
				return tx.Notify(approvals.Notice{Kind: approvals.NoticeRoot, RequestID: id})
			})
			var ae *approvals.ActiveExistsError
			switch {
			case err == nil:
				won <- id
				errs <- nil
			case errors.As(err, &ae):
				errs <- nil
			default:
				errs <- err
			}
		}()
	}
	for range readers {
		go func() {
			<-start
			for {
				if _, err := s.ListOpen(ctx); err != nil {
					errs <- err
					return
				}
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
			}
		}()
	}
	close(start)
	for range distinct + contenders {
		if err := <-errs; err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	close(done)
	for range readers {
		if err := <-errs; err != nil {
			t.Errorf("reader: %v", err)
		}
	}
	close(won)
	var winners []string
	for id := range won {
		winners = append(winners, id)
	}
	if len(winners) != 1 {
		t.Fatalf("winners for the shared slot = %v, want exactly one", winners)
	}
	if a := activeFor(t, s, "shared", "prod"); a != winners[0] {
		t.Errorf("ActiveFor(shared) = %q, want winner %q", a, winners[0])
	}
	if ids := openIDs(t, s); len(ids) != distinct+1 {
		t.Errorf("open requests = %d, want %d", len(ids), distinct+1)
	}
	due, err := s.OutboxDue(ctx, t0(), 1000)
	if err != nil {
		t.Fatalf("OutboxDue: %v", err)
	}
	if len(due) != distinct+1 {
		t.Fatalf("outbox entries = %d, want %d", len(due), distinct+1)
	}
	for i, e := range due {
		if e.Seq != uint64(i+1) {
			t.Errorf("outbox seq #%d = %d, want gapless %d", i, e.Seq, i+1)
		}
	}
}
