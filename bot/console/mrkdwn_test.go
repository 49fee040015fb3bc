package console

import (
	"strings"
	"testing"
	"time"
)

// testNow is the renderer's clock in tests: 2026-03-02 09:00 UTC.
func testNow() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) }

func testRenderer() *renderer {
	return &renderer{
		users: func(id string) string {
			return map[string]string{"U01ALICE": "Alice", "U02BOB": "Bob <script>"}[id]
		},
		channels: func(id string) string { return map[string]string{"C0ROTATE": "secret-rotations"}[id] },
		anchor: func(url string) string {
			if url == "https://fake-workspace.slack.com/archives/C0ROTATE/p1700000000000100" {
				return "msg-m-C0ROTATE-1700000000-000100"
			}
			return ""
		},
		now: testNow,
		loc: time.UTC,
	}
}

func TestMrkdwn(t *testing.T) {
	const mention = `<span class="mention">@`
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "plain text", "plain text"},
		{"bold", "*bold*", "<strong>bold</strong>"},
		{"italic", "_it_", "<em>it</em>"},
		{"strike", "~gone~", "<del>gone</del>"},
		{"nested", "*bold _both_*", "<strong>bold <em>both</em></strong>"},
		{"inside a word is literal", "a*b*c and snake_case_name", "a*b*c and snake_case_name"},
		{"marker next to space is literal", "* not bold *", "* not bold *"},
		{"code span is literal", "`x *y* <@U01ALICE>`", `<code class="md-code">x *y* &lt;@U01ALICE&gt;</code>`},
		{"code span entities", "`a &lt;b&gt;`", `<code class="md-code">a &lt;b&gt;</code>`},
		{"pre block", "before\n```\nline1\n&lt;b&gt;\n```\nafter", `before<pre class="md-pre">line1` + "\n" + `&lt;b&gt;</pre>after`},
		{"unterminated fence", "a ```b", "a ```b"},
		{"line breaks", "one\ntwo", "one<br>two"},
		{"quote", "&gt; quoted\n&gt; more\nafter", `<blockquote class="md-quote">quoted<br>more</blockquote>after`},
		{"user mention", "hi <@U01ALICE>", "hi " + mention + "Alice</span>"},
		{"user name is escaped", "<@U02BOB>", mention + "Bob &lt;script&gt;</span>"},
		{"unknown user shows the ID", "<@U09NOBODY>", mention + "U09NOBODY</span>"},
		{"channel mention", "<#C0ROTATE>", `<span class="mention">#secret-rotations</span>`},
		{"channel mention with label", "<#C0OTHER|other>", `<span class="mention">#other</span>`},
		{"group mention", "<!subteam^S0APPROVERS|@approvers>", mention + "approvers</span>"},
		{"channel-wide", "<!channel> key leaked", `<span class="mention mention-broadcast">@channel</span> key leaked`},
		{"here", "<!here>", `<span class="mention mention-broadcast">@here</span>`},
		{"escaped channel-wide is text", "reason: &lt;!channel&gt;", "reason: &lt;!channel&gt;"},
		{"raw html is text", "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"entities", "a &amp; b &lt; c", "a &amp; b &lt; c"},
		{"link with label", "<https://example.com/docs|the docs>", `<a class="md-link" href="https://example.com/docs" target="_blank" rel="noopener noreferrer">the docs</a>`},
		{"link without label", "<https://example.com/a?b=1&amp;c=2>", `<a class="md-link" href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">https://example.com/a?b=1&amp;c=2</a>`},
		{"quote in a link is escaped", `<https://x.example/"onmouseover="x|y>`, `<a class="md-link" href="https://x.example/&#34;onmouseover=&#34;x" target="_blank" rel="noopener noreferrer">y</a>`},
		{"javascript is not a link", "<javascript:alert(1)|click>", "&lt;javascript:alert(1)|click&gt;"},
		{"permalink goes to the message", "<https://fake-workspace.slack.com/archives/C0ROTATE/p1700000000000100|thread>", `<a class="md-link" href="#msg-m-C0ROTATE-1700000000-000100">thread</a>`},
		{"emoji", ":white_check_mark: done", `<span class="emoji" role="img" aria-label="white check mark">✅</span> done`},
		{"unknown emoji stays", ":not_an_emoji: and 09:30:00", ":not_an_emoji: and 09:30:00"},
		{"emoji in bold", "*:key: Key*", `<strong><span class="emoji" role="img" aria-label="key">🔑</span> Key</strong>`},
		{"mention in bold", "*<@U01ALICE>*", "<strong>" + mention + "Alice</span></strong>"},
		{"date", "<!date^1772443800^{date_short_pretty} {time}|2026-03-02T09:30:00Z>", `<time datetime="2026-03-02T09:30:00Z" title="2026-03-02T09:30:00Z">today 09:30</time>`},
		{"bad date shows the fallback", "<!date^soon^{time}|fallback &amp; more>", "fallback &amp; more"},
		{"NUL is dropped", "a\x00b", "ab"},
		{"unclosed token", "a < b", "a &lt; b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := testRenderer().mrkdwn(tc.in); got != tc.want {
				t.Errorf("mrkdwn(%q)\n got: %s\nwant: %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestDateTokens(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 30, 5, 0, time.UTC) // 30 minutes after testNow
	for _, tc := range []struct{ format, want string }{
		{"{date_num}", "2026-03-02"},
		{"{date}", "March 2nd, 2026"},
		{"{date_short}", "Mar 2, 2026"},
		{"{date_long}", "Monday, March 2nd, 2026"},
		{"{date_pretty}", "today"},
		{"{date_long_pretty}", "today"},
		{"{time}", "09:30"},
		{"{time_secs}", "09:30:05"},
		{"{ago}", "in 30 minutes"},
		{"at {time} ({unknown})", "at 09:30 ({unknown})"},
		{"{unclosed", "{unclosed"},
	} {
		if got := testRenderer().formatDate(tc.format, at); got != tc.want {
			t.Errorf("formatDate(%q) = %q, want %q", tc.format, got, tc.want)
		}
	}
	r := testRenderer()
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{testNow().Add(-24 * time.Hour), "yesterday"},
		{testNow().Add(24 * time.Hour), "tomorrow"},
		{testNow().Add(72 * time.Hour), "Mar 5, 2026"},
	} {
		if got := r.formatDate("{date_short_pretty}", tc.at); got != tc.want {
			t.Errorf("{date_short_pretty} of %s = %q, want %q", tc.at, got, tc.want)
		}
	}
}

func TestAgoAndOrdinal(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "just now"},
		{time.Minute, "1 minute ago"},
		{5 * time.Minute, "5 minutes ago"},
		{3 * time.Hour, "3 hours ago"},
		{49 * time.Hour, "2 days ago"},
		{-2 * time.Hour, "in 2 hours"},
	} {
		if got := ago(testNow().Add(-tc.d), testNow()); got != tc.want {
			t.Errorf("ago(-%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 23: "23rd", 101: "101st", 111: "111th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEmojify(t *testing.T) {
	got := emojify("Rotated :key: at 10:30 :nope:")
	if !strings.Contains(got, "🔑") || !strings.Contains(got, "10:30 :nope:") {
		t.Errorf("emojify: %s", got)
	}
}
