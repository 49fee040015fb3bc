package main

// The leak scan: every secret value a full rotation of every kind makes or
// touches must appear nowhere outside the systems that hold secrets (Secret
// Manager, Kubernetes Secrets, the provider): not in any Slack request or
// response, log line, /metrics scrape or byte of the bbolt file, in plain,
// base64 (any alignment, padded or not, standard or URL alphabet),
// URL-escaped or JSON-escaped form.
//
// A new kind is covered by adding its scenario to leakScenarios; the test
// fails for any kind in kinds() that has none.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
)

// minLeakForm: encoded fragments shorter than this match by chance.
const minLeakForm = 8

// secretForms returns the forms under which v could leak, each with its name.
func secretForms(v string) map[string]string {
	forms := map[string]string{"plain": v, "URL query-escaped": url.QueryEscape(v), "URL path-escaped": url.PathEscape(v)}
	if j, err := json.Marshal(v); err == nil {
		forms["JSON-escaped"] = string(j[1 : len(j)-1])
	}
	// Inside a longer base64 text the value's encoding depends on its
	// offset modulo 3: take the characters that only the value decides,
	// at each of the three offsets, for both alphabets.
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
		for k := range 3 {
			s := enc.e.EncodeToString(append(make([]byte, k), v...))
			skip := (k*8 + 5) / 6
			if len(s) < skip+2 {
				continue
			}
			forms[fmt.Sprintf("%s at offset %d", enc.name, k)] = s[skip : len(s)-2]
		}
	}
	forms["base64 (padded)"] = base64.StdEncoding.EncodeToString([]byte(v))
	for name, f := range forms {
		if len(f) < minLeakForm {
			delete(forms, name)
		}
	}
	return forms
}

// leakScan collects what a run exposed outside the secret stores.
type leakScan struct {
	metrics [][]byte
}

// scrape reads /metrics of the running process once.
func (s *leakScan) scrape(t *testing.T, h *e2e) {
	t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape /metrics: HTTP %d %v", resp.StatusCode, err)
	}
	if !bytes.Contains(b, []byte("rotary_requests")) {
		t.Fatalf("/metrics scrape has no rotary_requests: %.300s", b)
	}
	s.metrics = append(s.metrics, b)
}

