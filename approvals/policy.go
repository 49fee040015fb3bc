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
