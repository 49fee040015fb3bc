package console

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/aivo-platform/rotary/bot/blocks"
	"github.com/aivo-platform/rotary/bot/console/browsertest"
)

// TestPageInBrowser drives the page in headless Chromium against the stub
// bot, by keyboard where a person would use one: a command, a confirmed
// click, per-person ephemeral messages, a modal with its errors, a masked
// paste that leaves nothing behind, channel switching with an unread count,
// the screen-reader announcement, and a narrow window.
func TestPageInBrowser(t *testing.T) {
	h := newHarness(t)
	b := browsertest.Start(t)
	approve := `#messages article.msg:not(.ephemeral) ` + browsertest.ButtonSelector(blocks.ActionApprove)

	b.Do("open the page", browsertest.Open(h.url+"/"))
	b.Do("type a command and press Enter",
		chromedp.Focus(chromedp.CSS("#composer-input")),
		chromedp.KeyEvent("/rotate open"+kb.Enter),
		browsertest.MessageContains(true, "You used /rotate open", "Opened R-1."),
		browsertest.MessageContains(false, "Request R-1 by @Alice"),
		browsertest.Until(`document.querySelector('#live').textContent.includes('New in #secret-rotations')`),
	)
	b.Do("a button with a confirmation asks first, focusing the safe choice",
		chromedp.Click(chromedp.CSS(approve)),
		browsertest.Until(`document.querySelector('#confirm').open && document.activeElement.id === 'confirm-deny'`),
		browsertest.Until(`document.querySelector('#confirm-title').textContent === 'Approve this rotation?'`),
		chromedp.KeyEvent(kb.Escape),
		browsertest.Until(`!document.querySelector('#confirm').open`),
	)
	if _, n := h.bot.counts(); n != 0 {
		t.Fatalf("the bot got %d interactions although the confirmation was dismissed", n)
	}
	b.Do("confirm by keyboard: Tab to Approve, Enter",
		chromedp.Click(chromedp.CSS(approve)),
		browsertest.Until(`document.activeElement.id === 'confirm-deny'`),
		chromedp.KeyEvent(kb.Tab),
		browsertest.Until(`document.activeElement.id === 'confirm-ok'`),
		chromedp.KeyEvent(kb.Enter),
		browsertest.MessageContains(true, "can't approve"),
	)
	b.Do("another person does not see Alice's ephemeral messages",
		browsertest.ActAs(bob),
		browsertest.Until(`!document.querySelector('#messages').textContent.includes("can't approve")`),
		browsertest.MessageContains(false, "Request R-1"),
	)
	b.Do("Deny opens a modal for Bob, focused on its input",
		browsertest.Click("Request R-1", blocks.ActionDeny),
		browsertest.Until(`document.querySelector('#modal').open && document.activeElement.tagName === 'TEXTAREA'`),
		chromedp.Click(chromedp.CSS("#modal-submit")),
		browsertest.Until(`document.querySelector('.bk-error').textContent === 'Please complete this required field.' && `+
			`document.querySelector('#modal textarea').getAttribute('aria-invalid') === 'true'`),
		chromedp.SendKeys(chromedp.CSS("#modal textarea"), "bad"),
		chromedp.Click(chromedp.CSS("#modal-submit")),
		browsertest.Until(`document.querySelector('.bk-error').textContent === 'Say <why>, please.'`),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#modal textarea').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#modal textarea"), "launch freeze"),
		chromedp.Click(chromedp.CSS("#modal-submit")),
		browsertest.Until(`!document.querySelector('#modal').open`),
	)
	b.Do("a pasted secret is masked and gone from the page once sent",
		browsertest.ActAs(alice),
		browsertest.Click("Request R-1", blocks.ActionPrompt),
		browsertest.Until(`document.querySelector('#modal').open && document.activeElement.type === 'password'`),
		chromedp.KeyEvent(pasted+kb.Enter), // Enter in a text field submits the modal
		browsertest.Until(`!document.querySelector('#modal').open`),
	)
	if got := h.bot.lastInteraction().View.State.Values[blocks.BlockSecret][blocks.ActionSecret].Value; got != pasted {
		t.Fatalf("the bot got %q", got)
	}
	var leftovers bool
	b.Eval(`document.documentElement.outerHTML.includes(`+jsString(pasted)+`) || `+
		`Array.from(document.querySelectorAll('input, textarea')).some((i) => i.value.includes(`+jsString(pasted)+`))`, &leftovers)
	if leftovers {
		t.Fatal("the pasted value is still in the page")
	}
	b.Do("a channel-wide notice elsewhere shows as unread, then as @channel",
		browsertest.Command("/rotate announce"),
		browsertest.Until(`document.querySelector('button.chan[data-name="announcements"] .unread').textContent === '1 new'`),
		browsertest.SelectChannel("announcements"),
		browsertest.MessageContains(false, "@channel emergency rotation of jwt"),
		browsertest.Until(`document.querySelector('.mention-broadcast').textContent === '@channel'`),
	)
	b.Do("a narrow window scrolls vertically only",
		chromedp.EmulateViewport(360, 740),
		browsertest.SelectChannel("secret-rotations"),
		browsertest.Until(`document.documentElement.scrollWidth <= window.innerWidth`),
	)
	b.Screenshot("narrow")
}

func jsString(s string) string { return `"` + s + `"` } // the test's own ASCII values only
