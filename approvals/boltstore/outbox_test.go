package boltstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
