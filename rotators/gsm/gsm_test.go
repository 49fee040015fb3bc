package gsm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const (
	project  = "p"
	secretID = "db-url"
	// payload is distinctive so a leak scan cannot miss it.
	payload = "postgresql://auth_new:Zx9-very-secret-pw@db:5432/aivo"
	// testTimeout bounds each test's calls; tests finish far sooner.
	testTimeout = 10 * time.Second
	// shortDeadline is the deadline for calls that are meant to time out.
	shortDeadline = 100 * time.Millisecond
)

// env is a fake Secret Manager with one secret and rotary's real client
// (the official library underneath) connected to it.
type env struct {
	fake   *gsmfake.Server
	c      *Client
	ctx    context.Context
	secret string
}

func newEnv(t *testing.T) env {
	t.Helper()
	fake, err := gsmfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	name := SecretName(project, secretID)
	if err := fake.CreateSecret(name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	c, err := Dial(ctx, fake.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return env{fake: fake, c: c, ctx: ctx, secret: name}
}

func (e env) add(t *testing.T, v string) string {
	t.Helper()
	name, err := e.c.AddVersion(e.ctx, e.secret, secret.FromString(v))
	if err != nil {
		t.Fatalf("AddVersion: %v", err)
	}
	return name
}

func (e env) version(n int) string { return e.secret + "/versions/" + strconv.Itoa(n) }

// leakForms are the shapes a payload could take in text: raw, base64 (how
// protojson and JSON show bytes) and hex.
func leakForms(p string) []string {
	return []string{p, base64.StdEncoding.EncodeToString([]byte(p)), base64.RawStdEncoding.EncodeToString([]byte(p)), hex.EncodeToString([]byte(p))}
}

// assertNoPayload fails when text holds the payload in any form.
func assertNoPayload(t *testing.T, text string) {
	t.Helper()
	for _, f := range leakForms(payload) {
		if strings.Contains(text, f) {
			t.Fatalf("payload leaked into %q", text)
		}
	}
}

// assertErr checks err: not nil, the gRPC code, names `names`, no payload.
func assertErr(t *testing.T, err error, code codes.Code, names ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if got := status.Code(err); got != code {
		t.Fatalf("status.Code = %v, want %v (err: %v)", got, code, err)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Fatalf("error %q does not name %s", err, n)
		}
	}
	assertNoPayload(t, err.Error())
}

func TestRoundTrip(t *testing.T) {
	e := newEnv(t)
	v1 := e.add(t, "first")
	if v1 != e.version(1) {
		t.Fatalf("AddVersion = %s, want %s", v1, e.version(1))
	}
	v2 := e.add(t, payload)

	latest, err := e.c.LatestEnabled(e.ctx, e.secret)
	if err != nil || latest != v2 {
		t.Fatalf("LatestEnabled = %s, %v; want %s", latest, err, v2)
	}
	got, err := e.c.Access(e.ctx, latest)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(secret.FromString(payload)) {
		t.Fatal("Access returned other bytes than were added")
	}
	got, err = e.c.Access(e.ctx, v1)
	if err != nil || !got.Equal(secret.FromString("first")) {
		t.Fatalf("Access(%s) = wrong value, %v", v1, err)
	}
	all, err := e.c.EnabledVersions(e.ctx, e.secret)
	if err != nil || !slices.Equal(all, []string{v2, v1}) {
		t.Fatalf("EnabledVersions = %v, %v", all, err)
	}
}

func TestChecksum(t *testing.T) {
	e := newEnv(t)
	v := e.add(t, payload)
	// The fake validates data_crc32c when present and rejects a mismatch,
	// so a stored version marked ClientChecksum carried a correct one.
	vs := e.fake.Versions(e.secret)
	if len(vs) != 1 || !vs[0].ClientChecksum || string(vs[0].Payload) != payload {
		t.Fatalf("stored %+v, want one version with a client checksum", vs)
	}

	if err := e.fake.CorruptAccessChecksum(v); err != nil {
		t.Fatal(err)
	}
	got, err := e.c.Access(e.ctx, v)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Access of a corrupted payload: %v, want ErrChecksum", err)
	}
	if !got.IsZero() {
		t.Fatal("Access returned a value that failed its checksum")
	}
	if !strings.Contains(err.Error(), v) {
		t.Fatalf("error %q does not name %s", err, v)
	}
	assertNoPayload(t, err.Error())
}

