package kubesim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// ESO's status vocabulary.
const (
	esReasonSynced  = "SecretSynced"
	esMessageSynced = "secret synced"
	esConditionType = "Ready"
	esCreatedOnce   = "CreatedOnce"
	esOnChange      = "OnChange"
)

func (s *Sim) onExternalSecret(ctx context.Context, ev watch.Event) {
	if ev.Type != watch.Added && ev.Type != watch.Modified {
		return
	}
	u, ok := ev.Object.(*unstructured.Unstructured)
	if !ok {
		return
	}
	if err := s.reconcileExternalSecret(ctx, u.GetNamespace(), u.GetName()); err != nil {
		s.log.WarnContext(ctx, "kubesim: externalsecret reconcile failed", "externalsecret", u.GetNamespace()+"/"+u.GetName(), "err", err)
	}
}

// reconcileExternalSecret mirrors ESO's shouldRefresh: ESO records a hash of
// generation+labels+annotations as status.syncedResourceVersion and refreshes
// when it differs (that is how the force-sync annotation works), unless
// refreshInterval is 0 or refreshPolicy is CreatedOnce after a first sync.
// Periodic refreshes are not simulated (no timers: tests stay deterministic).
func (s *Sim) reconcileExternalSecret(ctx context.Context, ns, name string) error {
	res := s.dyn.Resource(s.esGVR).Namespace(ns)
	es, err := res.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	current := metadataVersion(es)
	synced, _, _ := unstructured.NestedString(es.Object, "status", "syncedResourceVersion")
	refreshTime, _, _ := unstructured.NestedString(es.Object, "status", "refreshTime")
	interval, _, _ := unstructured.NestedString(es.Object, "spec", "refreshInterval")
	policy, _, _ := unstructured.NestedString(es.Object, "spec", "refreshPolicy")

	never := synced == "" || refreshTime == ""
	var refresh bool
	switch {
	case never:
		refresh = true
	case policy == esCreatedOnce:
		refresh = false
	case policy == esOnChange:
		refresh = synced != current
	case zeroInterval(interval):
		refresh = false
	default:
		refresh = synced != current
	}
	if !refresh {
		return nil
	}

	s.mu.Lock()
	fail, failing := s.esErr[objKey{ns, name}]
	s.mu.Unlock()
	if src := s.esSource(ns, name); src != nil && !failing {
		if err := s.syncTarget(ctx, es, src); err != nil {
			fail, failing = esError{reason: esReasonSyncError, message: err.Error()}, true
		}
	}

	now := s.now().UTC().Format(time.RFC3339)
	status, _, _ := unstructured.NestedMap(es.Object, "status")
	if status == nil {
		status = map[string]any{}
	}
	if failing {
		// ESO keeps refreshTime and syncedResourceVersion on failure and
		// retries; only the condition changes. Skip identical rewrites, or
		// our own write's event would bring us back here forever.
		if c := readyCondition(es); c["status"] == "False" && c["reason"] == fail.reason && c["message"] == fail.message {
			return nil
		}
		status["conditions"] = []any{map[string]any{
			"type": esConditionType, "status": "False", "reason": fail.reason, "message": fail.message, "lastTransitionTime": now,
		}}
	} else {
		status["conditions"] = []any{map[string]any{
			"type": esConditionType, "status": "True", "reason": esReasonSynced, "message": esMessageSynced, "lastTransitionTime": now,
		}}
		status["refreshTime"] = now
		status["syncedResourceVersion"] = current
	}
	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": status}})
	if err != nil {
		return err
	}
	if _, err := res.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}, "status"); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	s.log.DebugContext(ctx, "kubesim: externalsecret status", "externalsecret", ns+"/"+name, "failing", failing, "refreshTime", now)
	return nil
}

func readyCondition(es *unstructured.Unstructured) map[string]any {
	conds, _, _ := unstructured.NestedSlice(es.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == esConditionType {
			return m
		}
	}
	return nil
}

func zeroInterval(s string) bool {
	if s == "0" {
		return true
	}
	d, err := time.ParseDuration(s)
	return err == nil && d == 0
}

// metadataVersion is the sim's stand-in for ESO's GetResourceVersion:
// generation plus a hash of labels and annotations. It changes exactly when
// ESO would consider the ExternalSecret modified.
func metadataVersion(es *unstructured.Unstructured) string {
	h := fnv.New64a()
	// encoding/json sorts map keys, so the encoding is canonical.
	b, _ := json.Marshal([]map[string]string{es.GetLabels(), es.GetAnnotations()})
	_, _ = h.Write(b)
	return fmt.Sprintf("%d-%x", es.GetGeneration(), h.Sum64())
}
