package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
)

func seqs(es []approvals.OutboxEntry) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func due(t *testing.T, s *Store, now time.Time, limit int) []uint64 {
	t.Helper()
	es, err := s.OutboxDue(context.Background(), now, limit)
	if err != nil {
		t.Fatalf("OutboxDue: %v", err)
	}
	return seqs(es)
}

// TestOutboxOrdering: sequence order overall, one entry per request, and a
// delayed entry holds back the later entries of its own request only.
func TestOutboxOrdering(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	notify(t, s,
		approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"},     // 1
		approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r2"},     // 2
		approvals.Notice{Kind: approvals.NoticeReply, RequestID: "r1"},    // 3
		approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r3"},     // 4
		approvals.Notice{Kind: approvals.NoticeAnnounce, RequestID: "r1"}, // 5
		approvals.Notice{Kind: approvals.NoticeReply, RequestID: "r2"},    // 6
	)
	now := t0()
	steps := []struct {
		name  string
		do    func() error
		now   time.Time
		limit int
		want  []uint64
	}{
		{"heads of each request", nil, now, 10, []uint64{1, 2, 4}},
		{"limit", nil, now, 2, []uint64{1, 2}},
		{"r1 root delayed holds back its reply, not other requests",
			func() error { return s.OutboxRetry(ctx, 1, 1, now.Add(time.Minute), "rate_limited") },
			now, 10, []uint64{2, 4}},
		{"delayed root due exactly at NotBefore", nil, now.Add(time.Minute), 10, []uint64{1, 2, 4}},
		{"root delivered: reply is next", func() error { return s.OutboxDone(ctx, 1) }, now, 10, []uint64{2, 3, 4}},
		{"r2 done", func() error { return s.OutboxDone(ctx, 2) }, now, 10, []uint64{3, 4, 6}},
		{"r1 reply and r3 done", func() error {
			if err := s.OutboxDone(ctx, 3); err != nil {
				return err
			}
			return s.OutboxDone(ctx, 4)
		}, now, 10, []uint64{5, 6}},
	}
	for _, st := range steps {
		if st.do != nil {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		if got := due(t, s, st.now, st.limit); !slices.Equal(got, st.want) {
			t.Errorf("%s: OutboxDue = %v, want %v", st.name, got, st.want)
		}
	}
	if n := depth(t, s); n != 2 {
		t.Errorf("OutboxDepth = %d, want 2", n)
	}
}

func TestOutboxNext(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if _, ok, err := s.OutboxNext(ctx); ok || err != nil {
		t.Fatalf("OutboxNext on empty outbox = ok %v, %v; want not ok", ok, err)
	}
	notify(t, s,
		approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"},  // 1
		approvals.Notice{Kind: approvals.NoticeReply, RequestID: "r1"}, // 2
		approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r2"},  // 3
	)
	check := func(name string, want time.Time) {
		t.Helper()
		at, ok, err := s.OutboxNext(ctx)
		if err != nil || !ok || !at.Equal(want) {
			t.Errorf("%s: OutboxNext = %v, %v, %v; want %v", name, at, ok, err, want)
		}
	}
	check("something due now", time.Time{})
	if err := s.OutboxRetry(ctx, 1, 1, t0().Add(5*time.Minute), "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxRetry(ctx, 3, 1, t0().Add(9*time.Minute), "x"); err != nil {
		t.Fatal(err)
	}
	// Entry 2 has no delay but waits behind entry 1, so it does not count.
	check("earliest head", t0().Add(5*time.Minute))
}

func TestOutboxRetryAndDone(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	notify(t, s, approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"})

	// One ASCII byte, then 2-byte runes: the cut at the even limit lands mid-rune.
	long := "x" + strings.Repeat("é", maxLastErrorLen)
	if err := s.OutboxRetry(ctx, 1, 4, t0(), long); err != nil {
		t.Fatalf("OutboxRetry: %v", err)
	}
	es, err := s.OutboxDue(ctx, t0(), 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("OutboxDue = %v, %v", es, err)
	}
	e := es[0]
	if e.Attempts != 4 || !e.NotBefore.Equal(t0()) {
		t.Errorf("entry = %+v, want 4 attempts, NotBefore %v", e, t0())
	}
	if len(e.LastError) > maxLastErrorLen || !utf8.ValidString(e.LastError) || !strings.HasPrefix(long, e.LastError) {
		t.Errorf("LastError is %d bytes (valid UTF-8: %v), want a valid prefix of at most %d", len(e.LastError), utf8.ValidString(e.LastError), maxLastErrorLen)
	}

	if err := s.OutboxRetry(ctx, 99, 1, t0(), "x"); !errors.Is(err, ErrNoOutboxEntry) {
		t.Errorf("OutboxRetry(missing) = %v, want ErrNoOutboxEntry", err)
	}
	for range 2 { // a confirmation repeated is harmless
		if err := s.OutboxDone(ctx, 1); err != nil {
			t.Fatalf("OutboxDone: %v", err)
		}
	}
	if n := depth(t, s); n != 0 {
		t.Errorf("depth = %d, want 0", n)
	}
	if _, err := s.OutboxDue(ctx, t0(), 0); err == nil {
		t.Error("OutboxDue with limit 0 succeeded")
	}
}

func TestNotifyRefusals(t *testing.T) {
	tests := []struct {
		name string
		n    approvals.Notice
		want string
	}{
		{"no kind", approvals.Notice{RequestID: "r1"}, "no kind"},
		{"no request", approvals.Notice{Kind: approvals.NoticeRoot}, "no request ID"},
		{"long request id", approvals.Notice{Kind: approvals.NoticeRoot, RequestID: strings.Repeat("r", maxKeyLen+1)}, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			var nerr error
			if err := s.Update(context.Background(), func(tx approvals.Tx) error {
				nerr = tx.Notify(tt.n)
				return nil
			}); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if nerr == nil || !strings.Contains(nerr.Error(), tt.want) {
				t.Errorf("Notify = %v, want it to mention %q", nerr, tt.want)
			}
			if n := depth(t, s); n != 0 {
				t.Errorf("refused notice stored: depth %d", n)
			}
			if signalled(s) {
				t.Error("refused notice signalled")
			}
		})
	}
}

// committedTxID is the ID of the last committed read-write transaction:
// bbolt numbers them one by one, so the difference between two readings is
// the number of commits in between (each one a pair of fsyncs in production).
func committedTxID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(btx *bolt.Tx) error { id = btx.ID(); return nil }); err != nil {
		t.Fatalf("read the committed transaction ID: %v", err)
	}
	return id
}

