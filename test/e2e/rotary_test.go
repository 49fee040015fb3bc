package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// Slack identities and channels of every scenario.
const (
	signingSecret  = "e2e-signing-secret-6b1f0c2d9e8a7f30"
	requestChannel = "C0ROTATE"
	announce       = "C0ANNOUNCE"
	requester      = "UREQUESTER"
	approver       = "UAPPROVER"
)

// Named limits of one rotary process.
const (
	// startTimeout bounds a rotary start until it listens.
	startTimeout = 30 * time.Second
	// stopTimeout bounds a graceful stop (SIGTERM) of rotary; its own
	// shutdown budget is 30 s, but an idle process stops at once.
	stopTimeout = 40 * time.Second
	// requestTimeout bounds one signed POST to rotary.
	requestTimeout = 10 * time.Second
	// auditTimeout bounds one `rotary audit export` (a process start and a
	// read of the state file).
	auditTimeout = 30 * time.Second
)

// The log line rotary writes once it listens, and the request IDs it makes.
const (
	listeningMsg = `"msg":"rotary listening"`
	requestIDExp = `R-[2-9A-HJ-NP-Z]{8}`
)

// lockedBuffer collects the output of every rotary process of a scenario.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// rotaryProc is one running rotary process.
type rotaryProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited and been reaped
	// state is the exit status, valid after done.
	state *os.ProcessState
}

// exited reports how the process ended: "" if it exited 0, else a
// description ("signal: killed", "exit status 1").
func (p *rotaryProc) exited() string {
	<-p.done
	if p.state.Success() {
		return ""
	}
	return p.state.String()
}

func (p *rotaryProc) killedBySIGKILL() bool {
	<-p.done
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// rotaryEnv is the environment of every rotary process of the world. A
// non-empty faultStep makes it SIGKILL itself after that step is journaled.
func (w *world) rotaryEnv(faultStep string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.dir,
		"ROTARY_LOG_LEVEL=debug",
		"SLACK_SIGNING_SECRET=" + signingSecret,
		"SLACK_BOT_TOKEN=" + slackfake.DefaultToken,
		"SLACK_API_URL=" + w.slack.URL(),
		"SECRETMANAGER_EMULATOR_HOST=" + w.gsm.Addr(),
		"KUBECONFIG=" + w.s.rotaryKubeconfig,
	}
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	if faultStep != "" {
		env = append(env, "ROTARY_FAULT_KILL_AFTER_STEP="+faultStep)
	}
	return env
}

// startRotary starts rotary on the world's config and state file. A
// non-empty faultStep makes it SIGKILL itself after that step is journaled.
func (w *world) startRotary(faultStep string) *rotaryProc {
	w.t.Helper()
	cmd := exec.Command(w.s.bin, "serve", "--config", w.cfgPath)
	cmd.Env = w.rotaryEnv(faultStep)
	cmd.Dir = w.dir
	cmd.Stdout = w.logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("starting rotary: %v", err)
	}
	p := &rotaryProc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = w.logs.Write(append(append([]byte(nil), line...), '\n'))
			if bytes.Contains(line, []byte(listeningMsg)) {
				var rec struct {
					Addr string `json:"addr"`
				}
				if json.Unmarshal(line, &rec) == nil && rec.Addr != "" {
					select {
					case addr <- rec.Addr:
					default:
					}
				}
			}
		}
		_, _ = io.Copy(w.logs, stderr)
	}()
	go func() {
		<-copied // Wait must not run before the pipe is drained
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	// Whatever happens to the test, the process does not outlive it.
	w.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		w.t.Fatalf("rotary exited before listening (%s)\nlogs:\n%s", p.exited(), w.logs.String())
	case <-time.After(startTimeout):
		w.t.Fatalf("rotary did not listen within %s\nlogs:\n%s", startTimeout, w.logs.String())
	}
	w.proc = p
	return p
}

