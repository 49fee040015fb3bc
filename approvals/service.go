package approvals

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Directory resolves a user's group memberships (Slack user groups). It is
// called before the transaction, never inside it: the transaction only checks
// the answer, so no network call ever holds the database lock.
type Directory interface {
	GroupsOf(ctx context.Context, user string) ([]string, error)
}

// Starter is told that a request was approved, so the executor can pick it
// up at once. It must not block. A missed signal is harmless: the executor
// also finds approved requests when it starts.
type Starter interface {
	Wake(id string)
}

// Service applies requests and decisions under the Policy.
type Service struct {
	store   Store
	policy  Policy
	dir     Directory
	starter Starter
	now     func() time.Time
	newID   func() string
	log     *slog.Logger
}

// Deps are the Service's collaborators. Dir and Starter may be nil.
type Deps struct {
	Store   Store
	Policy  Policy
	Dir     Directory
	Starter Starter
	Now     func() time.Time
	NewID   func() string
	Log     *slog.Logger
}

// NewService builds a Service.
func NewService(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: d.Store, policy: d.Policy, dir: d.Dir, starter: d.Starter, now: d.Now, newID: d.NewID, log: d.Log}
}

// Policy returns the policy the service enforces.
func (s *Service) Policy() Policy { return s.policy }

// OpenInput is a new request as typed by a user.
type OpenInput struct {
	Target    string
	Env       string
	Reason    string
	Requester string
	Emergency bool
	// RollbackOf asks to restore what a finished request replaced; Target
	// and Env are then taken from that request.
	RollbackOf string
	// Channel is where the root message goes (opaque to this package).
	Channel string
}

