package boltstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
)

// BenchmarkCommitConcurrent is BenchmarkCommit from 16 goroutines at once,
// as concurrent Slack requests commit: with fsync on, what it measures is
// how well concurrent commits share fsyncs (see committer).
func BenchmarkCommitConcurrent(b *testing.B) {
	s, err := Open(statePath(b), Options{LockTimeout: testLockTimeout})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(8) // × GOMAXPROCS goroutines
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("r%04d", n.Add(1))
		r := newReq(id, "target-"+id, "prod", approvals.StatePending, t0())
		notice := approvals.Notice{Kind: approvals.NoticeRoot, RequestID: id}
		for pb.Next() {
			if err := s.Update(ctx, func(tx approvals.Tx) error {
				if err := tx.Put(r); err != nil {
					return err
				}
				return tx.Notify(notice)
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
