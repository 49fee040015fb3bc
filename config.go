package main

// config.go loads rotary's configuration file. It decodes the YAML into
// nodes and walks them itself, so that every problem (not just the first)
// is reported with its key path and line, and unknown keys are problems
// rather than silently ignored. A target's kind-specific keys are left to
// the kind, decoded strictly with line numbers that point into the file.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/commands"
	"github.com/aivo-platform/rotary/rotators"
)

// Defaults and bounds of the top-level settings.
const (
	defaultListen        = ":8080"
	defaultStatePath     = "rotary.db"
	defaultRequestTTL    = time.Hour
	defaultSweepInterval = 30 * time.Second
	defaultEnvName       = "prod"
	defaultAdminListen   = "127.0.0.1:8081"

	// Emergency defaults: an emergency waits briefly for its second person,
	// and a break-glass rotation must be reviewed within half an hour.
	defaultEmergencyTTL   = 15 * time.Minute
	minEmergencyTTL       = time.Minute
	maxEmergencyTTL       = time.Hour
	defaultReviewWithin   = 30 * time.Minute
	minReviewWithin       = 5 * time.Minute
	maxReviewWithin       = 24 * time.Hour
	defaultMaxEscalations = 3
	maxMaxEscalations     = 20

	// A request must stay open long enough for a second person to see it,
	// and not so long that an approval lands on a forgotten request.
	minRequestTTL = time.Minute
	maxRequestTTL = 24 * time.Hour
	// The sweep expires requests and retries the outbox; slower than a few
	// minutes makes expiry visibly late, faster than a second is busy-work.
	minSweepInterval = time.Second
	maxSweepInterval = 10 * time.Minute

	// maxParamNodes bounds the nodes of one target's kind settings after
	// aliases are expanded, so an alias bomb cannot exhaust memory.
	maxParamNodes = 10000
)

// Config is rotary's configuration file.
type Config struct {
	Listen    string
	StatePath string
	// RequestChannel is where requests are posted; AnnounceChannel (optional)
	// gets a line when a rotation finishes.
	RequestChannel  string
	AnnounceChannel string
	RequestTTL      time.Duration
	SweepInterval   time.Duration
	DefaultEnv      string
	RequireReason   bool
	// AdminListen is the loopback-only address of the admin endpoints
	// (`rotary audit export` reads through it while the bot holds the state file).
	AdminListen string
	Emergency   approvals.Emergency
	// Targets in file order.
	Targets []*TargetConfig
}

// TargetConfig is one entry of `targets:`. The loader owns kind,
// description and approvers; everything else is the kind's (params).
type TargetConfig struct {
	Name        string
	Kind        string
	Description string
	// Approvers per environment; the keys are the target's environments.
	Approvers map[string]approvals.Approvers

	// params is a mapping of the target's remaining keys, with the file's
	// line numbers.
	params yaml.Node
	// line is where the target is defined; kindLine where its kind is.
	line, kindLine int
}

// Keys of the file.
const (
	keyListen        = "listen"
	keyStatePath     = "state_path"
	keySlack         = "slack"
	keyRequestTTL    = "request_ttl"
	keyDefaultEnv    = "default_env"
	keyRequireReason = "require_reason"
	keySweepInterval = "sweep_interval"
	keyTargets       = "targets"
	keyAdminListen   = "admin_listen"
	keyEmergency     = "emergency"

	keyResponders     = "responders"
	keyBreakGlass     = "break_glass"
	keyEnabled        = "enabled"
	keyReviewWithin   = "review_within"
	keyMaxEscalations = "max_escalations"
	keyEscalateTo     = "escalate_to"

	keyRequestChannel  = "request_channel"
	keyAnnounceChannel = "announce_channel"

	keyKind        = "kind"
	keyDescription = "description"
	keyApprovers   = "approvers"

	keyUsers  = "users"
	keyGroups = "groups"
)

// rootPath is the path of problems about the file as a whole.
const rootPath = "(file)"

// LoadConfig reads and validates the file at path. The error is only for a
// file that cannot be read or is not YAML; everything else is a Problem,
// all of them collected. The Config is usable only when there are none.
func LoadConfig(path string) (*Config, []rotators.Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, problems, err := parseConfig(data)
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, problems, nil
}

