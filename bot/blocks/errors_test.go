package blocks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
)

// parseError stands in for the command parser's errors.
type parseError struct{ msg string }

func (e *parseError) Error() string       { return "parse: " + e.msg }
func (e *parseError) UserMessage() string { return e.msg }

// wrapped wraps err the way the service does, so every case is found through a chain.
func wrapped(err error) error { return fmt.Errorf("request R-7K2M9Q: %w", err) }

func TestErrorText(t *testing.T) {
	h := hints()
	internal := "Something went wrong on rotary's side (ref: `E-4F2A`); the team has been told."
	np := func(s approvals.State, by string) error {
		return wrapped(&approvals.NotPendingError{ID: "R-7K2M9Q", State: s, By: by})
	}
	for _, tc := range []struct {
		name string
		err  error
		h    Hints
		want string
	}{
		{"nil", nil, h, ""},
		{"user message", wrapped(&parseError{msg: `unknown flag --force. Usage: /rotate <target> [--reason "..."]`}), h,
			"unknown flag --force. Usage: /rotate &lt;target&gt; [--reason \"...\"]"},
		{"user message wins over a wrapped sentinel", &wrapError{&parseError{msg: "bad target"}, approvals.ErrUnknownTarget}, h, "bad target"},
		{"empty user message", &parseError{msg: " "}, h, internal},
		{"not pending: approved", np(approvals.StateApproved, bob), h, "Request R-7K2M9Q is already approved by <@U02BOB>."},
		{"not pending: running", np(approvals.StateRunning, bob), h, "Request R-7K2M9Q is already approved by <@U02BOB> and its rotation is running."},
		{"not pending: succeeded", np(approvals.StateSucceeded, bob), h, "Request R-7K2M9Q has already finished (rotated)."},
		{"not pending: failed", np(approvals.StateFailed, bob), h, "Request R-7K2M9Q has already finished (failed)."},
		{"not pending: rolled back", np(approvals.StateRolledBack, bob), h, "Request R-7K2M9Q has already finished (rolled back)."},
		{"not pending: denied", np(approvals.StateDenied, bob), h, "Request R-7K2M9Q was already denied by <@U02BOB>."},
		{"not pending: denied, no actor", np(approvals.StateDenied, ""), h, "Request R-7K2M9Q was already denied."},
		{"not pending: cancelled", np(approvals.StateCancelled, alice), h, "Request R-7K2M9Q was cancelled by its requester."},
		{"not pending: expired", np(approvals.StateExpired, ""), h, "Request R-7K2M9Q expired before anyone approved it. The requester can open a new one."},
		{"not pending: unknown state", np("paused", ""), h, "Request R-7K2M9Q is no longer pending (in state paused)."},
		{"active exists", wrapped(&approvals.ActiveExistsError{Target: "openai", Env: "prod", ID: "R-1AAAAA", State: approvals.StatePending}), h,
			"*openai (prod)* already has an open request, *R-1AAAAA* (waiting for approval). Only one rotation per target and environment can be open: see `/rotate status R-1AAAAA`."},
		{"not found", wrapped(approvals.ErrNotFound), Hints{RequestID: "R-ZZZZZZ"}, "No request R-ZZZZZZ. `/rotate list` shows open requests."},
		{"not found, no ID", wrapped(approvals.ErrNotFound), Hints{}, "No such request. `/rotate list` shows open requests."},
		{"self approval", wrapped(approvals.ErrSelfApproval), h, "You opened this request, so you can't approve it: a second person must."},
		{"not approver", wrapped(approvals.ErrNotApprover), h,
			"You're not an approver for this target and environment. Approvers are configured per target and environment in rotary's configuration; ask one of them, or the platform team to change the list."},
		{"not requester", wrapped(approvals.ErrNotRequester), h, "Only the person who opened a request can cancel it. Approvers can deny it instead."},
		{"unknown target", wrapped(approvals.ErrUnknownTarget), h, "Unknown target. Known targets: `jwt`, `openai`, `sendgrid`."},
		{"unknown target, targets from envs", wrapped(approvals.ErrUnknownTarget), Hints{Envs: map[string][]string{"b": nil, "a": nil}}, "Unknown target. Known targets: `a`, `b`."},
		{"unknown target, none", wrapped(approvals.ErrUnknownTarget), Hints{}, "Unknown target. Known targets: none configured."},
		{"unknown env, target known", wrapped(approvals.ErrUnknownEnv), Hints{Envs: h.Envs, Target: "openai"},
			"Unknown environment for *openai*. Its environments: `prod`, `staging`."},
		{"unknown env, target not given", wrapped(approvals.ErrUnknownEnv), h,
			"Unknown environment for this target. Environments per target: jwt: `prod`, `staging`; openai: `prod`, `staging`; sendgrid: `prod`."},
		{"unknown env, nothing configured", wrapped(approvals.ErrUnknownEnv), Hints{}, "Unknown environment for this target."},
		{"reason required", wrapped(approvals.ErrReasonRequired), h,
			"A reason is required: add `--reason \"why\"` (it is shown to approvers and kept in the audit trail)."},
		{"internal", wrapped(errors.New("bbolt: database not open at /var/lib/rotary/db")), h, internal},
		{"transition error is internal", wrapped(&approvals.TransitionError{From: approvals.StateDenied, To: approvals.StateRunning}), h, internal},
		{"deadline is internal", wrapped(context.DeadlineExceeded), h, internal},
		{"internal, no ref", errors.New("boom"), Hints{}, "Something went wrong on rotary's side (ref: `none`); the team has been told."},
		{"internal, hostile ref", errors.New("boom"), Hints{Ref: "x`<!channel>"}, "Something went wrong on rotary's side (ref: `x`&lt;!channel&gt;`); the team has been told."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ErrorText(tc.err, tc.h)
			if got != tc.want {
				t.Errorf("ErrorText(%v) =\n %q\nwant\n %q", tc.err, got, tc.want)
			}
			if tc.err != nil {
				checkMrkdwn(t, tc.name, got, maxSectionText)
			}
		})
	}
}

// wrapError is an error chain holding two errors, to test which one wins.
type wrapError struct{ a, b error }

func (e *wrapError) Error() string   { return e.a.Error() + ": " + e.b.Error() }
func (e *wrapError) Unwrap() []error { return []error{e.a, e.b} }

func TestErrorTextNeverShowsInternalText(t *testing.T) {
	secretish := "dial tcp 10.0.3.7:443: x509: certificate signed by unknown authority"
	got := ErrorText(fmt.Errorf("add version to projects/aivo/secrets/openai: %w", errors.New(secretish)), Hints{Ref: "E-1"})
	for _, leak := range []string{"10.0.3.7", "x509", "projects/aivo", "add version"} {
		if strings.Contains(got, leak) {
			t.Errorf("ErrorText shows internal text %q: %q", leak, got)
		}
	}
	if !strings.Contains(got, "E-1") {
		t.Errorf("ErrorText does not show the ref: %q", got)
	}
}

func TestErrorTextClipsLongUserMessage(t *testing.T) {
	got := ErrorText(&parseError{msg: strings.Repeat("<&>", 2000)}, Hints{})
	checkMrkdwn(t, "long user message", got, maxSectionText)
	if !strings.HasSuffix(got, ellipsis) {
		t.Errorf("long message not marked as clipped: …%q", got[len(got)-20:])
	}
}
