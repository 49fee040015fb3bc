package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

var backends = []string{BackendKubernetes, BackendSecretManager}

// The whole ordinary rotation, then the follow-up, with real tokens: a
// token signed with the old key verifies during the grace period and stops
// verifying once the old public key is removed; a token signed with the
// new key verifies throughout.
func TestRotationAndGracePeriod(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, backend)
			f := w.rotation(t, testReqID, false)
			run := f.newRun()
			oldTok := sign(t, w.oldKey, testOldKID)
			if err := w.verify(t, oldTok); err != nil {
				t.Fatalf("before the rotation the old token does not verify: %v", err)
			}
			gen := w.generation(t)

			f.mustRun(t, run, f.forward()...)

			newKey, newKID := w.currentPrivate(t)
			if want := poolKeys(t)[1]; !newKey.Equal(want) {
				t.Fatal("the Secret's private key is not the generated one")
			}
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(newKID) || newKID == testOldKID {
				t.Errorf("new kid %q: want 16 new hex digits", newKID)
			}
			newTok := sign(t, newKey, newKID)
			for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
				if err := w.verify(t, tok); err != nil {
					t.Errorf("grace period: the %s key's token does not verify: %v", name, err)
				}
			}
			data := w.keysData(t)
			want := map[string]string{
				DefaultPrivateKey:   mustPKCS8(newKey),
				DefaultPublicKey:    string(mustPublicPEM(t, &newKey.PublicKey)),
				DefaultPublicKeyOld: w.original[DefaultPublicKey], // byte for byte
				DefaultKeyID:        newKID,
				testOther:           "keep-me",
			}
			if !equalMaps(data, want) {
				t.Errorf("Secret keys %v, want %v with the new key pair and the old public key", slices.Sorted(maps.Keys(data)), slices.Sorted(maps.Keys(want)))
			}
			facts := run.Facts()
			if facts[factNewKID] != newKID || facts[factNewFingerprint] != mustFingerprint(t, &newKey.PublicKey) || facts[factOldFingerprint] != mustFingerprint(t, &w.oldKey.PublicKey) || facts[factOldKID] != testOldKID {
				t.Errorf("facts = %v", facts)
			}
			if got := w.generation(t); got != gen+1 {
				t.Errorf("deployment generation %d, want %d (one restart)", got, gen+1)
			}
			switch backend {
			case BackendKubernetes:
				if b := w.secretData(t, facts[factBackup]); !equalMaps(b, w.original) {
					t.Error("the backup Secret does not hold the original data")
				}
			case BackendSecretManager:
				vs := w.gsmSrv.Versions(testGSMSecret)
				if facts[factPrevVersion] != vs[0].Name || facts[factNewVersion] != vs[1].Name || len(vs) != 2 {
					t.Errorf("versions %d, facts prev=%s new=%s", len(vs), facts[factPrevVersion], facts[factNewVersion])
				}
				var obj map[string]json.RawMessage
				if err := json.Unmarshal(vs[1].Payload, &obj); err != nil || string(obj["REFRESH_SECONDS"]) != "900" {
					t.Errorf("the new version lost the payload's other members: %v", err)
				}
			}

			// The wait: 15 one-minute sleeps, the remaining time shown.
			sleeps := run.Sleeps()
			var total time.Duration
			for _, d := range sleeps {
				total += d
				if d > waitSlice {
					t.Errorf("slept %s at once, want at most %s", d, waitSlice)
				}
			}
			if total != DefaultTokenLifetime || len(sleeps) != 15 {
				t.Errorf("waited %s in %d sleeps, want %s in 15", total, len(sleeps), DefaultTokenLifetime)
			}
			progress := run.ProgressText()
			for _, s := range []string{"Tokens signed with the old key expire in 15m", "Tokens signed with the old key expire in 1m", "Tokens signed with the old key have expired"} {
				if !strings.Contains(progress, s) {
					t.Errorf("progress lacks %q", s)
				}
			}

			if n := len(f.plan.FollowUps); n != 1 {
				t.Fatalf("%d follow-ups, want 1", n)
			}
			fu := f.plan.FollowUps[0]
			if fu.Name != FollowUpRemoveOldKey || fu.Delay != DefaultGracePeriod {
				t.Errorf("follow-up %s after %s, want %s after %s", fu.Name, fu.Delay, FollowUpRemoveOldKey, DefaultGracePeriod)
			}
			run.SetNow(run.Now().Add(fu.Delay))
			f.mustRun(t, run, f.followUp()...)

			if err := w.verify(t, oldTok); err == nil {
				t.Error("after the follow-up the old key's token still verifies")
			}
			if err := w.verify(t, newTok); err != nil {
				t.Errorf("after the follow-up the new key's token does not verify: %v", err)
			}
			delete(want, DefaultPublicKeyOld)
			if data := w.keysData(t); !equalMaps(data, want) {
				t.Errorf("after the follow-up: Secret keys %v, want %v", slices.Sorted(maps.Keys(data)), slices.Sorted(maps.Keys(want)))
			}
			if got := w.generation(t); got != gen+2 {
				t.Errorf("deployment generation %d, want %d (restarted again)", got, gen+2)
			}
			if run.Fact(factRemovalOutcome) != removalRemoved {
				t.Errorf("removal outcome %q", run.Fact(factRemovalOutcome))
			}
		})
	}
}