// parseConfig is LoadConfig without the file.
func parseConfig(data []byte) (*Config, []rotators.Problem, error) {
	l := &loader{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	default:
		l.add(rootPath, &more, "a second YAML document (after ---) is not allowed; keep one document")
	}
	cfg := &Config{
		Listen:        defaultListen,
		StatePath:     defaultStatePath,
		RequestTTL:    defaultRequestTTL,
		SweepInterval: defaultSweepInterval,
		DefaultEnv:    defaultEnvName,
		AdminListen:   defaultAdminListen,
		Emergency: approvals.Emergency{
			TTL:        defaultEmergencyTTL,
			BreakGlass: approvals.BreakGlass{ReviewWithin: defaultReviewWithin, MaxEscalations: defaultMaxEscalations},
		},
	}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = deref(doc.Content[0])
	}
	if root == nil || isNull(root) {
		root = &yaml.Node{Kind: yaml.MappingNode}
	}
	if root.Kind != yaml.MappingNode {
		l.add(rootPath, root, "the file must be a mapping of settings (listen, slack, targets, ...)")
		return cfg, l.problems, nil
	}
	l.config(cfg, root)
	return cfg, l.problems, nil
}

// loader collects problems while walking the file.
type loader struct {
	problems []rotators.Problem
}

// add records a problem at path, with n's line when known.
func (l *loader) add(path string, n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n != nil && n.Line > 0 {
		msg = fmt.Sprintf("line %d: %s", n.Line, msg)
	}
	l.problems = append(l.problems, rotators.Problem{Path: path, Message: msg})
}

// pair is one key of a mapping.
type pair struct {
	key      string
	keyNode  *yaml.Node
	val      *yaml.Node
	path     string
	valIsNil bool
}

// pairs returns m's keys in order. A key given twice is a problem (YAML
// parsers disagree on which one wins); the first is kept.
func (l *loader) pairs(path string, m *yaml.Node) []pair {
	var out []pair
	first := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			at := path
			if at == "" {
				at = rootPath
			}
			l.add(at, k, "a key must be a plain name, not a list or mapping")
			continue
		}
		p := join(path, k.Value)
		if k.ShortTag() == "!!merge" {
			l.add(path, k, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		if line, dup := first[k.Value]; dup {
			l.add(p, k, "%q is given twice (first at line %d); keep one", k.Value, line)
			continue
		}
		first[k.Value] = k.Line
		out = append(out, pair{key: k.Value, keyNode: k, val: v, path: p, valIsNil: isNull(v)})
	}
	return out
}

// join makes the key path path.key; either may be empty.
func join(path, key string) string {
	if path == "" {
		return key
	}
	if key == "" {
		return path
	}
	return path + "." + key
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (l *loader) config(cfg *Config, root *yaml.Node) {
	var targets *pair
	sawSlack := false
	for _, p := range l.pairs("", root) {
		switch p.key {
		case keyListen:
			if s, ok := l.str(p); ok {
				l.listen(p, s)
				cfg.Listen = s
			}
		case keyStatePath:
			if s, ok := l.str(p); ok {
				if s == "" {
					l.add(p.path, p.val, "is empty: name the bbolt file (default %s)", defaultStatePath)
				}
				cfg.StatePath = s
			}
		case keySlack:
			sawSlack = true
			l.slack(cfg, p)
		case keyRequestTTL:
			if d, ok := l.duration(p, minRequestTTL, maxRequestTTL); ok {
				cfg.RequestTTL = d
			}
		case keySweepInterval:
			if d, ok := l.duration(p, minSweepInterval, maxSweepInterval); ok {
				cfg.SweepInterval = d
			}
		case keyDefaultEnv:
			if s, ok := l.str(p); ok {
				cfg.DefaultEnv = s
				if err := commands.ValidateEnv(s); err != nil {
					l.add(p.path, p.val, "%s", problemText(err))
				}
			}
		case keyRequireReason:
			if p.valIsNil {
				continue
			}
			var b bool
			if err := p.val.Decode(&b); err != nil || p.val.Kind != yaml.ScalarNode {
				l.add(p.path, p.val, "must be true or false")
				continue
			}
			cfg.RequireReason = b
		case keyAdminListen:
			if s, ok := l.str(p); ok {
				l.adminListen(p, s)
				cfg.AdminListen = s
			}
		case keyEmergency:
			l.emergency(cfg, p)
		case keyTargets:
			targets = &p
		default:
			l.add(p.path, p.keyNode, "unknown key %q; the known keys are %s", p.key,
				strings.Join([]string{keyListen, keyStatePath, keySlack, keyRequestTTL, keyDefaultEnv, keyRequireReason, keySweepInterval, keyAdminListen, keyEmergency, keyTargets}, ", "))
		}
	}
	if !sawSlack {
		l.add(join(keySlack, keyRequestChannel), nil, "is required: the ID of the channel where requests are posted (C… or G…)")
	}
	if targets == nil {
		l.add(keyTargets, nil, "is required: add at least one target under targets:")
		return
	}
	l.targets(cfg, *targets)
}

// str returns p's value as a string; ok is false when it is null (unset,
// keep the default) or not a scalar (a problem).
func (l *loader) str(p pair) (string, bool) {
	if p.valIsNil {
		return "", false
	}
	if p.val.Kind != yaml.ScalarNode {
		l.add(p.path, p.val, "must be a single value, not a list or mapping")
		return "", false
	}
	return p.val.Value, true
}

func (l *loader) listen(p pair, s string) {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		l.add(p.path, p.val, "%q is not an address to listen on: use host:port or :port, e.g. %s", s, defaultListen)
	}
}

