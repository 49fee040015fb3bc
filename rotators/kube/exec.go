package kube

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// ErrNoRESTConfig reports an Exec on a Client built without a REST config
// (New with fakes): the typed and dynamic clients cannot open exec streams.
var ErrNoRESTConfig = errors.New("exec needs a REST config: build the client with NewForConfig, or pass Options.RESTConfig to New")

// ExecResult is what a command run by Exec did.
type ExecResult struct {
	// ExitCode is the command's exit status (0: success).
	ExitCode int
	// Output holds the first maxOutput bytes the command wrote to stdout
	// and stderr, interleaved as they arrived. A command may print
	// secrets, so it is a secret.Value: it never reaches a log or error.
	Output secret.Value
	// OutputBytes is how many bytes the command wrote in all, including
	// those past maxOutput.
	OutputBytes int64
}

// Truncated reports whether the command wrote more than Output holds.
func (r ExecResult) Truncated() bool { return r.OutputBytes > int64(len(r.Output.Reveal())) }

// Exec runs cmd (no shell, no stdin, no TTY) in container of pod ns/pod
// through the API server's pods/exec subresource, as `kubectl exec POD -c
// CONTAINER -- CMD...` does: client-go's remotecommand over WebSocket
// (protocol v5), falling back to SPDY when the server refuses the WebSocket
// upgrade. An empty container means the pod's default container, chosen as
// kubectl chooses it (the kubectl.kubernetes.io/default-container
// annotation, else the first container).
//
// A command that ran and exited non-zero is not an error: its ExitCode says
// so. An error means the command could not be run or its streams broke (the
// command may or may not have run to the end; Exec is not idempotent, so a
// caller repeats it only when running the command twice is harmless). The
// output is kept up to maxOutput bytes (0: only counted) and never appears
// in an error or log record. ctx bounds the whole call.
func (c *Client) Exec(ctx context.Context, ns, pod, container string, cmd []string, maxOutput int) (ExecResult, error) {
	what := "pod " + ns + "/" + pod
	switch {
	case c.restCfg == nil:
		return ExecResult{}, fmt.Errorf("kube: exec in %s: %w", what, ErrNoRESTConfig)
	case len(cmd) == 0 || cmd[0] == "":
		return ExecResult{}, fmt.Errorf("kube: exec in %s: empty command", what)
	case maxOutput < 0:
		return ExecResult{}, fmt.Errorf("kube: exec in %s: negative output limit %d", what, maxOutput)
	}
	p, err := c.cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("kube: exec in %s: %w", what, err)
	}
	if container == "" {
		if container, err = defaultContainer(p); err != nil {
			return ExecResult{}, fmt.Errorf("kube: exec in %s: %w", what, err)
		}
	} else if !hasContainer(p, container) {
		return ExecResult{}, fmt.Errorf("kube: exec in %s: the pod has no container %q (it has %s)", what, container, strings.Join(containerNames(p), ", "))
	}
	what += " container " + container

	cfg := rest.CopyConfig(c.restCfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	u, err := execURL(cfg, ns, pod, container, cmd)
	if err != nil {
		return ExecResult{}, fmt.Errorf("kube: exec in %s: %w", what, err)
	}
	executor, err := newExecutor(cfg, u)
	if err != nil {
		return ExecResult{}, fmt.Errorf("kube: exec in %s: %w", what, err)
	}

	out := &boundedBuffer{max: maxOutput}
	start := c.now()
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: out, Stderr: out})
	res := ExecResult{OutputBytes: out.total()}
	var exit utilexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		res.ExitCode = exit.ExitStatus()
	default:
		// The error comes from the transport or the container runtime
		// ("executable file not found"), never from the command's output.
		if cerr := expired(ctx); cerr != nil && !errors.Is(err, cerr) {
			// The transport reports an expired context as an i/o
			// timeout; keep ctx's error findable for the caller.
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return res, fmt.Errorf("kube: exec %q in %s: %w", cmd[0], what, err)
	}
	res.Output = secret.New(out.bytes())
	c.log.InfoContext(ctx, "kube: command ran", "pod", ns+"/"+pod, "container", container, "command", cmd[0],
		"args", len(cmd)-1, "exitCode", res.ExitCode, "outputBytes", res.OutputBytes, "took", c.now().Sub(start))
	return res, nil
}

// execURL is the pods/exec URL kubectl builds: POST
// /api/v1/namespaces/NS/pods/POD/exec?command=...&container=...&stdout=true&stderr=true.
func execURL(cfg *rest.Config, ns, pod, container string, cmd []string) (*url.URL, error) {
	core := rest.CopyConfig(cfg)
	core.GroupVersion = &corev1.SchemeGroupVersion
	core.APIPath = "/api"
	core.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(core)
	if err != nil {
		return nil, fmt.Errorf("building the core/v1 REST client: %w", err)
	}
	return rc.Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec).
		URL(), nil
}

// newExecutor is kubectl exec's executor: WebSocket first (GET, as RFC 6455
// requires), SPDY (POST) when the upgrade fails, e.g. on an API server or
// proxy that does not speak the v5 WebSocket protocol.
func newExecutor(cfg *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	spdyExec, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		return nil, fmt.Errorf("building the SPDY executor: %w", err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		return nil, fmt.Errorf("building the WebSocket executor: %w", err)
	}
	return remotecommand.NewFallbackExecutor(wsExec, spdyExec, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// expired is ctx's error, or DeadlineExceeded once its deadline has passed:
// the WebSocket dialer times out on the deadline itself, which may be just
// before the context's own timer marks it done.
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= 0 {
		return context.DeadlineExceeded
	}
	return nil
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func containerNames(p *corev1.Pod) []string {
	names := make([]string, 0, len(p.Spec.Containers))
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// boundedBuffer keeps the first max bytes written and counts them all. It
// never fails a write: an error would abort the stream and leave the
// command's end unknown. stdout and stderr are copied by two goroutines.
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	n   int64
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(len(p))
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *boundedBuffer) total() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *boundedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf
}
