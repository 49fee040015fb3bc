package bot

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/rotators"
)

func TestInteractionMalformed(t *testing.T) {
	cases := []struct{ name, body string }{
		{"form that does not parse", "payload=%zz"},
		{"payload that is not JSON", url.Values{"payload": {`{"type":"block_actions",`}}.Encode()},
		{"payload of the wrong shape", url.Values{"payload": {`["block_actions"]`}}.Encode()},
		{"no payload", "foo=bar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if w := h.signedPost("/slack/interactions", tc.body); w.Code != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400", w.Code)
			}
			if calls := h.fake.Calls(); len(calls) != 0 {
				t.Fatalf("Slack calls: %+v", calls)
			}
		})
	}
}

// Interactions rotary does not use are acked (so Slack shows no error) and
// change nothing.
func TestInteractionIgnored(t *testing.T) {
	cases := []struct {
		name    string
		payload map[string]any
		logged  string
	}{
		{"unknown type", map[string]any{"type": "message_action", "user": map[string]any{"id": approver}, "callback_id": "x"}, ""},
		{"view closed", map[string]any{"type": "view_closed", "user": map[string]any{"id": approver},
			"view": map[string]any{"callback_id": blocks.CallbackDenyReason, "private_metadata": "R-T00001"}}, ""},
		{"unknown action", clickPayload(approver, "rotary_launch_missiles", "R-T00001"), "unknown action"},
		{"unknown view", submitPayload(approver, "someone_elses_modal", "R-T00001", blocks.BlockReason, blocks.ActionReason, "x"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.openRequest("openai")
			w := h.interact(tc.payload)
			if w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Fatalf("HTTP %d %q, want an empty 200", w.Code, w.Body)
			}
			if calls := h.fake.Calls(); len(calls) != 0 {
				t.Fatalf("Slack calls: %+v", calls)
			}
			if got := h.get(r.ID); got.State != approvals.StatePending || len(got.Events) != 1 {
				t.Fatalf("request changed: %+v", got)
			}
			if tc.logged != "" {
				if l := h.logs.find(t, tc.logged); len(l) != 1 || l[0]["level"] != "WARN" {
					t.Fatalf("not logged: %v\n%s", l, h.logs)
				}
			}
		})
	}
}

func TestDenyButtonOnDecidedRequest(t *testing.T) {
	h := newHarness(t)
	r := h.openRequest("openai")
	h.approve(r.ID)
	before := len(h.slackCalls())

	if w := h.interact(clickPayload(approver, blocks.ActionDeny, r.ID)); w.Code != http.StatusOK {
		t.Fatalf("HTTP %d", w.Code)
	}
	if v := h.fake.CallsTo("views.open"); len(v) != 0 {
		t.Fatalf("deny modal opened for a decided request: %+v", v)
	}
	calls := h.slackCalls()[before:]
	if len(calls) != 1 || calls[0].Method != "chat.postEphemeral" || calls[0].User != approver || calls[0].Channel != requestChannel {
		t.Fatalf("want one ephemeral to the clicker, got %+v", calls)
	}
	if !strings.Contains(calls[0].Text, "already approved") {
		t.Fatalf("ephemeral text: %q", calls[0].Text)
	}
	if got := h.get(r.ID); got.State != approvals.StateApproved {
		t.Fatalf("state %s", got.State)
	}
}

func TestDenyButtonOnUnknownRequest(t *testing.T) {
	h := newHarness(t)
	h.interact(clickPayload(approver, blocks.ActionDeny, "R-NOPE000"))
	if v := h.fake.CallsTo("views.open"); len(v) != 0 {
		t.Fatal("deny modal opened for an unknown request")
	}
	if e := h.fake.Ephemerals(requestChannel); len(e) != 1 || !strings.Contains(e[0].Text, "No request R-NOPE000") {
		t.Fatalf("ephemerals: %+v", e)
	}
}

// submission is a view_submission's answer: empty, or response_action errors.
type submission struct {
	ResponseAction string            `json:"response_action"`
	Errors         map[string]string `json:"errors"`
}

func decodeSubmission(t *testing.T, code int, body string) submission {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %s", code, body)
	}
	var s submission
	if body != "" {
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("submission answer is not JSON: %q", body)
		}
	}
	return s
}

func TestDenySubmission(t *testing.T) {
	cases := []struct {
		name    string
		user    string
		reason  string
		wantErr string // substring of the error shown on the reason block; "" = accepted
	}{
		{"empty reason", approver, "", "reason is required"},
		{"blank reason", approver, " \n\t ", "reason is required"},
		{"not an approver", outsider, "no", "not an approver"},
		{"requester cannot deny", requester, "changed my mind", "not an approver"},
		{"accepted, trimmed", approver, "  not during the launch \n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.openRequest("openai")
			w := h.interact(submitPayload(tc.user, blocks.CallbackDenyReason, r.ID, blocks.BlockReason, blocks.ActionReason, tc.reason))
			s := decodeSubmission(t, w.Code, w.Body.String())
			got := h.get(r.ID)
			if tc.wantErr == "" {
				if s.ResponseAction != "" || got.State != approvals.StateDenied || got.DenyReason != "not during the launch" || got.DecidedBy != approver {
					t.Fatalf("not denied: answer %+v, request %+v", s, got)
				}
				return
			}
			if s.ResponseAction != "errors" || len(s.Errors) != 1 || !strings.Contains(s.Errors[blocks.BlockReason], tc.wantErr) {
				t.Fatalf("answer %+v, want errors on %s containing %q", s, blocks.BlockReason, tc.wantErr)
			}
			if got.State != approvals.StatePending {
				t.Fatalf("state %s after a refused deny", got.State)
			}
		})
	}
}

