package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/rotators/executor"
)

func decodeAudit(t *testing.T, b []byte) auditRecord {
	t.Helper()
	var rec auditRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("audit export is not JSON: %v\n%s", err, b)
	}
	return rec
}

func TestAuditExportOfflineAndFromTheRunningBot(t *testing.T) {
	h := newE2E(t)
	jc := withJWT(t, h, "emergency:\n  responders: {users: [URESPONDER]}\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.adminLn = ln
	h.withTargets(t, fmt.Sprintf("admin_listen: %s\n", ln.Addr()))
	cfgPath := filepath.Join(h.dir, "rotary.yaml")
	h.start()

	h.command(requester, "/rotate-jwt", `--emergency --reason "signing key in a public repo"`)
	id := "R-TEST0001"
	root := h.rootPosted(id)
	h.click(responder, blocks.ActionApprove, id)
	h.finished(id, root, approvals.StateSucceeded)

	// While the bot runs it holds the state file: the export asks it.
	var live bytes.Buffer
	if err := auditExport(context.Background(), cfgPath, strings.ToLower(id), &live, time.Now); err != nil {
		t.Fatalf("export from the running bot: %v", err)
	}
	rec := decodeAudit(t, live.Bytes())
	if rec.Request == nil || rec.Request.ID != id || !rec.Request.Emergency || rec.Run == nil || rec.Run.Phase != executor.PhaseDone {
		t.Fatalf("export: %+v", rec)
	}
	actions := map[string]bool{}
	for _, e := range rec.Request.Events {
		actions[e.Action] = true
	}
	for _, a := range []string{"requested", "approved", "running", "succeeded"} {
		if !actions[a] {
			t.Errorf("history lacks %q: %+v", a, rec.Request.Events)
		}
	}
	if len(rec.Run.Steps) == 0 || rec.Run.Steps[0].StartedAt.IsZero() {
		t.Errorf("steps without times: %+v", rec.Run.Steps)
	}
	if err := auditExport(context.Background(), cfgPath, "R-NOPE0001", &bytes.Buffer{}, time.Now); err == nil || !strings.Contains(err.Error(), "no request R-NOPE0001") {
		t.Errorf("unknown request through the bot: %v", err)
	}

	// Stopped, the command reads the file itself: the same history.
	h.stop()
	var offline bytes.Buffer
	if err := auditExport(context.Background(), cfgPath, id, &offline, time.Now); err != nil {
		t.Fatalf("export of a stopped bot's file: %v", err)
	}
	off := decodeAudit(t, offline.Bytes())
	if len(off.Request.Events) != len(rec.Request.Events) || len(off.Run.Steps) != len(rec.Run.Steps) {
		t.Fatalf("offline export differs: %d/%d events, %d/%d steps", len(off.Request.Events), len(rec.Request.Events), len(off.Run.Steps), len(rec.Run.Steps))
	}
	if err := auditExport(context.Background(), cfgPath, "R-NOPE0001", &bytes.Buffer{}, time.Now); err == nil || !strings.Contains(err.Error(), "no request R-NOPE0001") {
		t.Errorf("unknown request offline: %v", err)
	}
	var u usageError
	if err := auditExport(context.Background(), cfgPath, "openai", &bytes.Buffer{}, time.Now); !errors.As(err, &u) {
		t.Errorf("a target instead of an ID: %v", err)
	}
	for _, v := range []string{string(jc.original["JWT_PRIVATE_KEY"]), execOutputMarker} {
		if strings.Contains(live.String(), v) || strings.Contains(offline.String(), v) {
			t.Error("a secret value is in the audit export")
		}
	}
}