// queuedSeqs lists every outbox entry, due or not, in sequence order.
func queuedSeqs(t *testing.T, s *Store) []uint64 {
	t.Helper()
	out := []uint64{}
	err := s.db.View(func(btx *bolt.Tx) error {
		return btx.Bucket([]byte(bucketOutbox)).ForEach(func(k, _ []byte) error {
			out = append(out, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("list the outbox: %v", err)
	}
	return out
}

// TestOutboxDelivered: the message handle and the entry's removal commit
// together, in one commit, or (on any refusal) not at all; a handle never
// changes the request's state or its indexes.
func TestOutboxDelivered(t *testing.T) {
	setRoot := func(s *approvals.SlackRefs) { s.Channel, s.RootTS = "C2", "1700000000.000100" }
	setProgress := func(s *approvals.SlackRefs) { s.ProgressTS = "1700000000.000200" }
	// corrupt stores an undecodable request "r-bad" with a root notice (seq 5).
	corrupt := func(t *testing.T, s *Store) {
		t.Helper()
		if err := s.db.Update(func(btx *bolt.Tx) error {
			return btx.Bucket([]byte(bucketRequests)).Put([]byte("r-bad"), []byte("{"))
		}); err != nil {
			t.Fatal(err)
		}
		notify(t, s, approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r-bad"})
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	all := []uint64{1, 2, 3, 4}
	initial := approvals.SlackRefs{Channel: "C1"}
	tests := []struct {
		name    string
		ctx     context.Context
		setup   func(*testing.T, *Store)
		seq     uint64
		id      string
		refs    func(*approvals.SlackRefs)
		wantErr string // "" for success
		// wantQueued are the outbox entries left; wantR1/wantR2 the requests' handles.
		wantQueued     []uint64
		wantR1, wantR2 approvals.SlackRefs
		wantCommits    int
	}{
		{name: "root handle stored and entry removed", seq: 1, id: "r1", refs: setRoot,
			wantQueued: []uint64{2, 3, 4}, wantR1: approvals.SlackRefs{Channel: "C2", RootTS: "1700000000.000100"}, wantR2: initial, wantCommits: 1},
		{name: "progress handle on a finished request", seq: 3, id: "r2", refs: setProgress,
			wantQueued: []uint64{1, 2, 4}, wantR1: initial, wantR2: approvals.SlackRefs{Channel: "C1", ProgressTS: "1700000000.000200"}, wantCommits: 1},
		{name: "nil refs only removes the entry", seq: 2, id: "r1",
			wantQueued: []uint64{1, 3, 4}, wantR1: initial, wantR2: initial, wantCommits: 1},
		{name: "nil refs without a request ID (a dropped notice)", seq: 2,
			wantQueued: []uint64{1, 3, 4}, wantR1: initial, wantR2: initial, wantCommits: 1},
		{name: "request gone: entry removed, no request created", seq: 4, id: "r-gone", refs: setRoot,
			wantQueued: []uint64{1, 2, 3}, wantR1: initial, wantR2: initial, wantCommits: 1},
		{name: "entry already gone: handle applied again, not an error", seq: 99, id: "r1", refs: setRoot,
			wantQueued: all, wantR1: approvals.SlackRefs{Channel: "C2", RootTS: "1700000000.000100"}, wantR2: initial, wantCommits: 1},
		{name: "entry of another request refused", seq: 3, id: "r1", refs: setRoot, wantErr: "entry is for request r2, not r1",
			wantQueued: all, wantR1: initial, wantR2: initial},
		{name: "handle without a request ID refused", seq: 1, refs: setRoot, wantErr: "without a request ID",
			wantQueued: all, wantR1: initial, wantR2: initial},
		{name: "undecodable request keeps its entry queued", setup: corrupt, seq: 5, id: "r-bad", refs: setRoot, wantErr: "decode request r-bad",
			wantQueued: []uint64{1, 2, 3, 4, 5}, wantR1: initial, wantR2: initial},
		{name: "cancelled context changes nothing", ctx: cancelled, seq: 1, id: "r1", refs: setRoot, wantErr: context.Canceled.Error(),
			wantQueued: all, wantR1: initial, wantR2: initial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			r1 := newReq("r1", "api", "prod", approvals.StatePending, t0())
			r2 := newReq("r2", "api", "staging", approvals.StateSucceeded, t0())
			r1.Slack, r2.Slack = initial, initial
			put(t, s, r1, r2)
			notify(t, s,
				approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"},     // 1
				approvals.Notice{Kind: approvals.NoticeReply, RequestID: "r1"},    // 2
				approvals.Notice{Kind: approvals.NoticeProgress, RequestID: "r2"}, // 3
				approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r-gone"}, // 4
			)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			before := committedTxID(t, s)

			err := s.OutboxDelivered(ctx, tt.seq, tt.id, tt.refs)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("OutboxDelivered: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("OutboxDelivered = %v, want an error mentioning %q", err, tt.wantErr)
			}
			if n := committedTxID(t, s) - before; n != tt.wantCommits {
				t.Errorf("%d commits, want %d", n, tt.wantCommits)
			}
			if got := queuedSeqs(t, s); !slices.Equal(got, tt.wantQueued) {
				t.Errorf("outbox holds %v, want %v", got, tt.wantQueued)
			}
			// The handles changed and nothing else did: state, events, indexes.
			for _, want := range []struct {
				r     *approvals.Request
				slack approvals.SlackRefs
			}{{r1, tt.wantR1}, {r2, tt.wantR2}} {
				got, err := get(t, s, want.r.ID)
				if err != nil {
					t.Fatalf("Get(%s): %v", want.r.ID, err)
				}
				exp := *want.r
				exp.Slack = want.slack
				if !reflect.DeepEqual(got, &exp) {
					t.Errorf("request %s:\n got %+v\nwant %+v", want.r.ID, got, &exp)
				}
			}
			if _, err := get(t, s, "r-gone"); !errors.Is(err, approvals.ErrNotFound) {
				t.Errorf("Get(r-gone) = %v, want ErrNotFound: a handle must not create a request", err)
			}
			if a := activeFor(t, s, "api", "prod"); a != "r1" {
				t.Errorf("ActiveFor(api/prod) = %q, want r1", a)
			}
			if a := activeFor(t, s, "api", "staging"); a != "" {
				t.Errorf("ActiveFor(api/staging) = %q, want the finished request's slot to stay free", a)
			}
			if ids := openIDs(t, s); !slices.Equal(ids, []string{"r1"}) {
				t.Errorf("ListOpen = %v, want [r1]", ids)
			}
		})
	}
}
