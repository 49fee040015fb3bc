package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
)

// Outbox delivery limits.
const (
	outboxBatch = 50
	// deliveryTimeout bounds one Slack Web API call.
	deliveryTimeout = 15 * time.Second
	// backoffBase and backoffMax shape the retry delay after a 5xx or network error.
	backoffBase = time.Second
	backoffMax  = 10 * time.Minute
	// MaxDeliveryAttempts: after this many failures a notice is dropped (and
	// logged as an error) so one poisoned message cannot hold up its request's
	// later messages forever. With backoffMax it spans several hours.
	MaxDeliveryAttempts = 40
	// outboxPoll is how often delayed entries are looked at when nothing signals.
	outboxPoll = time.Second
)

// RunOutbox delivers notices until ctx ends. Every notice is rendered from
// the request's current state at delivery, so retries never show stale data.
func (b *Bot) RunOutbox(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.cfg.Outbox.OutboxSignal():
		case <-timer.C:
		}
		if err := b.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			b.log.ErrorContext(ctx, "outbox delivery pass failed", "err", err)
		}
		timer.Reset(outboxPoll)
	}
}

// DeliverDue delivers every due notice once (one pass).
func (b *Bot) DeliverDue(ctx context.Context) error {
	for {
		due, err := b.cfg.Outbox.OutboxDue(ctx, b.cfg.Now(), outboxBatch)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		progressed := false
		for _, e := range due {
			if ctx.Err() != nil {
				return nil
			}
			// A delivery already started finishes even while the process
			// stops (bounded by deliveryTimeout): cut short, Slack may have
			// posted the message without rotary learning it, and the next
			// start would post it again.
			refs, derr := b.deliver(context.WithoutCancel(ctx), e.Notice)
			if derr == nil {
				// Slack has the message: record that, and the handle of a
				// message just posted, in one commit even while stopping, or
				// the next start would post it again.
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliveryTimeout)
				err := b.cfg.Outbox.OutboxDelivered(dctx, e.Seq, e.Notice.RequestID, refs)
				cancel()
				if err != nil {
					return fmt.Errorf("record delivery of %s notice %d for %s: %w", e.Notice.Kind, e.Seq, e.Notice.RequestID, err)
				}
				progressed = true
				continue
			}
			if err := b.retry(ctx, e, derr); err != nil {
				return err
			}
		}
		// The store hands out one entry per request at a time (to keep each
		// request's messages in order), so keep going while anything moved.
		if !progressed {
			return nil
		}
	}
}

func (b *Bot) retry(ctx context.Context, e approvals.OutboxEntry, derr error) error {
	attempts := e.Attempts + 1
	log := b.log.With("request_id", e.Notice.RequestID, "notice", string(e.Notice.Kind), "attempt", attempts)
	if attempts >= MaxDeliveryAttempts {
		log.ErrorContext(ctx, "dropping a Slack notice after repeated failures", "err", derr)
		return b.cfg.Outbox.OutboxDelivered(ctx, e.Seq, "", nil)
	}
	delay := backoffBase << min(attempts-1, 16)
	var rl *slack.RateLimitedError
	if errors.As(derr, &rl) {
		// Slack said when to come back; honour it.
		delay = rl.RetryAfter
	}
	delay = min(delay, backoffMax)
	log.WarnContext(ctx, "Slack delivery failed; will retry", "err", derr, "retry_in", delay)
	return b.cfg.Outbox.OutboxRetry(ctx, e.Seq, attempts, b.cfg.Now().Add(delay), derr.Error())
}

// errNotYet means a notice depends on a message not posted yet (it is retried).
var errNotYet = errors.New("the request's root message is not posted yet")