func TestVersionsSortNumerically(t *testing.T) {
	for _, ignoreFilters := range []bool{false, true} {
		t.Run("ignoreFilters="+strconv.FormatBool(ignoreFilters), func(t *testing.T) {
			e := newEnv(t)
			e.fake.IgnoreFilters(ignoreFilters)
			// 12 versions: by string "9" would sort above "11" and "10".
			// The fake's default page size makes the client page.
			for i := 1; i <= 12; i++ {
				e.add(t, "v"+strconv.Itoa(i))
			}
			for _, n := range []int{12, 3} {
				if err := e.c.Disable(e.ctx, e.version(n)); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for _, n := range []int{11, 10, 9, 8, 7, 6, 5, 4, 2, 1} {
				want = append(want, e.version(n))
			}
			got, err := e.c.EnabledVersions(e.ctx, e.secret)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("EnabledVersions = %v, %v\nwant %v", got, err, want)
			}
			latest, err := e.c.LatestEnabled(e.ctx, e.secret)
			if err != nil || latest != e.version(11) {
				t.Fatalf("LatestEnabled = %s, %v; want %s", latest, err, e.version(11))
			}
			if lists := count(e.fake.Calls(), "ListSecretVersions"); lists < 4 {
				t.Fatalf("%d ListSecretVersions calls for two listings of 10 versions: client did not page", lists)
			}
		})
	}
}

func count(calls []string, method string) int {
	n := 0
	for _, c := range calls {
		if c == method {
			n++
		}
	}
	return n
}

func TestDisable(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, e env) string // returns the version to disable
		code    codes.Code                       // codes.OK: Disable succeeds
	}{
		{"enabled", func(t *testing.T, e env) string { return e.add(t, payload) }, codes.OK},
		{"already disabled", func(t *testing.T, e env) string {
			v := e.add(t, payload)
			if err := e.c.Disable(e.ctx, v); err != nil {
				t.Fatal(err)
			}
			return v
		}, codes.OK},
		{"already disabled, server answers FAILED_PRECONDITION", func(t *testing.T, e env) string {
			v := e.add(t, payload)
			if err := e.c.Disable(e.ctx, v); err != nil {
				t.Fatal(err)
			}
			e.fake.FailNext("DisableSecretVersion", 1, codes.FailedPrecondition)
			return v
		}, codes.OK},
		{"destroyed", func(t *testing.T, e env) string {
			v := e.add(t, payload)
			destroy(t, e, v)
			return v
		}, codes.FailedPrecondition},
		{"unknown version", func(t *testing.T, e env) string { return e.version(7) }, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := tt.prepare(t, e)
			err := e.c.Disable(e.ctx, v)
			if tt.code == codes.OK {
				if err != nil {
					t.Fatalf("Disable: %v", err)
				}
				if st := e.fake.Versions(e.secret)[0].State; st != gsmfake.StateDisabled {
					t.Fatalf("state after Disable = %s", st)
				}
				return
			}
			assertErr(t, err, tt.code, v)
		})
	}
}

// destroy uses the raw library: rotary itself never destroys versions.
func destroy(t *testing.T, e env, v string) {
	t.Helper()
	if _, err := e.c.sm.DestroySecretVersion(e.ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v}); err != nil {
		t.Fatal(err)
	}
}

