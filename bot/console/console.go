// Package console is the page behind `rotary try`: a local web app that
// plays Slack for several people at once, so that one person can walk
// through rotary's two-person flow in a browser without a Slack workspace.
//
// It owns three things:
//   - the Slack Web API the bot calls: a bot/slackfake server, whose
//     workspace model (channels, threads, ephemeral messages, modals) is
//     what the page shows;
//   - the Slack side of the app's request URLs: slash commands, button
//     clicks and modal submissions are posted to the bot's real
//     /slack/commands and /slack/interactions endpoints with Slack's
//     payload shapes and a v0 signature over a fresh timestamp, exactly as
//     Slack does, never through a shortcut into the core;
//   - the page itself: embedded HTML/CSS/JS (no build step), a JSON state
//     endpoint rendered per person, and server-sent events for live updates.
//
// Rules:
//   - Nothing in the bot knows it talks to the console, and the console
//     knows the bot only through HTTP.
//   - Block Kit and mrkdwn are rendered to HTML here, in Go, with every
//     piece of text escaped; the browser inserts finished HTML and never
//     interprets a message itself.
//   - A value pasted into a modal goes from the browser to the bot's
//     view_submission endpoint and nowhere else: it is not logged, not kept,
//     not part of any state the page reads back.
//   - The server answers only on a loopback host name and refuses
//     cross-origin writes, so another web page in the same browser cannot
//     act as one of the people.
package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Person is someone the page can act as.
type Person struct {
	// ID is the Slack user ID the bot sees.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Role is one or two words ("requester", "approver").
	Role string `json:"role"`
	// About says, in a sentence, who this person is under the loaded
	// config and why the bot treats them the way it does.
	About string `json:"about"`
}

// Channel is a channel the page shows.
type Channel struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Purpose string `json:"purpose,omitempty"`
}

// Unavailable is a configured target that this console cannot play.
type Unavailable struct {
	Target string
	Reason string
}

// Config configures a Console.
type Config struct {
	// BotURL is the base URL of rotary's HTTP server.
	BotURL string
	// SigningSecret is the Slack app's signing secret the bot verifies.
	SigningSecret secret.Value
	// Channels are shown in this order; the first is selected at start and
	// is where the people type commands.
	Channels []Channel
	// People are who the page can act as; the first is selected at start.
	People []Person
	// Groups are the user groups the workspace knows, with their members
	// (every group the bot may ask about must be here, even when empty).
	Groups map[string][]string
	// Commands are the slash commands the app declares.
	Commands []string
	// Simulated labels the page SIMULATED; Platform says, a line each,
	// what plays each part of the platform.
	Simulated bool
	Platform  []string
	// Unavailable lists targets the page explains instead of running.
	Unavailable []Unavailable
	// Guide is a short walk-through shown beside the channel, a step a line.
	Guide []string
	// AckLimit is how long Slack waits for the bot's answer before it shows
	// the person an error. The console waits longer (AckWait) and says so
	// when the bot was late, rather than losing the answer.
	AckLimit time.Duration
	AckWait  time.Duration

	Now      func() time.Time
	Location *time.Location
	Log      *slog.Logger
	Rand     io.Reader
}

// Defaults of Config.
const (
	// DefaultAckLimit is Slack's: an app must answer within 3 seconds.
	DefaultAckLimit = 3 * time.Second
	// DefaultAckWait is how long the console waits for any answer.
	DefaultAckWait = 15 * time.Second
	// maxTriggers bounds the remembered trigger IDs (a modal opens within
	// seconds of its trigger, so old ones are useless).
	maxTriggers = 1000
	// tokenBytes is the randomness of the bot token the fake accepts.
	tokenBytes = 16
)

