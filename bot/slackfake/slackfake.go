// Package slackfake is the edge fake of the Slack Web API: an in-process HTTP
// server (net/http/httptest) that speaks the same wire protocol as slack.com
// for the methods rotary uses, so tests and the local demo mode drive the real
// github.com/slack-go/slack client, and therefore the real bot code, end to end.
//
// It owns a small model of a workspace (messages per channel with threads,
// ephemeral messages, modal views, users, user groups, channels), a recording
// of every call, and fault injection. Its rules:
//
//   - Wire fidelity over convenience. It answers the way slack.com does for
//     slack-go v0.35.0: form posts carry the token in the "token" field
//     (slack-go sends no Authorization header for them), JSON posts and GETs
//     carry "Authorization: Bearer <token>"; API errors are HTTP 200 with
//     {"ok":false,"error":"<code>"} (slack.SlackErrorResponse); a 429 with a
//     Retry-After header becomes *slack.RateLimitedError and any other non-200
//     status a slack.StatusCodeError.
//   - Everything is recorded, failures included, and every request and
//     response body is kept byte for byte (Raw), so a test can prove that no
//     secret value ever crossed the wire.
//   - Nothing sleeps: WaitFor wakes on each recorded call.
//   - It does not import "testing", because the demo mode links it into a
//     binary. It is safe for concurrent use.
//
// Point a client at it with slack.OptionAPIURL(fake.URL()+"/"), or
// fake.APIURL(): slack-go appends the method name to the API URL as is.
package slackfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Identity of the fake workspace and of the bot user the token belongs to, as
// answered by auth.test and stamped on posted messages.
const (
	DefaultToken = "xoxb-test"
	TeamID       = "T0FAKE"
	TeamName     = "Fake Workspace"
	BotUserID    = "U0ROTARY"
	BotID        = "B0ROTARY"
	BotName      = "rotary"
	// WorkspaceURL is the base of auth.test's url and of permalinks.
	WorkspaceURL = "https://fake-workspace.slack.com/"
)

const (
	// maxBodyBytes bounds a request body; Slack's own limits are far lower
	// for every method served here.
	maxBodyBytes = 1 << 20
	// Message timestamps start here and grow by tsStepMicros per message, so
	// the n-th ts is predictable in tests ("1700000000.000100", ...000200).
	tsBaseSeconds = 1_700_000_000
	tsStepMicros  = 100
	microsPerSec  = 1_000_000
	// defaultFaultError is the error code of a Fault that names none.
	defaultFaultError = "internal_error"
)

// Fault is an injected failure, see FailNext.
//
// A Status other than 0 and 200 is answered as that HTTP status; with 429 a
// Retry-After header of RetryAfter seconds is sent, which slack-go turns into
// *slack.RateLimitedError. Otherwise the call is answered with HTTP 200 and
// {"ok":false,"error":SlackError} ("internal_error" when SlackError is empty).
type Fault struct {
	Status     int
	RetryAfter int // seconds
	SlackError string
}

// Call is one recorded request and the answer it got. The fields after Raw
// are filled by the methods they apply to. A Call and everything it refers
// to must be treated as read-only.
type Call struct {
	Seq    int    // 1-based position in the recording
	Method string // Slack method, e.g. "chat.postMessage"
	// Form holds the decoded form (or GET query) without the "token" field;
	// nil for JSON bodies.
	Form url.Values
	// JSON holds the decoded JSON body; nil for form bodies and GETs.
	JSON map[string]any
	// Raw is the request body exactly as received; Query the raw URL query.
	Raw   []byte
	Query string

	Channel   string
	TS        string // ts assigned (postMessage, postEphemeral) or addressed (update, getPermalink)
	ThreadTS  string // thread_ts as sent
	Text      string
	Blocks    json.RawMessage
	User      string // recipient of chat.postEphemeral; subject of users.info
	TriggerID string
	ViewID    string // assigned by views.open, addressed by views.update
	View      json.RawMessage

	Status   int    // HTTP status answered
	Error    string // Slack error code answered, "" on success
	Failed   bool   // the call did not succeed (non-200 or ok:false)
	Injected bool   // the failure came from FailNext
	Response []byte // response body exactly as sent
}

