// Package browsertest drives the console page (bot/console) in a real,
// headless Chromium from Go tests, through chromedp. It is used by the
// console's own browser test and by the end-to-end `rotary try` tests.
//
// Rules:
//   - The browser is Debian's chromium (/usr/bin/chromium, or
//     ROTARY_CHROMIUM); nothing is downloaded. Without it the test is
//     skipped with a message saying how to install it, unless
//     ROTARY_REQUIRE_BROWSER=1 (CI), where it fails instead.
//   - Every wait is on a DOM condition (a selector becoming visible, or a
//     JavaScript predicate polled by the browser), never a fixed sleep.
//   - A JavaScript exception or console error on the page fails the test:
//     a broken page must not pass because the asserted text appeared anyway.
//   - It knows the page's DOM (the ids and classes of bot/console's
//     assets); change both together.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Environment variables the package reads.
const (
	// EnvChromium overrides the browser binary.
	EnvChromium = "ROTARY_CHROMIUM"
	// EnvRequire makes a missing browser a failure instead of a skip.
	EnvRequire = "ROTARY_REQUIRE_BROWSER"
	// EnvArtifacts is where screenshots go (else the test's temp dir).
	EnvArtifacts = "ROTARY_ARTIFACTS_DIR"
)

// Timeouts of browser steps.
const (
	// StepTimeout bounds one wait; a rotation with paced controllers
	// finishes well within it.
	StepTimeout = 60 * time.Second
	// startTimeout bounds the browser's start.
	startTimeout = 60 * time.Second
	// pollInterval is how often a predicate is re-evaluated.
	pollInterval = 50 * time.Millisecond
	// windowWidth and windowHeight are the browser window's size.
	windowWidth, windowHeight = 1280, 1000
)

// defaultChromium is Debian's package's binary.
const defaultChromium = "/usr/bin/chromium"

// chromium finds the browser.
func chromium() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		return p, nil
	}
	if _, err := os.Stat(defaultChromium); err == nil {
		return defaultChromium, nil
	}
	return exec.LookPath("chromium")
}

// Browser is a headless Chromium tab for one test.
type Browser struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// Start launches headless Chromium with a fresh profile and opens a tab.
// It skips t when there is no browser (see the package doc).
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := chromium()
	if err != nil {
		msg := "headless Chromium not found (" + defaultChromium + "): install it with `apt-get install -y chromium`, or set " + EnvChromium
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(msg + " (" + EnvRequire + "=1 makes this a failure)")
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(windowWidth, windowHeight),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &Browser{t: t, ctx: ctx}
	// The first run starts the browser; it must not carry a timeout (that
	// would stop the browser with it), so the start is bounded separately.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	case <-time.After(startTimeout):
		t.Fatalf("%s did not start within %s", path, startTimeout)
	}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("listen to the page: %v", err)
	}
	t.Cleanup(b.checkProblems)
	return b
}

// onEvent records exceptions and console errors of the page while the
// test runs (once it has returned, its servers stop before the browser
// does, and the page's reconnects fail as they should).
func (b *Browser) onEvent(ev any) {
	if b.t.Context().Err() != nil {
		return
	}
	var p string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		p = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			p += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, string(a.Value)+a.Description)
		}
		p = "console.error: " + strings.Join(parts, " ")
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError {
			return
		}
		p = "browser log: " + e.Entry.Text + " " + e.Entry.URL
	default:
		return
	}
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

func (b *Browser) checkProblems() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("the page reported a problem: %s", p)
	}
}

// Do runs actions, each bounded by StepTimeout, and fails the test with
// what (and a screenshot) when one fails.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	start := time.Now()
	defer func() { b.t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond)) }()
	for _, a := range actions {
		ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
		_, err := chromedp.Run(ctx, a)
		cancel()
		if err != nil {
			shot := b.Screenshot("failed-" + safeName(what))
			b.t.Fatalf("%s: %v (screenshot: %s)\npage text:\n%s", what, err, shot, b.text())
		}
	}
}

// Eval evaluates a JavaScript expression and decodes its value into out.
func (b *Browser) Eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		b.t.Fatalf("evaluate %s: decode %s: %v", expr, raw, err)
	}
}

// text is the page's visible text, for failure messages.
func (b *Browser) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// Screenshot saves a full-page PNG to $ROTARY_ARTIFACTS_DIR (or the test's
// temp dir), logs and returns its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		dir = b.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Errorf("artifacts dir: %v", err)
		return ""
	}
	ctx, cancel := context.WithTimeout(b.ctx, StepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(dir, safeName(b.t.Name()+"-"+name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
		return ""
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// --- actions on the console page ---------------------------------------------

// js quotes a Go string for a JavaScript expression.
func js(s string) string {
	b, _ := json.Marshal(s) // strings always encode
	return string(b)
}

// Open loads the page and waits until its first state arrived.
func Open(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#composer-input")),
		Until(`document.querySelector('#channel-title').textContent.length > 1`),
	)
}

// Until waits until a JavaScript expression is truthy.
func Until(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(pollInterval), chromedp.WithPollingTimeout(StepTimeout))
}

// ActAs switches the person with the page's switcher, as a person does
// (a click on their name), and waits for the composer to say so.
func ActAs(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Click(chromedp.CSS(`label[for="as-`+id+`"]`)),
		Until(`document.querySelector('input[name="as"][value=`+js(id)+`]').checked && `+
			`document.querySelector('#composer-who').textContent === document.querySelector('input[name="as"][value=`+js(id)+`]').dataset.name`),
	)
}

// Command types a slash command into the composer and presses Enter.
func Command(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Click(chromedp.CSS("#composer-input")),
		chromedp.SendKeys(chromedp.CSS("#composer-input"), text+"\r"),
		Until(`document.querySelector('#composer-input').value === ''`),
	)
}

// SelectChannel opens a channel by its name (without #).
func SelectChannel(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Click(chromedp.CSS(`button.chan[data-name=`+js(name)+`]`)),
		Until(`document.querySelector('#channel-title').textContent === `+js("#"+name)),
	)
}

// ButtonSelector selects a button by action ID in the top-level message
// whose text contains text.
func ButtonSelector(actionID string) string {
	return `button.bk-button[data-action-id=` + js(actionID) + `]`
}

// findButton is a JavaScript expression for the first enabled button with
// the action in a message whose text contains text.
func findButton(text, actionID string) string {
	return `(() => { for (const m of document.querySelectorAll('#messages article.msg')) {` +
		` if (!m.textContent.includes(` + js(text) + `)) continue;` +
		` const b = m.querySelector(` + js(ButtonSelector(actionID)) + `); if (b && !b.disabled) return b; } return null; })()`
}

// Click clicks the button with the action ID in the message containing
// text, waiting for it first.
func Click(text, actionID string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		Until(findButton(text, actionID)+` !== null`),
		chromedp.Evaluate[chromedp.Void](findButton(text, actionID)+`.click()`),
	)
}

// Confirm presses the confirmation dialog's confirm button.
func Confirm() chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		Until(`document.querySelector('#confirm').open`),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		Until(`!document.querySelector('#confirm').open`),
	)
}

// MessageContains waits for a message (or reply) in the open channel whose
// text contains all of the parts; ephemeral restricts it to ephemeral ones.
func MessageContains(ephemeral bool, parts ...string) chromedp.Action[chromedp.Void] {
	sel := "#messages article.msg"
	if ephemeral {
		sel += ".ephemeral"
	}
	list, _ := json.Marshal(parts)
	return Until(fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).some((m) => %s.every((p) => m.textContent.includes(p)))`, js(sel), list))
}
