package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

func fu(name string, status executor.FollowUpStatus, due time.Time) executor.FollowUpRecord {
	return executor.FollowUpRecord{Name: name, Title: "T " + name, Status: status, DueAt: due}
}

func saveRun(t *testing.T, s *Store, run *executor.Run) {
	t.Helper()
	if err := s.SaveRun(context.Background(), run); err != nil {
		t.Fatalf("SaveRun(%s): %v", run.RequestID, err)
	}
}

func dueRefs(t *testing.T, s *Store, now time.Time) []executor.FollowUpRef {
	t.Helper()
	refs, err := s.DueFollowUps(context.Background(), now)
	if err != nil {
		t.Fatalf("DueFollowUps: %v", err)
	}
	return refs
}

func next(t *testing.T, s *Store) (time.Time, bool) {
	t.Helper()
	at, ok, err := s.NextFollowUp(context.Background())
	if err != nil {
		t.Fatalf("NextFollowUp: %v", err)
	}
	return at, ok
}

// indexSize counts the raw index entries.
func indexSize(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(btx *bolt.Tx) error {
		n = btx.Bucket([]byte(bucketFollowUps)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFollowUpIndexFollowsTheRun: only scheduled and running follow-ups are
// indexed, under their current DueAt; every SaveRun replaces the run's keys.
func TestFollowUpIndexFollowsTheRun(t *testing.T) {
	s := openTemp(t)
	put(t, s, newReq("r1", "api", "prod", approvals.StateSucceeded, t0()))
	h := time.Hour
	run := &executor.Run{RequestID: "r1", Phase: executor.PhaseDone, FollowUps: []executor.FollowUpRecord{
		fu("later", executor.FollowUpScheduled, t0().Add(24*h)),
		fu("soon", executor.FollowUpScheduled, t0().Add(h)),
		fu("interrupted", executor.FollowUpRunning, t0().Add(-time.Minute)),
		fu("done", executor.FollowUpDone, t0().Add(-h)),
		fu("failed", executor.FollowUpFailed, t0().Add(-h)),
		fu("cancelled", executor.FollowUpCancelled, t0().Add(-h)),
	}}
	saveRun(t, s, run)
	if n := indexSize(t, s); n != 3 {
		t.Fatalf("index holds %d keys, want 3 (scheduled and running only)", n)
	}
	if at, ok := next(t, s); !ok || !at.Equal(t0().Add(-time.Minute)) {
		t.Fatalf("NextFollowUp = %s, %v", at, ok)
	}
	want := []executor.FollowUpRef{
		{RequestID: "r1", Name: "interrupted", DueAt: t0().Add(-time.Minute)},
		{RequestID: "r1", Name: "soon", DueAt: t0().Add(h)},
	}
	if got := dueRefs(t, s, t0().Add(h)); !reflect.DeepEqual(got, want) {
		t.Fatalf("due at +1h = %+v, want %+v (inclusive bound)", got, want)
	}

	// scheduled → done removes its key; a postponed one moves.
	run.FollowUps[1].Status = executor.FollowUpDone
	run.FollowUps[2].Status = executor.FollowUpDone
	run.FollowUps[0].DueAt = t0().Add(30 * h)
	saveRun(t, s, run)
	if got := dueRefs(t, s, t0().Add(29*h)); len(got) != 0 {
		t.Fatalf("after done and postpone, due at +29h = %+v; want nothing", got)
	}
	if at, ok := next(t, s); !ok || !at.Equal(t0().Add(30*h)) || indexSize(t, s) != 1 {
		t.Fatalf("NextFollowUp = %s, %v with %d keys; want the postponed one alone", at, ok, indexSize(t, s))
	}

	// Saving the run again (progress) leaves the index as it is.
	saveRun(t, s, run)
	if indexSize(t, s) != 1 {
		t.Fatal("a repeated save duplicated or lost a key")
	}

	run.FollowUps[0].Status = executor.FollowUpCancelled
	saveRun(t, s, run)
	if _, ok := next(t, s); ok || indexSize(t, s) != 0 {
		t.Fatalf("index not empty after the last follow-up was cancelled (%d keys)", indexSize(t, s))
	}
}

// TestDueFollowUpsOrderAndBounds: due time first, then request ID and name;
// entries after now are not returned.
func TestDueFollowUpsOrderAndBounds(t *testing.T) {
	s := openTemp(t)
	at := func(m int) time.Time { return t0().Add(time.Duration(m) * time.Minute) }
	for _, id := range []string{"b", "a", "c"} {
		put(t, s, newReq(id, "api-"+id, "prod", approvals.StateSucceeded, t0()))
	}
	saveRun(t, s, &executor.Run{RequestID: "b", FollowUps: []executor.FollowUpRecord{fu("x", executor.FollowUpScheduled, at(10)), fu("w", executor.FollowUpScheduled, at(10))}})
	saveRun(t, s, &executor.Run{RequestID: "a", FollowUps: []executor.FollowUpRecord{fu("z", executor.FollowUpScheduled, at(10)), fu("y", executor.FollowUpScheduled, at(20))}})
	saveRun(t, s, &executor.Run{RequestID: "c", FollowUps: []executor.FollowUpRecord{fu("v", executor.FollowUpScheduled, at(5))}})

	ref := func(id, name string, m int) executor.FollowUpRef {
		return executor.FollowUpRef{RequestID: id, Name: name, DueAt: at(m)}
	}
	tests := []struct {
		name string
		now  time.Time
		want []executor.FollowUpRef
	}{
		{"before all", at(4), nil},
		{"exactly the first", at(5), []executor.FollowUpRef{ref("c", "v", 5)}},
		{"a nanosecond before the second group", at(10).Add(-1), []executor.FollowUpRef{ref("c", "v", 5)}},
		{"ties by request then name", at(10), []executor.FollowUpRef{ref("c", "v", 5), ref("a", "z", 10), ref("b", "w", 10), ref("b", "x", 10)}},
		{"all", at(60), []executor.FollowUpRef{ref("c", "v", 5), ref("a", "z", 10), ref("b", "w", 10), ref("b", "x", 10), ref("a", "y", 20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dueRefs(t, s, tt.now); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DueFollowUps(%s) = %+v\nwant %+v", tt.now, got, tt.want)
			}
		})
	}
	if at0, ok := next(t, s); !ok || !at0.Equal(at(5)) {
		t.Errorf("NextFollowUp = %s, %v; want %s", at0, ok, at(5))
	}
}

// TestFollowUpIndexIsAtomicWithTheRun: a refused SaveRun leaves the index as it was.
func TestFollowUpIndexIsAtomicWithTheRun(t *testing.T) {
	s := openTemp(t)
	put(t, s, newReq("r1", "api", "prod", approvals.StateSucceeded, t0()))
	run := &executor.Run{RequestID: "r1", FollowUps: []executor.FollowUpRecord{fu("x", executor.FollowUpScheduled, t0())}}
	saveRun(t, s, run)
	run.FollowUps[0].Status = executor.FollowUpDone
	if err := s.SaveRun(context.Background(), run, approvals.Notice{RequestID: "r1"}); err == nil {
		t.Fatal("SaveRun with a bad notice succeeded")
	}
	if got := dueRefs(t, s, t0()); len(got) != 1 {
		t.Fatalf("index after a refused SaveRun = %+v; want the scheduled entry kept", got)
	}
}

func TestSaveRunRefusesUnindexableFollowUps(t *testing.T) {
	s := openTemp(t)
	put(t, s, newReq("r1", "api", "prod", approvals.StateSucceeded, t0()))
	tests := []struct {
		name string
		fu   executor.FollowUpRecord
		want string // "" when accepted
	}{
		{"no name", fu("", executor.FollowUpScheduled, t0()), "has no name"},
		{"long name", fu(strings.Repeat("n", maxKeyLen+1), executor.FollowUpScheduled, t0()), "over the 512 byte limit"},
		{"not indexed", fu("", executor.FollowUpDone, t0()), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SaveRun(context.Background(), &executor.Run{RequestID: "r1", FollowUps: []executor.FollowUpRecord{tt.fu}})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "save run r1")):
				t.Fatalf("SaveRun = %v, want a refusal naming the run and %q", err, tt.want)
			}
		})
	}
}