// Message is a message in the fake workspace.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // parent ts for a thread reply, "" otherwise
	Text     string
	Blocks   json.RawMessage
	User     string // recipient of an ephemeral message, "" otherwise
	Updates  int    // number of chat.update calls applied
}

// View is a modal opened with views.open.
type View struct {
	ID         string
	TriggerID  string
	ExternalID string
	Hash       string
	View       json.RawMessage // the view object as last sent
	Updates    int
}

// Server is the fake. Create it with New and Close it when done.
type Server struct {
	srv      *httptest.Server
	handlers map[string]handler

	mu         sync.Mutex
	token      string
	calls      []Call
	changed    chan struct{} // closed and replaced on every recorded call
	faults     map[string][]Fault
	lastTS     int
	lastView   int
	lastHash   int
	messages   map[string][]*Message // channel -> messages in post order
	ephemerals map[string][]Message
	views      map[string]*View
	users      map[string]string   // id -> name
	groups     map[string][]string // usergroup id -> user ids
	channels   map[string]string   // id -> name
}

// New starts a fake accepting DefaultToken.
func New() *Server {
	s := &Server{
		token:      DefaultToken,
		changed:    make(chan struct{}),
		faults:     map[string][]Fault{},
		messages:   map[string][]*Message{},
		ephemerals: map[string][]Message{},
		views:      map[string]*View{},
		users:      map[string]string{},
		groups:     map[string][]string{},
		channels:   map[string]string{},
	}
	s.handlers = map[string]handler{
		"chat.postMessage":      s.postMessage,
		"chat.update":           s.update,
		"chat.postEphemeral":    s.postEphemeral,
		"chat.getPermalink":     s.getPermalink,
		"views.open":            s.viewsOpen,
		"views.update":          s.viewsUpdate,
		"users.info":            s.usersInfo,
		"usergroups.users.list": s.usergroupsUsersList,
		"auth.test":             s.authTest,
		"conversations.info":    s.conversationsInfo,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the base URL of the fake, without a trailing slash. slack-go needs
// the slash: use slack.OptionAPIURL(s.URL()+"/") or APIURL.
func (s *Server) URL() string { return s.srv.URL }

// APIURL is URL()+"/", the value slack.OptionAPIURL expects.
func (s *Server) APIURL() string { return s.srv.URL + "/" }

// Close shuts the server down, waiting for calls in flight.
func (s *Server) Close() { s.srv.Close() }

// SetToken sets the only token accepted from now on.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// Token returns the token currently accepted.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// FailNext makes the next n calls to method fail with f, before the token or
// the arguments are looked at. Repeated calls queue up in order.
func (s *Server) FailNext(method string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], f)
	}
}

// AddUser makes users.info know the user; unknown users are user_not_found.
func (s *Server) AddUser(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = name
}

// SetGroupMembers sets the members of a user group for usergroups.users.list;
// unknown groups are no_such_subteam.
func (s *Server) SetGroupMembers(groupID string, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[groupID] = slices.Clone(users)
}

// AddChannel makes conversations.info know the channel; unknown channels are
// channel_not_found. Posting does not require it.
func (s *Server) AddChannel(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[id] = name
}

// Calls returns every recorded call in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the recorded calls to method, in order.
func (s *Server) CallsTo(method string) []Call {
	return callsTo(s.Calls(), method)
}

func callsTo(calls []Call, method string) []Call {
	var out []Call
	for _, c := range calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Raw returns all traffic in order: for each call its URL query (when
// present), its request body and its response body. Scan it to prove a
// value never crossed the wire in either direction.
func (s *Server) Raw() [][]byte {
	calls := s.Calls()
	out := make([][]byte, 0, 2*len(calls))
	for _, c := range calls {
		if c.Query != "" {
			out = append(out, []byte(c.Query))
		}
		out = append(out, c.Raw, c.Response)
	}
	return out
}

// WaitFor blocks until pred holds for the recorded calls, re-checking on
// every new call, and returns the calls it held for. pred runs without the
// lock on a snapshot. When ctx ends first it returns the last snapshot and an
// error wrapping ctx.Err().
func (s *Server) WaitFor(ctx context.Context, pred func([]Call) bool) ([]Call, error) {
	for {
		s.mu.Lock()
		calls := slices.Clone(s.calls)
		changed := s.changed
		s.mu.Unlock()
		if pred(calls) {
			return calls, nil
		}
		select {
		case <-ctx.Done():
			return calls, fmt.Errorf("slackfake: condition not met after %d calls: %w", len(calls), ctx.Err())
		case <-changed:
		}
	}
}

// HasCalls is a WaitFor predicate: at least n calls to method were recorded.
func HasCalls(method string, n int) func([]Call) bool {
	return func(calls []Call) bool { return len(callsTo(calls, method)) >= n }
}

// Messages returns the messages of a channel, thread replies included, in
// the order they were posted.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages[channel]))
	for _, m := range s.messages[channel] {
		out = append(out, *m)
	}
	return out
}

// Thread returns the replies to the message ts in order, without the parent
// (use Message for it).
func (s *Server) Thread(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[channel] {
		if m.ThreadTS == ts {
			out = append(out, *m)
		}
	}
	return out
}

// Message returns the message ts of a channel.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessage(channel, ts)
	if m == nil {
		return Message{}, false
	}
	return *m, true
}

