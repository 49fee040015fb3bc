package bot

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
)

func TestCommandsAnswerEphemerally(t *testing.T) {
	h := newHarness(t)
	open := h.openRequest("openai")
	cases := []struct {
		name, command, text string
		want                []string // substrings of the text
		blocks              bool
	}{
		{"unknown command", "/rotate-everything", "now", []string{"rotary does not know that command", "/rotate help"}, false},
		{"help", CommandRotate, "help", []string{"*Commands*", "/rotate status &lt;id&gt;", "`openai`: `prod`, `staging`", "`stripe`: `prod`"}, false},
		{"list", CommandRotate, "list", []string{"1 open request."}, true},
		{"status", CommandRotate, "status " + strings.ToLower(open.ID), []string{open.ID}, true},
		{"status of an unknown request", CommandRotate, "status R-NOPE000", []string{"No request R-NOPE000", "/rotate list"}, false},
		{"parse error", CommandRotate, "openai --env", []string{"--env needs a value", "Usage: /rotate &lt;target&gt;"}, false},
		{"unknown target", CommandRotate, "gitlab", []string{"Unknown target gitlab", "`openai`, `stripe`"}, false},
		{"unknown env", CommandRotate, "stripe --env staging", []string{"Unknown environment staging for *stripe*", "`prod`"}, false},
		{"one open request per target", CommandRotate, "openai", []string{"already has an open request", open.ID}, false},
		{"cancel by someone else", CommandRotate, "cancel " + open.ID, []string{"Only the person who opened a request"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.command(approver, tc.command, tc.text)
			if resp.ResponseType != slack.ResponseTypeEphemeral {
				t.Fatalf("response_type %q", resp.ResponseType)
			}
			for _, w := range tc.want {
				if !strings.Contains(resp.Text, w) && !strings.Contains(string(joinRaw(resp)), w) {
					t.Errorf("answer does not contain %q:\n%s\n%s", w, resp.Text, joinRaw(resp))
				}
			}
			if got := len(resp.Blocks) > 0; got != tc.blocks {
				t.Errorf("blocks present %v, want %v", got, tc.blocks)
			}
		})
	}
	// No command above changed anything or called Slack.
	if calls := h.slackCalls(); len(calls) != 0 {
		t.Fatalf("Slack Web API calls on the ack path: %+v", calls)
	}
	if got := h.get(open.ID); got.State != approvals.StatePending {
		t.Fatalf("state %s", got.State)
	}
	if rs, _ := h.svc.ListOpen(testCtx(t)); len(rs) != 1 {
		t.Fatalf("%d open requests", len(rs))
	}
}

func joinRaw(r commandResponse) []byte {
	var b []byte
	for _, x := range r.Blocks {
		b = append(b, x...)
	}
	return b
}

func TestCommandListEmpty(t *testing.T) {
	h := newHarness(t)
	if resp := h.command(requester, CommandRotate, "list"); resp.Text != "No open requests." {
		t.Fatalf("text %q", resp.Text)
	}
}

func TestCommandOpenAndCancel(t *testing.T) {
	h := newHarness(t)
	resp := h.command(requester, CommandRotateJWT, `--reason "key leaked in a log"`)
	rs, err := h.svc.ListOpen(testCtx(t))
	if err != nil || len(rs) != 0 {
		// jwt is not a configured target here: the answer names the known ones.
		t.Fatalf("opened %d requests for an unconfigured target (%v)", len(rs), err)
	}
	if !strings.Contains(resp.Text, "Unknown target") {
		t.Fatalf("text %q", resp.Text)
	}

	resp = h.command(requester, CommandRotate, `stripe --reason "quarterly"`)
	rs, _ = h.svc.ListOpen(testCtx(t))
	if len(rs) != 1 || rs[0].Requester != requester || rs[0].Reason != "quarterly" || rs[0].Slack.Channel != requestChannel {
		t.Fatalf("open requests %+v", rs)
	}
	if !strings.Contains(resp.Text, "Opened "+rs[0].ID) {
		t.Fatalf("text %q", resp.Text)
	}
	resp = h.command(requester, CommandRotate, "cancel "+rs[0].ID)
	if !strings.Contains(resp.Text, "Cancelled "+rs[0].ID) || h.get(rs[0].ID).State != approvals.StateCancelled {
		t.Fatalf("cancel: %q", resp.Text)
	}
	decided := h.logs.find(t, "request decided")
	if len(decided) != 1 || decided[0]["state"] != string(approvals.StateCancelled) || decided[0]["actor"] != requester {
		t.Fatalf("cancel not logged once as a decision:\n%s", h.logs)
	}
}

