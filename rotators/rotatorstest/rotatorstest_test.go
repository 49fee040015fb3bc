package rotatorstest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

var testSpec = rotators.Spec{RequestID: "R0001", Target: "t", Env: "prod", Emergency: true}

func TestIdentity(t *testing.T) {
	r := rotatorstest.New(testSpec)
	got := []string{r.RequestID(), r.Target(), r.Env(), r.Requester(), r.Approver()}
	want := []string{"R0001", "t", "prod", rotatorstest.DefaultRequester, rotatorstest.DefaultApprover}
	if !slices.Equal(got, want) || !r.Emergency() {
		t.Errorf("identity = %v emergency=%v, want %v true", got, r.Emergency(), want)
	}
	r.RequesterID, r.ApproverID = "U9", "U8"
	if r.Requester() != "U9" || r.Approver() != "U8" {
		t.Errorf("people = %s %s, want U9 U8", r.Requester(), r.Approver())
	}
	if !r.Now().Equal(rotatorstest.DefaultNow) {
		t.Errorf("now = %s, want %s", r.Now(), rotatorstest.DefaultNow)
	}
	later := rotatorstest.DefaultNow.Add(time.Hour)
	r.SetNow(later)
	if !r.Now().Equal(later) {
		t.Errorf("now after SetNow = %s, want %s", r.Now(), later)
	}
}

func TestRecord(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name                string
		onRecord, after     func(key, value string) error
		wantErr             error
		wantFact            string
		wantRecords, wantOn []string
	}{
		{name: "plain", wantFact: "v", wantRecords: []string{"a", "k"}},
		{
			name:     "before hook sees it first",
			onRecord: func(key, value string) error { return nil },
			wantFact: "v", wantRecords: []string{"a", "k"},
		},
		{
			name:     "before hook fails: not stored",
			onRecord: failOn("k", errBoom),
			wantErr:  errBoom, wantFact: "", wantRecords: []string{"a"},
		},
		{
			name:    "after hook fails: stored",
			after:   failOn("k", errBoom),
			wantErr: errBoom, wantFact: "v", wantRecords: []string{"a", "k"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rotatorstest.New(testSpec)
			var seen []string
			if tt.onRecord != nil {
				r.OnRecord = func(key, value string) error {
					// The hook runs before the fact is stored.
					if r.Fact(key) != "" {
						t.Errorf("OnRecord(%s) ran after the fact was stored", key)
					}
					seen = append(seen, key+"="+value)
					return tt.onRecord(key, value)
				}
			}
			r.AfterRecord = tt.after
			if err := r.Record(t.Context(), "a", "1"); err != nil {
				t.Fatal(err)
			}
			err := r.Record(t.Context(), "k", "v")
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Record err = %v, want %v", err, tt.wantErr)
			}
			if got := r.Fact("k"); got != tt.wantFact {
				t.Errorf("fact k = %q, want %q", got, tt.wantFact)
			}
			if got := r.Records(); !slices.Equal(got, tt.wantRecords) {
				t.Errorf("records = %v, want %v", got, tt.wantRecords)
			}
			if tt.onRecord != nil && !slices.Equal(seen, []string{"a=1", "k=v"}) {
				t.Errorf("OnRecord saw %v", seen)
			}
		})
	}
}

func TestSetAndDeleteFact(t *testing.T) {
	r := rotatorstest.New(testSpec)
	r.SetFact("x", "1")
	if r.Fact("x") != "1" || len(r.Records()) != 0 {
		t.Errorf("SetFact: fact=%q records=%v, want 1 and none", r.Fact("x"), r.Records())
	}
	facts := r.Facts()
	facts["x"] = "changed"
	if r.Fact("x") != "1" {
		t.Error("Facts returned the run's own map")
	}
	r.DeleteFact("x")
	if r.Fact("x") != "" || len(r.Facts()) != 0 {
		t.Errorf("after DeleteFact: %v", r.Facts())
	}
}

func TestAsk(t *testing.T) {
	p := rotators.Prompt{ID: "paste", Label: "Paste it", Button: "Go"}
	r := rotatorstest.New(testSpec)
	if _, err := r.Ask(t.Context(), p); !errors.Is(err, rotatorstest.ErrNoAnswer) {
		t.Errorf("Ask without Answer: err = %v, want ErrNoAnswer", err)
	}
	r.Answer = func(_ context.Context, got rotators.Prompt) (secret.Value, error) {
		return secret.FromString("answer to " + got.ID), nil
	}
	v, err := r.Ask(t.Context(), p)
	if err != nil || string(v.Reveal()) != "answer to paste" {
		t.Errorf("Ask = %q, %v", v.Reveal(), err)
	}
	if got := r.Prompts(); len(got) != 2 || got[0] != p || got[1] != p {
		t.Errorf("prompts = %v, want the prompt twice", got)
	}
}