// Ephemerals returns the ephemeral messages sent in a channel, in order.
// Like on Slack they are not part of Messages.
func (s *Server) Ephemerals(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ephemerals[channel])
}

// View returns the view with the given id.
func (s *Server) View(id string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.views[id]
	if !ok {
		return View{}, false
	}
	return *v, true
}

// Views returns all views opened, in order of their ids.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]View, 0, len(s.views))
	for _, v := range s.views {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b View) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// answer is what the server sends back for one call.
type answer struct {
	status      int
	contentType string
	retryAfter  string
	body        []byte
	errCode     string
	injected    bool
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/")
	in := readRequest(r)
	call := Call{
		Method: method,
		Form:   in.recordedForm,
		JSON:   in.jsonMap,
		Raw:    in.body,
		Query:  r.URL.RawQuery,
	}

	s.mu.Lock()
	a := s.respond(method, in, &call)
	call.Seq = len(s.calls) + 1
	call.Status = a.status
	call.Error = a.errCode
	call.Failed = a.status != http.StatusOK || a.errCode != ""
	call.Injected = a.injected
	call.Response = a.body
	// Recorded before the answer is written, so a client that got its
	// answer always finds its call in the recording.
	s.calls = append(s.calls, call)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	w.Header().Set("Content-Type", a.contentType)
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body) // the client went away; nothing to do
}

// respond decides the answer in Slack's order of checks. s.mu is held.
func (s *Server) respond(method string, in request, c *Call) answer {
	if f, ok := s.takeFault(method); ok {
		return faultAnswer(f)
	}
	h, ok := s.handlers[method]
	if !ok {
		return slackError("unknown_method")
	}
	if in.errCode != "" {
		return slackError(in.errCode)
	}
	switch {
	case in.token == "":
		return slackError("not_authed")
	case in.token != s.token:
		return slackError("invalid_auth")
	}
	rep := h(in.params, c)
	if rep.err != "" {
		return slackError(rep.err)
	}
	return okAnswer(rep.fields)
}

func (s *Server) takeFault(method string) (Fault, bool) {
	q := s.faults[method]
	if len(q) == 0 {
		return Fault{}, false
	}
	s.faults[method] = q[1:]
	return q[0], true
}

func faultAnswer(f Fault) answer {
	if f.Status != 0 && f.Status != http.StatusOK {
		if f.Status == http.StatusTooManyRequests {
			a := slackErrorStatus(http.StatusTooManyRequests, "ratelimited")
			a.retryAfter = strconv.Itoa(f.RetryAfter)
			a.injected = true
			return a
		}
		// Slack sends an HTML page with 5xx; slack-go does not read it.
		return answer{
			status:      f.Status,
			contentType: "text/plain; charset=utf-8",
			body:        fmt.Appendf(nil, "slackfake: injected HTTP %d\n", f.Status),
			injected:    true,
		}
	}
	code := f.SlackError
	if code == "" {
		code = defaultFaultError
	}
	a := slackError(code)
	a.injected = true
	return a
}

func slackError(code string) answer { return slackErrorStatus(http.StatusOK, code) }

func slackErrorStatus(status int, code string) answer {
	body, _ := json.Marshal(map[string]any{"ok": false, "error": code}) // strings always encode
	return answer{status: status, contentType: jsonContentType, body: body, errCode: code}
}

const jsonContentType = "application/json; charset=utf-8"

