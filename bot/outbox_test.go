package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// delivery is what a test asserts of one Slack call made by the outbox.
type delivery struct {
	Method, Channel, TS, ThreadTS string
}

func (d delivery) String() string {
	return fmt.Sprintf("%s(channel=%s ts=%s thread_ts=%s)", d.Method, d.Channel, d.TS, d.ThreadTS)
}

// deliveries summarises the calls after the first skip of them (lookups excluded).
func (h *harness) deliveries(skip int) []delivery {
	var out []delivery
	for _, c := range h.slackCalls()[skip:] {
		d := delivery{Method: c.Method, Channel: c.Channel, ThreadTS: c.ThreadTS}
		if c.Method == "chat.update" {
			d.TS = c.TS // the message addressed; a post's assigned ts is not known in advance
		}
		if c.Injected {
			// An injected fault is answered before the arguments are read.
			d.Channel, d.ThreadTS = c.Form.Get("channel"), c.Form.Get("thread_ts")
			if c.Method == "chat.update" {
				d.TS = c.Form.Get("ts")
			}
		}
		out = append(out, d)
	}
	return out
}

func wantDeliveries(t *testing.T, got, want []delivery) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("Slack calls:\n got  %v\n want %v", got, want)
	}
}

func post(channel, thread string) delivery {
	return delivery{Method: "chat.postMessage", Channel: channel, ThreadTS: thread}
}

func update(channel, ts string) delivery {
	return delivery{Method: "chat.update", Channel: channel, TS: ts}
}

func (h *harness) approve(id string) {
	h.t.Helper()
	if _, err := h.svc.Approve(testCtx(h.t), id, approver); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) markRunning(id string) {
	h.t.Helper()
	if _, _, err := h.svc.MarkRunning(testCtx(h.t), id); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) finish(id string) {
	h.t.Helper()
	if _, err := h.svc.Finish(testCtx(h.t), id, approvals.StateSucceeded, "2 steps"); err != nil {
		h.t.Fatal(err)
	}
}

// saveRun journals a run of two steps, done steps first, with a progress notice.
func (h *harness) saveRun(id string, done int) {
	h.t.Helper()
	run := &executor.Run{RequestID: id, Target: "openai", Phase: executor.PhaseForward, Steps: []executor.StepRecord{
		{Name: "create", Title: "Create the new key", Status: executor.StepRunning},
		{Name: "store", Title: "Store it in Secret Manager", Status: executor.StepPending},
	}}
	for i := range done {
		run.Steps[i].Status = executor.StepDone
	}
	if done < len(run.Steps) {
		run.Steps[done].Status = executor.StepRunning
	}
	if err := h.store.SaveRun(testCtx(h.t), run, approvals.Notice{Kind: approvals.NoticeProgress, RequestID: id}); err != nil {
		h.t.Fatal(err)
	}
}

func TestOutboxRootPostedThenUpdated(t *testing.T) {
	h := newHarness(t)
	r := h.openRequest("openai")
	h.deliver()

	wantDeliveries(t, h.deliveries(0), []delivery{post(requestChannel, "")})
	root := h.slackCalls()[0]
	stored := h.get(r.ID)
	if stored.Slack.Channel != requestChannel || stored.Slack.RootTS != root.TS || root.TS == "" {
		t.Fatalf("refs %+v, root posted at %s", stored.Slack, root.TS)
	}
	if !strings.Contains(root.Text, r.ID) && !strings.Contains(string(root.Blocks), r.ID) {
		t.Fatalf("root message does not name the request: %s %s", root.Text, root.Blocks)
	}

	h.approve(r.ID)
	h.deliver()
	wantDeliveries(t, h.deliveries(1), []delivery{update(requestChannel, root.TS), post(requestChannel, root.TS)})
	msg, _ := h.fake.Message(requestChannel, root.TS)
	if msg.Updates != 1 || strings.Contains(string(msg.Blocks), "rotary_approve") {
		t.Fatalf("root not updated to the approved state (updates %d): %s", msg.Updates, msg.Blocks)
	}
	if reply := h.fake.Thread(requestChannel, root.TS); len(reply) != 1 || !strings.Contains(reply[0].Text, "approved") {
		t.Fatalf("thread: %+v", reply)
	}
	if n := h.depth(); n != 0 {
		t.Fatalf("%d notices left in the outbox", n)
	}
}

