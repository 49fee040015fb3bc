package main

// Leak-scan scenarios of the kinds that rotate against real servers
// (started by test/services.sh; skipped with a message without them).

import (
	"net/url"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
)

func leakDatabase(t *testing.T, h *e2e, scan *leakScan) []string {
	const oldPassword = "leak-OLD-Pa55/word+="
	pg := h.withPostgres(t, "leak", oldPassword)
	h.start()
	id, rootTS := h.open("database")
	h.click(approver, blocks.ActionApprove, id)
	ref := blocks.PromptRef(id, "retire_now")
	h.waitCalls("drop-old-role button", func([]slackfake.Call) bool { return h.threadHas(rootTS, ref) })
	scan.scrape(t, h)
	h.click(approver, blocks.ActionPrompt, ref)
	h.finished(id, rootTS, approvals.StateSucceeded)
	values := []string{oldPassword, pg.admin, pg.adminPassword}
	// The new DSN and its password are among the Secret Manager payloads;
	// the password alone is scanned too.
	for _, v := range h.gsm.Payloads() {
		if pu, err := url.Parse(string(v)); err == nil {
			if pw, ok := pu.User.Password(); ok {
				values = append(values, pw)
			}
		}
	}
	return values
}

func leakRedis(t *testing.T, h *e2e, scan *leakScan) []string {
	addr := startPrivateRedis(t)
	const adminPassword, oldPassword = "leak-admin-Pa55+/=", "leak-app-OLD-pa55word&?"
	h.withRedisACL(t, addr, adminPassword, oldPassword)
	h.start()
	id, rootTS := h.open("redis")
	h.click(approver, blocks.ActionApprove, id)
	scan.scrape(t, h)
	h.finished(id, rootTS, approvals.StateSucceeded)
	return append(secretData(t, h, everyKey), oldPassword, adminPassword)
}
