package kubesim

import (
	"context"
	"encoding/json"
	"fmt"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// Condition reasons the real Deployment controller uses (and kubectl's status
// viewer checks for ProgressDeadlineExceeded).
const (
	reasonUpdated       = "ReplicaSetUpdated"
	reasonAvailable     = "NewReplicaSetAvailable"
	reasonDeadline      = "ProgressDeadlineExceeded"
	reasonMinAvailable  = "MinimumReplicasAvailable"
	defaultReplicaCount = 1 // what the API server defaults spec.replicas to
)

// deploymentWriteReactor emulates the API server's metadata.generation rules
// for Deployments: 1 on create, +1 when a write changes spec. It computes the
// result and stores it in one tracker write, so watchers never see a changed
// spec with the old generation. Status writes (subresource) and server-side
// apply fall through to the fake's default reactor.
func (s *Sim) deploymentWriteReactor(action k8stesting.Action) (bool, runtime.Object, error) {
	if action.GetSubresource() != "" {
		return false, nil, nil
	}
	tracker := s.cs.Tracker()
	gvr, ns := action.GetResource(), action.GetNamespace()
	var name string
	switch a := action.(type) {
	case k8stesting.CreateActionImpl:
		dep, ok := a.GetObject().(*appsv1.Deployment)
		if !ok {
			return false, nil, nil
		}
		dep = dep.DeepCopy()
		dep.Generation = 1
		if err := tracker.Create(gvr, dep, ns, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return true, nil, err
		}
		name = dep.Name
	case k8stesting.UpdateActionImpl:
		dep, ok := a.GetObject().(*appsv1.Deployment)
		if !ok {
			return false, nil, nil
		}
		old, err := getDeployment(tracker, ns, dep.Name)
		if err != nil {
			return true, nil, err
		}
		dep = dep.DeepCopy()
		dep.Generation = nextGeneration(old, dep)
		if err := tracker.Update(gvr, dep, ns, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
			return true, nil, err
		}
		name = dep.Name
	case k8stesting.PatchActionImpl:
		if a.GetPatchType() == types.ApplyPatchType {
			return false, nil, nil
		}
		name = a.GetName()
		old, err := getDeployment(tracker, ns, name)
		if err != nil {
			return true, nil, err
		}
		dep, err := applyPatch(old, a.GetPatchType(), a.GetPatch())
		if err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}
		dep.Generation = nextGeneration(old, dep)
		if err := tracker.Update(gvr, dep, ns, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
			return true, nil, err
		}
	default:
		return false, nil, nil
	}
	obj, err := tracker.Get(gvr, ns, name)
	return true, obj, err
}

func getDeployment(tracker k8stesting.ObjectTracker, ns, name string) (*appsv1.Deployment, error) {
	obj, err := tracker.Get(appsv1.SchemeGroupVersion.WithResource("deployments"), ns, name)
	if err != nil {
		return nil, err
	}
	dep, ok := obj.(*appsv1.Deployment)
	if !ok {
		return nil, fmt.Errorf("kubesim: tracker holds %T for deployment %s/%s", obj, ns, name)
	}
	return dep, nil
}

func nextGeneration(old, updated *appsv1.Deployment) int64 {
	if apiequality.Semantic.DeepEqual(old.Spec, updated.Spec) {
		return old.Generation
	}
	return old.Generation + 1
}

func applyPatch(old *appsv1.Deployment, pt types.PatchType, patch []byte) (*appsv1.Deployment, error) {
	orig, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	var patched []byte
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, err
		}
		if patched, err = p.Apply(orig); err != nil {
			return nil, err
		}
	case types.MergePatchType:
		if patched, err = jsonpatch.MergePatch(orig, patch); err != nil {
			return nil, err
		}
	case types.StrategicMergePatchType:
		if patched, err = strategicpatch.StrategicMergePatch(orig, patch, &appsv1.Deployment{}); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("patch type %s not supported", pt)
	}
	dep := &appsv1.Deployment{}
	if err := json.Unmarshal(patched, dep); err != nil {
		return nil, err
	}
	return dep, nil
}

func (s *Sim) onDeployment(ctx context.Context, ev watch.Event) {
	if ev.Type != watch.Added && ev.Type != watch.Modified {
		return
	}
	dep, ok := ev.Object.(*appsv1.Deployment)
	if !ok {
		return
	}
	if err := s.reconcileDeployment(ctx, dep.Namespace, dep.Name); err != nil {
		s.log.WarnContext(ctx, "kubesim: deployment reconcile failed", "deployment", dep.Namespace+"/"+dep.Name, "err", err)
	}
}

// reconcileDeployment advances a deployment's status by one step of the state
// machine observed → (updated) → complete, reading the current object rather
// than the (possibly stale) event.
func (s *Sim) reconcileDeployment(ctx context.Context, ns, name string) error {
	dep, err := s.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	next, ok := s.nextDeploymentStatus(dep)
	if !ok {
		return nil
	}
	return s.writeDeploymentStatus(ctx, dep, next)
}

