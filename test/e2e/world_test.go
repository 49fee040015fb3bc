package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Markers of test/cluster/kwok/stages.yaml, set as pod-template labels.
const (
	markerFailOnRestart = "e2e.rotary.aivo.io/fail-on-restart"
	markerSlowReady     = "e2e.rotary.aivo.io/slow-ready"
	markerJobFails      = "e2e.rotary.aivo.io/job-fails"
	// restartedAt is the pod-template annotation `kubectl rollout restart` sets.
	restartedAt = "kubectl.kubernetes.io/restartedAt"
)

// gsmProject is the Secret Manager project of every scenario.
const gsmProject = "aivo-platform"

// world is one scenario's private universe: a namespace with the shipped
// Role, its own fakes, ESO stand-in, config, state file and rotary process.
type world struct {
	t   *testing.T
	s   *suite
	ctx context.Context
	ns  string
	dir string

	slack *slackfake.Server
	gsm   *gsmfake.Server
	gsmc  *gsm.Client
	eso   *esoStandIn

	cfgPath string
	// env is the scenario's extra environment for rotary (credentials).
	env      map[string]string
	logs     *lockedBuffer
	proc     *rotaryProc
	triggers int
	// kills counts SIGKILLs of rotary in this scenario: each may repeat the
	// one Slack message that was being posted at that instant (see
	// assertSlackOnce).
	kills int
	// reasks counts prompts rotary asked again after a restart, as it is
	// meant to: each posts its "input needed" reply once more.
	reasks int
}

// newWorld prepares a scenario. name becomes part of the namespace.
func newWorld(t *testing.T, s *suite, name string) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), scenarioTimeout)
	t.Cleanup(cancel)
	w := &world{t: t, s: s, ctx: ctx, dir: t.TempDir(), env: map[string]string{}, logs: &lockedBuffer{}}
	w.ns = s.namespace(ctx, t, name)

	w.slack = slackfake.New()
	t.Cleanup(w.slack.Close)
	for _, u := range []string{requester, approver} {
		w.slack.AddUser(u, strings.ToLower(u))
	}
	var err error
	if w.gsm, err = gsmfake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.gsm.Close)
	if w.gsmc, err = gsm.Dial(ctx, w.gsm.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.gsmc.Close() })
	w.waitDefaultServiceAccount()
	w.eso = startESO(ctx, t, s, w.ns, w.gsmc)
	return w
}

