package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/executor"
)

// fault says where a crash/resume case kills rotary: after a step's
// completion is journaled (fault injection), in the middle of a rollout
// wait of a deployment (the test kills it), or not at all.
type fault struct {
	afterStep   string
	midRollout  string // deployment name
	description string
}

func (f fault) name() string {
	switch {
	case f.afterStep != "":
		return "kill_after_" + f.afterStep
	case f.midRollout != "":
		return "kill_mid_rollout"
	}
	return "no_crash"
}

// crashCases is the crash matrix of a rotator: no crash, a SIGKILL after
// each of its forward steps, and one in the middle of the rollout of
// deployment.
func crashCases(steps []string, deployment string) []fault {
	out := []fault{{}}
	for _, s := range steps {
		out = append(out, fault{afterStep: s})
	}
	return append(out, fault{midRollout: deployment})
}

// rollbackCrashCases is the crash matrix of a rotator's rollback: a
// SIGKILL after each of its rollback steps, in a run whose forward steps
// fail (the no-crash rollback is the kind's plain rollback scenario).
// ROTARY_FAULT_KILL_AFTER_STEP fires for rollback steps as for forward
// ones; a kind's rollback step names differ from its forward ones.
func rollbackCrashCases(rollback []string) []fault {
	out := make([]fault, 0, len(rollback))
	for _, s := range rollback {
		out = append(out, fault{afterStep: s})
	}
	return out
}

// button is a clickable element of a posted message.
type button struct{ action, value string }

// threadButtons returns the prompt buttons of request id in its thread:
// the confirmations a running step waits for (such as "Drop old role
// now"). Follow-up buttons ("Remove the old public key now") are not
// pressed: a follow-up is work after the rotation, with its own schedule.
func (w *world) threadButtons(rootTS, id string) []button {
	var out []button
	for _, m := range w.slack.Thread(requestChannel, rootTS) {
		var v any
		if json.Unmarshal(m.Blocks, &v) != nil {
			continue
		}
		collectButtons(v, id, &out)
	}
	return out
}

func collectButtons(v any, id string, out *[]button) {
	switch x := v.(type) {
	case map[string]any:
		a, _ := x["action_id"].(string)
		val, _ := x["value"].(string)
		if a == blocks.ActionPrompt && strings.Contains(val, id) {
			*out = append(*out, button{a, val})
		}
		for _, e := range x {
			collectButtons(e, id, out)
		}
	case []any:
		for _, e := range x {
			collectButtons(e, id, out)
		}
	}
}

// run drives request id with the current process until it ends or the
// process exits, answering each confirmation button once per process
// (as a person in the thread would). It reports whether the request ended.
func (w *world) run(id, rootTS string) bool {
	w.t.Helper()
	p := w.proc
	clicked := map[button]bool{}
	for {
		ctx, cancel := context.WithCancel(w.ctx)
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		var todo []button
		ended := false
		_, err := w.slack.WaitFor(ctx, func(cs []slackfake.Call) bool {
			if len(endAnnouncements(cs, id)) > 0 {
				ended = true
				return true
			}
			todo = todo[:0]
			for _, b := range w.threadButtons(rootTS, id) {
				if !clicked[b] {
					todo = append(todo, b)
				}
			}
			return len(todo) > 0
		})
		cancel()
		switch {
		case ended:
			return true
		case err != nil:
			select {
			case <-p.done:
				return false
			default:
			}
			w.t.Fatalf("driving %s: %v\nlogs:\n%s", id, err, w.logs.String())
		}
		for _, b := range todo {
			clicked[b] = true
			w.click(approver, b.action, b.value)
		}
	}
}

