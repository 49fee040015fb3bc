package boltstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
)

// BenchmarkCommit measures the cost of one decision as production pays it:
// one Put and one Notify in a transaction, with fsync on.
func BenchmarkCommit(b *testing.B) {
	s, err := Open(statePath(b), Options{LockTimeout: testLockTimeout})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	r := newReq("r1", "api", "prod", approvals.StatePending, t0())
	n := approvals.Notice{Kind: approvals.NoticeRoot, RequestID: "r1"}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(ctx, func(tx approvals.Tx) error {
			if err := tx.Put(r); err != nil {
				return err
			}
			return tx.Notify(n)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListOpen lists 100 open requests among 1000 stored.
func BenchmarkListOpen(b *testing.B) {
	s := openTemp(b)
	var reqs []*approvals.Request
	for i := range 1000 {
		state := approvals.StateSucceeded
		if i%10 == 0 {
			state = approvals.StatePending
		}
		reqs = append(reqs, newReq(fmt.Sprintf("r%04d", i), fmt.Sprintf("t%04d", i), "prod", state, t0()))
	}
	put(b, s, reqs...)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rs, err := s.ListOpen(ctx)
		if err != nil || len(rs) != 100 {
			b.Fatalf("ListOpen = %d, %v", len(rs), err)
		}
	}
}
