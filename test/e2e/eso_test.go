package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/aivo-platform/rotary/rotators/gsm"
)

// esGVR is the ExternalSecret resource rotary uses by default (ESO v1).
func esGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
}

// forceSyncAnnotation is the annotation that makes ESO refresh at once.
const forceSyncAnnotation = "force-sync"

// listWatch adapts a pair of context-aware list and watch functions.
func listWatch(list cache.ListWithContextFunc, watchFn cache.WatchFuncWithContext) *cache.ListWatch {
	return &cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}
}

// esoStandIn plays External Secrets Operator for one namespace: when an
// ExternalSecret is created, or its force-sync annotation changes, it
// copies the latest enabled Secret Manager version of each spec.data entry
// into the target Secret (replacing its data, as creationPolicy Owner
// does), then sets status Ready=True and status.refreshTime — the
// observable contract rotary's "force-sync and wait" relies on.
type esoStandIn struct {
	s   *suite
	ns  string
	gsm *gsm.Client
	t   *testing.T

	mu sync.Mutex
	// handled is the force-sync value last synced per ExternalSecret ("" for
	// the initial sync); syncs counts the syncs per ExternalSecret.
	handled map[string]string
	syncs   map[string]int
	changed chan struct{} // closed and replaced on every sync
	// beforeReady, if set, runs after the Secret is written and before
	// Ready is reported for the n-th sync (1-based) of an ExternalSecret.
	beforeReady func(ctx context.Context, es string, n int)
}

// startESO runs the stand-in until ctx ends.
func startESO(ctx context.Context, t *testing.T, s *suite, ns string, c *gsm.Client) *esoStandIn {
	t.Helper()
	e := &esoStandIn{s: s, ns: ns, gsm: c, t: t, handled: map[string]string{}, syncs: map[string]int{}, changed: make(chan struct{})}
	res := s.dyn.Resource(esGVR()).Namespace(ns)
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: listWatch(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, o)
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, o)
		}),
		ObjectType: &unstructured.Unstructured{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { e.reconcile(ctx, obj) },
			UpdateFunc: func(_, obj any) { e.reconcile(ctx, obj) },
		},
	})
	done := make(chan struct{})
	go func() { defer close(done); informer.RunWithContext(ctx) }()
	t.Cleanup(func() { <-done }) // ctx ends at the scenario's end
	return e
}

// reconcile syncs an ExternalSecret whose force-sync value it has not
// handled yet. The informer calls it from one goroutine.
func (e *esoStandIn) reconcile(ctx context.Context, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	name := u.GetName()
	want := u.GetAnnotations()[forceSyncAnnotation]
	e.mu.Lock()
	last, seen := e.handled[name]
	n := e.syncs[name] + 1
	e.mu.Unlock()
	if seen && last == want {
		return // our own status update, or nothing new
	}
	if err := e.sync(ctx, u, n); err != nil {
		if ctx.Err() == nil {
			e.t.Errorf("ESO stand-in: syncing %s/%s: %v", e.ns, name, err)
		}
		return
	}
	e.mu.Lock()
	e.handled[name] = want
	e.syncs[name] = n
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *esoStandIn) sync(ctx context.Context, u *unstructured.Unstructured, n int) error {
	target, _, _ := unstructured.NestedString(u.Object, "spec", "target", "name")
	if target == "" {
		target = u.GetName()
	}
	items, _, _ := unstructured.NestedSlice(u.Object, "spec", "data")
	data := map[string][]byte{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		key, _, _ := unstructured.NestedString(m, "secretKey")
		remote, _, _ := unstructured.NestedString(m, "remoteRef", "key")
		secretName := gsm.SecretName(gsmProject, remote)
		version, err := e.gsm.LatestEnabled(ctx, secretName)
		if err != nil {
			return fmt.Errorf("latest version of %s: %w", secretName, err)
		}
		v, err := e.gsm.Access(ctx, version)
		if err != nil {
			return fmt.Errorf("accessing %s: %w", version, err)
		}
		data[key] = v.Reveal()
	}
	secrets := e.s.cs.CoreV1().Secrets(e.ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, target, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: target, Namespace: e.ns}, Data: data}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Data = data
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing Secret %s: %w", target, err)
	}
	e.mu.Lock()
	hook := e.beforeReady
	e.mu.Unlock()
	if hook != nil {
		hook(ctx, u.GetName(), n)
	}
	res := e.s.dyn.Resource(esGVR()).Namespace(e.ns)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := res.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := time.Now().UTC().Format(time.RFC3339)
		status := map[string]any{
			"refreshTime":           now,
			"syncedResourceVersion": fmt.Sprintf("%d-%s", cur.GetGeneration(), cur.GetResourceVersion()),
			"conditions": []any{map[string]any{
				"type": "Ready", "status": "True", "reason": "SecretSynced",
				"message": "secret synced", "lastTransitionTime": now,
			}},
		}
		if err := unstructured.SetNestedMap(cur.Object, status, "status"); err != nil {
			return err
		}
		_, err = res.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// onBeforeReady sets the hook run before the n-th sync reports Ready.
func (e *esoStandIn) onBeforeReady(hook func(ctx context.Context, es string, n int)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.beforeReady = hook
}

// syncCount returns how many syncs of es the stand-in made.
func (e *esoStandIn) syncCount(es string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.syncs[es]
}

// waitSyncs waits until es was synced at least n times.
func (e *esoStandIn) waitSyncs(ctx context.Context, t *testing.T, es string, n int) {
	t.Helper()
	for {
		e.mu.Lock()
		got, ch := e.syncs[es], e.changed
		e.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("ExternalSecret %s/%s synced %d times, waited for %d: %v", e.ns, es, got, n, ctx.Err())
		}
	}
}
