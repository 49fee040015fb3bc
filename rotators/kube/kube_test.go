package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

const (
	ns = "aivo-prod"
	// waitTimeout bounds waits that are expected to succeed; they finish as
	// soon as the sim has acted, so it only matters when a test is broken.
	waitTimeout = 10 * time.Second
	// expireTimeout is for waits that are expected to time out.
	expireTimeout = 100 * time.Millisecond
)

// clock is an injectable, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

type env struct {
	cs    *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
	sim   *kubesim.Sim
	kc    *kube.Client
	clock *clock
	logs  *syncWriter
}

// logText is what the client logged so far.
func (e *env) logText() string {
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	return e.logs.w.String()
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// newEnv builds fakes holding objs (typed ones in the clientset, unstructured
// ones in the dynamic client), a sim (not started when start is false) and a
// client.
func newEnv(t *testing.T, simOpts kubesim.Options, kubeOpts kube.Options, start bool, objs ...runtime.Object) *env {
	t.Helper()
	var typed, dyn []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*unstructured.Unstructured); ok {
			dyn = append(dyn, o)
		} else {
			typed = append(typed, o)
		}
	}
	e := &env{
		cs:    fake.NewSimpleClientset(typed...),
		dyn:   kubesim.NewDynamicClient(dyn...),
		clock: &clock{t: t0},
		logs:  &syncWriter{w: &bytes.Buffer{}},
	}
	simOpts.Now = e.clock.Now
	e.sim = kubesim.New(e.cs, e.dyn, simOpts)
	kubeOpts.Now = e.clock.Now
	kubeOpts.Log = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.kc = kube.New(e.cs, e.dyn, kubeOpts)
	if start {
		e.start(t)
	}
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.sim.Start(ctx); err != nil {
		cancel()
		t.Fatalf("sim start: %v", err)
	}
	t.Cleanup(func() { cancel(); <-e.sim.Done() })
}

