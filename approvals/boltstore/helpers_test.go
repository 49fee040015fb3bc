package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
)

// t0 is the fixed instant tests build their data around.
func t0() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// testLockTimeout keeps the lock test fast; bbolt retries every 50ms.
const testLockTimeout = 150 * time.Millisecond

func statePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "rotary.db")
}

// openAt opens path with test defaults (no fsync: test data need not survive a power cut).
func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{NoSync: true, LockTimeout: testLockTimeout})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTemp(t testing.TB) *Store {
	t.Helper()
	return openAt(t, statePath(t))
}

func newReq(id, target, env string, state approvals.State, created time.Time) *approvals.Request {
	return &approvals.Request{
		ID: id, Target: target, Kind: "apikey", Env: env, Requester: "U1", State: state,
		CreatedAt: created, ExpiresAt: created.Add(time.Hour),
		Events: []approvals.Event{{At: created, Actor: "U1", Action: "requested"}},
	}
}

func put(t testing.TB, s *Store, reqs ...*approvals.Request) {
	t.Helper()
	err := s.Update(context.Background(), func(tx approvals.Tx) error {
		for _, r := range reqs {
			if err := tx.Put(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
}

func get(t testing.TB, s *Store, id string) (*approvals.Request, error) {
	t.Helper()
	var out *approvals.Request
	err := s.View(context.Background(), func(tx approvals.Tx) error {
		r, err := tx.Get(id)
		out = r
		return err
	})
	return out, err
}

func activeFor(t testing.TB, s *Store, target, env string) string {
	t.Helper()
	var id string
	err := s.View(context.Background(), func(tx approvals.Tx) error {
		var err error
		id, err = tx.ActiveFor(target, env)
		return err
	})
	if err != nil {
		t.Fatalf("ActiveFor: %v", err)
	}
	return id
}

func openIDs(t testing.TB, s *Store) []string {
	t.Helper()
	rs, err := s.ListOpen(context.Background())
	if err != nil {
		t.Fatalf("ListOpen: %v", err)
	}
	ids := []string{}
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func notify(t testing.TB, s *Store, ns ...approvals.Notice) {
	t.Helper()
	err := s.Update(context.Background(), func(tx approvals.Tx) error {
		for _, n := range ns {
			if err := tx.Notify(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
}

func depth(t testing.TB, s *Store) int {
	t.Helper()
	n, err := s.OutboxDepth(context.Background())
	if err != nil {
		t.Fatalf("OutboxDepth: %v", err)
	}
	return n
}

// signalled drains the outbox signal without waiting: the signal is sent
// before Update returns, so there is nothing to wait for.
func signalled(s *Store) bool {
	select {
	case <-s.OutboxSignal():
		return true
	default:
		return false
	}
}
