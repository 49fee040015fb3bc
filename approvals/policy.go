package approvals

import (
	"slices"
	"time"
)

// Approvers is who may approve: Slack user IDs and user-group IDs (opaque here).
type Approvers struct {
	Users  []string `json:"users,omitempty" yaml:"users"`
	Groups []string `json:"groups,omitempty" yaml:"groups"`
}

// Allows reports whether a user with the given group memberships is in the set.
func (a Approvers) Allows(user string, groups []string) bool {
	if slices.Contains(a.Users, user) {
		return true
	}
	for _, g := range groups {
		if slices.Contains(a.Groups, g) {
			return true
		}
	}
	return false
}

// Target is what the policy knows of a rotation target.
type Target struct {
	Name string
	Kind string
	// Approvers per environment name; the keys are the target's valid environments.
	Approvers map[string]Approvers
}

// Policy is the two-person rule's configuration.
type Policy struct {
	// TTL is how long a request stays pending before it expires.
	TTL time.Duration
	// DefaultEnv is used when a command names no environment.
	DefaultEnv string
	// RequireReason makes --reason mandatory.
	RequireReason bool
	Targets       map[string]Target
	Emergency     Emergency
}

// Emergency configures the compromised-secret path (`--emergency`): speed
// and noise, but still two people.
type Emergency struct {
	// Responders may approve (or deny) emergency requests besides the
	// target's approvers: the on-call set is wider than the usual approvers.
	Responders Approvers
	// TTL is how long an emergency request waits for a second person; short,
	// because an unanswered emergency must be re-raised, not left waiting.
	TTL time.Duration
	// BreakGlass lets named responders start at once, reviewed afterwards.
	BreakGlass BreakGlass
}

// BreakGlass lets named responders start an emergency rotation without
// approval. The second person then reviews it afterwards; a missed review
// deadline re-notifies with escalation. Off unless Enabled.
type BreakGlass struct {
	Enabled bool
	// Users are the Slack user IDs who may break glass (named people only,
	// never groups, so the list is a deliberate, reviewable decision).
	Users []string
	// ReviewWithin is the review deadline, and the interval between escalations.
	ReviewWithin time.Duration
	// MaxEscalations bounds the re-notifications for one request.
	MaxEscalations int
	// EscalateTo is mentioned in escalations (users and user groups).
	EscalateTo Approvers
}

// mayBreakGlass reports whether user may start an emergency without approval.
func (p Policy) mayBreakGlass(user string) bool {
	return p.Emergency.BreakGlass.Enabled && slices.Contains(p.Emergency.BreakGlass.Users, user)
}

// deciders returns who may decide r (approve, deny, review): the target's
// approvers for r's environment, plus the responders when r is an emergency.
func (p Policy) deciders(r *Request) (Approvers, error) {
	set, err := p.approversFor(r.Target, r.Env)
	if err != nil {
		return Approvers{}, err
	}
	if r.Emergency {
		set = Approvers{
			Users:  append(slices.Clone(set.Users), p.Emergency.Responders.Users...),
			Groups: append(slices.Clone(set.Groups), p.Emergency.Responders.Groups...),
		}
	}
	return set, nil
}

// ttl is how long a new request waits for a decision.
func (p Policy) ttl(emergency bool) time.Duration {
	if emergency && p.Emergency.TTL > 0 {
		return p.Emergency.TTL
	}
	return p.TTL
}

// approversFor returns the target's approver set for env.
func (p Policy) approversFor(target, env string) (Approvers, error) {
	t, ok := p.Targets[target]
	if !ok {
		return Approvers{}, ErrUnknownTarget
	}
	a, ok := t.Approvers[env]
	if !ok {
		return Approvers{}, ErrUnknownEnv
	}
	return a, nil
}

// Envs returns the target's environments, sorted.
func (t Target) Envs() []string {
	var envs []string
	for e := range t.Approvers {
		envs = append(envs, e)
	}
	slices.Sort(envs)
	return envs
}