func TestOutboxProgressAndAnnouncements(t *testing.T) {
	h := newHarness(t)
	r := h.openRequest("openai")
	h.deliver()
	rootTS := h.get(r.ID).Slack.RootTS

	h.approve(r.ID)
	h.markRunning(r.ID)
	h.saveRun(r.ID, 0)
	h.deliver()
	wantDeliveries(t, h.deliveries(1), []delivery{
		update(requestChannel, rootTS), post(requestChannel, rootTS), // approved
		update(requestChannel, rootTS), post(announceChannel, ""), // running
		post(requestChannel, rootTS), // progress, in the thread
	})
	progress := h.slackCalls()[5]
	if got := h.get(r.ID).Slack.ProgressTS; got == "" || got != progress.TS {
		t.Fatalf("progress ts stored %q, posted at %q", got, progress.TS)
	}
	if !strings.Contains(string(progress.Blocks), "Create the new key") {
		t.Fatalf("progress message does not show the steps: %s", progress.Blocks)
	}
	if ann := h.fake.Messages(announceChannel); len(ann) != 1 || !strings.Contains(ann[0].Text, "started") {
		t.Fatalf("announcements: %+v", ann)
	}

	// The next progress notice updates the same message; it is rendered from the journal.
	h.saveRun(r.ID, 1)
	h.deliver()
	wantDeliveries(t, h.deliveries(6), []delivery{update(requestChannel, progress.TS)})
	if m, _ := h.fake.Message(requestChannel, progress.TS); m.Updates != 1 || !strings.Contains(string(m.Blocks), ":white_check_mark:") {
		t.Fatalf("progress not updated: %+v", m)
	}

	h.finish(r.ID)
	h.deliver()
	wantDeliveries(t, h.deliveries(7), []delivery{
		update(requestChannel, rootTS), post(requestChannel, rootTS), post(announceChannel, ""),
	})
	if n := h.depth(); n != 0 {
		t.Fatalf("%d notices left in the outbox", n)
	}
}

func TestOutboxWithoutAnnounceChannel(t *testing.T) {
	h := newHarness(t, withoutAnnouncements())
	r := h.openRequest("openai")
	h.approve(r.ID)
	h.markRunning(r.ID)
	h.finish(r.ID)
	h.deliver()
	for _, c := range h.slackCalls() {
		if c.Channel != requestChannel {
			t.Errorf("call to %s in channel %q", c.Method, c.Channel)
		}
	}
	if n := h.depth(); n != 0 {
		t.Fatalf("announcements were left in the outbox (%d) instead of being skipped", n)
	}
}

// A thread message whose root is not posted (here: the root notice was
// lost) waits for it with backoff and is delivered once the root exists.
func TestOutboxThreadNoticeWaitsForRoot(t *testing.T) {
	for _, kind := range []approvals.NoticeKind{approvals.NoticeReply, approvals.NoticeProgress} {
		t.Run(string(kind), func(t *testing.T) {
			h := newHarness(t)
			ctx := testCtx(t)
			r := h.openRequest("openai")
			if err := h.store.OutboxDone(ctx, h.heads()[0].Seq); err != nil {
				t.Fatal(err)
			}
			if kind == approvals.NoticeProgress {
				h.saveRun(r.ID, 0)
			} else if err := h.store.Update(ctx, func(tx approvals.Tx) error {
				return tx.Notify(approvals.Notice{Kind: kind, RequestID: r.ID, Event: "input_needed"})
			}); err != nil {
				t.Fatal(err)
			}

			h.deliver()
			if calls := h.slackCalls(); len(calls) != 0 {
				t.Fatalf("delivered without a root: %+v", calls)
			}
			heads := h.heads()
			if len(heads) != 1 || heads[0].Attempts != 1 || !heads[0].NotBefore.Equal(t0.Add(backoffBase)) || heads[0].LastError != errNotYet.Error() {
				t.Fatalf("not queued for retry: %+v", heads)
			}

			// The root appears (posted by hand, as an operator would).
			_, ts, err := h.api.PostMessageContext(ctx, requestChannel, slack.MsgOptionText("root", false))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.store.Update(ctx, func(tx approvals.Tx) error {
				stored, err := tx.Get(r.ID)
				if err != nil {
					return err
				}
				stored.Slack.RootTS = ts
				return tx.Put(stored)
			}); err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(backoffBase)
			h.deliver()
			if th := h.fake.Thread(requestChannel, ts); len(th) != 1 {
				t.Fatalf("thread after the root appeared: %+v", th)
			}
			if n := h.depth(); n != 0 {
				t.Fatalf("%d notices left", n)
			}
		})
	}
}