func TestDueFollowUpsRejectsAMalformedKey(t *testing.T) {
	s := openTemp(t)
	if err := s.db.Update(func(btx *bolt.Tx) error {
		return btx.Bucket([]byte(bucketFollowUps)).Put(append(encodeSeq(1), "no-separator"...), []byte{})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DueFollowUps(context.Background(), t0()); err == nil || !strings.Contains(err.Error(), "no request ID") {
		t.Fatalf("DueFollowUps over a malformed key = %v", err)
	}
}

// TestFollowUpIndexPersists: the schedule is on disk, not in memory.
func TestFollowUpIndexPersists(t *testing.T) {
	path := statePath(t)
	s := openAt(t, path)
	put(t, s, newReq("r1", "api", "prod", approvals.StateSucceeded, t0()))
	saveRun(t, s, &executor.Run{RequestID: "r1", FollowUps: []executor.FollowUpRecord{fu("x", executor.FollowUpScheduled, t0())}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	if got := dueRefs(t, s, t0()); len(got) != 1 || got[0].RequestID != "r1" || !got[0].DueAt.Equal(t0()) {
		t.Fatalf("after reopen: %+v", got)
	}
}

// v1Buckets is the bucket list of a schema-1 file, as released.
func v1Buckets() []string {
	return []string{"requests", "open", "open_ids", "runs", "outbox"}
}

// TestMigrateSchema1To2 opens a file written with the schema-1 layout: it
// gains the follow-up index, keeps its data, and works as a new file does.
func TestMigrateSchema1To2(t *testing.T) {
	ctx := context.Background()
	path := statePath(t)
	req := newReq("r1", "api", "prod", approvals.StateRunning, t0())
	reqJSON, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// A schema-1 run: no follow_ups field existed.
	runJSON := []byte(`{"request_id":"r1","target":"api","phase":"forward","steps":[{"name":"mint","title":"Mint","status":"done"}],"facts":{"key_id":"k-1"}}`)
	writeRaw(t, path, func(tx *bolt.Tx) error {
		if err := metaWith(encodeSeq(1), v1Buckets()...)(tx); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("requests")).Put([]byte("r1"), reqJSON); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("open")).Put(openKey("api", "prod"), []byte("r1")); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("open_ids")).Put([]byte("r1"), []byte{}); err != nil {
			return err
		}
		return tx.Bucket([]byte("runs")).Put([]byte("r1"), runJSON)
	})

	s := openAt(t, path)
	var version uint64
	if err := s.db.View(func(btx *bolt.Tx) error {
		version = binary.BigEndian.Uint64(btx.Bucket([]byte(bucketMeta)).Get([]byte(keySchemaVersion)))
		if btx.Bucket([]byte(bucketFollowUps)) == nil {
			t.Error("migration did not create the follow-up index")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if version != 2 {
		t.Fatalf("schema version after migration = %d, want 2", version)
	}
	if got, err := get(t, s, "r1"); err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("request after migration = %+v, %v", got, err)
	}
	if ids := openIDs(t, s); len(ids) != 1 || ids[0] != "r1" || activeFor(t, s, "api", "prod") != "r1" {
		t.Fatalf("open indexes after migration: %v", ids)
	}
	run, err := s.LoadRun(ctx, "r1")
	if err != nil || run.Facts["key_id"] != "k-1" || len(run.FollowUps) != 0 {
		t.Fatalf("run after migration = %+v, %v", run, err)
	}
	if _, ok := next(t, s); ok {
		t.Fatal("a migrated file has follow-ups indexed")
	}
	// The old run is re-saved with a follow-up: the index works on a migrated file.
	run.FollowUps = []executor.FollowUpRecord{fu("x", executor.FollowUpScheduled, t0())}
	saveRun(t, s, run)
	if got := dueRefs(t, s, t0()); len(got) != 1 {
		t.Fatalf("index on a migrated file: %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openAt(t, path) // a migrated file opens as a current one
}

// TestMigrationRefusesAForeignFollowUpBucket: a schema-1 file that already
// has a "followups" bucket was not written by rotary; it is left untouched.
func TestMigrationRefusesAForeignFollowUpBucket(t *testing.T) {
	path := statePath(t)
	writeRaw(t, path, metaWith(encodeSeq(1), append(v1Buckets(), bucketFollowUps)...))
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true, LockTimeout: testLockTimeout})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open migrated a file with a foreign followups bucket")
	}
	if !strings.Contains(err.Error(), "migrate schema 1 → 2") {
		t.Errorf("error %q does not name the migration", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused file was modified")
	}
}
