// Package boltstore is rotary's only persistence: one bbolt file that holds
// the rotation requests (approvals.Store), the executor's run journal
// (executor.Journal) and the durable Slack outbox. It is the only package in
// the module that imports bbolt.
//
// Bucket layout (schema version 2):
//
//	meta      "schema_version" → 8-byte big-endian uint64
//	requests  request ID → approvals.Request as JSON
//	open      target + "\x00" + env → request ID   (the one-active-per-target/env index)
//	open_ids  request ID → empty                  (the open set, so ListOpen never scans requests)
//	runs      request ID → executor.Run as JSON
//	outbox    8-byte big-endian sequence → approvals.OutboxEntry as JSON
//	followups 8-byte big-endian DueAt unix nanos + request ID + "\x00" + name → empty
//	          (schema 2: the follow-ups a run has scheduled or running, in due order)
//
// Rules this package keeps:
//   - Everything done through one Update commits together or not at all: a
//     request, its index entries and the notices it causes; a run and its
//     notices. A crash never leaves a decision without its message.
//   - SaveRun keeps the follow-up index in step with the run it writes, in
//     the same transaction, so a schedule can never be lost or run twice
//     because the index and the journal disagree.
//   - Tx.Put keeps both indexes in step with the request's state and refuses
//     to let a second open request take a target/env slot that is held, even
//     if the caller forgot to check ActiveFor (defence in depth for the
//     one-active rule).
//   - Only secret-free JSON is stored. The stored types hold no secret by
//     design (answers to prompts and secret values are never part of them);
//     this package adds nothing of its own.
//   - The file carries a schema version. A file written by a newer rotary, or
//     a file with buckets but no version, is refused untouched rather than
//     rewritten by a binary that does not understand it.
//   - A delivered message's Slack handle and the removal of its outbox
//     entry commit together (OutboxDelivered): one commit per message, and
//     after a crash the two never disagree.
//   - The outbox is delivered in sequence order per request: a later notice
//     for a request is never handed out while an earlier one is pending, so a
//     thread reply cannot overtake the root message it hangs off.
//   - A second process opening the same file fails after LockTimeout with a
//     clear error instead of hanging on the file lock.
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// SchemaVersion is the on-disk layout this build reads and writes. Bump it
// only together with a migration in schemaMigrations.
const SchemaVersion uint64 = 2

const (
	// DefaultLockTimeout is how long Open waits for another process to release
	// the file lock. Long enough to ride out a rolling restart's overlap, short
	// enough that a real second instance fails fast with a clear message.
	DefaultLockTimeout = 2 * time.Second

	// slowCommitThreshold: a transaction slower than this is logged, because
	// every Slack interaction waits on a commit and a slow disk shows up here first.
	slowCommitThreshold = time.Second

	// fileMode: the state file names people and targets; only rotary reads it.
	fileMode = 0o600

	// maxKeyLen bounds IDs, targets and envs used as keys. Real values are
	// short; the bound keeps a malformed caller from writing huge keys.
	maxKeyLen = 512

	// maxLastErrorLen bounds OutboxEntry.LastError so a chatty transport
	// error cannot grow the file without limit.
	maxLastErrorLen = 1024
)

const (
	bucketMeta     = "meta"
	bucketRequests = "requests"
	bucketOpen     = "open"
	bucketOpenIDs  = "open_ids"
	bucketRuns     = "runs"
	bucketOutbox   = "outbox"
	// bucketFollowUps is schema 2's index of due follow-ups (followups.go).
	bucketFollowUps = "followups"
	// bucketReviews (reviews.go) and bucketLatest (latest.go) are schema 2's
	// indexes of unreviewed break-glass rotations and of each target's
	// latest finished rotation.
	bucketReviews = "reviews"
	bucketLatest  = "latest"

	keySchemaVersion = "schema_version"
)

