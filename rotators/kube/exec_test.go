package kube_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

// execOutput is what the simulated command prints; it stands for output
// that may hold secrets and must never reach an error or a log record.
const execOutput = "invalidated 42 sessions; token=SESSION-SECRET-0123456789"

// execEnv is a client whose typed API is the fake clientset (holding the
// pod) and whose exec streams go to a kubesim.ExecServer.
func execEnv(t *testing.T, h kubesim.ExecHandler, opts kubesim.ExecServerOptions, pod *corev1.Pod) (*env, *kubesim.ExecServer) {
	t.Helper()
	srv, err := kubesim.NewExecServer(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	e := newEnv(t, kubesim.Options{}, kube.Options{RESTConfig: srv.RESTConfig()}, false, pod)
	return e, srv
}

func authPod() *corev1.Pod {
	p := kubesim.NewReadyPod(ns, "auth-svc-7d9f-abcde", labels(), metav1.NewTime(t0))
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "example.invalid/sidecar:1"})
	return p
}

func TestExec(t *testing.T) {
	cmd := []string{"npm", "run", "invalidate-all-sessions"}
	withDefault := authPod()
	withDefault.Annotations = map[string]string{kube.DefaultContainerAnnotation: "sidecar"}
	tests := []struct {
		name          string
		pod           *corev1.Pod
		container     string
		maxOutput     int
		reply         kubesim.ExecReply
		wantContainer string
		wantExit      int
		wantOutput    string
	}{
		{name: "success", pod: authPod(), container: "app", maxOutput: 1 << 10, reply: kubesim.ExecReply{Stdout: []byte(execOutput)}, wantContainer: "app", wantOutput: execOutput},
		{name: "stdout and stderr", pod: authPod(), container: "app", maxOutput: 1 << 10, reply: kubesim.ExecReply{Stdout: []byte("out;"), Stderr: []byte("err")}, wantContainer: "app", wantOutput: "out;err"},
		{name: "non-zero exit is a result", pod: authPod(), container: "app", maxOutput: 1 << 10, reply: kubesim.ExecReply{Stderr: []byte(execOutput), ExitCode: 3}, wantContainer: "app", wantExit: 3, wantOutput: execOutput},
		{name: "output bounded", pod: authPod(), container: "app", maxOutput: 11, reply: kubesim.ExecReply{Stdout: []byte(execOutput)}, wantContainer: "app", wantOutput: execOutput[:11]},
		{name: "output only counted", pod: authPod(), container: "app", reply: kubesim.ExecReply{Stdout: []byte(execOutput)}, wantContainer: "app"},
		{name: "first container by default", pod: authPod(), reply: kubesim.ExecReply{}, wantContainer: "app"},
		{name: "annotated default container", pod: withDefault, reply: kubesim.ExecReply{}, wantContainer: "sidecar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := execEnv(t, func(kubesim.ExecRequest) kubesim.ExecReply { return tt.reply }, kubesim.ExecServerOptions{}, tt.pod)
			res, err := e.kc.Exec(ctxTimeout(t, waitTimeout), ns, tt.pod.Name, tt.container, cmd, tt.maxOutput)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			total := int64(len(tt.reply.Stdout) + len(tt.reply.Stderr))
			output := string(res.Output.Reveal())
			if tt.wantOutput == "out;err" && output == "errout;" {
				output = "out;err" // stdout and stderr are copied concurrently: either order
			}
			if res.ExitCode != tt.wantExit || output != tt.wantOutput || res.OutputBytes != total {
				t.Errorf("result = exit %d, output %q, %d bytes; want exit %d, %q, %d bytes",
					res.ExitCode, res.Output.Reveal(), res.OutputBytes, tt.wantExit, tt.wantOutput, total)
			}
			if got, want := res.Truncated(), len(tt.wantOutput) < int(total); got != want {
				t.Errorf("Truncated() = %v, want %v", got, want)
			}
			want := []kubesim.ExecRequest{{Namespace: ns, Pod: tt.pod.Name, Container: tt.wantContainer, Command: cmd, WebSocket: true}}
			if got := srv.Requests(); !slices.EqualFunc(got, want, equalRequest) {
				t.Errorf("requests = %+v, want %+v", got, want)
			}
			log := e.logText()
			if !strings.Contains(log, "kube: command ran") || !strings.Contains(log, "outputBytes=") {
				t.Errorf("log lacks the command's record: %s", log)
			}
			if strings.Contains(log, "SESSION-SECRET") || strings.Contains(log, "out;") {
				t.Errorf("the command's output reached the log: %s", log)
			}
		})
	}
}

func equalRequest(a, b kubesim.ExecRequest) bool {
	return a.Namespace == b.Namespace && a.Pod == b.Pod && a.Container == b.Container &&
		slices.Equal(a.Command, b.Command) && a.WebSocket == b.WebSocket
}

