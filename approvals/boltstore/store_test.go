package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

func TestNewFileGetsSchema(t *testing.T) {
	path := statePath(t)
	s := openAt(t, path)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	var buckets []string
	var version uint64
	err = db.View(func(tx *bolt.Tx) error {
		version = binary.BigEndian.Uint64(tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchemaVersion)))
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			buckets = append(buckets, string(name))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if version != SchemaVersion {
		t.Errorf("schema version = %d, want %d", version, SchemaVersion)
	}
	want := []string{"followups", "latest", "meta", "open", "open_ids", "outbox", "requests", "reviews", "runs"}
	if !slices.Equal(buckets, want) {
		t.Errorf("buckets = %v, want %v", buckets, want)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if perm := info.Mode().Perm(); perm != fileMode {
		t.Errorf("file mode = %o, want %o", perm, fileMode)
	}
}

// TestPersistence: everything written is there after the file is closed and reopened.
func TestPersistence(t *testing.T) {
	path := statePath(t)
	ctx := context.Background()
	s := openAt(t, path)
	open := newReq("r1", "api", "prod", approvals.StateRunning, t0())
	open.Slack = approvals.SlackRefs{Channel: "C1", RootTS: "1.1"}
	done := newReq("r2", "db", "prod", approvals.StateSucceeded, t0().Add(time.Minute))
	done.Outcome = "rotated"
	put(t, s, open, done)
	run := &executor.Run{RequestID: "r1", Target: "api", Phase: executor.PhaseForward,
		Steps: []executor.StepRecord{{Name: "mint", Status: executor.StepDone}}, Facts: map[string]string{"key_id": "k-2"}}
	if err := s.SaveRun(ctx, run, approvals.Notice{Kind: approvals.NoticeProgress, RequestID: "r1", Step: "mint"}); err != nil {
		t.Fatalf("SaveRun: %v", err)
	}
	notify(t, s, approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r2"})
	if err := s.OutboxRetry(ctx, 1, 3, t0().Add(time.Minute), "rate limited"); err != nil {
		t.Fatalf("OutboxRetry: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openAt(t, path)
	for _, want := range []*approvals.Request{open, done} {
		got, err := get(t, s, want.ID)
		if err != nil {
			t.Fatalf("Get(%s) after reopen: %v", want.ID, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Get(%s) after reopen:\n got %+v\nwant %+v", want.ID, got, want)
		}
	}
	if a := activeFor(t, s, "api", "prod"); a != "r1" {
		t.Errorf("ActiveFor after reopen = %q, want r1", a)
	}
	if ids := openIDs(t, s); !slices.Equal(ids, []string{"r1"}) {
		t.Errorf("ListOpen after reopen = %v, want [r1]", ids)
	}
	gotRun, err := s.LoadRun(ctx, "r1")
	if err != nil || !reflect.DeepEqual(gotRun, run) {
		t.Errorf("LoadRun after reopen = %+v, %v; want %+v", gotRun, err, run)
	}
	due, err := s.OutboxDue(ctx, t0().Add(time.Hour), 10)
	if err != nil {
		t.Fatalf("OutboxDue: %v", err)
	}
	want := []approvals.OutboxEntry{
		{Seq: 1, Notice: approvals.Notice{Kind: approvals.NoticeProgress, RequestID: "r1", Step: "mint"},
			Attempts: 3, NotBefore: t0().Add(time.Minute), LastError: "rate limited"},
		{Seq: 2, Notice: approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r2"}},
	}
	if !reflect.DeepEqual(due, want) {
		t.Errorf("outbox after reopen:\n got %+v\nwant %+v", due, want)
	}
	// Sequences continue after a reopen rather than reusing delivered numbers.
	if err := s.OutboxDone(ctx, 2); err != nil {
		t.Fatalf("OutboxDone: %v", err)
	}
	notify(t, s, approvals.Notice{Kind: approvals.NoticeReply, RequestID: "r2"})
	due, err = s.OutboxDue(ctx, t0().Add(time.Hour), 10)
	if err != nil {
		t.Fatalf("OutboxDue: %v", err)
	}
	if len(due) != 2 || due[1].Seq != 3 {
		t.Errorf("after reopen, new notice got seq %+v, want 3", due)
	}
}

// writeRaw builds a file directly with bbolt, as another version of rotary
// (or another program) might have left it.
func writeRaw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatalf("write raw: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close raw: %v", err)
	}
}

func metaWith(version []byte, buckets ...string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket([]byte(bucketMeta))
		if err != nil {
			return err
		}
		if version != nil {
			if err := m.Put([]byte(keySchemaVersion), version); err != nil {
				return err
			}
		}
		for _, b := range buckets {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestSchemaRefusal: files this build must not touch are refused, and left
// byte-for-byte as they were.
func TestSchemaRefusal(t *testing.T) {
	all := dataBuckets()
	tests := []struct {
		name  string
		build func(tx *bolt.Tx) error
		want  string
	}{
		{"newer version", metaWith(encodeSeq(SchemaVersion+1), all...), "newer rotary"},
		{"buckets without meta", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("requests"))
			return err
		}, "no schema version"},
		{"foreign bucket without meta", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("widgets"))
			return err
		}, "no schema version"},
		{"meta without version", metaWith(nil, all...), "missing or malformed"},
		{"malformed version", metaWith([]byte("1"), all...), "missing or malformed"},
		{"version zero", metaWith(encodeSeq(0), all...), "no migration from schema version 0"},
		{"missing bucket", metaWith(encodeSeq(SchemaVersion), bucketRequests, bucketOpen, bucketOpenIDs, bucketRuns), `"outbox" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := statePath(t)
			writeRaw(t, path, tt.build)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{NoSync: true, LockTimeout: testLockTimeout})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open succeeded, want refusal mentioning %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open error = %q, want it to name the file and mention %q", err, tt.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("refused file was modified")
			}
			// The lock was released: the file can be opened again by bbolt.
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: testLockTimeout})
			if err != nil {
				t.Fatalf("file still locked after refusal: %v", err)
			}
			_ = db.Close()
		})
	}
}

func TestOpenNotABoltFile(t *testing.T) {
	path := statePath(t)
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{NoSync: true, LockTimeout: testLockTimeout})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(garbage) = %v, want an error naming the file", err)
	}
}

// TestSecondOpenIsLocked: bbolt's flock is per open file description, so a
// second Open in the same process contends exactly like a second process would.
func TestSecondOpenIsLocked(t *testing.T) {
	path := statePath(t)
	first := openAt(t, path)

	_, err := Open(path, Options{NoSync: true, LockTimeout: testLockTimeout})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second Open = %v, want *LockedError", err)
	}
	if want := "state file " + path + " is locked by another rotary process"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	if !errors.Is(err, bolterrors.ErrTimeout) {
		t.Error("LockedError does not unwrap to bbolt's ErrTimeout")
	}
	if le.Path != path || le.Waited != testLockTimeout {
		t.Errorf("LockedError = %+v, want path %s, waited %s", le, path, testLockTimeout)
	}

	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	openAt(t, path) // released on Close
}

// steppingClock advances by step on every reading.
type steppingClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func TestSlowCommitIsLogged(t *testing.T) {
	for _, tt := range []struct {
		step time.Duration
		want bool
	}{
		{slowCommitThreshold + time.Millisecond, true},
		{slowCommitThreshold, false},
	} {
		var buf bytes.Buffer
		clock := &steppingClock{now: t0(), step: tt.step}
		s, err := Open(statePath(t), Options{NoSync: true, Now: clock.Now, Log: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		put(t, s, newReq("r1", "api", "prod", approvals.StatePending, t0()))
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := strings.Contains(buf.String(), "slow state file commit"); got != tt.want {
			t.Errorf("commit taking %s: slow-commit logged = %v, want %v\n%s", tt.step, got, tt.want, buf.String())
		}
	}
}
