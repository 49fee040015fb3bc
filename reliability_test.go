package main

// Reliability under faults at every edge, end to end: Slack answering 429
// with Retry-After and 5xx, Secret Manager failing and stalling, Kubernetes
// returning conflicts and timeouts. Rotations retry or roll back, and the
// outbox delivers every notice exactly once after recovery.

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

// slackOutcome is what Slack shows after a rotation: the successful calls
// per message role (each notice is exactly one successful call) and the
// injected failures. Updates of the progress message are counted apart:
// how often a step reports progress depends on timing, not on delivery.
type slackOutcome struct {
	ok       map[string]int
	progress int
	injected int
}

func outcomeOf(calls []slackfake.Call) slackOutcome {
	o := slackOutcome{ok: map[string]int{}}
	rootTS, progressTS := "", ""
	for _, c := range calls {
		switch {
		case c.Injected:
			o.injected++
			continue
		case c.Failed:
			continue
		}
		ts := responseTS(c)
		switch {
		case c.Method == "chat.postMessage" && c.Channel == requestChannel && c.ThreadTS == "":
			rootTS = ts
			o.ok["root post"]++
		case c.Method == "chat.postMessage" && c.Channel == requestChannel && progressTS == "" && strings.Contains(string(c.Blocks), "Secret Manager"):
			progressTS = ts
			o.ok["progress post"]++
		case c.Method == "chat.postMessage" && c.Channel == requestChannel:
			o.ok["thread reply"]++
		case c.Method == "chat.postMessage":
			o.ok["announcement"]++
		case c.Method == "chat.update" && c.TS == rootTS:
			o.ok["root update"]++
		case c.Method == "chat.update" && c.TS == progressTS:
			o.progress++
		default:
			o.ok[c.Method+" (other)"]++
		}
	}
	return o
}

// rotateOpenAI runs one approved OpenAI rotation to its end and waits for
// the last notice (the end announcement) to be delivered successfully.
func (h *e2e) rotateOpenAI(want approvals.State) string {
	h.t.Helper()
	id, rootTS := h.open("openai")
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, rootTS, want)
	h.waitCalls("the end announcement delivered", func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && !c.Failed && c.Channel == announce && strings.Contains(c.Text, id) && strings.Contains(c.Text, endWord(want)) {
				return true
			}
		}
		return false
	})
	return id
}

// outboxDepthAfterStop stops the process and reads what is left queued.
func (h *e2e) outboxDepthAfterStop() int {
	h.t.Helper()
	h.stop()
	st, err := boltstore.Open(h.statePath, boltstore.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	defer st.Close()
	n, err := st.OutboxDepth(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestFaultsSlackRateLimitsAndErrorsLoseNoNotice(t *testing.T) {
	// The same rotation without faults says how many notices there are.
	base := newE2E(t)
	base.start()
	base.rotateOpenAI(approvals.StateSucceeded)
	want := outcomeOf(base.slack.Calls())
	base.stop()

	h := newE2E(t)
	faults := []struct {
		method string
		n      int
		f      slackfake.Fault
	}{
		{"chat.postMessage", 1, slackfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1}},
		{"chat.postMessage", 1, slackfake.Fault{Status: http.StatusBadGateway}},
		{"chat.update", 1, slackfake.Fault{Status: http.StatusServiceUnavailable}},
		{"chat.update", 1, slackfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1}},
	}
	injected := 0
	for _, f := range faults {
		h.slack.FailNext(f.method, f.n, f.f)
		injected += f.n
	}
	h.start()
	h.rotateOpenAI(approvals.StateSucceeded)
	got := outcomeOf(h.slack.Calls())
	if got.injected != injected {
		t.Fatalf("%d injected failures were answered, want %d: the faults did not all fire", got.injected, injected)
	}
	if !maps.Equal(got.ok, want.ok) || got.progress == 0 {
		t.Errorf("after recovery Slack got %v (+%d progress updates); without faults %v: notices were lost or duplicated", got.ok, got.progress, want.ok)
	}
	// Retry-After was honoured: the log says so for the 429s.
	if !strings.Contains(h.logs.String(), `"retry_in":1000000000`) && !strings.Contains(h.logs.String(), `"retry_in":"1s"`) {
		t.Errorf("no delivery was rescheduled after Retry-After: 1\n%s", h.logs.String())
	}
	if n := h.outboxDepthAfterStop(); n != 0 {
		t.Errorf("%d notices still queued after every message was delivered: a restart would send them again", n)
	}
}

func TestFaultsSecretManagerFailsAndStalls(t *testing.T) {
	h := newE2E(t)
	// Two transient failures of the version write (the step retries), and
	// a stalled read that is released once it is seen to hang.
	h.gsm.FailNext("AddSecretVersion", 2, codes.Unavailable)
	release := h.gsm.Stall("ListSecretVersions")
	h.start()
	id, rootTS := h.open("openai")
	h.click(approver, blocks.ActionApprove, id)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	if err := h.gsm.WaitStalled(ctx, "ListSecretVersions"); err != nil {
		t.Fatal(err)
	}
	release()
	h.finished(id, rootTS, approvals.StateSucceeded)
	adds := 0
	for _, c := range h.gsm.Calls() {
		if c == "AddSecretVersion" {
			adds++
		}
	}
	if adds < 3 {
		t.Fatalf("AddSecretVersion called %d times: the failures were not retried", adds)
	}
	vs := h.gsmVersions("aivo-prod-openai-api-key")
	if issued := h.openai.IssuedKeys(); len(vs) != 2 || string(vs[1].Payload) != issued[len(issued)-1] {
		t.Fatalf("after retries Secret Manager holds %d versions; want the old and exactly one new", len(vs))
	}
	h.stop()
	h.assertNoLeak()
}

// failFirst returns a reactor that fails the first n matching calls with err.
func failFirst(n int, err error) (k8stesting.ReactionFunc, *atomic.Int64) {
	var calls atomic.Int64
	return func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= int64(n) {
			return true, nil, err
		}
		return false, nil, nil
	}, &calls
}