func TestOutboxRateLimitHonoursRetryAfter(t *testing.T) {
	h := newHarness(t)
	h.fake.FailNext("chat.postMessage", 1, slackfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 7})
	r := h.openRequest("openai")
	h.clock.Advance(3 * time.Second) // delivery happens later than the open
	now := h.clock.Now()
	h.deliver()

	heads := h.heads()
	if len(heads) != 1 || heads[0].Attempts != 1 || !heads[0].NotBefore.Equal(now.Add(7*time.Second)) {
		t.Fatalf("after a 429 with Retry-After 7: %+v, want NotBefore %s", heads, now.Add(7*time.Second))
	}
	h.clock.Set(now.Add(7*time.Second - time.Nanosecond))
	h.deliver()
	if n := len(h.slackCalls()); n != 1 {
		t.Fatalf("retried before Retry-After passed (%d calls)", n)
	}
	h.clock.Set(now.Add(7 * time.Second))
	h.deliver()
	if calls := h.slackCalls(); len(calls) != 2 || calls[1].Failed || h.get(r.ID).Slack.RootTS != calls[1].TS {
		t.Fatalf("not delivered after Retry-After: %+v", calls)
	}
}

func TestOutboxServerErrorsBackOffExponentially(t *testing.T) {
	h := newHarness(t)
	faults := []slackfake.Fault{{Status: http.StatusInternalServerError}, {Status: http.StatusBadGateway}, {SlackError: "fatal_error"}}
	for _, f := range faults {
		h.fake.FailNext("chat.postMessage", 1, f)
	}
	r := h.openRequest("openai")
	for attempt := 1; attempt <= len(faults); attempt++ {
		now := h.clock.Now()
		h.deliver()
		heads := h.heads()
		wantAt := now.Add(backoffBase << (attempt - 1))
		if len(heads) != 1 || heads[0].Attempts != attempt || !heads[0].NotBefore.Equal(wantAt) || heads[0].LastError == "" {
			t.Fatalf("after failure %d: %+v, want NotBefore %s", attempt, heads, wantAt)
		}
		h.clock.Set(wantAt.Add(-time.Nanosecond))
		h.deliver()
		if n := len(h.slackCalls()); n != attempt {
			t.Fatalf("retried before the backoff passed (%d calls after %d failures)", n, attempt)
		}
		h.clock.Set(wantAt)
	}
	if got := len(h.logs.find(t, "Slack delivery failed; will retry")); got != len(faults) {
		t.Fatalf("%d retry warnings, want %d", got, len(faults))
	}
	h.deliver()
	if h.get(r.ID).Slack.RootTS == "" || h.depth() != 0 {
		t.Fatal("not delivered after the failures stopped")
	}
}

