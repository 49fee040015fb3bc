package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
)

// ErrNoOutboxEntry is returned by OutboxRetry for a sequence not in the outbox
// (already delivered, or never enqueued).
var ErrNoOutboxEntry = errors.New("no such outbox entry")

// Notify appends n to the outbox under the bucket's next sequence. The
// deliverer is signalled only after the transaction commits, so it never
// looks for a notice that might still be rolled back.
func (t *tx) Notify(n approvals.Notice) error {
	if err := t.usable(true); err != nil {
		return fmt.Errorf("notify %s for %s: %w", n.Kind, n.RequestID, err)
	}
	switch {
	case n.Kind == "":
		return fmt.Errorf("notify for %s: notice has no kind", n.RequestID)
	case n.RequestID == "":
		// Per-request delivery order is keyed on it.
		return fmt.Errorf("notify %s: notice has no request ID", n.Kind)
	case len(n.RequestID) > maxKeyLen:
		return fmt.Errorf("notify %s: request ID over %d bytes", n.Kind, maxKeyLen)
	}
	outbox, err := bucket(t.btx, bucketOutbox)
	if err != nil {
		return fmt.Errorf("notify %s for %s: %w", n.Kind, n.RequestID, err)
	}
	seq, err := outbox.NextSequence()
	if err != nil {
		return fmt.Errorf("notify %s for %s: next sequence: %w", n.Kind, n.RequestID, err)
	}
	data, err := json.Marshal(approvals.OutboxEntry{Seq: seq, Notice: n})
	if err != nil {
		return fmt.Errorf("notify %s for %s: encode: %w", n.Kind, n.RequestID, err)
	}
	if err := outbox.Put(encodeSeq(seq), data); err != nil {
		return fmt.Errorf("notify %s for %s: write: %w", n.Kind, n.RequestID, err)
	}
	t.notified++
	return nil
}

// OutboxSignal is signalled (capacity 1, never blocking the committer) after
// every committed transaction that enqueued at least one notice. The
// deliverer waits on it, on OutboxNext's time, and on its own shutdown.
func (s *Store) OutboxSignal() <-chan struct{} { return s.signal }

// walkHeads calls fn, in sequence order, for the oldest entry of every
// request in the outbox: the only entry of each request that may be
// delivered next. fn returns false to stop.
func walkHeads(outbox *bolt.Bucket, fn func(approvals.OutboxEntry) bool) error {
	seen := map[string]bool{}
	c := outbox.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e, err := decodeEntry(k, v)
		if err != nil {
			return err
		}
		if seen[e.Notice.RequestID] {
			continue
		}
		seen[e.Notice.RequestID] = true
		if !fn(e) {
			return nil
		}
	}
	return nil
}

func decodeEntry(k, v []byte) (approvals.OutboxEntry, error) {
	if len(k) != 8 {
		return approvals.OutboxEntry{}, fmt.Errorf("outbox key of %d bytes", len(k))
	}
	seq := binary.BigEndian.Uint64(k)
	var e approvals.OutboxEntry
	if err := json.Unmarshal(v, &e); err != nil {
		return approvals.OutboxEntry{}, fmt.Errorf("decode outbox entry %d: %w", seq, err)
	}
	// The key is authoritative: it is what OutboxDelivered deletes.
	e.Seq = seq
	return e, nil
}