func TestErrNoVersion(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, e env)
	}{
		{"no versions", func(*testing.T, env) {}},
		{"all disabled", func(t *testing.T, e env) {
			for range 2 {
				if err := e.c.Disable(e.ctx, e.add(t, payload)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"destroyed", func(t *testing.T, e env) { destroy(t, e, e.add(t, payload)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.prepare(t, e)
			_, err := e.c.LatestEnabled(e.ctx, e.secret)
			if !errors.Is(err, ErrNoVersion) {
				t.Fatalf("LatestEnabled: %v, want ErrNoVersion", err)
			}
			if !strings.Contains(err.Error(), e.secret) {
				t.Fatalf("error %q does not name the secret", err)
			}
			got, err := e.c.EnabledVersions(e.ctx, e.secret)
			if err != nil || len(got) != 0 {
				t.Fatalf("EnabledVersions = %v, %v; want none", got, err)
			}
		})
	}

	// A missing secret is not "no version": it is a configuration error.
	e := newEnv(t)
	missing := SecretName(project, "missing")
	_, err := e.c.LatestEnabled(e.ctx, missing)
	if errors.Is(err, ErrNoVersion) {
		t.Fatal("a missing secret reported as ErrNoVersion")
	}
	assertErr(t, err, codes.NotFound, missing)
}

func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		name   string
		method string
		code   codes.Code
		call   func(e env, v string) error
		names  func(e env, v string) string
	}{
		{"add", "AddSecretVersion", codes.PermissionDenied, func(e env, _ string) error {
			_, err := e.c.AddVersion(e.ctx, e.secret, secret.FromString(payload))
			return err
		}, func(e env, _ string) string { return e.secret }},
		{"access", "AccessSecretVersion", codes.Internal, func(e env, v string) error {
			_, err := e.c.Access(e.ctx, v)
			return err
		}, func(_ env, v string) string { return v }},
		{"latest", "ListSecretVersions", codes.PermissionDenied, func(e env, _ string) error {
			_, err := e.c.LatestEnabled(e.ctx, e.secret)
			return err
		}, func(e env, _ string) string { return e.secret }},
		{"disable", "DisableSecretVersion", codes.PermissionDenied, func(e env, v string) error {
			return e.c.Disable(e.ctx, v)
		}, func(_ env, v string) string { return v }},
		{"disable, then reading the state fails", "DisableSecretVersion", codes.FailedPrecondition, func(e env, v string) error {
			e.fake.FailNext("GetSecretVersion", 1, codes.Internal)
			return e.c.Disable(e.ctx, v)
		}, func(_ env, v string) string { return v }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.add(t, payload)
			e.fake.FailNext(tt.method, 1, tt.code)
			err := tt.call(e, v)
			assertErr(t, err, tt.code, tt.names(e, v))
			if !strings.HasPrefix(err.Error(), "gsm: ") {
				t.Fatalf("error %q lacks the package's context", err)
			}
		})
	}
}

func TestStallHonoursDeadline(t *testing.T) {
	tests := []struct {
		name   string
		method string
		call   func(ctx context.Context, e env, v string) error
	}{
		{"access", "AccessSecretVersion", func(ctx context.Context, e env, v string) error {
			_, err := e.c.Access(ctx, v)
			return err
		}},
		{"add", "AddSecretVersion", func(ctx context.Context, e env, _ string) error {
			_, err := e.c.AddVersion(ctx, e.secret, secret.FromString(payload))
			return err
		}},
		{"list", "ListSecretVersions", func(ctx context.Context, e env, _ string) error {
			_, err := e.c.EnabledVersions(ctx, e.secret)
			return err
		}},
		{"disable", "DisableSecretVersion", func(ctx context.Context, e env, v string) error {
			return e.c.Disable(ctx, v)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.add(t, payload)
			release := e.fake.Stall(tt.method)
			defer release()
			ctx, cancel := context.WithTimeout(e.ctx, shortDeadline)
			defer cancel()
			assertErr(t, tt.call(ctx, e, v), codes.DeadlineExceeded)
		})
	}
}

func TestDefaultCallTimeout(t *testing.T) {
	e := newEnv(t)
	e.c.callTimeout = shortDeadline
	release := e.fake.Stall("AddSecretVersion")
	defer release()
	// No deadline from the caller: the client's own must end the call.
	_, err := e.c.AddVersion(context.Background(), e.secret, secret.FromString(payload))
	assertErr(t, err, codes.DeadlineExceeded, e.secret)
}