func (l *loader) duration(p pair, lo, hi time.Duration) (time.Duration, bool) {
	s, ok := l.str(p)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.add(p.path, p.val, "%q is not a duration: use a Go duration such as 1h, 30m or 45s", s)
		return 0, false
	}
	if d < lo || d > hi {
		l.add(p.path, p.val, "%s is out of range: use a duration between %s and %s", d, lo, hi)
		return 0, false
	}
	return d, true
}

func (l *loader) slack(cfg *Config, p pair) {
	if p.val.Kind != yaml.MappingNode {
		l.add(p.path, p.val, "must be a mapping with %s and %s", keyRequestChannel, keyAnnounceChannel)
		return
	}
	sawRequest := false
	for _, q := range l.pairs(p.path, p.val) {
		switch q.key {
		case keyRequestChannel, keyAnnounceChannel:
			s, ok := l.str(q)
			if !ok {
				continue
			}
			if !isSlackID(s, "CG") {
				l.add(q.path, q.val, "%q is not a Slack channel ID: use the ID (C… or G…) from the channel's details, not its name", s)
			}
			if q.key == keyRequestChannel {
				cfg.RequestChannel, sawRequest = s, true
			} else {
				cfg.AnnounceChannel = s
			}
		default:
			l.add(q.path, q.keyNode, "unknown key %q; the known keys are %s, %s", q.key, keyRequestChannel, keyAnnounceChannel)
		}
	}
	if !sawRequest {
		l.add(join(p.path, keyRequestChannel), p.val, "is required: the ID of the channel where requests are posted (C… or G…)")
	}
}

