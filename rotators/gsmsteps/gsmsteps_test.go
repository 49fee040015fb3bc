package gsmsteps_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/gsmsteps"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const (
	secretName  = "projects/p/secrets/s"
	restoredKey = "restored_version"
	// testTimeout bounds every test's RPCs so a bug fails in seconds.
	testTimeout = 10 * time.Second
)

// version is the name of version n of secretName.
func version(n string) string { return secretName + "/versions/" + n }

// fakeRun is the part of rotators.Run that Restore uses: facts and a log.
type fakeRun struct {
	rotators.Run // nil: a call outside the part below panics
	facts        map[string]string
	log          bytes.Buffer
	recordErr    error
}

func (r *fakeRun) Fact(key string) string { return r.facts[key] }
func (r *fakeRun) Log() *slog.Logger      { return slog.New(slog.NewTextHandler(&r.log, nil)) }
func (r *fakeRun) Record(_ context.Context, key, value string) error {
	if r.recordErr != nil {
		return r.recordErr
	}
	r.facts[key] = value
	return nil
}

// setup starts a Secret Manager fake holding values (versions 1…n, all
// enabled) and returns it with a real client to it.
func setup(t *testing.T, values ...string) (*gsmfake.Server, *gsm.Client, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	srv, err := gsmfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.CreateSecret(secretName); err != nil {
		t.Fatal(err)
	}
	c, err := gsm.Dial(ctx, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for _, v := range values {
		if _, err := c.AddVersion(ctx, secretName, secret.New([]byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	return srv, c, ctx
}

// states returns "<n>=<state>:<payload>" for every version, oldest first.
func states(srv *gsmfake.Server) []string {
	var out []string
	for _, v := range srv.Versions(secretName) {
		_, n, _ := strings.Cut(v.Name, "/versions/")
		out = append(out, n+"="+v.State+":"+string(v.Payload))
	}
	return out
}

func TestRestore(t *testing.T) {
	const e, d = gsmfake.StateEnabled, gsmfake.StateDisabled
	tests := []struct {
		name   string
		values []string // versions 1…n before the step
		prev   string
		facts  map[string]string
		// disable lists versions disabled before the step (an earlier attempt).
		disable      []string
		want         string // the restored version; "" = ErrNothingToUndo
		wantVersions []string
	}{
		{
			name:   "new version recorded",
			values: []string{"old-value", "new-value"}, prev: version("1"),
			want:         version("3"),
			wantVersions: []string{"1=" + e + ":old-value", "2=" + d + ":new-value", "3=" + e + ":old-value"},
		},
		{
			name:   "orphan of a lost add and the new version",
			values: []string{"old-value", "orphan-value", "new-value"}, prev: version("1"),
			want:         version("4"),
			wantVersions: []string{"1=" + e + ":old-value", "2=" + d + ":orphan-value", "3=" + d + ":new-value", "4=" + e + ":old-value"},
		},
		{
			name:   "older versions are left alone",
			values: []string{"older-value", "old-value", "new-value"}, prev: version("2"),
			want:         version("4"),
			wantVersions: []string{"1=" + e + ":older-value", "2=" + e + ":old-value", "3=" + d + ":new-value", "4=" + e + ":old-value"},
		},
		{
			name:   "repeat after the restore was recorded adds nothing",
			values: []string{"old-value", "new-value", "old-value"}, prev: version("1"),
			facts:        map[string]string{restoredKey: version("3")},
			want:         version("3"),
			wantVersions: []string{"1=" + e + ":old-value", "2=" + d + ":new-value", "3=" + e + ":old-value"},
		},
		{
			name:   "repeat after a partial disable",
			values: []string{"old-value", "orphan-value", "new-value", "old-value"}, prev: version("1"),
			facts:        map[string]string{restoredKey: version("4")},
			disable:      []string{version("2")},
			want:         version("4"),
			wantVersions: []string{"1=" + e + ":old-value", "2=" + d + ":orphan-value", "3=" + d + ":new-value", "4=" + e + ":old-value"},
		},
		{
			name:   "the add never landed",
			values: []string{"old-value"}, prev: version("1"),
			wantVersions: []string{"1=" + e + ":old-value"},
		},
		{
			name:         "nothing was added",
			values:       []string{"old-value"},
			wantVersions: []string{"1=" + e + ":old-value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c, ctx := setup(t, tt.values...)
			for _, v := range tt.disable {
				if err := c.Disable(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			run := &fakeRun{facts: map[string]string{}}
			for k, v := range tt.facts {
				run.facts[k] = v
			}
			got, err := gsmsteps.Restore(ctx, run, c, secretName, tt.prev, restoredKey)
			switch {
			case tt.want == "" && !errors.Is(err, rotators.ErrNothingToUndo):
				t.Fatalf("err = %v, want ErrNothingToUndo", err)
			case tt.want != "" && err != nil:
				t.Fatal(err)
			case got != tt.want:
				t.Errorf("restored = %q, want %q", got, tt.want)
			}
			if tt.want != "" && run.facts[restoredKey] != tt.want {
				t.Errorf("fact %s = %q, want %q", restoredKey, run.facts[restoredKey], tt.want)
			}
			if gotV := states(srv); !slices.Equal(gotV, tt.wantVersions) {
				t.Errorf("versions:\n got  %q\n want %q", gotV, tt.wantVersions)
			}
			// The log names versions only.
			for _, v := range tt.values {
				if strings.Contains(run.log.String(), v) {
					t.Errorf("the log holds the secret value %q: %s", v, run.log.String())
				}
			}
		})
	}
}

func TestRestoreFailures(t *testing.T) {
	errJournal := errors.New("journal down")
	tests := []struct {
		name      string
		store     bool // false: no client configured
		failCall  string
		recordErr error
		// restored is the restored_version fact of an earlier attempt.
		restored  string
		want      string
		permanent bool
		wantAdds  int // versions after the step, of the two set up
	}{
		{name: "no store", want: "no Secret Manager client is configured", permanent: true, wantAdds: 2},
		{name: "latest fails", store: true, failCall: "ListSecretVersions", want: "reading the current version of " + secretName, wantAdds: 2},
		{name: "access fails", store: true, failCall: "AccessSecretVersion", want: "reading the previous version " + version("1"), wantAdds: 2},
		{name: "add fails", store: true, failCall: "AddSecretVersion", want: "adding the previous value to " + secretName, wantAdds: 2},
		{name: "list fails", store: true, failCall: "ListSecretVersions", restored: version("2"), want: "listing the versions of " + secretName, wantAdds: 2},
		{name: "disable fails", store: true, failCall: "DisableSecretVersion", want: "disabling " + version("2"), wantAdds: 3},
		{name: "record fails after the add", store: true, recordErr: errJournal, want: errJournal.Error(), wantAdds: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c, ctx := setup(t, "old-value", "new-value")
			var store gsmsteps.Store
			if tt.store {
				store = c
			}
			if tt.failCall != "" {
				srv.FailNext(tt.failCall, 1, codes.PermissionDenied)
			}
			run := &fakeRun{facts: map[string]string{}, recordErr: tt.recordErr}
			if tt.restored != "" {
				run.facts[restoredKey] = tt.restored
			}
			_, err := gsmsteps.Restore(ctx, run, store, secretName, version("1"), restoredKey)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if got := rotators.IsPermanent(err); got != tt.permanent {
				t.Errorf("permanent = %v, want %v (err %v)", got, tt.permanent, err)
			}
			if got := len(srv.Versions(secretName)); got != tt.wantAdds {
				t.Errorf("%d versions, want %d", got, tt.wantAdds)
			}
		})
	}
}

func TestVersionNumber(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{version("7"), 7, true},
		{version("18446744073709551615"), 18446744073709551615, true},
		{version("latest"), 0, false},
		{version(""), 0, false},
		{secretName, 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		n, ok := gsmsteps.VersionNumber(tt.in)
		if n != tt.want || ok != tt.ok {
			t.Errorf("VersionNumber(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.want, tt.ok)
		}
	}
}

func TestLatestAdded(t *testing.T) {
	tests := []struct {
		name     string
		values   []string // versions 1…n
		disable  []string
		prev     string
		restored string
		want     string
	}{
		{name: "nothing was added", values: []string{"old-value"}},
		{name: "the add never landed", values: []string{"old-value"}, prev: version("1")},
		{name: "the new version is latest", values: []string{"old-value", "new-value"}, prev: version("1"), want: version("2")},
		{name: "an orphan is latest", values: []string{"old-value", "orphan-value"}, prev: version("1"), want: version("2")},
		{name: "restored", values: []string{"old-value", "new-value", "old-value"}, prev: version("1"), restored: version("3")},
		{name: "new versions disabled by hand", values: []string{"old-value", "new-value"}, disable: []string{version("2")}, prev: version("1")},
		{name: "no enabled version", values: []string{"old-value"}, disable: []string{version("1")}, prev: version("1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c, ctx := setup(t, tt.values...)
			for _, v := range tt.disable {
				if err := c.Disable(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			got, err := gsmsteps.LatestAdded(ctx, c, secretName, tt.prev, tt.restored)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("LatestAdded = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLatestAddedFailures(t *testing.T) {
	t.Run("no store", func(t *testing.T) {
		_, err := gsmsteps.LatestAdded(context.Background(), nil, secretName, version("1"), "")
		if !rotators.IsPermanent(err) || !strings.Contains(err.Error(), "no Secret Manager client is configured") {
			t.Errorf("err = %v, want a permanent missing-client error", err)
		}
	})
	t.Run("list fails", func(t *testing.T) {
		srv, c, ctx := setup(t, "old-value", "new-value")
		srv.FailNext("ListSecretVersions", 1, codes.PermissionDenied)
		_, err := gsmsteps.LatestAdded(ctx, c, secretName, version("1"), "")
		if err == nil || !strings.Contains(err.Error(), "reading the current version of "+secretName) || rotators.IsPermanent(err) {
			t.Errorf("err = %v, want a wrapped, retryable read error", err)
		}
	})
}
