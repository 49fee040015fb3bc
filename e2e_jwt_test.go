package main

// End-to-end runs of the JWT kind from Slack: the scheduled removal of the
// old public key (across restarts, exactly once), the emergency path with
// its channel-wide alert and session invalidation, break-glass with its
// review and escalation, and `/rotate rollback`.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aivo-platform/rotary/approvals"
	"github.com/aivo-platform/rotary/approvals/boltstore"
	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/executor"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

const jwtTarget = `
  jwt:
    kind: jwt
    approvers:
      prod: {users: [UAPPROVER]}
    namespace: aivo-{env}
    deployment: auth-svc
    rollout_timeout: 5s
    token_lifetime: 0s
    grace_period: 24h
    key_bits: 2048
    sync_timeout: 5s
`

const responder = "URESPONDER"

// jwtCluster is the JWT part of the simulated cluster.
type jwtCluster struct {
	exec   *kubesim.ExecServer
	oldKey *rsa.PrivateKey
	// original is the Secret's data before any rotation.
	original map[string][]byte
}

// withJWT adds auth-svc, its ready pod, the jwt-keys Secret holding a first
// key pair, and an exec endpoint that plays the pods' kubelet.
func withJWT(t *testing.T, h *e2e, extraConfig string) *jwtCluster {
	t.Helper()
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{
		"JWT_PRIVATE_KEY": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		"JWT_PUBLIC_KEY":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"JWT_KEY_ID":      []byte("0123456789abcdef"),
	}
	if _, err := h.cs.CoreV1().Secrets("aivo-prod").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "jwt-keys", Namespace: "aivo-prod"}, Data: data,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "auth-svc"}
	if _, err := h.cs.AppsV1().Deployments("aivo-prod").Create(ctx, kubesim.NewDeployment("aivo-prod", "auth-svc", 2, labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cs.CoreV1().Pods("aivo-prod").Create(ctx, kubesim.NewReadyPod("aivo-prod", "auth-svc-abc", labels, metav1.NewTime(h.clock.Now())), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	es, err := kubesim.NewExecServer(func(kubesim.ExecRequest) kubesim.ExecReply {
		// The session store's answer could hold anything: rotary must count it, never show it.
		return kubesim.ExecReply{Stdout: []byte("invalidated 1234 sessions; admin token " + execOutputMarker)}
	}, kubesim.ExecServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	h.kube = kube.New(h.cs, h.dyn, kube.Options{Now: h.clock.Now, PollInterval: 10 * time.Millisecond, RESTConfig: es.RESTConfig()})
	h.withTargets(t, jwtTarget+extraConfig)
	return &jwtCluster{exec: es, oldKey: key, original: data}
}

// execOutputMarker stands for whatever a command prints: it must never leave the process.
const execOutputMarker = "EXEC-OUTPUT-7f3a9c"

func (h *e2e) jwtSecret() map[string][]byte {
	h.t.Helper()
	s, err := h.cs.CoreV1().Secrets("aivo-prod").Get(context.Background(), "jwt-keys", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return s.Data
}

// signToken signs a token with key under kid, as auth-svc does.
func signToken(t *testing.T, key *rsa.PrivateKey, kid string) string {
	t.Helper()
	tok := gojwt.NewWithClaims(gojwt.SigningMethodRS256, gojwt.MapClaims{"sub": "user-1"})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verifies reports whether token verifies against the Secret the way
// auth-svc verifies: the current public key for the current kid, else the
// old public key while there is one.
func verifies(t *testing.T, data map[string][]byte, token string) bool {
	t.Helper()
	_, err := gojwt.Parse(token, func(tok *gojwt.Token) (any, error) {
		pemKey := data["JWT_PUBLIC_KEY"]
		if kid, _ := tok.Header["kid"].(string); kid != string(data["JWT_KEY_ID"]) {
			pemKey = data["JWT_PUBLIC_KEY_OLD"]
		}
		if len(pemKey) == 0 {
			return nil, errors.New("no key for this kid")
		}
		return gojwt.ParseRSAPublicKeyFromPEM(pemKey)
	}, gojwt.WithValidMethods([]string{"RS256"}))
	return err == nil
}

// privateKeyOf parses the Secret's current private key.
func privateKeyOf(t *testing.T, data map[string][]byte) *rsa.PrivateKey {
	t.Helper()
	k, err := gojwt.ParseRSAPrivateKeyFromPEM(data["JWT_PRIVATE_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// countCalls counts chat.postMessage calls in the thread containing substr.
func (h *e2e) countReplies(rootTS, substr string) int {
	n := 0
	for _, c := range h.slack.CallsTo("chat.postMessage") {
		if c.ThreadTS == rootTS && !c.Failed && (strings.Contains(c.Text, substr) || strings.Contains(string(c.Blocks), substr)) {
			n++
		}
	}
	return n
}

// journal reads request id's journal: from the running app, or from the
// state file when it is stopped.
func (h *e2e) journal(id string) *executor.Run {
	h.t.Helper()
	store := h.app.store
	if h.cancel == nil {
		s, err := boltstore.Open(h.statePath, boltstore.Options{})
		if err != nil {
			h.t.Fatal(err)
		}
		defer s.Close()
		store = s
	}
	run, err := store.LoadRun(context.Background(), id)
	if err != nil || run == nil {
		h.t.Fatalf("journal of %s: %v %v", id, run, err)
	}
	return run
}

func TestE2EJWTScheduledRemovalSurvivesRestartAndRunsOnce(t *testing.T) {
	h := newE2E(t)
	jc := withJWT(t, h, "")
	h.start()

	text := h.command(requester, "/rotate-jwt", `--reason "quarterly"`)
	if !strings.Contains(text, "Opened") {
		t.Fatalf("open: %s", text)
	}
	id := "R-TEST0001"
	root := h.rootPosted(id)
	h.click(approver, blocks.ActionApprove, id)
	r := h.finished(id, root, approvals.StateSucceeded)
	if !strings.Contains(r.Outcome, "scheduled") {
		t.Errorf("outcome %q does not say what is still scheduled", r.Outcome)
	}

	data := h.jwtSecret()
	oldToken := signToken(t, jc.oldKey, "0123456789abcdef")
	if string(data["JWT_KEY_ID"]) == "0123456789abcdef" || len(data["JWT_KEY_ID"]) != 16 {
		t.Fatalf("key id after rotation: %q", data["JWT_KEY_ID"])
	}
	newKey := privateKeyOf(t, data)
	newToken := signToken(t, newKey, string(data["JWT_KEY_ID"]))
	if !verifies(t, data, oldToken) || !verifies(t, data, newToken) {
		t.Fatal("during the grace period both the old and the new key's tokens must verify")
	}
	backups, err := h.cs.CoreV1().Secrets("aivo-prod").List(context.Background(), metav1.ListOptions{LabelSelector: "rotary.aivo.io/backup-of=jwt-keys"})
	if err != nil || len(backups.Items) != 1 || string(backups.Items[0].Data["JWT_KEY_ID"]) != "0123456789abcdef" {
		t.Fatalf("backup Secret: %+v %v", backups, err)
	}
	h.threadReply(root, "Scheduled follow-up")
	status := h.command(requester, "/rotate", "status "+id)
	_ = status // the ephemeral text is the fallback; the blocks carry the follow-up line
	run := h.journal(id)
	fu, ok := run.FollowUp("remove_old_public_key")
	if !ok || fu.Status != executor.FollowUpScheduled || fu.DueAt.Sub(r.FinishedAt) < 23*time.Hour {
		t.Fatalf("follow-up after the rotation: %+v", run.FollowUps)
	}

	// A restart before it is due changes nothing.
	h.stop()
	h.start()
	if got := h.jwtSecret(); len(got["JWT_PUBLIC_KEY_OLD"]) == 0 {
		t.Fatal("the old public key was removed before the grace period ended")
	}
	h.stop()

	// The bot is down when it falls due; it runs on the next start.
	h.clock.Advance(25 * time.Hour)
	h.start()
	h.threadReply(root, "done.")
	h.waitCalls("old key gone", func([]slackfake.Call) bool { return len(h.jwtSecret()["JWT_PUBLIC_KEY_OLD"]) == 0 })
	data = h.jwtSecret()
	if verifies(t, data, oldToken) {
		t.Fatal("a token signed with the old key still verifies after the grace period")
	}
	if !verifies(t, data, newToken) {
		t.Fatal("a token signed with the new key no longer verifies")
	}
	h.stop()

	// Another restart, later still: it never runs again.
	h.clock.Advance(48 * time.Hour)
	h.start()
	h.stop()
	run = h.journal(id)
	fu, _ = run.FollowUp("remove_old_public_key")
	started := 0
	for _, e := range fu.History {
		if e.Action == executor.ActionStarted {
			started++
		}
	}
	if fu.Status != executor.FollowUpDone || started != 1 || h.countReplies(root, "done.") != 1 {
		t.Fatalf("follow-up ran %d times (status %s, %d done replies)", started, fu.Status, h.countReplies(root, "done."))
	}
	h.assertNoLeak(string(jc.original["JWT_PRIVATE_KEY"]), string(data["JWT_PRIVATE_KEY"]), execOutputMarker)
}

func TestE2EJWTEmergency(t *testing.T) {
	h := newE2E(t)
	jc := withJWT(t, h, "emergency:\n  responders: {users: [URESPONDER]}\n")
	h.slack.AddUser(responder, "responder")
	h.start()

	text := h.command(requester, "/rotate-jwt", "--emergency")
	if !strings.Contains(text, "An emergency needs a reason") {
		t.Fatalf("emergency without reason: %s", text)
	}
	text = h.command(requester, "/rotate-jwt", `--emergency --reason "signing key in a public repo"`)
	if !strings.Contains(text, "EMERGENCY") {
		t.Fatalf("open: %s", text)
	}
	id := "R-TEST0001"
	root := h.rootPosted(id)
	// The channel-wide alert, in both channels, outside the thread.
	h.waitCalls("@channel alerts", func(cs []slackfake.Call) bool {
		seen := map[string]bool{}
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.ThreadTS == "" && strings.HasPrefix(c.Text, "<!channel>") && strings.Contains(c.Text, "signing key in a public repo") {
				seen[c.Channel] = true
			}
		}
		return seen[requestChannel] && seen[announce]
	})
	// The request shows the emergency plan, not the ordinary one's grace period.
	for _, c := range h.slack.CallsTo("chat.postMessage") {
		if c.ThreadTS == "" && c.Channel == requestChannel && strings.Contains(string(c.Blocks), "Rotation request") {
			t.Fatalf("an emergency posted as an ordinary request: %s", c.Blocks)
		}
	}
	h.waitCalls("the emergency plan's notes", func(cs []slackfake.Call) bool {
		for _, c := range cs {
			if c.ThreadTS == "" && c.Channel == requestChannel && strings.Contains(string(c.Blocks), "no grace period") {
				return !strings.Contains(string(c.Blocks), "for 24h")
			}
		}
		return false
	})
	if r := h.request(id); r.ExpiresAt.Sub(r.CreatedAt) != 15*time.Minute {
		t.Fatalf("emergency TTL %s, want 15m", r.ExpiresAt.Sub(r.CreatedAt))
	}
	// The requester still cannot approve; a responder can.
	h.click(requester, blocks.ActionApprove, id)
	h.ephemeral(requester, "can't approve")
	h.click(responder, blocks.ActionApprove, id)
	h.finished(id, root, approvals.StateSucceeded)

	data := h.jwtSecret()
	if _, ok := data["JWT_PUBLIC_KEY_OLD"]; ok {
		t.Fatal("an emergency rotation kept the compromised public key")
	}
	if verifies(t, data, signToken(t, jc.oldKey, "0123456789abcdef")) {
		t.Fatal("a token signed with the compromised key still verifies")
	}
	reqs := jc.exec.Requests()
	if len(reqs) != 1 || reqs[0].Pod != "auth-svc-abc" || strings.Join(reqs[0].Command, " ") != "npm run invalidate-all-sessions" {
		t.Fatalf("session invalidation execs: %+v", reqs)
	}
	es, err := h.dyn.Resource(esGVR).Namespace("aivo-prod").Get(context.Background(), "external-services", metav1.GetOptions{})
	if err != nil || es.GetAnnotations()["force-sync"] == "" {
		t.Fatalf("the namespace's ExternalSecret was not force-synced: %v %v", es, err)
	}
	if run := h.journal(id); len(run.FollowUps) != 0 {
		t.Fatalf("an emergency scheduled follow-ups: %+v", run.FollowUps)
	}
	h.threadReply(root, "Incident timeline")
	h.assertNoLeak(string(jc.original["JWT_PRIVATE_KEY"]), string(data["JWT_PRIVATE_KEY"]), execOutputMarker)
}

func TestE2EBreakGlassStartsAtOnceAndEscalatesUntilReviewed(t *testing.T) {
	h := newE2E(t)
	withJWT(t, h, `emergency:
  responders: {users: [URESPONDER, UAPPROVER2]}
  break_glass: {enabled: true, users: [URESPONDER], review_within: 5m, max_escalations: 2, escalate_to: {groups: [S0SECURITY]}}
`)
	h.slack.AddUser(responder, "responder")
	h.start()

	text := h.command(responder, "/rotate-jwt", `--emergency --reason "key leaked"`)
	if !strings.Contains(text, "break-glass") {
		t.Fatalf("open: %s", text)
	}
	id := "R-TEST0001"
	root := h.rootPosted(id)
	r := h.finished(id, root, approvals.StateSucceeded)
	if !r.BreakGlass || r.DecidedBy != responder || r.Review == nil || r.Review.By != "" {
		t.Fatalf("break-glass request %+v", r)
	}

	alerts := func() int {
		n := 0
		for _, c := range h.slack.CallsTo("chat.postMessage") {
			if c.Channel == requestChannel && strings.HasPrefix(c.Text, "<!channel>") && strings.Contains(c.Text, "has not been reviewed") {
				n++
			}
		}
		return n
	}
	h.app.sweepOnce(context.Background())
	if alerts() != 0 {
		t.Fatal("escalated before the review deadline")
	}
	h.clock.Advance(6 * time.Minute)
	h.app.sweepOnce(context.Background())
	h.waitCalls("the escalation", func([]slackfake.Call) bool { return alerts() == 1 })

	// The one who broke glass cannot review it; an outsider cannot either.
	h.click(responder, blocks.ActionReview, id)
	h.ephemeral(responder, "can't review")
	h.click(outsider, blocks.ActionReview, id)
	h.ephemeral(outsider, "not an approver")
	h.click(approver2, blocks.ActionReview, id)
	h.threadReply(root, "reviewed this break-glass rotation")
	if r := h.request(id); r.Review.By != approver2 {
		t.Fatalf("review %+v", r.Review)
	}
	// Reviewed: no more escalations.
	h.clock.Advance(time.Hour)
	h.app.sweepOnce(context.Background())
	h.stop()
	if alerts() != 1 {
		t.Fatalf("%d escalations after the review, want 1", alerts())
	}
}

func TestE2EJWTRollbackRequestRestoresTheBackup(t *testing.T) {
	h := newE2E(t)
	jc := withJWT(t, h, "")
	h.start()

	h.command(requester, "/rotate-jwt", `--reason "quarterly"`)
	id := "R-TEST0001"
	root := h.rootPosted(id)
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, root, approvals.StateSucceeded)

	if text := h.command(requester, "/rotate", "rollback R-NOPE0001"); !strings.Contains(text, "R-NOPE0001") {
		t.Fatalf("rollback of an unknown request: %s", text)
	}
	text := h.command(requester, "/rotate", `rollback `+id+` --reason "mobile clients fail"`)
	if !strings.Contains(text, "rollback of *"+id+"*") {
		t.Fatalf("rollback: %s", text)
	}
	rb := "R-TEST0002"
	rbRoot := h.rootPosted(rb)
	h.click(requester, blocks.ActionApprove, rb)
	h.ephemeral(requester, "can't approve")
	h.click(approver, blocks.ActionApprove, rb)
	h.finished(rb, rbRoot, approvals.StateSucceeded)

	data := h.jwtSecret()
	for k, v := range jc.original {
		if string(data[k]) != string(v) {
			t.Errorf("%s after the rollback differs from before the rotation", k)
		}
	}
	if _, ok := data["JWT_PUBLIC_KEY_OLD"]; ok {
		t.Error("the rollback left JWT_PUBLIC_KEY_OLD")
	}
	// The rotation's scheduled removal is cancelled: it must not fire after the restore.
	fu, _ := h.journal(id).FollowUp("remove_old_public_key")
	if fu.Status != executor.FollowUpCancelled {
		t.Fatalf("follow-up of the rolled-back rotation: %s", fu.Status)
	}
	// Once is enough.
	if text := h.command(requester, "/rotate", "rollback "+id); strings.Contains(text, "Opened") {
		t.Fatalf("second rollback of the same rotation: %s", text)
	}
}

func TestE2EFollowUpButtons(t *testing.T) {
	h := newE2E(t)
	withJWT(t, h, "")
	h.start()
	h.command(requester, "/rotate-jwt", `--reason "quarterly"`)
	id := "R-TEST0001"
	root := h.rootPosted(id)
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, root, approvals.StateSucceeded)
	h.threadReply(root, "Scheduled follow-up")
	ref := blocks.PromptRef(id, "remove_old_public_key")

	// Only the requester or an approver; the button's value decides nothing.
	h.click(outsider, blocks.ActionFollowUpNow, ref)
	h.ephemeral(outsider, "Only the requester or an approver")
	h.click(requester, blocks.ActionFollowUpNow, blocks.PromptRef(id, "no_such_follow_up"))
	h.ephemeral(requester, "remove_old_public_key")

	before := h.journal(id)
	fu, _ := before.FollowUp("remove_old_public_key")
	h.click(approver, blocks.ActionFollowUpPostpone, ref)
	h.threadReply(root, "postponed")
	after, _ := h.journal(id).FollowUp("remove_old_public_key")
	if d := after.DueAt.Sub(fu.DueAt); d != 24*time.Hour {
		t.Fatalf("postponed by %s, want the grace period (24h)", d)
	}

	h.click(requester, blocks.ActionFollowUpNow, ref)
	h.threadReply(root, "done.")
	h.waitCalls("old key gone", func([]slackfake.Call) bool { return len(h.jwtSecret()["JWT_PUBLIC_KEY_OLD"]) == 0 })
	h.click(requester, blocks.ActionFollowUpNow, ref)
	h.ephemeral(requester, "already")
}

// TestE2ERollbackRefusedForKindsThatCannotRevert: an API-key rotation revoked
// the old key, so `/rotate rollback` must not put it back (and revoke the
// working one): it is refused before anyone is asked to approve it.
func TestE2ERollbackRefusedForKindsThatCannotRevert(t *testing.T) {
	h := newE2E(t)
	h.start()
	id, root := h.open("openai")
	h.click(approver, blocks.ActionApprove, id)
	h.finished(id, root, approvals.StateSucceeded)
	text := h.command(requester, "/rotate", "rollback "+id)
	if !strings.Contains(text, "cannot roll back a finished rotation") {
		t.Fatalf("rollback of an API-key rotation: %s", text)
	}
	if rs, _ := h.app.service.ListOpen(context.Background()); len(rs) != 0 {
		t.Fatalf("a refused rollback opened %d requests", len(rs))
	}
}
