package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
)

// tx implements approvals.Tx on one bbolt transaction. Like the bbolt
// transaction under it, it belongs to the goroutine running the Update or
// View callback and is dead once the callback returns.
type tx struct {
	btx      *bolt.Tx
	writable bool
	done     bool
	// notified counts notices enqueued, so a commit knows to wake the deliverer.
	notified int
	// slots remembers the target/env of the stored requests Get decoded in
	// this transaction, so Put's check that they did not change needs no
	// second decode of the stored JSON (the writer is serial: every decode
	// saved there is saved for every request waiting on the commit).
	slots map[string]identity
}

var _ approvals.Tx = (*tx)(nil)

// usable refuses use after the callback returned (bbolt would otherwise
// touch unmapped memory) and writes in a View.
func (t *tx) usable(write bool) error {
	if t.done || t.btx == nil {
		return errors.New("transaction already finished")
	}
	if write && !t.writable {
		return errors.New("write in a read-only transaction")
	}
	return nil
}

// Update runs fn in one read-write transaction: everything fn does through
// the Tx commits together, or nothing does if fn returns an error (which is
// returned unchanged). OutboxSignal fires after a commit that enqueued a notice.
func (s *Store) Update(ctx context.Context, fn func(approvals.Tx) error) error {
	return s.update(ctx, "update", passFnErr, func(t *tx) error { return fn(t) })
}

// View runs fn in a read-only transaction; Put and Notify fail inside it.
func (s *Store) View(ctx context.Context, fn func(approvals.Tx) error) error {
	return s.view(ctx, "view", passFnErr, func(t *tx) error { return fn(t) })
}

// Get returns the stored request or an error wrapping approvals.ErrNotFound.
func (t *tx) Get(id string) (*approvals.Request, error) {
	if err := t.usable(false); err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	reqs, err := bucket(t.btx, bucketRequests)
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	r, err := getRequest(reqs, id)
	if err == nil && t.writable {
		if t.slots == nil {
			t.slots = map[string]identity{}
		}
		t.slots[id] = identity{Target: r.Target, Env: r.Env}
	}
	return r, err
}

func getRequest(reqs *bolt.Bucket, id string) (*approvals.Request, error) {
	raw := reqs.Get([]byte(id))
	if raw == nil {
		return nil, fmt.Errorf("request %s: %w", id, approvals.ErrNotFound)
	}
	return decodeRequest(id, raw)
}

func decodeRequest(id string, raw []byte) (*approvals.Request, error) {
	var r approvals.Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode request %s: %w", id, err)
	}
	if !r.State.Valid() {
		return nil, fmt.Errorf("decode request %s: unknown state %q", id, r.State)
	}
	return &r, nil
}

// identity is the part of a stored request that must never change, decoded
// without the (possibly long) event history.
type identity struct {
	Target string          `json:"target"`
	Env    string          `json:"env"`
	State  approvals.State `json:"state"`
}

func validateRequest(r *approvals.Request) error {
	switch {
	case r.ID == "":
		return errors.New("request has no ID")
	case len(r.ID) > maxKeyLen:
		return fmt.Errorf("request ID is %d bytes, over the %d limit", len(r.ID), maxKeyLen)
	case r.Target == "" || r.Env == "":
		return errors.New("request has no target or env")
	case strings.ContainsRune(r.Target, 0) || strings.ContainsRune(r.Env, 0):
		// NUL separates target from env in the open index.
		return errors.New("target or env contains a NUL byte")
	case len(r.Target)+len(r.Env)+1 > maxKeyLen:
		return fmt.Errorf("target and env are over the %d byte limit", maxKeyLen)
	case !r.State.Valid():
		return fmt.Errorf("unknown state %q", r.State)
	}
	return nil
}

func openKey(target, env string) []byte {
	return []byte(target + "\x00" + env)
}

