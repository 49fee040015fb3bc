package bot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: whatever the headers and body, the verifier never panics and
// admits a request only when its signature is the HMAC of its own body and
// timestamp under the signing secret.
func FuzzVerify(f *testing.F) {
	f.Add(sampleBody, "v0=00", "1700000000", false)
	f.Add(sampleBody, "", "", true)
	f.Add("payload=%7B%7D", "v1=abc", "not-a-number", true)
	f.Add(strings.Repeat("a", 1024), "v0="+strings.Repeat("f", 64), "0", false)
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, body, sig, ts string, signIt bool) {
		hd := http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {ts}}
		if signIt {
			hd = sign(signingSecret, body, time.Now())
		}
		rc := &recorder{}
		w := verifyThrough(h.bot.verified(rc), body, hd)
		valid := signIt
		if !valid && (w.Code < 400) {
			t.Fatalf("an unsigned request was admitted: HTTP %d", w.Code)
		}
		if valid && w.Code != http.StatusNoContent && w.Code != http.StatusUnauthorized && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("signed request: HTTP %d", w.Code)
		}
	})
}

// FuzzInteractionPayload: any payload gets 200 or 400 and never a panic or
// a 5xx.
func FuzzInteractionPayload(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"type":"block_actions"}`, `{"type":"block_actions","actions":[{"action_id":"rotary_approve","value":"R-NOPE00"}]}`,
		`{"type":"block_actions","actions":[{"action_id":"rotary_prompt","value":"|"}]}`,
		`{"type":"view_submission","view":{"callback_id":"rotary_deny_reason","private_metadata":"R-X"}}`,
		`{"type":"view_submission","view":{"callback_id":"rotary_paste_secret","private_metadata":"||","state":{"values":{}}}}`,
		`not json`, `{"type":`, `[]`, `{"type":"view_closed"}`,
	} {
		f.Add(seed)
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, payload string) {
		body := url.Values{"payload": {payload}}.Encode()
		r := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/slack/interactions", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.bot.handleInteraction(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("payload %q: HTTP %d", payload, w.Code)
		}
	})
}