// writeConfig writes rotary's config with the given targets (YAML under
// `targets:`, indented by two spaces).
func (w *world) writeConfig(targets string) {
	w.t.Helper()
	w.cfgPath = filepath.Join(w.dir, "rotary.yaml")
	// Ports are the kernel's choice (rotary logs the address it got), so
	// parallel scenarios never collide; the admin listener is off.
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
admin_listen: ""
state_path: %q
slack:
  request_channel: %s
  announce_channel: %s
request_ttl: 1h
default_env: prod
sweep_interval: 1s
targets:
%s`, filepath.Join(w.dir, "rotary.db"), requestChannel, announce, targets)
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// waitDefaultServiceAccount waits for the namespace's default
// ServiceAccount: pods cannot be created before it exists.
func (w *world) waitDefaultServiceAccount() {
	w.t.Helper()
	sas := w.s.cs.CoreV1().ServiceAccounts(w.ns)
	sel := fields.OneTermEqualSelector("metadata.name", "default").String()
	_, err := watchtools.UntilWithSync(w.ctx,
		listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return sas.List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return sas.Watch(ctx, o)
		}), &corev1.ServiceAccount{}, nil,
		func(ev watch.Event) (bool, error) { return ev.Type != watch.Deleted, nil })
	if err != nil {
		w.t.Fatalf("waiting for the default ServiceAccount of %s: %v", w.ns, err)
	}
}

// gsmSecret creates a Secret Manager secret with one version.
func (w *world) gsmSecret(id, value string) string {
	w.t.Helper()
	name := gsm.SecretName(gsmProject, id)
	if err := w.gsm.CreateSecret(name); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.gsmc.AddVersion(w.ctx, name, secret.FromString(value)); err != nil {
		w.t.Fatal(err)
	}
	return name
}

// gsmVersions returns the versions of secret id, oldest first.
func (w *world) gsmVersions(id string) []gsmfake.Version {
	return w.gsm.Versions(gsm.SecretName(gsmProject, id))
}

// kubeSecret creates a Secret with the given data.
func (w *world) kubeSecret(name string, data map[string]string) {
	w.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	if _, err := w.s.cs.CoreV1().Secrets(w.ns).Create(w.ctx, s, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// secretData reads a Secret's data.
func (w *world) secretData(name string) map[string]string {
	w.t.Helper()
	s, err := w.s.cs.CoreV1().Secrets(w.ns).Get(w.ctx, name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// externalSecret creates an ExternalSecret that syncs gsmID into Secret
// target under key, refreshed hourly (so only force-sync refreshes it), and
// waits for the stand-in's first sync.
func (w *world) externalSecret(name, target, key, gsmID string) {
	w.t.Helper()
	es := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "external-secrets.io/v1",
		"kind":       "ExternalSecret",
		"metadata":   map[string]any{"name": name, "namespace": w.ns},
		"spec": map[string]any{
			"refreshInterval": "1h",
			"secretStoreRef":  map[string]any{"kind": "ClusterSecretStore", "name": "gcp-secret-manager"},
			"target":          map[string]any{"name": target, "creationPolicy": "Owner"},
			"data": []any{map[string]any{
				"secretKey": key,
				"remoteRef": map[string]any{"key": gsmID},
			}},
		},
	}}
	if _, err := w.s.dyn.Resource(esGVR()).Namespace(w.ns).Create(w.ctx, es, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	w.eso.waitSyncs(w.ctx, w.t, name, 1)
}

// deploymentSpec describes a test workload.
type deploymentSpec struct {
	name     string
	replicas int32
	// marker is at most one kwok stage marker label (see stages.yaml).
	marker string
	// envFrom names Secrets the pods load, as the apps do.
	envFrom []string
	// container is the container's name (default "app"; "exec-target" is
	// the one kwok runs exec commands for).
	container string
	// progressDeadline, if set, is spec.progressDeadlineSeconds.
	progressDeadline int32
}

// deployment creates a Deployment and waits for its first rollout.
func (w *world) deployment(d deploymentSpec) {
	w.t.Helper()
	lbl := map[string]string{"app": d.name}
	tmplLabels := map[string]string{"app": d.name}
	if d.marker != "" {
		tmplLabels[d.marker] = "true"
	}
	if d.container == "" {
		d.container = "app"
	}
	ctr := corev1.Container{Name: d.container, Image: "registry.example.com/aivo/" + d.name + ":stable"}
	for _, s := range d.envFrom {
		ctr.EnvFrom = append(ctr.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s}}})
	}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: d.name, Namespace: w.ns, Labels: lbl},
		Spec: appsv1.DeploymentSpec{
			Replicas: &d.replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tmplLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr}},
			},
		},
	}
	if d.progressDeadline > 0 {
		dep.Spec.ProgressDeadlineSeconds = &d.progressDeadline
	}
	if _, err := w.s.cs.AppsV1().Deployments(w.ns).Create(w.ctx, dep, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	w.waitRolledOut(d.name)
}

// rolledOut is `kubectl rollout status`'s success condition.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want &&
		st.ReadyReplicas == want && st.AvailableReplicas == want
}

// waitRolledOut watches a Deployment until its rollout is complete.
func (w *world) waitRolledOut(name string) *appsv1.Deployment {
	w.t.Helper()
	deps := w.s.cs.AppsV1().Deployments(w.ns)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	ev, err := watchtools.UntilWithSync(w.ctx,
		listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return deps.List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return deps.Watch(ctx, o)
		}), &appsv1.Deployment{}, nil,
		func(ev watch.Event) (bool, error) {
			d, ok := ev.Object.(*appsv1.Deployment)
			return ok && rolledOut(d), nil
		})
	if err != nil {
		w.t.Fatalf("waiting for the rollout of %s/%s: %v", w.ns, name, err)
	}
	return ev.Object.(*appsv1.Deployment)
}

// replicaSets returns the Deployment's ReplicaSets (by its selector).
func (w *world) replicaSets(name string) []appsv1.ReplicaSet {
	w.t.Helper()
	rs, err := w.s.cs.AppsV1().ReplicaSets(w.ns).List(w.ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{"app": name}).String()})
	if err != nil {
		w.t.Fatal(err)
	}
	return rs.Items
}

// assertRolled checks a Deployment was restarted exactly `restarts` times
// (one new ReplicaSet each, plus extra ones the test itself caused) and
// that its latest rollout is complete with the restart annotation set.
func (w *world) assertRolled(name string, restarts, extra int) {
	w.t.Helper()
	d := w.waitRolledOut(name)
	if d.Spec.Template.Annotations[restartedAt] == "" {
		w.t.Errorf("deployment %s was never restarted (no %s)", name, restartedAt)
	}
	if got, want := len(w.replicaSets(name)), 1+restarts+extra; got != want {
		w.t.Errorf("deployment %s has %d ReplicaSets, want %d (the original, %d restart(s), %d by the test)", name, got, want, restarts, extra)
	}
}

// killWhenRolling SIGKILLs rotary as soon as a restarted ReplicaSet of the
// deployment exists but is not fully ready: in the middle of the rollout
// wait. It returns when the process is dead.
func (w *world) killWhenRolling(name string) {
	w.t.Helper()
	rss := w.s.cs.AppsV1().ReplicaSets(w.ns)
	sel := labels.SelectorFromSet(labels.Set{"app": name}).String()
	_, err := watchtools.UntilWithSync(w.ctx,
		listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return rss.List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return rss.Watch(ctx, o)
		}), &appsv1.ReplicaSet{}, nil,
		func(ev watch.Event) (bool, error) {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok || rs.Spec.Template.Annotations[restartedAt] == "" {
				return false, nil
			}
			want := int32(1)
			if rs.Spec.Replicas != nil {
				want = *rs.Spec.Replicas
			}
			return rs.Status.ReadyReplicas < want, nil
		})
	if err != nil {
		w.t.Fatalf("waiting for a rollout of %s in progress: %v", name, err)
	}
	w.killRotary()
}