// Console is the page and the Slack stand-in behind it.
type Console struct {
	botURL      string
	signer      signer
	fake        *slackfake.Server
	token       string
	people      []Person
	commands    []string
	unavailable map[string]string
	simulated   bool
	platform    []string
	unavailList []Unavailable
	guide       []string
	http        *http.Client
	log         *slog.Logger
	now         func() time.Time
	loc         *time.Location
	rand        io.Reader
	ackLimit    time.Duration
	page        *template.Template
	static      http.Handler

	closing   chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	version   uint64
	changed   chan struct{} // closed and replaced on every change
	seq       int
	seen      map[string]seenItem
	local     []*localMessage
	triggers  map[string]string // trigger ID -> user ID
	trigOrder []string
	views     map[string]*viewState
	channels  []Channel
	lastCall  int
}

// seenItem is when the console first saw a message and its place in the
// page's order.
type seenItem struct {
	seq int
	at  time.Time
}

// localMessage is a message that never passed through the Web API: the
// bot's answer to a command (Slack shows it as an ephemeral message) or a
// note of Slack's or the console's own.
type localMessage struct {
	key       string
	seq       int
	at        time.Time
	channel   string
	user      string // who sees it; all when broadcast
	broadcast bool
	author    string
	command   string // the command it answers
	text      string
	blocks    json.RawMessage
}

// viewState is the console's side of a modal: whose it is and whether it
// is still open.
type viewState struct {
	owner   string
	open    bool
	errors  map[string]string
	update  json.RawMessage // a view the bot's response_action replaced it with
	updates int
}

// Authors of messages that did not come from the bot's Web API calls.
const (
	authorSlack   = "Slackbot"
	authorConsole = "rotary try"
)

// New validates cfg and starts the Slack Web API stand-in. Close it when done.
func New(cfg Config) (*Console, error) {
	if err := validate(cfg); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.AckLimit <= 0 {
		cfg.AckLimit = DefaultAckLimit
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	page, err := template.ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("console: parse the page template: %w", err)
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	tok := make([]byte, tokenBytes)
	if _, err := io.ReadFull(cfg.Rand, tok); err != nil {
		return nil, fmt.Errorf("console: make a bot token: %w", err)
	}

	c := &Console{
		botURL:      strings.TrimSuffix(cfg.BotURL, "/"),
		signer:      signer{secret: cfg.SigningSecret, now: cfg.Now},
		token:       "xoxb-try-" + hex.EncodeToString(tok),
		people:      slices.Clone(cfg.People),
		commands:    slices.Clone(cfg.Commands),
		unavailable: map[string]string{},
		simulated:   cfg.Simulated,
		platform:    slices.Clone(cfg.Platform),
		unavailList: slices.Clone(cfg.Unavailable),
		guide:       slices.Clone(cfg.Guide),
		http:        &http.Client{Timeout: cfg.AckWait},
		log:         cfg.Log,
		now:         cfg.Now,
		loc:         cfg.Location,
		rand:        cfg.Rand,
		ackLimit:    cfg.AckLimit,
		page:        page,
		static:      http.FileServerFS(static),
		closing:     make(chan struct{}),
		changed:     make(chan struct{}),
		seen:        map[string]seenItem{},
		triggers:    map[string]string{},
		views:       map[string]*viewState{},
		channels:    slices.Clone(cfg.Channels),
	}
	for _, u := range cfg.Unavailable {
		c.unavailable[u.Target] = u.Reason
	}
	c.fake = slackfake.New()
	c.fake.SetToken(c.token)
	for _, p := range c.people {
		c.fake.AddUser(p.ID, p.Name)
	}
	for _, ch := range c.channels {
		c.fake.AddChannel(ch.ID, ch.Name)
	}
	for g, members := range cfg.Groups {
		c.fake.SetGroupMembers(g, members...)
	}
	return c, nil
}

func validate(cfg Config) error {
	var problems []string
	if u, err := url.Parse(cfg.BotURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("BotURL %q is not an http(s) URL of rotary's server", cfg.BotURL))
	}
	if cfg.SigningSecret.IsZero() {
		problems = append(problems, "SigningSecret is empty: the bot would refuse every request")
	}
	if len(cfg.Channels) == 0 {
		problems = append(problems, "no channel: give at least the request channel")
	}
	if len(cfg.People) == 0 {
		problems = append(problems, "no people to act as")
	}
	if len(cfg.Commands) == 0 {
		problems = append(problems, "no slash commands: give the app's (e.g. /rotate)")
	}
	ids := map[string]bool{}
	for _, p := range cfg.People {
		if p.ID == "" || p.Name == "" {
			problems = append(problems, fmt.Sprintf("person %+v needs an ID and a name", p))
		}
		if ids[p.ID] {
			problems = append(problems, fmt.Sprintf("person ID %s is listed twice", p.ID))
		}
		ids[p.ID] = true
	}
	for _, ch := range cfg.Channels {
		if ch.ID == "" || ch.Name == "" {
			problems = append(problems, fmt.Sprintf("channel %+v needs an ID and a name", ch))
		}
	}
	if len(problems) > 0 {
		return errors.New("console: " + strings.Join(problems, "; "))
	}
	return nil
}