// stopRotary stops the running process as Kubernetes does (SIGTERM) and
// expects a clean exit.
func (w *world) stopRotary() {
	w.t.Helper()
	p := w.proc
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		w.t.Fatalf("rotary did not stop within %s of SIGTERM\nlogs:\n%s", stopTimeout, w.logs.String())
	}
	if how := p.exited(); how != "" {
		w.t.Errorf("rotary stopped with %s\nlogs:\n%s", how, w.logs.String())
	}
	w.proc = nil
}

// killRotary SIGKILLs the running process, as a node failure or the OOM
// killer would.
func (w *world) killRotary() {
	w.t.Helper()
	p := w.proc
	_ = p.cmd.Process.Kill()
	<-p.done
	w.proc = nil
	w.kills++
}

// sign signs a body as Slack does (v0 HMAC-SHA256 over "v0:ts:body").
func sign(body string, ts time.Time) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(signingSecret))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	hd := http.Header{}
	hd.Set("X-Slack-Request-Timestamp", stamp)
	hd.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	hd.Set("Content-Type", "application/x-www-form-urlencoded")
	return hd
}

func (w *world) post(path, body string) (int, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.proc.url+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header = sign(body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// A refused connection usually means rotary died: give its exit a
		// moment to be reaped so the report says how, with all its output.
		how := "still running"
		select {
		case <-w.proc.done:
			how = "exited: " + w.proc.exited()
		case <-time.After(2 * time.Second):
		}
		w.t.Fatalf("POST %s: %v (rotary %s)\nlogs:\n%s", path, err, how, w.logs.String())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// command sends a signed slash command and returns the ephemeral answer.
func (w *world) command(user, text string) string {
	w.t.Helper()
	form := url.Values{"command": {"/rotate"}, "text": {text}, "user_id": {user}, "channel_id": {requestChannel},
		"team_id": {slackfake.TeamID}, "trigger_id": {"trig-cmd"}, "response_url": {"https://hooks.slack.invalid/x"}}
	code, resp := w.post("/slack/commands", form.Encode())
	if code != http.StatusOK {
		w.t.Fatalf("/rotate %s: HTTP %d %s", text, code, resp)
	}
	var msg struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(resp), &msg); err != nil || msg.ResponseType != "ephemeral" {
		w.t.Fatalf("/rotate %s: not an ephemeral answer: %s", text, resp)
	}
	return msg.Text
}

// click sends a signed block_actions interaction for a button.
func (w *world) click(user, actionID, value string) {
	w.t.Helper()
	w.triggers++
	p, _ := json.Marshal(map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user},
		"trigger_id": fmt.Sprintf("trig-%d", w.triggers),
		"channel":    map[string]any{"id": requestChannel},
		"container":  map[string]any{"type": "message", "channel_id": requestChannel},
		"actions":    []map[string]any{{"action_id": actionID, "block_id": "b", "type": "button", "value": value}},
	})
	if code, body := w.post("/slack/interactions", url.Values{"payload": {string(p)}}.Encode()); code != http.StatusOK {
		w.t.Fatalf("click %s: HTTP %d %s", actionID, code, body)
	}
}

// openedModal is a modal rotary opened with views.open, as the submission
// of it names it.
type openedModal struct {
	viewID, callbackID, privateMetadata string
}

// clickOpens sends a signed click like click and reports the modal rotary
// opened for it, if any. rotary opens a modal on the click's ack path (the
// trigger expires in 3 s), so when the click's answer arrives the
// views.open call is already recorded: no wait is needed.
func (w *world) clickOpens(user, actionID, value string) (openedModal, bool) {
	w.t.Helper()
	before := len(w.slack.CallsTo("views.open"))
	w.click(user, actionID, value)
	opened := w.slack.CallsTo("views.open")
	if len(opened) == before {
		return openedModal{}, false
	}
	c := opened[len(opened)-1]
	if c.Failed || c.TriggerID != fmt.Sprintf("trig-%d", w.triggers) {
		w.t.Fatalf("views.open after click %s: failed=%v trigger %q, want trig-%d", actionID, c.Failed, c.TriggerID, w.triggers)
	}
	var v struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
	}
	if err := json.Unmarshal(c.View, &v); err != nil {
		w.t.Fatalf("views.open view: %v", err)
	}
	return openedModal{viewID: c.ViewID, callbackID: v.CallbackID, privateMetadata: v.PrivateMetadata}, true
}

