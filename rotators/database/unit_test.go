package database

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// nastyPassword holds every character that needs escaping somewhere.
const nastyPassword = `p@ss:w/o?r#d% 'q' "d" \b ü`

func TestDSNUser(t *testing.T) {
	tests := []struct {
		dsn, user string
		err       error
	}{
		{"postgresql://auth_20261126:" + "pw@db:5432/aivo_auth?sslmode=require", "auth_20261126", nil},
		{"postgres://a%27b%20%22c%22%5Cd%20%C3%A9:x%40y@db/aivo", `a'b "c"\d é`, nil},
		{"postgresql://db:5432/aivo?user=app&password=secret", "app", nil},
		{"postgresql://db:5432/aivo", "", errDSNNoUser},
		{"postgresql://%zz@db/aivo", "", errDSNSyntax},
		{"host=db port=5432 user=app password=secret dbname=aivo", "app", nil},
		{`host=db user = 'o\'ld \\ r' password='s e c'`, `o'ld \ r`, nil},
		{`user=a\ b password=x`, "a b", nil},
		{"host=db password=secret", "", errDSNNoUser},
		{"user='unterminated password=secret", "", errDSNSyntax},
		{"user", "", errDSNSyntax},
		{"", "", errDSNSyntax},
	}
	for _, tt := range tests {
		got, err := dsnUser(secret.FromString(tt.dsn))
		if got != tt.user || !errors.Is(err, tt.err) {
			t.Errorf("dsnUser(%q) = %q, %v; want %q, %v", tt.dsn, got, err, tt.user, tt.err)
		}
		if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "%zz")) {
			t.Errorf("dsnUser's error quotes the DSN: %v", err)
		}
	}
}

// A DSN built from the template gives back exactly the user and password,
// as pgx (and so the application) reads it.
func TestBuildDSN(t *testing.T) {
	const tmpl = "postgresql://{user}:{password}@db.internal:5432/aivo_auth?sslmode=require"
	for _, user := range []string{"auth_20261126", `a'b "c" \d é @:/`} {
		dsn, err := buildDSN(tmpl, user, secret.FromString(nastyPassword))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pgx.ParseConfig(string(dsn.Reveal()))
		if err != nil {
			t.Fatalf("pgx cannot parse the built DSN: %v", err)
		}
		if cfg.User != user || cfg.Password != nastyPassword || cfg.Host != "db.internal" || cfg.Port != 5432 || cfg.Database != "aivo_auth" {
			t.Errorf("parsed user %q host %q port %d db %q (password ok: %v)", cfg.User, cfg.Host, cfg.Port, cfg.Database, cfg.Password == nastyPassword)
		}
		if u, err := dsnUser(dsn); err != nil || u != user {
			t.Errorf("dsnUser(built) = %q, %v; want %q", u, err, user)
		}
	}
	if _, err := buildDSN("mysql://{user}:{password}@db/x", "u", secret.FromString("p")); err == nil {
		t.Error("a template without the userinfo was accepted")
	}
}

func TestNewPassword(t *testing.T) {
	allowed := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	a, err := newPassword(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newPassword(rand.NewChaCha8([32]byte{1}))
	c, _ := newPassword(rand.NewChaCha8([32]byte{2}))
	if len(a.Reveal()) != passwordLen || passwordLen < 32 || !allowed.Match(a.Reveal()) {
		t.Errorf("password of %d bytes, URL-safe %v", len(a.Reveal()), allowed.Match(a.Reveal()))
	}
	if !a.Equal(b) || a.Equal(c) {
		t.Error("the password is not a function of the injected randomness")
	}
	// Every symbol is reachable: 256 byte values map onto 64 symbols.
	all := bytes.Repeat([]byte{0}, 256)
	for i := range all {
		all[i] = byte(i)
	}
	seen := map[byte]bool{}
	for i := 0; i < 256; i += passwordLen {
		p, err := newPassword(bytes.NewReader(append(all[i:], all...)))
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range p.Reveal() {
			seen[ch] = true
		}
	}
	if len(seen) != len(passwordAlphabet) {
		t.Errorf("%d of %d symbols are used", len(seen), len(passwordAlphabet))
	}
	if _, err := newPassword(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("a failing random source gave a password")
	}
	if _, err := newPassword(bytes.NewReader(make([]byte, passwordLen-1))); err == nil {
		t.Error("a short random source gave a password")
	}
}

func TestSCRAMVerifierShape(t *testing.T) {
	shape := regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$`)
	v, err := scramVerifier(secret.FromString("password-1"), rand.NewChaCha8([32]byte{3}))
	if err != nil || !shape.MatchString(v) {
		t.Fatalf("verifier %q, %v", v, err)
	}
	if strings.Contains(v, "password-1") {
		t.Error("the verifier contains the password")
	}
	w, _ := scramVerifier(secret.FromString("password-1"), rand.NewChaCha8([32]byte{4}))
	if v == w {
		t.Error("two salts gave the same verifier")
	}
	if _, err := scramVerifier(secret.FromString("pässword"), rand.NewChaCha8([32]byte{3})); !errors.Is(err, errVerifierInput) {
		t.Errorf("non-ASCII password: err = %v", err)
	}
}

func TestSplitGUCList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"  ", nil, true},
		{"public", []string{"public"}, true},
		{`app, public`, []string{"app", "public"}, true},
		{`"app ""s"" é'", public`, []string{`app "s" é'`, "public"}, true},
		{`"$user", public`, []string{"$user", "public"}, true},
		{`a,,b`, nil, false},
		{`a,`, nil, false},
		{`"open`, nil, false},
		{`a b`, nil, false},
	}
	for _, tt := range tests {
		got, ok := splitGUCList(tt.in)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("splitGUCList(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRoleNames(t *testing.T) {
	if got := requestToken("R-2345ABCD"); got != "r_2345abcd" {
		t.Errorf("requestToken = %q", got)
	}
	if got := expandRolePattern("auth_{env}_{date}_{request}", "prod", "20261126", "r_1"); got != "auth_prod_20261126_r_1" {
		t.Errorf("expandRolePattern = %q", got)
	}
	if roleSuffix(1) != "" || roleSuffix(2) != "_2" {
		t.Error("roleSuffix")
	}
	for name, bad := range map[string]bool{
		"auth_20261126": false, `a'b "c" \d é`: false, "pg_auth": true, "public": true, "": true,
		strings.Repeat("a", 64): true, "a\x00b": true, "a\nb": true, "\xff": true,
	} {
		if got := roleNameProblem(name, 0) != ""; got != bad {
			t.Errorf("roleNameProblem(%q) refuses: %v, want %v", name, got, bad)
		}
	}
}

func TestRedact(t *testing.T) {
	inner := errors.New("boom: hunter22 and s3cret-value")
	err := redact(inner, []byte("hunter22"), []byte("s3cret-value"), []byte("ab"))
	if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "s3cret") || !errors.Is(err, inner) {
		t.Errorf("redact: %q (chain kept: %v)", err, errors.Is(err, inner))
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 30 * time.Minute: "30m", 90 * time.Minute: "1h30m", 0: "0s", 90 * time.Second: "1m30s"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
