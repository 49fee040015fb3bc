package kubesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
)

// Channel numbers of the v5.channel.k8s.io protocol: each binary message
// starts with the stream it belongs to.
const (
	execStdout byte = 1
	execStderr byte = 2
	execError  byte = 3
)

// Timeouts of the exec server, named so they can be found.
const (
	// execCloseWait is how long the server waits for the client to
	// acknowledge the close of a finished command before dropping it.
	execCloseWait = 5 * time.Second
	// execWriteTimeout bounds one websocket write.
	execWriteTimeout = 5 * time.Second
	// execReadHeaderTimeout bounds reading a request's headers.
	execReadHeaderTimeout = 5 * time.Second
)

// ExecRequest is one call of the pods/exec subresource, as the server saw it.
type ExecRequest struct {
	Namespace, Pod, Container string
	Command                   []string
	// WebSocket: the request asked for a WebSocket upgrade (GET); otherwise
	// it is the SPDY fallback (POST).
	WebSocket bool
}

// ExecReply is what a simulated command does.
type ExecReply struct {
	Stdout, Stderr []byte
	ExitCode       int
	// Refuse, when non-zero, answers the request with this HTTP status and
	// a metav1.Status carrying Message instead of running anything (e.g.
	// 403 for missing RBAC, 404 for a pod that is gone).
	Refuse  int
	Message string
}

// ExecHandler decides what a command run through the ExecServer does.
type ExecHandler func(ExecRequest) ExecReply

// ExecServerOptions configures an ExecServer. The zero value is usable.
type ExecServerOptions struct {
	// RejectWebSocket answers WebSocket upgrades with 400, as an API server
	// or proxy without the v5 protocol does, so clients fall back to SPDY.
	RejectWebSocket bool
}

// ExecServer plays the API server's pods/exec subresource on a loopback
// port: a WebSocket upgrade with the v5.channel.k8s.io protocol is served
// the way the kubelet answers it (stdout and stderr messages, then a
// metav1.Status on the error channel carrying the exit code). SPDY, the
// fallback protocol, is not simulated: such requests are refused (with the
// handler's Refuse status when it sets one, else 501), which is enough to
// see that a client falls back. Point a kube.Client at it with
// kube.Options{RESTConfig: s.RESTConfig()}. Every request is recorded.
type ExecServer struct {
	handler ExecHandler
	opts    ExecServerOptions
	lis     net.Listener
	srv     *http.Server
	served  chan struct{}

	mu       sync.Mutex
	requests []ExecRequest
}

// NewExecServer starts an ExecServer on 127.0.0.1. Close it when done.
func NewExecServer(h ExecHandler, opts ExecServerOptions) (*ExecServer, error) {
	if h == nil {
		return nil, errors.New("kubesim: exec server needs a handler")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("kubesim: exec server: %w", err)
	}
	s := &ExecServer{handler: h, opts: opts, lis: lis, served: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: execReadHeaderTimeout}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(lis) // returns http.ErrServerClosed on Close
	}()
	return s, nil
}

// RESTConfig is a plaintext, unauthenticated config for the server.
func (s *ExecServer) RESTConfig() *rest.Config {
	return &rest.Config{Host: "http://" + s.lis.Addr().String()}
}

// Requests returns every request received, in order.
func (s *ExecServer) Requests() []ExecRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Close stops the server and drops open connections.
func (s *ExecServer) Close() error {
	err := s.srv.Close()
	<-s.served
	if err != nil {
		return fmt.Errorf("kubesim: closing the exec server: %w", err)
	}
	return nil
}

func (s *ExecServer) serve(w http.ResponseWriter, r *http.Request) {
	req, err := parseExecPath(r)
	if err != nil {
		writeStatus(w, http.StatusNotFound, err.Error())
		return
	}
	req.WebSocket = websocket.IsWebSocketUpgrade(r)
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	switch {
	case req.WebSocket && s.opts.RejectWebSocket:
		writeStatus(w, http.StatusBadRequest, "kubesim: WebSocket exec is switched off (RejectWebSocket)")
		return
	case !req.WebSocket:
		if reply := s.handler(req); reply.Refuse != 0 {
			writeStatus(w, reply.Refuse, reply.Message)
			return
		}
		writeStatus(w, http.StatusNotImplemented, "kubesim: the SPDY exec protocol is not simulated")
		return
	}
	reply := s.handler(req)
	if reply.Refuse != 0 {
		writeStatus(w, reply.Refuse, reply.Message)
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{remotecommand.StreamProtocolV5Name}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}
	defer conn.Close()
	// Read (and so answer pings and see the client's close) until the
	// connection ends.
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	if err := writeExecReply(conn, reply); err != nil {
		return
	}
	select {
	case <-readDone:
	case <-time.After(execCloseWait):
	}
}

// writeExecReply sends the output and the exit status, then closes normally.
func writeExecReply(conn *websocket.Conn, reply ExecReply) error {
	send := func(kind int, data []byte) error {
		if err := conn.SetWriteDeadline(time.Now().Add(execWriteTimeout)); err != nil {
			return err
		}
		return conn.WriteMessage(kind, data)
	}
	for _, m := range []struct {
		ch   byte
		data []byte
	}{{execStdout, reply.Stdout}, {execStderr, reply.Stderr}} {
		if len(m.data) == 0 {
			continue
		}
		if err := send(websocket.BinaryMessage, append([]byte{m.ch}, m.data...)); err != nil {
			return err
		}
	}
	status, err := json.Marshal(exitStatus(reply.ExitCode))
	if err != nil {
		return err
	}
	if err := send(websocket.BinaryMessage, append([]byte{execError}, status...)); err != nil {
		return err
	}
	return send(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

// exitStatus is the kubelet's error-channel message for an exit code.
func exitStatus(code int) metav1.Status {
	if code == 0 {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	return metav1.Status{
		Status:  metav1.StatusFailure,
		Reason:  remotecommand.NonZeroExitCodeReason,
		Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(code),
		}}},
	}
}

// parseExecPath reads /api/v1/namespaces/NS/pods/POD/exec?container=C&command=...
func parseExecPath(r *http.Request) (ExecRequest, error) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 7 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "pods" || parts[6] != "exec" {
		return ExecRequest{}, fmt.Errorf("kubesim: exec server only serves /api/v1/namespaces/NS/pods/POD/exec, not %s", r.URL.Path)
	}
	q := r.URL.Query()
	return ExecRequest{Namespace: parts[3], Pod: parts[5], Container: q.Get("container"), Command: q["command"]}, nil
}

// writeStatus answers with a metav1.Status, as the API server does.
func writeStatus(w http.ResponseWriter, code int, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Code: int32(code),
		Reason: reasonFor(code),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	}
	return metav1.StatusReasonUnknown
}