// An emergency: the old public key goes at once, sessions are invalidated
// by one exec in a ready pod, and every ExternalSecret is force-synced.
func TestEmergency(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, backend)
			f := w.rotation(t, testReqID, true, "invalidate_sessions:\n  command: [npm, run, invalidate-all-sessions, --, '--env={env}']\n  container: app")
			run := f.newRun()
			oldTok := sign(t, w.oldKey, testOldKID)

			f.mustRun(t, run, f.forward()...)

			newKey, newKID := w.currentPrivate(t)
			if err := w.verify(t, oldTok); err == nil {
				t.Error("right after the emergency rotation the old key's token still verifies")
			}
			if err := w.verify(t, sign(t, newKey, newKID)); err != nil {
				t.Errorf("the new key's token does not verify: %v", err)
			}
			if _, ok := w.keysData(t)[DefaultPublicKeyOld]; ok {
				t.Errorf("the Secret still has %s", DefaultPublicKeyOld)
			}

			reqs := w.exec.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d exec calls, want 1", len(reqs))
			}
			r := reqs[0]
			wantCmd := []string{"npm", "run", "invalidate-all-sessions", "--", "--env=prod"}
			if r.Namespace != testNS || !strings.HasPrefix(r.Pod, "auth-svc-6b7c9-") || r.Container != "app" || !slices.Equal(r.Command, wantCmd) {
				t.Errorf("exec = %+v, want %v in container app of a ready auth-svc pod", r, wantCmd)
			}
			if got := run.Fact(factSessionsResult); !strings.Contains(got, "exit code 0") || !strings.Contains(got, strconv.Itoa(len(execOutput))+" bytes") {
				t.Errorf("sessions fact = %q", got)
			}

			stamp := run.Fact(factSyncAllAt)
			at, err := time.Parse(time.RFC3339, stamp)
			if err != nil {
				t.Fatalf("sync-all stamp %q: %v", stamp, err)
			}
			for _, es := range testExternalSecrets {
				if got := w.forceSyncStamp(t, es); got != strconv.FormatInt(at.Unix(), 10) {
					t.Errorf("ExternalSecret %s force-sync=%q, want %d", es, got, at.Unix())
				}
			}
			if got := w.forceSyncStamp(t, testStaticES); got != "" {
				t.Errorf("the refresh-disabled ExternalSecret was annotated: %q", got)
			}
			if got := run.Fact(factSyncAllResult); !strings.Contains(got, "synced 3 of 4") || !strings.Contains(got, "refresh disabled, not synced (check them by hand): "+testStaticES) {
				t.Errorf("sync-all summary %q", got)
			}

			if len(f.plan.FollowUps) != 0 || slices.Contains(f.forward(), StepWaitTokens) {
				t.Errorf("an emergency plan has a follow-up or a token wait: %v", f.forward())
			}
			if len(run.Sleeps()) > 1 {
				t.Errorf("an emergency waited: %v", run.Sleeps())
			}
			if notes := strings.Join(f.plan.Notes, "\n"); !strings.Contains(notes, "EMERGENCY") || !strings.Contains(notes, "npm run invalidate-all-sessions -- --env=prod") {
				t.Errorf("notes = %s", notes)
			}
		})
	}
}

