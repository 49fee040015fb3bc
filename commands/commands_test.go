package commands

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Command
	}{
		{"empty is help", "", Command{Verb: VerbHelp}},
		{"blank is help", "  \t ", Command{Verb: VerbHelp}},
		{"help", "help", Command{Verb: VerbHelp}},
		{"list", " list ", Command{Verb: VerbList}},
		{"status", "status R-7K2M9Q", Command{Verb: VerbStatus, ID: "R-7K2M9Q"}},
		{"status lower case normalized", "status r-7k2m9qab", Command{Verb: VerbStatus, ID: "R-7K2M9QAB"}},
		{"cancel", "cancel R-ABCDEF123456", Command{Verb: VerbCancel, ID: "R-ABCDEF123456"}},
		{"rollback", "rollback r-7k2m9q", Command{Verb: VerbRollback, ID: "R-7K2M9Q"}},
		{"rollback with reason", `rollback R-7K2M9Q --reason "new key breaks mobile"`, Command{Verb: VerbRollback, ID: "R-7K2M9Q", Reason: "new key breaks mobile"}},
		{"rollback with unquoted reason", "rollback R-7K2M9Q --reason=mobile clients fail", Command{Verb: VerbRollback, ID: "R-7K2M9Q", Reason: "mobile clients fail"}},
		{"target only", "openai", Command{Verb: VerbRotate, Target: "openai"}},
		{"target with underscore and dash", "db_main-2", Command{Verb: VerbRotate, Target: "db_main-2"}},
		{"env separate", "openai --env staging", Command{Verb: VerbRotate, Target: "openai", Env: "staging"}},
		{"env equals", "openai --env=staging", Command{Verb: VerbRotate, Target: "openai", Env: "staging"}},
		{"env quoted", `openai --env "staging"`, Command{Verb: VerbRotate, Target: "openai", Env: "staging"}},
		{"flags before target", "--env prod --emergency openai", Command{Verb: VerbRotate, Target: "openai", Env: "prod", Emergency: true}},
		{"flag name case-insensitive", "openai --Env prod", Command{Verb: VerbRotate, Target: "openai", Env: "prod"}},
		{"em dash from autocorrect", "openai —env staging —emergency", Command{Verb: VerbRotate, Target: "openai", Env: "staging", Emergency: true}},
		{"en dash", "openai –env staging", Command{Verb: VerbRotate, Target: "openai", Env: "staging"}},
		{"reason double quoted", `openai --reason "key leaked in CI" --env prod`, Command{Verb: VerbRotate, Target: "openai", Env: "prod", Reason: "key leaked in CI"}},
		{"reason single quoted", `openai --reason 'said "leaked"'`, Command{Verb: VerbRotate, Target: "openai", Reason: `said "leaked"`}},
		{"reason smart double quotes", "openai --reason “key leaked” --emergency", Command{Verb: VerbRotate, Target: "openai", Reason: "key leaked", Emergency: true}},
		{"reason smart single quotes", "openai --reason ‘it’s leaked’", Command{Verb: VerbRotate, Target: "openai", Reason: "it’s leaked"}},
		{"reason apostrophe inside single quotes", "openai --reason 'it's leaked' --env prod", Command{Verb: VerbRotate, Target: "openai", Env: "prod", Reason: "it's leaked"}},
		{"reason quote inside double quotes", `openai --reason "say "hi"" --emergency`, Command{Verb: VerbRotate, Target: "openai", Emergency: true, Reason: `say "hi"`}},
		{"reason mixed straight and smart", "openai --reason \"key leaked” --env prod", Command{Verb: VerbRotate, Target: "openai", Env: "prod", Reason: "key leaked"}},
		{"reason equals quoted", `openai --reason="key leaked"`, Command{Verb: VerbRotate, Target: "openai", Reason: "key leaked"}},
		{"reason unquoted to next flag", "openai --reason key leaked in CI --env staging", Command{Verb: VerbRotate, Target: "openai", Env: "staging", Reason: "key leaked in CI"}},
		{"reason unquoted to end", "openai --reason quarterly   rotation", Command{Verb: VerbRotate, Target: "openai", Reason: "quarterly rotation"}},
		{"reason unquoted with equals", "openai --reason=quarterly rotation --emergency", Command{Verb: VerbRotate, Target: "openai", Reason: "quarterly rotation", Emergency: true}},
		{"reason unquoted keeps apostrophes and inner quotes", `openai --reason it's "really" leaked`, Command{Verb: VerbRotate, Target: "openai", Reason: `it's "really" leaked`}},
		{"reason unquoted keeps single dash words", "openai --reason leak - see -5 and -- too", Command{Verb: VerbRotate, Target: "openai", Reason: "leak - see -5 and -- too"}},
		{"reason quoted keeps flag-like text", `openai --reason "after --env change"`, Command{Verb: VerbRotate, Target: "openai", Reason: "after --env change"}},
		{"reason newlines collapse", "openai --reason \"line one\nline two\"", Command{Verb: VerbRotate, Target: "openai", Reason: "line one line two"}},
		{"non-breaking space separates", "openai\u00a0--env\u00a0prod", Command{Verb: VerbRotate, Target: "openai", Env: "prod"}},
		{"quoted target", `"openai"`, Command{Verb: VerbRotate, Target: "openai"}},
		{"jwt is just a target here", "jwt", Command{Verb: VerbRotate, Target: "jwt"}},
		{"max length ok", "openai --reason " + strings.Repeat("x", MaxInputLength-len("openai --reason ")), Command{Verb: VerbRotate, Target: "openai", Reason: strings.Repeat("x", MaxInputLength-len("openai --reason "))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		problem string // substring of Problem
		usage   string
	}{
		{"unknown flag", "openai --force", "unknown flag --force", UsageRotate},
		{"unknown flag with value", "openai --force=yes", "unknown flag --force", UsageRotate},
		{"single dash flag", "-e prod", `unknown flag "-e"`, UsageRotate},
		{"duplicate env", "openai --env prod --env staging", "flag --env is given twice", UsageRotate},
		{"duplicate env case-insensitive", "openai --env prod --ENV=staging", "flag --env is given twice", UsageRotate},
		{"duplicate reason", `openai --reason "a" --reason "b"`, "flag --reason is given twice", UsageRotate},
		{"duplicate emergency", "openai --emergency --emergency", "flag --emergency is given twice", UsageRotate},
		{"env missing value at end", "openai --env", "flag --env needs a value", UsageRotate},
		{"env missing value before flag", "openai --env --emergency", "flag --env needs a value", UsageRotate},
		{"env empty equals", "openai --env=", "flag --env needs a value", UsageRotate},
		{"env empty quoted", `openai --env ""`, "flag --env needs a value", UsageRotate},
		{"env invalid", "openai --env Prod", `invalid environment "Prod"`, UsageRotate},
		{"env too long", "openai --env " + strings.Repeat("a", 32), "invalid environment", UsageRotate},
		{"reason missing at end", "openai --reason", "flag --reason needs text", UsageRotate},
		{"reason missing before flag", "openai --reason --env prod", "flag --reason needs text", UsageRotate},
		{"reason empty quoted", `openai --reason "  "`, "flag --reason needs text", UsageRotate},
		{"reason empty equals", "openai --reason= --env prod", "flag --reason needs text", UsageRotate},
		{"emergency with value", "openai --emergency=true", "flag --emergency takes no value", UsageRotate},
		{"unterminated double quote", `openai --reason "key leaked`, "unterminated quote", UsageRotate},
		{"unterminated smart quote", "openai --reason “key leaked", "unterminated quote", UsageRotate},
		{"unterminated single quote", "openai --reason 'twas leaked", "unterminated quote", UsageRotate},
		{"unterminated quote in equals", `openai --reason="key`, "unterminated quote", UsageRotate},
		{"text glued after quote", `openai --reason "key"leaked`, "unterminated quote", UsageRotate},
		{"smart apostrophe does not close", "openai --reason ‘it’s leaked", "unterminated quote", UsageRotate},
		{"extra argument", "openai prod", `unexpected argument "prod"`, UsageRotate},
		{"extra argument after flags", "openai --env prod sendgrid", `unexpected argument "sendgrid"`, UsageRotate},
		{"missing target", "--env prod", "missing target", UsageRotate},
		{"missing target reason swallows", "--reason leaked openai", "missing target", UsageRotate},
		{"empty target", `"" --env prod`, "the target is empty", UsageRotate},
		{"target upper case", "OpenAI", `invalid target "OpenAI"`, UsageRotate},
		{"target starts with digit", "1password", `invalid target "1password"`, UsageRotate},
		{"target too long", strings.Repeat("a", 42), "invalid target", UsageRotate},
		{"target with dot", "open.ai", "invalid target", UsageRotate},
		{"target long echo shortened", strings.Repeat("Z", 200), "…", UsageRotate},
		{"rollback without id", "rollback", "rollback needs the ID", UsageRollback},
		{"rollback flag first", "rollback --reason x", "rollback needs the ID", UsageRollback},
		{"rollback bad id", "rollback openai", `invalid request ID "openai"`, UsageRollback},
		{"rollback two ids", "rollback R-ABCDEF R-GHIJKL", `unexpected argument "R-GHIJKL"`, UsageRollback},
		{"rollback env flag", "rollback R-ABCDEF --env prod", "rollback takes only --reason", UsageRollback},
		{"rollback reason twice", "rollback R-ABCDEF --reason a --reason b", "given twice", UsageRollback},
		{"rollback empty reason", "rollback R-ABCDEF --reason", "--reason needs text", UsageRollback},
		{"rollback as later target", "--env prod rollback", "rollback comes first", UsageRollback},
		{"list as later target", "--env prod list", "list takes no arguments", UsageList},
		{"help as later target", "--emergency help", "help takes no arguments", UsageHelp},
		{"status as later target", "--env prod status R-ABCDEF", "status comes first", UsageStatus},
		{"cancel as later target", "--env prod cancel", "cancel comes first", UsageCancel},
		{"help with argument", "help openai", `help takes no arguments or flags (got "openai")`, UsageHelp},
		{"list with flag", "list --env prod", "list takes no arguments or flags (got --env)", UsageList},
		{"status without id", "status", "status needs a request ID", UsageStatus},
		{"status with flag", "status R-ABCDEF --env prod", "status takes no flags", UsageStatus},
		{"status bad id", "status 12345", `invalid request ID "12345"`, UsageStatus},
		{"status id too short", "status R-ABC12", "invalid request ID", UsageStatus},
		{"status id too long", "status R-ABCDEFGHJKLMN", "invalid request ID", UsageStatus},
		{"status id bad char", "status R-ABCDE_F", "invalid request ID", UsageStatus},
		{"status id non-ascii folding", "status R-ſſſſſſ", "invalid request ID", UsageStatus},
		{"status two ids", "status R-ABCDEF R-123456", `unexpected argument "R-123456"`, UsageStatus},
		{"cancel without id", "cancel", "cancel needs a request ID", UsageCancel},
		{"too long", "openai --reason " + strings.Repeat("x", MaxInputLength), "too long", UsageRotate},
		{"invalid utf8", "openai \xff", "not valid UTF-8", UsageRotate},
		{"control character", "openai --reason a\x00b", "control character", UsageRotate},
		{"escape character", "openai --reason \x1b[31mred", "control character", UsageRotate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			assertError(t, got, err, tt.problem, tt.usage)
		})
	}
}

