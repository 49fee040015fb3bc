package apikey

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

func apiProviders() []string { return []string{ProviderOpenAI, ProviderSendGrid} }

func allProviders() []string { return []string{ProviderOpenAI, ProviderSendGrid, ProviderManual} }

func TestPlanStepsAndTitles(t *testing.T) {
	tests := []struct {
		provider    string
		newKeyTitle string
		wantNotes   int
	}{
		{ProviderOpenAI, "Create a new OpenAI key", 1},
		{ProviderSendGrid, "Create a new SendGrid key", 1},
		{ProviderManual, "Create a new Ai key", 3},
	}
	for _, tt := range tests {
		t.Run(tt.provider, func(t *testing.T) {
			f := newFixture(t, tt.provider)
			var got []string
			for _, s := range f.plan.Steps {
				got = append(got, s.Name+" | "+s.Title)
			}
			want := []string{
				"new_key | " + tt.newKeyTitle,
				"store_version | Add a new Secret Manager version",
				"sync | Force-sync ExternalSecret aivo-prod/external-services",
				"restart | Rolling restart ai-orchestrator, ai-worker",
				"verify | Check ai-orchestrator, ai-worker logs for errors",
				"revoke | Revoke the old key and disable the old Secret Manager version",
			}
			if !slices.Equal(got, want) {
				t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var rb []string
			for _, s := range f.plan.Rollback {
				rb = append(rb, s.Name)
			}
			if want := []string{StepRestoreVersion, StepRollbackSync, StepRollbackRestart, StepRevokeNewKey}; !slices.Equal(rb, want) {
				t.Errorf("rollback = %v, want %v", rb, want)
			}
			if len(f.plan.Notes) != tt.wantNotes || !strings.Contains(f.plan.Notes[len(f.plan.Notes)-1], "ai-orchestrator, ai-worker in namespace aivo-prod") {
				t.Errorf("notes = %q", f.plan.Notes)
			}
			if tt.provider == ProviderManual && !strings.Contains(f.plan.Notes[0], "requester will be asked to paste") {
				t.Errorf("manual note = %q", f.plan.Notes[0])
			}
			// Waiting steps outlast their own waits.
			if s := f.step(StepSync); s.Timeout <= DefaultSyncTimeout {
				t.Errorf("sync timeout %s does not exceed sync_timeout", s.Timeout)
			}
			if s := f.step(StepRestart); s.Timeout <= 2*DefaultRolloutTimeout {
				t.Errorf("restart timeout %s does not exceed 2 rollouts", s.Timeout)
			}
			if s := f.step(StepNewKey); (tt.provider == ProviderManual) != (s.Timeout == humanStepTimeout) {
				t.Errorf("new_key timeout = %s", s.Timeout)
			}
		})
	}
}

func TestHappyPath(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.mustRun(run, forward()...)

			newVersion := run.Fact(factNewVersion)
			if got := f.store.enabledSet(); !slices.Equal(got, []string{newVersion}) {
				t.Errorf("enabled versions = %v, want only %s", got, newVersion)
			}
			if got, want := f.store.value(newVersion), f.issued()[0]; strings.TrimSpace(got) != want || got != strings.TrimSpace(got) {
				t.Errorf("stored %q, want the new key %q", got, want)
			}
			if p != ProviderManual {
				if got := f.keyNames(); !slices.Equal(got, []string{"rotary:ai:prod:R0042"}) {
					t.Errorf("provider keys = %v", got)
				}
			}
			at := testNow.Unix()
			want := []string{
				fmt.Sprintf("force-sync aivo-prod/external-services %d", at),
				fmt.Sprintf("wait-sync aivo-prod/external-services %d", at),
				"restart aivo-prod/ai-orchestrator 2026-11-26T10:00:00Z",
				"wait-rollout aivo-prod/ai-orchestrator",
				"restart aivo-prod/ai-worker 2026-11-26T10:00:00Z",
				"wait-rollout aivo-prod/ai-worker",
				"scan aivo-prod/ai-orchestrator",
				"scan aivo-prod/ai-worker",
			}
			if got := f.cluster.callList(); !slices.Equal(got, want) {
				t.Errorf("cluster calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			rotatorstest.AssertNoLeak(t, append(f.issued(), testAdminKey, testOldValue), run.Texts()...)
		})
	}
}

