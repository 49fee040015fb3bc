package kubesteps_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kubesteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// testNow lies mid-second and outside UTC, so truncation and zone
// conversion are both exercised.
var testNow = time.Date(2026, 11, 26, 11, 0, 0, 700_000_000, time.FixedZone("CET", 3600))

const (
	testNS      = "aivo-prod"
	testES      = "ai-keys"
	testTimeout = 45 * time.Second
)

// events is the shared, ordered log of journal writes and cluster calls:
// it shows whether a stamp was recorded before the call that uses it.
type events struct{ list []string }

func (e *events) add(s string) { e.list = append(e.list, s) }

// fakeRun is the executor's side: facts, progress, a fixed clock.
type fakeRun struct {
	ev        *events
	facts     map[string]string
	progress  []string
	now       time.Time
	recordErr error
}

func newRun(ev *events) *fakeRun {
	return &fakeRun{ev: ev, facts: map[string]string{}, now: testNow}
}

func (r *fakeRun) RequestID() string               { return "R0042" }
func (r *fakeRun) Target() string                  { return "ai" }
func (r *fakeRun) Env() string                     { return "prod" }
func (r *fakeRun) Emergency() bool                 { return false }
func (r *fakeRun) Requester() string               { return "U1" }
func (r *fakeRun) Approver() string                { return "U2" }
func (r *fakeRun) Fact(key string) string          { return r.facts[key] }
func (r *fakeRun) Now() time.Time                  { return r.now }
func (r *fakeRun) Log() *slog.Logger               { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (r *fakeRun) KeepSecret(string, secret.Value) {}
func (r *fakeRun) Secret(string) (secret.Value, bool) {
	return secret.Value{}, false
}
func (r *fakeRun) Sleep(ctx context.Context, d time.Duration) error { return ctx.Err() }
func (r *fakeRun) Ask(context.Context, rotators.Prompt) (secret.Value, error) {
	return secret.Value{}, errors.New("no prompts here")
}
func (r *fakeRun) Progress(_ context.Context, detail string) { r.progress = append(r.progress, detail) }
func (r *fakeRun) Record(_ context.Context, key, value string) error {
	if r.recordErr != nil {
		return r.recordErr
	}
	r.facts[key] = value
	r.ev.add("record " + key + "=" + value)
	return nil
}

// fakeCluster implements Syncer and Restarter.
type fakeCluster struct {
	ev          *events
	syncErr     error
	waitSyncErr error
	restartErr  map[string]error
	rolloutErr  map[string]error
	rolloutMsgs []string
	// deadlines is how far off each wait's deadline was when it began.
	deadlines []time.Duration
}

func newCluster(ev *events) *fakeCluster {
	return &fakeCluster{ev: ev, restartErr: map[string]error{}, rolloutErr: map[string]error{}}
}

func (c *fakeCluster) noteDeadline(ctx context.Context) {
	d, ok := ctx.Deadline()
	if !ok {
		c.deadlines = append(c.deadlines, -1)
		return
	}
	c.deadlines = append(c.deadlines, time.Until(d))
}

func (c *fakeCluster) ForceSyncExternalSecret(_ context.Context, ns, name string, at time.Time) error {
	c.ev.add(fmt.Sprintf("force-sync %s/%s %s", ns, name, at.Format(time.RFC3339)))
	return c.syncErr
}

func (c *fakeCluster) WaitExternalSecretSynced(ctx context.Context, ns, name string, since time.Time) error {
	c.noteDeadline(ctx)
	c.ev.add(fmt.Sprintf("wait-sync %s/%s %s", ns, name, since.Format(time.RFC3339)))
	return c.waitSyncErr
}

func (c *fakeCluster) RestartDeployment(_ context.Context, ns, name string, at time.Time) error {
	c.ev.add(fmt.Sprintf("restart %s/%s %s", ns, name, at.Format(time.RFC3339)))
	return c.restartErr[name]
}

func (c *fakeCluster) WaitRollout(ctx context.Context, ns, name string, progress func(string)) error {
	c.noteDeadline(ctx)
	c.ev.add(fmt.Sprintf("wait-rollout %s/%s", ns, name))
	for _, m := range c.rolloutMsgs {
		progress(m)
	}
	return c.rolloutErr[name]
}

func TestStamp(t *testing.T) {
	tests := []struct {
		name    string
		facts   map[string]string
		after   []string
		want    string
		wantErr bool
	}{
		{name: "new stamp is now, in UTC, to the second", want: "2026-11-26T10:00:00Z"},
		{
			name:  "an earlier attempt's stamp is reused, even if not after",
			facts: map[string]string{"at": "2026-11-26T09:00:00Z", "prev": "2026-11-26T10:00:00Z"},
			after: []string{"prev"}, want: "2026-11-26T09:00:00Z",
		},
		{
			name:  "moved past a stamp in the same second",
			facts: map[string]string{"prev": "2026-11-26T10:00:00Z"},
			after: []string{"prev"}, want: "2026-11-26T10:00:01Z",
		},
		{
			name:  "moved past the latest of several",
			facts: map[string]string{"a": "2026-11-26T10:00:03Z", "b": "2026-11-26T10:00:01Z"},
			after: []string{"a", "b"}, want: "2026-11-26T10:00:04Z",
		},
		{
			name:  "an older stamp does not move it",
			facts: map[string]string{"prev": "2026-11-26T09:59:59Z"},
			after: []string{"prev"}, want: "2026-11-26T10:00:00Z",
		},
		{
			name:  "missing or unreadable earlier stamps are ignored",
			facts: map[string]string{"bad": "yesterday"},
			after: []string{"missing", "bad"}, want: "2026-11-26T10:00:00Z",
		},
		{
			name:    "a corrupt own stamp is permanent",
			facts:   map[string]string{"at": "soon"},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := newRun(&events{})
			for k, v := range tt.facts {
				run.facts[k] = v
			}
			got, err := kubesteps.Stamp(context.Background(), run, "at", tt.after...)
			if tt.wantErr {
				if err == nil || !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "fact at=") {
					t.Fatalf("err = %v, want a permanent error naming the fact", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Format(time.RFC3339); s != tt.want || run.facts["at"] != tt.want {
				t.Errorf("stamp = %s, fact = %q, want %s", s, run.facts["at"], tt.want)
			}
		})
	}
}

func TestStampRecordFailure(t *testing.T) {
	run := newRun(&events{})
	run.recordErr = errors.New("journal down")
	if _, err := kubesteps.Stamp(context.Background(), run, "at"); !errors.Is(err, run.recordErr) {
		t.Fatalf("err = %v, want the journal's error", err)
	}
}

// TestRollbackStampsAreLaterThanForwardOnes: a rollback in the same second
// as the forward sync/restart must still change the annotations, or the
// patch is a no-op and nothing re-syncs or restarts.
func TestRollbackStampsAreLaterThanForwardOnes(t *testing.T) {
	run := newRun(&events{})
	ctx := context.Background()
	fwd, err := kubesteps.Stamp(ctx, run, "sync_at")
	if err != nil {
		t.Fatal(err)
	}
	back, err := kubesteps.Stamp(ctx, run, "rollback_sync_at", "sync_at")
	if err != nil {
		t.Fatal(err)
	}
	if !back.After(fwd) {
		t.Fatalf("rollback stamp %s not after forward stamp %s", back, fwd)
	}
	again, _ := kubesteps.Stamp(ctx, run, "rollback_sync_at", "sync_at")
	if !again.Equal(back) {
		t.Fatal("a repeated rollback step must reuse its own stamp")
	}
}

func TestForceSync(t *testing.T) {
	ev := &events{}
	run, cl := newRun(ev), newCluster(ev)
	ctx := context.Background()
	for range 2 { // a repeat re-sends the same stamp
		if err := kubesteps.ForceSync(ctx, run, cl, testNS, testES, "sync_at", testTimeout); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"record sync_at=2026-11-26T10:00:00Z", // before the force-sync
		"force-sync aivo-prod/ai-keys 2026-11-26T10:00:00Z",
		"wait-sync aivo-prod/ai-keys 2026-11-26T10:00:00Z",
		"force-sync aivo-prod/ai-keys 2026-11-26T10:00:00Z",
		"wait-sync aivo-prod/ai-keys 2026-11-26T10:00:00Z",
	}
	if !slices.Equal(ev.list, want) {
		t.Errorf("events = %q\nwant %q", ev.list, want)
	}
	for _, d := range cl.deadlines {
		if d <= 0 || d > testTimeout {
			t.Errorf("wait deadline in %s, want within %s", d, testTimeout)
		}
	}
	wantProgress := []string{"Waiting for ExternalSecret aivo-prod/ai-keys to sync (up to 45s)", "ExternalSecret aivo-prod/ai-keys synced"}
	if !slices.Equal(run.progress[:2], wantProgress) {
		t.Errorf("progress = %q", run.progress)
	}
}

func TestForceSyncFailures(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		name          string
		nilCluster    bool
		syncErr       error
		waitErr       error
		wantPermanent bool
		wantIn        []string
		wantIs        []error
	}{
		{name: "no cluster", nilCluster: true, wantPermanent: true, wantIn: []string{"no Kubernetes client"}},
		{
			name: "refresh disabled", syncErr: fmt.Errorf("patch refused: %w", kube.ErrRefreshDisabled), wantPermanent: true,
			wantIn: []string{"ExternalSecret aivo-prod/ai-keys", "refreshInterval"}, wantIs: []error{kube.ErrRefreshDisabled},
		},
		{name: "force-sync fails", syncErr: cause, wantIn: []string{"force-syncing ExternalSecret aivo-prod/ai-keys"}, wantIs: []error{cause}},
		{name: "wait fails", waitErr: cause, wantIn: []string{"waiting for ExternalSecret aivo-prod/ai-keys to sync"}, wantIs: []error{cause}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			run, cl := newRun(ev), newCluster(ev)
			cl.syncErr, cl.waitSyncErr = tt.syncErr, tt.waitErr
			var c kubesteps.Syncer = cl
			if tt.nilCluster {
				c = nil
			}
			err := kubesteps.ForceSync(context.Background(), run, c, testNS, testES, "sync_at", testTimeout)
			if err == nil {
				t.Fatal("want an error")
			}
			if rotators.IsPermanent(err) != tt.wantPermanent {
				t.Errorf("permanent = %v, want %v: %v", rotators.IsPermanent(err), tt.wantPermanent, err)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %v, want it to contain %q", err, s)
				}
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("err = %v, want it to wrap %v", err, target)
				}
			}
			if tt.nilCluster && len(run.facts) != 0 {
				t.Errorf("recorded %v without a cluster", run.facts)
			}
		})
	}
}