func TestRestarted(t *testing.T) {
	r := rotatorstest.New(testSpec)
	ctx := t.Context()
	r.Answer = func(context.Context, rotators.Prompt) (secret.Value, error) { return secret.FromString("a"), nil }
	r.OnRecord = func(string, string) error { return errors.New("crash") }
	r.AfterRecord = func(string, string) error { return errors.New("crash") }
	r.SetFact("f", "1")
	r.KeepSecret("s", secret.FromString("hush"))
	r.Progress(ctx, "line 1")
	if _, err := r.Ask(ctx, rotators.Prompt{ID: "p"}); err != nil {
		t.Fatal(err)
	}
	r.Log().Info("before")
	r.SetNow(rotatorstest.DefaultNow.Add(time.Minute))

	g := r.Restarted()
	if _, ok := g.Secret("s"); ok {
		t.Error("a memory-only secret survived the restart")
	}
	if _, ok := r.Secret("s"); !ok {
		t.Error("the restart dropped the old run's secret")
	}
	if g.Fact("f") != "1" || !g.Now().Equal(r.Now()) || g.Answer == nil {
		t.Errorf("restart lost facts %v, clock %s or Answer", g.Facts(), g.Now())
	}
	if err := g.Record(ctx, "g", "2"); err != nil {
		t.Errorf("a record hook survived the restart: %v", err)
	}
	if r.Fact("g") != "" {
		t.Error("the restarted run shares the old run's facts")
	}
	g.Progress(ctx, "line 2")
	g.Log().Info("after")
	if got := g.ProgressLines(); !slices.Equal(got, []string{"line 1", "line 2"}) {
		t.Errorf("progress = %v", got)
	}
	if got := g.ProgressText(); got != "line 1\nline 2" {
		t.Errorf("progress text = %q", got)
	}
	if len(g.Prompts()) != 1 {
		t.Errorf("prompts = %v, want the one asked before the restart", g.Prompts())
	}
	if log := r.LogText(); !strings.Contains(log, `"before"`) || !strings.Contains(log, `"after"`) {
		t.Errorf("the log does not carry on across the restart: %s", log)
	}
}

func TestTexts(t *testing.T) {
	r := rotatorstest.New(testSpec)
	ctx := t.Context()
	r.Progress(ctx, "progress-line")
	r.SetFact("fact-key", "fact-value")
	_, _ = r.Ask(ctx, rotators.Prompt{Label: "prompt-label", Button: "prompt-button"})
	r.Log().Debug("log-message")
	all := strings.Join(r.Texts(), "\n")
	for _, want := range []string{"progress-line", "fact-key=fact-value", "prompt-label", "prompt-button", "log-message"} {
		if !strings.Contains(all, want) {
			t.Errorf("texts lack %q:\n%s", want, all)
		}
	}
}

// A step and its goroutines may use the run at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	r := rotatorstest.New(testSpec)
	ctx := t.Context()
	const workers = 8
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			key := string(rune('a' + i))
			_ = r.Record(ctx, key, "v")
			r.KeepSecret(key, secret.FromString("s"))
			r.Progress(ctx, key)
			_, _ = r.Ask(ctx, rotators.Prompt{ID: key})
			r.Log().Info("worker", "key", key)
			_ = r.Texts()
			_ = r.Now()
		})
	}
	wg.Wait()
	if len(r.Records()) != workers || len(r.ProgressLines()) != workers || len(r.Prompts()) != workers {
		t.Errorf("records=%d progress=%d prompts=%d, want %d each",
			len(r.Records()), len(r.ProgressLines()), len(r.Prompts()), workers)
	}
}

// failOn is a record hook failing with err for key only.
func failOn(key string, err error) func(string, string) error {
	return func(k, _ string) error {
		if k == key {
			return err
		}
		return nil
	}
}

func TestCreds(t *testing.T) {
	c := rotatorstest.Creds{"A": "value-a"}
	if v, err := c.Lookup("A"); err != nil || string(v.Reveal()) != "value-a" {
		t.Errorf("Lookup(A) = %q, %v", v.Reveal(), err)
	}
	if _, err := c.Lookup("B"); err == nil || !strings.Contains(err.Error(), "B") {
		t.Errorf("Lookup(B) err = %v, want one naming B", err)
	}
}

// leakT records failures instead of failing the test, so AssertNoLeak's
// verdict can be checked.
type leakT struct {
	testing.TB
	failed []string
}

func (l *leakT) Helper()                        {}
func (l *leakT) Errorf(format string, a ...any) { l.failed = append(l.failed, format) }

func TestAssertNoLeak(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		texts  []string
		fails  int
	}{
		{name: "clean", values: []string{"hunter2"}, texts: []string{"nothing here"}},
		{name: "empty value ignored", values: []string{""}, texts: []string{"anything"}},
		{name: "leak", values: []string{"hunter2"}, texts: []string{"ok", "pw=hunter2"}, fails: 1},
		{name: "two leaks", values: []string{"a1b2", "c3d4"}, texts: []string{"a1b2 c3d4"}, fails: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &leakT{TB: t}
			rotatorstest.AssertNoLeak(l, tt.values, tt.texts...)
			if len(l.failed) != tt.fails {
				t.Errorf("failures = %d, want %d", len(l.failed), tt.fails)
			}
		})
	}
}