// Every forward step run twice (the executor repeats the step in flight
// after a crash) has one external effect.
func TestForwardStepsIdempotent(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			for _, name := range forward() {
				f.mustRun(run, name, name)
			}
			if p != ProviderManual && f.creates() != 1 {
				t.Errorf("keys created = %d, want 1", f.creates())
			}
			if p == ProviderManual {
				asked := 0
				for _, pr := range run.Prompts() {
					if pr.ID == PromptPasteKey {
						asked++
					}
				}
				if asked != 1 || len(run.Prompts()) != 2 {
					t.Errorf("prompts = %v, want paste_key once and revoked once", run.Prompts())
				}
			}
			if f.store.adds != 1 {
				t.Errorf("versions added = %d, want 1", f.store.adds)
			}
			// Repeated syncs and restarts carry the same stamp, which makes
			// the repeated patch a no-op.
			stamps := map[string]bool{}
			for _, c := range f.cluster.callList() {
				if strings.HasPrefix(c, "force-sync") || strings.HasPrefix(c, "restart") {
					stamps[c] = true
				}
			}
			if len(stamps) != 3 {
				t.Errorf("distinct sync/restart calls = %v, want 3", stamps)
			}
			// After a restart (secrets gone), finished steps stay finished.
			again := run.Restarted()
			f.mustRun(again, StepNewKey, StepStoreVersion)
			if f.store.adds != 1 || (p != ProviderManual && f.creates() != 1) {
				t.Errorf("after a restart: adds=%d creates=%d", f.store.adds, f.creates())
			}
		})
	}
}

func TestNewKeyRecordsIntentAndKeepsSecret(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			run.OnRecord = func(key, value string) error {
				if key == factNewKeyName && f.creates() != 0 {
					t.Error("new_key_name recorded after the key was created")
				}
				return nil
			}
			f.mustRun(run, StepNewKey)
			if got := run.Fact(factNewKeyName); got != "rotary:ai:prod:R0042" {
				t.Errorf("new_key_name = %q", got)
			}
			if run.Fact(factNewKeyID) == "" {
				t.Error("new_key_id not recorded")
			}
			v, ok := run.Secret(secretNewKey)
			if !ok || string(v.Reveal()) != f.issued()[0] {
				t.Error("the new key is not kept in memory")
			}
		})
	}
}

// A key of this request's name that exists before new_key runs was made by
// an attempt whose value was lost: it is deleted before a new one is made,
// and nothing else is touched.
func TestNewKeyDeletesOrphanOfEarlierAttempt(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			f.seedKey("rotary:ai:prod:R0042")
			f.seedKey("rotary:ai:prod:R0041")
			f.seedKey("hand-made")
			run := f.newRun()
			f.mustRun(run, StepNewKey)
			want := []string{"rotary:ai:prod:R0041", "hand-made", "rotary:ai:prod:R0042"}
			if got := f.keyNames(); !slices.Equal(got, want) {
				t.Errorf("keys = %v, want %v", got, want)
			}
			if f.deletes() != 1 {
				t.Errorf("deletes = %d, want 1", f.deletes())
			}
		})
	}
}

// A restart between new_key and store_version loses the value: store_version
// asks for new_key again, which replaces the key it made before.
func TestSecretLostRemakesKey(t *testing.T) {
	for _, p := range allProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			run := f.newRun()
			f.mustRun(run, StepNewKey)
			firstID := run.Fact(factNewKeyID)

			run = run.Restarted()
			err := f.run(run, StepStoreVersion)
			var lost *rotators.SecretLostError
			if !errors.As(err, &lost) || lost.From != StepNewKey {
				t.Fatalf("store_version = %v, want SecretLostError from new_key", err)
			}
			if f.store.adds != 0 || run.Fact(factPrevVersion) != "" {
				t.Error("store_version acted without the secret")
			}
			f.mustRun(run, StepNewKey, StepStoreVersion)
			if p != ProviderManual {
				if run.Fact(factNewKeyID) == firstID {
					t.Error("new_key_id not replaced")
				}
				if got := f.keyNames(); !slices.Equal(got, []string{"rotary:ai:prod:R0042"}) {
					t.Errorf("keys = %v, want exactly one for the request", got)
				}
				if got, want := f.store.value(run.Fact(factNewVersion)), f.issued()[1]; got != want {
					t.Error("stored value is not the re-made key")
				}
			}
		})
	}
}

