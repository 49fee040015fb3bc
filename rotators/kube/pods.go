package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultContainerAnnotation names a pod's default container, as kubectl
// exec/logs honour it when no container is given.
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// ErrNoReadyPod reports a Deployment none of whose pods is ready to take a
// command: none is Running with condition Ready=True and not terminating.
var ErrNoReadyPod = errors.New("no ready pod")

// maxPodsNamed bounds the pods ReadyPod's error describes.
const maxPodsNamed = 5

// ReadyPod returns the name of one ready pod of Deployment ns/deployment: a
// pod matched by the Deployment's own label selector (as `kubectl exec
// deployment/NAME` finds one) that is Running, has condition Ready=True and
// is not being deleted. Of several it picks the newest (then the first by
// name), which after a rollout is one of the new template's pods. When none
// is ready the error wraps ErrNoReadyPod and says what each pod is doing.
func (c *Client) ReadyPod(ctx context.Context, ns, deployment string) (string, error) {
	what := "deployment " + ns + "/" + deployment
	dep, err := c.cs.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("kube: finding a ready pod of %s: %w", what, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return "", fmt.Errorf("kube: finding a ready pod of %s: selector: %w", what, err)
	}
	if sel.Empty() {
		// An empty selector matches every pod in the namespace.
		return "", fmt.Errorf("kube: finding a ready pod of %s: the deployment has an empty selector", what)
	}
	pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", fmt.Errorf("kube: finding a ready pod of %s: listing pods: %w", what, err)
	}
	var ready []*corev1.Pod
	var notReady []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if why := podNotReady(p); why != "" {
			notReady = append(notReady, p.Name+" ("+why+")")
			continue
		}
		ready = append(ready, p)
	}
	if len(ready) == 0 {
		if len(notReady) == 0 {
			return "", fmt.Errorf("kube: %s has no pods matching its selector %s: %w", what, sel, ErrNoReadyPod)
		}
		slices.Sort(notReady)
		more := ""
		if len(notReady) > maxPodsNamed {
			more = fmt.Sprintf(" and %d more", len(notReady)-maxPodsNamed)
			notReady = notReady[:maxPodsNamed]
		}
		return "", fmt.Errorf("kube: %s has %d pods and none is ready: %s%s: %w",
			what, len(pods.Items), strings.Join(notReady, ", "), more, ErrNoReadyPod)
	}
	slices.SortFunc(ready, func(a, b *corev1.Pod) int {
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c // newest first
		}
		return strings.Compare(a.Name, b.Name)
	})
	return ready[0].Name, nil
}

// podNotReady says why a pod cannot take a command, or "" when it can.
func podNotReady(p *corev1.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return "terminating"
	case p.Status.Phase != corev1.PodRunning:
		if p.Status.Phase == "" {
			return "no phase yet"
		}
		return string(p.Status.Phase)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return ""
			}
			return "not Ready"
		}
	}
	return "no Ready condition"
}

// defaultContainer is the container kubectl exec picks when none is named:
// the one DefaultContainerAnnotation names, else the first.
func defaultContainer(p *corev1.Pod) (string, error) {
	if name := p.Annotations[DefaultContainerAnnotation]; name != "" {
		for _, c := range p.Spec.Containers {
			if c.Name == name {
				return name, nil
			}
		}
		return "", fmt.Errorf("annotation %s names container %q, which the pod does not have", DefaultContainerAnnotation, name)
	}
	if len(p.Spec.Containers) == 0 {
		return "", errors.New("the pod has no containers")
	}
	return p.Spec.Containers[0].Name, nil
}
