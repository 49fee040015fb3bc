package apikey

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/apikey/apikeytest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

func TestOpenAIListPaginates(t *testing.T) {
	fake := apikeytest.NewOpenAI(apikeytest.OpenAIOptions{AdminKey: testAdminKey, ProjectID: "proj_x", PageSize: 2})
	defer fake.Close()
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("sa-%d", i)
		fake.AddServiceAccount(name)
		want = append(want, name)
	}
	c, err := newOpenAIClient(fake.Client(), fake.URL(), secret.FromString(testAdminKey), "proj_x")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.list(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if n := fake.CountCalls("GET", "/v1/"); n != 3 {
		t.Errorf("pages fetched = %d, want 3", n)
	}
}

func TestDeleteIsIdempotentAndChecksIDs(t *testing.T) {
	fake := apikeytest.NewSendGrid(apikeytest.SendGridOptions{AdminKey: testAdminKey})
	defer fake.Close()
	c, err := newSendGridClient(fake.Client(), fake.URL(), secret.FromString(testAdminKey), []string{"mail.send"})
	if err != nil {
		t.Fatal(err)
	}
	id := fake.AddAPIKey("k", nil)
	for range 2 { // the second answers 404, which is success
		if err := c.delete(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"", "..", "a/b", "x?y"} {
		if err := c.delete(t.Context(), bad); err == nil || !rotators.IsPermanent(err) {
			t.Errorf("delete(%q) = %v, want a permanent refusal", bad, err)
		}
	}
	if n := len(fake.Calls()); n != 2 {
		t.Errorf("calls = %d, want 2 (bad ids never sent)", n)
	}
}

// The clients quote the provider's error message field — scrubbed of
// anything key-like, on one line, truncated — and never a raw body.
func TestProviderErrorsAreSafe(t *testing.T) {
	const leaked = "sk-proj-LEAKEDVALUE1234567890abcdefghijklmnop"
	long := strings.Repeat("very long message ", 40)
	tests := []struct {
		name      string
		status    int
		body      string
		want      []string
		permanent bool
	}{
		{"openai message", 400, `{"error":{"message":"Invalid name.","type":"invalid_request_error"}}`, []string{"HTTP 400", "Invalid name."}, true},
		{"key in message", 401, `{"error":{"message":"Incorrect API key provided: ` + leaked + `.\nSee docs."}}`, []string{"HTTP 401", "Incorrect API key provided: [REDACTED]", "See docs."}, true},
		{"admin key echoed", 403, `{"error":{"message":"key ` + testAdminKey + ` lacks api.management.write"}}`, []string{"HTTP 403", "lacks api.management.write"}, true},
		{"long message", 500, `{"error":{"message":"` + long + `"}}`, []string{"HTTP 500", "…"}, false},
		{"not json", 502, `<html>` + leaked + `</html>`, []string{"HTTP 502", "Bad Gateway"}, false},
		{"rate limited", 429, `{"error":{"message":"Rate limit reached"}}`, []string{"HTTP 429", "Rate limit reached"}, false},
		{"key in a 200 that is not json", 200, `value=` + leaked, []string{"not the expected JSON"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := newOpenAIClient(srv.Client(), srv.URL, secret.FromString(testAdminKey), "proj_x")
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.create(t.Context(), "rotary:t:prod:R1")
			if err == nil {
				t.Fatal("want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if tt.status != 200 && rotators.IsPermanent(err) != tt.permanent {
				t.Errorf("permanent = %v, want %v", rotators.IsPermanent(err), tt.permanent)
			}
			if strings.Contains(msg, "LEAKEDVALUE") || strings.Contains(msg, testAdminKey) || strings.Contains(msg, "\n") {
				t.Errorf("unsafe error: %q", msg)
			}
			if len(msg) > 400 {
				t.Errorf("error is %d bytes long", len(msg))
			}
		})
	}
}

func TestClientsSendAdminKeyAndShapes(t *testing.T) {
	sg := apikeytest.NewSendGrid(apikeytest.SendGridOptions{AdminKey: testAdminKey})
	defer sg.Close()
	c, err := newSendGridClient(sg.Client(), sg.URL(), secret.FromString(testAdminKey), []string{"mail.send", "alerts.read"})
	if err != nil {
		t.Fatal(err)
	}
	key, value, err := c.create(t.Context(), "rotary:t:prod:R1")
	if err != nil {
		t.Fatal(err)
	}
	if string(value.Reveal()) != sg.IssuedKeys()[0] || key.Name != "rotary:t:prod:R1" || key.ID == "" {
		t.Errorf("create = %+v", key)
	}
	if got := sg.APIKeys()[0].Scopes; !slices.Equal(got, []string{"mail.send", "alerts.read"}) {
		t.Errorf("scopes sent = %v", got)
	}
	if calls := sg.Calls(); calls[0].Method != "POST" || calls[0].Path != "/v3/api_keys" || calls[0].Status != 201 {
		t.Errorf("call = %+v", calls[0])
	}
}