// OutboxDue returns up to limit entries that may be delivered at now, in
// sequence order. It returns at most one entry per request, the oldest one
// still pending, and none for a request whose oldest entry is delayed
// (NotBefore after now): a later notice never overtakes an earlier one for
// the same request. The deliverer therefore calls again after finishing a
// batch and sleeps only when a call returns nothing.
func (s *Store) OutboxDue(ctx context.Context, now time.Time, limit int) ([]approvals.OutboxEntry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("outbox due: limit %d must be positive", limit)
	}
	var out []approvals.OutboxEntry
	err := s.view(ctx, "outbox due", wrapFnErr, func(t *tx) error {
		outbox, err := bucket(t.btx, bucketOutbox)
		if err != nil {
			return err
		}
		return walkHeads(outbox, func(e approvals.OutboxEntry) bool {
			if !e.NotBefore.After(now) {
				out = append(out, e)
			}
			return len(out) < limit
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// OutboxNext reports when the next entry becomes deliverable: the earliest
// NotBefore among the requests' oldest entries (the zero time means one is
// due already). ok is false when the outbox is empty.
func (s *Store) OutboxNext(ctx context.Context) (at time.Time, ok bool, err error) {
	err = s.view(ctx, "outbox next", wrapFnErr, func(t *tx) error {
		outbox, err := bucket(t.btx, bucketOutbox)
		if err != nil {
			return err
		}
		return walkHeads(outbox, func(e approvals.OutboxEntry) bool {
			if !ok || e.NotBefore.Before(at) {
				at, ok = e.NotBefore, true
			}
			// Nothing is earlier than "due now".
			return !at.IsZero()
		})
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return at, ok, nil
}

// OutboxDone removes a delivered entry. Removing one that is already gone is
// not an error, so a delivery confirmed twice stays harmless. It is
// OutboxDelivered for a notice that produced no message handle.
func (s *Store) OutboxDone(ctx context.Context, seq uint64) error {
	return s.OutboxDelivered(ctx, seq, "", nil)
}

// OutboxDelivered records a delivered notice in one commit: when refs is not
// nil it applies refs to request requestID's Slack handles (the ts of a
// message just posted), and it removes outbox entry seq.
//
// One commit rather than a handle write followed by OutboxDone, for two
// reasons. Each commit costs a pair of fsyncs, and this is on the path of
// every posted root and progress message. And the handle and the delivered
// mark can never disagree after a crash: either both are stored, or neither
// is and the notice is delivered again, exactly as if the process had died
// just before the commit.
//
// A request that no longer exists is not an error (there is nothing to keep
// a handle for; the entry is still removed), and neither is an entry already
// gone (a delivery confirmed twice; the handles are applied again, which
// refs must make harmless by assigning, not accumulating). For the same
// reason refs may run more than once (group commit retries a transaction).
// An entry still queued for a different request is refused, changing
// nothing: its handle would land on the wrong request.
func (s *Store) OutboxDelivered(ctx context.Context, seq uint64, requestID string, refs func(*approvals.SlackRefs)) error {
	if refs != nil && requestID == "" {
		return fmt.Errorf("outbox delivered %d: message handles given without a request ID; pass the ID of the request the notice is for", seq)
	}
	return s.update(ctx, fmt.Sprintf("outbox delivered %d", seq), wrapFnErr, func(t *tx) error {
		outbox, err := bucket(t.btx, bucketOutbox)
		if err != nil {
			return err
		}
		key := encodeSeq(seq)
		if refs != nil {
			if raw := outbox.Get(key); raw != nil {
				e, err := decodeEntry(key, raw)
				if err != nil {
					return err
				}
				if e.Notice.RequestID != requestID {
					return fmt.Errorf("entry is for request %s, not %s; refusing to store its message handle on the wrong request (pass the entry's own Notice.RequestID)", e.Notice.RequestID, requestID)
				}
			}
			if err := applyRefs(t, requestID, refs); err != nil {
				return err
			}
		}
		return outbox.Delete(key)
	})
}

// applyRefs updates request id's Slack handles through Get and Put, so its
// indexes are rewritten from the same state (a handle changes no state, so
// they stay as they were). A missing request is skipped.
func applyRefs(t *tx, id string, refs func(*approvals.SlackRefs)) error {
	r, err := t.Get(id)
	if errors.Is(err, approvals.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	refs(&r.Slack)
	return t.Put(r)
}

// OutboxRetry records a failed delivery: the attempt count, when to try again,
// and the (secret-free, transport-produced) error, truncated to a bounded size.
// Later entries of the same request stay queued behind it.
func (s *Store) OutboxRetry(ctx context.Context, seq uint64, attempts int, notBefore time.Time, lastErr string) error {
	if len(lastErr) > maxLastErrorLen {
		lastErr = strings.ToValidUTF8(lastErr[:maxLastErrorLen], "")
	}
	return s.update(ctx, fmt.Sprintf("outbox retry %d", seq), wrapFnErr, func(t *tx) error {
		outbox, err := bucket(t.btx, bucketOutbox)
		if err != nil {
			return err
		}
		key := encodeSeq(seq)
		raw := outbox.Get(key)
		if raw == nil {
			return ErrNoOutboxEntry
		}
		e, err := decodeEntry(key, raw)
		if err != nil {
			return err
		}
		e.Attempts, e.NotBefore, e.LastError = attempts, notBefore, lastErr
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return outbox.Put(key, data)
	})
}

// OutboxDepth is the number of entries awaiting delivery.
func (s *Store) OutboxDepth(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, "outbox depth", wrapFnErr, func(t *tx) error {
		outbox, err := bucket(t.btx, bucketOutbox)
		if err != nil {
			return err
		}
		n = outbox.Stats().KeyN
		return nil
	})
	return n, err
}
