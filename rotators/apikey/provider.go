package apikey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Limits of the provider clients, named so they can be found.
const (
	// providerRequestTimeout bounds one HTTP request to a provider.
	providerRequestTimeout = 30 * time.Second
	// maxResponseBytes caps what is read of a response body.
	maxResponseBytes = 1 << 20
	// maxProviderMessage caps a provider's error message quoted in an error.
	maxProviderMessage = 200
	// openAIPageSize is the OpenAI list endpoints' maximum page size.
	openAIPageSize = 100
	// maxListPages stops a listing whose pagination never ends.
	maxListPages = 100
)

// keyLikePattern matches text that may be a key: OpenAI (sk-…), Stripe
// (sk_/rk_/pk_…), SendGrid (SG.…), and any long token. A provider's error
// message can quote a (masked) key, e.g. OpenAI's "Incorrect API key
// provided: sk-abc…wxyz".
const keyLikePattern = `(?i)\b(?:sk|rk|pk)[-_][A-Za-z0-9_*.\-]+|\bSG\.[A-Za-z0-9_*.\-]+|[A-Za-z0-9_\-]{32,}`

// providerKey is a key (OpenAI: a service account) as listed; never its value.
type providerKey struct {
	ID   string
	Name string
}

// provider is a provider API that creates, lists and deletes keys.
type provider interface {
	// create makes a key named name and returns it with its value, which
	// the provider shows only this once.
	create(ctx context.Context, name string) (providerKey, secret.Value, error)
	list(ctx context.Context) ([]providerKey, error)
	// delete revokes the key; an unknown id is not an error (idempotent).
	delete(ctx context.Context, id string) error
	// noun is what a key is called at this provider.
	noun() string
	// where tells a person where to revoke a key by hand.
	where() string
}

// apiError is a provider's non-2xx answer. It holds the status and the
// provider's own (scrubbed, truncated) message, never the body.
type apiError struct {
	provider string
	method   string
	path     string
	status   int
	message  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s API %s %s: HTTP %d: %s", e.provider, e.method, e.path, e.status, e.message)
}

// retryable reports whether a status may succeed when tried again.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return status >= http.StatusInternalServerError
}

// apiClient is the JSON-over-HTTPS plumbing both provider clients share.
type apiClient struct {
	provider string
	base     *url.URL
	http     *http.Client
	adminKey secret.Value
	// message extracts the provider's error message from an error body.
	message func(body []byte) string
}

// do sends in (JSON, when non-nil) to the path made of the escaped elems
// and decodes a 2xx answer into out (when non-nil).
func (c *apiClient) do(ctx context.Context, method string, elems []string, query url.Values, in, out any) error {
	escaped := make([]string, len(elems))
	for i, e := range elems {
		escaped[i] = url.PathEscape(e)
	}
	display := "/" + strings.Join(escaped, "/")
	u := c.base.JoinPath(escaped...)
	u.RawQuery = query.Encode()

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s API %s %s: encoding the request: %w", c.provider, method, display, err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, providerRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s API %s %s: %w", c.provider, method, display, err)
	}
	req.Header.Set("Authorization", "Bearer "+string(c.adminKey.Reveal()))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "rotary")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s API %s %s: %w", c.provider, method, display, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s API %s %s: HTTP %d: reading the response: %w", c.provider, method, display, resp.StatusCode, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("%s API %s %s: HTTP %d: response larger than %d bytes", c.provider, method, display, resp.StatusCode, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := c.scrub(c.message(data))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		e := &apiError{provider: c.provider, method: method, path: display, status: resp.StatusCode, message: msg}
		if retryable(resp.StatusCode) {
			return e
		}
		return rotators.Permanent(e)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		// json errors name types and offsets, not values; still, say no more.
		return fmt.Errorf("%s API %s %s: HTTP %d: the response is not the expected JSON", c.provider, method, display, resp.StatusCode)
	}
	return nil
}

// scrub makes a provider's message safe to quote: no admin key, nothing
// key-like, one line, bounded.
func (c *apiClient) scrub(msg string) string {
	if !c.adminKey.IsZero() {
		msg = strings.ReplaceAll(msg, string(c.adminKey.Reveal()), secret.Redacted)
	}
	msg = regexp.MustCompile(keyLikePattern).ReplaceAllString(msg, secret.Redacted)
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(msg, ""))
	msg = strings.TrimSpace(msg)
	if r := []rune(msg); len(r) > maxProviderMessage {
		msg = string(r[:maxProviderMessage]) + "…"
	}
	return msg
}

// checkKeyID refuses an id that could address anything but one key (an
// empty id or ".." would change the path a DELETE goes to).
func checkKeyID(id string) error {
	if !regexp.MustCompile(providerIDPattern).MatchString(id) {
		return rotators.Permanent(fmt.Errorf("%q is not a key id", id))
	}
	return nil
}

// isNotFound reports whether err is a provider's 404.
func isNotFound(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.status == http.StatusNotFound
}

// openAIClient manages a project's service accounts through the OpenAI
// Admin API. Creating a service account also creates its API key, whose
// value is returned once (api_key.value); deleting the account revokes it.
type openAIClient struct {
	api       apiClient
	projectID string
}

func newOpenAIClient(hc *http.Client, base string, adminKey secret.Value, projectID string) (*openAIClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("OpenAI api_base: %w", err)
	}
	return &openAIClient{
		api:       apiClient{provider: "OpenAI", base: u, http: hc, adminKey: adminKey, message: openAIMessage},
		projectID: projectID,
	}, nil
}

// openAIMessage reads {"error": {"message": …}}.
func openAIMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Message
}

