package main

// try_page.go is what the console page of `rotary try` shows, derived from
// the config and the simulated platform: the channels, the people (who
// requests, who approves, who responds to an emergency, and why), the
// walk-through, the platform's description, and why a target is
// unavailable.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/console"
	"github.com/aivo-platform/rotary/commands"
	"github.com/aivo-platform/rotary/rotators/apikey"
)

// tryChannels are the config's channels, named for the page.
func tryChannels(cfg *Config) []console.Channel {
	out := []console.Channel{{
		ID: cfg.RequestChannel, Name: "secret-rotations",
		Purpose: "The config's request_channel (" + cfg.RequestChannel + "): requests, approvals and each rotation's thread.",
	}}
	if cfg.AnnounceChannel != "" {
		out = append(out, console.Channel{
			ID: cfg.AnnounceChannel, Name: "platform-announcements",
			Purpose: "The config's announce_channel (" + cfg.AnnounceChannel + "): a line when a rotation starts and when it ends.",
		})
	}
	return out
}

// Synthetic Slack IDs for the people the config does not name.
const (
	idRequester  = "U0TRYREQUESTER"
	idApprover   = "U0TRYAPPROVER"
	idOutsider   = "U0TRYOUTSIDER"
	idResponder  = "U0TRYRESPONDER"
	idGroupBase  = "U0TRYGROUPMEMBER"
	roleApprover = "approver"
)

// tryCandidate is someone the config authorises in the default
// environment: a listed user, or a member the console gives a listed group.
type tryCandidate struct {
	id, group string
}

// tryPeople derives the people of the page from the config's approver sets
// in its default environment: the requester is an approver too when the
// config names enough people (so the refusal shows the two-person rule, not
// a missing permission), the two approvers are a listed user and a member
// of a listed user group where possible, and the responder comes from the
// emergency section (a break-glass user first). It returns the people and
// every user group the config names, with the members the console gives it.
func tryPeople(cfg *Config) ([]console.Person, map[string][]string) {
	pool, groups := tryApproverPool(cfg)
	take := func(fallback string) tryCandidate {
		if len(pool) == 0 {
			return tryCandidate{id: fallback}
		}
		c := pool[0]
		pool = pool[1:]
		return c
	}
	requester := tryCandidate{id: idRequester}
	if len(pool) >= 3 {
		requester = take(idRequester)
	}
	first, second := take(idApprover+"1"), take(idApprover+"2")
	responder := tryResponder(cfg.Emergency, []string{requester.id, first.id, second.id})
	for _, c := range []tryCandidate{requester, first, second, responder} {
		if c.group != "" && !slices.Contains(groups[c.group], c.id) {
			groups[c.group] = append(groups[c.group], c.id)
		}
	}

	about := tryAbout{cfg: cfg, env: cfg.DefaultEnv, policy: cfg.Policy(), groups: groups}
	secondRole := roleApprover
	if second.group != "" {
		secondRole = roleApprover + " (group)"
	}
	return []console.Person{
		{ID: requester.id, Name: "Riya", Role: "requester", About: about.requester(requester)},
		{ID: first.id, Name: "Arun", Role: roleApprover, About: about.approver(first)},
		{ID: second.id, Name: "Bea", Role: secondRole, About: about.approver(second)},
		{ID: idOutsider, Name: "Otto", Role: "outsider", About: "In the channel, but in no approver set: rotary refuses his approvals and denials."},
		{ID: responder.id, Name: "Rosa", Role: "responder", About: about.responder(responder)},
	}, groups
}