// crashAndResume runs an approved request under fault f: it lets the
// current process reach the fault, then restarts rotary (without the
// fault) on the same state file and drives the request to its end, which
// it returns.
func (w *world) crashAndResume(f fault, id, rootTS string) string {
	w.t.Helper()
	switch {
	case f.afterStep != "":
		w.run(id, rootTS) // returns when the process killed itself
		if err := w.waitFaultKill(id); err != nil {
			w.t.Fatalf("%s: %v\nlogs:\n%s", f.name(), err, w.logs.String())
		}
	case f.midRollout != "":
		w.killWhenRolling(f.midRollout)
	default:
		if !w.run(id, rootTS) {
			w.t.Fatalf("rotary exited (%s) before %s ended\nlogs:\n%s", w.proc.exited(), id, w.logs.String())
		}
		return w.finished(id)
	}
	fmt.Fprintf(w.logs, "=== e2e: rotary killed (%s); restarting on the same state file\n", f.name())
	w.startRotary("")
	if !w.run(id, rootTS) {
		w.t.Fatalf("rotary exited (%s) after the restart before %s ended\nlogs:\n%s", w.proc.exited(), id, w.logs.String())
	}
	return w.finished(id)
}

// assertRolledBackOnce checks, in the journal `rotary audit export` reads
// after rotary stopped, that request id failed at forward step failed and
// was rolled back exactly once across its kills: state rolled_back, one
// resume per kill (each from the rollback phase), and every rollback step
// done in a single attempt — a step whose completion was journaled before
// a kill is never run again.
func (w *world) assertRolledBackOnce(id, failed string, rollback []string) {
	w.t.Helper()
	rec := w.audit(id)
	req, run := rec.Request, rec.Run
	if req.State != approvals.StateRolledBack || run.Phase != executor.PhaseDone || run.Result != approvals.StateRolledBack {
		w.t.Errorf("%s: request state %q, journal phase %q result %q; want %q, %q, %q",
			id, req.State, run.Phase, run.Result, approvals.StateRolledBack, executor.PhaseDone, approvals.StateRolledBack)
	}
	if run.FailedStep != failed {
		w.t.Errorf("%s: the rollback started after step %q failed; want %q", id, run.FailedStep, failed)
	}
	if run.Resumes != w.kills {
		w.t.Errorf("%s: the run was resumed %d times after %d kill(s); want one resume per kill", id, run.Resumes, w.kills)
	}
	var got []string
	for _, r := range run.Rollback {
		got = append(got, fmt.Sprintf("%s:%s×%d", r.Name, r.Status, r.Attempts))
	}
	want := make([]string, 0, len(rollback))
	for _, s := range rollback {
		want = append(want, fmt.Sprintf("%s:%s×1", s, executor.StepDone))
	}
	if !slices.Equal(got, want) {
		w.t.Errorf("%s: rollback steps %v; want %v (each done, in one attempt)", id, got, want)
	}
	if w.kills > 0 && w.resumedIn(executor.PhaseRollback) != w.kills {
		w.t.Errorf("%s: %d resume(s) from the rollback phase logged after %d kill(s)\nlogs:\n%s", id, w.resumedIn(executor.PhaseRollback), w.kills, w.logs.String())
	}
}

// resumedIn counts the "resuming rotation" lines rotary logged for a run
// picked up in phase p after a restart.
func (w *world) resumedIn(p executor.Phase) int {
	n := 0
	for line := range strings.Lines(w.logs.String()) {
		var rec struct {
			Msg   string `json:"msg"`
			Phase string `json:"phase"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "resuming rotation" && rec.Phase == string(p) {
			n++
		}
	}
	return n
}

// rollbackScenarioName names a failed-run scenario: base without a fault,
// prefix and the fault's name with one. The fault must name a rollback
// step: on a forward step it would fire in the forward run instead.
func rollbackScenarioName(t *testing.T, base, prefix string, forwardSteps []string, f fault) string {
	t.Helper()
	if f.afterStep == "" {
		return base
	}
	if slices.Contains(forwardSteps, f.afterStep) {
		t.Fatalf("rollback step %q is also a forward step: the fault would fire in the forward run", f.afterStep)
	}
	return prefix + f.name()
}