func TestNewKeyProviderFailures(t *testing.T) {
	tests := []struct {
		status    int
		permanent bool
	}{
		{http.StatusInternalServerError, false},
		{http.StatusTooManyRequests, false},
		{http.StatusForbidden, true},
		{http.StatusBadRequest, true},
	}
	for _, p := range apiProviders() {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%d", p, tt.status), func(t *testing.T) {
				f := newFixture(t, p)
				run := f.newRun()
				f.failNext(1, tt.status)
				err := f.run(run, StepNewKey)
				if err == nil || rotators.IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tt.status)) || !strings.Contains(err.Error(), "injected failure") {
					t.Fatalf("err = %v (permanent %v), want HTTP %d permanent=%v with the provider's message", err, rotators.IsPermanent(err), tt.status, tt.permanent)
				}
				f.mustRun(run, StepNewKey) // the retry works
				if f.creates() != 1 {
					t.Errorf("creates = %d", f.creates())
				}
			})
		}
	}
}

func TestNewKeyBadAdminKey(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			f.rot.clients.Creds = fakeCreds{"ADMIN_KEY_prod": "sk-admin-WRONGKEY-zzzzzzzzzzzzzzzz"}
			run := f.newRun()
			err := f.run(run, StepNewKey)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 401") {
				t.Fatalf("err = %v, want a permanent 401", err)
			}
			if strings.Contains(err.Error(), "sk-") || strings.Contains(err.Error(), "zzzz") {
				t.Errorf("error quotes the key: %v", err)
			}

			f.rot.clients.Creds = fakeCreds{}
			err = f.run(run, StepNewKey)
			if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "credential ADMIN_KEY_prod") {
				t.Errorf("err = %v, want a permanent error naming the credential", err)
			}
		})
	}
}

func TestManualNewKey(t *testing.T) {
	f := newFixture(t, ProviderManual)
	run := f.newRun()
	f.mustRun(run, StepNewKey)
	if len(run.Prompts()) != 1 {
		t.Fatalf("prompts = %v", run.Prompts())
	}
	p := run.Prompts()[0]
	if p.ID != PromptPasteKey || !p.Secret || p.Audience != rotators.AudienceRequester || p.Label != "Create a new restricted key in the Ai dashboard (https://dashboard.stripe.com/apikeys) and paste it here" {
		t.Errorf("prompt = %+v", p)
	}
	v, _ := run.Secret(secretNewKey)
	if string(v.Reveal()) != "rk_live_MANUALNEWKEY-pasted" {
		t.Error("the pasted key was not trimmed")
	}

	empty := f.newRun()
	empty.Answer = func(context.Context, rotators.Prompt) (secret.Value, error) { return secret.FromString(" \n"), nil }
	if err := f.run(empty, StepNewKey); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty answer: err = %v", err)
	}
	if _, ok := empty.Secret(secretNewKey); ok {
		t.Error("an empty key was kept")
	}

	same := f.newRun()
	same.Answer = func(context.Context, rotators.Prompt) (secret.Value, error) {
		return secret.FromString(testOldValue), nil
	}
	f.mustRun(same, StepNewKey)
	err := f.run(same, StepStoreVersion)
	if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("old key pasted: err = %v", err)
	}
	if f.store.adds != 0 {
		t.Error("the old key was stored again")
	}
}

func TestStoreVersionRecordsPreviousBeforeAdding(t *testing.T) {
	f := newFixture(t, ProviderOpenAI)
	run := f.newRun()
	f.mustRun(run, StepNewKey)
	f.store.beforeAdd = func() {
		if run.Fact(factPrevVersion) == "" {
			t.Error("AddVersion called before prev_version was recorded")
		}
	}
	// The first add lands but its answer is lost; the retry must still
	// know the version from before, not take the orphan for it.
	f.store.failAdd, f.store.addThenFail = errors.New("deadline exceeded"), true
	if err := f.run(run, StepStoreVersion); err == nil {
		t.Fatal("want the injected failure")
	}
	f.store.failAdd = nil
	f.mustRun(run, StepStoreVersion)
	base := f.store.secretName + "/versions/"
	if run.Fact(factPrevVersion) != base+"1" || run.Fact(factNewVersion) != base+"3" {
		t.Fatalf("prev=%s new=%s", run.Fact(factPrevVersion), run.Fact(factNewVersion))
	}
	// revoke disables the previous version and the orphan, keeps the new.
	f.mustRun(run, StepSync, StepRestart, StepVerify, StepRevoke)
	if got := f.store.enabledSet(); !slices.Equal(got, []string{base + "3"}) {
		t.Errorf("enabled = %v", got)
	}
}

