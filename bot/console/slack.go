package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// The Slack side of the console: what Slack sends to an app's request
// URLs. Commands are form posts; clicks and modal submissions are a form
// with one "payload" field holding JSON; every request carries the v0
// signature over a fresh timestamp. The shapes follow Slack's documented
// payloads closely enough for slack-go's parsers, which the bot uses.

// Identity of the fake app and workspace in payloads.
const (
	appID      = "A0ROTARYTRY"
	teamDomain = "fake-workspace"
	// responseURL is where Slack would take delayed responses. rotary answers
	// commands in the HTTP response and never uses it, so it points nowhere.
	responseURL = "https://hooks.slack.invalid/commands/rotary-try"
	// maxBotResponse bounds what the console reads of the bot's answer.
	maxBotResponse = 1 << 20
	// signatureVersion is Slack's signing scheme.
	signatureVersion = "v0"
)

// Slack request paths of the bot.
const (
	pathCommands     = "/slack/commands"
	pathInteractions = "/slack/interactions"
)

// signer signs request bodies as Slack does: HMAC-SHA256 of
// "v0:<unix time>:<body>" with the app's signing secret.
type signer struct {
	secret secret.Value
	now    func() time.Time
}

// headers returns the signature headers of body, stamped now.
func (s signer) headers(body []byte) http.Header {
	stamp := strconv.FormatInt(s.now().Unix(), 10)
	mac := hmac.New(sha256.New, s.secret.Reveal())
	mac.Write([]byte(signatureVersion + ":" + stamp + ":"))
	mac.Write(body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", stamp)
	h.Set("X-Slack-Signature", signatureVersion+"="+hex.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}

// slackEscape escapes command text as Slack sends it.
func slackEscape(s string) string {
	s = strings.ReplaceAll(s, "&", "&amp;")
	s = strings.ReplaceAll(s, "<", "&lt;")
	return strings.ReplaceAll(s, ">", "&gt;")
}

// commandForm is the body Slack posts for a slash command.
func commandForm(p Person, ch Channel, command, text, trigger string) url.Values {
	return url.Values{
		"team_id":               {slackfake.TeamID},
		"team_domain":           {teamDomain},
		"channel_id":            {ch.ID},
		"channel_name":          {ch.Name},
		"user_id":               {p.ID},
		"user_name":             {p.Name},
		"command":               {command},
		"text":                  {slackEscape(text)},
		"api_app_id":            {appID},
		"is_enterprise_install": {"false"},
		"response_url":          {responseURL},
		"trigger_id":            {trigger},
	}
}

type teamRef struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

type userRef struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Name     string `json:"name"`
	TeamID   string `json:"team_id"`
}

type channelRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type containerRef struct {
	Type        string `json:"type"`
	MessageTS   string `json:"message_ts,omitempty"`
	ChannelID   string `json:"channel_id,omitempty"`
	IsEphemeral bool   `json:"is_ephemeral"`
}

type messageRef struct {
	Type   string          `json:"type"`
	User   string          `json:"user"`
	BotID  string          `json:"bot_id"`
	Text   string          `json:"text"`
	TS     string          `json:"ts"`
	Blocks json.RawMessage `json:"blocks,omitempty"`
}

type actionRef struct {
	ActionID string      `json:"action_id"`
	BlockID  string      `json:"block_id"`
	Text     *textObject `json:"text,omitempty"`
	Value    string      `json:"value"`
	Type     string      `json:"type"`
	Style    string      `json:"style,omitempty"`
	ActionTS string      `json:"action_ts"`
}

// blockActions is the payload of a button click.
type blockActions struct {
	Type        string       `json:"type"`
	Team        teamRef      `json:"team"`
	User        userRef      `json:"user"`
	APIAppID    string       `json:"api_app_id"`
	Container   containerRef `json:"container"`
	TriggerID   string       `json:"trigger_id"`
	Channel     channelRef   `json:"channel"`
	Message     *messageRef  `json:"message,omitempty"`
	ResponseURL string       `json:"response_url"`
	Actions     []actionRef  `json:"actions"`
}

type inputValue struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type submittedView struct {
	ID              string          `json:"id"`
	TeamID          string          `json:"team_id"`
	Type            string          `json:"type"`
	Blocks          json.RawMessage `json:"blocks"`
	PrivateMetadata string          `json:"private_metadata"`
	CallbackID      string          `json:"callback_id"`
	State           struct {
		Values map[string]map[string]inputValue `json:"values"`
	} `json:"state"`
	Hash          string      `json:"hash"`
	Title         *textObject `json:"title,omitempty"`
	Close         *textObject `json:"close,omitempty"`
	Submit        *textObject `json:"submit,omitempty"`
	RootViewID    string      `json:"root_view_id"`
	AppID         string      `json:"app_id"`
	BotID         string      `json:"bot_id"`
	NotifyOnClose bool        `json:"notify_on_close"`
}

// viewPayload is the payload of a modal's submission or closing.
type viewPayload struct {
	Type         string        `json:"type"`
	Team         teamRef       `json:"team"`
	User         userRef       `json:"user"`
	APIAppID     string        `json:"api_app_id"`
	TriggerID    string        `json:"trigger_id,omitempty"`
	View         submittedView `json:"view"`
	ResponseURLs []string      `json:"response_urls"`
	IsCleared    bool          `json:"is_cleared,omitempty"`
}

func userOf(p Person) userRef {
	return userRef{ID: p.ID, Username: p.Name, Name: p.Name, TeamID: slackfake.TeamID}
}

// actionTS is Slack's action_ts: unix seconds with microseconds.
func actionTS(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/int(time.Microsecond))
}

// interactionBody form-encodes a payload as Slack does.
func interactionBody(payload any) ([]byte, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode interaction payload: %w", err)
	}
	return []byte(url.Values{"payload": {string(p)}}.Encode()), nil
}

// botAnswer is the bot's HTTP answer to one request.
type botAnswer struct {
	status int
	body   []byte
	took   time.Duration
}

// post sends a signed body to the bot. The body may hold a pasted secret:
// it is never logged, and errors name only the path.
func (c *Console) post(ctx context.Context, path string, body []byte) (botAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.botURL+path, bytes.NewReader(body))
	if err != nil {
		return botAnswer{}, fmt.Errorf("build request to rotary %s: %w", path, err)
	}
	req.Header = c.signer.headers(body)
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		return botAnswer{}, fmt.Errorf("post to rotary %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBotResponse))
	if err != nil {
		return botAnswer{}, fmt.Errorf("read rotary's answer to %s: %w", path, err)
	}
	return botAnswer{status: resp.StatusCode, body: b, took: c.now().Sub(start)}, nil
}
