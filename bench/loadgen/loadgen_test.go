package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestLoopbackOnlyRefusesOtherHosts(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8080":     true,
		"http://[::1]:8080":         true,
		"http://127.0.0.2:1":        true,
		"http://10.0.0.1:8080":      false,
		"http://192.168.1.5":        false,
		"http://[2001:db8::1]:80":   false,
		"ftp://127.0.0.1/":          false,
		"127.0.0.1:8080":            false,
		"http://:8080":              false,
		"https://198.51.100.7/x?y=": false,
	} {
		err := loopbackOnly(context.Background(), url)
		if (err == nil) != ok {
			t.Errorf("%s: error %v, want allowed=%v", url, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), url) {
			t.Errorf("%s: the error does not name the URL: %v", url, err)
		}
	}
}

// TestSignIsWhatSlackGoVerifies: the load generator's signatures pass the
// verifier rotary uses, and fail it under another secret or body.
func TestSignIsWhatSlackGoVerifies(t *testing.T) {
	secret := []byte("bench-secret")
	body := "command=%2Frotate&text=list"
	verify := func(key, sentBody string) error {
		sv, err := slack.NewSecretsVerifier(sign(secret, body, time.Now()), key)
		if err != nil {
			return err
		}
		_, _ = sv.Write([]byte(sentBody))
		return sv.Ensure()
	}
	if err := verify(string(secret), body); err != nil {
		t.Fatalf("a loadgen signature does not verify: %v", err)
	}
	if verify("other-secret", body) == nil || verify(string(secret), body+"&x=1") == nil {
		t.Fatal("a signature verified under another secret or body")
	}
}

func TestPercentile(t *testing.T) {
	var xs []time.Duration
	for i := 1; i <= 100; i++ {
		xs = append(xs, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(xs, p); got != want {
			t.Errorf("p%.0f = %s, want %s", p*100, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestSeedIDsSortInWriteOrder(t *testing.T) {
	prev := ""
	for _, i := range []int{0, 1, 31, 32, 1000, 99_999, 1_000_000} {
		id := seedID(i)
		if len(id) != 10 || !strings.HasPrefix(id, "R-") || id <= prev {
			t.Fatalf("seedID(%d) = %q after %q: want R- and 8 characters, increasing", i, id, prev)
		}
		prev = id
	}
}

func TestRunOptionsRefuseUnboundedOrImpossibleRuns(t *testing.T) {
	base := runOptions{scenario: "commands", concurrency: 16, duration: time.Second, count: 10, targets: 64, envs: 64}
	for name, edit := range map[string]func(*runOptions){
		"no time bound":           func(o *runOptions) { o.duration = 0 },
		"over the time bound":     func(o *runOptions) { o.duration = 2 * maxDuration },
		"no count":                func(o *runOptions) { o.count = 0 },
		"more workers than slots": func(o *runOptions) { o.concurrency = 64*64 + 1 },
		"unknown scenario":        func(o *runOptions) { o.scenario = "flood" },
		"status without ids":      func(o *runOptions) { o.scenario = "status" },
	} {
		o := base
		edit(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := base.validate(); err != nil {
		t.Fatalf("a valid run was refused: %v", err)
	}
}
