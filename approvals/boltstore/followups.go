package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/rotators/executor"
)

// followUpKeyTimeLen is the DueAt prefix of a follow-up index key.
const followUpKeyTimeLen = 8

// followUpKey is DueAt (8-byte big-endian unix nanos, so byte order is time
// order) + request ID + NUL + name.
func followUpKey(due time.Time, requestID, name string) []byte {
	k := make([]byte, followUpKeyTimeLen, followUpKeyTimeLen+len(requestID)+1+len(name))
	binary.BigEndian.PutUint64(k, dueStamp(due))
	k = append(k, requestID...)
	k = append(k, 0)
	return append(k, name...)
}

// dueStamp is the index's time prefix. A time before 1970 has negative
// nanoseconds and clamps to 0 (due long ago) rather than wrapping to the end.
func dueStamp(t time.Time) uint64 {
	return uint64(max(t.UnixNano(), 0))
}

func parseFollowUpKey(k []byte) (executor.FollowUpRef, error) {
	if len(k) <= followUpKeyTimeLen {
		return executor.FollowUpRef{}, fmt.Errorf("follow-up index key of %d bytes is too short", len(k))
	}
	rest := k[followUpKeyTimeLen:]
	i := bytes.IndexByte(rest, 0)
	if i <= 0 {
		return executor.FollowUpRef{}, fmt.Errorf("follow-up index key %q has no request ID", rest)
	}
	return executor.FollowUpRef{
		RequestID: string(rest[:i]),
		Name:      string(rest[i+1:]),
		DueAt:     time.Unix(0, int64(binary.BigEndian.Uint64(k[:followUpKeyTimeLen]))).UTC(),
	}, nil
}

// indexedFollowUps are the index keys run should have: one per follow-up
// that is scheduled or running (a running one stays indexed so that a
// process stopped mid-follow-up finds it as due on its next start).
func indexedFollowUps(run *executor.Run) ([][]byte, error) {
	var keys [][]byte
	for _, f := range run.FollowUps {
		if f.Status != executor.FollowUpScheduled && f.Status != executor.FollowUpRunning {
			continue
		}
		switch {
		case strings.IndexByte(run.RequestID, 0) >= 0:
			// NUL ends the request ID in the key.
			return nil, fmt.Errorf("request ID %q contains a NUL byte", run.RequestID)
		case f.Name == "":
			return nil, fmt.Errorf("a follow-up of %s has no name", run.RequestID)
		case len(f.Name) > maxKeyLen:
			return nil, fmt.Errorf("follow-up name is %d bytes, over the %d byte limit", len(f.Name), maxKeyLen)
		}
		keys = append(keys, followUpKey(f.DueAt, run.RequestID, f.Name))
	}
	return keys, nil
}

// storedFollowUps decodes only the follow-ups of a stored run, to find its
// previous index keys.
type storedFollowUps struct {
	RequestID string                    `json:"request_id"`
	FollowUps []executor.FollowUpRecord `json:"follow_ups"`
}

// reindexFollowUps replaces the previous run's index keys (read from the
// runs bucket before it is overwritten) with keys. Inside SaveRun's transaction.
func reindexFollowUps(btx *bolt.Tx, previous []byte, keys [][]byte) error {
	idx, err := bucket(btx, bucketFollowUps)
	if err != nil {
		return err
	}
	if previous != nil {
		var old storedFollowUps
		if err := json.Unmarshal(previous, &old); err != nil {
			return fmt.Errorf("decode the stored run's follow-ups: %w", err)
		}
		oldKeys, err := indexedFollowUps(&executor.Run{RequestID: old.RequestID, FollowUps: old.FollowUps})
		if err != nil {
			return fmt.Errorf("stored run: %w", err)
		}
		for _, k := range oldKeys {
			if err := idx.Delete(k); err != nil {
				return fmt.Errorf("unindex follow-up: %w", err)
			}
		}
	}
	for _, k := range keys {
		if err := idx.Put(k, []byte{}); err != nil {
			return fmt.Errorf("index follow-up: %w", err)
		}
	}
	return nil
}

// DueFollowUps returns the follow-ups that are scheduled or running with
// DueAt <= now, earliest first (then by request ID and name). It reads the
// index only, stopping at the first entry due after now.
func (s *Store) DueFollowUps(ctx context.Context, now time.Time) ([]executor.FollowUpRef, error) {
	var out []executor.FollowUpRef
	limit := dueStamp(now)
	err := s.view(ctx, "due follow-ups", wrapFnErr, func(t *tx) error {
		idx, err := bucket(t.btx, bucketFollowUps)
		if err != nil {
			return err
		}
		c := idx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) >= followUpKeyTimeLen && binary.BigEndian.Uint64(k[:followUpKeyTimeLen]) > limit {
				break
			}
			ref, err := parseFollowUpKey(k)
			if err != nil {
				return err
			}
			out = append(out, ref)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NextFollowUp returns the earliest DueAt in the index, and false when no
// follow-up is scheduled or running.
func (s *Store) NextFollowUp(ctx context.Context) (time.Time, bool, error) {
	var (
		next  time.Time
		found bool
	)
	err := s.view(ctx, "next follow-up", wrapFnErr, func(t *tx) error {
		idx, err := bucket(t.btx, bucketFollowUps)
		if err != nil {
			return err
		}
		k, _ := idx.Cursor().First()
		if k == nil {
			return nil
		}
		ref, err := parseFollowUpKey(k)
		if err != nil {
			return err
		}
		next, found = ref.DueAt, true
		return nil
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return next, found, nil
}