// SlackAPIURL is the Web API base URL to give the bot (SLACK_API_URL).
func (c *Console) SlackAPIURL() string { return c.fake.APIURL() }

// BotToken is the only bot token the Web API stand-in accepts
// (SLACK_BOT_TOKEN). It is random per console and worthless elsewhere.
func (c *Console) BotToken() string { return c.token }

// Slack is the Web API stand-in, for tests that inspect what the bot sent.
func (c *Console) Slack() *slackfake.Server { return c.fake }

// Close stops the Web API stand-in and ends open event streams.
func (c *Console) Close() {
	c.stopStreams()
	c.fake.Close()
}

func (c *Console) stopStreams() { c.closeOnce.Do(func() { close(c.closing) }) }

// person returns the person with the ID.
func (c *Console) person(id string) (Person, bool) {
	i := slices.IndexFunc(c.people, func(p Person) bool { return p.ID == id })
	if i < 0 {
		return Person{}, false
	}
	return c.people[i], true
}

// channelLocked returns the channel with the ID. c.mu is held.
func (c *Console) channelLocked(id string) (Channel, bool) {
	i := slices.IndexFunc(c.channels, func(ch Channel) bool { return ch.ID == id })
	if i < 0 {
		return Channel{}, false
	}
	return c.channels[i], true
}

// newTrigger makes a trigger ID for a person's command or click, and
// remembers whose it is, so the modal it opens goes to them.
func (c *Console) newTrigger(user string) string {
	var r [8]byte
	_, _ = io.ReadFull(c.rand, r[:]) // a short read only makes the ID less random
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	id := strconv.Itoa(c.seq) + "." + strconv.FormatInt(c.now().Unix(), 10) + "." + hex.EncodeToString(r[:])
	c.triggers[id] = user
	c.trigOrder = append(c.trigOrder, id)
	if len(c.trigOrder) > maxTriggers {
		delete(c.triggers, c.trigOrder[0])
		c.trigOrder = c.trigOrder[1:]
	}
	return id
}

// changedLocked records a change and wakes the event streams. c.mu is held.
func (c *Console) changedLocked() {
	c.version++
	close(c.changed)
	c.changed = make(chan struct{})
}

// watch turns every Web API call the bot makes into a change the page
// hears about, until ctx ends.
func (c *Console) watch(ctx context.Context) {
	n := 0
	for {
		calls, err := c.fake.WaitFor(ctx, func(cs []slackfake.Call) bool { return len(cs) > n })
		if err != nil {
			return
		}
		n = len(calls)
		c.mu.Lock()
		c.syncLocked()
		c.changedLocked()
		c.mu.Unlock()
	}
}

// Keys of messages on the page.
func messageKey(channel, ts string) string   { return "m:" + channel + ":" + ts }
func ephemeralKey(channel, ts string) string { return "e:" + channel + ":" + ts }

