package boltstore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
)

func latestOf(t *testing.T, s *Store, target, env string) string {
	t.Helper()
	var id string
	err := s.View(context.Background(), func(tx approvals.Tx) error {
		var err error
		id, err = tx.LatestFinished(target, env)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func finished(id string, state approvals.State, at time.Time, started bool) *approvals.Request {
	r := newReq(id, "api", "prod", state, at.Add(-time.Hour))
	if started {
		r.StartedAt = at.Add(-time.Minute)
	}
	r.FinishedAt = at
	return r
}

func TestLatestFinishedIndex(t *testing.T) {
	s := openAt(t, statePath(t))
	if got := latestOf(t, s, "api", "prod"); got != "" {
		t.Fatalf("empty store: %q", got)
	}
	put(t, s, finished("r1", approvals.StateSucceeded, t0(), true))
	put(t, s, finished("r2", approvals.StateRolledBack, t0().Add(time.Hour), true))
	// Requests that never ran do not count.
	put(t, s, finished("r3", approvals.StateDenied, t0().Add(2*time.Hour), false))
	put(t, s, newReq("r4", "api", "prod", approvals.StatePending, t0()))
	if got := latestOf(t, s, "api", "prod"); got != "r2" {
		t.Fatalf("latest = %q, want r2", got)
	}
	if got := latestOf(t, s, "api", "staging"); got != "" {
		t.Fatalf("another env: %q", got)
	}
}

// TestMigrateSchema1BackfillsLatest: a schema-1 file's finished rotations
// fill the latest-rotation index, latest FinishedAt first.
func TestMigrateSchema1BackfillsLatest(t *testing.T) {
	path := statePath(t)
	reqs := []*approvals.Request{
		finished("old", approvals.StateSucceeded, t0(), true),
		finished("new", approvals.StateFailed, t0().Add(time.Hour), true),
		finished("denied", approvals.StateDenied, t0().Add(2*time.Hour), false),
	}
	writeRaw(t, path, func(tx *bolt.Tx) error {
		if err := metaWith(encodeSeq(1), v1Buckets()...)(tx); err != nil {
			return err
		}
		for _, r := range reqs {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("requests")).Put([]byte(r.ID), b); err != nil {
				return err
			}
		}
		return nil
	})
	s := openAt(t, path)
	if got := latestOf(t, s, "api", "prod"); got != "new" {
		t.Fatalf("backfilled latest = %q, want new", got)
	}
	if rs, err := s.ListUnreviewed(context.Background()); err != nil || len(rs) != 0 {
		t.Fatalf("reviews index after migration: %v %v", rs, err)
	}
}