// Open creates a pending request, unless the target already has an open one.
// An emergency request needs a reason, waits only the emergency TTL, alerts
// the whole channel, and starts at once (approved by break-glass) when the
// requester is a named break-glass responder.
func (s *Service) Open(ctx context.Context, in OpenInput) (*Request, error) {
	if in.RollbackOf != "" {
		orig, err := s.Get(ctx, in.RollbackOf)
		if err != nil {
			return nil, err
		}
		in.Target, in.Env, in.Emergency = orig.Target, orig.Env, false
	}
	if in.Env == "" {
		in.Env = s.policy.DefaultEnv
	}
	if _, err := s.policy.approversFor(in.Target, in.Env); err != nil {
		return nil, err
	}
	if in.Emergency && in.Reason == "" {
		return nil, ErrEmergencyReason
	}
	if s.policy.RequireReason && in.Reason == "" {
		return nil, ErrReasonRequired
	}
	now := s.now()
	r := &Request{
		ID:         s.newID(),
		Target:     in.Target,
		Kind:       s.policy.Targets[in.Target].Kind,
		Env:        in.Env,
		Reason:     in.Reason,
		Requester:  in.Requester,
		Emergency:  in.Emergency,
		RollbackOf: in.RollbackOf,
		State:      StatePending,
		CreatedAt:  now,
		ExpiresAt:  now.Add(s.policy.ttl(in.Emergency)),
		Slack:      SlackRefs{Channel: in.Channel},
		Events:     []Event{{At: now, Actor: in.Requester, Action: EventRequested, Detail: in.Reason}},
	}
	if in.RollbackOf != "" {
		r.Events[0].Action = EventRollbackOpened
		r.Events[0].Detail = joinDetail("rollback of "+in.RollbackOf, in.Reason)
	}
	notices := []Notice{{Kind: NoticeRoot, RequestID: r.ID, Event: EventRequested, Actor: r.Requester}}
	if r.Emergency {
		// Channel-wide, in the request channel and the announcement channel.
		notices = append(notices,
			Notice{Kind: NoticeAlert, RequestID: r.ID, Event: EventEmergency, Actor: r.Requester},
			Notice{Kind: NoticeAnnounce, RequestID: r.ID, Event: EventEmergency, Actor: r.Requester})
		if s.policy.mayBreakGlass(r.Requester) {
			bg := s.policy.Emergency.BreakGlass
			if err := r.transition(StateApproved, now, r.Requester, "break-glass: started without approval; a second person must review it"); err != nil {
				return nil, err
			}
			r.BreakGlass = true
			r.DecidedBy, r.DecidedAt = r.Requester, now
			r.Review = &Review{DueAt: now.Add(bg.ReviewWithin)}
			notices = append(notices, Notice{Kind: NoticeReply, RequestID: r.ID, Event: EventBreakGlass, Actor: r.Requester})
		}
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		if r.RollbackOf != "" {
			orig, err := tx.Get(r.RollbackOf)
			if err != nil {
				return err
			}
			if orig.State.Open() {
				return &StillOpenError{ID: orig.ID, State: orig.State}
			}
			if orig.RollbackOf != "" {
				return ErrRollbackOfRollback
			}
			latest, err := tx.LatestFinished(orig.Target, orig.Env)
			if err != nil {
				return err
			}
			if latest != "" && latest != orig.ID {
				return &SupersededError{ID: orig.ID, Latest: latest}
			}
		}
		active, err := tx.ActiveFor(r.Target, r.Env)
		if err != nil {
			return err
		}
		if active != "" {
			other, err := tx.Get(active)
			if err != nil {
				return err
			}
			return &ActiveExistsError{Target: r.Target, Env: r.Env, ID: active, State: other.State}
		}
		if err := tx.Put(r); err != nil {
			return err
		}
		for _, n := range notices {
			if err := tx.Notify(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open request for %s/%s: %w", in.Target, in.Env, err)
	}
	s.log.InfoContext(ctx, "request opened", "request_id", r.ID, "target", r.Target, "env", r.Env, "requester", r.Requester,
		"emergency", r.Emergency, "break_glass", r.BreakGlass, "rollback_of", r.RollbackOf)
	if r.State == StateApproved && s.starter != nil {
		s.starter.Wake(r.ID)
	}
	return r, nil
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// Approve records a second person's approval. The policy is checked inside
// the transaction against the stored request, never against anything the
// caller sent besides who they are.
func (s *Service) Approve(ctx context.Context, id, approver string) (*Request, error) {
	groups, err := s.groupsFor(ctx, id, approver)
	if err != nil {
		return nil, err
	}
	r, err := s.decide(ctx, id, func(r *Request, now time.Time) error {
		if approver == r.Requester {
			return ErrSelfApproval
		}
		set, err := s.policy.deciders(r)
		if err != nil {
			return err
		}
		if !set.Allows(approver, groups) {
			return ErrNotApprover
		}
		return r.transition(StateApproved, now, approver, "")
	}, approver, "")
	if err != nil {
		return nil, err
	}
	if s.starter != nil {
		s.starter.Wake(r.ID)
	}
	return r, nil
}

// Deny records a refusal with its reason. Only an approver may deny.
func (s *Service) Deny(ctx context.Context, id, approver, reason string) (*Request, error) {
	if reason == "" {
		return nil, ErrReasonRequired
	}
	groups, err := s.groupsFor(ctx, id, approver)
	if err != nil {
		return nil, err
	}
	return s.decide(ctx, id, func(r *Request, now time.Time) error {
		set, err := s.policy.deciders(r)
		if err != nil {
			return err
		}
		// The requester may withdraw with cancel; deny is the approvers' word.
		if approver == r.Requester || !set.Allows(approver, groups) {
			return ErrNotApprover
		}
		r.DenyReason = reason
		return r.transition(StateDenied, now, approver, reason)
	}, approver, reason)
}

// Cancel withdraws a pending request. Only its requester may.
func (s *Service) Cancel(ctx context.Context, id, user string) (*Request, error) {
	return s.decide(ctx, id, func(r *Request, now time.Time) error {
		if user != r.Requester {
			return ErrNotRequester
		}
		return r.transition(StateCancelled, now, user, "")
	}, user, "")
}

// decide runs check on a pending request inside one transaction and, if it
// passes, stores the decision with its notices.
func (s *Service) decide(ctx context.Context, id string, check func(*Request, time.Time) error, actor, detail string) (*Request, error) {
	var out *Request
	err := s.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Get(id)
		if err != nil {
			return err
		}
		now := s.now()
		if r.State != StatePending {
			return &NotPendingError{ID: r.ID, State: r.State, By: r.DecidedBy}
		}
		if !now.Before(r.ExpiresAt) {
			// Expired but not yet swept: expire it here so the answer is true.
			if err := s.expire(tx, r, now); err != nil {
				return err
			}
			out = r
			return nil
		}
		if err := check(r, now); err != nil {
			return err
		}
		r.DecidedBy, r.DecidedAt = actor, now
		if err := tx.Put(r); err != nil {
			return err
		}
		out = r
		return notifyDecision(tx, r, actor)
	})
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", id, err)
	}
	if out.State == StateExpired {
		return nil, fmt.Errorf("request %s: %w", id, &NotPendingError{ID: id, State: StateExpired})
	}
	s.log.InfoContext(ctx, "request decided", "request_id", out.ID, "target", out.Target, "state", out.State, "actor", actor)
	return out, nil
}