func TestStoreVersionWithoutPreviousVersion(t *testing.T) {
	f := newFixture(t, ProviderOpenAI)
	f.store.versions = nil
	f.store.add(secret.FromString("disabled-long-ago"))
	f.store.versions[0].enabled = false
	run := f.newRun()
	f.mustRun(run, StepNewKey, StepStoreVersion)
	if got := run.Fact(factPrevVersion); got != noVersion {
		t.Errorf("prev_version = %q, want %q", got, noVersion)
	}
	f.mustRun(run, StepSync, StepRestart, StepVerify, StepRevoke)
	if got := f.store.enabledSet(); !slices.Equal(got, []string{run.Fact(factNewVersion)}) {
		t.Errorf("enabled = %v", got)
	}
}

func TestSync(t *testing.T) {
	f := newFixture(t, ProviderOpenAI, "sync_timeout: 45s")
	run := f.newRun()
	run.OnRecord = func(key, _ string) error {
		if key == factSyncAt && len(f.cluster.callList()) != 0 {
			t.Error("sync_at recorded after the force-sync")
		}
		return nil
	}
	f.mustRun(run, StepSync)
	if d := f.cluster.waitDeadline["sync"]; d <= 0 || d > 45*time.Second {
		t.Errorf("wait deadline in %s, want within sync_timeout 45s", d)
	}
	if got := run.Fact(factSyncAt); got != "2026-11-26T10:00:00Z" {
		t.Errorf("sync_at = %q", got)
	}

	f.cluster.syncErr = fmt.Errorf("patch refused: %w", kube.ErrRefreshDisabled)
	err := f.run(f.newRun(), StepSync)
	if err == nil || !rotators.IsPermanent(err) || !errors.Is(err, kube.ErrRefreshDisabled) || !strings.Contains(err.Error(), "refreshInterval") {
		t.Errorf("err = %v, want a permanent refreshInterval error", err)
	}
}

func TestRestartOrderAndProgress(t *testing.T) {
	f := newFixture(t, ProviderOpenAI, "rollout_timeout: 3m")
	f.cluster.rolloutMsgs = []string{"1 of 2 updated replicas are available...", "1 of 2 updated replicas are available...", "rolled out"}
	run := f.newRun()
	// A restart stamp from an earlier attempt is reused.
	run.SetFact(factRestartAt, "2026-11-26T09:59:00Z")
	f.mustRun(run, StepRestart)
	want := []string{
		"restart aivo-prod/ai-orchestrator 2026-11-26T09:59:00Z",
		"wait-rollout aivo-prod/ai-orchestrator",
		"restart aivo-prod/ai-worker 2026-11-26T09:59:00Z",
		"wait-rollout aivo-prod/ai-worker",
	}
	if got := f.cluster.callList(); !slices.Equal(got, want) {
		t.Errorf("calls = %v", got)
	}
	if d := f.cluster.waitDeadline["rollout"]; d <= 0 || d > 3*time.Minute {
		t.Errorf("rollout deadline in %s, want within 3m", d)
	}
	n := 0
	for _, p := range run.ProgressLines() {
		if p == "ai-orchestrator: 1 of 2 updated replicas are available..." {
			n++
		}
	}
	if n != 1 {
		t.Errorf("repeated rollout message shown %d times: %q", n, run.ProgressLines())
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t, ProviderOpenAI, `log_error_pattern: "(?i)(error|{env}-denied)"`)
	run := f.newRun()
	if err := f.run(run, StepVerify); err == nil || !rotators.IsPermanent(err) {
		t.Errorf("verify without a restart: err = %v", err)
	}
	run.SetFact(factRestartAt, "2026-11-26T10:00:00Z")
	f.mustRun(run, StepVerify)
	if !f.cluster.scanSince.Equal(testNow) || f.cluster.scanPattern != "(?i)(error|prod-denied)" {
		t.Errorf("scan since %s pattern %q", f.cluster.scanSince, f.cluster.scanPattern)
	}

	f.cluster.scans["ai-worker"] = kube.LogScan{Pods: 3, Lines: 300, Matches: map[string]int{"ai-worker-b": 4, "ai-worker-a": 1, "ai-worker-c": 0}}
	err := f.run(run, StepVerify)
	if err == nil || !rotators.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if want := "ai-worker: 5 of 300 lines match (?i)(error|prod-denied): ai-worker-a (1), ai-worker-b (4)"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v\nwant it to contain %q", err, want)
	}
	if strings.Contains(err.Error(), "ai-orchestrator:") || strings.Contains(err.Error(), "ai-worker-c") {
		t.Errorf("err names clean deployments or pods: %v", err)
	}
}

