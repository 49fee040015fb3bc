package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
)

// execContainer is the only container name kwok runs exec commands for
// (test/cluster/start.sh's ClusterExec rule); the command runs on the test
// host as nobody in an empty directory, so only harmless commands belong
// here (true, echo).
const execContainer = "exec-target"

// testExec proves the harness serves pods/exec end to end — API server,
// kwok's kubelet endpoint, the command's output back — for rotary's own
// identity: deploy/rbac.yaml's pods/exec rule is what authorizes it.
func testExec(t *testing.T, s *suite) {
	w := newWorld(t, s, "exec")
	w.deployment(deploymentSpec{name: "auth-svc", replicas: 1, container: execContainer})
	pods, err := s.cs.CoreV1().Pods(w.ns).List(w.ctx, metav1.ListOptions{LabelSelector: "app=auth-svc"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods of auth-svc: %d (%v)", len(pods.Items), err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.rotaryKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	out, err := execIn(w.ctx, cfg, w.ns, pods.Items[0].Name, execContainer, "echo", "e2e-exec-ok")
	if err != nil {
		t.Fatalf("exec as rotary-system/rotary: %v", err)
	}
	if strings.TrimSpace(out) != "e2e-exec-ok" {
		t.Fatalf("exec printed %q, want e2e-exec-ok", out)
	}
	// A failing command's exit status comes back as an error.
	if _, err := execIn(w.ctx, cfg, w.ns, pods.Items[0].Name, execContainer, "false"); err == nil {
		t.Fatal("exec of `false` reported success")
	}
}

// execIn runs cmd in a container through pods/exec over WebSocket, as
// kubectl exec does, and returns its stdout.
func execIn(ctx context.Context, cfg *rest.Config, ns, pod, container string, cmd ...string) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), err
}