func (e *env) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.sim.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func (e *env) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := e.cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) externalSecret(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := e.dyn.Resource(kube.ExternalSecretGVR(kube.ExternalSecretsV1)).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// patches returns the patch actions recorded for resource (main resource only).
func patches(actions []k8stesting.Action, resource string) []k8stesting.PatchActionImpl {
	var out []k8stesting.PatchActionImpl
	for _, a := range actions {
		if p, ok := a.(k8stesting.PatchActionImpl); ok && a.GetResource().Resource == resource && a.GetSubresource() == "" {
			out = append(out, p)
		}
	}
	return out
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func labels() map[string]string { return map[string]string{"app": "auth-svc"} }

// kubectlRestartPatch is the patch `kubectl rollout restart` would send for
// dep, computed with kubectl's own objectrestarter and the same two-way
// strategic merge kubectl's set.CalculatePatch uses.
func kubectlRestartPatch(t *testing.T, dep *appsv1.Deployment) map[string]any {
	t.Helper()
	obj := dep.DeepCopy()
	obj.APIVersion, obj.Kind = "apps/v1", "Deployment" // kubectl's builder sets TypeMeta
	before, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	after, err := polymorphichelpers.ObjectRestarterFn(obj)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(before, after, obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRestartDeploymentPatchesLikeKubectl(t *testing.T) {
	at := time.Date(2026, 3, 4, 6, 6, 7, 500_000_000, time.FixedZone("CET", 3600))
	const wantStamp = "2026-03-04T05:06:07Z" // UTC, second precision
	tests := []struct {
		name     string
		template map[string]string // pod-template annotations before
	}{
		{name: "no annotations", template: nil},
		{name: "other annotations kept", template: map[string]string{"prometheus.io/scrape": "true"}},
		{name: "earlier restart overwritten", template: map[string]string{kube.RestartedAtAnnotation: "2025-01-01T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep := kubesim.NewDeployment(ns, "auth-svc", 2, labels())
			dep.Spec.Template.Annotations = tt.template
			e := newEnv(t, kubesim.Options{}, kube.Options{}, true, dep)
			e.cs.ClearActions()

			if err := e.kc.RestartDeployment(context.Background(), ns, "auth-svc", at); err != nil {
				t.Fatal(err)
			}
			ps := patches(e.cs.Actions(), "deployments")
			if len(ps) != 1 {
				t.Fatalf("got %d patch actions, want 1", len(ps))
			}
			if ps[0].GetPatchType() != types.StrategicMergePatchType {
				t.Errorf("patch type %s, want strategic merge like kubectl", ps[0].GetPatchType())
			}
			var got map[string]any
			if err := json.Unmarshal(ps[0].GetPatch(), &got); err != nil {
				t.Fatal(err)
			}
			// kubectl's patch, with its time.Now stamp replaced by ours.
			want := kubectlRestartPatch(t, dep)
			ann := want["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
			ann[kube.RestartedAtAnnotation] = wantStamp
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("patch\n got %s\nwant %s", gotJSON, wantJSON)
			}

			after := e.deployment(t, "auth-svc")
			if v := after.Spec.Template.Annotations[kube.RestartedAtAnnotation]; v != wantStamp {
				t.Errorf("restartedAt = %q, want %q", v, wantStamp)
			}
			for k, v := range tt.template {
				if k != kube.RestartedAtAnnotation && after.Spec.Template.Annotations[k] != v {
					t.Errorf("annotation %s lost", k)
				}
			}
			if after.Generation != 2 {
				t.Errorf("generation = %d, want 2 (a rollout started)", after.Generation)
			}
		})
	}
}

func TestRestartDeploymentRepeatIsNoop(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, true, kubesim.NewDeployment(ns, "auth-svc", 2, labels()))
	ctx := context.Background()
	if err := e.kc.RestartDeployment(ctx, ns, "auth-svc", t0); err != nil {
		t.Fatal(err)
	}
	if g := e.deployment(t, "auth-svc").Generation; g != 2 {
		t.Fatalf("generation after first restart = %d, want 2", g)
	}
	e.cs.ClearActions()

	// The executor repeats the step after a crash, with the same instant,
	// read back from the journal in another time zone.
	if err := e.kc.RestartDeployment(ctx, ns, "auth-svc", t0.In(time.FixedZone("X", -7*3600))); err != nil {
		t.Fatal(err)
	}
	if n := len(patches(e.cs.Actions(), "deployments")); n != 0 {
		t.Errorf("repeat sent %d patches, want 0", n)
	}
	if g := e.deployment(t, "auth-svc").Generation; g != 2 {
		t.Errorf("generation after repeat = %d, want 2 (no second rollout)", g)
	}

	// A different instant is a new restart.
	if err := e.kc.RestartDeployment(ctx, ns, "auth-svc", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if g := e.deployment(t, "auth-svc").Generation; g != 3 {
		t.Errorf("generation after new restart = %d, want 3", g)
	}
}

func TestRestartDeploymentRefusals(t *testing.T) {
	paused := kubesim.NewDeployment(ns, "paused", 1, labels())
	paused.Spec.Paused = true
	e := newEnv(t, kubesim.Options{}, kube.Options{}, true, paused)
	e.cs.ClearActions()

	err := e.kc.RestartDeployment(context.Background(), ns, "paused", t0)
	if !errors.Is(err, kube.ErrPaused) || !strings.Contains(err.Error(), "kubectl rollout resume") || !strings.Contains(err.Error(), ns+"/paused") {
		t.Errorf("paused: err = %v, want ErrPaused naming the object and the fix", err)
	}
	if n := len(patches(e.cs.Actions(), "deployments")); n != 0 {
		t.Errorf("paused: sent %d patches", n)
	}

	if err := e.kc.RestartDeployment(context.Background(), ns, "paused", time.Time{}); !errors.Is(err, kube.ErrZeroInstant) {
		t.Errorf("zero at: err = %v, want ErrZeroInstant", err)
	}
	if err := e.kc.ForceSyncExternalSecret(context.Background(), ns, "any", time.Time{}); !errors.Is(err, kube.ErrZeroInstant) {
		t.Errorf("zero at: err = %v, want ErrZeroInstant", err)
	}

	err = e.kc.RestartDeployment(context.Background(), ns, "missing", t0)
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), ns+"/missing") {
		t.Errorf("missing: err = %v, want wrapped NotFound naming the object", err)
	}
}

// waitRolloutSimLate restarts ns/auth-svc, starts WaitRollout, and starts the
// sim only once WaitRollout has read the deployment: the waiter's first read
// then sees the unobserved generation and every later state arrives after it.
func waitRolloutSimLate(t *testing.T, e *env, progress func(string)) error {
	t.Helper()
	if err := e.kc.RestartDeployment(context.Background(), ns, "auth-svc", t0); err != nil {
		t.Fatal(err)
	}
	firstGet := make(chan struct{})
	var once sync.Once
	e.cs.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		once.Do(func() { close(firstGet) })
		return false, nil, nil
	})
	done := make(chan error, 1)
	ctx := ctxTimeout(t, waitTimeout)
	go func() { done <- e.kc.WaitRollout(ctx, ns, "auth-svc", progress) }()
	<-firstGet
	e.start(t)
	return <-done
}

