// Package gsm is rotary's adapter to Google Secret Manager: it adds secret
// versions, finds the enabled ones, reads them and disables them, through the
// official client (cloud.google.com/go/secretmanager) over gRPC.
//
// Rules:
//   - Secret bytes cross this package only as secret.Value. No error, log line
//     or metric made here holds a payload: errors name the secret or version
//     and wrap the gRPC status with %w, so callers can still ask
//     status.Code(err).
//   - Payloads travel with a CRC32C checksum both ways: AddVersion sends one
//     (Secret Manager then refuses a corrupted upload) and Access checks the
//     one the server returns.
//   - Version order is by version number, never by name: "10" is newer than
//     "9".
//   - Every call has a deadline: the caller's, or CallTimeout when the caller
//     gave none, so a hung connection cannot hold a rotation step forever.
//   - The client library's own request/response logging is pinned off: it
//     would print payloads when GOOGLE_SDK_GO_LOGGING_LEVEL=debug.
package gsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// CallTimeout bounds one Secret Manager call when the caller's context has
// no deadline. It is shorter than a rotation step's timeout
// (rotators.DefaultStepTimeout) so a step sees the failure and can retry.
const CallTimeout = 30 * time.Second

// enabledFilter asks the server for enabled versions only. The result is
// still checked version by version: a server (or emulator) that ignores
// filters must not make a disabled version look usable.
const enabledFilter = "state:ENABLED"

// ErrNoVersion reports that a secret has no enabled version.
var ErrNoVersion = errors.New("no enabled secret version")

// ErrChecksum reports that an accessed payload does not match the CRC32C
// checksum Secret Manager returned with it.
var ErrChecksum = errors.New("secret payload failed its CRC32C check")

// Client adds, reads and disables secret versions. It is safe for concurrent
// use. Close it when done.
type Client struct {
	sm *secretmanager.Client
	// callTimeout is CallTimeout; a field so tests can shorten it.
	callTimeout time.Duration
}

// Dial connects to Secret Manager. emulatorHost (from
// SECRETMANAGER_EMULATOR_HOST, like Google's other *_EMULATOR_HOST
// variables) non-empty → plaintext gRPC to that host:port with no
// authentication; empty → Google's endpoint with Application Default
// Credentials.
func Dial(ctx context.Context, emulatorHost string) (*Client, error) {
	opts := []option.ClientOption{
		// The library logs whole requests and responses (payloads included)
		// at debug level when GOOGLE_SDK_GO_LOGGING_LEVEL=debug. An explicit
		// logger overrides that variable, so nobody can switch it on.
		option.WithLogger(slog.New(slog.DiscardHandler)),
	}
	target := "Secret Manager"
	if emulatorHost != "" {
		if _, _, err := net.SplitHostPort(emulatorHost); err != nil {
			return nil, fmt.Errorf("gsm: emulator host %q is not host:port: %w", emulatorHost, err)
		}
		target = "Secret Manager emulator at " + emulatorHost
		opts = append(opts,
			option.WithEndpoint(emulatorHost),
			option.WithoutAuthentication(),
			// Appended after the library's own dial options, so it replaces
			// the TLS credentials the library would otherwise use.
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		)
	}
	sm, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gsm: connect to %s: %w", target, err)
	}
	return &Client{sm: sm, callTimeout: CallTimeout}, nil
}

// Close releases the connection.
func (c *Client) Close() error {
	if err := c.sm.Close(); err != nil {
		return fmt.Errorf("gsm: close: %w", err)
	}
	return nil
}

// SecretName returns the resource name "projects/<project>/secrets/<id>".
func SecretName(project, id string) string {
	return "projects/" + project + "/secrets/" + id
}

// AddVersion stores v as a new, enabled version of secretName and returns the
// version's name (".../versions/<n>"). The payload carries its CRC32C
// checksum, so Secret Manager rejects it if it was corrupted on the way.
//
// AddVersion is not idempotent: after an ambiguous failure (for example a
// deadline that expired while the call was in flight) the version may exist.
// A retrying caller looks at EnabledVersions/Access first.
func (c *Client) AddVersion(ctx context.Context, secretName string, v secret.Value) (string, error) {
	if err := checkSecretName(secretName); err != nil {
		return "", fmt.Errorf("gsm: add version: %w", err)
	}
	if v.IsZero() {
		// An empty version would be synced everywhere and break every
		// consumer; it is always a bug upstream.
		return "", fmt.Errorf("gsm: add version to %s: refusing an empty value", secretName)
	}
	data := v.Reveal()
	sum := crc32c(data)
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	ver, err := c.sm.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secretName,
		Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum},
	})
	if err != nil {
		return "", fmt.Errorf("gsm: add version to %s: %w", secretName, err)
	}
	if _, err := versionNumber(secretName, ver.GetName()); err != nil {
		return "", fmt.Errorf("gsm: add version to %s: %w", secretName, err)
	}
	return ver.GetName(), nil
}

