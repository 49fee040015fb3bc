package kindconfig

import (
	"reflect"
	"testing"
	"time"

	"github.com/aivo-platform/rotary/rotators"
)

const labelPattern = `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`

func TestAddKeepsOrder(t *testing.T) {
	var v Validator
	if got := v.Problems(); len(got) != 0 {
		t.Fatalf("new Validator has problems %v", got)
	}
	v.Add("a", "first")
	v.Add("b.c[0]", "second")
	want := []rotators.Problem{{Path: "a", Message: "first"}, {Path: "b.c[0]", Message: "second"}}
	if got := v.Problems(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Problems() = %v, want %v", got, want)
	}
}

func TestPlaceholders(t *testing.T) {
	tests := []struct {
		name    string
		more    bool
		s       string
		allowed []string
		wantOK  bool
		wantMsg string
	}{
		{name: "no braces", s: "aivo", wantOK: true},
		{name: "env", s: "aivo-{env}-{env}", wantOK: true},
		{name: "typo", s: "aivo-{ENV}", wantMsg: `"aivo-{ENV}" uses a placeholder other than {env} (the only one there is)`},
		{name: "lone brace", s: "aivo-{env", wantMsg: `"aivo-{env" uses a placeholder other than {env} (the only one there is)`},
		{name: "allowed extra", more: true, s: "auth_{date}_{env}", allowed: []string{"{date}", "{request}"}, wantOK: true},
		{name: "extra not allowed here", more: true, s: "auth_{date}", wantMsg: `"auth_{date}" uses a placeholder other than {env}`},
		{name: "listed when more", more: true, s: "auth_{day}", allowed: []string{"{date}", "{request}"}, wantMsg: `"auth_{day}" uses a placeholder other than {env}, {date}, {request}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Validator{MorePlaceholders: tt.more}
			if ok := v.Placeholders("p", tt.s, tt.allowed...); ok != tt.wantOK {
				t.Errorf("Placeholders(%q) = %v, want %v", tt.s, ok, tt.wantOK)
			}
			checkOne(t, v.Problems(), "p", tt.wantMsg)
		})
	}
}

func TestName(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		wantMsg string
	}{
		{name: "valid", s: "aivo"},
		{name: "valid with env expanded", s: "aivo-{env}"},
		{name: "missing", s: "", wantMsg: "is required"},
		{name: "bad placeholder reported once", s: "Aivo-{ENV}", wantMsg: `"Aivo-{ENV}" uses a placeholder other than {env} (the only one there is)`},
		{name: "no match", s: "Aivo", wantMsg: `"Aivo" is not a namespace`},
		{name: "no match after expansion", s: "{env}-", wantMsg: `"{env}-" is not a namespace`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Validator
			v.Name("ns", tt.s, labelPattern, "a namespace")
			checkOne(t, v.Problems(), "ns", tt.wantMsg)
		})
	}
}

func TestDuration(t *testing.T) {
	const (
		def  = 2 * time.Minute
		maxD = time.Hour
	)
	tests := []struct {
		name    string
		s       string
		zeroOK  bool
		want    time.Duration
		wantMsg string
	}{
		{name: "empty gives default", s: "", want: def},
		{name: "valid", s: "90s", want: 90 * time.Second},
		{name: "maximum itself", s: "1h", want: maxD},
		{name: "unparsable", s: "soon", want: def, wantMsg: `"soon" is not a duration (e.g. 45m, 2h)`},
		{name: "negative", s: "-1m", want: def, wantMsg: "must be positive"},
		{name: "negative even with zeroOK", s: "-1m", zeroOK: true, want: def, wantMsg: "must be positive"},
		{name: "zero", s: "0s", want: def, wantMsg: "must be positive"},
		{name: "zero allowed", s: "0s", zeroOK: true, want: 0},
		{name: "too long", s: "2h", want: def, wantMsg: "2h0m0s is longer than the maximum 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Validator{DurationExample: "45m, 2h"}
			if got := v.Duration("timeout", tt.s, def, maxD, tt.zeroOK); got != tt.want {
				t.Errorf("Duration(%q) = %s, want %s", tt.s, got, tt.want)
			}
			checkOne(t, v.Problems(), "timeout", tt.wantMsg)
		})
	}
}

// checkOne fails unless problems is exactly one problem at path with
// message want, or empty when want is "".
func checkOne(t *testing.T, problems []rotators.Problem, path, want string) {
	t.Helper()
	if want == "" {
		if len(problems) != 0 {
			t.Fatalf("problems = %v, want none", problems)
		}
		return
	}
	wantP := []rotators.Problem{{Path: path, Message: want}}
	if !reflect.DeepEqual(problems, wantP) {
		t.Fatalf("problems = %v, want %v", problems, wantP)
	}
}