// A stamp moved past an earlier one lies in the future: the force-sync waits
// for its second to begin, so the operator's refreshTime proves a later sync.
func TestForceSyncWaitsForMovedStamp(t *testing.T) {
	ev := &events{}
	run, cl := newRun(ev), newCluster(ev)
	run.now = time.Date(2026, 11, 26, 10, 0, 0, 998_000_000, time.UTC) // 2ms before the moved stamp
	run.facts["sync_at"] = "2026-11-26T10:00:00Z"
	start := time.Now()
	if err := kubesteps.ForceSync(context.Background(), run, cl, testNS, testES, "rollback_sync_at", testTimeout, "sync_at"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 2*time.Millisecond {
		t.Errorf("waited %s, want at least until the stamp's second (2ms)", waited)
	}
	if !slices.Contains(ev.list, "force-sync aivo-prod/ai-keys 2026-11-26T10:00:01Z") {
		t.Errorf("events = %q", ev.list)
	}

	// Cancelled while waiting: nothing is patched, the stamp stays recorded.
	ev.list = nil
	run, cl = newRun(ev), newCluster(ev)
	run.now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	run.facts["sync_at"] = "2026-11-26T10:00:00Z"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := kubesteps.ForceSync(ctx, run, cl, testNS, testES, "rollback_sync_at", testTimeout, "sync_at")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if want := []string{"record rollback_sync_at=2026-11-26T10:00:01Z"}; !slices.Equal(ev.list, want) {
		t.Errorf("events = %q, want %q", ev.list, want)
	}
}

func TestRestartAll(t *testing.T) {
	ev := &events{}
	run, cl := newRun(ev), newCluster(ev)
	cl.rolloutMsgs = []string{"1 of 2 updated replicas are available...", "1 of 2 updated replicas are available...", "rolled out"}
	// A restart stamp from an earlier attempt is reused.
	run.facts["restart_at"] = "2026-11-26T09:59:00Z"
	deps := []string{"ai-orchestrator", "ai-worker"}
	if err := kubesteps.RestartAll(context.Background(), run, cl, testNS, deps, "restart_at", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"restart aivo-prod/ai-orchestrator 2026-11-26T09:59:00Z",
		"wait-rollout aivo-prod/ai-orchestrator",
		"restart aivo-prod/ai-worker 2026-11-26T09:59:00Z",
		"wait-rollout aivo-prod/ai-worker",
	}
	if !slices.Equal(ev.list, want) {
		t.Errorf("events = %q\nwant %q", ev.list, want)
	}
	for _, d := range cl.deadlines {
		if d <= 0 || d > 3*time.Minute {
			t.Errorf("rollout deadline in %s, want within 3m", d)
		}
	}
	wantProgress := []string{
		"Restarting ai-orchestrator (1 of 2)",
		"ai-orchestrator: 1 of 2 updated replicas are available...", // once: repeats are skipped
		"ai-orchestrator: rolled out",
		"Restarting ai-worker (2 of 2)",
		"ai-worker: 1 of 2 updated replicas are available...",
		"ai-worker: rolled out",
		"Restarted ai-orchestrator, ai-worker",
	}
	if !slices.Equal(run.progress, wantProgress) {
		t.Errorf("progress = %q\nwant %q", run.progress, wantProgress)
	}
}

func TestRestartAllNewStampIsRecordedFirst(t *testing.T) {
	ev := &events{}
	run, cl := newRun(ev), newCluster(ev)
	run.facts["restart_at"] = "2026-11-26T10:00:00Z"
	err := kubesteps.RestartAll(context.Background(), run, cl, testNS, []string{"web"}, "rollback_restart_at", time.Minute, "restart_at")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"record rollback_restart_at=2026-11-26T10:00:01Z",
		"restart aivo-prod/web 2026-11-26T10:00:01Z",
		"wait-rollout aivo-prod/web",
	}
	if !slices.Equal(ev.list, want) {
		t.Errorf("events = %q\nwant %q", ev.list, want)
	}
}

