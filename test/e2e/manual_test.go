package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/apikey"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
)

// --- apikey, manual provider (Stripe) -----------------------------------

const (
	stripeDeployment = "billing-svc"
	stripeGSMID      = "aivo-prod-stripe-secret-key"
	stripeES         = "billing-secrets"
	stripeOldKey     = "sk_live_E2E-ORIGINAL-STRIPE-KEY-0001"
	// stripePastedKey is the key the requester makes in the dashboard; the
	// test pastes it with the trailing newline a copy often carries, which
	// rotary must trim before storing it.
	stripePastedKey = "sk_live_E2E-PASTED-STRIPE-KEY-0002"
)

// testAPIKeyManualPasteAfterKill: a Stripe-like provider without an API
// (`provider: manual`). The new_key step parks on a secret prompt; rotary
// is SIGKILLed while it waits. The restarted process must ask again (an
// open prompt lives only in the memory of the process that asked); the
// requester then pastes the key through the modal rotary opens (a signed
// view_submission), the approver confirms the old key's revocation, and
// the rotation finishes once.
func testAPIKeyManualPasteAfterKill(t *testing.T, s *suite) {
	w := newWorld(t, s, "apikey-manual-paste-kill")
	w.gsmSecret(stripeGSMID, stripeOldKey)
	w.externalSecret(stripeES, stripeES, "STRIPE_SECRET_KEY", stripeGSMID)
	w.deployment(deploymentSpec{name: stripeDeployment, replicas: 2, envFrom: []string{stripeES}})
	w.writeConfig(fmt.Sprintf(`  stripe:
    kind: apikey
    approvers:
      prod: {users: [%s]}
    provider: manual
    namespace: %s
    secret_manager:
      project: %s
      secret: %s
    external_secret: %s
    deployments: [%s]
    sync_timeout: 30s
    rollout_timeout: 60s
    manual: {dashboard_url: "https://dashboard.stripe.com/apikeys"}
`, approver, w.ns, gsmProject, stripeGSMID, stripeES, stripeDeployment))

	w.startRotary("")
	id, rootTS := w.approve("stripe")
	paste := blocks.PromptRef(id, apikey.PromptPasteKey)

	// The first process asks for the key and parks; kill it while it waits.
	w.waitPromptButton(rootTS, paste, 0)
	w.waitPasteReply(rootTS, 0)
	w.killRotary()
	killed := lastSeq(w.slack.Calls())
	fmt.Fprintf(w.logs, "=== e2e: rotary killed while waiting for the paste; restarting on the same state file\n")
	w.startRotary("")

	// The restarted process asks again: a new "input needed" reply and the
	// Paste key button, posted after the kill. The requester clicks it; a
	// button re-sent from the dead process's journal (an at-least-once
	// redelivery) may come first and open nothing, so click the next one.
	since := killed
	var modal openedModal
	for {
		seq := w.waitPromptButton(rootTS, paste, since)
		m, ok := w.clickOpens(requester, blocks.ActionPrompt, paste)
		if ok {
			modal = m
			break
		}
		since = seq
	}
	w.waitPasteReply(rootTS, killed)
	w.reasks++
	if modal.callbackID != blocks.CallbackPasteSecret || modal.privateMetadata != paste {
		t.Fatalf("the Paste key button opened modal %q (%q); want %q for %q", modal.callbackID, modal.privateMetadata, blocks.CallbackPasteSecret, paste)
	}
	if body := w.submit(requester, modal, blocks.BlockSecret, blocks.ActionSecret, stripePastedKey+"\n"); body != "" {
		t.Fatalf("rotary refused the pasted key: %s\nlogs:\n%s", body, w.logs.String())
	}

	// revoke: the approver confirms the old key is revoked in the dashboard.
	revoked := blocks.PromptRef(id, apikey.PromptRevoked)
	w.waitPromptButton(rootTS, revoked, killed)
	w.click(approver, blocks.ActionPrompt, revoked)
	if got := w.finished(id); got != outcomeSucceeded {
		t.Fatalf("%s ended %q, want %q\nlogs:\n%s", id, got, outcomeSucceeded, w.logs.String())
	}

	// Secret Manager: exactly one new version, the pasted key (trimmed);
	// the old one disabled.
	vs := w.gsmVersions(stripeGSMID)
	if len(vs) != 2 || vs[0].State != gsmfake.StateDisabled || vs[1].State != gsmfake.StateEnabled || string(vs[1].Payload) != stripePastedKey {
		t.Fatalf("Secret Manager versions after the rotation: %s (new one is the pasted key: %v); want [DISABLED ENABLED(pasted key)]",
			versionStates(vs), len(vs) == 2 && string(vs[1].Payload) == stripePastedKey)
	}
	if got := w.secretData(stripeES)["STRIPE_SECRET_KEY"]; got != stripePastedKey {
		t.Fatalf("Secret %s does not hold the pasted key after the sync", stripeES)
	}
	if n := w.eso.syncCount(stripeES); n != 2 {
		t.Errorf("ExternalSecret %s synced %d times; want 2 (initial, rotation)", stripeES, n)
	}
	if n := len(w.slack.CallsTo("views.open")); n != 1 {
		t.Errorf("%d modals opened; want one Paste key modal", n)
	}
	w.assertRolled(stripeDeployment, 1, 0)
	w.assertSlackOnce(id, rootTS)
	w.stopRotary()

	rec := w.audit(id)
	if rec.Request.State != approvals.StateSucceeded || rec.Run.Resumes != 1 {
		t.Errorf("%s: request state %q after %d resume(s); want %q after one", id, rec.Request.State, rec.Run.Resumes, approvals.StateSucceeded)
	}
	if rec.Run.Prompt != nil {
		t.Errorf("%s: the journal still holds prompt %q after the end", id, rec.Run.Prompt.ID)
	}
	w.assertNoLeak(stripeOldKey, stripePastedKey)
}

// lastSeq is the sequence number of the last recorded Slack call.
func lastSeq(cs []slackfake.Call) int {
	if len(cs) == 0 {
		return 0
	}
	return cs[len(cs)-1].Seq
}

// waitPromptButton waits until a message of the request's thread posted or
// updated after call since carries the prompt button of ref, and returns
// that call's sequence number.
func (w *world) waitPromptButton(rootTS, ref string, since int) int {
	w.t.Helper()
	id, _, _ := blocks.ParsePromptRef(ref)
	seq := 0
	w.waitCalls("prompt "+ref, func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Seq <= since || c.Failed || c.Channel != requestChannel || (c.Method != "chat.postMessage" && c.Method != "chat.update") {
				continue
			}
			if c.Method == "chat.postMessage" && c.ThreadTS != rootTS {
				continue
			}
			var v any
			if json.Unmarshal(c.Blocks, &v) != nil {
				continue
			}
			var bs []button
			collectButtons(v, id, &bs)
			for _, b := range bs {
				if b.value == ref {
					seq = c.Seq
					return true
				}
			}
		}
		return false
	})
	return seq
}

// waitPasteReply waits until the "input needed" reply of a Paste key
// prompt was posted in the thread after call since.
func (w *world) waitPasteReply(rootTS string, since int) {
	w.t.Helper()
	w.waitCalls("the input-needed reply of the Paste key prompt", func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Seq > since && !c.Failed && c.Method == "chat.postMessage" && c.Channel == requestChannel && c.ThreadTS == rootTS &&
				strings.Contains(c.Text, "needs you") && strings.Contains(c.Text, "*Paste key*") {
				return true
			}
		}
		return false
	})
}