// dataBuckets are the buckets every file of the current schema has besides meta.
func dataBuckets() []string {
	return []string{bucketRequests, bucketOpen, bucketOpenIDs, bucketRuns, bucketOutbox, bucketFollowUps, bucketReviews, bucketLatest}
}

// migration upgrades a file from schema From to From+1 inside the Open
// transaction, so a crash mid-migration leaves the old file intact.
type migration struct {
	From  uint64
	Name  string
	Apply func(tx *bolt.Tx) error
}

// schemaMigrations lists the upgrades in order. To change the layout: bump
// SchemaVersion, append {From: SchemaVersion-1, ...} here, and test it against
// a file written by the previous version. Never edit a released migration.
func schemaMigrations() []migration {
	return []migration{
		{From: 1, Name: "add the follow-up, review and latest-rotation indexes", Apply: func(tx *bolt.Tx) error {
			// Follow-ups and reviews start empty, which is correct: schema-1
			// runs and requests cannot hold them, the fields did not exist.
			// A bucket already there means a file this build did not write;
			// CreateBucket refuses it.
			for _, name := range []string{bucketFollowUps, bucketReviews, bucketLatest} {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			return backfillLatest(tx)
		}},
	}
}

// Options configure Open.
type Options struct {
	// Now is the clock used to time commits. Defaults to time.Now.
	Now func() time.Time
	// NoSync skips fsync on commit. Tests and benchmarks only: production must
	// fsync, or a crash can lose an approval that Slack already showed.
	NoSync bool
	// LockTimeout overrides DefaultLockTimeout (tests use a short one).
	LockTimeout time.Duration
	// Log receives operational messages. Defaults to a discarding logger.
	Log *slog.Logger
}

// LockedError is returned by Open when another process holds the state file.
type LockedError struct {
	Path   string
	Waited time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("state file %s is locked by another rotary process (gave up after %s)", e.Path, e.Waited)
}

// Unwrap exposes bbolt's timeout error for callers that test for it.
func (e *LockedError) Unwrap() error { return bolterrors.ErrTimeout }

// Store is the bbolt-backed store. It is safe for concurrent use; bbolt
// serialises writers and lets readers run alongside them.
type Store struct {
	db *bolt.DB
	// commits groups concurrent read-write transactions into one fsync (batch.go).
	commits *committer
	path    string
	now     func() time.Time
	log     *slog.Logger
	signal  chan struct{}
}

// Compile-time proof that Store is what the service and the executor need.
var (
	_ approvals.Store  = (*Store)(nil)
	_ executor.Journal = (*Store)(nil)
)

// Open opens or creates the state file at path, checks its schema version and
// creates the buckets of a new file.
func Open(path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, fileMode, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, &LockedError{Path: path, Waited: opts.LockTimeout}
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	var version uint64
	err = db.Update(func(tx *bolt.Tx) error {
		v, err := prepareSchema(tx)
		version = v
		return err
	})
	if err != nil {
		// The refused file stays untouched: the transaction above rolled back.
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	s := &Store{db: db, commits: newCommitter(db), path: path, now: opts.Now, log: opts.Log, signal: make(chan struct{}, 1)}
	s.log.Info("state file opened", "path", path, "schema_version", version, "fsync", !opts.NoSync)
	return s, nil
}

// prepareSchema initialises a new file, or checks and migrates an existing
// one. It returns the version the file is at afterwards.
func prepareSchema(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		var found []string
		if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			found = append(found, string(name))
			return nil
		}); err != nil {
			return 0, fmt.Errorf("list buckets: %w", err)
		}
		if len(found) > 0 {
			return 0, fmt.Errorf("file has buckets %q but no schema version; refusing to use a file rotary did not create", found)
		}
		return SchemaVersion, createSchema(tx)
	}
	raw := meta.Get([]byte(keySchemaVersion))
	if len(raw) != 8 {
		return 0, fmt.Errorf("schema version is missing or malformed (%d bytes); refusing to use the file", len(raw))
	}
	v := binary.BigEndian.Uint64(raw)
	if v > SchemaVersion {
		return v, fmt.Errorf("schema version %d was written by a newer rotary (this build understands up to %d); refusing to open so this binary cannot damage it", v, SchemaVersion)
	}
	for v < SchemaVersion {
		m, ok := findMigration(v)
		if !ok {
			return v, fmt.Errorf("no migration from schema version %d to %d", v, SchemaVersion)
		}
		if err := m.Apply(tx); err != nil {
			return v, fmt.Errorf("migrate schema %d → %d (%s): %w", v, v+1, m.Name, err)
		}
		v++
		if err := meta.Put([]byte(keySchemaVersion), encodeSeq(v)); err != nil {
			return v, fmt.Errorf("record schema version %d: %w", v, err)
		}
	}
	for _, name := range dataBuckets() {
		if tx.Bucket([]byte(name)) == nil {
			return v, fmt.Errorf("bucket %q is missing from a schema %d file; the file is damaged", name, v)
		}
	}
	return v, nil
}

