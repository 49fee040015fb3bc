package kubesim_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

// With a source, a sync writes the target Secret (created, then replaced
// entirely); a failing source is reported as ESO reports a provider error;
// without a source no Secret is touched.
func TestExternalSecretSourceWritesTarget(t *testing.T) {
	withTarget := kubesim.NewExternalSecret(ns, "jwt", "1h")
	if err := unstructured.SetNestedField(withTarget.Object, "jwt-keys", "spec", "target", "name"); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, kubesim.Options{}, true, withTarget, kubesim.NewExternalSecret(ns, "plain", "1h"))
	res := w.dyn.Resource(kube.ExternalSecretGVR(kube.ExternalSecretsV1)).Namespace(ns)
	annotate := func(name, v string) {
		t.Helper()
		if _, err := res.Patch(context.Background(), name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"force-sync":"`+v+`"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		w.flush(t)
	}
	secretData := func(name string) (map[string]string, bool) {
		t.Helper()
		s, err := w.cs.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, false
		}
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, true
	}
	readyReason := func(name string) string {
		conds, _, _ := unstructured.NestedSlice(w.es(t, name).Object, "status", "conditions")
		c, _ := conds[0].(map[string]any)
		r, _ := c["reason"].(string)
		return r
	}

	data := map[string][]byte{"A": []byte("1"), "B": []byte("2")}
	var fail error
	w.sim.SetExternalSecretSource(ns, "jwt", func(context.Context) (map[string][]byte, error) { return data, fail })

	annotate("jwt", "1")
	if got, ok := secretData("jwt-keys"); !ok || !maps.Equal(got, map[string]string{"A": "1", "B": "2"}) {
		t.Errorf("after the first sync: jwt-keys = %v (exists %v)", got, ok)
	}
	data = map[string][]byte{"A": []byte("3")}
	annotate("jwt", "2")
	if got, _ := secretData("jwt-keys"); !maps.Equal(got, map[string]string{"A": "3"}) {
		t.Errorf("after the second sync: jwt-keys = %v, want only A=3 (data replaced)", got)
	}
	fail = errors.New("could not get secret data from provider")
	data = map[string][]byte{"A": []byte("4")}
	annotate("jwt", "3")
	if got, _ := secretData("jwt-keys"); !maps.Equal(got, map[string]string{"A": "3"}) || readyReason("jwt") != "SecretSyncedError" {
		t.Errorf("failing source: jwt-keys = %v, Ready reason %q; want unchanged and SecretSyncedError", got, readyReason("jwt"))
	}
	fail = nil
	w.sim.SetExternalSecretSource(ns, "jwt", nil)
	annotate("jwt", "4")
	if got, _ := secretData("jwt-keys"); !maps.Equal(got, map[string]string{"A": "3"}) || readyReason("jwt") != "SecretSynced" {
		t.Errorf("source removed: jwt-keys = %v, Ready reason %q; want unchanged and SecretSynced", got, readyReason("jwt"))
	}

	annotate("plain", "1")
	if _, ok := secretData("plain"); ok {
		t.Error("an ExternalSecret without a source wrote a Secret")
	}
}
