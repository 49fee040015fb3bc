package jwt

import (
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Runs every path that handles a private key or the invalidation output —
// generation, a lost key, an ordinary and an emergency rotation, a failed
// exec, the follow-up, a refused and a manual rollback, a Secret that holds
// other keys than the rotation wrote — and scans everything made visible
// (errors, progress lines, facts, the run's and the kube client's logs)
// for any private key (whole, one line of it, its exponent) and the
// command's output.
func TestNoPrivateKeyOrOutputVisible(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, backend)
			var errs []string
			var runs []*rotatorstest.Run
			try := func(f *fixture, r *rotatorstest.Run, names ...string) {
				for _, n := range names {
					if err := f.run(t, r, n); err != nil {
						errs = append(errs, err.Error())
					}
				}
			}

			// Ordinary, with a lost key, the follow-up, a manual rollback.
			f := w.rotation(t, testReqID, false)
			run := f.newRun()
			try(f, run, StepBackup, StepGenerate)
			runs = append(runs, run)
			run = f.restarted(run)
			try(f, run, f.forward()...)
			run.SetNow(run.Now().Add(DefaultGracePeriod))
			try(f, run, f.followUp()...)
			rb, rr := f.rollbackRequest(t, run)
			rr.SetNow(rr.Now().Add(time.Hour))
			for _, s := range rb.Rollback {
				if err := s.Run(ctxTimeout(t), rr); err != nil {
					errs = append(errs, err.Error())
				}
			}
			runs = append(runs, run, rr)

			// Emergency: a failing exec, a refused automatic rollback, then
			// verify against a Secret someone changed.
			e := w.rotation(t, "R-JWT0002", true)
			er := e.newRun()
			er.SetNow(rr.Now().Add(time.Hour))
			w.setExecReply(kubesim.ExecReply{Stdout: []byte(execOutput), Stderr: []byte(execOutput), ExitCode: 2})
			try(e, er, e.forward()...)
			try(e, er, StepRestore)
			data := w.secretData(t, testSecret)
			data[DefaultPublicKeyOld] = data[DefaultPrivateKey] // a private key in the wrong place
			w.setSecretData(t, testSecret, data)
			try(e, er, StepVerify)
			runs = append(runs, er)

			if len(errs) < 3 {
				t.Fatalf("the scenario produced too few errors to be meaningful: %q", errs)
			}
			if w.keys.count() < 3 || len(w.exec.Requests()) == 0 {
				t.Fatalf("keys made %d, execs %d: the scenario did not run", w.keys.count(), len(w.exec.Requests()))
			}
			texts := append(errs, w.logs.String())
			for _, r := range runs {
				texts = append(texts, r.Texts()...)
			}
			rotatorstest.AssertNoLeak(t, w.privateTexts(), texts...)
			if !strings.Contains(strings.Join(errs, "\n"), "exited with code 2") {
				t.Errorf("the exec failure is not among the errors: %q", errs)
			}
		})
	}
}

// decodePayload's errors give a position, never text from the payload.
func TestDecodePayloadErrorsHideContent(t *testing.T) {
	for _, p := range []string{`{"JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nMIIsecret`, `["MIIsecret"]`, `null`, `{"a": MIIsecret}`} {
		_, _, err := decodePayload(secret.FromString(p))
		if err == nil || strings.Contains(err.Error(), "MIIsecret") {
			t.Errorf("decodePayload(%.20q…) err = %v", p, err)
		}
	}
	if _, _, err := decodePayload(secret.FromString(`{"a": 1, "b": "x"}`)); err != nil {
		t.Errorf("a valid payload: %v", err)
	}
}