func notifyDecision(tx Tx, r *Request, actor string) error {
	for _, n := range []Notice{
		{Kind: NoticeRoot, RequestID: r.ID, Event: string(r.State), Actor: actor},
		{Kind: NoticeReply, RequestID: r.ID, Event: string(r.State), Actor: actor},
	} {
		if err := tx.Notify(n); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) expire(tx Tx, r *Request, now time.Time) error {
	if err := r.transition(StateExpired, now, "", ""); err != nil {
		return err
	}
	r.DecidedAt = now
	if err := tx.Put(r); err != nil {
		return err
	}
	return notifyDecision(tx, r, "")
}

// ExpireDue expires every pending request whose TTL has passed and returns how many.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	open, err := s.store.ListOpen(ctx)
	if err != nil {
		return 0, fmt.Errorf("list open requests: %w", err)
	}
	n := 0
	now := s.now()
	for _, r := range open {
		if r.State != StatePending || now.Before(r.ExpiresAt) {
			continue
		}
		// The store may run fn more than once (group commit): count after it committed.
		expired := false
		err := s.store.Update(ctx, func(tx Tx) error {
			cur, err := tx.Get(r.ID)
			if err != nil {
				return err
			}
			// Re-checked inside the transaction: an approval may have won the race.
			if expired = cur.State == StatePending && !now.Before(cur.ExpiresAt); !expired {
				return nil
			}
			return s.expire(tx, cur, now)
		})
		if err != nil {
			return n, fmt.Errorf("expire %s: %w", r.ID, err)
		}
		if !expired {
			continue
		}
		n++
		s.log.InfoContext(ctx, "request expired", "request_id", r.ID, "target", r.Target)
	}
	return n, nil
}

// Get returns one request.
func (s *Service) Get(ctx context.Context, id string) (*Request, error) {
	var out *Request
	err := s.store.View(ctx, func(tx Tx) error {
		r, err := tx.Get(id)
		out = r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", id, err)
	}
	return out, nil
}

// ListOpen returns the open requests.
func (s *Service) ListOpen(ctx context.Context) ([]*Request, error) {
	rs, err := s.store.ListOpen(ctx)
	if err != nil {
		return nil, fmt.Errorf("list open requests: %w", err)
	}
	return rs, nil
}

// MarkRunning moves an approved request to running (the executor's claim).
// It reports false, without error, when the request is already running: that
// is a resume, not a second start.
func (s *Service) MarkRunning(ctx context.Context, id string) (*Request, bool, error) {
	var out *Request
	started := false
	err := s.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Get(id)
		if err != nil {
			return err
		}
		out = r
		if r.State == StateRunning {
			return nil
		}
		now := s.now()
		if err := r.transition(StateRunning, now, "", ""); err != nil {
			return err
		}
		r.StartedAt = now
		started = true
		if err := tx.Put(r); err != nil {
			return err
		}
		for _, n := range []Notice{
			{Kind: NoticeRoot, RequestID: r.ID, Event: string(StateRunning)},
			{Kind: NoticeAnnounce, RequestID: r.ID, Event: string(StateRunning)},
		} {
			if err := tx.Notify(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("start request %s: %w", id, err)
	}
	return out, started, nil
}

// Finish records a running request's outcome: succeeded, failed or rolled_back.
func (s *Service) Finish(ctx context.Context, id string, to State, outcome string) (*Request, error) {
	var out *Request
	err := s.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Get(id)
		if err != nil {
			return err
		}
		now := s.now()
		if err := r.transition(to, now, "", outcome); err != nil {
			return err
		}
		r.FinishedAt, r.Outcome = now, outcome
		out = r
		if err := tx.Put(r); err != nil {
			return err
		}
		notices := []Notice{
			{Kind: NoticeRoot, RequestID: r.ID, Event: string(to)},
			{Kind: NoticeReply, RequestID: r.ID, Event: string(to)},
			{Kind: NoticeAnnounce, RequestID: r.ID, Event: string(to)},
		}
		if r.Emergency {
			// The thread of an emergency ends with its incident timeline.
			notices = append(notices, Notice{Kind: NoticeReply, RequestID: r.ID, Event: EventTimeline})
		}
		for _, n := range notices {
			if err := tx.Notify(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish request %s: %w", id, err)
	}
	return out, nil
}

// groupsFor resolves the actor's groups only when the target's policy uses groups.
func (s *Service) groupsFor(ctx context.Context, id, user string) ([]string, error) {
	if s.dir == nil {
		return nil, nil
	}
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	set, err := s.policy.deciders(r)
	if err != nil || len(set.Groups) == 0 {
		return nil, nil
	}
	g, err := s.dir.GroupsOf(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("resolve groups of %s: %w", user, err)
	}
	return g, nil
}
