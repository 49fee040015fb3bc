package kubesim_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

// The server's wire format is checked end to end by the kube package's
// Exec tests (client-go's own executor); here: routing and refusals.
func TestExecServerRefusesWhatItDoesNotServe(t *testing.T) {
	srv, err := kubesim.NewExecServer(func(kubesim.ExecRequest) kubesim.ExecReply { return kubesim.ExecReply{} }, kubesim.ExecServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}()
	base := srv.RESTConfig().Host
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"not an exec path", http.MethodGet, "/api/v1/namespaces/demo/pods/p", http.StatusNotFound},
		{"SPDY is not simulated", http.MethodPost, "/api/v1/namespaces/demo/pods/p/exec?command=true", http.StatusNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(context.Background(), tt.method, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s %s = %d %s, want %d with a JSON Status", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.want)
			}
		})
	}
	if got := len(srv.Requests()); got != 1 {
		t.Errorf("recorded %d requests, want 1 (the exec one)", got)
	}

	// A WebSocket client that offers no v5 protocol gets none back.
	ws := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/namespaces/demo/pods/p/exec?command=true"
	conn, resp, err := websocket.DefaultDialer.DialContext(context.Background(), ws, http.Header{"Sec-WebSocket-Protocol": {"v4.channel.k8s.io"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = resp.Body.Close()
	if p := conn.Subprotocol(); p != "" {
		t.Errorf("negotiated %q with a client offering only v4", p)
	}
}