func (c *openAIClient) accountsPath(more ...string) []string {
	return append([]string{"v1", "organization", "projects", c.projectID, "service_accounts"}, more...)
}

func (c *openAIClient) create(ctx context.Context, name string) (providerKey, secret.Value, error) {
	var resp struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		APIKey *struct {
			ID    string `json:"id"`
			Value string `json:"value"`
		} `json:"api_key"`
	}
	if err := c.api.do(ctx, http.MethodPost, c.accountsPath(), nil, map[string]string{"name": name}, &resp); err != nil {
		return providerKey{}, secret.Value{}, fmt.Errorf("create service account %s: %w", name, err)
	}
	if resp.ID == "" {
		return providerKey{}, secret.Value{}, fmt.Errorf("create service account %s: the response has no id", name)
	}
	if resp.APIKey == nil || resp.APIKey.Value == "" {
		// The next attempt deletes this account by name before creating another.
		return providerKey{}, secret.Value{}, fmt.Errorf("create service account %s: OpenAI made %s but returned no API key", name, resp.ID)
	}
	return providerKey{ID: resp.ID, Name: name}, secret.FromString(resp.APIKey.Value), nil
}

func (c *openAIClient) list(ctx context.Context) ([]providerKey, error) {
	var keys []providerKey
	after := ""
	for range maxListPages {
		q := url.Values{"limit": {strconv.Itoa(openAIPageSize)}}
		if after != "" {
			q.Set("after", after)
		}
		var page struct {
			Data []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"data"`
			HasMore bool    `json:"has_more"`
			LastID  *string `json:"last_id"`
		}
		if err := c.api.do(ctx, http.MethodGet, c.accountsPath(), q, nil, &page); err != nil {
			return nil, fmt.Errorf("list service accounts: %w", err)
		}
		for _, d := range page.Data {
			keys = append(keys, providerKey(d))
		}
		if !page.HasMore {
			return keys, nil
		}
		next := ""
		if page.LastID != nil {
			next = *page.LastID
		} else if len(page.Data) > 0 {
			next = page.Data[len(page.Data)-1].ID
		}
		if next == "" || next == after {
			return nil, fmt.Errorf("list service accounts: the OpenAI API's pagination did not advance")
		}
		after = next
	}
	return nil, fmt.Errorf("list service accounts: more than %d pages", maxListPages)
}

func (c *openAIClient) delete(ctx context.Context, id string) error {
	if err := checkKeyID(id); err != nil {
		return fmt.Errorf("delete service account: %w", err)
	}
	err := c.api.do(ctx, http.MethodDelete, c.accountsPath(id), nil, nil, nil)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete service account %s: %w", id, err)
	}
	return nil
}

func (c *openAIClient) noun() string { return "service account" }

func (c *openAIClient) where() string {
	return fmt.Sprintf("in the OpenAI dashboard, project %s (API keys and service accounts)", c.projectID)
}

// sendGridClient manages API keys through the SendGrid v3 API. The key
// value is returned once, when the key is created.
type sendGridClient struct {
	api    apiClient
	scopes []string
}

func newSendGridClient(hc *http.Client, base string, adminKey secret.Value, scopes []string) (*sendGridClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("SendGrid api_base: %w", err)
	}
	return &sendGridClient{
		api:    apiClient{provider: "SendGrid", base: u, http: hc, adminKey: adminKey, message: sendGridMessage},
		scopes: scopes,
	}, nil
}

// sendGridMessage reads {"errors": [{"field", "message"}]}.
func sendGridMessage(body []byte) string {
	var e struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	msgs := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		m := x.Message
		if x.Field != nil && *x.Field != "" {
			m = *x.Field + ": " + m
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

func (c *sendGridClient) create(ctx context.Context, name string) (providerKey, secret.Value, error) {
	var resp struct {
		APIKey   string `json:"api_key"`
		APIKeyID string `json:"api_key_id"`
	}
	in := map[string]any{"name": name, "scopes": c.scopes}
	if err := c.api.do(ctx, http.MethodPost, []string{"v3", "api_keys"}, nil, in, &resp); err != nil {
		return providerKey{}, secret.Value{}, fmt.Errorf("create API key %s: %w", name, err)
	}
	if resp.APIKeyID == "" || resp.APIKey == "" {
		return providerKey{}, secret.Value{}, fmt.Errorf("create API key %s: the response has no api_key_id or api_key", name)
	}
	return providerKey{ID: resp.APIKeyID, Name: name}, secret.FromString(resp.APIKey), nil
}

func (c *sendGridClient) list(ctx context.Context) ([]providerKey, error) {
	var resp struct {
		Result []struct {
			APIKeyID string `json:"api_key_id"`
			Name     string `json:"name"`
		} `json:"result"`
	}
	if err := c.api.do(ctx, http.MethodGet, []string{"v3", "api_keys"}, nil, nil, &resp); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	keys := make([]providerKey, 0, len(resp.Result))
	for _, r := range resp.Result {
		keys = append(keys, providerKey{ID: r.APIKeyID, Name: r.Name})
	}
	return keys, nil
}

func (c *sendGridClient) delete(ctx context.Context, id string) error {
	if err := checkKeyID(id); err != nil {
		return fmt.Errorf("delete API key: %w", err)
	}
	err := c.api.do(ctx, http.MethodDelete, []string{"v3", "api_keys", id}, nil, nil, nil)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete API key %s: %w", id, err)
	}
	return nil
}

func (c *sendGridClient) noun() string { return "API key" }

func (c *sendGridClient) where() string {
	return "in the SendGrid dashboard (Settings → API Keys)"
}
