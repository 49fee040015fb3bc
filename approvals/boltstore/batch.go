package boltstore

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroupCommit bounds how many callers' transactions share one bbolt
// commit, so one commit's work (and the time the last of them waits) stays
// bounded under any load.
const maxGroupCommit = 256

// committer is group commit for read-write transactions: callers that
// arrive while a commit is being written (and fsynced) wait, and the next
// commit runs all of them in one bbolt transaction, so N concurrent
// decisions cost one fsync instead of N. Unlike bbolt's DB.Batch it never
// delays a transaction: a lone caller commits at once, exactly as
// DB.Update would; grouping only happens when callers queue anyway.
//
// Semantics, the same as DB.Batch's:
//   - Functions in one group run one after another in one transaction, so
//     each sees the writes of those before it: the result is the same as
//     running them serially in that order.
//   - A function that returns an error (or panics) must not commit its
//     partial writes. The group's transaction is rolled back; the failed
//     function's error is final only when it ran first in its group (then it
//     saw nothing but committed state); otherwise it is run again alone.
//     The functions that had run before it in the group run again with the
//     rest. So a function may be called more than once, and must keep its
//     effects inside the transaction: results go to variables it assigns
//     (not accumulates), and only the last call's assignments count.
//   - A panic is re-raised in the caller's own goroutine.
type committer struct {
	db *bolt.DB

	mu sync.Mutex
	// leading is true while some caller is running a group.
	leading bool
	queue   []*commitCall
}

// commitCall is one caller's transaction waiting in the queue.
type commitCall struct {
	fn func(*bolt.Tx) error
	// done receives the outcome once: nil, fn's or bbolt's error,
	// errLead (this caller now runs the next group) or errSolo.
	done chan error
	// panicked holds what fn panicked with, re-raised by its caller.
	panicked any
}

// Signals on commitCall.done that are not outcomes.
var (
	errLead = errors.New("boltstore: lead the next group commit")
	errSolo = errors.New("boltstore: run the transaction alone")
)

func newCommitter(db *bolt.DB) *committer { return &committer{db: db} }

// update runs fn in a read-write transaction, grouped with concurrent callers.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	call := &commitCall{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	if c.leading {
		c.mu.Unlock()
		if err := <-call.done; err != errLead {
			return c.outcome(call, err)
		}
	} else {
		c.leading = true
		c.mu.Unlock()
	}
	// This caller leads: it takes everything queued (itself included, as
	// its call is still queued), commits it, and hands the lead to the
	// first caller that queued meanwhile.
	c.mu.Lock()
	n := min(len(c.queue), maxGroupCommit)
	group := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()
	c.run(group)
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- errLead
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return c.outcome(call, <-call.done)
}

// outcome turns what the group reported into the caller's result.
func (c *committer) outcome(call *commitCall, err error) error {
	if err == errSolo {
		call.panicked = nil
		err = c.db.Update(call.fn)
	}
	if call.panicked != nil {
		panic(call.panicked)
	}
	return err
}

// run commits group in as few transactions as its failures allow and
// reports every call's outcome on its done channel.
func (c *committer) run(group []*commitCall) {
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, call := range group {
				if err := safeCall(call, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		switch {
		case failed == 0:
			// It ran first: it saw only committed state, so its error is its answer.
			group[0].done <- err
			group = group[1:]
		case failed > 0:
			group[failed].done <- errSolo
			group = append(group[:failed:failed], group[failed+1:]...)
		default:
			// Committed (nil), or bbolt itself failed: the same for everyone.
			for _, call := range group {
				call.done <- err
			}
			return
		}
	}
}

// safeCall runs call.fn, turning a panic into an error (so the group rolls
// back) and keeping the panic value for the caller to re-raise.
func safeCall(call *commitCall, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			call.panicked = p
			err = errPanicked
		}
	}()
	return call.fn(tx)
}

var errPanicked = errors.New("boltstore: transaction function panicked")