// The invalidation command's failure fails the step with the exit code and
// the output's size, never the output; no ready pod is a clear error.
func TestEmergencyInvalidationFailures(t *testing.T) {
	w := newWorld(t, BackendKubernetes)
	f := w.rotation(t, testReqID, true)
	run := f.newRun()
	f.mustRun(t, run, StepBackup, StepGenerate, StepUpdate, StepRestart)

	w.setExecReply(kubesim.ExecReply{Stdout: []byte(execOutput), ExitCode: 7})
	err := f.run(t, run, StepInvalidateSessions)
	if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "exited with code 7") || !strings.Contains(err.Error(), strconv.Itoa(len(execOutput))+" bytes of output") {
		t.Fatalf("exit 7: err = %v, want a permanent error with the exit code and output size", err)
	}
	if strings.Contains(err.Error(), "sess_SECRET") || run.Fact(factSessionsResult) != "" {
		t.Errorf("output in the error, or success recorded: %v", err)
	}

	for _, p := range []string{"auth-svc-6b7c9-aaaaa", "auth-svc-6b7c9-bbbbb"} {
		if err := w.cs.CoreV1().Pods(testNS).Delete(ctxTimeout(t), p, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err = f.run(t, run, StepInvalidateSessions)
	if err == nil || !strings.Contains(err.Error(), "finding a ready pod of aivo-prod/auth-svc") || !errors.Is(err, kube.ErrNoReadyPod) {
		t.Errorf("no pods: err = %v, want one wrapping kube.ErrNoReadyPod", err)
	}
	if n := len(w.exec.Requests()); n != 1 {
		t.Errorf("%d exec calls, want 1 (none without a ready pod)", n)
	}
}

// A failing ExternalSecret fails the sync-all step after every other one
// was synced, naming it; the refresh-disabled one is only listed.
func TestEmergencySyncAllFailure(t *testing.T) {
	w := newWorld(t, BackendKubernetes)
	f := w.rotation(t, testReqID, true, "sync_timeout: 1s")
	run := f.newRun()
	w.sim.SetExternalSecretError(testNS, "database-credentials", "SecretSyncedError", "could not get secret data from provider")
	err := f.run(t, run, StepSyncAll)
	if err == nil || !strings.Contains(err.Error(), "synced 2 of 4: external-services, jwt-keys") ||
		!strings.Contains(err.Error(), "failed: database-credentials") || !strings.Contains(err.Error(), "refresh disabled, not synced (check them by hand): static-config") {
		t.Fatalf("err = %v", err)
	}
	if run.Fact(factSyncAllResult) != "" {
		t.Error("success recorded")
	}
}

// The token wait records its deadline first: resumed after a restart that
// took 10 minutes, it waits only the 5 left.
func TestWaitTokensResumes(t *testing.T) {
	w := newWorld(t, BackendKubernetes)
	f := w.rotation(t, testReqID, false)
	run := f.newRun()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the process stops during the first sleep
	if err := f.step(t, StepWaitTokens).Run(ctx, run); err == nil {
		t.Fatal("the wait survived its context")
	}
	deadline := run.Fact(factTokensExpireAt)
	if want := rotatorstest.DefaultNow.Add(DefaultTokenLifetime).Format(time.RFC3339); deadline != want {
		t.Fatalf("deadline %q, want %q", deadline, want)
	}
	r2 := f.restarted(run)
	r2.SetNow(r2.Now().Add(10 * time.Minute))
	f.mustRun(t, r2, StepWaitTokens)
	var total time.Duration
	for _, d := range r2.Sleeps() {
		total += d
	}
	if total != 5*time.Minute || !strings.Contains(r2.ProgressText(), "expire in 5m") {
		t.Errorf("resumed wait slept %s (progress %q), want 5m", total, r2.ProgressText())
	}
}

// Verification refuses a Secret that is not what the rotation wrote.
func TestVerifyRefusesOtherKeys(t *testing.T) {
	tests := []struct {
		name      string
		emergency bool
		change    func(w *world, data map[string]string)
		want      string
	}{
		{name: "kid changed", change: func(_ *world, d map[string]string) { d[DefaultKeyID] = "ffffffffffffffff" }, want: `JWT_KEY_ID is "ffffffffffffffff"`},
		{name: "public key of another pair", change: func(w *world, d map[string]string) { d[DefaultPublicKey] = w.original[DefaultPublicKey] }, want: "is not the public key of JWT_PRIVATE_KEY"},
		{name: "old public key missing", change: func(_ *world, d map[string]string) { delete(d, DefaultPublicKeyOld) }, want: "want the previous public key"},
		{name: "emergency: old public key still there", emergency: true, change: func(w *world, d map[string]string) { d[DefaultPublicKeyOld] = w.original[DefaultPublicKey] }, want: "still has JWT_PUBLIC_KEY_OLD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, BackendKubernetes)
			f := w.rotation(t, testReqID, tt.emergency)
			run := f.newRun()
			f.mustRun(t, run, StepBackup, StepGenerate, StepUpdate)
			data := w.secretData(t, testSecret)
			tt.change(w, data)
			w.setSecretData(t, testSecret, data)
			err := f.run(t, run, StepVerify)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verify err = %v, want a permanent error containing %q", err, tt.want)
			}
		})
	}
}

