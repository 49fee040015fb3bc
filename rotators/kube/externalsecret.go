package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// ForceSyncAnnotation is the annotation ESO's docs use to trigger a refresh:
// any change to an ExternalSecret's annotations makes ESO re-sync it.
const ForceSyncAnnotation = "force-sync"

// ESO's spec.refreshPolicy values that change how annotations are honoured.
const (
	refreshPolicyCreatedOnce = "CreatedOnce" // syncs once, never again
	refreshPolicyOnChange    = "OnChange"    // syncs on every metadata/spec change
)

// ExternalSecretGVR returns the ExternalSecret resource for an ESO API version.
func ExternalSecretGVR(version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: ExternalSecretsGroup, Version: version, Resource: ExternalSecretsResource}
}

func (c *Client) externalSecrets(ns string) dynamic.ResourceInterface {
	return c.dyn.Resource(ExternalSecretGVR(c.esVer)).Namespace(ns)
}

// ForceSyncExternalSecret sets annotation force-sync=<at unix seconds> with a
// JSON merge patch, like
// `kubectl annotate externalsecret NAME force-sync=$(date +%s) --overwrite`.
// The value comes from the caller's `at`, so a repeat after a crash writes the
// same value (no second sync); when it is already set the call does nothing.
// It refuses with ErrRefreshDisabled when ESO would ignore the annotation:
// spec.refreshInterval "0"/"0s" (unless refreshPolicy is OnChange) or
// spec.refreshPolicy CreatedOnce.
func (c *Client) ForceSyncExternalSecret(ctx context.Context, ns, name string, at time.Time) error {
	what := "externalsecret " + ns + "/" + name
	if at.IsZero() {
		return fmt.Errorf("kube: force-sync %s: %w", what, ErrZeroInstant)
	}
	es, err := c.externalSecrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kube: force-sync %s: %w", what, err)
	}
	if err := refreshEnabled(es); err != nil {
		return fmt.Errorf("kube: force-sync %s: %w", what, err)
	}
	stamp := strconv.FormatInt(at.Unix(), 10)
	if es.GetAnnotations()[ForceSyncAnnotation] == stamp {
		c.log.InfoContext(ctx, "kube: externalsecret already force-synced at this instant; not patching",
			"externalsecret", ns+"/"+name, ForceSyncAnnotation, stamp)
		return nil
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{ForceSyncAnnotation: stamp}},
	})
	if err != nil {
		return fmt.Errorf("kube: force-sync %s: encoding patch: %w", what, err)
	}
	if _, err := c.externalSecrets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: userAgent}); err != nil {
		return fmt.Errorf("kube: force-sync %s: patch: %w", what, err)
	}
	c.log.InfoContext(ctx, "kube: externalsecret force-sync requested", "externalsecret", ns+"/"+name, ForceSyncAnnotation, stamp)
	return nil
}

// refreshEnabled returns ErrRefreshDisabled (wrapped with the fix) when ESO
// will not act on a force-sync annotation. It follows ESO's shouldRefresh:
// CreatedOnce never refreshes after the first sync; OnChange refreshes on any
// metadata change whatever the interval; Periodic (the default) with
// refreshInterval 0 never refreshes a synced ExternalSecret again.
func refreshEnabled(es *unstructured.Unstructured) error {
	policy, _, err := unstructured.NestedString(es.Object, "spec", "refreshPolicy")
	if err != nil {
		return fmt.Errorf("reading spec.refreshPolicy: %w", err)
	}
	switch policy {
	case refreshPolicyCreatedOnce:
		return fmt.Errorf("%w: spec.refreshPolicy is %s; set it to Periodic or OnChange in the ExternalSecret manifest", ErrRefreshDisabled, policy)
	case refreshPolicyOnChange:
		return nil
	}
	interval, found, err := unstructured.NestedString(es.Object, "spec", "refreshInterval")
	if err != nil {
		return fmt.Errorf("reading spec.refreshInterval: %w", err)
	}
	if found && isZeroDuration(interval) {
		return fmt.Errorf("%w: spec.refreshInterval is %q; set it to a non-zero interval (e.g. \"1h\") in the ExternalSecret manifest", ErrRefreshDisabled, interval)
	}
	return nil
}

// isZeroDuration reports a refreshInterval ESO treats as "never refresh": "0",
// "0s" or any other spelling of zero ("0m", "0h0m0s").
func isZeroDuration(s string) bool {
	if s == "0" {
		return true
	}
	d, err := time.ParseDuration(s)
	return err == nil && d == 0
}

// WaitExternalSecretSynced waits (watch, or poll as fallback) until the
// ExternalSecret has condition Ready=True and status.refreshTime >= since
// (both at second precision, as the API stores it). ctx carries the timeout;
// on expiry the error includes the Ready condition's reason and (capped)
// message when it is False, e.g. the provider refusing access.
func (c *Client) WaitExternalSecretSynced(ctx context.Context, ns, name string, since time.Time) error {
	es := c.externalSecrets(ns)
	since = since.Truncate(time.Second)
	return c.waitFor(ctx, waitSpec{
		what: "sync of externalsecret " + ns + "/" + name,
		name: name,
		get: func(ctx context.Context) (runtime.Object, error) {
			return es.Get(ctx, name, metav1.GetOptions{})
		},
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return es.Watch(ctx, opts)
		},
		check: func(obj runtime.Object) (bool, string, error) {
			u, err := toUnstructured(obj)
			if err != nil {
				return false, "", err
			}
			done, msg := externalSecretSynced(u, since)
			return done, msg, nil
		},
	})
}

// externalSecretSynced judges one observed ExternalSecret and describes it.
func externalSecretSynced(es *unstructured.Unstructured, since time.Time) (bool, string) {
	ready := readyCondition(es)
	rt, _, _ := unstructured.NestedString(es.Object, "status", "refreshTime")
	var refreshed time.Time
	if rt != "" {
		t, err := time.Parse(time.RFC3339, rt)
		if err != nil {
			return false, fmt.Sprintf("unparseable status.refreshTime %q", capMessage(rt))
		}
		refreshed = t
	}
	switch {
	case ready.status == "":
		return false, "no Ready condition yet"
	case ready.status != string(metav1.ConditionTrue):
		msg := "Ready=" + ready.status
		if ready.reason != "" {
			msg += " reason=" + ready.reason
		}
		if ready.message != "" {
			msg += ": " + capMessage(ready.message)
		}
		return false, msg
	case refreshed.IsZero():
		return false, "Ready=True but no status.refreshTime yet"
	case refreshed.Before(since):
		return false, fmt.Sprintf("Ready=True, last refresh %s is before %s", rt, since.UTC().Format(time.RFC3339))
	}
	return true, "synced at " + rt
}

type condition struct{ status, reason, message string }

func readyCondition(es *unstructured.Unstructured) condition {
	conds, _, _ := unstructured.NestedSlice(es.Object, "status", "conditions")
	for _, raw := range conds {
		m, ok := raw.(map[string]any)
		if !ok || m["type"] != "Ready" {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return capMessage(s) }
		return condition{status: str("status"), reason: str("reason"), message: str("message")}
	}
	return condition{}
}

// ListExternalSecrets returns the names of the ExternalSecrets in ns, sorted.
func (c *Client) ListExternalSecrets(ctx context.Context, ns string) ([]string, error) {
	list, err := c.externalSecrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: listing externalsecrets in namespace %s: %w", ns, err)
	}
	names := make([]string, 0, len(list.Items))
	for _, it := range list.Items {
		names = append(names, it.GetName())
	}
	slices.Sort(names)
	return names, nil
}