func TestCommandEmergency(t *testing.T) {
	h := newHarness(t)
	// An emergency needs its reason: it goes to everyone.
	for _, cmd := range []struct{ command, text string }{
		{CommandRotate, "openai --emergency"},
		{CommandRotate, "--emergency --env staging openai"},
	} {
		resp := h.command(requester, cmd.command, cmd.text)
		if resp.ResponseType != slack.ResponseTypeEphemeral || !strings.Contains(resp.Text, "An emergency needs a reason") {
			t.Fatalf("%s %s: %+v", cmd.command, cmd.text, resp)
		}
	}
	if n := h.depth(); n != 0 {
		t.Fatalf("a refused emergency queued %d notices", n)
	}

	resp := h.command(requester, CommandRotate, `openai --emergency --reason "key in a public gist"`)
	if !strings.Contains(resp.Text, "EMERGENCY rotation of *openai (prod)*") || !strings.Contains(resp.Text, "The channel has been alerted") {
		t.Fatalf("answer %+v", resp)
	}
	rs, _ := h.svc.ListOpen(testCtx(t))
	if len(rs) != 1 || !rs[0].Emergency || rs[0].State != approvals.StatePending {
		t.Fatalf("open requests %+v", rs)
	}
	for range 3 {
		h.deliver()
	}
	root := h.get(rs[0].ID).Slack.RootTS
	var alerts []string
	for _, c := range h.fake.CallsTo("chat.postMessage") {
		if strings.HasPrefix(c.Text, "<!channel>") {
			if c.ThreadTS != "" {
				t.Fatalf("the channel-wide alert went into a thread: %+v", c)
			}
			alerts = append(alerts, c.Channel)
			if !strings.Contains(string(c.Blocks), "/archives/"+requestChannel+"/p"+strings.ReplaceAll(root, ".", "")) {
				t.Errorf("the request channel's alert does not link the request: %s", c.Blocks)
			}
		}
	}
	if !slices.Equal(alerts, []string{requestChannel, announceChannel}) {
		t.Fatalf("channel-wide alerts went to %v, want the request and announcement channels", alerts)
	}
}

func TestCommandInternalErrorShowsRefAndLogsTheError(t *testing.T) {
	for _, text := range []string{"list", "status R-T00001", "stripe"} {
		t.Run(text, func(t *testing.T) {
			h := newHarness(t)
			h.closeStore()
			resp := h.command(requester, CommandRotate, text)
			if resp.ResponseType != slack.ResponseTypeEphemeral || resp.Text != "Something went wrong on rotary's side (ref: `REF-1`); the team has been told." {
				t.Fatalf("answer %+v", resp)
			}
			logged := h.logs.find(t, "internal error answering Slack")
			if len(logged) != 1 || logged[0]["ref"] != "REF-1" || logged[0]["level"] != "ERROR" {
				t.Fatalf("internal error not logged with its ref: %v\n%s", logged, h.logs)
			}
			if e, _ := logged[0]["err"].(string); !strings.Contains(e, "database not open") {
				t.Fatalf("logged err %q does not carry the real error", e)
			}
		})
	}
}

func TestCommandMalformed(t *testing.T) {
	h := newHarness(t)
	if w := h.signedPost("/slack/commands", "command=%zz"); w.Code != http.StatusBadRequest {
		t.Fatalf("HTTP %d, want 400", w.Code)
	}
}
