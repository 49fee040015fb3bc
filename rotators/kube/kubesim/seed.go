package kubesim

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/aivo-platform/rotary/rotators/kube"
)

// SeedRefreshTime is the status.refreshTime of ExternalSecrets made by
// NewExternalSecret: "synced long ago", so any refresh the code under test
// causes is distinguishable from the seed.
const SeedRefreshTime = "2025-01-01T00:00:00Z"

// NewDeployment returns a Deployment at generation 1 whose rollout is already
// complete, selecting pods by labels (also used as the template's labels).
func NewDeployment(ns, name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	sel := make(map[string]string, len(labels))
	tpl := make(map[string]string, len(labels))
	for k, v := range labels {
		sel[k], tpl[k] = v, v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tpl},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
			},
		},
		Status: completeStatus(1, replicas, metav1.Time{}),
	}
}

// NewRunningPod returns a Running pod with one started container named "app"
// (as NewDeployment's template), for ScanLogs.
func NewRunningPod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			}},
		},
	}
}

// NewExternalSecret returns an external-secrets.io/v1 ExternalSecret that ESO
// synced at SeedRefreshTime. refreshInterval "" leaves the field unset (ESO's
// default, 1h).
func NewExternalSecret(ns, name, refreshInterval string) *unstructured.Unstructured {
	return NewExternalSecretVersion(kube.ExternalSecretsV1, ns, name, refreshInterval)
}

// NewExternalSecretVersion is NewExternalSecret for a given ESO API version.
func NewExternalSecretVersion(version, ns, name, refreshInterval string) *unstructured.Unstructured {
	spec := map[string]any{
		"secretStoreRef": map[string]any{"kind": "ClusterSecretStore", "name": "gcp-secret-manager"},
		"target":         map[string]any{"name": name},
		"dataFrom":       []any{map[string]any{"extract": map[string]any{"key": name}}},
	}
	if refreshInterval != "" {
		spec["refreshInterval"] = refreshInterval
	}
	es := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kube.ExternalSecretsGroup + "/" + version,
		"kind":       "ExternalSecret",
		"metadata":   map[string]any{"namespace": ns, "name": name, "generation": int64(1)},
		"spec":       spec,
	}}
	es.Object["status"] = map[string]any{
		"conditions": []any{map[string]any{
			"type": esConditionType, "status": "True", "reason": esReasonSynced, "message": esMessageSynced,
			"lastTransitionTime": SeedRefreshTime,
		}},
		"refreshTime":           SeedRefreshTime,
		"syncedResourceVersion": metadataVersion(es),
	}
	return es
}

// NewDynamicClient returns a fake dynamic client that knows the
// ExternalSecret list kinds of both served ESO versions (the dynamic fake can
// only List kinds it was told about) and holds objs.
func NewDynamicClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	listKinds := map[schema.GroupVersionResource]string{
		kube.ExternalSecretGVR(kube.ExternalSecretsV1):      "ExternalSecretList",
		kube.ExternalSecretGVR(kube.ExternalSecretsV1Beta1): "ExternalSecretList",
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
}