func okAnswer(fields map[string]any) answer {
	out := map[string]any{"ok": true}
	for k, v := range fields {
		out[k] = v
	}
	body, err := json.Marshal(out)
	if err != nil {
		// Only reachable if a handler stored invalid raw JSON; say so
		// loudly instead of answering a half-truth.
		return answer{
			status:      http.StatusInternalServerError,
			contentType: "text/plain; charset=utf-8",
			body:        fmt.Appendf(nil, "slackfake: encoding answer: %v\n", err),
		}
	}
	return answer{status: http.StatusOK, contentType: jsonContentType, body: body}
}

// request is a decoded incoming call.
type request struct {
	body         []byte
	params       params
	recordedForm url.Values
	jsonMap      map[string]any
	token        string
	errCode      string // Slack error code when the request cannot be decoded
}

// readRequest decodes r the way slack.com does: GET arguments in the query,
// POST arguments in a form or JSON body. The token comes from the
// Authorization header or, for form posts and GETs, the "token" argument;
// Slack ignores a token inside a JSON body.
func readRequest(r *http.Request) request {
	var in request
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	in.body = body
	if err != nil {
		in.errCode = "request_timeout"
		return in
	}
	if len(body) > maxBodyBytes {
		in.errCode = "request_too_large"
		return in
	}

	var form url.Values
	switch r.Method {
	case http.MethodGet:
		form = r.URL.Query()
	case http.MethodPost:
		form, in.jsonMap, in.params.json, in.errCode = decodeBody(r.Header.Get("Content-Type"), body)
		if form != nil {
			for k, vs := range r.URL.Query() {
				if _, ok := form[k]; !ok {
					form[k] = vs
				}
			}
		}
	default:
		in.errCode = "invalid_post_type"
	}

	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		in.token = strings.TrimSpace(tok)
	} else if form != nil {
		in.token = form.Get("token")
	}
	if form != nil {
		in.params.form = form
		in.recordedForm = cloneWithout(form, "token")
	}
	return in
}

// decodeBody returns either a form or a JSON object, or a Slack error code.
func decodeBody(contentType string, body []byte) (url.Values, map[string]any, map[string]json.RawMessage, string) {
	mediaType := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, nil, nil, "invalid_post_type"
		}
		mediaType = mt
	}
	switch {
	case mediaType == "application/x-www-form-urlencoded", mediaType == "" && len(body) == 0:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, nil, nil, "invalid_form_data"
		}
		return form, nil, nil, ""
	case mediaType == "application/json":
		var m map[string]any
		var raw map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil || json.Unmarshal(body, &raw) != nil || raw == nil {
			return nil, nil, nil, "invalid_json"
		}
		return nil, m, raw, ""
	case mediaType == "":
		return nil, nil, nil, "missing_post_type"
	default:
		return nil, nil, nil, "invalid_post_type"
	}
}

func cloneWithout(v url.Values, key string) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		if k != key {
			out[k] = slices.Clone(vs)
		}
	}
	return out
}

// params reads arguments uniformly from a form or a JSON body.
type params struct {
	form url.Values
	json map[string]json.RawMessage
}

// has reports whether the argument was sent at all.
func (p params) has(name string) bool {
	if p.json != nil {
		_, ok := p.json[name]
		return ok
	}
	_, ok := p.form[name]
	return ok
}

// str returns a scalar argument as a string.
func (p params) str(name string) string {
	if p.json == nil {
		return p.form.Get(name)
	}
	v, ok := p.json[name]
	if !ok || bytes.Equal(v, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v) // numbers and booleans as written
}

// raw returns a JSON-valued argument (blocks, view). Form bodies carry it as a
// JSON-encoded string; JSON bodies as a nested value or such a string. It
// returns nil when the argument is absent and an error when it is not JSON.
func (p params) raw(name string) (json.RawMessage, error) {
	var text []byte
	if p.json == nil {
		if !p.has(name) {
			return nil, nil
		}
		text = []byte(p.form.Get(name))
	} else {
		v, ok := p.json[name]
		if !ok || bytes.Equal(v, []byte("null")) {
			return nil, nil
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			text = []byte(s)
		} else {
			text = v
		}
	}
	if !json.Valid(text) {
		return nil, fmt.Errorf("argument %q is not JSON", name)
	}
	return json.RawMessage(slices.Clone(text)), nil
}
