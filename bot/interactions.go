package bot

import (
	"context"
	"encoding/json"

	"net/http"
	"strings"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/commands"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// handleInteraction routes button clicks and modal submissions.
func (b *Bot) handleInteraction(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ackBudget)
	defer cancel()
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed interaction", http.StatusBadRequest)
		return
	}
	var ic slack.InteractionCallback
	if err := json.Unmarshal([]byte(r.PostForm.Get("payload")), &ic); err != nil {
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	switch ic.Type {
	case slack.InteractionTypeBlockActions:
		for _, a := range ic.ActionCallback.BlockActions {
			b.handleAction(ctx, ic, a)
		}
		w.WriteHeader(http.StatusOK)
	case slack.InteractionTypeViewSubmission:
		b.handleSubmission(ctx, w, ic)
	case slack.InteractionTypeViewClosed:
		w.WriteHeader(http.StatusOK)
	default:
		// Unknown types are acked and ignored: Slack would otherwise retry
		// and show the user an error for something rotary does not use.
		w.WriteHeader(http.StatusOK)
	}
}

func (b *Bot) handleAction(ctx context.Context, ic slack.InteractionCallback, a *slack.BlockAction) {
	user := ic.User.ID
	// The value names the request (and prompt); it decides nothing.
	id, _, _ := strings.Cut(a.Value, "|")
	switch a.ActionID {
	case blocks.ActionApprove:
		if _, err := b.cfg.Approvals.Approve(ctx, a.Value, user); err != nil {
			b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
		}
	case blocks.ActionDeny:
		req, err := b.cfg.Approvals.Get(ctx, a.Value)
		if err == nil && req.State != approvals.StatePending {
			err = &approvals.NotPendingError{ID: req.ID, State: req.State, By: req.DecidedBy}
		}
		if err != nil {
			b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
			return
		}
		// The trigger expires 3 s after the click: the modal opens now, on the ack path.
		if _, err := b.cfg.Slack.OpenViewContext(ctx, ic.TriggerID, blocks.DenyModal(req.ID)); err != nil {
			b.log.ErrorContext(ctx, "cannot open the deny modal", "request_id", req.ID, "err", err)
			b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
		}
	case blocks.ActionReview:
		if _, err := b.cfg.Approvals.Review(ctx, a.Value, user); err != nil {
			b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
		}
	case blocks.ActionFollowUpNow, blocks.ActionFollowUpPostpone:
		b.followUp(ctx, ic, a, user)
	case blocks.ActionPrompt:
		reqID, promptID, _ := blocks.ParsePromptRef(a.Value)
		p, ok := b.cfg.Prompts.PromptOpen(reqID, promptID)
		if !ok {
			b.tell(ctx, ic, b.errorText(ctx, errPromptGone, commands.Command{ID: id}))
			return
		}
		if !p.Secret {
			if err := b.cfg.Prompts.Answer(ctx, reqID, promptID, user, secret.Value{}); err != nil {
				b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
			}
			return
		}
		// Refuse before the modal: nobody outside the prompt's audience
		// should be invited to paste a secret (Answer checks again).
		if err := b.cfg.Prompts.MayAnswer(reqID, promptID, user); err != nil {
			b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
			return
		}
		if _, err := b.cfg.Slack.OpenViewContext(ctx, ic.TriggerID, blocks.PasteModal(reqID, promptID, p.Label)); err != nil {
			b.log.ErrorContext(ctx, "cannot open the paste modal", "request_id", reqID, "err", err)
			b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: id}))
		}
	default:
		b.log.WarnContext(ctx, "unknown action", "action_id", a.ActionID)
	}
}

var errPromptGone = userError("Nothing is waiting for that input any more.")

var errFollowUpUnknown = userError("That follow-up button is not valid any more. `/rotate status <id>` shows the request's follow-ups.")

// followUp runs a scheduled follow-up now or postpones it. The button value
// only names the request and follow-up; who may act is checked against the
// stored request.
func (b *Bot) followUp(ctx context.Context, ic slack.InteractionCallback, a *slack.BlockAction, user string) {
	reqID, name, ok := blocks.ParsePromptRef(a.Value)
	if !ok || b.cfg.FollowUps == nil {
		b.tell(ctx, ic, b.errorText(ctx, errFollowUpUnknown, commands.Command{}))
		return
	}
	if err := b.cfg.Approvals.MayManage(ctx, reqID, user); err != nil {
		b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: reqID}))
		return
	}
	var err error
	if a.ActionID == blocks.ActionFollowUpNow {
		err = b.cfg.FollowUps.FollowUpNow(ctx, reqID, name, user)
	} else {
		_, err = b.cfg.FollowUps.PostponeFollowUp(ctx, reqID, name, user)
	}
	if err != nil {
		b.tell(ctx, ic, b.errorText(ctx, err, commands.Command{ID: reqID}))
	}
}

// handleSubmission handles the deny-reason and paste-secret modals. Errors are
// shown in the modal itself (response_action: errors) so the user can fix them.
func (b *Bot) handleSubmission(ctx context.Context, w http.ResponseWriter, ic slack.InteractionCallback) {
	user := ic.User.ID
	id, _, _ := strings.Cut(ic.View.PrivateMetadata, "|")
	var (
		err   error
		block string
	)
	switch ic.View.CallbackID {
	case blocks.CallbackDenyReason:
		block = blocks.BlockReason
		reason := strings.TrimSpace(inputValue(ic.View.State, blocks.BlockReason, blocks.ActionReason))
		_, err = b.cfg.Approvals.Deny(ctx, ic.View.PrivateMetadata, user, reason)
	case blocks.CallbackPasteSecret:
		block = blocks.BlockSecret
		reqID, promptID, _ := strings.Cut(ic.View.PrivateMetadata, "|")
		v := secret.FromString(strings.TrimSpace(inputValue(ic.View.State, blocks.BlockSecret, blocks.ActionSecret)))
		err = b.cfg.Prompts.Answer(ctx, reqID, promptID, user, v)
	default:
		w.WriteHeader(http.StatusOK)
		return
	}
	if err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	resp := slack.NewErrorsViewSubmissionResponse(map[string]string{block: b.errorText(ctx, err, commands.Command{ID: id})})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func inputValue(st *slack.ViewState, block, action string) string {
	if st == nil {
		return ""
	}
	return st.Values[block][action].Value
}

// tell sends an ephemeral message to the clicking user after the ack.
func (b *Bot) tell(ctx context.Context, ic slack.InteractionCallback, text string) {
	channel := ic.Channel.ID
	if channel == "" {
		channel = ic.Container.ChannelID
	}
	if channel == "" {
		return
	}
	b.feedback.Add(1)
	go func() {
		defer b.feedback.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), feedbackTimeout)
		defer cancel()
		if _, err := b.cfg.Slack.PostEphemeralContext(fctx, channel, ic.User.ID, slack.MsgOptionText(text, false)); err != nil {
			b.log.WarnContext(fctx, "ephemeral reply failed", "err", err)
		}
	}()
}