// isSlackID reports whether s is one of prefixes followed by at least two
// of [A-Z0-9]: Slack's user (U/W), group (S) and channel (C/G) IDs.
func isSlackID(s, prefixes string) bool {
	if len(s) < 3 || !strings.ContainsRune(prefixes, rune(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (l *loader) targets(cfg *Config, p pair) {
	if p.valIsNil || (p.val.Kind == yaml.MappingNode && len(p.val.Content) == 0) {
		l.add(p.path, p.val, "has no targets: add at least one")
		return
	}
	if p.val.Kind != yaml.MappingNode {
		l.add(p.path, p.val, "must be a mapping of target names to their settings")
		return
	}
	defaultOK := commands.ValidateEnv(cfg.DefaultEnv) == nil
	for _, q := range l.pairs(p.path, p.val) {
		t := l.target(q)
		if t == nil {
			continue
		}
		cfg.Targets = append(cfg.Targets, t)
		if _, ok := t.Approvers[cfg.DefaultEnv]; defaultOK && len(t.Approvers) > 0 && !ok {
			l.add(join(q.path, keyApprovers), q.keyNode,
				"has no %q environment, which is default_env: add approvers for %s, or change default_env", cfg.DefaultEnv, cfg.DefaultEnv)
		}
	}
}

// target reads one target; nil when its value is not a mapping.
func (l *loader) target(p pair) *TargetConfig {
	if err := commands.ValidateTarget(p.key); err != nil {
		l.add(p.path, p.keyNode, "%s", problemText(err))
	}
	if p.val.Kind != yaml.MappingNode {
		l.add(p.path, p.val, "must be a mapping with kind, approvers and the kind's settings")
		return nil
	}
	t := &TargetConfig{
		Name:      p.key,
		Approvers: map[string]approvals.Approvers{},
		params:    yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.val.Line, Column: p.val.Column},
		line:      p.keyNode.Line,
	}
	sawKind, sawApprovers := false, false
	for _, q := range l.pairs(p.path, p.val) {
		switch q.key {
		case keyKind:
			sawKind = true
			t.kindLine = q.keyNode.Line
			s, ok := l.str(q)
			switch {
			case ok && s != "":
				t.Kind = s
			case ok || q.valIsNil:
				l.add(q.path, q.val, "is empty: set the kind of target, e.g. kind: apikey")
			}
		case keyDescription:
			if s, ok := l.str(q); ok {
				t.Description = s
			}
		case keyApprovers:
			sawApprovers = true
			l.approvers(t, q)
		default:
			t.params.Content = append(t.params.Content, q.keyNode, q.val)
		}
	}
	if !sawKind {
		l.add(join(p.path, keyKind), p.keyNode, "is required: set the kind of target, e.g. kind: apikey")
	}
	if !sawApprovers {
		l.add(join(p.path, keyApprovers), p.keyNode, "is required: list who may approve, per environment, e.g. approvers: {prod: {users: [U0123ABCD]}}")
	}
	return t
}

func (l *loader) approvers(t *TargetConfig, p pair) {
	if p.val.Kind != yaml.MappingNode || len(p.val.Content) == 0 {
		l.add(p.path, p.val, "must map each environment to its approvers, e.g. prod: {users: [U0123ABCD], groups: [S0123ABCD]}")
		return
	}
	for _, q := range l.pairs(p.path, p.val) {
		if err := commands.ValidateEnv(q.key); err != nil {
			l.add(q.path, q.keyNode, "%s", problemText(err))
		}
		if q.val.Kind != yaml.MappingNode {
			l.add(q.path, q.val, "must be a mapping with users and/or groups, e.g. {users: [U0123ABCD]}")
			continue
		}
		a := l.approverSet(q)
		if len(a.Users) == 0 && len(a.Groups) == 0 {
			l.add(q.path, q.val, "has no approvers: list at least one user or group")
		}
		t.Approvers[q.key] = a
	}
}

// approverSet reads a {users: [...], groups: [...]} mapping (already checked to be a mapping).
func (l *loader) approverSet(p pair) approvals.Approvers {
	var a approvals.Approvers
	for _, r := range l.pairs(p.path, p.val) {
		switch r.key {
		case keyUsers:
			a.Users = l.userIDs(r)
		case keyGroups:
			a.Groups = l.idList(r, "S", "a Slack user group ID: use the group's ID (S…), not its @handle")
		default:
			l.add(r.path, r.keyNode, "unknown key %q; the known keys are %s, %s", r.key, keyUsers, keyGroups)
		}
	}
	return a
}

func (l *loader) userIDs(p pair) []string {
	return l.idList(p, "UW", "a Slack user ID: use the member ID (U… or W…) from the person's Slack profile, not a name")
}

// adminListen requires a loopback address: the admin endpoints answer
// without Slack's signature, so only processes in the same pod may reach them.
func (l *loader) adminListen(p pair, s string) {
	if s == "" {
		return // disabled
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		l.add(p.path, p.val, "%q is not an address: use 127.0.0.1:PORT, or \"\" to turn the admin endpoints off", s)
		return
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		l.add(p.path, p.val, "%q is not a loopback address: the admin endpoints are unauthenticated, so they listen on 127.0.0.1 only", s)
	}
}

// emergency reads the `emergency:` section.
func (l *loader) emergency(cfg *Config, p pair) {
	if p.valIsNil {
		return
	}
	if p.val.Kind != yaml.MappingNode {
		l.add(p.path, p.val, "must be a mapping with %s, %s and %s", keyResponders, keyRequestTTL, keyBreakGlass)
		return
	}
	e := &cfg.Emergency
	for _, q := range l.pairs(p.path, p.val) {
		switch q.key {
		case keyResponders:
			if q.val.Kind != yaml.MappingNode {
				l.add(q.path, q.val, "must be a mapping with users and/or groups, e.g. {groups: [S0ONCALL1]}")
				continue
			}
			e.Responders = l.approverSet(q)
		case keyRequestTTL:
			if d, ok := l.duration(q, minEmergencyTTL, maxEmergencyTTL); ok {
				e.TTL = d
			}
		case keyBreakGlass:
			l.breakGlass(&e.BreakGlass, q)
		default:
			l.add(q.path, q.keyNode, "unknown key %q; the known keys are %s, %s, %s", q.key, keyResponders, keyRequestTTL, keyBreakGlass)
		}
	}
}

func (l *loader) breakGlass(bg *approvals.BreakGlass, p pair) {
	if p.valIsNil {
		return
	}
	if p.val.Kind != yaml.MappingNode {
		l.add(p.path, p.val, "must be a mapping with %s, %s, %s, %s and %s", keyEnabled, keyUsers, keyReviewWithin, keyMaxEscalations, keyEscalateTo)
		return
	}
	for _, q := range l.pairs(p.path, p.val) {
		switch q.key {
		case keyEnabled:
			if q.valIsNil {
				continue
			}
			if err := q.val.Decode(&bg.Enabled); err != nil || q.val.Kind != yaml.ScalarNode {
				l.add(q.path, q.val, "must be true or false")
			}
		case keyUsers:
			bg.Users = l.userIDs(q)
		case keyReviewWithin:
			if d, ok := l.duration(q, minReviewWithin, maxReviewWithin); ok {
				bg.ReviewWithin = d
			}
		case keyMaxEscalations:
			if q.valIsNil {
				continue
			}
			var n int
			if err := q.val.Decode(&n); err != nil || q.val.Kind != yaml.ScalarNode || n < 0 || n > maxMaxEscalations {
				l.add(q.path, q.val, "must be a whole number between 0 and %d", maxMaxEscalations)
				continue
			}
			bg.MaxEscalations = n
		case keyEscalateTo:
			if q.val.Kind != yaml.MappingNode {
				l.add(q.path, q.val, "must be a mapping with users and/or groups, e.g. {groups: [S0SECURITY]}")
				continue
			}
			bg.EscalateTo = l.approverSet(q)
		default:
			l.add(q.path, q.keyNode, "unknown key %q; the known keys are %s, %s, %s, %s, %s", q.key, keyEnabled, keyUsers, keyReviewWithin, keyMaxEscalations, keyEscalateTo)
		}
	}
	if bg.Enabled && len(bg.Users) == 0 {
		l.add(join(p.path, keyUsers), p.val, "is required when break-glass is enabled: name the responders (U…) who may start an emergency rotation without approval")
	}
}

// idList reads a list of Slack IDs with one of prefixes. Only valid IDs
// are kept.
func (l *loader) idList(p pair, prefixes, what string) []string {
	if p.valIsNil {
		return nil
	}
	if p.val.Kind != yaml.SequenceNode {
		l.add(p.path, p.val, "must be a list, e.g. %s: [%s0123ABCD]", p.key, prefixes[:1])
		return nil
	}
	var ids []string
	for i, n := range p.val.Content {
		n = deref(n)
		path := fmt.Sprintf("%s[%d]", p.path, i)
		if n.Kind != yaml.ScalarNode {
			l.add(path, n, "must be a single ID, not a list or mapping")
			continue
		}
		if !isSlackID(n.Value, prefixes) {
			l.add(path, n, "%q is not %s", n.Value, what)
			continue
		}
		if slices.Contains(ids, n.Value) {
			l.add(path, n, "%s is listed twice; keep one", n.Value)
			continue
		}
		ids = append(ids, n.Value)
	}
	return ids
}

// problemText is the problem of a commands.Error, or err's text.
func problemText(err error) string {
	var ce *commands.Error
	if errors.As(err, &ce) {
		return ce.Problem
	}
	return err.Error()
}

// Policy is the approvals policy the file describes.
func (c *Config) Policy() approvals.Policy {
	p := approvals.Policy{
		TTL:           c.RequestTTL,
		DefaultEnv:    c.DefaultEnv,
		RequireReason: c.RequireReason,
		Targets:       make(map[string]approvals.Target, len(c.Targets)),
		Emergency: approvals.Emergency{
			Responders: cloneApprovers(c.Emergency.Responders),
			TTL:        c.Emergency.TTL,
			BreakGlass: approvals.BreakGlass{
				Enabled:        c.Emergency.BreakGlass.Enabled,
				Users:          slices.Clone(c.Emergency.BreakGlass.Users),
				ReviewWithin:   c.Emergency.BreakGlass.ReviewWithin,
				MaxEscalations: c.Emergency.BreakGlass.MaxEscalations,
				EscalateTo:     cloneApprovers(c.Emergency.BreakGlass.EscalateTo),
			},
		},
	}
	for _, t := range c.Targets {
		// Copies, so the policy and the config never share a slice.
		ap := make(map[string]approvals.Approvers, len(t.Approvers))
		for env, a := range t.Approvers {
			ap[env] = cloneApprovers(a)
		}
		p.Targets[t.Name] = approvals.Target{Name: t.Name, Kind: t.Kind, Approvers: ap}
	}
	return p
}

func cloneApprovers(a approvals.Approvers) approvals.Approvers {
	return approvals.Approvers{Users: slices.Clone(a.Users), Groups: slices.Clone(a.Groups)}
}

// Build makes each target's Rotator with its kind. Problems have full key
// paths (targets.<name>.…). A target with any problem gets no Rotator.
// Targets without a kind were reported by LoadConfig and are skipped.
func (c *Config) Build(kinds []rotators.Kind, deps rotators.Deps) (map[string]rotators.Rotator, []rotators.Problem) {
	byName := make(map[string]rotators.Kind, len(kinds))
	for _, k := range kinds {
		byName[k.Name] = k
	}
	known := slices.Sorted(maps.Keys(byName))
	rots := make(map[string]rotators.Rotator, len(c.Targets))
	var problems []rotators.Problem
	for _, t := range c.Targets {
		if t.Kind == "" {
			continue
		}
		base := join(keyTargets, t.Name)
		k, ok := byName[t.Kind]
		if !ok || k.Build == nil {
			problems = append(problems, rotators.Problem{
				Path:    join(base, keyKind),
				Message: fmt.Sprintf("line %d: unknown kind %q; the known kinds are %s", t.kindLine, t.Kind, strings.Join(known, ", ")),
			})
			continue
		}
		// A kind cannot validate settings that did not decode; what it
		// reports then only echoes the decode error, so the decode's own
		// problems (with paths and lines) replace it.
		var decodeProblems []rotators.Problem
		decode := func(into any) error {
			ps := t.decodeParams(into, base)
			if len(ps) == 0 {
				return nil
			}
			decodeProblems = append(decodeProblems, ps...)
			return &paramsError{problems: ps}
		}
		rot, ps := k.Build(t.Name, decode, deps)
		switch {
		case len(decodeProblems) > 0:
			problems = append(problems, decodeProblems...)
		case len(ps) > 0:
			for _, p := range ps {
				p.Path = join(base, p.Path)
				problems = append(problems, p)
			}
		case rot == nil:
			problems = append(problems, rotators.Problem{Path: base, Message: fmt.Sprintf("line %d: kind %s made no rotator and reported no problem", t.line, t.Kind)})
		default:
			rots[t.Name] = rot
		}
	}
	return rots, problems
}

// paramsError is what decode returns to a kind: the problems, in one line.
type paramsError struct{ problems []rotators.Problem }

func (e *paramsError) Error() string {
	parts := make([]string, len(e.problems))
	for i, p := range e.problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// decodeParams decodes the target's kind settings into `into`, strictly
// (unknown keys are problems), and returns the problems with the file's
// key paths and lines.
//
// yaml's strict mode (KnownFields) exists only on a Decoder reading text,
// not on a Node, so the settings are written out as YAML and decoded again.
// The lines in yaml's errors then point into that text; lineMap maps them
// back to the file, and to the key path, by walking both trees together.
func (t *TargetConfig) decodeParams(into any, base string) []rotators.Problem {
	// yaml panics on a non-pointer; that is a bug in the kind, reported as a problem.
	if v := reflect.ValueOf(into); v.Kind() != reflect.Pointer || v.IsNil() {
		return []rotators.Problem{{Path: base, Message: fmt.Sprintf("line %d: kind %s decodes into %T, not a pointer (a bug in the kind)", t.line, t.Kind, into)}}
	}
	budget := maxParamNodes
	clean, err := cleanCopy(&t.params, &budget)
	if err != nil {
		return []rotators.Problem{{Path: base, Message: fmt.Sprintf("line %d: %v", t.line, err)}}
	}
	text, err := yaml.Marshal(clean)
	if err != nil {
		return []rotators.Problem{{Path: base, Message: fmt.Sprintf("line %d: cannot re-encode the settings: %v", t.line, err)}}
	}
	var again yaml.Node
	if err := yaml.Unmarshal(text, &again); err != nil || len(again.Content) != 1 {
		return []rotators.Problem{{Path: base, Message: fmt.Sprintf("line %d: cannot re-read the settings: %v", t.line, err)}}
	}
	lines := map[int]origin{}
	mapLines(clean, again.Content[0], base, lines)

	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	err = dec.Decode(into)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []rotators.Problem{{Path: base, Message: fmt.Sprintf("line %d: %v", t.line, err)}}
	}
	var out []rotators.Problem
	for _, e := range te.Errors {
		out = append(out, yamlProblem(e, base, t.line, lines))
	}
	return out
}

// origin is where a line of the re-encoded settings came from.
type origin struct {
	line int
	path string
}

// mapLines records, for each line of the re-encoded tree b, the file line
// and key path of the corresponding node of a. Deeper nodes overwrite
// shallower ones on the same line (a key and its scalar value share it).
func mapLines(a, b *yaml.Node, path string, lines map[int]origin) {
	if a == nil || b == nil || a.Kind != b.Kind {
		return
	}
	lines[b.Line] = origin{line: a.Line, path: path}
	switch a.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(a.Content) && i+1 < len(b.Content); i += 2 {
			p := join(path, a.Content[i].Value)
			lines[b.Content[i].Line] = origin{line: a.Content[i].Line, path: p}
			mapLines(a.Content[i+1], b.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i := 0; i < len(a.Content) && i < len(b.Content); i++ {
			mapLines(a.Content[i], b.Content[i], fmt.Sprintf("%s[%d]", path, i), lines)
		}
	}
}

// yamlProblem turns one of yaml's "line N: ..." errors about the
// re-encoded text into a Problem about the file.
func yamlProblem(e, base string, fallbackLine int, lines map[int]origin) rotators.Problem {
	at := origin{line: fallbackLine, path: base}
	msg := e
	if rest, ok := strings.CutPrefix(e, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				if o, ok := lines[n]; ok {
					at = o
				}
				msg = tail
			}
		}
	}
	// Rewrite yaml's wording, which names Go types, into the file's terms.
	if field, _, ok := strings.Cut(strings.TrimPrefix(msg, "field "), " not found in type "); ok && strings.HasPrefix(msg, "field ") {
		msg = fmt.Sprintf("unknown key %q: check its spelling and the settings of the target's kind", field)
	} else if got, want, ok := strings.Cut(strings.TrimPrefix(msg, "cannot unmarshal "), " into "); ok && strings.HasPrefix(msg, "cannot unmarshal ") {
		msg = fmt.Sprintf("wrong type: got %s, want %s", got, want)
	} else if before, num, ok := strings.Cut(msg, " already defined at line "); ok {
		if n, err := strconv.Atoi(num); err == nil {
			if o, ok := lines[n]; ok {
				num = strconv.Itoa(o.line)
			}
		}
		msg = before + " is given twice (first at line " + num + "); keep one"
	}
	return rotators.Problem{Path: at.path, Message: fmt.Sprintf("line %d: %s", at.line, msg)}
}

// cleanCopy copies n for re-encoding: aliases expanded (their anchors may
// lie outside n), comments and anchors dropped, collections in block style
// so that every key gets a line of its own. budget bounds the nodes made.
func cleanCopy(n *yaml.Node, budget *int) (*yaml.Node, error) {
	n = deref(n)
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("the settings expand to more than %d YAML nodes (aliases?); write them out plainly", maxParamNodes)
	}
	c := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value, Line: n.Line, Column: n.Column}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		c.Style &^= yaml.FlowStyle
	}
	for _, child := range n.Content {
		cc, err := cleanCopy(child, budget)
		if err != nil {
			return nil, err
		}
		c.Content = append(c.Content, cc)
	}
	return c, nil
}
