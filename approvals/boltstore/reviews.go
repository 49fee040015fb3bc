package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/aivo-platform/rotary/approvals"
)

// bucketReviews indexes break-glass requests still waiting for their
// after-the-fact review (key: request ID). They are usually finished, so the
// open index does not find them, and the sweeper must not scan every request.

// indexReview keeps bucketReviews in step with r inside Put's transaction.
func indexReview(btx *bolt.Tx, r *approvals.Request) error {
	waiting := r.BreakGlass && r.Review != nil && r.Review.By == ""
	b, err := bucket(btx, bucketReviews)
	if err != nil {
		return err
	}
	if waiting {
		if err := b.Put([]byte(r.ID), []byte{}); err != nil {
			return fmt.Errorf("index review: %w", err)
		}
		return nil
	}
	if err := b.Delete([]byte(r.ID)); err != nil {
		return fmt.Errorf("unindex review: %w", err)
	}
	return nil
}

// ListUnreviewed returns the break-glass requests whose review is still
// outstanding, in ID order.
func (s *Store) ListUnreviewed(ctx context.Context) ([]*approvals.Request, error) {
	var out []*approvals.Request
	err := s.view(ctx, "list unreviewed requests", wrapFnErr, func(t *tx) error {
		b, err := bucket(t.btx, bucketReviews)
		if err != nil {
			return err
		}
		reqs, err := bucket(t.btx, bucketRequests)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, _ []byte) error {
			r, err := getRequest(reqs, string(k))
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}