// submit sends a signed view_submission of modal m with one plain-text
// input value (block and action IDs as the modal names them) and returns
// rotary's answer body: empty when it accepted the submission, a
// response_action "errors" document when it refused it.
func (w *world) submit(user string, m openedModal, block, action, value string) string {
	w.t.Helper()
	w.triggers++
	p, _ := json.Marshal(map[string]any{
		"type":       "view_submission",
		"team":       map[string]any{"id": slackfake.TeamID},
		"user":       map[string]any{"id": user},
		"trigger_id": fmt.Sprintf("trig-%d", w.triggers),
		"view": map[string]any{
			"id": m.viewID, "type": "modal", "callback_id": m.callbackID, "private_metadata": m.privateMetadata,
			"state": map[string]any{"values": map[string]any{
				block: map[string]any{action: map[string]any{"type": "plain_text_input", "value": value}},
			}},
		},
	})
	code, body := w.post("/slack/interactions", url.Values{"payload": {string(p)}}.Encode())
	if code != http.StatusOK {
		w.t.Fatalf("view_submission %s: HTTP %d %s", m.callbackID, code, body)
	}
	return body
}

// waitCalls waits until pred holds over the recorded Slack calls.
func (w *world) waitCalls(what string, pred func([]slackfake.Call) bool) {
	w.t.Helper()
	if _, err := w.slack.WaitFor(w.ctx, pred); err != nil {
		w.t.Fatalf("waiting for %s: %v\nlogs:\n%s", what, err, w.logs.String())
	}
}

// open sends /rotate TARGET and returns the request ID and its root
// message's ts.
func (w *world) open(target string) (id, rootTS string) {
	w.t.Helper()
	return w.openWith(target + ` --reason "e2e"`)
}

// openWith sends /rotate ARGS and returns the new request's ID and root ts.
func (w *world) openWith(args string) (id, rootTS string) {
	w.t.Helper()
	text := w.command(requester, args)
	id = regexp.MustCompile(requestIDExp).FindString(text)
	if id == "" {
		w.t.Fatalf("/rotate %s answered %q", args, text)
	}
	w.waitCalls("root message of "+id, func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && !c.Failed && c.Channel == requestChannel && c.ThreadTS == "" && strings.Contains(string(c.Blocks), id) {
				var r struct {
					TS string `json:"ts"`
				}
				_ = json.Unmarshal(c.Response, &r)
				rootTS = r.TS
				return true
			}
		}
		return false
	})
	return id, rootTS
}

// approve opens a request for target and approves it.
func (w *world) approve(target string) (id, rootTS string) {
	w.t.Helper()
	id, rootTS = w.open(target)
	w.click(approver, blocks.ActionApprove, id)
	return id, rootTS
}

// Outcomes as the end-of-rotation announcement words them.
const (
	outcomeSucceeded  = "succeeded"
	outcomeRolledBack = "rolled back"
	outcomeFailed     = "failed"
)

// endAnnouncements returns the announcement-channel messages that end
// request id.
func endAnnouncements(cs []slackfake.Call, id string) []string {
	var out []string
	for _, c := range cs {
		if c.Method != "chat.postMessage" || c.Failed || c.Channel != announce || !strings.Contains(c.Text, id) {
			continue
		}
		if strings.Contains(c.Text, " succeeded") || strings.Contains(c.Text, " failed") {
			out = append(out, c.Text)
		}
	}
	return out
}

