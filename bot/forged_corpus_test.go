package bot

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The hostile-request corpus: at least forgedCorpusSize requests that are
// forged, tampered, replayed, stale, truncated, malformed or oversized,
// generated deterministically from forgedCorpusSeed. None may get past the
// verifier: the handler behind it must never run.
const (
	forgedCorpusSeed = 0xF0_12_6E_D5
	forgedCorpusSize = 10_000
	// oversizedOneIn: oversized bodies are big, so they are a small share.
	oversizedOneIn = 50
)

// forgery is one hostile request and the status it must get.
type forgery struct {
	kind string
	body string
	hd   http.Header
	want int
}

// corpus generates hostile requests from one seeded source. Bodies are
// realistic slash commands and interaction payloads.
type corpus struct {
	rng *rand.Rand
	now time.Time
}

func (c *corpus) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[c.rng.IntN(len(digits))]
	}
	return string(b)
}

func (c *corpus) word() string {
	words := []string{"openai", "stripe", "list", "status", "cancel", "--env", "prod", "--reason", `"quarterly"`, "R-ABCD2345", "help", "<!channel>", "&amp;", "ü", "\x00"}
	return words[c.rng.IntN(len(words))]
}

func (c *corpus) body() string {
	if c.rng.IntN(2) == 0 {
		var text []string
		for range 1 + c.rng.IntN(5) {
			text = append(text, c.word())
		}
		return url.Values{
			"command": {"/rotate"}, "text": {strings.Join(text, " ")}, "user_id": {"U" + strings.ToUpper(c.hex(8))},
			"channel_id": {requestChannel}, "team_id": {"T0FAKE"}, "trigger_id": {c.hex(12)},
		}.Encode()
	}
	payload := fmt.Sprintf(`{"type":"block_actions","user":{"id":"U%s"},"trigger_id":"%s","actions":[{"action_id":"rotary_approve","value":"R-%s"}]}`,
		strings.ToUpper(c.hex(8)), c.hex(12), strings.ToUpper(c.hex(8)))
	return url.Values{"payload": {payload}}.Encode()
}

// freshTS is a timestamp inside the 5-minute window.
func (c *corpus) freshTS() time.Time {
	return c.now.Add(time.Duration(c.rng.IntN(240)-120) * time.Second)
}

// outsideTS is a timestamp more than 5 minutes away, in the past or future.
func (c *corpus) outsideTS() time.Time {
	d := replayWindow + 5*time.Second + time.Duration(c.rng.Int64N(int64(30*24*time.Hour)))
	if c.rng.IntN(2) == 0 {
		d = -d
	}
	return c.now.Add(d)
}