// The backup step refuses keys it cannot rotate.
func TestBackupRefusesUnusableKeys(t *testing.T) {
	tests := []struct {
		name   string
		change func(map[string]string)
		want   string
	}{
		{name: "no public key", change: func(d map[string]string) { delete(d, DefaultPublicKey) }, want: "has no JWT_PUBLIC_KEY (keys: JWT_KEY_ID, JWT_PRIVATE_KEY, OTHER_SETTING)"},
		{name: "not PEM", change: func(d map[string]string) { d[DefaultPublicKey] = "ssh-rsa AAAA" }, want: "JWT_PUBLIC_KEY is not a PEM RSA public key: not PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, BackendKubernetes)
			data := w.secretData(t, testSecret)
			tt.change(data)
			w.setSecretData(t, testSecret, data)
			f := w.rotation(t, testReqID, false)
			run := f.newRun()
			err := f.run(t, run, StepBackup)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("backup err = %v, want %q", err, tt.want)
			}
			if run.Fact(factBackup) != "" {
				t.Error("a backup was recorded")
			}
		})
	}
}

// The update refuses to overwrite keys changed after the backup.
func TestUpdateRefusesChangedKeys(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, backend)
			f := w.rotation(t, testReqID, false)
			run := f.newRun()
			f.mustRun(t, run, StepBackup, StepGenerate)
			want := "someone changed it"
			if backend == BackendSecretManager {
				if _, err := w.store.AddVersion(ctxTimeout(t), testGSMSecret, secret.FromString(`{"JWT_PUBLIC_KEY":"x"}`)); err != nil {
					t.Fatal(err)
				}
				want = "someone added a version"
			} else {
				data := w.secretData(t, testSecret)
				data[DefaultKeyID] = "0000000000000000"
				w.setSecretData(t, testSecret, data)
			}
			err := f.run(t, run, StepUpdate)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), want) {
				t.Errorf("update err = %v, want %q", err, want)
			}
			if run.Fact(factUpdateStarted) != "" {
				t.Error("the update started")
			}
		})
	}
}