// assert fails for every form of every value found in any place. h must be
// stopped (the bbolt file is read whole).
func (s *leakScan) assert(t *testing.T, h *e2e, values ...string) {
	t.Helper()
	var slackTraffic bytes.Buffer
	for _, r := range h.slack.Raw() {
		slackTraffic.Write(r)
		slackTraffic.WriteByte('\n')
	}
	state, err := os.ReadFile(h.statePath)
	if err != nil {
		t.Fatal(err)
	}
	places := map[string][]byte{
		"Slack traffic": slackTraffic.Bytes(),
		"logs":          []byte(h.logs.String()),
		"bbolt file":    state,
		"/metrics":      bytes.Join(s.metrics, []byte("\n")),
	}
	if len(s.metrics) == 0 {
		t.Fatal("no /metrics scrape was taken during the run")
	}
	checked := 0
	for _, v := range values {
		if len(v) < minLeakForm {
			continue
		}
		checked++
		for form, f := range secretForms(v) {
			for place, hay := range places {
				if bytes.Contains(hay, []byte(f)) {
					t.Errorf("secret %.6s… found in %s (%s form)", v, place, form)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("the scan was given no secret value: it would prove nothing")
	}
}

// baseSecrets are the values every scenario knows: the credentials and
// whatever the fakes issued or stored.
func baseSecrets(h *e2e) []string {
	values := []string{oldKeyValue, stripeOldValue, adminKey, signingSecret}
	values = append(values, h.openai.IssuedKeys()...)
	for _, p := range h.gsm.Payloads() {
		values = append(values, string(p))
	}
	return values
}

// secretData returns the values of the Kubernetes Secrets in the namespace
// (backups included) under keys that secret(key) says hold secrets. A PEM
// value is also split into its lines, so a leak of part of a key is found.
func secretData(t *testing.T, h *e2e, secret func(key string) bool) []string {
	t.Helper()
	list, err := h.cs.CoreV1().Secrets("aivo-prod").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		for k, v := range s.Data {
			if !secret(k) {
				continue
			}
			out = append(out, string(v))
			if bytes.Contains(v, []byte("-----BEGIN")) {
				for line := range strings.Lines(string(v)) {
					if line = strings.TrimSpace(line); len(line) >= 40 && !strings.HasPrefix(line, "-----") {
						out = append(out, line)
					}
				}
			}
		}
	}
	return out
}

func everyKey(string) bool { return true }

// leakScenario is a full rotation of one kind. run drives it to its end
// with the process still running and returns the secrets it knows of (the
// common ones are added by the caller).
type leakScenario struct {
	run func(t *testing.T, h *e2e, scan *leakScan) []string
}

// leakScenarios has one entry per kind in kinds(). Add one for a new kind.
func leakScenarios() map[string][]leakScenario {
	return map[string][]leakScenario{
		"apikey":     {{run: leakOpenAI}, {run: leakStripePaste}},
		"encryption": {{run: leakEncryption}},
		"database":   {{run: leakDatabase}},
		"redis":      {{run: leakRedis}},
		"jwt":        {{run: leakJWT}},
	}
}

func TestLeakScanEveryKind(t *testing.T) {
	scenarios := leakScenarios()
	for _, k := range kinds() {
		ss, ok := scenarios[k.Name]
		if !ok {
			t.Errorf("kind %q has no leak-scan scenario: add one to leakScenarios in leakscan_test.go", k.Name)
			continue
		}
		for i, sc := range ss {
			t.Run(fmt.Sprintf("%s/%d", k.Name, i), func(t *testing.T) {
				h := newE2E(t)
				scan := &leakScan{}
				values := sc.run(t, h, scan)
				scan.scrape(t, h)
				h.stop()
				scan.assert(t, h, append(baseSecrets(h), values...)...)
			})
		}
	}
}

// TestSecretFormsFindsEncodedLeaks proves the scanner finds each form,
// including base64 of the value inside a longer encoded blob.
func TestSecretFormsFindsEncodedLeaks(t *testing.T) {
	const v = "sk-proj-LEAK/me+please=?&"
	for name, hay := range map[string]string{
		"plain":                      "x" + v + "y",
		"query-escaped":              "q=" + url.QueryEscape(v),
		"base64 in a blob, offset 0": base64.StdEncoding.EncodeToString([]byte(`{"k":"` + v + `"}`)),
		"base64 in a blob, offset 1": base64.StdEncoding.EncodeToString([]byte(`{"kk":"` + v + `"}`)),
		"base64 in a blob, offset 2": base64.StdEncoding.EncodeToString([]byte(`{"kkk":"` + v + `"}`)),
		"base64url":                  base64.RawURLEncoding.EncodeToString([]byte(v)),
		"JSON-escaped":               `{"v":` + mustJSON(v) + `}`,
	} {
		found := false
		for _, f := range secretForms(v) {
			if strings.Contains(hay, f) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: the scanner does not find %q", name, hay)
		}
	}
	for _, f := range secretForms(v) {
		if strings.Contains("an innocent log line with R-TEST0001 and openai", f) {
			t.Errorf("form %q matches innocent text", f)
		}
	}
}

func mustJSON(v string) string {
	b, _ := json.Marshal(v) // a string always encodes
	return string(b)
}

func leakOpenAI(t *testing.T, h *e2e, scan *leakScan) []string {
	h.start()
	id, rootTS := h.open("openai")
	scan.scrape(t, h)
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, rootTS, approvals.StateSucceeded)
	return nil
}

func leakStripePaste(t *testing.T, h *e2e, scan *leakScan) []string {
	h.start()
	id, rootTS := h.open("stripe")
	h.click(approver, blocks.ActionApprove, id)
	ref := blocks.PromptRef(id, "paste_key")
	h.waitCalls("paste button", func([]slackfake.Call) bool { return h.threadHas(rootTS, ref) })
	h.pasteAndConfirmRevoked(t, id, rootTS, func() { scan.scrape(t, h) })
	return []string{pastedValue}
}

// threadHas reports whether a message in the thread carries substr.
func (h *e2e) threadHas(rootTS, substr string) bool {
	for _, m := range h.slack.Thread(requestChannel, rootTS) {
		if strings.Contains(string(m.Blocks), substr) {
			return true
		}
	}
	return false
}

func leakEncryption(t *testing.T, h *e2e, scan *leakScan) []string {
	h.withEncryption(t)
	h.start()
	id, rootTS := h.open("encryption")
	h.click(approver, blocks.ActionApprove, id)
	scan.scrape(t, h)
	h.finished(id, rootTS, approvals.StateSucceeded)
	return append(secretData(t, h, everyKey), oldEncryptionKey)
}

// leakJWT: the public key and key id are public; the private keys (new,
// old and the backup's) and whatever the session store printed are not.
func leakJWT(t *testing.T, h *e2e, scan *leakScan) []string {
	withJWT(t, h, "")
	h.start()
	if text := h.command(requester, "/rotate-jwt", `--reason "quarterly"`); !strings.Contains(text, "Opened") {
		t.Fatalf("open: %s", text)
	}
	id := fmt.Sprintf("R-TEST%04d", h.ids.Load())
	rootTS := h.rootPosted(id)
	h.click(approver, blocks.ActionApprove, id)
	scan.scrape(t, h)
	h.finished(id, rootTS, approvals.StateSucceeded)
	private := func(k string) bool { return strings.Contains(k, "PRIVATE") }
	return append(secretData(t, h, private), execOutputMarker)
}
