package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/kubectl/pkg/polymorphichelpers"
)

// RestartedAtAnnotation is the pod-template annotation `kubectl rollout
// restart` sets; changing it changes the template and so starts a rollout.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// ErrPaused reports a paused Deployment: a restart would only be recorded, not
// rolled out, and WaitRollout would wait forever.
var ErrPaused = errors.New("deployment is paused: run kubectl rollout resume first")

// RestartDeployment does what `kubectl rollout restart deployment/NAME` does
// (kubectl's polymorphichelpers objectrestarter + rollout restart command):
// set spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]
// and send the two-way strategic merge patch between the old and new object.
//
// Unlike kubectl the stamp is the caller's `at` (RFC3339, UTC, second
// precision) instead of time.Now. The executor may repeat a step after a
// crash; with time.Now the repeat would write a second, different stamp and
// start a second rollout in the middle of (or after) the first. With `at` the
// repeat computes an empty patch and is a no-op (kubectl reports that case as
// an error; for us it is success). A paused deployment is refused with
// ErrPaused, as kubectl does.
func (c *Client) RestartDeployment(ctx context.Context, ns, name string, at time.Time) error {
	what := "deployment " + ns + "/" + name
	if at.IsZero() {
		return fmt.Errorf("kube: restarting %s: %w", what, ErrZeroInstant)
	}
	dep, err := c.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: restarting %s: %w", what, err)
	}
	patch, err := restartPatch(dep, at)
	if err != nil {
		return fmt.Errorf("kube: restarting %s: %w", what, err)
	}
	if patch == nil {
		c.log.InfoContext(ctx, "kube: deployment already restarted at this instant; not patching",
			"deployment", ns+"/"+name, "restartedAt", restartStamp(at))
		return nil
	}
	if _, err := c.cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: userAgent}); err != nil {
		return fmt.Errorf("kube: restarting %s: patch: %w", what, err)
	}
	c.log.InfoContext(ctx, "kube: deployment restarted", "deployment", ns+"/"+name, "restartedAt", restartStamp(at))
	return nil
}

// restartStamp is the annotation value for `at`. UTC so that the same instant
// read back from a journal in another location yields the same string (a
// different string would be a second rollout).
func restartStamp(at time.Time) string {
	return at.UTC().Format(time.RFC3339)
}

// restartPatch mirrors kubectl's objectrestarter + set.CalculatePatch for an
// apps/v1 Deployment, with `at` for the stamp. It returns nil when the patch is
// empty (already restarted at `at`).
func restartPatch(dep *appsv1.Deployment, at time.Time) ([]byte, error) {
	if dep.Spec.Paused {
		return nil, ErrPaused
	}
	before, err := json.Marshal(dep)
	if err != nil {
		return nil, fmt.Errorf("encoding deployment: %w", err)
	}
	mod := dep.DeepCopy()
	if mod.Spec.Template.Annotations == nil {
		mod.Spec.Template.Annotations = make(map[string]string)
	}
	mod.Spec.Template.Annotations[RestartedAtAnnotation] = restartStamp(at)
	after, err := json.Marshal(mod)
	if err != nil {
		return nil, fmt.Errorf("encoding deployment: %w", err)
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(before, after, &appsv1.Deployment{})
	if err != nil {
		return nil, fmt.Errorf("computing strategic merge patch: %w", err)
	}
	if string(patch) == "{}" || len(patch) == 0 {
		return nil, nil
	}
	return patch, nil
}

// WaitRollout waits until the Deployment's rollout is complete, as judged by
// kubectl's own polymorphichelpers.DeploymentStatusViewer (the code behind
// `kubectl rollout status`): observedGeneration current and updated = ready =
// available = replicas. progress (may be nil) receives the viewer's messages
// when they change. A Progressing condition with ProgressDeadlineExceeded
// fails at once. ctx carries the timeout; on expiry the error wraps ctx's
// error and carries the last status message.
func (c *Client) WaitRollout(ctx context.Context, ns, name string, progress func(msg string)) error {
	deps := c.cs.AppsV1().Deployments(ns)
	viewer := &polymorphichelpers.DeploymentStatusViewer{}
	return c.waitFor(ctx, waitSpec{
		what: "rollout of deployment " + ns + "/" + name,
		name: name,
		get: func(ctx context.Context) (runtime.Object, error) {
			return deps.Get(ctx, name, metav1.GetOptions{})
		},
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return deps.Watch(ctx, opts)
		},
		check: func(obj runtime.Object) (bool, string, error) {
			u, err := toUnstructured(obj)
			if err != nil {
				return false, "", err
			}
			// revision 0: any revision; we only care that the current
			// template is fully rolled out.
			msg, done, err := viewer.Status(u, 0)
			return done, msg, err
		},
		progress: progress,
	})
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting %T to unstructured: %w", obj, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}