// LatestEnabled returns the enabled version of secretName with the highest
// number. errors.Is(err, ErrNoVersion) when there is none.
func (c *Client) LatestEnabled(ctx context.Context, secretName string) (string, error) {
	versions, err := c.EnabledVersions(ctx, secretName)
	if err != nil {
		return "", err
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("gsm: latest version of %s: %w", secretName, ErrNoVersion)
	}
	return versions[0], nil
}

// EnabledVersions returns the names of secretName's enabled versions, newest
// (highest number) first. A secret without enabled versions gives an empty
// list and no error.
func (c *Client) EnabledVersions(ctx context.Context, secretName string) ([]string, error) {
	if err := checkSecretName(secretName); err != nil {
		return nil, fmt.Errorf("gsm: list versions: %w", err)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	type numbered struct {
		n    uint64
		name string
	}
	var found []numbered
	it := c.sm.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{
		Parent: secretName,
		Filter: enabledFilter,
	})
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gsm: list versions of %s: %w", secretName, err)
		}
		if v.GetState() != secretmanagerpb.SecretVersion_ENABLED {
			continue // the server ignored the filter
		}
		n, err := versionNumber(secretName, v.GetName())
		if err != nil {
			return nil, fmt.Errorf("gsm: list versions of %s: %w", secretName, err)
		}
		found = append(found, numbered{n: n, name: v.GetName()})
	}
	slices.SortFunc(found, func(a, b numbered) int {
		switch {
		case a.n > b.n:
			return -1
		case a.n < b.n:
			return 1
		}
		return 0
	})
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.name
	}
	return names, nil
}

// Access reads the payload of versionName (".../versions/<n>"). It fails with
// ErrChecksum when the server's CRC32C checksum does not match the bytes.
func (c *Client) Access(ctx context.Context, versionName string) (secret.Value, error) {
	if _, _, err := splitVersionName(versionName); err != nil {
		return secret.Value{}, fmt.Errorf("gsm: access: %w", err)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.sm.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: versionName})
	if err != nil {
		return secret.Value{}, fmt.Errorf("gsm: access %s: %w", versionName, err)
	}
	p := resp.GetPayload()
	data := p.GetData()
	if p.DataCrc32C != nil && *p.DataCrc32C != crc32c(data) {
		return secret.Value{}, fmt.Errorf("gsm: access %s: %w", versionName, ErrChecksum)
	}
	return secret.New(data), nil
}

// Disable disables versionName (".../versions/<n>"). Disabling a disabled
// version succeeds, so a resumed step can repeat it; a destroyed version is an
// error (FAILED_PRECONDITION, wrapped).
func (c *Client) Disable(ctx context.Context, versionName string) error {
	secretName, _, err := splitVersionName(versionName)
	if err != nil {
		return fmt.Errorf("gsm: disable: %w", err)
	}
	// An alias such as "latest" names whatever is newest when the call
	// lands; disabling must name exactly the version that was decided on.
	if _, err := versionNumber(secretName, versionName); err != nil {
		return fmt.Errorf("gsm: disable %s: only a numbered version can be disabled: %w", versionName, err)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	_, err = c.sm.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: versionName})
	if err == nil {
		return nil
	}
	if status.Code(err) != codes.FailedPrecondition {
		return fmt.Errorf("gsm: disable %s: %w", versionName, err)
	}
	// FAILED_PRECONDITION: either already disabled (done) or destroyed.
	ver, getErr := c.sm.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: versionName})
	if getErr != nil {
		return fmt.Errorf("gsm: disable %s: %w (reading its state: %w)", versionName, err, getErr)
	}
	if ver.GetState() == secretmanagerpb.SecretVersion_DISABLED {
		return nil
	}
	return fmt.Errorf("gsm: disable %s (state %s): %w", versionName, ver.GetState(), err)
}

// callContext applies the default call timeout when ctx has no deadline.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.callTimeout)
}

// crc32c is the checksum Secret Manager uses, as its API encodes it (int64).
func crc32c(data []byte) int64 {
	return int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
}

// checkSecretName accepts "projects/<project>/secrets/<id>".
func checkSecretName(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[1] == "" || parts[2] != "secrets" || parts[3] == "" {
		return fmt.Errorf("%q is not a secret name (projects/<project>/secrets/<id>)", name)
	}
	return nil
}

// splitVersionName splits "projects/<p>/secrets/<s>/versions/<v>" into the
// secret name and the version id.
func splitVersionName(name string) (secretName, id string, err error) {
	secretName, id, ok := strings.Cut(name, "/versions/")
	if !ok || id == "" || strings.Contains(id, "/") || checkSecretName(secretName) != nil {
		return "", "", fmt.Errorf("%q is not a version name (projects/<project>/secrets/<id>/versions/<n>)", name)
	}
	return secretName, id, nil
}

// versionNumber returns n of "<secretName>/versions/<n>", and fails when the
// version belongs to another secret or n is not a number.
func versionNumber(secretName, versionName string) (uint64, error) {
	s, id, err := splitVersionName(versionName)
	if err != nil {
		return 0, err
	}
	if s != secretName {
		return 0, fmt.Errorf("version %q does not belong to %s", versionName, secretName)
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("version %q has no numeric id: %w", versionName, err)
	}
	return n, nil
}