// outcomeOf names the outcome an end announcement reports.
func outcomeOf(text string) string {
	switch {
	case strings.Contains(text, "rolled back"):
		return outcomeRolledBack
	case strings.Contains(text, " succeeded"):
		return outcomeSucceeded
	}
	return outcomeFailed
}

// finished waits for the end announcement of id and returns its outcome.
// It also fails the test if the current process exits first.
func (w *world) finished(id string) string {
	w.t.Helper()
	var got string
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	if p := w.proc; p != nil {
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	_, err := w.slack.WaitFor(ctx, func(cs []slackfake.Call) bool {
		if ends := endAnnouncements(cs, id); len(ends) > 0 {
			got = outcomeOf(ends[0])
			return true
		}
		return false
	})
	if err != nil {
		how := ""
		if w.proc != nil {
			select {
			case <-w.proc.done:
				how = " (rotary exited: " + w.proc.exited() + ")"
			default:
			}
		}
		w.t.Fatalf("waiting for the end of %s%s: %v\nlogs:\n%s", id, how, err, w.logs.String())
	}
	return got
}

// expectOutcome waits for the end of id and fails unless it is want.
func (w *world) expectOutcome(id, want string) {
	w.t.Helper()
	if got := w.finished(id); got != want {
		w.t.Fatalf("request %s ended %q, want %q\nstatus: %s\nlogs:\n%s", id, got, want, w.command(requester, "status "+id), w.logs.String())
	}
}

// assertSlackOnce checks the Slack side of exactly-once after the request
// ended: one start and one end announcement, one outcome reply in the
// thread, and no thread message posted twice, except for what a crash
// allows. Delivery is at-least-once: a SIGKILL between Slack's answer to
// chat.postMessage and the outbox recording it as delivered makes the next
// process post that one message again. So each kill may add one repeated
// message, no more: any other duplicate is a bug. (The fix, deduplicating
// through message metadata, needs the channels:history scope; see the
// issue notes.)
func (w *world) assertSlackOnce(id, rootTS string) {
	w.t.Helper()
	cs := w.slack.Calls()
	starts := 0
	for _, c := range cs {
		if c.Method == "chat.postMessage" && !c.Failed && c.Channel == announce && strings.Contains(c.Text, id) && strings.Contains(c.Text, " started") {
			starts++
		}
	}
	ends := endAnnouncements(cs, id)
	extra := 0
	if starts < 1 || len(ends) < 1 {
		w.t.Errorf("announcements of %s: %d start, %d end (%q); want one each", id, starts, len(ends), ends)
	}
	extra += max(starts-1, 0) + max(len(ends)-1, 0)
	seen := map[string]int{}
	for _, m := range w.slack.Thread(requestChannel, rootTS) {
		seen[m.Text+"\x00"+string(m.Blocks)]++
	}
	var repeated []string
	for msg, n := range seen {
		if n > 1 {
			text, _, _ := strings.Cut(msg, "\x00")
			repeated = append(repeated, fmt.Sprintf("%d× %q", n, text))
			extra += n - 1
		}
	}
	if extra > w.kills+w.reasks {
		w.t.Errorf("%s: %d repeated Slack messages after %d kill(s) and %d re-asked prompt(s) (at most one per kill and one per re-ask): %d start and %d end announcements; thread repeats %q",
			id, extra, w.kills, w.reasks, starts, len(ends), repeated)
	} else if extra > 0 {
		w.t.Logf("%s: %d message(s) repeated by a kill mid-delivery or a prompt re-asked after a restart (allowed: %d kill(s), %d re-ask(s)): %q",
			id, extra, w.kills, w.reasks, repeated)
	}
	root, ok := w.slack.Message(requestChannel, rootTS)
	if !ok || strings.Contains(string(root.Blocks), blocks.ActionApprove) {
		w.t.Errorf("root message of %s still offers Approve after the end: %s", id, root.Blocks)
	}
	if w.t.Failed() {
		w.t.Logf("Slack calls:\n%s\nlogs:\n%s", slackSummary(cs), w.logs.String())
	}
}

// slackSummary lists the recorded calls, one line each, for failure reports.
func slackSummary(cs []slackfake.Call) string {
	var b strings.Builder
	for _, c := range cs {
		text := c.Text
		if len(text) > 120 {
			text = text[:120] + "…"
		}
		fmt.Fprintf(&b, "  #%d %s channel=%s ts=%s thread=%s failed=%v %q\n", c.Seq, c.Method, c.Channel, c.TS, c.ThreadTS, c.Failed, text)
	}
	return b.String()
}

// stateFile returns the bbolt file's bytes (rotary stopped or killed).
func (w *world) stateFile() []byte {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "rotary.db"))
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// assertNoLeak scans all Slack traffic, rotary's logs and the bbolt file
// for every secret value of the scenario. rotary must be stopped.
func (w *world) assertNoLeak(values ...string) {
	w.t.Helper()
	values = append(values, signingSecret)
	for _, p := range w.gsm.Payloads() {
		values = append(values, string(p))
	}
	var slackTraffic bytes.Buffer
	for _, r := range w.slack.Raw() {
		slackTraffic.Write(r)
		slackTraffic.WriteByte('\n')
	}
	hay := map[string][]byte{"Slack traffic": slackTraffic.Bytes(), "rotary's logs": []byte(w.logs.String()), "the bbolt file": w.stateFile()}
	for _, v := range values {
		if len(v) < 8 {
			continue // too short to be a credential; would match by chance
		}
		for name, h := range hay {
			if bytes.Contains(h, []byte(v)) {
				w.t.Errorf("a secret value (%.6s…) is in %s", v, name)
			}
		}
	}
}

