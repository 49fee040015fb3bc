package commands

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse checks that Parse and ParseJWT never panic, that every failure
// is an *Error with a message and a usage, that a parsed command is well
// formed, and that its canonical Text parses back to the same command.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "help", "list", "status r-abc123", "cancel R-ABCDEF",
		`openai --env staging --reason "key leaked" --emergency`,
		"openai —env=prod —reason it’s “bad”",
		`openai --reason 'said "no"' --env=prod`,
		`openai --reason "unterminated`,
		"--env prod --reason a b c openai",
		`rollback r-abc123 --reason "bad key"`, "rollback R-ABCDEF --reason=x y",
	} {
		f.Add(s)
	}
	targetRE := regexp.MustCompile(TargetPattern)
	envRE := regexp.MustCompile(EnvPattern)
	idRE := regexp.MustCompile(RequestIDPattern)
	f.Fuzz(func(t *testing.T, s string) {
		checkValidators(t, s, targetRE, envRE, idRE)
		for _, parse := range []func(string) (Command, error){Parse, ParseJWT} {
			c, err := parse(s)
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) || pe.Problem == "" || pe.Usage == "" {
					t.Fatalf("parse(%q) error %#v: want *Error with Problem and Usage", s, err)
				}
				continue
			}
			checkWellFormed(t, s, c, targetRE, envRE, idRE)
			back, err := Parse(c.Text())
			if err != nil {
				t.Fatalf("Parse(%q) (Text of %+v, from %q): %v", c.Text(), c, s, err)
			}
			if back != c {
				t.Fatalf("Parse(%q) = %+v, want %+v (from %q)", c.Text(), back, c, s)
			}
		}
	})
}

func checkWellFormed(t *testing.T, s string, c Command, targetRE, envRE, idRE *regexp.Regexp) {
	t.Helper()
	switch c.Verb {
	case VerbHelp, VerbList:
		if c != (Command{Verb: c.Verb}) {
			t.Fatalf("%q: %+v has fields beyond its verb", s, c)
		}
	case VerbStatus, VerbCancel:
		if !idRE.MatchString(c.ID) || c != (Command{Verb: c.Verb, ID: c.ID}) {
			t.Fatalf("%q: bad %+v", s, c)
		}
	case VerbRollback:
		if !idRE.MatchString(c.ID) || c.Target != "" || c.Env != "" || c.Emergency {
			t.Fatalf("%q: bad %+v", s, c)
		}
		if c.Reason != strings.Join(strings.Fields(c.Reason), " ") {
			t.Fatalf("%q: reason %q is not collapsed", s, c.Reason)
		}
	case VerbRotate:
		if !targetRE.MatchString(c.Target) || IsReserved(c.Target) || c.ID != "" {
			t.Fatalf("%q: bad target in %+v", s, c)
		}
		if c.Env != "" && !envRE.MatchString(c.Env) {
			t.Fatalf("%q: bad env in %+v", s, c)
		}
		if c.Reason != strings.Join(strings.Fields(c.Reason), " ") {
			t.Fatalf("%q: reason %q is not collapsed", s, c.Reason)
		}
	default:
		t.Fatalf("%q: unknown verb in %+v", s, c)
	}
}