// Put writes r and keeps the open index in step with r.State: an open state
// claims the target/env slot, any other state releases it. Validation and
// encoding happen before the first write, so a refused Put changes nothing
// even if the caller ignores its error.
func (t *tx) Put(r *approvals.Request) error {
	if r == nil {
		return errors.New("put request: nil request")
	}
	if err := t.usable(true); err != nil {
		return fmt.Errorf("put request %s: %w", r.ID, err)
	}
	if err := validateRequest(r); err != nil {
		return fmt.Errorf("put request %s: %w", r.ID, err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put request %s: encode: %w", r.ID, err)
	}
	if err := t.put(r, data); err != nil {
		return fmt.Errorf("put request %s: %w", r.ID, err)
	}
	return nil
}

func (t *tx) put(r *approvals.Request, data []byte) error {
	reqs, err := bucket(t.btx, bucketRequests)
	if err != nil {
		return err
	}
	open, err := bucket(t.btx, bucketOpen)
	if err != nil {
		return err
	}
	openIDs, err := bucket(t.btx, bucketOpenIDs)
	if err != nil {
		return err
	}
	id := []byte(r.ID)
	if old := reqs.Get(id); old != nil {
		prev, known := t.slots[r.ID]
		if !known {
			if err := json.Unmarshal(old, &prev); err != nil {
				return fmt.Errorf("decode stored request: %w", err)
			}
		}
		// The index key is derived from target/env; letting them change would
		// strand the old index entry and the slot with it.
		if prev.Target != r.Target || prev.Env != r.Env {
			return fmt.Errorf("target/env cannot change (stored %s/%s, given %s/%s)", prev.Target, prev.Env, r.Target, r.Env)
		}
	}
	key := openKey(r.Target, r.Env)
	holder := open.Get(key)
	holds := bytes.Equal(holder, id)
	if r.State.Open() && holder != nil && !holds {
		other := &approvals.ActiveExistsError{Target: r.Target, Env: r.Env, ID: string(holder)}
		if raw := reqs.Get(holder); raw != nil {
			var o identity
			if json.Unmarshal(raw, &o) == nil {
				other.State = o.State
			}
		}
		return other
	}

	if r.State.Open() {
		if !holds {
			if err := open.Put(key, id); err != nil {
				return fmt.Errorf("index open slot: %w", err)
			}
		}
		if err := openIDs.Put(id, []byte{}); err != nil {
			return fmt.Errorf("index open id: %w", err)
		}
	} else {
		if holds {
			if err := open.Delete(key); err != nil {
				return fmt.Errorf("release open slot: %w", err)
			}
		}
		if err := openIDs.Delete(id); err != nil {
			return fmt.Errorf("unindex open id: %w", err)
		}
	}
	if err := indexReview(t.btx, r); err != nil {
		return err
	}
	if err := indexLatest(t.btx, r); err != nil {
		return err
	}
	if err := reqs.Put(id, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// ActiveFor returns the ID of the open request holding target/env, or "".
func (t *tx) ActiveFor(target, env string) (string, error) {
	if err := t.usable(false); err != nil {
		return "", fmt.Errorf("active request for %s/%s: %w", target, env, err)
	}
	open, err := bucket(t.btx, bucketOpen)
	if err != nil {
		return "", fmt.Errorf("active request for %s/%s: %w", target, env, err)
	}
	return string(open.Get(openKey(target, env))), nil
}

// ListOpen returns every pending, approved or running request, oldest first
// (by CreatedAt, then ID). It reads only the open set, never all requests.
func (s *Store) ListOpen(ctx context.Context) ([]*approvals.Request, error) {
	var out []*approvals.Request
	err := s.view(ctx, "list open requests", wrapFnErr, func(t *tx) error {
		openIDs, err := bucket(t.btx, bucketOpenIDs)
		if err != nil {
			return err
		}
		reqs, err := bucket(t.btx, bucketRequests)
		if err != nil {
			return err
		}
		return openIDs.ForEach(func(k, _ []byte) error {
			r, err := getRequest(reqs, string(k))
			if err != nil {
				return fmt.Errorf("open index: %w", err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *approvals.Request) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// ListRequests calls fn for every stored request in ID order until fn
// returns false. It runs inside one read transaction, so fn sees a
// consistent snapshot but must not call back into the Store (a write from
// inside a read transaction can deadlock bbolt when the file grows).
func (s *Store) ListRequests(ctx context.Context, fn func(*approvals.Request) bool) error {
	return s.view(ctx, "list requests", wrapFnErr, func(t *tx) error {
		reqs, err := bucket(t.btx, bucketRequests)
		if err != nil {
			return err
		}
		c := reqs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			// A full scan can be long; stop when the caller has given up.
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := decodeRequest(string(k), v)
			if err != nil {
				return err
			}
			if !fn(r) {
				return nil
			}
		}
		return nil
	})
}

// Stats are cheap gauges for metrics.
type Stats struct {
	// Open counts open requests by state; it always has the pending, approved
	// and running keys. Terminal states are not counted: that would need a
	// scan of every request ever made, and metrics poll often. Terminal
	// outcomes belong in counters incremented when they happen.
	Open map[approvals.State]int
	// OutboxDepth is the number of notices awaiting delivery.
	OutboxDepth int
}

// Stats reads the open set and the outbox size in one snapshot.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Open: map[approvals.State]int{}}
	for _, state := range approvals.AllStates {
		if state.Open() {
			st.Open[state] = 0
		}
	}
	err := s.view(ctx, "stats", wrapFnErr, func(t *tx) error {
		openIDs, err := bucket(t.btx, bucketOpenIDs)
		if err != nil {
			return err
		}
		reqs, err := bucket(t.btx, bucketRequests)
		if err != nil {
			return err
		}
		outbox, err := bucket(t.btx, bucketOutbox)
		if err != nil {
			return err
		}
		if err := openIDs.ForEach(func(k, _ []byte) error {
			raw := reqs.Get(k)
			if raw == nil {
				return fmt.Errorf("open index names missing request %s", k)
			}
			var id identity
			if err := json.Unmarshal(raw, &id); err != nil {
				return fmt.Errorf("decode request %s: %w", k, err)
			}
			st.Open[id.State]++
			return nil
		}); err != nil {
			return err
		}
		st.OutboxDepth = outbox.Stats().KeyN
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	return st, nil
}