func TestCallContext(t *testing.T) {
	c := &Client{callTimeout: CallTimeout}
	before := time.Now()
	ctx, cancel := c.callContext(context.Background())
	defer cancel()
	dl, ok := ctx.Deadline()
	if !ok || dl.Before(before.Add(CallTimeout)) || dl.After(time.Now().Add(CallTimeout)) {
		t.Fatalf("no caller deadline: got %v, %v; want now+%v", dl, ok, CallTimeout)
	}
	want := before.Add(time.Hour)
	parent, cancelParent := context.WithDeadline(context.Background(), want)
	defer cancelParent()
	ctx, cancel2 := c.callContext(parent)
	defer cancel2()
	if dl, _ := ctx.Deadline(); !dl.Equal(want) {
		t.Fatalf("caller's deadline replaced: got %v, want %v", dl, want)
	}
}

func TestRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"add to malformed secret", func() error {
			_, err := e.c.AddVersion(e.ctx, "projects/p/db-url", secret.FromString(payload))
			return err
		}},
		{"add empty value", func() error {
			_, err := e.c.AddVersion(e.ctx, e.secret, secret.Value{})
			return err
		}},
		{"list malformed secret", func() error {
			_, err := e.c.EnabledVersions(e.ctx, "db-url")
			return err
		}},
		{"access malformed version", func() error {
			_, err := e.c.Access(e.ctx, e.secret+"/versions/")
			return err
		}},
		// "latest" is whatever is newest when the call lands.
		{"disable an alias", func() error { return e.c.Disable(e.ctx, e.secret+"/versions/latest") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Fatal("accepted")
			} else {
				assertNoPayload(t, err.Error())
			}
		})
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("refused input still reached the server: %v", calls)
	}
}

func TestDial(t *testing.T) {
	if _, err := Dial(context.Background(), "no-port"); err == nil {
		t.Fatal("Dial accepted an emulator host without a port")
	}
	// Empty host means Google's endpoint with ADC; unusable credentials
	// must fail Dial, proving it did not fall back to an unauthenticated
	// connection.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	if c, err := Dial(context.Background(), ""); err == nil {
		_ = c.Close()
		t.Fatal("Dial without emulator host and with missing credentials succeeded")
	}
}

// TestLibraryDebugLogSilenced proves that GOOGLE_SDK_GO_LOGGING_LEVEL=debug,
// which makes the library log whole requests and responses to stderr, prints
// no payload through rotary's client, while the bare library would.
func TestLibraryDebugLogSilenced(t *testing.T) {
	t.Setenv("GOOGLE_SDK_GO_LOGGING_LEVEL", "debug")
	e := newEnv(t) // before stderr is captured: Dial must not matter here

	ours := captureStderr(t, func() {
		c, err := Dial(e.ctx, e.fake.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		v, err := c.AddVersion(e.ctx, e.secret, secret.FromString(payload))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Access(e.ctx, v); err != nil {
			t.Fatal(err)
		}
	})
	assertNoPayload(t, ours)

	// Control: the same calls through the library without rotary's logger
	// option do print the payload, so the capture above can see a leak.
	bare := captureStderr(t, func() {
		sm, err := secretmanager.NewClient(e.ctx,
			option.WithEndpoint(e.fake.Addr()),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		if err != nil {
			t.Fatal(err)
		}
		defer sm.Close()
		if _, err := sm.AccessSecretVersion(e.ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: e.version(1)}); err != nil {
			t.Fatal(err)
		}
	})
	leaked := false
	for _, f := range leakForms(payload) {
		leaked = leaked || strings.Contains(bare, f)
	}
	if !leaked {
		t.Fatalf("control: the bare library did not log the payload; the leak check cannot see leaks. Output:\n%s", bare)
	}
}

// captureStderr runs fn with os.Stderr redirected to a file and returns what
// was written. The library binds os.Stderr when a client is made.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stderr
	os.Stderr = f
	func() {
		defer func() { os.Stderr = orig }()
		fn()
	}()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}
