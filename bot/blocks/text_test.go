package blocks

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEsc(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"<!channel>", "&lt;!channel&gt;"},
		{"<@U123>", "&lt;@U123&gt;"},
		{"<https://evil.example|click>", "&lt;https://evil.example|click&gt;"},
		{"a & b", "a &amp; b"},
		// Already-escaped input is escaped again: it is shown as typed, not decoded.
		{"&lt;!here&gt;", "&amp;lt;!here&amp;gt;"},
	} {
		if got := esc(tc.in); got != tc.want {
			t.Errorf("esc(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct{ name, in, want, wantLine string }{
		{"keeps text", "key leaked in CI", "key leaked in CI", "key leaked in CI"},
		{"newlines", "line 1\nline 2\r\n", "line 1\nline 2\n", "line 1 line 2"},
		{"tab", "a\tb", "a b", "a b"},
		{"controls", "a\x00b\x1bc\x7fd\u0085e", "abcde", "abcde"},
		{"bidi override", "approve\u202edeny\u2066x\u2069", "approvedenyx", "approvedenyx"},
		{"invalid utf-8", "a\xffb", "a\uFFFDb", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clean(tc.in); got != tc.want {
				t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := oneLine(tc.in); got != tc.wantLine {
				t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.wantLine)
			}
		})
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ch…"},
		{"word cut  here", 11, "word cut…"},
		{"ééééé", 3, "éé…"},
		{"🔑🔑🔑🔑", 2, "🔑…"},
		{"x", 0, ""},
	} {
		got := clip(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("clip(%q, %d) split a character", tc.in, tc.max)
		}
	}
}

func TestFitNeverSplitsEntitiesOrTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"fits", 10, "fits"},
		{"abcd&amp;efgh", 7, "abcd…"},
		{"abcd&amp;efgh", 10, "abcd&amp;…"},
		{"hi <@U01ALICE> there", 8, "hi…"},
		{"hi <@U01ALICE> there", 16, "hi <@U01ALICE>…"},
		{"at <!date^1^{date_short_pretty} {time}|2026-03-02T09:00:00Z> ok", 20, "at…"},
		{"a;b&lt;c", 6, "a;b…"},
	} {
		got := fit(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("fit(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > tc.max {
			t.Errorf("fit(%q, %d) has %d characters", tc.in, tc.max, n)
		}
	}
}

func TestMention(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"U01ALICE", "<@U01ALICE>"},
		{"W0123ABC", "<@W0123ABC>"},
		{"", "nobody"},
		{"u01alice", "`u01alice`"},
		{"U1><!channel", "`U1&gt;&lt;!channel`"},
		{"U1|x", "`U1|x`"},
		{"U", "`U`"},
		{"U" + strings.Repeat("A", 40), "`U" + strings.Repeat("A", 40) + "`"},
	} {
		if got := mention(tc.id, "nobody"); got != tc.want {
			t.Errorf("mention(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestDate(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 30, 0, 0, time.FixedZone("CET", 3600))
	want := "<!date^1772443800^{date_short_pretty} {time}|2026-03-02T09:30:00Z>"
	if got := date(at); got != want {
		t.Errorf("date = %q, want %q", got, want)
	}
	if got := date(time.Time{}); got != "—" {
		t.Errorf("date(zero) = %q, want —", got)
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "less than a minute"},
		{time.Minute, "1 minute"},
		{30 * time.Minute, "30 minutes"},
		{90 * time.Second, "2 minutes"},
		{time.Hour, "1 hour"},
		{90 * time.Minute, "1 hour 30 minutes"},
		{61 * time.Minute, "1 hour 1 minute"},
		{24 * time.Hour, "1 day"},
		{50 * time.Hour, "2 days 2 hours"},
		{-5 * time.Minute, "5 minutes"},
	} {
		if got := duration(tc.d); got != tc.want {
			t.Errorf("duration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := relative(tNow.Add(25*time.Minute), tNow); got != "in 25 minutes" {
		t.Errorf("relative future = %q", got)
	}
	if got := relative(tNow.Add(-time.Hour), tNow); got != "1 hour ago" {
		t.Errorf("relative past = %q", got)
	}
}

func TestPromptRef(t *testing.T) {
	ref := PromptRef("R-7K2M9Q", "paste_key")
	if ref != "R-7K2M9Q|paste_key" {
		t.Fatalf("PromptRef = %q", ref)
	}
	if r, p, ok := ParsePromptRef(ref); !ok || r != "R-7K2M9Q" || p != "paste_key" {
		t.Errorf("ParsePromptRef(%q) = %q, %q, %v", ref, r, p, ok)
	}
	for _, bad := range []string{"", "R-1", "R-1|", "|p", "R-1|p|q"} {
		if r, p, ok := ParsePromptRef(bad); ok {
			t.Errorf("ParsePromptRef(%q) = %q, %q, true; want rejected", bad, r, p)
		}
	}
}