func TestExecErrors(t *testing.T) {
	cmd := []string{"npm", "run", "invalidate-all-sessions"}
	tests := []struct {
		name      string
		noREST    bool
		opts      kubesim.ExecServerOptions
		reply     kubesim.ExecReply
		pod       string
		container string
		cmd       []string
		maxOutput int
		wantIs    error
		wantErr   []string
		// wantRequests: the methods the server saw (ws: WebSocket GET, spdy: POST).
		wantRequests []string
	}{
		{name: "no REST config", noREST: true, wantIs: kube.ErrNoRESTConfig, wantErr: []string{"pod aivo-prod/auth-svc-7d9f-abcde", "NewForConfig"}},
		{name: "empty command", cmd: []string{}, wantErr: []string{"empty command"}},
		{name: "negative limit", maxOutput: -1, wantErr: []string{"negative output limit"}},
		{name: "pod gone", pod: "auth-svc-gone", wantErr: []string{"pod aivo-prod/auth-svc-gone", "not found"}},
		{name: "unknown container", container: "nginx", wantErr: []string{`no container "nginx" (it has app, sidecar)`}},
		{
			name: "forbidden: WebSocket refused, SPDY fallback refused too", reply: kubesim.ExecReply{Refuse: http.StatusForbidden, Message: `pods "auth-svc-7d9f-abcde" is forbidden: cannot create resource "pods/exec"`},
			wantErr: []string{`exec "npm" in pod aivo-prod/auth-svc-7d9f-abcde container app`, "forbidden"}, wantRequests: []string{"ws", "spdy"},
		},
		{
			name: "no WebSocket support: falls back to SPDY", opts: kubesim.ExecServerOptions{RejectWebSocket: true}, reply: kubesim.ExecReply{Stdout: []byte(execOutput)},
			wantErr: []string{`exec "npm" in pod aivo-prod/auth-svc-7d9f-abcde container app`, "SPDY exec protocol is not simulated"}, wantRequests: []string{"ws", "spdy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := execEnv(t, func(kubesim.ExecRequest) kubesim.ExecReply { return tt.reply }, tt.opts, authPod())
			kc := e.kc
			if tt.noREST {
				kc = kube.New(e.cs, e.dyn, kube.Options{})
			}
			pod := "auth-svc-7d9f-abcde"
			if tt.pod != "" {
				pod = tt.pod
			}
			c := cmd
			if tt.cmd != nil {
				c = tt.cmd
			}
			container := "app"
			if tt.container != "" {
				container = tt.container
			}
			res, err := kc.Exec(ctxTimeout(t, waitTimeout), ns, pod, container, c, tt.maxOutput)
			if err == nil {
				t.Fatalf("Exec = %+v, want an error", res)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "SESSION-SECRET") {
				t.Errorf("output in the error: %v", err)
			}
			var got []string
			for _, r := range srv.Requests() {
				if r.WebSocket {
					got = append(got, "ws")
				} else {
					got = append(got, "spdy")
				}
			}
			if !slices.Equal(got, tt.wantRequests) {
				t.Errorf("server saw %v, want %v", got, tt.wantRequests)
			}
		})
	}
}

// The caller's context bounds the command: a hung stream ends with ctx.
func TestExecContext(t *testing.T) {
	release := make(chan struct{})
	e, _ := execEnv(t, func(kubesim.ExecRequest) kubesim.ExecReply {
		<-release
		return kubesim.ExecReply{}
	}, kubesim.ExecServerOptions{}, authPod())
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), expireTimeout)
	defer cancel()
	start := time.Now()
	_, err := e.kc.Exec(ctx, ns, "auth-svc-7d9f-abcde", "app", []string{"sleep", "infinity"}, 0)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > waitTimeout {
		t.Errorf("Exec took %s after its context ended", d)
	}
}

// NewForConfig keeps its config for Exec: the call reaches the server
// (whose answer to the pod lookup is a 404) instead of failing for want
// of a REST config.
func TestNewForConfigEnablesExec(t *testing.T) {
	srv, err := kubesim.NewExecServer(func(kubesim.ExecRequest) kubesim.ExecReply { return kubesim.ExecReply{} }, kubesim.ExecServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	kc, err := kube.NewForConfig(srv.RESTConfig(), kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kc.Exec(ctxTimeout(t, waitTimeout), ns, "auth-svc-7d9f-abcde", "app", []string{"true"}, 0)
	if err == nil || errors.Is(err, kube.ErrNoRESTConfig) || !strings.Contains(err.Error(), "pod aivo-prod/auth-svc-7d9f-abcde") {
		t.Errorf("Exec err = %v, want the server's answer to the pod lookup", err)
	}
}