func findMigration(from uint64) (migration, bool) {
	for _, m := range schemaMigrations() {
		if m.From == from {
			return m, true
		}
	}
	return migration{}, false
}

func createSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket([]byte(bucketMeta))
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
	}
	if err := meta.Put([]byte(keySchemaVersion), encodeSeq(SchemaVersion)); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	for _, name := range dataBuckets() {
		if _, err := tx.CreateBucket([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// Close closes the file and releases its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

// encodeSeq is the 8-byte big-endian form used for outbox keys and the
// schema version: big-endian so bbolt's byte order is numeric order.
func encodeSeq(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// bucket returns a bucket that Open guaranteed exists.
func bucket(btx *bolt.Tx, name string) (*bolt.Bucket, error) {
	b := btx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("bucket %q missing", name)
	}
	return b, nil
}

// errMode says how update and view report an error the callback returned.
type errMode int

const (
	// wrapFnErr: the callback is this package's own; prefix its error with op.
	wrapFnErr errMode = iota
	// passFnErr: the callback is the caller's (Update, View); its error
	// already carries the caller's context and is returned unchanged.
	passFnErr
)

// update runs fn in a read-write transaction. ctx is checked before the
// transaction and again once bbolt's writer lock is held, so a caller that
// gave up while queued behind another writer does not commit. Context and
// bbolt errors are always prefixed with op; fn's error per mode.
func (s *Store) update(ctx context.Context, op string, mode errMode, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	t := &tx{writable: true}
	var fnErr error
	start := s.now()
	err := s.commits.update(func(btx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		t.btx, t.notified, t.slots = btx, 0, nil
		fnErr = fn(t)
		return fnErr
	})
	t.done = true
	if err != nil {
		return opError(op, mode, fnErr, err)
	}
	if d := s.now().Sub(start); d > slowCommitThreshold {
		s.log.WarnContext(ctx, "slow state file commit", "op", op, "duration", d)
	}
	if t.notified > 0 {
		s.wake()
	}
	return nil
}

// view runs fn in a read-only transaction; see update for error handling.
func (s *Store) view(ctx context.Context, op string, mode errMode, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	t := &tx{}
	var fnErr error
	err := s.db.View(func(btx *bolt.Tx) error {
		t.btx = btx
		fnErr = fn(t)
		return fnErr
	})
	t.done = true
	if err != nil {
		return opError(op, mode, fnErr, err)
	}
	return nil
}

func opError(op string, mode errMode, fnErr, err error) error {
	if fnErr != nil && mode == passFnErr {
		return fnErr
	}
	return fmt.Errorf("%s: %w", op, err)
}

// wake signals OutboxSignal without blocking: one pending signal is enough
// to make the deliverer look, however many commits happened meanwhile.
func (s *Store) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}
