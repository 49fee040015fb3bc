package boltstore

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
)

// bucketLatest maps target\x00env to the ID of its latest finished rotation
// (one that started, so changed or may have changed something). A rollback
// may only restore what the latest rotation replaced: rolling back an older
// one would put back a secret that a later rotation already replaced.

// ranRotation reports whether r is a finished request whose rotation ran.
func ranRotation(r *approvals.Request) bool {
	switch r.State {
	case approvals.StateSucceeded, approvals.StateFailed, approvals.StateRolledBack:
		return !r.StartedAt.IsZero()
	}
	return false
}

// indexLatest records r as its target's latest finished rotation.
func indexLatest(btx *bolt.Tx, r *approvals.Request) error {
	if !ranRotation(r) {
		return nil
	}
	b, err := bucket(btx, bucketLatest)
	if err != nil {
		return err
	}
	if err := b.Put(openKey(r.Target, r.Env), []byte(r.ID)); err != nil {
		return fmt.Errorf("index latest rotation: %w", err)
	}
	return nil
}

// LatestFinished returns the ID of target/env's latest finished rotation, or "".
func (t *tx) LatestFinished(target, env string) (string, error) {
	if err := t.usable(false); err != nil {
		return "", fmt.Errorf("latest rotation of %s/%s: %w", target, env, err)
	}
	b, err := bucket(t.btx, bucketLatest)
	if err != nil {
		return "", err
	}
	return string(b.Get(openKey(target, env))), nil
}

// backfillLatest fills bucketLatest from every stored request (migration
// 1→2). Requests finish in time order, so the latest FinishedAt wins.
func backfillLatest(btx *bolt.Tx) error {
	reqs := btx.Bucket([]byte(bucketRequests))
	latest := btx.Bucket([]byte(bucketLatest))
	if reqs == nil || latest == nil {
		return fmt.Errorf("backfill latest rotations: buckets missing")
	}
	type pick struct {
		id string
		r  approvals.Request
	}
	best := map[string]pick{}
	err := reqs.ForEach(func(k, v []byte) error {
		var r approvals.Request
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode request %s: %w", k, err)
		}
		if !ranRotation(&r) {
			return nil
		}
		key := string(openKey(r.Target, r.Env))
		if cur, ok := best[key]; !ok || r.FinishedAt.After(cur.r.FinishedAt) {
			best[key] = pick{string(k), r}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("backfill latest rotations: %w", err)
	}
	for key, p := range best {
		if err := latest.Put([]byte(key), []byte(p.id)); err != nil {
			return fmt.Errorf("backfill latest rotations: %w", err)
		}
	}
	return nil
}