// anchorOf is the DOM id of a message's element.
func anchorOf(key string) string {
	b := []byte("msg-" + key)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// syncLocked gives every message the stand-in holds that the console has
// not seen yet its place in the page's order (the Web API's timestamps are
// one increasing sequence across channels), notes channels the bot posted
// to that nobody configured, and registers new modals with the person whose
// trigger opened them. c.mu is held.
func (c *Console) syncLocked() {
	calls := c.fake.Calls()
	for _, call := range calls[min(c.lastCall, len(calls)):] {
		if (call.Method == "chat.postMessage" || call.Method == "chat.postEphemeral") && !call.Failed && call.Channel != "" {
			if _, ok := c.channelLocked(call.Channel); !ok {
				c.channels = append(c.channels, Channel{ID: call.Channel, Name: call.Channel, Purpose: "A channel the config does not name; rotary posted here."})
			}
		}
	}
	c.lastCall = len(calls)

	type fresh struct{ key, ts string }
	var news []fresh
	for _, ch := range c.channels {
		for _, m := range c.fake.Messages(ch.ID) {
			if k := messageKey(ch.ID, m.TS); !c.isSeen(k) {
				news = append(news, fresh{k, m.TS})
			}
		}
		for _, m := range c.fake.Ephemerals(ch.ID) {
			if k := ephemeralKey(ch.ID, m.TS); !c.isSeen(k) {
				news = append(news, fresh{k, m.TS})
			}
		}
	}
	sort.Slice(news, func(i, j int) bool { return news[i].ts < news[j].ts })
	now := c.now()
	for _, n := range news {
		c.seq++
		c.seen[n.key] = seenItem{seq: c.seq, at: now}
	}
	for _, v := range c.fake.Views() {
		if _, ok := c.views[v.ID]; !ok {
			c.views[v.ID] = &viewState{owner: c.triggers[v.TriggerID], open: true}
		}
	}
}

func (c *Console) isSeen(key string) bool { _, ok := c.seen[key]; return ok }

// addLocalLocked adds a message the bot's Web API calls did not make.
// c.mu is held.
func (c *Console) addLocalLocked(m *localMessage) {
	c.syncLocked() // whatever the bot posted before this answer comes first
	c.seq++
	m.seq, m.at = c.seq, c.now()
	m.key = "l:" + strconv.Itoa(m.seq)
	c.local = append(c.local, m)
	c.changedLocked()
}

// note adds a message to one person from Slack or the console itself.
func (c *Console) note(channel, user, author, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocalLocked(&localMessage{channel: channel, user: user, author: author, text: text})
}

// renderer returns the page's renderer. c.mu is held.
func (c *Console) rendererLocked() *renderer {
	return &renderer{
		users: func(id string) string {
			if p, ok := c.person(id); ok {
				return p.Name
			}
			if id == slackfake.BotUserID {
				return slackfake.BotName
			}
			return ""
		},
		channels: func(id string) string {
			if ch, ok := c.channelLocked(id); ok {
				return ch.Name
			}
			return ""
		},
		anchor: c.permalinkAnchorLocked,
		now:    c.now,
		loc:    c.loc,
	}
}

// permalinkAnchorLocked maps a permalink of the fake workspace
// (…/archives/C123/p1700000000000100) to the message's element on the page.
func (c *Console) permalinkAnchorLocked(link string) string {
	rest, ok := strings.CutPrefix(link, slackfake.WorkspaceURL+"archives/")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "?")
	ch, p, ok := strings.Cut(rest, "/p")
	if !ok || len(p) <= 6 {
		return ""
	}
	ts := p[:len(p)-6] + "." + p[len(p)-6:]
	k := messageKey(ch, ts)
	if !c.isSeen(k) {
		return ""
	}
	return anchorOf(k)
}

// isSecretModal reports whether a modal collects a secret, whose inputs
// the page masks.
func isSecretModal(callbackID string) bool { return callbackID == blocks.CallbackPasteSecret }