func TestWaitRolloutReportsKubectlMessagesInOrder(t *testing.T) {
	e := newEnv(t, kubesim.Options{Staged: true}, kube.Options{}, false, kubesim.NewDeployment(ns, "auth-svc", 2, labels()))
	var msgs []string
	if err := waitRolloutSimLate(t, e, func(m string) { msgs = append(msgs, m) }); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Waiting for deployment spec update to be observed...",
		`Waiting for deployment "auth-svc" rollout to finish: 0 out of 2 new replicas have been updated...`,
		`Waiting for deployment "auth-svc" rollout to finish: 0 of 2 updated replicas are available...`,
		`deployment "auth-svc" successfully rolled out`,
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress messages\n got %q\nwant %q", msgs, want)
	}
}

func TestWaitRolloutPollsWhenWatchRefused(t *testing.T) {
	e := newEnv(t, kubesim.Options{Staged: true}, kube.Options{PollInterval: time.Millisecond}, false,
		kubesim.NewDeployment(ns, "auth-svc", 2, labels()))
	var watchCalls int
	var mu sync.Mutex
	e.cs.PrependWatchReactor("deployments", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if a.GetNamespace() != ns {
			return false, nil, nil // the sim's all-namespace watch
		}
		mu.Lock()
		watchCalls++
		mu.Unlock()
		return true, nil, errors.New("watch refused")
	})
	var last string
	if err := waitRolloutSimLate(t, e, func(m string) { last = m }); err != nil {
		t.Fatal(err)
	}
	if last != `deployment "auth-svc" successfully rolled out` {
		t.Errorf("last message %q", last)
	}
	mu.Lock()
	defer mu.Unlock()
	if watchCalls == 0 {
		t.Error("WaitRollout never tried to watch")
	}
}

func TestWaitRollout(t *testing.T) {
	tests := []struct {
		name      string
		arrange   func(*env)
		timeout   time.Duration // ctx timeout
		wantErr   []string      // substrings; nil means success
		wantCtxTO bool          // error wraps context.DeadlineExceeded
	}{
		{name: "completes", timeout: waitTimeout},
		{
			name:      "hangs: times out with last status",
			arrange:   func(e *env) { e.sim.HangNextRollout(ns, "auth-svc") },
			timeout:   expireTimeout,
			wantErr:   []string{ns + "/auth-svc", `0 out of 2 new replicas have been updated`},
			wantCtxTO: true,
		},
		{
			name:    "progress deadline exceeded fails at once",
			arrange: func(e *env) { e.sim.FailNextRollout(ns, "auth-svc") },
			timeout: waitTimeout,
			wantErr: []string{ns + "/auth-svc", "exceeded its progress deadline"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{Staged: true}, kube.Options{PollInterval: time.Millisecond}, true,
				kubesim.NewDeployment(ns, "auth-svc", 2, labels()))
			if tt.arrange != nil {
				tt.arrange(e)
			}
			if err := e.kc.RestartDeployment(context.Background(), ns, "auth-svc", t0); err != nil {
				t.Fatal(err)
			}
			if tt.arrange != nil {
				e.flush(t) // the hung/failed state is in place before waiting
			}
			err := e.kc.WaitRollout(ctxTimeout(t, tt.timeout), ns, "auth-svc", nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				d := e.deployment(t, "auth-svc")
				if d.Status.ObservedGeneration != 2 || d.Status.AvailableReplicas != 2 {
					t.Errorf("returned before rollout finished: %+v", d.Status)
				}
				return
			}
			if err == nil {
				t.Fatal("want error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.wantCtxTO {
				t.Errorf("errors.Is(err, DeadlineExceeded) = %v, want %v", got, tt.wantCtxTO)
			}
		})
	}
}

