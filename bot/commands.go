package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/commands"
)

// Slash commands the manifest declares.
const (
	CommandRotate    = "/rotate"
	CommandRotateJWT = "/rotate-jwt"
)

// handleCommand answers a slash command. The answer is always an ephemeral
// message in the HTTP response (no Web API call on the ack path).
func (b *Bot) handleCommand(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ackBudget)
	defer cancel()
	sc, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, "malformed slash command", http.StatusBadRequest)
		return
	}
	var cmd commands.Command
	text := unescapeSlack(sc.Text)
	switch sc.Command {
	case CommandRotate:
		cmd, err = commands.Parse(text)
	case CommandRotateJWT:
		cmd, err = commands.ParseJWT(text)
	default:
		err = fmt.Errorf("%w: %s", errUnknownCommand, sc.Command)
	}
	if err != nil {
		b.ephemeralResponse(w, b.errorText(ctx, err, cmd), nil)
		return
	}
	text, blks := b.runCommand(ctx, sc, cmd)
	b.ephemeralResponse(w, text, blks)
}

// slackEscapes undoes the escaping Slack applies to slash-command text (it
// sends &, < and > as entities), so a reason reads as typed; bot/blocks
// escapes it again wherever it is shown.
var slackEscapes = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescapeSlack(s string) string { return slackEscapes.Replace(s) }

var errUnknownCommand = userError("rotary does not know that command. Use /rotate help.")

type userError string

func (e userError) Error() string       { return string(e) }
func (e userError) UserMessage() string { return string(e) }

func (b *Bot) runCommand(ctx context.Context, sc slack.SlashCommand, cmd commands.Command) (string, []slack.Block) {
	switch cmd.Verb {
	case commands.VerbHelp:
		return blocks.Help(b.cfg.Hints), nil
	case commands.VerbList:
		rs, err := b.cfg.Approvals.ListOpen(ctx)
		if err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		return blocks.List(rs, b.cfg.Now())
	case commands.VerbStatus:
		req, err := b.cfg.Approvals.Get(ctx, cmd.ID)
		if err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		run, err := b.cfg.Runs.LoadRun(ctx, req.ID)
		if err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		return blocks.Status(req, run, b.cfg.Now())
	case commands.VerbCancel:
		req, err := b.cfg.Approvals.Cancel(ctx, cmd.ID, sc.UserID)
		if err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		// The service logs the decision ("request decided", state cancelled).
		return blocks.Cancelled(req), nil
	case commands.VerbRotate:
		req, err := b.cfg.Approvals.Open(ctx, approvals.OpenInput{
			Target: cmd.Target, Env: cmd.Env, Reason: cmd.Reason, Requester: sc.UserID,
			Emergency: cmd.Emergency, Channel: b.cfg.RequestChannel,
		})
		if err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		if req.Emergency {
			b.log.WarnContext(ctx, "EMERGENCY rotation requested", "request_id", req.ID, "target", req.Target, "break_glass", req.BreakGlass, "user", sc.UserID)
		}
		return blocks.Opened(req), nil
	case commands.VerbRollback:
		// A hopeless rollback (nothing recorded, old key already revoked) is
		// refused now rather than after someone approved it.
		if b.cfg.FollowUps == nil {
			return b.errorText(ctx, errRollbackUnavailable, cmd), nil
		}
		if err := b.cfg.FollowUps.CheckRevertible(ctx, cmd.ID); err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		req, err := b.cfg.Approvals.Open(ctx, approvals.OpenInput{
			RollbackOf: cmd.ID, Reason: cmd.Reason, Requester: sc.UserID, Channel: b.cfg.RequestChannel,
		})
		if err != nil {
			return b.errorText(ctx, err, cmd), nil
		}
		return blocks.Opened(req), nil
	}
	return b.errorText(ctx, errUnknownCommand, cmd), nil
}

var errRollbackUnavailable = userError("Rollback is not available in this deployment of rotary.")

// errorText renders err for the user, logging internal errors with a reference.
func (b *Bot) errorText(ctx context.Context, err error, cmd commands.Command) string {
	h := b.cfg.Hints
	h.Target, h.Env, h.RequestID = cmd.Target, cmd.Env, cmd.ID
	if blocks.IsInternal(err) {
		h.Ref = "none"
		if b.cfg.NewRef != nil {
			h.Ref = b.cfg.NewRef()
		}
		b.log.ErrorContext(ctx, "internal error answering Slack", "ref", h.Ref, "err", err)
	}
	return blocks.ErrorText(err, h)
}

// ephemeralResponse writes a slash-command response visible only to the user.
func (b *Bot) ephemeralResponse(w http.ResponseWriter, text string, blks []slack.Block) {
	msg := slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: text}
	if len(blks) > 0 {
		msg.Blocks = slack.Blocks{BlockSet: blks}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(msg)
}