// tryApproverPool lists the candidates for requester and approvers, most
// often named first: the users the approver sets of the default
// environment list, then a synthetic member for each group they list. It
// also returns every user group the config names (approver sets of any
// environment, emergency responders and escalation), without members yet.
func tryApproverPool(cfg *Config) ([]tryCandidate, map[string][]string) {
	env := cfg.DefaultEnv
	var users, groupsOrder []string
	counts := map[string]int{}
	groups := map[string][]string{}
	knowGroup := func(g string) {
		if _, ok := groups[g]; !ok {
			groups[g] = []string{}
		}
	}
	for _, t := range cfg.Targets {
		for e, ap := range t.Approvers {
			for _, g := range ap.Groups {
				knowGroup(g)
				if e == env {
					if counts[g] == 0 {
						groupsOrder = append(groupsOrder, g)
					}
					counts[g]++
				}
			}
			if e != env {
				continue
			}
			for _, u := range ap.Users {
				if counts[u] == 0 {
					users = append(users, u)
				}
				counts[u]++
			}
		}
	}
	em := cfg.Emergency
	for _, g := range slices.Concat(em.Responders.Groups, em.BreakGlass.EscalateTo.Groups) {
		knowGroup(g)
	}
	byCount := func(ids []string) {
		slices.SortStableFunc(ids, func(a, b string) int { return counts[b] - counts[a] })
	}
	byCount(users)
	byCount(groupsOrder)
	var pool []tryCandidate
	for _, u := range users {
		pool = append(pool, tryCandidate{id: u})
	}
	for i, g := range groupsOrder {
		pool = append(pool, tryCandidate{id: idGroupBase + strconv.Itoa(i+1), group: g})
	}
	return pool, groups
}

// tryResponder picks the emergency responder: the first break-glass user
// (when break glass is enabled), listed responder, or member of the first
// responder group who is not already one of the used people; idResponder
// when there is none.
func tryResponder(em approvals.Emergency, used []string) tryCandidate {
	var candidates []tryCandidate
	if em.BreakGlass.Enabled {
		for _, u := range em.BreakGlass.Users {
			candidates = append(candidates, tryCandidate{id: u})
		}
	}
	for _, u := range em.Responders.Users {
		candidates = append(candidates, tryCandidate{id: u})
	}
	if len(em.Responders.Groups) > 0 {
		candidates = append(candidates, tryCandidate{id: idResponder, group: em.Responders.Groups[0]})
	}
	for _, c := range candidates {
		if !slices.Contains(used, c.id) {
			return c
		}
	}
	return tryCandidate{id: idResponder}
}

// tryAbout writes what the page says about a person, from what the config's
// policy grants them in env (groups: the members the console gives each
// user group).
type tryAbout struct {
	cfg    *Config
	env    string
	policy approvals.Policy
	groups map[string][]string
}

// approves lists the targets c may approve in env.
func (a tryAbout) approves(c tryCandidate) []string {
	var in []string
	if c.group != "" {
		in = []string{c.group}
	}
	var out []string
	for _, t := range a.cfg.Targets {
		if ap, ok := a.policy.Targets[t.Name].Approvers[a.env]; ok && ap.Allows(c.id, in) {
			out = append(out, t.Name)
		}
	}
	return out
}

// tryHow says how the config authorises c.
func tryHow(c tryCandidate) string {
	if c.group != "" {
		return "as a member of user group " + c.group + ", which the config lists (this workspace makes them a member)"
	}
	return "listed by ID in the config"
}

// approver describes one of the two approvers: what they may approve, or
// that the config names nobody further and they are refused.
func (a tryAbout) approver(c tryCandidate) string {
	ts := a.approves(c)
	if len(ts) == 0 {
		return "The config names no further approver for " + a.env + ", so this person is refused like anyone outside the approver sets."
	}
	return "Approver for " + strings.Join(ts, ", ") + " in " + a.env + ", " + tryHow(c) + "."
}

// requester describes the requester, and why an approver among them still
// cannot approve their own request.
func (a tryAbout) requester(c tryCandidate) string {
	if ts := a.approves(c); len(ts) > 0 {
		return "Opens the requests. Also an approver for " + strings.Join(ts, ", ") + " in " + a.env + " (" + tryHow(c) +
			"), yet rotary refuses to let them approve their own request: a second person must."
	}
	return "Opens the requests. Not an approver."
}

// responder describes the emergency responder: responder, break glass,
// or neither when the config names none.
func (a tryAbout) responder(c tryCandidate) string {
	em := a.cfg.Emergency
	var resp []string
	if em.Responders.Allows(c.id, tryGroupsOf(a.groups, c.id)) {
		resp = append(resp, "An emergency responder (emergency.responders, "+tryHow(c)+"): may approve or deny emergency requests.")
	}
	if em.BreakGlass.Enabled && slices.Contains(em.BreakGlass.Users, c.id) {
		resp = append(resp, "May break glass (emergency.break_glass): their emergency rotations start at once, and a second person reviews them afterwards.")
	}
	if len(resp) == 0 {
		return "On call for emergencies. This config names no emergency responders, so rotary treats them like anyone else."
	}
	return strings.Join(resp, " ")
}