func TestWaitRolloutReadErrors(t *testing.T) {
	gr := appsv1.Resource("deployments")
	tests := []struct {
		name    string
		getErr  error // returned by the first Get only
		missing bool
		wantErr func(error) bool // nil: success expected
	}{
		{name: "transient error is retried", getErr: apierrors.NewInternalError(errors.New("etcd hiccup"))},
		{name: "forbidden fails at once", getErr: apierrors.NewForbidden(gr, "auth-svc", errors.New("rbac")), wantErr: apierrors.IsForbidden},
		{name: "missing fails at once", missing: true, wantErr: apierrors.IsNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			if !tt.missing {
				objs = append(objs, kubesim.NewDeployment(ns, "auth-svc", 1, labels()))
			}
			e := newEnv(t, kubesim.Options{}, kube.Options{PollInterval: time.Millisecond}, true, objs...)
			var once sync.Once
			e.cs.PrependReactor("get", "deployments", func(k8stesting.Action) (handled bool, _ runtime.Object, err error) {
				once.Do(func() { handled, err = tt.getErr != nil, tt.getErr })
				return handled, nil, err
			})
			err := e.kc.WaitRollout(ctxTimeout(t, waitTimeout), ns, "auth-svc", nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !tt.wantErr(err) || !strings.Contains(err.Error(), ns+"/auth-svc") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestForceSyncExternalSecret(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 900_000_000, time.UTC)
	const stamp = "1767225600"
	tests := []struct {
		name     string
		interval string
		policy   string
		wantErr  error
	}{
		{name: "default interval", interval: ""},
		{name: "1h", interval: "1h"},
		{name: "OnChange policy", interval: "0", policy: "OnChange"},
		{name: "0 refused", interval: "0", wantErr: kube.ErrRefreshDisabled},
		{name: "0s refused", interval: "0s", wantErr: kube.ErrRefreshDisabled},
		{name: "0m0s refused", interval: "0m0s", wantErr: kube.ErrRefreshDisabled},
		{name: "CreatedOnce refused", interval: "1h", policy: "CreatedOnce", wantErr: kube.ErrRefreshDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := kubesim.NewExternalSecret(ns, "auth-keys", tt.interval)
			if tt.policy != "" {
				if err := unstructured.SetNestedField(es.Object, tt.policy, "spec", "refreshPolicy"); err != nil {
					t.Fatal(err)
				}
			}
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, es)
			err := e.kc.ForceSyncExternalSecret(context.Background(), ns, "auth-keys", at)
			ps := patches(e.dyn.Actions(), "externalsecrets")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), ns+"/auth-keys") {
					t.Errorf("err = %v, want %v naming the object", err, tt.wantErr)
				}
				if len(ps) != 0 {
					t.Errorf("refused but sent %d patches", len(ps))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 1 || ps[0].GetPatchType() != types.MergePatchType {
				t.Fatalf("want exactly one merge patch, got %v", ps)
			}
			if got, want := string(ps[0].GetPatch()), `{"metadata":{"annotations":{"force-sync":"`+stamp+`"}}}`; got != want {
				t.Errorf("patch %s, want %s", got, want)
			}
			if v := e.externalSecret(t, "auth-keys").GetAnnotations()[kube.ForceSyncAnnotation]; v != stamp {
				t.Errorf("force-sync = %q, want %q", v, stamp)
			}

			// Repeating with the same instant sends nothing.
			e.dyn.ClearActions()
			if err := e.kc.ForceSyncExternalSecret(context.Background(), ns, "auth-keys", at); err != nil {
				t.Fatal(err)
			}
			if n := len(patches(e.dyn.Actions(), "externalsecrets")); n != 0 {
				t.Errorf("repeat sent %d patches", n)
			}
		})
	}
}