// next returns a hostile request of the i-th kind in rotation.
func (c *corpus) next(i int) forgery {
	body := c.body()
	valid := sign(signingSecret, body, c.freshTS())
	switch i % 11 {
	case 0:
		hd := valid.Clone()
		hd.Set("X-Slack-Signature", "v0="+c.hex(64))
		return forgery{"random signature", body, hd, http.StatusUnauthorized}
	case 1:
		return forgery{"signed with another secret", body, sign(c.hex(32), body, c.freshTS()), http.StatusUnauthorized}
	case 2:
		other := c.body()
		hd := sign(signingSecret, other, c.freshTS())
		return forgery{"signature of another body", body, hd, http.StatusUnauthorized}
	case 3:
		b := []byte(body)
		switch c.rng.IntN(3) {
		case 0:
			b[c.rng.IntN(len(b))] ^= byte(1 + c.rng.IntN(255))
		case 1:
			b = append(b, "&user_id=UADMIN"...)
		default:
			b = append([]byte("a=1&"), b...)
		}
		return forgery{"tampered body", string(b), valid, http.StatusUnauthorized}
	case 4:
		return forgery{"stale or future timestamp, correctly signed", body, sign(signingSecret, body, c.outsideTS()), http.StatusUnauthorized}
	case 5:
		cut := c.rng.IntN(len(body))
		return forgery{"truncated body", body[:cut], valid, http.StatusUnauthorized}
	case 6:
		hd := valid.Clone()
		s := hd.Get("X-Slack-Signature")
		hd.Set("X-Slack-Signature", s[:c.rng.IntN(len(s))])
		return forgery{"truncated signature", body, hd, http.StatusUnauthorized}
	case 7:
		// Signed for one fresh timestamp, sent with another.
		hd := valid.Clone()
		ts, _ := strconv.ParseInt(hd.Get("X-Slack-Request-Timestamp"), 10, 64)
		hd.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts+int64(1+c.rng.IntN(60)), 10))
		return forgery{"timestamp swapped", body, hd, http.StatusUnauthorized}
	case 8:
		hd := valid.Clone()
		switch c.rng.IntN(6) {
		case 0:
			hd.Del("X-Slack-Signature")
		case 1:
			hd.Del("X-Slack-Request-Timestamp")
		case 2:
			hd.Set("X-Slack-Request-Timestamp", "1e9")
		case 3:
			hd.Set("X-Slack-Request-Timestamp", " "+hd.Get("X-Slack-Request-Timestamp"))
		case 4:
			hd.Set("X-Slack-Signature", "v1="+strings.TrimPrefix(hd.Get("X-Slack-Signature"), "v0="))
		default:
			hd.Set("X-Slack-Signature", "")
		}
		return forgery{"malformed headers", body, hd, http.StatusUnauthorized}
	case 9:
		if c.rng.IntN(oversizedOneIn/11+1) == 0 {
			big := body + "&pad=" + strings.Repeat("A", MaxBodyBytes+c.rng.IntN(MaxBodyBytes))
			return forgery{"oversized, correctly signed", big, sign(signingSecret, big, c.freshTS()), http.StatusRequestEntityTooLarge}
		}
		hd := valid.Clone()
		hd.Set("X-Slack-Signature", strings.ToUpper(c.hex(2))+hd.Get("X-Slack-Signature"))
		return forgery{"prefixed signature", body, hd, http.StatusUnauthorized}
	default:
		return forgery{"replay", body, valid, http.StatusUnauthorized}
	}
}

func TestForgedCorpusIsNeverAccepted(t *testing.T) {
	h := newHarness(t)
	rc := &recorder{}
	gate := h.bot.verified(rc)
	c := &corpus{rng: rand.New(rand.NewPCG(forgedCorpusSeed, forgedCorpusSeed>>3)), now: time.Now()}
	kinds := map[string]int{}
	sent, originals := 0, 0
	for i := 0; sent < forgedCorpusSize; i++ {
		f := c.next(i)
		if f.kind == "replay" {
			// The original is genuine and admitted once; its replays are the attack.
			if w := verifyThrough(gate, f.body, f.hd); w.Code != http.StatusNoContent {
				t.Fatalf("the genuine original of a replay was refused: HTTP %d", w.Code)
			}
			originals++
			before := rc.calls
			for range 1 + c.rng.IntN(3) {
				if w := verifyThrough(gate, f.body, f.hd.Clone()); w.Code != f.want {
					t.Errorf("replay %d: HTTP %d, want %d", i, w.Code, f.want)
				}
				kinds[f.kind]++
				sent++
			}
			if rc.calls != before {
				t.Fatalf("a replay was admitted (request %d)", i)
			}
			continue
		}
		before := rc.calls
		w := verifyThrough(gate, f.body, f.hd)
		if w.Code != f.want || rc.calls != before {
			t.Errorf("%s (request %d): HTTP %d, handler ran %d times; want HTTP %d and no handler", f.kind, i, w.Code, rc.calls-before, f.want)
		}
		kinds[f.kind]++
		sent++
	}
	// The only admitted requests are the genuine originals of the replays.
	if rc.calls != originals {
		t.Fatalf("the handler ran %d times; only the %d genuine originals may pass", rc.calls, originals)
	}
	for _, k := range []string{"random signature", "signed with another secret", "signature of another body", "tampered body",
		"stale or future timestamp, correctly signed", "truncated body", "truncated signature", "timestamp swapped",
		"malformed headers", "oversized, correctly signed", "prefixed signature", "replay"} {
		if kinds[k] == 0 {
			t.Errorf("the corpus has no %q request", k)
		}
	}
	t.Logf("%d hostile requests, 0 accepted: %v", sent, kinds)
}
