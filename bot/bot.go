// Package bot is rotary's Slack transport: it verifies and acks Slack's
// HTTP requests, routes commands and clicks to the approvals service and the
// executor, and delivers the durable outbox of notices as Slack messages.
//
// Rules:
//   - Nothing is processed before the v0 signature and timestamp are verified
//     and the request is known not to be a replay; anything else gets 401.
//   - The ack path validates, commits once, and answers: no slow work, and no
//     Slack Web API call except views.open, which Slack requires within the
//     trigger's 3 s.
//   - Button values and modal metadata only say which request is meant; who
//     may do what is decided by the service against the stored request.
//   - Text comes from bot/blocks; this package only routes.
package bot

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Approvals is what the transport needs of the approvals service.
type Approvals interface {
	Open(ctx context.Context, in approvals.OpenInput) (*approvals.Request, error)
	Approve(ctx context.Context, id, user string) (*approvals.Request, error)
	Deny(ctx context.Context, id, user, reason string) (*approvals.Request, error)
	Cancel(ctx context.Context, id, user string) (*approvals.Request, error)
	Get(ctx context.Context, id string) (*approvals.Request, error)
	ListOpen(ctx context.Context) ([]*approvals.Request, error)
	// Review acknowledges a break-glass rotation as its second person.
	Review(ctx context.Context, id, user string) (*approvals.Request, error)
	// MayManage says (nil) whether user may act on the request's follow-ups.
	MayManage(ctx context.Context, id, user string) error
	// EscalationTargets are mentioned when a break-glass review is overdue.
	EscalationTargets() approvals.Approvers
}

// FollowUps is the executor's side of scheduled follow-ups and of rollback
// requests. Authorization is the transport's job (Approvals.MayManage)
// before it calls these.
type FollowUps interface {
	FollowUpNow(ctx context.Context, requestID, name, actor string) error
	PostponeFollowUp(ctx context.Context, requestID, name, actor string) (time.Time, error)
	// CheckRevertible refuses at once a rollback that could not work.
	CheckRevertible(ctx context.Context, originalID string) error
}

// Runs reads the executor's journal (for progress and status).
type Runs interface {
	LoadRun(ctx context.Context, requestID string) (*executor.Run, error)
}

// Prompts is the executor's side of a step waiting for a person.
type Prompts interface {
	PromptOpen(requestID, promptID string) (rotators.Prompt, bool)
	// MayAnswer says why user may not answer (nil when they may).
	MayAnswer(requestID, promptID, user string) error
	Answer(ctx context.Context, requestID, promptID, user string, v secret.Value) error
}

// Outbox is the durable queue of notices.
type Outbox interface {
	OutboxDue(ctx context.Context, now time.Time, limit int) ([]approvals.OutboxEntry, error)
	// OutboxDelivered removes entry seq and, when refs is not nil, applies
	// refs to request requestID's Slack handles in the same commit: one
	// fsync pair per delivered message, and after a crash a posted message's
	// handle is stored if and only if its notice counts as delivered.
	OutboxDelivered(ctx context.Context, seq uint64, requestID string, refs func(*approvals.SlackRefs)) error
	OutboxRetry(ctx context.Context, seq uint64, attempts int, notBefore time.Time, lastErr string) error
	OutboxSignal() <-chan struct{}
}

// SlackAPI is the part of *slack.Client the bot uses.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	OpenViewContext(ctx context.Context, triggerID string, view slack.ModalViewRequest) (*slack.ViewResponse, error)
	GetPermalinkContext(ctx context.Context, params *slack.PermalinkParameters) (string, error)
}

// PlanNotes returns the notes shown on a request message (from the plan the
// request would run: an emergency or a rollback plans differently).
type PlanNotes func(r *approvals.Request) []string

// Config builds a Bot.
type Config struct {
	SigningSecret   secret.Value
	Slack           SlackAPI
	Approvals       Approvals
	Runs            Runs
	Prompts         Prompts
	FollowUps       FollowUps
	Outbox          Outbox
	RequestChannel  string
	AnnounceChannel string
	Hints           blocks.Hints
	Notes           PlanNotes
	Now             func() time.Time
	Log             *slog.Logger
	// NewRef makes a short reference for an internal error shown to a user (and logged).
	NewRef func() string
}

// Named limits of the transport.
const (
	// MaxBodyBytes caps a Slack request body. Slash commands are a few hundred
	// bytes; interaction payloads with a modal's state stay far below this.
	MaxBodyBytes = 256 << 10
	// replayWindow is Slack's timestamp window: slack-go accepts a timestamp
	// up to this far from the local clock, on either side.
	replayWindow = 5 * time.Minute
	// replayMemory is how long a seen signature is remembered. A request
	// stamped up to replayWindow in the future (Slack's clock ahead of ours)
	// stays acceptable until replayWindow after that, so twice the window.
	replayMemory = 2 * replayWindow
	// ackBudget bounds the work done before answering Slack (it allows 3 s).
	ackBudget = 2500 * time.Millisecond
	// feedbackTimeout bounds an ephemeral reply sent after the ack.
	feedbackTimeout = 10 * time.Second
)

// Bot is the HTTP handler set and the outbox deliverer.
type Bot struct {
	cfg    Config
	log    *slog.Logger
	replay *replayGuard

	// feedback tracks ephemeral replies sent after an ack, so Close can wait for them.
	feedback sync.WaitGroup
}

// New builds a Bot.
func New(cfg Config) *Bot {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Notes == nil {
		cfg.Notes = func(*approvals.Request) []string { return nil }
	}
	return &Bot{cfg: cfg, log: cfg.Log, replay: newReplayGuard(replayMemory)}
}

// Routes registers the Slack endpoints on mux.
func (b *Bot) Routes(mux *http.ServeMux) {
	mux.Handle("POST /slack/commands", b.verified(http.HandlerFunc(b.handleCommand)))
	mux.Handle("POST /slack/interactions", b.verified(http.HandlerFunc(b.handleInteraction)))
}

// Wait waits for ephemeral replies still being sent (at shutdown, in tests).
func (b *Bot) Wait() { b.feedback.Wait() }
