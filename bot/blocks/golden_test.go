package blocks

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// update rewrites the golden files: go test ./bot/blocks -update. A flag must
// be registered before the test binary parses flags, hence package level.
var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// message is how a (fallback text, blocks) pair is stored in a golden file.
type message struct {
	Text   string        `json:"text"`
	Blocks []slack.Block `json:"blocks"`
}

// golden compares v's indented JSON (or a string verbatim) with testdata/<name>.golden.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	var got []byte
	if s, ok := v.(string); ok {
		got = []byte(s + "\n")
	} else {
		got = marshal(t, v, "  ")
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (run with -update to create it): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// marshal encodes v without Go's HTML escaping, so the golden files show
// < > & exactly as Slack decodes them. It ends with a newline.
func marshal(t *testing.T, v any, indent string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	// slack-go marshals some nested types (context elements) with
	// json.Marshal, which escapes them anyway; undo that so every golden
	// file reads alike. Inside a JSON string \u003c and < are the same text.
	out := buf.Bytes()
	if !bytes.Contains(out, []byte(`\\u00`)) {
		out = bytes.ReplaceAll(out, []byte(`\u003c`), []byte("<"))
		out = bytes.ReplaceAll(out, []byte(`\u003e`), []byte(">"))
		out = bytes.ReplaceAll(out, []byte(`\u0026`), []byte("&"))
	}
	return out
}

// checkMessage holds every message to Slack's limits and to the escaping
// rules, and compares it with its golden file.
func checkMessage(t *testing.T, name, text string, blocks []slack.Block) {
	t.Helper()
	checkSlackRules(t, name, text, blocks)
	golden(t, name, message{Text: text, Blocks: blocks})
}

func TestRequestGolden(t *testing.T) {
	notes := []string{"You will be asked to paste the new key.", "ai-orchestrator restarts during the rotation."}
	for _, s := range approvals.AllStates {
		t.Run(string(s), func(t *testing.T) {
			text, blocks := Request(request(s), runFor(s), notes, tNow)
			checkMessage(t, "request_"+string(s), text, blocks)
		})
	}
	t.Run("pending_emergency_no_reason", func(t *testing.T) {
		r := request(approvals.StatePending)
		r.Emergency, r.Reason = true, ""
		text, blocks := Request(r, nil, nil, tNow)
		checkMessage(t, "request_pending_emergency", text, blocks)
	})
	t.Run("pending_past_expiry", func(t *testing.T) {
		text, blocks := Request(request(approvals.StatePending), nil, nil, tExpires)
		checkMessage(t, "request_pending_past_expiry", text, blocks)
	})
}

func TestProgressGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state approvals.State
		run   *executor.Run
	}{
		{"not_started", approvals.StateApproved, nil},
		{"running", approvals.StateRunning, runRunning()},
		{"secret_prompt", approvals.StateRunning, runSecretPrompt()},
		{"confirm_prompt", approvals.StateRunning, runConfirmPrompt()},
		{"rolling_back", approvals.StateRunning, runRollingBack()},
		{"succeeded", approvals.StateSucceeded, runSucceeded()},
		{"rolled_back", approvals.StateRolledBack, runRolledBack()},
		{"failed", approvals.StateFailed, runRollbackFailed()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := Progress(request(tc.state), tc.run)
			checkMessage(t, "progress_"+tc.name, text, blocks)
		})
	}
}

