package bot

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/bot/slackfake"
)

func newDirectoryFixture(t *testing.T, groups ...string) (*Directory, *slackfake.Server, *clock) {
	t.Helper()
	fake := slackfake.New()
	t.Cleanup(fake.Close)
	c := &clock{t: t0}
	api := slack.New(slackfake.DefaultToken, slack.OptionAPIURL(fake.APIURL()))
	return NewDirectory(api, groups, c.Now), fake, c
}

func lookups(f *slackfake.Server) int { return len(f.CallsTo("usergroups.users.list")) }

func TestDirectoryGroupsOf(t *testing.T) {
	d, fake, _ := newDirectoryFixture(t, "SPLATFORM", "SSECURITY")
	fake.SetGroupMembers("SPLATFORM", "UDAVE", "UERIN")
	fake.SetGroupMembers("SSECURITY", "UDAVE")
	fake.SetGroupMembers("SOTHER", "UFRANK", "UDAVE") // not configured: never asked, never answered
	fake.SetGroupMembers("SEMPTY")

	cases := []struct {
		user string
		want []string
	}{
		{"UDAVE", []string{"SPLATFORM", "SSECURITY"}},
		{"UERIN", []string{"SPLATFORM"}},
		{"UFRANK", nil},
		{"UNOBODY", nil},
	}
	for _, tc := range cases {
		got, err := d.GroupsOf(testCtx(t), tc.user)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("GroupsOf(%s) = %v, %v; want %v", tc.user, got, err, tc.want)
		}
	}
	for _, c := range fake.CallsTo("usergroups.users.list") {
		if g := c.Form.Get("usergroup") + c.Query; strings.Contains(g, "SOTHER") {
			t.Errorf("asked Slack about an unconfigured group: %s", g)
		}
	}
	// One lookup per configured group, however many users were asked about.
	if n := lookups(fake); n != 2 {
		t.Fatalf("%d lookups, want 2", n)
	}
}

func TestDirectoryCacheExpires(t *testing.T) {
	d, fake, c := newDirectoryFixture(t, "SPLATFORM")
	fake.SetGroupMembers("SPLATFORM", "UDAVE")
	in := func(user string) bool {
		t.Helper()
		g, err := d.GroupsOf(testCtx(t), user)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(g, "SPLATFORM")
	}
	if !in("UDAVE") || lookups(fake) != 1 {
		t.Fatalf("first answer: lookups %d", lookups(fake))
	}
	// Dave leaves the group; the cached membership holds for groupCacheTTL.
	fake.SetGroupMembers("SPLATFORM")
	c.Advance(groupCacheTTL - time.Nanosecond)
	if !in("UDAVE") || lookups(fake) != 1 {
		t.Fatalf("inside the TTL: lookups %d, want 1 (cached)", lookups(fake))
	}
	c.Advance(time.Nanosecond)
	if in("UDAVE") || lookups(fake) != 2 {
		t.Fatalf("at the TTL: removal not seen (lookups %d, want 2)", lookups(fake))
	}
	// The refreshed answer is cached from when it was fetched.
	c.Advance(groupCacheTTL - time.Nanosecond)
	if in("UDAVE") || lookups(fake) != 2 {
		t.Fatalf("refreshed entry not cached: lookups %d", lookups(fake))
	}
}

func TestDirectoryErrors(t *testing.T) {
	t.Run("unknown group", func(t *testing.T) {
		d, fake, _ := newDirectoryFixture(t, "SPLATFORM", "SGONE")
		fake.SetGroupMembers("SPLATFORM", "UDAVE")
		got, err := d.GroupsOf(testCtx(t), "UDAVE")
		var se slack.SlackErrorResponse
		if got != nil || !errors.As(err, &se) || se.Err != "no_such_subteam" || !strings.Contains(err.Error(), "SGONE") {
			t.Fatalf("GroupsOf = %v, %v; want a wrapped no_such_subteam naming the group", got, err)
		}
		// Errors are not cached: once the group exists the answer comes.
		fake.SetGroupMembers("SGONE", "UDAVE")
		if got, err := d.GroupsOf(testCtx(t), "UDAVE"); err != nil || len(got) != 2 {
			t.Fatalf("after the group appeared: %v %v", got, err)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		d, fake, _ := newDirectoryFixture(t, "SPLATFORM")
		fake.SetGroupMembers("SPLATFORM", "UDAVE")
		fake.FailNext("usergroups.users.list", 1, slackfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3})
		_, err := d.GroupsOf(testCtx(t), "UDAVE")
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second || !strings.Contains(err.Error(), "SPLATFORM") {
			t.Fatalf("err %v; want a wrapped *slack.RateLimitedError naming the group", err)
		}
	})
}

// The service asks the directory only when the target's approvers use
// groups; a group member approves through it.
func TestDirectoryBehindTheService(t *testing.T) {
	h := newHarness(t)
	r := h.openRequest("stripe") // user-only approvers
	h.approve(r.ID)
	if n := lookups(h.fake); n != 0 {
		t.Fatalf("%d group lookups for a target without groups", n)
	}
	r2 := h.openRequest("openai")
	if _, err := h.svc.Approve(testCtx(t), r2.ID, groupApprover); err != nil {
		t.Fatalf("group member could not approve: %v", err)
	}
	if n := lookups(h.fake); n != 1 {
		t.Fatalf("%d group lookups, want 1", n)
	}
}