func TestForceSyncExplainsTheFix(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false, kubesim.NewExternalSecret(ns, "static", "0s"))
	err := e.kc.ForceSyncExternalSecret(context.Background(), ns, "static", t0)
	for _, s := range []string{"ESO ignores force-sync", `"0s"`, "non-zero"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not contain %q", err, s)
		}
	}
}

func TestForceSyncV1beta1(t *testing.T) {
	es := kubesim.NewExternalSecretVersion(kube.ExternalSecretsV1Beta1, ns, "legacy", "1h")
	e := newEnv(t, kubesim.Options{ExternalSecretsVersion: kube.ExternalSecretsV1Beta1},
		kube.Options{ExternalSecretsVersion: kube.ExternalSecretsV1Beta1}, true, es)
	if err := e.kc.ForceSyncExternalSecret(context.Background(), ns, "legacy", t0); err != nil {
		t.Fatal(err)
	}
	if err := e.kc.WaitExternalSecretSynced(ctxTimeout(t, waitTimeout), ns, "legacy", t0); err != nil {
		t.Fatal(err)
	}
	// The version option is honoured: a default (v1) client does not see it.
	names, err := kube.New(e.cs, e.dyn, kube.Options{}).ListExternalSecrets(context.Background(), ns)
	if err != nil || len(names) != 0 {
		t.Errorf("v1 client listed %v, %v; want none", names, err)
	}
}

func TestWaitExternalSecretSynced(t *testing.T) {
	longMsg := strings.Repeat("x", 5000)
	tests := []struct {
		name      string
		clock     time.Time // sim's clock when it syncs
		since     time.Time
		forceSync bool
		fail      [2]string // reason, message set on the sim
		wantErr   []string
		notInErr  []string
	}{
		{name: "synced after force-sync", clock: t0, since: t0, forceSync: true},
		{name: "since has sub-second part", clock: t0.Add(500 * time.Millisecond), since: t0.Add(500 * time.Millisecond), forceSync: true},
		{
			name: "no force-sync: stale refresh times out", clock: t0, since: t0,
			wantErr: []string{"sync of externalsecret " + ns + "/auth-keys", "last refresh " + kubesim.SeedRefreshTime},
		},
		{
			name: "Ready=False times out with reason", clock: t0, since: t0, forceSync: true,
			fail:    [2]string{"SecretSyncedError", "could not get secret data from provider"},
			wantErr: []string{"Ready=False", "reason=SecretSyncedError", "could not get secret data from provider"},
		},
		{
			name: "long condition message is capped", clock: t0, since: t0, forceSync: true,
			fail:     [2]string{"SecretSyncedError", longMsg},
			wantErr:  []string{"reason=SecretSyncedError", "…"},
			notInErr: []string{longMsg[:400]},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{}, kube.Options{}, true, kubesim.NewExternalSecret(ns, "auth-keys", "1h"))
			e.clock.Set(tt.clock)
			if tt.fail[0] != "" {
				e.sim.SetExternalSecretError(ns, "auth-keys", tt.fail[0], tt.fail[1])
			}
			if tt.forceSync {
				if err := e.kc.ForceSyncExternalSecret(context.Background(), ns, "auth-keys", tt.since); err != nil {
					t.Fatal(err)
				}
			}
			timeout := waitTimeout
			if tt.wantErr != nil {
				timeout = expireTimeout
				e.flush(t)
			}
			err := e.kc.WaitExternalSecretSynced(ctxTimeout(t, timeout), ns, "auth-keys", tt.since)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				rt, _, _ := unstructured.NestedString(e.externalSecret(t, "auth-keys").Object, "status", "refreshTime")
				if want := tt.clock.UTC().Format(time.RFC3339); rt != want {
					t.Errorf("refreshTime %q, want %q", rt, want)
				}
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want DeadlineExceeded", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range tt.notInErr {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error contains %.20q…", s)
				}
			}
		})
	}
}