// nextDeploymentStatus decides the next status, or false when there is
// nothing to do (complete, paused, or deliberately hung/failed).
func (s *Sim) nextDeploymentStatus(dep *appsv1.Deployment) (appsv1.DeploymentStatus, bool) {
	k := objKey{dep.Namespace, dep.Name}
	gen := dep.Generation
	replicas := int32(defaultReplicaCount)
	if dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	st := dep.Status
	now := metav1.NewTime(s.now())

	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.stuck[k]; ok {
		if g == gen {
			return st, false
		}
		delete(s.stuck, k)
	}

	if st.ObservedGeneration < gen {
		switch {
		case dep.Spec.Paused:
			// The real controller records the generation but rolls nothing.
			next := *st.DeepCopy()
			next.ObservedGeneration = gen
			return next, true
		case s.failNext[k]:
			delete(s.failNext, k)
			s.stuck[k] = gen
			next := startedStatus(gen, replicas, now)
			setCondition(&next, appsv1.DeploymentProgressing, corev1.ConditionFalse, reasonDeadline,
				fmt.Sprintf("ReplicaSet %q has timed out progressing.", dep.Name), now)
			return next, true
		case s.hangNext[k]:
			delete(s.hangNext, k)
			s.stuck[k] = gen
			return startedStatus(gen, replicas, now), true
		case s.staged && replicas > 0:
			return startedStatus(gen, replicas, now), true
		default:
			return completeStatus(gen, replicas, now), true
		}
	}
	if dep.Spec.Paused {
		return st, false
	}
	if s.staged && st.UpdatedReplicas < replicas {
		next := completeStatus(gen, replicas, now)
		next.AvailableReplicas = 0
		setCondition(&next, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonUpdated,
			fmt.Sprintf("ReplicaSet %q is progressing.", dep.Name), now)
		return next, true
	}
	if st.Replicas != replicas || st.UpdatedReplicas != replicas || st.ReadyReplicas != replicas || st.AvailableReplicas != replicas {
		return completeStatus(gen, replicas, now), true
	}
	return st, false
}

// startedStatus: the new generation is observed, no pod replaced yet — kubectl
// says "0 out of N new replicas have been updated".
func startedStatus(gen int64, replicas int32, now metav1.Time) appsv1.DeploymentStatus {
	st := appsv1.DeploymentStatus{
		ObservedGeneration: gen,
		Replicas:           replicas,
		ReadyReplicas:      replicas,
		AvailableReplicas:  replicas,
	}
	setCondition(&st, appsv1.DeploymentAvailable, corev1.ConditionTrue, reasonMinAvailable, "Deployment has minimum availability.", now)
	setCondition(&st, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonUpdated, "ReplicaSet is progressing.", now)
	return st
}

// completeStatus is what the controller reports after a finished rollout.
func completeStatus(gen int64, replicas int32, now metav1.Time) appsv1.DeploymentStatus {
	st := appsv1.DeploymentStatus{
		ObservedGeneration: gen,
		Replicas:           replicas,
		UpdatedReplicas:    replicas,
		ReadyReplicas:      replicas,
		AvailableReplicas:  replicas,
	}
	setCondition(&st, appsv1.DeploymentAvailable, corev1.ConditionTrue, reasonMinAvailable, "Deployment has minimum availability.", now)
	setCondition(&st, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonAvailable, "ReplicaSet has successfully progressed.", now)
	return st
}

func setCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	c := appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// writeDeploymentStatus replaces status with a JSON patch guarded by a test of
// metadata.generation: the fake tracker has no resourceVersion conflicts, and
// a status computed for an older generation must not land on a newer one.
func (s *Sim) writeDeploymentStatus(ctx context.Context, dep *appsv1.Deployment, st appsv1.DeploymentStatus) error {
	var ops []map[string]any
	if dep.Generation != 0 {
		ops = append(ops, map[string]any{"op": "test", "path": "/metadata/generation", "value": dep.Generation})
	}
	ops = append(ops, map[string]any{"op": "add", "path": "/status", "value": st})
	patch, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = s.cs.AppsV1().Deployments(dep.Namespace).Patch(ctx, dep.Name, types.JSONPatchType, patch,
		metav1.PatchOptions{FieldManager: fieldManager}, "status")
	if err != nil {
		// A failed generation test means a newer write exists; its event
		// will bring us back here.
		s.log.DebugContext(ctx, "kubesim: status write skipped", "deployment", dep.Namespace+"/"+dep.Name, "err", err)
		return nil
	}
	s.log.DebugContext(ctx, "kubesim: deployment status", "deployment", dep.Namespace+"/"+dep.Name,
		"generation", dep.Generation, "updated", st.UpdatedReplicas, "available", st.AvailableReplicas)
	return nil
}