// revoke deletes only the older keys rotary made for this target and
// environment, and disables the previous version.
func TestRevokeDeletesOnlyOlderRotaryKeys(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			f.seedKey("rotary:ai:prod:R0001")    // an earlier rotation's key: revoked
			f.seedKey("rotary:ai:staging:R0002") // another environment's
			f.seedKey("rotary:ai-batch:prod:R3") // another target whose name shares a prefix
			f.seedKey("hand-made prod key")
			run := f.newRun()
			f.mustRun(run, forward()...)
			want := []string{"rotary:ai:staging:R0002", "rotary:ai-batch:prod:R3", "hand-made prod key", "rotary:ai:prod:R0042"}
			if got := f.keyNames(); !slices.Equal(got, want) {
				t.Errorf("keys = %v, want %v", got, want)
			}
			last := run.ProgressLines()[len(run.ProgressLines())-1]
			if !strings.Contains(last, "Revoked 1 old") || !strings.Contains(last, "Disabled "+f.store.secretName+"/versions/1") {
				t.Errorf("progress = %q", last)
			}
			deletes := f.deletes()
			f.mustRun(run, StepRevoke)
			if f.deletes() != deletes {
				t.Error("a repeated revoke deleted again")
			}
		})
	}
}

func TestRevokeOldKeyMadeByHand(t *testing.T) {
	for _, p := range apiProviders() {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t, p)
			f.seedKey("hand-made prod key")
			run := f.newRun()
			f.mustRun(run, forward()...)
			last := run.ProgressLines()[len(run.ProgressLines())-1]
			where := map[string]string{ProviderOpenAI: "OpenAI dashboard, project " + testProject, ProviderSendGrid: "SendGrid dashboard"}[p]
			if !strings.Contains(last, "must be revoked by hand") || !strings.Contains(last, where) {
				t.Errorf("progress = %q, want a by-hand note naming %q", last, where)
			}
			if f.deletes() != 0 {
				t.Error("a key not made by rotary was deleted")
			}
		})
	}
}

func TestRevokeManual(t *testing.T) {
	f := newFixture(t, ProviderManual)
	run := f.newRun()
	f.mustRun(run, forward()...)
	f.mustRun(run, StepRevoke)
	var revoked []rotators.Prompt
	for _, p := range run.Prompts() {
		if p.ID == PromptRevoked {
			revoked = append(revoked, p)
		}
	}
	if len(revoked) != 1 || revoked[0].Audience != rotators.AudienceParticipants || revoked[0].Secret || !strings.Contains(revoked[0].Label, "then click Revoked") {
		t.Errorf("revoked prompts = %+v, want one confirmation for participants", revoked)
	}
	if run.Fact(factRevokeStarted) == "" {
		t.Error("revoke_started not recorded")
	}
}

func TestNilClientsFailClearly(t *testing.T) {
	rot, problems := Build("openai", yamlDecode(openAIYAML), rotators.Deps{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	spec := rotators.Spec{RequestID: "R1", Target: "openai", Env: "prod"}
	plan := rot.Plan(spec)
	want := map[string]string{
		StepNewKey:       "no HTTP client",
		StepStoreVersion: "no Secret Manager client",
		StepSync:         "no Kubernetes client",
		StepRestart:      "no Kubernetes client",
		StepVerify:       "no Kubernetes client",
		StepRevoke:       "no Secret Manager client",
	}
	for _, s := range plan.Steps {
		run := newFakeRun(spec)
		if s.Name != StepNewKey {
			run.KeepSecret(secretNewKey, secret.FromString("v"))
		}
		if s.Name == StepRevoke {
			run.SetFact(factNewVersion, "projects/p/secrets/s/versions/2")
		}
		run.SetFact(factRestartAt, "2026-11-26T10:00:00Z")
		err := s.Run(t.Context(), run)
		if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), want[s.Name]) {
			t.Errorf("%s: err = %v, want permanent %q", s.Name, err, want[s.Name])
		}
	}
}