func TestListExternalSecrets(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false,
		kubesim.NewExternalSecret(ns, "b-keys", ""),
		kubesim.NewExternalSecret(ns, "a-keys", ""),
		kubesim.NewExternalSecret("other", "c-keys", ""),
	)
	got, err := e.kc.ListExternalSecrets(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a-keys,b-keys" {
		t.Errorf("got %v, want [a-keys b-keys]", got)
	}
}

func TestScanLogs(t *testing.T) {
	since := t0.Add(-5 * time.Minute)
	pending := kubesim.NewRunningPod(ns, "auth-svc-pending", labels())
	pending.Status.Phase = corev1.PodPending
	objs := []runtime.Object{
		kubesim.NewDeployment(ns, "auth-svc", 2, labels()),
		kubesim.NewRunningPod(ns, "auth-svc-b", labels()),
		kubesim.NewRunningPod(ns, "auth-svc-a", labels()),
		pending,
		kubesim.NewRunningPod(ns, "billing-x", map[string]string{"app": "billing"}),
	}
	const body = "starting\nERROR auth failed password=hunter2\nok\nERROR again\n"
	tests := []struct {
		name    string
		body    string // "" keeps the fake's default "fake logs"
		pattern string
		want    kube.LogScan
	}{
		{name: "fake default body matches", pattern: `^fake logs$`, want: kube.LogScan{Pods: 2, Lines: 2, Matches: map[string]int{"auth-svc-a": 1, "auth-svc-b": 1}}},
		{name: "fake default body, no match", pattern: `ERROR`, want: kube.LogScan{Pods: 2, Lines: 2, Matches: map[string]int{"auth-svc-a": 0, "auth-svc-b": 0}}},
		{name: "counts matching lines", body: body, pattern: `ERROR`, want: kube.LogScan{Pods: 2, Lines: 8, Matches: map[string]int{"auth-svc-a": 2, "auth-svc-b": 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, objs...)
			if tt.body != "" {
				e.cs.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if a.GetSubresource() != "log" {
						return false, nil, nil
					}
					return true, &runtime.Unknown{Raw: []byte(tt.body)}, nil
				})
			}
			got, err := e.kc.ScanLogs(context.Background(), ns, "auth-svc", since, regexp.MustCompile(tt.pattern))
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("got %s, want %s", gotJSON, wantJSON)
			}
			var logCalls int
			for _, a := range e.cs.Actions() {
				if a.GetSubresource() != "log" {
					continue
				}
				logCalls++
				var opts *corev1.PodLogOptions
				if g, ok := a.(k8stesting.GenericActionImpl); ok {
					opts, _ = g.Value.(*corev1.PodLogOptions)
				}
				if opts == nil || opts.SinceTime == nil || !opts.SinceTime.Time.Equal(since) || opts.Container != "app" {
					t.Errorf("log options %+v, want SinceTime %s and container app", opts, since)
				}
			}
			if logCalls != 2 {
				t.Errorf("read logs %d times, want 2 (running pods of the deployment only)", logCalls)
			}
			if logged := e.logText(); strings.Contains(logged, "hunter2") || strings.Contains(logged, "auth failed") {
				t.Error("log content leaked into rotary's own logs")
			}
		})
	}
}

func TestScanLogsErrors(t *testing.T) {
	noSel := kubesim.NewDeployment(ns, "nosel", 1, nil)
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false, noSel)
	if _, err := e.kc.ScanLogs(context.Background(), ns, "nosel", t0, regexp.MustCompile("x")); err == nil || !strings.Contains(err.Error(), "empty selector") {
		t.Errorf("empty selector: err = %v", err)
	}
	if _, err := e.kc.ScanLogs(context.Background(), ns, "missing", t0, regexp.MustCompile("x")); !apierrors.IsNotFound(err) {
		t.Errorf("missing: err = %v, want NotFound", err)
	}
}
