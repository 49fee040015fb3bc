package gsmfake_test

import (
	"context"
	"hash/crc32"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
)

const (
	secretName = "projects/p/secrets/s"
	// testTimeout bounds every test's RPCs so a bug hangs for seconds, not
	// until the test binary's timeout.
	testTimeout = 10 * time.Second
)

// setup starts a fake with one secret and a raw gRPC client to it: these
// tests check the server's protocol, independent of rotary's adapter.
func setup(t *testing.T) (*gsmfake.Server, secretmanagerpb.SecretManagerServiceClient, context.Context) {
	t.Helper()
	srv, err := gsmfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.CreateSecret(secretName); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return srv, secretmanagerpb.NewSecretManagerServiceClient(conn), ctx
}

func crc(b []byte) *int64 {
	v := int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return &v
}

func add(t *testing.T, ctx context.Context, c secretmanagerpb.SecretManagerServiceClient, data string) string {
	t.Helper()
	v, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secretName,
		Payload: &secretmanagerpb.SecretPayload{Data: []byte(data), DataCrc32C: crc([]byte(data))},
	})
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	return v.GetName()
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code = %v (err %v), want %v", got, err, want)
	}
}

func TestAddSecretVersionValidates(t *testing.T) {
	wrong := int64(12345)
	tests := []struct {
		name   string
		parent string
		data   string
		sum    *int64
		want   codes.Code
	}{
		{"checksum ok", secretName, "v1", crc([]byte("v1")), codes.OK},
		{"no checksum", secretName, "v1", nil, codes.OK},
		{"checksum mismatch", secretName, "v1", &wrong, codes.InvalidArgument},
		{"unknown secret", "projects/p/secrets/nope", "v1", crc([]byte("v1")), codes.NotFound},
		{"too large", secretName, string(make([]byte, gsmfake.MaxPayloadBytes+1)), nil, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c, ctx := setup(t)
			_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
				Parent:  tt.parent,
				Payload: &secretmanagerpb.SecretPayload{Data: []byte(tt.data), DataCrc32C: tt.sum},
			})
			wantCode(t, err, tt.want)
			stored := len(srv.Payloads())
			if tt.want == codes.OK {
				vs := srv.Versions(secretName)
				if stored != 1 || len(vs) != 1 || vs[0].ClientChecksum != (tt.sum != nil) || vs[0].State != gsmfake.StateEnabled {
					t.Fatalf("stored %d payloads, versions %+v", stored, vs)
				}
			} else if stored != 0 {
				t.Fatalf("a rejected payload was stored")
			}
		})
	}
}

func TestAccessAndLatestAlias(t *testing.T) {
	srv, c, ctx := setup(t)
	v1 := add(t, ctx, c, "one")
	v2 := add(t, ctx, c, "two")

	resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secretName + "/versions/latest"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetName() != v2 || string(resp.GetPayload().GetData()) != "two" || *resp.GetPayload().DataCrc32C != *crc([]byte("two")) {
		t.Fatalf("latest = %s %q", resp.GetName(), resp.GetPayload().GetData())
	}

	// As in the real service, "latest" is the newest version whatever its
	// state: once it is disabled, "latest" fails rather than falling back.
	if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v2}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secretName + "/versions/latest"})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v2})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secretName + "/versions/9"})
	wantCode(t, err, codes.NotFound)

	if err := srv.CorruptAccessChecksum(v1); err != nil {
		t.Fatal(err)
	}
	resp, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v1})
	if err != nil {
		t.Fatal(err)
	}
	if *resp.GetPayload().DataCrc32C == *crc([]byte("one")) {
		t.Fatal("CorruptAccessChecksum left the checksum intact")
	}
}

func TestStateTransitions(t *testing.T) {
	srv, c, ctx := setup(t)
	v := add(t, ctx, c, "one")
	steps := []struct {
		op   string
		want codes.Code
		then string
	}{
		{"disable", codes.OK, gsmfake.StateDisabled},
		{"disable", codes.OK, gsmfake.StateDisabled},
		{"enable", codes.OK, gsmfake.StateEnabled},
		{"destroy", codes.OK, gsmfake.StateDestroyed},
		{"disable", codes.FailedPrecondition, gsmfake.StateDestroyed},
		{"enable", codes.FailedPrecondition, gsmfake.StateDestroyed},
	}
	for i, st := range steps {
		var err error
		switch st.op {
		case "disable":
			_, err = c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v})
		case "enable":
			_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v})
		case "destroy":
			_, err = c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: v})
		}
		if got := status.Code(err); got != st.want {
			t.Fatalf("step %d %s: code %v, want %v", i, st.op, got, st.want)
		}
		got, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: v})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetState().String() != st.then {
			t.Fatalf("step %d %s: state %v, want %s", i, st.op, got.GetState(), st.then)
		}
	}
	vs := srv.Versions(secretName)
	if vs[0].Payload != nil {
		t.Fatal("destroyed version still holds its payload")
	}
	if ps := srv.Payloads(); len(ps) != 1 || string(ps[0]) != "one" {
		t.Fatalf("Payloads() = %q, want the destroyed payload kept for leak scans", ps)
	}
}