func assertError(t *testing.T, got Command, err error, problem, usage string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got %+v, want error containing %q", got, problem)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is %T, want *Error", err, err)
	}
	if !strings.Contains(pe.Problem, problem) {
		t.Fatalf("Problem = %q, want it to contain %q", pe.Problem, problem)
	}
	if pe.Usage != usage {
		t.Fatalf("Usage = %q, want %q", pe.Usage, usage)
	}
	if want := pe.Problem + ". Usage: " + usage; pe.UserMessage() != want {
		t.Fatalf("UserMessage() = %q, want %q", pe.UserMessage(), want)
	}
	if got != (Command{}) {
		t.Fatalf("got %+v with the error, want the zero Command", got)
	}
}

func TestUserMessageExample(t *testing.T) {
	_, err := Parse("openai --force")
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("want *Error, got %v", err)
	}
	want := `unknown flag --force. Usage: /rotate <target> [--env prod|staging] [--reason "..."] [--emergency]`
	if pe.UserMessage() != want {
		t.Fatalf("UserMessage() = %q, want %q", pe.UserMessage(), want)
	}
	if pe.Error() != "invalid command: unknown flag --force" {
		t.Fatalf("Error() = %q", pe.Error())
	}
}

func TestParseJWT(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Command
	}{
		{"no flags", "", Command{Verb: VerbRotate, Target: TargetJWT}},
		{"all flags", `--env staging --reason "signing key exposed" --emergency`, Command{Verb: VerbRotate, Target: TargetJWT, Env: "staging", Reason: "signing key exposed", Emergency: true}},
		{"unquoted reason", "--reason quarterly", Command{Verb: VerbRotate, Target: TargetJWT, Reason: "quarterly"}},
		{"help", "help", Command{Verb: VerbHelp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJWT(tt.in)
			if err != nil {
				t.Fatalf("ParseJWT(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseJWT(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseJWTErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		problem string
	}{
		{"target given", "openai", `unexpected argument "openai": /rotate-jwt takes flags only`},
		{"argument after flags", "--env prod now", `unexpected argument "now"`},
		{"unknown flag", "--force", "unknown flag --force"},
		{"duplicate flag", "--emergency --emergency", "flag --emergency is given twice"},
		{"env missing", "--env", "flag --env needs a value"},
		{"env invalid", "--env PROD", `invalid environment "PROD"`},
		{"unterminated quote", `--reason "oops`, "unterminated quote"},
		{"help with flags", "help --env prod", "help takes no arguments or flags"},
		{"too long", strings.Repeat(" ", MaxInputLength+1), "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJWT(tt.in)
			assertError(t, got, err, tt.problem, UsageJWT)
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		c    Command
		want string
	}{
		{Command{Verb: VerbHelp}, "help"},
		{Command{Verb: VerbList}, "list"},
		{Command{Verb: VerbStatus, ID: "R-ABCDEF"}, "status R-ABCDEF"},
		{Command{Verb: VerbCancel, ID: "R-ABCDEF"}, "cancel R-ABCDEF"},
		{Command{Verb: VerbRotate, Target: "openai"}, "openai"},
		{Command{Verb: VerbRotate, Target: "openai", Env: "prod", Emergency: true, Reason: "leak"}, `openai --env prod --emergency --reason "leak"`},
		{Command{Verb: VerbRotate, Target: "openai", Reason: `said "no"`}, `openai --reason 'said "no"'`},
		{Command{Verb: VerbRotate, Target: "openai", Reason: `it's "x"`}, `openai --reason "it's "x""`},
		{Command{Verb: VerbRotate, Target: "openai", Reason: `a" b`}, `openai --reason 'a" b'`},
		{Command{Verb: VerbRotate, Target: "openai", Reason: `it' "x" y`}, `openai --reason it' "x" y`},
	}
	for _, tt := range tests {
		if got := tt.c.Text(); got != tt.want {
			t.Errorf("%+v.Text() = %q, want %q", tt.c, got, tt.want)
		}
		back, err := Parse(tt.want)
		if err != nil || back != tt.c {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.want, back, err, tt.c)
		}
	}
}

// TestValidatorsMatchPatterns holds the hand-written checks to the
// documented patterns.
func TestValidatorsMatchPatterns(t *testing.T) {
	targetRE := regexp.MustCompile(TargetPattern)
	envRE := regexp.MustCompile(EnvPattern)
	idRE := regexp.MustCompile(RequestIDPattern)
	inputs := []string{
		"", "a", "z", "A", "0", "_", "-", "a-", "a_", "a0", "ab_c-d9", "a.b", "a b", "é", "aé",
		strings.Repeat("a", 31), strings.Repeat("a", 32), strings.Repeat("a", 41), strings.Repeat("a", 42),
		"R-ABCDEF", "r-abcdef", "R-ABCDE", "R-ABCDEFGHJKLM", "R-ABCDEFGHJKL", "X-ABCDEF", "R_ABCDEF", "R-ABC-DE",
	}
	for _, s := range inputs {
		checkValidators(t, s, targetRE, envRE, idRE)
	}
}

func checkValidators(t *testing.T, s string, targetRE, envRE, idRE *regexp.Regexp) {
	t.Helper()
	wantTarget := targetRE.MatchString(s) && !IsReserved(s)
	if got := ValidateTarget(s) == nil; got != wantTarget {
		t.Errorf("ValidateTarget(%q) ok = %v, want %v", s, got, wantTarget)
	}
	if got, want := ValidateEnv(s) == nil, envRE.MatchString(s); got != want {
		t.Errorf("ValidateEnv(%q) ok = %v, want %v", s, got, want)
	}
	id, ok := NormalizeRequestID(s)
	wantID := idRE.MatchString(strings.ToUpper(s)) && isASCII(s)
	if ok != wantID {
		t.Errorf("NormalizeRequestID(%q) ok = %v, want %v", s, ok, wantID)
	}
	if ok && id != strings.ToUpper(s) {
		t.Errorf("NormalizeRequestID(%q) = %q", s, id)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestReserved(t *testing.T) {
	for _, w := range []string{"help", "list", "status", "cancel", "rollback"} {
		if !IsReserved(w) {
			t.Errorf("IsReserved(%q) = false", w)
		}
		if err := ValidateTarget(w); err == nil {
			t.Errorf("ValidateTarget(%q) = nil, want an error", w)
		}
	}
	if IsReserved("openai") {
		t.Error(`IsReserved("openai") = true`)
	}
}

func TestUsageLines(t *testing.T) {
	lines := UsageLines()
	if len(lines) != 7 {
		t.Fatalf("UsageLines() has %d lines, want 7", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "/rotate") {
			t.Errorf("usage line %q does not start with /rotate", l)
		}
	}
}