// deliver shows notice n in Slack. When it posted a message whose handle
// later notices need (a root or progress message), it returns refs to
// store that handle: the caller commits it together with the outbox entry's
// removal, so the two cannot disagree and cost one commit, not two.
func (b *Bot) deliver(ctx context.Context, n approvals.Notice) (refs func(*approvals.SlackRefs), err error) {
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := b.cfg.Approvals.Get(ctx, n.RequestID)
	if errors.Is(err, approvals.ErrNotFound) {
		return nil, nil // nothing to show; dropping is right
	}
	if err != nil {
		return nil, err
	}
	run, err := b.cfg.Runs.LoadRun(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	channel := req.Slack.Channel
	if channel == "" {
		channel = b.cfg.RequestChannel
	}
	switch n.Kind {
	case approvals.NoticeRoot:
		text, blks := blocks.Request(req, run, b.cfg.Notes(req), b.cfg.Now())
		opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blks...)}
		if req.Slack.RootTS != "" {
			_, _, _, err := b.cfg.Slack.UpdateMessageContext(ctx, channel, req.Slack.RootTS, opts...)
			return nil, err
		}
		ch, ts, err := b.cfg.Slack.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			return nil, err
		}
		return func(s *approvals.SlackRefs) { s.Channel, s.RootTS = ch, ts }, nil
	case approvals.NoticeProgress:
		if run == nil {
			return nil, nil
		}
		if req.Slack.RootTS == "" {
			return nil, errNotYet
		}
		text, blks := blocks.Progress(req, run)
		opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blks...)}
		if req.Slack.ProgressTS != "" {
			_, _, _, err := b.cfg.Slack.UpdateMessageContext(ctx, channel, req.Slack.ProgressTS, opts...)
			return nil, err
		}
		_, ts, err := b.cfg.Slack.PostMessageContext(ctx, channel, append(opts, slack.MsgOptionTS(req.Slack.RootTS))...)
		if err != nil {
			return nil, err
		}
		return func(s *approvals.SlackRefs) { s.ProgressTS = ts }, nil
	case approvals.NoticeReply:
		if req.Slack.RootTS == "" {
			return nil, errNotYet
		}
		text, blks := blocks.Reply(n, req, run)
		opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionTS(req.Slack.RootTS)}
		if len(blks) > 0 {
			opts = append(opts, slack.MsgOptionBlocks(blks...))
		}
		_, _, err := b.cfg.Slack.PostMessageContext(ctx, channel, opts...)
		return nil, err
	case approvals.NoticeAlert:
		return nil, b.alert(ctx, n, req, channel, channel)
	case approvals.NoticeAnnounce:
		if b.cfg.AnnounceChannel == "" {
			return nil, nil
		}
		if n.Event == approvals.EventEmergency || n.Event == approvals.EventReviewOverdue {
			// The announcement channel gets the same channel-wide alert.
			return nil, b.alert(ctx, n, req, channel, b.cfg.AnnounceChannel)
		}
		text, blks := blocks.Announcement(n, req)
		_, _, err := b.cfg.Slack.PostMessageContext(ctx, b.cfg.AnnounceChannel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blks...))
		return nil, err
	}
	b.log.WarnContext(ctx, "unknown notice kind dropped", "kind", string(n.Kind))
	return nil, nil
}

// alert posts the channel-wide alert about req to channel "to", with a link
// to the request's root message in "rootChannel".
func (b *Bot) alert(ctx context.Context, n approvals.Notice, req *approvals.Request, rootChannel, to string) error {
	if req.Slack.RootTS == "" {
		return errNotYet
	}
	// The link is a convenience: without it the alert still goes out.
	link, err := b.cfg.Slack.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: rootChannel, Ts: req.Slack.RootTS})
	if err != nil {
		b.log.WarnContext(ctx, "no permalink for the alert", "request_id", req.ID, "err", err)
		link = ""
	}
	text, blks := blocks.Alert(n, req, link, b.cfg.Approvals.EscalationTargets())
	_, _, err = b.cfg.Slack.PostMessageContext(ctx, to, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blks...))
	return err
}
