package bot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// GroupLister is the Slack call behind Directory (usergroups.users.list).
type GroupLister interface {
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
}

// groupCacheTTL bounds how stale a cached group membership may be. A
// removal from an approver group takes effect within this time.
const groupCacheTTL = time.Minute

// Directory answers which of the configured approver groups a user is in,
// for approvals.Directory. Memberships are cached so the ack path rarely
// waits on Slack.
type Directory struct {
	api    GroupLister
	groups []string
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedGroup
}

type cachedGroup struct {
	members []string
	at      time.Time
}

// NewDirectory builds a Directory over the given group IDs.
func NewDirectory(api GroupLister, groups []string, now func() time.Time) *Directory {
	return &Directory{api: api, groups: groups, now: now, cache: map[string]cachedGroup{}}
}

// GroupsOf returns the configured groups that have user as a member.
func (d *Directory) GroupsOf(ctx context.Context, user string) ([]string, error) {
	var out []string
	for _, g := range d.groups {
		members, err := d.members(ctx, g)
		if err != nil {
			return nil, err
		}
		if slices.Contains(members, user) {
			out = append(out, g)
		}
	}
	return out, nil
}

func (d *Directory) members(ctx context.Context, group string) ([]string, error) {
	d.mu.Lock()
	c, ok := d.cache[group]
	d.mu.Unlock()
	if ok && d.now().Sub(c.at) < groupCacheTTL {
		return c.members, nil
	}
	m, err := d.api.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("list members of user group %s: %w", group, err)
	}
	d.mu.Lock()
	d.cache[group] = cachedGroup{members: m, at: d.now()}
	d.mu.Unlock()
	return m, nil
}
