package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openCommitter(t *testing.T) (*committer, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "batch.db"), fileMode, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return newCommitter(db), db
}

func putKey(key string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(key), []byte("v")) }
}

func hasKey(t *testing.T, db *bolt.DB, key string) bool {
	t.Helper()
	var ok bool
	if err := db.View(func(tx *bolt.Tx) error { ok = tx.Bucket([]byte("b")).Get([]byte(key)) != nil; return nil }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// holdLeader makes one caller lead with a transaction that waits for
// release, then queues the given calls behind it and waits until they are
// all queued, in order. It returns release and a wait for every call's result.
func holdLeader(t *testing.T, c *committer, calls ...func(*bolt.Tx) error) (release func(), results func() []error) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = c.update(func(*bolt.Tx) error { close(entered); <-gate; return nil })
	})
	<-entered
	errs := make([]error, len(calls))
	for i, fn := range calls {
		wg.Go(func() { errs[i] = c.update(fn) })
		// One at a time, so the queue (and the group) is in call order.
		for {
			c.mu.Lock()
			n := len(c.queue)
			c.mu.Unlock()
			if n == i+1 {
				break
			}
			runtime.Gosched() // the caller is on its way into the queue
		}
	}
	return func() { close(gate) }, func() []error { wg.Wait(); return errs }
}

func TestCommitterGroupsQueuedCallersInOneTransaction(t *testing.T) {
	c, db := openCommitter(t)
	var mu sync.Mutex
	seen := map[*bolt.Tx]int{}
	var calls []func(*bolt.Tx) error
	for i := range 20 {
		calls = append(calls, func(tx *bolt.Tx) error {
			mu.Lock()
			seen[tx]++
			mu.Unlock()
			return putKey(fmt.Sprint(i))(tx)
		})
	}
	release, results := holdLeader(t, c, calls...)
	release()
	for i, err := range results() {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !hasKey(t, db, fmt.Sprint(i)) {
			t.Fatalf("call %d's write is not committed", i)
		}
	}
	if len(seen) != 1 {
		t.Fatalf("20 queued callers ran in %d transactions, want 1", len(seen))
	}
}

func TestCommitterFailureRollsBackOnlyTheFailedCall(t *testing.T) {
	c, db := openCommitter(t)
	errRefused := errors.New("refused")
	runs := map[string]int{}
	var mu sync.Mutex
	counted := func(name string, fn func(*bolt.Tx) error) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { mu.Lock(); runs[name]++; mu.Unlock(); return fn(tx) }
	}
	// "bad" writes then fails: its write must not survive; the others commit.
	bad := counted("bad", func(tx *bolt.Tx) error {
		if err := putKey("bad")(tx); err != nil {
			return err
		}
		return errRefused
	})
	release, results := holdLeader(t, c, counted("a", putKey("a")), bad, counted("z", putKey("z")))
	release()
	errs := results()
	if !errors.Is(errs[1], errRefused) || errs[0] != nil || errs[2] != nil {
		t.Fatalf("results %v: want only the failing call to fail", errs)
	}
	if hasKey(t, db, "bad") || !hasKey(t, db, "a") || !hasKey(t, db, "z") {
		t.Fatal("the failed call's write was committed, or another call's was lost")
	}
	if runs["bad"] > 2 {
		t.Fatalf("the failing call ran %d times: at most once in the group and once alone", runs["bad"])
	}
}

func TestCommitterCallSeesEarlierGroupMatesWrites(t *testing.T) {
	c, db := openCommitter(t)
	// "second" needs "first"'s write. Both are queued behind a held leader,
	// so they share a group in queue order and second sees first's write.
	first := putKey("slot")
	second := func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("b")).Get([]byte("slot")) == nil {
			return errors.New("slot missing")
		}
		return putKey("after")(tx)
	}
	release, results := holdLeader(t, c, first, second)
	release()
	if errs := results(); errs[0] != nil || errs[1] != nil {
		t.Fatalf("results %v", errs)
	}
	if !hasKey(t, db, "slot") || !hasKey(t, db, "after") {
		t.Fatal("writes missing")
	}
}

func TestCommitterPanicIsRaisedInTheCallersGoroutine(t *testing.T) {
	c, db := openCommitter(t)
	recovered := make(chan any, 1)
	boom := func(*bolt.Tx) error { panic("boom") }
	release, results := holdLeader(t, c, putKey("ok"), putKey("ok2"))
	var wg sync.WaitGroup
	wg.Go(func() {
		defer func() { recovered <- recover() }()
		_ = c.update(boom)
	})
	release()
	wg.Wait()
	if errs := results(); errs[0] != nil || errs[1] != nil {
		t.Fatalf("the panic broke other callers: %v", errs)
	}
	if p := <-recovered; p != "boom" {
		t.Fatalf("recovered %v, want the panic value", p)
	}
	if !hasKey(t, db, "ok") {
		t.Fatal("a group mate's write was lost")
	}
}

func TestCommitterLoneCallerAndErrorsPassThrough(t *testing.T) {
	c, db := openCommitter(t)
	if err := c.update(putKey("k")); err != nil || !hasKey(t, db, "k") {
		t.Fatalf("lone commit: %v", err)
	}
	want := errors.New("no")
	if err := c.update(func(*bolt.Tx) error { return want }); !errors.Is(err, want) {
		t.Fatalf("error %v, want the function's own", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leading || len(c.queue) != 0 {
		t.Fatal("the committer did not go idle")
	}
}