func TestReplyGolden(t *testing.T) {
	for _, tc := range []struct {
		event string
		state approvals.State
		run   *executor.Run
		n     approvals.Notice
	}{
		{event: "approved", state: approvals.StateApproved, n: approvals.Notice{Actor: bob}},
		{event: "denied", state: approvals.StateDenied, n: approvals.Notice{Actor: bob}},
		{event: "cancelled", state: approvals.StateCancelled, n: approvals.Notice{Actor: alice}},
		{event: "expired", state: approvals.StateExpired},
		{event: "succeeded", state: approvals.StateSucceeded, run: runSucceeded()},
		{event: "failed", state: approvals.StateFailed, run: runRollbackFailed()},
		{event: "rolled_back", state: approvals.StateRolledBack, run: runRolledBack()},
		{event: "input_needed", state: approvals.StateRunning, run: runSecretPrompt(), n: approvals.Notice{Step: "create_key", Prompt: "paste_key"}},
		{event: "input_needed_confirm", state: approvals.StateRunning, run: runConfirmPrompt(), n: approvals.Notice{Step: "revoke_old", Prompt: "confirm_revoke"}},
		{event: "input_needed_answered", state: approvals.StateRunning, run: runRunning(), n: approvals.Notice{Step: "create_key", Prompt: "paste_key"}},
		{event: "secret_lost", state: approvals.StateRunning, run: runRunning()},
	} {
		t.Run(tc.event, func(t *testing.T) {
			n := tc.n
			n.Kind, n.RequestID, n.Event = approvals.NoticeReply, "R-7K2M9Q", tc.event
			switch tc.event {
			case "input_needed_confirm", "input_needed_answered":
				n.Event = EventInputNeeded
			}
			text, blocks := Reply(n, request(tc.state), tc.run)
			checkMessage(t, "reply_"+tc.event, text, blocks)
		})
	}
}

func TestAnnouncementGolden(t *testing.T) {
	for _, s := range []approvals.State{approvals.StateRunning, approvals.StateSucceeded, approvals.StateFailed, approvals.StateRolledBack, approvals.StateDenied} {
		t.Run(string(s), func(t *testing.T) {
			r := request(s)
			n := approvals.Notice{Kind: approvals.NoticeAnnounce, RequestID: r.ID, Event: string(s)}
			text, blocks := Announcement(n, r)
			checkMessage(t, "announce_"+string(s), text, blocks)
		})
	}
	t.Run("emergency", func(t *testing.T) {
		r := request(approvals.StateRunning)
		r.Emergency = true
		text, blocks := Announcement(approvals.Notice{Kind: approvals.NoticeAnnounce, Event: "running"}, r)
		checkMessage(t, "announce_running_emergency", text, blocks)
	})
}

func TestListGolden(t *testing.T) {
	emergency := request(approvals.StatePending)
	emergency.ID, emergency.Target, emergency.Emergency = "R-8P3X1Z", "jwt", true
	t.Run("empty", func(t *testing.T) {
		text, blocks := List(nil, tNow)
		checkMessage(t, "list_empty", text, blocks)
	})
	t.Run("open", func(t *testing.T) {
		text, blocks := List([]*approvals.Request{request(approvals.StateRunning), emergency}, tNow)
		checkMessage(t, "list_open", text, blocks)
	})
}

func TestStatusGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state approvals.State
		run   *executor.Run
		now   time.Time
	}{
		{"pending", approvals.StatePending, nil, tNow},
		{"running_prompt", approvals.StateRunning, runConfirmPrompt(), tNow.Add(20 * time.Minute)},
		{"rolled_back", approvals.StateRolledBack, runRolledBack(), tNow.Add(20 * time.Minute)},
		{"denied", approvals.StateDenied, nil, tNow.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := Status(request(tc.state), tc.run, tc.now)
			checkMessage(t, "status_"+tc.name, text, blocks)
		})
	}
}

func TestModalsGolden(t *testing.T) {
	deny := DenyModal("R-7K2M9Q")
	checkModal(t, "modal_deny", deny)
	golden(t, "modal_deny", deny)
	paste := PasteModal("R-7K2M9Q", "paste_key", "Create a key in the Stripe dashboard and paste it here")
	checkModal(t, "modal_paste", paste)
	golden(t, "modal_paste", paste)
}

func TestHelpGolden(t *testing.T) {
	h := Help(hints())
	checkMrkdwn(t, "help", h, maxSectionText)
	golden(t, "help", h)
	if Help(Hints{}) == "" {
		t.Error("Help with no targets is empty")
	}
}