// auditRecord is what `rotary audit export` prints: the request and the
// executor's journal of its run.
type auditRecord struct {
	Request *approvals.Request `json:"request"`
	Run     *executor.Run      `json:"run"`
}

// audit reads request id's record from the state file with the shipped
// `rotary audit export` (rotary must be stopped: a running bot holds the
// file, and the suite turns its admin listener off).
func (w *world) audit(id string) auditRecord {
	w.t.Helper()
	if w.proc != nil {
		w.t.Fatal("audit: stop rotary first")
	}
	ctx, cancel := context.WithTimeout(w.ctx, auditTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.s.bin, "audit", "export", id, "--config", w.cfgPath)
	cmd.Env, cmd.Dir = w.rotaryEnv(""), w.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("rotary audit export %s: %v\n%s", id, err, stderr.String())
	}
	var rec auditRecord
	if err := json.Unmarshal(out, &rec); err != nil || rec.Request == nil || rec.Run == nil {
		w.t.Fatalf("rotary audit export %s: not a request with its journal (%v):\n%s", id, err, out)
	}
	return rec
}

// errNotKilled is returned by waitFaultKill when the rotation ended
// without the fault firing.
var errNotKilled = errors.New("the rotation ended without the fault injection killing rotary")

// waitFaultKill waits until the process killed itself (fault injection)
// and checks it was SIGKILL. If the request ends first, the fault never
// fired: the step name is wrong or the step never ran.
func (w *world) waitFaultKill(id string) error {
	w.t.Helper()
	p := w.proc
	ended := make(chan struct{})
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	go func() {
		if _, err := w.slack.WaitFor(ctx, func(cs []slackfake.Call) bool { return len(endAnnouncements(cs, id)) > 0 }); err == nil {
			close(ended)
		}
	}()
	select {
	case <-p.done:
	case <-ended:
		return errNotKilled
	case <-w.ctx.Done():
		return fmt.Errorf("waiting for the fault kill: %w", w.ctx.Err())
	}
	w.proc = nil
	if !p.killedBySIGKILL() {
		return fmt.Errorf("rotary ended with %s, want SIGKILL from the fault injection", p.exited())
	}
	w.kills++
	return nil
}