// The deny modal of a request decided meanwhile says so in the modal.
func TestDenySubmissionAfterDecision(t *testing.T) {
	h := newHarness(t)
	r := h.openRequest("openai")
	h.approve(r.ID)
	w := h.interact(submitPayload(approver, blocks.CallbackDenyReason, r.ID, blocks.BlockReason, blocks.ActionReason, "too late"))
	s := decodeSubmission(t, w.Code, w.Body.String())
	if !strings.Contains(s.Errors[blocks.BlockReason], "already approved") {
		t.Fatalf("answer %+v", s)
	}
}

const pastedSecret = "sk-live-PASTED-5b1e0c9d7f2a4e88"

func TestPasteSubmission(t *testing.T) {
	h := newHarness(t)
	w := h.interact(submitPayload(requester, blocks.CallbackPasteSecret, blocks.PromptRef("R-T00001", "paste_key"),
		blocks.BlockSecret, blocks.ActionSecret, "  "+pastedSecret+"\n"))
	if s := decodeSubmission(t, w.Code, w.Body.String()); s.ResponseAction != "" {
		t.Fatalf("answer %+v", s)
	}
	got := h.prompts.got()
	if len(got) != 1 {
		t.Fatalf("%d answers", len(got))
	}
	a := got[0]
	if a.requestID != "R-T00001" || a.promptID != "paste_key" || a.user != requester || string(a.v.Reveal()) != pastedSecret {
		t.Fatalf("answer %s/%s by %s, value trimmed correctly: %v", a.requestID, a.promptID, a.user, string(a.v.Reveal()) == pastedSecret)
	}
	if strings.Contains(w.Body.String(), pastedSecret) {
		t.Fatal("the value was echoed to Slack")
	}
	h.assertNoLeak(pastedSecret)
}

func TestPasteSubmissionRefused(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		wantErr string
	}{
		{"executor refuses for the user", userError("Only the requester can answer this."), "Only the requester can answer this."},
		{"internal error", errors.New("executor exploded"), "ref: `REF-1`"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.prompts.err = tc.err
			w := h.interact(submitPayload(outsider, blocks.CallbackPasteSecret, blocks.PromptRef("R-T00001", "paste_key"),
				blocks.BlockSecret, blocks.ActionSecret, pastedSecret))
			s := decodeSubmission(t, w.Code, w.Body.String())
			if s.ResponseAction != "errors" || !strings.Contains(s.Errors[blocks.BlockSecret], tc.wantErr) {
				t.Fatalf("answer %+v, want errors on %s containing %q", s, blocks.BlockSecret, tc.wantErr)
			}
			if strings.Contains(w.Body.String(), pastedSecret) || strings.Contains(w.Body.String(), "exploded") {
				t.Fatalf("answer shows the value or the internal error: %s", w.Body)
			}
			h.assertNoLeak(pastedSecret)
		})
	}
}

func TestPromptButton(t *testing.T) {
	t.Run("nothing waiting", func(t *testing.T) {
		h := newHarness(t)
		h.interact(clickPayload(requester, blocks.ActionPrompt, blocks.PromptRef("R-T00001", "paste_key")))
		if e := h.fake.Ephemerals(requestChannel); len(e) != 1 || !strings.Contains(e[0].Text, "Nothing is waiting") || e[0].User != requester {
			t.Fatalf("ephemerals: %+v", e)
		}
		if len(h.prompts.got()) != 0 || len(h.fake.CallsTo("views.open")) != 0 {
			t.Fatal("answered or opened a modal for a prompt that is not open")
		}
	})
	t.Run("confirmation is answered on click", func(t *testing.T) {
		h := newHarness(t)
		h.prompts.set("R-T00001", rotators.Prompt{ID: "confirm", Label: "Revoke the old key in the dashboard", Audience: rotators.AudienceRequester})
		h.interact(clickPayload(requester, blocks.ActionPrompt, blocks.PromptRef("R-T00001", "confirm")))
		got := h.prompts.got()
		if len(got) != 1 || got[0].promptID != "confirm" || got[0].user != requester || !got[0].v.IsZero() {
			t.Fatalf("answers %+v", got)
		}
		if calls := h.fake.Calls(); len(calls) != 0 {
			t.Fatalf("Slack calls for a confirmation: %+v", calls)
		}
	})
	t.Run("secret opens the paste modal", func(t *testing.T) {
		h := newHarness(t)
		h.prompts.set("R-T00001", rotators.Prompt{ID: "paste_key", Label: "New Stripe key", Secret: true, Audience: rotators.AudienceRequester})
		h.interact(clickPayload(requester, blocks.ActionPrompt, blocks.PromptRef("R-T00001", "paste_key")))
		opens := h.fake.CallsTo("views.open")
		if len(opens) != 1 || opens[0].TriggerID != "trig-"+blocks.ActionPrompt {
			t.Fatalf("views.open calls: %+v", opens)
		}
		var view struct {
			CallbackID      string `json:"callback_id"`
			PrivateMetadata string `json:"private_metadata"`
		}
		if err := json.Unmarshal(opens[0].View, &view); err != nil || view.CallbackID != blocks.CallbackPasteSecret || view.PrivateMetadata != blocks.PromptRef("R-T00001", "paste_key") {
			t.Fatalf("view %s (%v)", opens[0].View, err)
		}
		if len(h.prompts.got()) != 0 {
			t.Fatal("a secret prompt was answered by the click")
		}
	})
}