func TestOutboxBackoffIsCapped(t *testing.T) {
	h := newHarness(t)
	h.openRequest("openai")
	ctx := testCtx(t)
	if err := h.store.OutboxRetry(ctx, h.heads()[0].Seq, 30, t0, "earlier failures"); err != nil {
		t.Fatal(err)
	}
	h.fake.FailNext("chat.postMessage", 1, slackfake.Fault{Status: http.StatusServiceUnavailable})
	h.deliver()
	if head := h.heads()[0]; head.Attempts != 31 || !head.NotBefore.Equal(t0.Add(backoffMax)) {
		t.Fatalf("after 31 failures: %+v, want NotBefore %s", head, t0.Add(backoffMax))
	}
}

func TestOutboxDropsAfterMaxAttempts(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	r := h.openRequest("openai")
	rootSeq := h.heads()[0].Seq
	if err := h.store.OutboxRetry(ctx, rootSeq, MaxDeliveryAttempts-1, t0, "earlier failures"); err != nil {
		t.Fatal(err)
	}
	h.approve(r.ID) // root update and reply queue behind the poisoned notice
	h.fake.FailNext("chat.postMessage", 1, slackfake.Fault{Status: http.StatusInternalServerError})
	h.deliver()

	drops := h.logs.find(t, "dropping a Slack notice after repeated failures")
	if len(drops) != 1 || drops[0]["level"] != "ERROR" || drops[0]["request_id"] != r.ID || drops[0]["attempt"] != float64(MaxDeliveryAttempts) {
		t.Fatalf("drop not logged as an error with its request: %v\n%s", drops, h.logs)
	}
	if heads := h.heads(); len(heads) != 1 || heads[0].Seq == rootSeq {
		t.Fatalf("the poisoned notice is still queued: %+v", heads)
	}
	// The request's later notices are no longer held up: the next root
	// notice posts the root (it was never posted), then the reply follows.
	h.deliver()
	rootTS := h.get(r.ID).Slack.RootTS
	wantDeliveries(t, h.deliveries(1), []delivery{post(requestChannel, ""), post(requestChannel, rootTS)})
	if h.depth() != 0 {
		t.Fatal("notices left")
	}
}

// One request's failing message holds up that request's later messages,
// never another request's; when it goes through, the rest follow in order.
func TestOutboxOrderPerRequest(t *testing.T) {
	h := newHarness(t)
	a := h.openRequest("openai")
	b := h.openRequest("stripe")
	h.approve(a.ID)
	h.approve(b.ID)
	h.fake.FailNext("chat.postMessage", 1, slackfake.Fault{Status: http.StatusInternalServerError})
	h.deliver()

	bRoot := h.get(b.ID).Slack.RootTS
	wantDeliveries(t, h.deliveries(0), []delivery{
		post(requestChannel, ""),                                   // a's root: fails
		post(requestChannel, ""),                                   // b's root
		update(requestChannel, bRoot), post(requestChannel, bRoot), // b approved
	})
	if h.get(a.ID).Slack.RootTS != "" || h.depth() != 3 {
		t.Fatalf("a's notices were not held back: depth %d", h.depth())
	}

	h.clock.Advance(backoffBase)
	h.deliver()
	aRoot := h.get(a.ID).Slack.RootTS
	wantDeliveries(t, h.deliveries(4), []delivery{
		post(requestChannel, ""), update(requestChannel, aRoot), post(requestChannel, aRoot),
	})
	if h.depth() != 0 {
		t.Fatal("notices left")
	}
}

// A restart (close the state file, open it, new service and bot) delivers
// everything that was still queued, failed attempts included, once.
func TestOutboxSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	r := h.openRequest("openai")
	h.deliver()
	rootTS := h.get(r.ID).Slack.RootTS

	h.approve(r.ID)
	h.markRunning(r.ID)
	h.saveRun(r.ID, 0)
	h.fake.FailNext("chat.update", 1, slackfake.Fault{Status: http.StatusInternalServerError})
	h.deliver() // the root update fails; everything else of the request waits behind it
	if n := h.depth(); n != 5 {
		t.Fatalf("%d queued before the restart, want 5", n)
	}

	h.restart()
	if heads := h.heads(); len(heads) != 1 || heads[0].Attempts != 1 {
		t.Fatalf("retry state lost in the restart: %+v", heads)
	}
	h.clock.Advance(backoffBase)
	h.deliver()
	wantDeliveries(t, h.deliveries(2), []delivery{
		update(requestChannel, rootTS), post(requestChannel, rootTS),
		update(requestChannel, rootTS), post(announceChannel, ""),
		post(requestChannel, rootTS),
	})
	if roots := slices.DeleteFunc(h.fake.Messages(requestChannel), func(m slackfake.Message) bool { return m.ThreadTS != "" }); len(roots) != 1 {
		t.Fatalf("%d root messages after the restart, want 1", len(roots))
	}
	if h.depth() != 0 {
		t.Fatal("notices left")
	}
}

