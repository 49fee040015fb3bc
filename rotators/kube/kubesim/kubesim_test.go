package kubesim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

const ns = "demo"

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

type world struct {
	cs  *fake.Clientset
	dyn *dynamicfake.FakeDynamicClient
	sim *kubesim.Sim
}

func newWorld(t *testing.T, opts kubesim.Options, start bool, objs ...runtime.Object) *world {
	t.Helper()
	var typed, dyn []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*unstructured.Unstructured); ok {
			dyn = append(dyn, o)
		} else {
			typed = append(typed, o)
		}
	}
	w := &world{cs: fake.NewSimpleClientset(typed...), dyn: kubesim.NewDynamicClient(dyn...)}
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	w.sim = kubesim.New(w.cs, w.dyn, opts)
	if start {
		ctx, cancel := context.WithCancel(context.Background())
		if err := w.sim.Start(ctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); <-w.sim.Done() })
	}
	return w
}

func (w *world) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.sim.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func (w *world) dep(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := w.cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (w *world) es(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := w.dyn.Resource(kube.ExternalSecretGVR(kube.ExternalSecretsV1)).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// restart changes the pod template the way kubectl rollout restart does.
func (w *world) restart(t *testing.T, name, stamp string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, kube.RestartedAtAnnotation, stamp)
	if _, err := w.cs.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestGenerationFollowsSpecChanges(t *testing.T) {
	w := newWorld(t, kubesim.Options{}, false, kubesim.NewDeployment(ns, "seeded", 1, map[string]string{"app": "a"}))
	ctx := context.Background()
	deps := w.cs.AppsV1().Deployments(ns)

	created, err := deps.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Generation != 1 {
		t.Errorf("create: generation %d, want 1", created.Generation)
	}

	steps := []struct {
		name    string
		pt      types.PatchType
		patch   string
		wantGen int64
	}{
		{name: "label change is not a spec change", pt: types.MergePatchType, patch: `{"metadata":{"labels":{"x":"y"}}}`, wantGen: 1},
		{name: "template change", pt: types.StrategicMergePatchType, patch: `{"spec":{"template":{"metadata":{"annotations":{"a":"1"}}}}}`, wantGen: 2},
		{name: "same template again", pt: types.StrategicMergePatchType, patch: `{"spec":{"template":{"metadata":{"annotations":{"a":"1"}}}}}`, wantGen: 2},
		{name: "replicas by JSON patch", pt: types.JSONPatchType, patch: `[{"op":"replace","path":"/spec/replicas","value":3}]`, wantGen: 3},
		{name: "status write", pt: types.MergePatchType, patch: `{"status":{"replicas":7}}`, wantGen: 3},
	}
	for _, s := range steps {
		got, err := deps.Patch(ctx, "seeded", s.pt, []byte(s.patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got.Generation != s.wantGen {
			t.Errorf("%s: generation %d, want %d", s.name, got.Generation, s.wantGen)
		}
	}

	d := w.dep(t, "seeded")
	d.Spec.Paused = true
	updated, err := deps.Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 4 {
		t.Errorf("update: generation %d, want 4", updated.Generation)
	}
}

func TestRollouts(t *testing.T) {
	tests := []struct {
		name       string
		staged     bool
		arrange    func(*world)
		paused     bool
		wantStatus func(appsv1.DeploymentStatus) string // "" when as expected
	}{
		{name: "completes", wantStatus: complete(2)},
		{name: "completes staged", staged: true, wantStatus: complete(2)},
		{
			name:    "hang stalls at zero updated",
			arrange: func(w *world) { w.sim.HangNextRollout(ns, "api") },
			wantStatus: func(st appsv1.DeploymentStatus) string {
				if st.ObservedGeneration != 2 || st.UpdatedReplicas != 0 {
					return "want observed 2, updated 0"
				}
				return ""
			},
		},
		{
			name:    "fail sets ProgressDeadlineExceeded",
			arrange: func(w *world) { w.sim.FailNextRollout(ns, "api") },
			wantStatus: func(st appsv1.DeploymentStatus) string {
				if c := progressing(st); st.ObservedGeneration != 2 || c == nil || c.Reason != "ProgressDeadlineExceeded" || c.Status != corev1.ConditionFalse {
					return "want Progressing=False ProgressDeadlineExceeded at generation 2"
				}
				return ""
			},
		},
		{
			name:   "paused: generation observed, nothing rolled",
			paused: true,
			wantStatus: func(st appsv1.DeploymentStatus) string {
				if c := progressing(st); st.ObservedGeneration != 2 || c == nil || c.Reason != "NewReplicaSetAvailable" {
					return "want observed 2 and the old Progressing condition"
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := kubesim.NewDeployment(ns, "api", 2, map[string]string{"app": "api"})
			d.Spec.Paused = tt.paused
			w := newWorld(t, kubesim.Options{Staged: tt.staged}, true, d)
			if tt.arrange != nil {
				tt.arrange(w)
			}
			w.restart(t, "api", "2026-03-04T05:06:07Z")
			w.flush(t)
			if msg := tt.wantStatus(w.dep(t, "api").Status); msg != "" {
				t.Errorf("%s; got %+v", msg, w.dep(t, "api").Status)
			}
			if tt.arrange == nil {
				return
			}
			// Only the next rollout was affected: the one after completes.
			w.restart(t, "api", "2026-03-04T05:06:08Z")
			w.flush(t)
			if msg := complete(3)(w.dep(t, "api").Status); msg != "" {
				t.Errorf("following rollout: %s; got %+v", msg, w.dep(t, "api").Status)
			}
		})
	}
}

func complete(gen int64) func(appsv1.DeploymentStatus) string {
	return func(st appsv1.DeploymentStatus) string {
		c := progressing(st)
		if st.ObservedGeneration != gen || st.Replicas != 2 || st.UpdatedReplicas != 2 || st.ReadyReplicas != 2 || st.AvailableReplicas != 2 ||
			c == nil || c.Status != corev1.ConditionTrue {
			return fmt.Sprintf("want complete rollout at generation %d", gen)
		}
		return ""
	}
}

func progressing(st appsv1.DeploymentStatus) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == appsv1.DeploymentProgressing {
			return &st.Conditions[i]
		}
	}
	return nil
}

func TestExternalSecretRefreshRules(t *testing.T) {
	tests := []struct {
		name       string
		interval   string
		policy     string
		unsynced   bool // no status: ESO syncs on first sight whatever the rules
		annotate   bool
		wantSynced bool
	}{
		{name: "annotation change syncs", interval: "1h", annotate: true, wantSynced: true},
		{name: "default interval syncs", annotate: true, wantSynced: true},
		{name: "nothing changed", interval: "1h", wantSynced: false},
		{name: "interval 0s ignores annotation", interval: "0s", annotate: true, wantSynced: false},
		{name: "OnChange ignores interval 0", interval: "0", policy: "OnChange", annotate: true, wantSynced: true},
		{name: "CreatedOnce ignores annotation", interval: "1h", policy: "CreatedOnce", annotate: true, wantSynced: false},
		{name: "first sync despite interval 0", interval: "0s", unsynced: true, wantSynced: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := kubesim.NewExternalSecret(ns, "keys", tt.interval)
			if tt.policy != "" {
				_ = unstructured.SetNestedField(es.Object, tt.policy, "spec", "refreshPolicy")
			}
			if tt.unsynced {
				delete(es.Object, "status")
			}
			w := newWorld(t, kubesim.Options{}, true, es)
			if tt.annotate {
				patch := fmt.Sprintf(`{"metadata":{"annotations":{"force-sync":"%d"}}}`, t0.Unix())
				if _, err := w.dyn.Resource(kube.ExternalSecretGVR(kube.ExternalSecretsV1)).Namespace(ns).
					Patch(context.Background(), "keys", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			w.flush(t)
			rt, _, _ := unstructured.NestedString(w.es(t, "keys").Object, "status", "refreshTime")
			if synced := rt == t0.Format(time.RFC3339); synced != tt.wantSynced {
				t.Errorf("refreshTime %q: synced=%v, want %v", rt, synced, tt.wantSynced)
			}
		})
	}
}

func TestExternalSecretErrorThenRecovery(t *testing.T) {
	w := newWorld(t, kubesim.Options{}, true, kubesim.NewExternalSecret(ns, "keys", "1h"))
	res := w.dyn.Resource(kube.ExternalSecretGVR(kube.ExternalSecretsV1)).Namespace(ns)
	annotate := func(v string) {
		t.Helper()
		if _, err := res.Patch(context.Background(), "keys", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"force-sync":"`+v+`"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		w.flush(t)
	}
	ready := func() (string, string, string) {
		u := w.es(t, "keys")
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		rt, _, _ := unstructured.NestedString(u.Object, "status", "refreshTime")
		c, _ := conds[0].(map[string]any)
		s, _ := c["status"].(string)
		r, _ := c["reason"].(string)
		return s, r, rt
	}

	w.sim.SetExternalSecretError(ns, "keys", "SecretSyncedError", "could not get secret data from provider")
	annotate("1")
	if s, r, rt := ready(); s != "False" || r != "SecretSyncedError" || rt != kubesim.SeedRefreshTime {
		t.Errorf("failing: Ready=%s reason=%s refreshTime=%s; want False, SecretSyncedError, unchanged", s, r, rt)
	}

	w.sim.SetExternalSecretError(ns, "keys", "", "")
	annotate("2")
	if s, r, rt := ready(); s != "True" || r != "SecretSynced" || rt != t0.Format(time.RFC3339) {
		t.Errorf("recovered: Ready=%s reason=%s refreshTime=%s", s, r, rt)
	}
}

func TestStartTwiceAndFlushAfterStop(t *testing.T) {
	w := newWorld(t, kubesim.Options{}, false)
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.sim.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	cancel()
	<-w.sim.Done()
	if err := w.sim.Flush(context.Background()); err == nil {
		t.Error("Flush on a stopped sim succeeded")
	}
}