var deploymentsGR = schema.GroupResource{Group: "apps", Resource: "deployments"}

// withKubeFaults replaces the harness's simulated cluster (the same objects
// newE2E makes) with one whose fake clients run install's reactors first.
// Reactors must be in place before the simulator starts: client-go's fakes
// do not lock their reactor chains against concurrent use.
func withKubeFaults(t *testing.T, h *e2e, install func(cs *fake.Clientset, dyn *dynamicfake.FakeDynamicClient)) {
	t.Helper()
	labels := map[string]string{"app": "ai-orchestrator"}
	cs := fake.NewClientset(
		kubesim.NewDeployment("aivo-prod", "ai-orchestrator", 2, labels),
		kubesim.NewRunningPod("aivo-prod", "ai-orchestrator-abc", labels),
		kubesim.NewDeployment("aivo-prod", "billing-svc", 1, map[string]string{"app": "billing-svc"}),
		kubesim.NewRunningPod("aivo-prod", "billing-svc-abc", map[string]string{"app": "billing-svc"}),
	)
	dyn := kubesim.NewDynamicClient(kubesim.NewExternalSecret("aivo-prod", "external-services", "1h"))
	sim := kubesim.New(cs, dyn, kubesim.Options{Now: h.clock.Now})
	install(cs, dyn)
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go func() { _ = sim.Start(ctx) }()
	// h.sim stays the harness's own (its goroutine reads the field); the
	// tests here do not use it.
	h.cs, h.dyn = cs, dyn
	h.kube = kube.New(cs, dyn, kube.Options{Now: h.clock.Now, PollInterval: 10 * time.Millisecond})
}

func TestFaultsKubernetesConflictsAndTimeoutsAreRetried(t *testing.T) {
	h := newE2E(t)
	conflict, conflicts := failFirst(2, apierrors.NewConflict(deploymentsGR, "ai-orchestrator", nil))
	timeout, timeouts := failFirst(1, apierrors.NewServerTimeout(esGVR.GroupResource(), "patch", 1))
	withKubeFaults(t, h, func(cs *fake.Clientset, dyn *dynamicfake.FakeDynamicClient) {
		cs.PrependReactor("patch", "deployments", conflict)
		dyn.PrependReactor("patch", "externalsecrets", timeout)
	})
	h.start()
	h.rotateOpenAI(approvals.StateSucceeded)
	if conflicts.Load() < 3 || timeouts.Load() < 2 {
		t.Fatalf("restart patched %d times, force-sync %d times: the faults were not hit and retried", conflicts.Load(), timeouts.Load())
	}
	if deployment(h, "ai-orchestrator").Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatal("deployment not restarted after the conflicts")
	}
	if n := len(h.openai.IssuedKeys()); n != 1 {
		t.Fatalf("%d keys issued: a retried step made a second key", n)
	}
}

func TestFaultsKubernetesTimeoutsBeyondRetryRollBack(t *testing.T) {
	h := newE2E(t)
	// Every attempt of the restart step times out; rollback's restart works.
	timeout, calls := failFirst(3, apierrors.NewTimeoutError("the server was too slow", 1))
	withKubeFaults(t, h, func(cs *fake.Clientset, _ *dynamicfake.FakeDynamicClient) {
		cs.PrependReactor("patch", "deployments", timeout)
	})
	h.start()
	id := h.rotateOpenAI(approvals.StateRolledBack)
	if calls.Load() < 4 {
		t.Fatalf("deployment patched %d times; want 3 failed attempts and rollback's restart", calls.Load())
	}
	vs := h.gsmVersions("aivo-prod-openai-api-key")
	if latest := vs[len(vs)-1]; string(latest.Payload) != oldKeyValue {
		t.Fatalf("after rollback the newest version is not the previous value")
	}
	if r := h.request(id); !strings.Contains(strings.ToLower(r.Outcome), "restart") {
		t.Fatalf("outcome does not name the failed step: %q", r.Outcome)
	}
	if n := h.outboxDepthAfterStop(); n != 0 {
		t.Errorf("%d notices still queued after the rollback was announced", n)
	}
}