func TestRestartAllFailures(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		name          string
		nilCluster    bool
		restartErr    map[string]error
		rolloutErr    map[string]error
		wantPermanent bool
		wantIn        string
		wantCalls     []string
	}{
		{name: "no cluster", nilCluster: true, wantPermanent: true, wantIn: "no Kubernetes client"},
		{
			name: "restart fails", restartErr: map[string]error{"b": cause}, wantIn: "restarting deployment aivo-prod/b",
			wantCalls: []string{"restart aivo-prod/a 2026-11-26T10:00:00Z", "wait-rollout aivo-prod/a", "restart aivo-prod/b 2026-11-26T10:00:00Z"},
		},
		{
			// A rollout that fails stops before the next deployment restarts.
			name: "rollout fails", rolloutErr: map[string]error{"a": cause}, wantIn: "waiting for the rollout of aivo-prod/a",
			wantCalls: []string{"restart aivo-prod/a 2026-11-26T10:00:00Z", "wait-rollout aivo-prod/a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			run, cl := newRun(ev), newCluster(ev)
			cl.restartErr, cl.rolloutErr = tt.restartErr, tt.rolloutErr
			var c kubesteps.Restarter = cl
			if tt.nilCluster {
				c = nil
			}
			err := kubesteps.RestartAll(context.Background(), run, c, testNS, []string{"a", "b", "c"}, "restart_at", time.Minute)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantIn)
			}
			if rotators.IsPermanent(err) != tt.wantPermanent {
				t.Errorf("permanent = %v, want %v", rotators.IsPermanent(err), tt.wantPermanent)
			}
			if !tt.nilCluster && !errors.Is(err, cause) {
				t.Errorf("err = %v, want it to wrap the cause", err)
			}
			var calls []string
			for _, e := range ev.list {
				if !strings.HasPrefix(e, "record ") {
					calls = append(calls, e)
				}
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("calls = %q, want %q", calls, tt.wantCalls)
			}
		})
	}
}

func TestWaitRollout(t *testing.T) {
	ev := &events{}
	run, cl := newRun(ev), newCluster(ev)
	cl.rolloutMsgs = []string{"waiting", "waiting", "done", "waiting"}
	if err := kubesteps.WaitRollout(context.Background(), run, cl, testNS, "web", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Only consecutive repeats are skipped: a message that comes back is news.
	if want := []string{"web: waiting", "web: done", "web: waiting"}; !slices.Equal(run.progress, want) {
		t.Errorf("progress = %q, want %q", run.progress, want)
	}
	if len(run.facts) != 0 {
		t.Errorf("WaitRollout recorded %v; it must not stamp", run.facts)
	}
}
