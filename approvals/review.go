package approvals

import (
	"context"
	"fmt"
	"slices"
)

// Review records the second person's after-the-fact acknowledgement of a
// break-glass rotation. The reviewer must be allowed to decide the request
// (approvers, plus responders for an emergency) and must not be its
// requester: break-glass defers the two-person rule, it does not drop it.
// It may happen in any state: the rotation may still be running or done.
func (s *Service) Review(ctx context.Context, id, user string) (*Request, error) {
	groups, err := s.groupsFor(ctx, id, user)
	if err != nil {
		return nil, err
	}
	var out *Request
	err = s.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Get(id)
		if err != nil {
			return err
		}
		if !r.BreakGlass || r.Review == nil {
			return ErrNoReview
		}
		if r.Review.By != "" {
			return &AlreadyReviewedError{ID: r.ID, By: r.Review.By}
		}
		if user == r.Requester {
			return ErrSelfReview
		}
		set, err := s.policy.deciders(r)
		if err != nil {
			return err
		}
		if !set.Allows(user, groups) {
			return ErrNotApprover
		}
		now := s.now()
		r.Review.By, r.Review.At = user, now
		r.Events = append(r.Events, Event{At: now, Actor: user, Action: EventReviewed})
		if err := tx.Put(r); err != nil {
			return err
		}
		out = r
		for _, n := range []Notice{
			{Kind: NoticeRoot, RequestID: r.ID, Event: EventReviewed, Actor: user},
			{Kind: NoticeReply, RequestID: r.ID, Event: EventReviewed, Actor: user},
		} {
			if err := tx.Notify(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("review request %s: %w", id, err)
	}
	s.log.InfoContext(ctx, "break-glass rotation reviewed", "request_id", out.ID, "target", out.Target, "reviewer", user)
	return out, nil
}

// EscalateOverdueReviews re-notifies, channel-wide, every break-glass
// rotation whose review deadline passed without a review, and sets the next
// deadline. After MaxEscalations it stops re-notifying (the request keeps
// showing "not reviewed" in status and the audit export). It returns how
// many requests it escalated.
func (s *Service) EscalateOverdueReviews(ctx context.Context) (int, error) {
	waiting, err := s.store.ListUnreviewed(ctx)
	if err != nil {
		return 0, fmt.Errorf("list unreviewed requests: %w", err)
	}
	bg := s.policy.Emergency.BreakGlass
	n := 0
	now := s.now()
	for _, r := range waiting {
		if r.Review == nil || now.Before(r.Review.DueAt) || r.Review.Escalations >= bg.MaxEscalations {
			continue
		}
		// The store may run fn more than once (group commit): count after it committed.
		escalated := false
		err := s.store.Update(ctx, func(tx Tx) error {
			escalated = false
			cur, err := tx.Get(r.ID)
			if err != nil {
				return err
			}
			// Re-checked inside the transaction: a review may have won the race.
			if cur.Review == nil || cur.Review.By != "" || now.Before(cur.Review.DueAt) || cur.Review.Escalations >= bg.MaxEscalations {
				return nil
			}
			cur.Review.Escalations++
			cur.Review.DueAt = now.Add(bg.ReviewWithin)
			cur.Events = append(cur.Events, Event{At: now, Action: EventReviewOverdue,
				Detail: fmt.Sprintf("escalation %d of %d", cur.Review.Escalations, bg.MaxEscalations)})
			if err := tx.Put(cur); err != nil {
				return err
			}
			escalated = true
			for _, no := range []Notice{
				{Kind: NoticeRoot, RequestID: cur.ID, Event: EventReviewOverdue},
				{Kind: NoticeAlert, RequestID: cur.ID, Event: EventReviewOverdue},
				{Kind: NoticeAnnounce, RequestID: cur.ID, Event: EventReviewOverdue},
			} {
				if err := tx.Notify(no); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("escalate review of %s: %w", r.ID, err)
		}
		if !escalated {
			continue
		}
		n++
		s.log.WarnContext(ctx, "break-glass review overdue: escalated", "request_id", r.ID, "target", r.Target)
	}
	return n, nil
}

// MayManage reports (nil) whether user may act on r's scheduled follow-ups
// (run now, postpone): its requester, or anyone who may decide it. The
// request's identity fields never change after Open, and the policy is
// fixed for the process, so checking outside the follow-up's own journal
// transaction cannot be raced.
func (s *Service) MayManage(ctx context.Context, id, user string) error {
	r, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if user == r.Requester {
		return nil
	}
	set, err := s.policy.deciders(r)
	if err != nil {
		return err
	}
	if slices.Contains(set.Users, user) {
		return nil
	}
	groups, err := s.groupsFor(ctx, id, user)
	if err != nil {
		return err
	}
	if set.Allows(user, groups) {
		return nil
	}
	return ErrNotParticipant
}

// EscalationTargets are mentioned in an overdue-review alert.
func (s *Service) EscalationTargets() Approvers { return s.policy.Emergency.BreakGlass.EscalateTo }