func TestOutboxDropsWhatCannotBeShown(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	r := h.openRequest("openai")
	h.deliver()
	if err := h.store.Update(ctx, func(tx approvals.Tx) error {
		for _, n := range []approvals.Notice{
			{Kind: approvals.NoticeReply, RequestID: "R-GONE000", Event: "approved"}, // no such request
			{Kind: "bogus", RequestID: r.ID},                                         // a kind from a newer rotary
			{Kind: approvals.NoticeProgress, RequestID: r.ID},                        // no run yet
		} {
			if err := tx.Notify(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	if calls := h.slackCalls(); len(calls) != 1 {
		t.Fatalf("calls for undeliverable notices: %+v", calls[1:])
	}
	if h.depth() != 0 {
		t.Fatal("undeliverable notices left in the outbox")
	}
	if w := h.logs.find(t, "unknown notice kind dropped"); len(w) != 1 || w[0]["kind"] != "bogus" {
		t.Fatalf("unknown kind not logged: %v", w)
	}
}

// failingOutbox is the real store with a switchable read fault and a signal
// the test controls, to drive RunOutbox's loop step by step.
type failingOutbox struct {
	*boltstore.Store
	fail   atomic.Bool
	signal chan struct{}
	reads  chan struct{}
}

var errDiskGone = errors.New("disk gone")

func (f *failingOutbox) OutboxDue(ctx context.Context, now time.Time, limit int) ([]approvals.OutboxEntry, error) {
	failing := f.fail.Load()
	f.reads <- struct{}{}
	if failing {
		return nil, errDiskGone
	}
	return f.Store.OutboxDue(ctx, now, limit)
}

func (f *failingOutbox) OutboxSignal() <-chan struct{} { return f.signal }

func TestRunOutboxDeliversOnSignalAndStops(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- h.bot.RunOutbox(ctx) }()

	r := h.openRequest("openai") // the commit signals the deliverer
	if _, err := h.fake.WaitFor(testCtx(t), slackfake.HasCalls("chat.postMessage", 1)); err != nil {
		t.Fatal(err)
	}
	h.approve(r.ID)
	if _, err := h.fake.WaitFor(testCtx(t), slackfake.HasCalls("chat.update", 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunOutbox returned %v on shutdown", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("RunOutbox did not stop")
	}
}

func TestRunOutboxLogsAFailedPassAndGoesOn(t *testing.T) {
	h := newHarness(t)
	ob := &failingOutbox{Store: h.store, signal: make(chan struct{}), reads: make(chan struct{})}
	h.bot.cfg.Outbox = ob
	ob.fail.Store(true)
	h.openRequest("openai")

	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- h.bot.RunOutbox(ctx) }()
	<-ob.reads // the first pass fails
	ob.fail.Store(false)
	ob.signal <- struct{}{}
	<-ob.reads // the loop went on to a second pass (so the first one's log is written)
	if _, err := h.fake.WaitFor(testCtx(t), slackfake.HasCalls("chat.postMessage", 1)); err != nil {
		t.Fatal(err)
	}
	if fails := h.logs.find(t, "outbox delivery pass failed"); len(fails) != 1 || !strings.Contains(fmt.Sprint(fails[0]["err"]), errDiskGone.Error()) {
		t.Fatalf("failed pass not logged: %v", fails)
	}
	cancel()
	// Let a pass that is still reading finish, then the loop sees ctx.
	for {
		select {
		case <-ob.reads:
			continue
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

// deliveredCall is what recordingOutbox saw of one OutboxDelivered call.
type deliveredCall struct {
	seq       uint64
	requestID string
	hasRefs   bool
	// storedBefore is the handle the store held when the call was made.
	storedBefore string
}

// recordingOutbox is the real store, recording each OutboxDelivered call
// with the handle stored at that moment, and failing them all when fail is
// set (a disk that stopped taking writes).
type recordingOutbox struct {
	*boltstore.Store
	handle func() string
	fail   error
	calls  []deliveredCall
}

func (o *recordingOutbox) OutboxDelivered(ctx context.Context, seq uint64, requestID string, refs func(*approvals.SlackRefs)) error {
	o.calls = append(o.calls, deliveredCall{seq: seq, requestID: requestID, hasRefs: refs != nil, storedBefore: o.handle()})
	if o.fail != nil {
		return o.fail
	}
	return o.Store.OutboxDelivered(ctx, seq, requestID, refs)
}

// A posted message's handle is stored in the same commit that marks its
// notice delivered, never before it: both are there afterwards, or (when
// that commit fails) neither is and the notice is still queued, as after a
// crash just before the commit.
func TestOutboxHandleCommitsWithDelivery(t *testing.T) {
	rootTS := func(r *approvals.Request) string { return r.Slack.RootTS }
	progressTS := func(r *approvals.Request) string { return r.Slack.ProgressTS }
	tests := []struct {
		name   string
		queue  func(h *harness, id string) // leaves one notice of the request queued
		handle func(*approvals.Request) string
		fail   error
	}{
		{name: "root", handle: rootTS},
		{name: "root, commit fails", handle: rootTS, fail: errDiskGone},
		{name: "progress", handle: progressTS, queue: func(h *harness, id string) {
			h.deliver() // the root
			h.saveRun(id, 0)
		}},
		{name: "progress, commit fails", handle: progressTS, fail: errDiskGone, queue: func(h *harness, id string) {
			h.deliver()
			h.saveRun(id, 0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.openRequest("openai")
			if tt.queue != nil {
				tt.queue(h, r.ID)
			}
			heads := h.heads()
			if len(heads) != 1 {
				t.Fatalf("test setup: %d notices queued, want 1", len(heads))
			}
			queued := heads[0]
			skip := len(h.slackCalls())
			ob := &recordingOutbox{Store: h.store, fail: tt.fail, handle: func() string { return tt.handle(h.get(r.ID)) }}
			h.bot.cfg.Outbox = ob

			err := h.bot.DeliverDue(testCtx(t))
			calls := h.slackCalls()[skip:]
			if len(calls) != 1 || calls[0].Method != "chat.postMessage" || calls[0].TS == "" {
				t.Fatalf("Slack calls %+v, want one posted message", calls)
			}
			want := []deliveredCall{{seq: queued.Seq, requestID: r.ID, hasRefs: true, storedBefore: ""}}
			if !slices.Equal(ob.calls, want) {
				t.Fatalf("OutboxDelivered calls %+v, want %+v (the handle must not be committed on its own first)", ob.calls, want)
			}
			stored := tt.handle(h.get(r.ID))
			if tt.fail == nil {
				if err != nil {
					t.Fatalf("DeliverDue: %v", err)
				}
				if stored != calls[0].TS || h.depth() != 0 {
					t.Fatalf("handle %q (posted at %s), %d notices queued: want the handle stored and the notice gone", stored, calls[0].TS, h.depth())
				}
				return
			}
			if !errors.Is(err, tt.fail) {
				t.Fatalf("DeliverDue = %v, want the store's error", err)
			}
			if heads := h.heads(); stored != "" || len(heads) != 1 || heads[0].Seq != queued.Seq || heads[0].Attempts != 0 {
				t.Fatalf("after a failed commit: handle %q, queued %+v; want neither effect", stored, heads)
			}
		})
	}
}