func TestListSecretVersions(t *testing.T) {
	srv, c, ctx := setup(t)
	for range 12 {
		add(t, ctx, c, "x")
	}
	for _, n := range []string{"3", "10", "12"} {
		if _, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: secretName + "/versions/" + n}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(filter string, pageSize int32) ([]string, int, error) {
		var names []string
		pages := 0
		token := ""
		for {
			resp, err := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
				Parent: secretName, Filter: filter, PageSize: pageSize, PageToken: token,
			})
			if err != nil {
				return nil, pages, err
			}
			pages++
			for _, v := range resp.GetVersions() {
				names = append(names, v.GetName()[len(secretName+"/versions/"):])
			}
			if token = resp.GetNextPageToken(); token == "" {
				return names, pages, nil
			}
		}
	}
	tests := []struct {
		name      string
		filter    string
		pageSize  int32
		ignore    bool
		want      []string
		wantPages int
		wantCode  codes.Code
	}{
		{"all, default pages", "", 0, false, []string{"12", "11", "10", "9", "8", "7", "6", "5", "4", "3", "2", "1"}, 3, codes.OK},
		{"enabled", "state:ENABLED", 0, false, []string{"11", "9", "8", "7", "6", "5", "4", "2", "1"}, 2, codes.OK},
		{"disabled, one page", "state:DISABLED", 100, false, []string{"12", "10", "3"}, 1, codes.OK},
		{"filter ignored", "state:ENABLED", 100, true, []string{"12", "11", "10", "9", "8", "7", "6", "5", "4", "3", "2", "1"}, 1, codes.OK},
		{"bad filter", "name:foo", 0, false, nil, 0, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.IgnoreFilters(tt.ignore)
			defer srv.IgnoreFilters(false)
			got, pages, err := list(tt.filter, tt.pageSize)
			wantCode(t, err, tt.wantCode)
			if !slices.Equal(got, tt.want) || pages != tt.wantPages {
				t.Fatalf("got %v in %d pages, want %v in %d", got, pages, tt.want, tt.wantPages)
			}
		})
	}
	_, err := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: secretName, PageToken: "garbage"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: "projects/p/secrets/nope"})
	wantCode(t, err, codes.NotFound)
}

func TestSecrets(t *testing.T) {
	srv, c, ctx := setup(t)
	if err := srv.CreateSecret(secretName); err == nil {
		t.Fatal("CreateSecret of an existing secret succeeded")
	}
	if err := srv.CreateSecret("projects/p/secrets/bad/name"); err == nil {
		t.Fatal("CreateSecret accepted a malformed name")
	}
	got, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/p", SecretId: "other"})
	if err != nil || got.GetName() != "projects/p/secrets/other" {
		t.Fatalf("CreateSecret = %v, %v", got, err)
	}
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/p", SecretId: "other"})
	wantCode(t, err, codes.AlreadyExists)
	if _, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: "projects/p/secrets/nope"})
	wantCode(t, err, codes.NotFound)
	_, err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: secretName})
	wantCode(t, err, codes.Unimplemented)
}

func TestFailNextAndCalls(t *testing.T) {
	srv, c, ctx := setup(t)
	v := add(t, ctx, c, "one")
	srv.FailNext("AccessSecretVersion", 2, codes.PermissionDenied)
	for i := range 3 {
		_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v})
		want := codes.PermissionDenied
		if i == 2 {
			want = codes.OK
		}
		wantCode(t, err, want)
	}
	srv.FailNext("GetSecretVersion", 1, codes.Internal)
	srv.FailNext("GetSecretVersion", 0, codes.Internal) // cleared
	if _, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: v}); err != nil {
		t.Fatal(err)
	}
	want := []string{"AddSecretVersion", "AccessSecretVersion", "AccessSecretVersion", "AccessSecretVersion", "GetSecretVersion"}
	if got := srv.Calls(); !slices.Equal(got, want) {
		t.Fatalf("Calls() = %v, want %v", got, want)
	}

	defer func() {
		if recover() == nil {
			t.Fatal("FailNext accepted a method the service does not have")
		}
	}()
	srv.FailNext("AccessSecret", 1, codes.Internal)
}

func TestStall(t *testing.T) {
	srv, c, ctx := setup(t)
	v := add(t, ctx, c, "one")

	// Released: the held call completes.
	release := srv.Stall("AccessSecretVersion")
	done := make(chan error, 1)
	go func() {
		_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v})
		done <- err
	}()
	if err := srv.WaitStalled(ctx, "AccessSecretVersion"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("stalled call returned early: %v", err)
	default:
	}
	release()
	release() // idempotent
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The caller gives up: the held call ends with the caller's deadline.
	srv.Stall("GetSecretVersion")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := c.GetSecretVersion(short, &secretmanagerpb.GetSecretVersionRequest{Name: v})
	wantCode(t, err, codes.DeadlineExceeded)

	if err := srv.WaitStalled(ctx, "ListSecretVersions"); err == nil {
		t.Fatal("WaitStalled on a method that is not stalled succeeded")
	}
}

func TestCloseEndsStalledCalls(t *testing.T) {
	srv, c, ctx := setup(t)
	srv.Stall("GetSecret")
	done := make(chan error, 1)
	go func() {
		_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName})
		done <- err
	}()
	if err := srv.WaitStalled(ctx, "GetSecret"); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if err := <-done; status.Code(err) != codes.Unavailable {
		t.Fatalf("stalled call after Close: %v, want Unavailable", err)
	}
}
