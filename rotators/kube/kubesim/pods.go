package kubesim

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NewReadyPod returns a pod as a Deployment's ready replica looks: Running,
// condition Ready=True, one started container named "app" (as
// NewDeployment's template), created at created. kube.Client.ReadyPod
// picks such pods (the newest first); NewRunningPod's pods have no Ready
// condition and are not picked.
func NewReadyPod(ns, name string, labels map[string]string, created metav1.Time) *corev1.Pod {
	p := NewRunningPod(ns, name, labels)
	p.CreationTimestamp = created
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
	}
	return p
}