// tryGroupsOf lists the groups that have user as a member.
func tryGroupsOf(groups map[string][]string, user string) []string {
	var out []string
	for g, ms := range groups {
		if slices.Contains(ms, user) {
			out = append(out, g)
		}
	}
	return out
}

// tryGuide is the page's walk-through, with the config's own names.
func tryGuide(cfg *Config, targets []tryTarget, people []console.Person) []string {
	target, manual, jwt := "", "", false
	for _, t := range cfg.Targets {
		if t.Name == apikey.ProviderOpenAI || (target == "" && t.Kind == kindAPIKey) {
			target = t.Name
		}
		jwt = jwt || t.Name == commands.TargetJWT
	}
	for _, t := range targets {
		if manual == "" && t.Kind == kindAPIKey && t.Provider == apikey.ProviderManual {
			manual = t.Name
		}
	}
	if target == "" && len(cfg.Targets) > 0 {
		target = cfg.Targets[0].Name
	}
	req, appr, outsider, responder := people[0].Name, people[1].Name, people[3].Name, people[4].Name
	out := []string{
		"As " + req + " (requester), type /rotate " + target + ` --reason "quarterly" and press Enter.`,
		"Click Approve as " + req + ": rotary refuses, because a second person must approve.",
		"Switch to " + appr + " (approver) and click Approve.",
		"Watch the steps arrive in the request's thread; the announcements channel gets the start and the outcome.",
	}
	also := "Also try Deny (it asks for a reason), /rotate list, and " + outsider + " approving"
	if manual != "" {
		also += ", and /rotate " + manual + " (the requester pastes a key)"
	}
	out = append(out, also+".")
	if jwt {
		out = append(out, `An emergency: /rotate-jwt --emergency --reason "key leaked" alerts the whole channel; `+responder+" (responder) or an approver approves it.")
	}
	return out
}

// tryUnavailableReason says why the simulation cannot play a kind, or "".
func tryUnavailableReason(kind string) string {
	switch kind {
	case kindDatabase:
		return "needs a PostgreSQL server, which the simulation does not have. Run `rotary serve` against a real one; the database rotator's own tests use a local server (test/services.sh)."
	case kindRedis:
		return "needs a Redis server (redis-server), which the simulation does not have. Run `rotary serve` against a real one; the redis rotator's own tests use a local server (test/services.sh)."
	}
	return ""
}

// lines describe the platform for the page.
func (p *tryPlatform) lines(realKube, realGSM bool, getenv func(string) string) []string {
	out := []string{"Slack: this page. It serves the Web API the bot calls and posts signed commands, clicks and modal submissions to the bot's real /slack endpoints."}
	if realGSM {
		out = append(out, "Secret Manager: REAL, the emulator at "+getenv(envGSMEmulator)+" ("+envGSMEmulator+").")
	} else {
		out = append(out, fmt.Sprintf("Secret Manager: simulated in-process over real gRPC, with %d secrets holding made-up values.", p.gsmCount))
	}
	if realKube {
		out = append(out, "Kubernetes: REAL, the cluster of "+envKubeconfig+"="+getenv(envKubeconfig)+".")
	} else {
		out = append(out, fmt.Sprintf("Kubernetes: simulated (client-go fakes with kubesim's Deployment, External Secrets and Job controllers); each controller step takes %s, so rollouts visibly progress.", p.delay),
			"Commands run in pods (the emergency session invalidation) are simulated: they run nothing and exit 0.")
	}
	if p.jwt {
		out = append(out, fmt.Sprintf("jwt targets wait out an access-token lifetime of at most %s here (try shortens token_lifetime), so a rotation finishes while you watch.", tryTokenLifetime))
	}
	out = append(out,
		"OpenAI and SendGrid admin APIs: simulated; every key they issue is made up. Stripe keys are pasted by a person: paste anything.",
		"Credentials (the Slack signing secret and token, provider admin keys): generated for this run; none of yours is read.")
	return out
}
