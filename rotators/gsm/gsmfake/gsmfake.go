// Package gsmfake is an in-process Google Secret Manager: a real gRPC server
// on a loopback port that the official client reaches through
// gsm.Dial(ctx, server.Addr()). Tests use it, and so can a local demo mode,
// which is why it does not import "testing".
//
// It models the parts of Secret Manager rotary relies on, with the real
// service's status codes: secrets, numbered versions and their
// ENABLED/DISABLED/DESTROYED states, CRC32C validation of uploads, the
// "latest" alias, listing with the "state:" filter and paging. Everything
// else answers UNIMPLEMENTED.
//
// For tests it records every call (Calls), keeps every payload ever stored
// (Payloads, for leak scans) and injects faults: FailNext makes calls fail
// with a status code, Stall holds calls until released or until the caller
// gives up, IgnoreFilters plays a server without filter support and
// CorruptAccessChecksum plays bit rot.
//
// Error messages name resources, never payloads, like the real service.
package gsmfake

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits of the real service that the fake enforces.
const (
	// MaxPayloadBytes is Secret Manager's payload size limit (64 KiB).
	MaxPayloadBytes = 64 * 1024
	// DefaultPageSize is used when a list request gives no page size. The
	// real server picks its own; a small one makes every client page.
	DefaultPageSize = 5
	// maxPageSize caps page_size as the real service does.
	maxPageSize = 25000
)

// Version states as Versions reports them (secretmanagerpb enum names).
const (
	StateEnabled   = "ENABLED"
	StateDisabled  = "DISABLED"
	StateDestroyed = "DESTROYED"
)

// Version is a snapshot of one stored version, for assertions.
type Version struct {
	Name  string
	State string // StateEnabled, StateDisabled or StateDestroyed
	// Payload is a copy of the data; nil once destroyed.
	Payload    []byte
	CreateTime time.Time
	// ClientChecksum reports whether the upload carried data_crc32c.
	ClientChecksum bool
}

// Server is the fake service. Its methods are safe for concurrent use.
type Server struct {
	lis    net.Listener
	grpc   *grpc.Server
	served chan struct{} // closed when Serve has returned
	closed chan struct{} // closed by Close; releases stalled calls
	once   sync.Once
	now    func() time.Time

	mu            sync.Mutex
	secrets       map[string]*fakeSecret
	payloads      [][]byte
	calls         []string
	failures      map[string]failure
	stalls        map[string]*gate
	ignoreFilters bool
}

// service is the gRPC face of a Server. It is a type of its own because
// Server.CreateSecret (the helper) and the CreateSecret RPC share a name.
type service struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	s *Server
}

type fakeSecret struct {
	created  time.Time
	versions []*fakeVersion // versions[i] is number i+1
}

type fakeVersion struct {
	state          secretmanagerpb.SecretVersion_State
	data           []byte
	crc            int64
	clientChecksum bool
	corrupt        bool // CorruptAccessChecksum
	created        time.Time
	destroyed      time.Time
}

type failure struct {
	left int
	code codes.Code
}

// gate holds the calls of one stalled method.
type gate struct {
	release     chan struct{}
	releaseOnce sync.Once
	arrived     chan struct{} // closed when the first call is held
	arriveOnce  sync.Once
}

// Start serves a new, empty Secret Manager on 127.0.0.1 at a free port.
func Start() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gsmfake: listen: %w", err)
	}
	s := &Server{
		lis:      lis,
		served:   make(chan struct{}),
		closed:   make(chan struct{}),
		now:      time.Now,
		secrets:  map[string]*fakeSecret{},
		failures: map[string]failure{},
		stalls:   map[string]*gate{},
	}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	secretmanagerpb.RegisterSecretManagerServiceServer(s.grpc, &service{s: s})
	go func() {
		defer close(s.served)
		// Serve returns only when Close stops the server.
		_ = s.grpc.Serve(lis)
	}()
	return s, nil
}

// Addr is the host:port to pass to gsm.Dial.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Close stops the server, ends stalled calls and drops open connections.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.grpc.Stop()
		<-s.served
	})
}

// CreateSecret creates an empty secret named "projects/<p>/secrets/<id>".
func (s *Server) CreateSecret(name string) error {
	if !validSecretName(name) {
		return fmt.Errorf("gsmfake: %q is not a secret name (projects/<project>/secrets/<id>)", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return fmt.Errorf("gsmfake: secret %s already exists", name)
	}
	s.secrets[name] = &fakeSecret{created: s.now()}
	return nil
}

// Versions returns snapshots of secretName's versions, oldest (number 1)
// first; nil for an unknown secret.
func (s *Server) Versions(secretName string) []Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[secretName]
	if !ok {
		return nil
	}
	out := make([]Version, len(sec.versions))
	for i, v := range sec.versions {
		out[i] = Version{
			Name:           versionName(secretName, i+1),
			State:          v.state.String(),
			Payload:        clone(v.data),
			CreateTime:     v.created,
			ClientChecksum: v.clientChecksum,
		}
	}
	return out
}

// Payloads returns a copy of every payload ever stored, in order, including
// those of versions destroyed since.
func (s *Server) Payloads() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.payloads))
	for i, p := range s.payloads {
		out[i] = clone(p)
	}
	return out
}

// Calls returns the names of the methods called so far (e.g.
// "AddSecretVersion"), in arrival order, including calls that failed or were
// stalled.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// FailNext makes the next n calls of method (e.g. "AccessSecretVersion")
// fail with code before they touch any state. It replaces an earlier
// FailNext for the same method; n <= 0 clears it. It panics on a method the
// service does not have, so a typo cannot make a test pass vacuously.
func (s *Server) FailNext(method string, n int, code codes.Code) {
	mustBeMethod(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.failures, method)
		return
	}
	s.failures[method] = failure{left: n, code: code}
}

// Stall holds every call of method until release is called, the caller's
// context ends (the call then fails with the context's status) or the server
// is closed. Stalling a method that is already stalled shares its gate.
// release may be called more than once.
func (s *Server) Stall(method string) (release func()) {
	mustBeMethod(method)
	s.mu.Lock()
	g, ok := s.stalls[method]
	if !ok {
		g = &gate{release: make(chan struct{}), arrived: make(chan struct{})}
		s.stalls[method] = g
	}
	s.mu.Unlock()
	return func() {
		g.releaseOnce.Do(func() { close(g.release) })
		s.mu.Lock()
		if s.stalls[method] == g {
			delete(s.stalls, method)
		}
		s.mu.Unlock()
	}
}

// WaitStalled blocks until a call of the stalled method is being held, so a
// test knows the call reached the server without sleeping.
func (s *Server) WaitStalled(ctx context.Context, method string) error {
	mustBeMethod(method)
	s.mu.Lock()
	g, ok := s.stalls[method]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("gsmfake: %s is not stalled", method)
	}
	select {
	case <-g.arrived:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gsmfake: waiting for a stalled %s call: %w", method, ctx.Err())
	}
}

// IgnoreFilters makes ListSecretVersions ignore its filter, like a server
// without filter support, so clients must check states themselves.
func (s *Server) IgnoreFilters(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreFilters = ignore
}

// CorruptAccessChecksum makes AccessSecretVersion of versionName return a
// data_crc32c that does not match the data, as if the payload rotted.
func (s *Server) CorruptAccessChecksum(versionName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.lookupLocked(versionName)
	if err != nil {
		return fmt.Errorf("gsmfake: corrupt checksum: %w", err)
	}
	v.corrupt = true
	return nil
}

// intercept records the call, then applies Stall and FailNext.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	s.mu.Lock()
	s.calls = append(s.calls, method)
	g := s.stalls[method]
	s.mu.Unlock()

	if g != nil {
		g.arriveOnce.Do(func() { close(g.arrived) })
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-s.closed:
			return nil, status.Error(codes.Unavailable, "gsmfake: server closed")
		}
	}

	s.mu.Lock()
	f, failing := s.failures[method]
	if failing {
		f.left--
		if f.left == 0 {
			delete(s.failures, method)
		} else {
			s.failures[method] = f
		}
	}
	s.mu.Unlock()
	if failing {
		return nil, status.Errorf(f.code, "gsmfake: injected failure of %s", method)
	}
	return handler(ctx, req)
}

// CreateSecret implements the RPC.
func (r *service) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	s := r.s
	if !validProject(req.GetParent()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", req.GetParent())
	}
	if !validSecretID(req.GetSecretId()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret_id %q", req.GetSecretId())
	}
	name := req.GetParent() + "/secrets/" + req.GetSecretId()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	sec := &fakeSecret{created: s.now()}
	s.secrets[name] = sec
	return secretProto(name, sec), nil
}

// GetSecret implements the RPC.
func (r *service) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.GetName())
	}
	return secretProto(req.GetName(), sec), nil
}

// AddSecretVersion implements the RPC.
func (r *service) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s := r.s
	p := req.GetPayload()
	if p == nil {
		return nil, status.Error(codes.InvalidArgument, "payload is required")
	}
	if len(p.GetData()) > MaxPayloadBytes {
		return nil, status.Errorf(codes.InvalidArgument, "payload is larger than %d bytes", MaxPayloadBytes)
	}
	sum := crc32c(p.GetData())
	if p.DataCrc32C != nil && *p.DataCrc32C != sum {
		return nil, status.Errorf(codes.InvalidArgument, "Checksum mismatch for the payload of a new version of [%s].", req.GetParent())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[req.GetParent()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.GetParent())
	}
	v := &fakeVersion{
		state:          secretmanagerpb.SecretVersion_ENABLED,
		data:           clone(p.GetData()),
		crc:            sum,
		clientChecksum: p.DataCrc32C != nil,
		created:        s.now(),
	}
	sec.versions = append(sec.versions, v)
	s.payloads = append(s.payloads, clone(p.GetData()))
	return versionProto(versionName(req.GetParent(), len(sec.versions)), v), nil
}

// AccessSecretVersion implements the RPC. "latest" is the most recently
// created version whatever its state, as in the real service, so it fails
// when that version is disabled.
func (r *service) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	name, v, err := s.lookupLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	if v.state != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", name, v.state)
	}
	sum := v.crc
	if v.corrupt {
		sum ^= 1
	}
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    name,
		Payload: &secretmanagerpb.SecretPayload{Data: clone(v.data), DataCrc32C: &sum},
	}, nil
}

// GetSecretVersion implements the RPC.
func (r *service) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	name, v, err := s.lookupLocked(req.GetName())
	if err != nil {
		return nil, err
	}
	return versionProto(name, v), nil
}

// ListSecretVersions implements the RPC: newest first, filter "" or
// "state:<STATE>", page tokens are opaque.
func (r *service) ListSecretVersions(_ context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	s := r.s
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Error(codes.InvalidArgument, "page_size must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	offset, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want, err := parseStateFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	if s.ignoreFilters {
		want = secretmanagerpb.SecretVersion_STATE_UNSPECIFIED
	}
	sec, ok := s.secrets[req.GetParent()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.GetParent())
	}
	var all []*secretmanagerpb.SecretVersion
	for n := len(sec.versions); n >= 1; n-- {
		v := sec.versions[n-1]
		if want == secretmanagerpb.SecretVersion_STATE_UNSPECIFIED || v.state == want {
			all = append(all, versionProto(versionName(req.GetParent(), n), v))
		}
	}
	if offset > len(all) {
		return nil, status.Error(codes.InvalidArgument, "invalid page_token")
	}
	end := min(offset+size, len(all))
	resp := &secretmanagerpb.ListSecretVersionsResponse{
		Versions:  all[offset:end],
		TotalSize: int32(len(all)),
	}
	if end < len(all) {
		resp.NextPageToken = encodePageToken(end)
	}
	return resp, nil
}

// DisableSecretVersion implements the RPC. A disabled version stays
// disabled; a destroyed one is FAILED_PRECONDITION.
func (r *service) DisableSecretVersion(_ context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return r.s.setState(req.GetName(), secretmanagerpb.SecretVersion_DISABLED)
}

// EnableSecretVersion implements the RPC.
func (r *service) EnableSecretVersion(_ context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return r.s.setState(req.GetName(), secretmanagerpb.SecretVersion_ENABLED)
}

// DestroySecretVersion implements the RPC: the data is gone for good (it
// stays in Payloads, which is the fake's own memory for leak scans).
func (r *service) DestroySecretVersion(_ context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return r.s.setState(req.GetName(), secretmanagerpb.SecretVersion_DESTROYED)
}

func (s *Server) setState(name string, to secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, v, err := s.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	if v.state == secretmanagerpb.SecretVersion_DESTROYED {
		if to == secretmanagerpb.SecretVersion_DESTROYED {
			return versionProto(name, v), nil
		}
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", name)
	}
	v.state = to
	if to == secretmanagerpb.SecretVersion_DESTROYED {
		v.data = nil
		v.destroyed = s.now()
	}
	return versionProto(name, v), nil
}

// lookupLocked resolves a version name (numeric or "latest") to its
// canonical name and state. s.mu must be held.
func (s *Server) lookupLocked(name string) (string, *fakeVersion, error) {
	secretName, id, ok := splitVersionName(name)
	if !ok {
		return "", nil, status.Errorf(codes.InvalidArgument, "invalid version name %q", name)
	}
	sec, ok := s.secrets[secretName]
	if !ok {
		return "", nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", secretName)
	}
	n := len(sec.versions)
	if id != "latest" {
		var err error
		n, err = strconv.Atoi(id)
		if err != nil || n < 1 {
			return "", nil, status.Errorf(codes.InvalidArgument, "invalid version id %q", id)
		}
	}
	if n < 1 || n > len(sec.versions) {
		return "", nil, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", name)
	}
	return versionName(secretName, n), sec.versions[n-1], nil
}

// validProject accepts "projects/<project>".
func validProject(parent string) bool {
	p, ok := strings.CutPrefix(parent, "projects/")
	return ok && p != "" && !strings.Contains(p, "/")
}

// validSecretID accepts what Secret Manager accepts: [A-Za-z0-9_-]{1,255}.
func validSecretID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validSecretName accepts "projects/<project>/secrets/<id>".
func validSecretName(name string) bool {
	parent, id, ok := strings.Cut(name, "/secrets/")
	return ok && validProject(parent) && validSecretID(id)
}

// splitVersionName splits "projects/<p>/secrets/<s>/versions/<v>".
func splitVersionName(name string) (secretName, id string, ok bool) {
	secretName, id, ok = strings.Cut(name, "/versions/")
	if !ok || !validSecretName(secretName) || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return secretName, id, true
}

func versionName(secretName string, n int) string {
	return secretName + "/versions/" + strconv.Itoa(n)
}

func secretProto(name string, sec *fakeSecret) *secretmanagerpb.Secret {
	return &secretmanagerpb.Secret{
		Name:       name,
		CreateTime: timestamppb.New(sec.created),
		Replication: &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		},
	}
}

func versionProto(name string, v *fakeVersion) *secretmanagerpb.SecretVersion {
	pb := &secretmanagerpb.SecretVersion{
		Name:                           name,
		State:                          v.state,
		CreateTime:                     timestamppb.New(v.created),
		ClientSpecifiedPayloadChecksum: v.clientChecksum,
	}
	if !v.destroyed.IsZero() {
		pb.DestroyTime = timestamppb.New(v.destroyed)
	}
	return pb
}

// parseStateFilter understands "" and "state:<STATE>" (also "state=").
func parseStateFilter(filter string) (secretmanagerpb.SecretVersion_State, error) {
	f := strings.TrimSpace(filter)
	if f == "" {
		return secretmanagerpb.SecretVersion_STATE_UNSPECIFIED, nil
	}
	key, val, ok := strings.Cut(f, ":")
	if !ok {
		key, val, ok = strings.Cut(f, "=")
	}
	if ok && strings.EqualFold(strings.TrimSpace(key), "state") {
		st, known := secretmanagerpb.SecretVersion_State_value[strings.ToUpper(strings.TrimSpace(val))]
		if known && st != int32(secretmanagerpb.SecretVersion_STATE_UNSPECIFIED) {
			return secretmanagerpb.SecretVersion_State(st), nil
		}
	}
	return 0, status.Errorf(codes.InvalidArgument, "gsmfake: unsupported filter %q", filter)
}

const pageTokenPrefix = "gsmfake-offset:"

func encodePageToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.Itoa(offset)))
}

func decodePageToken(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	errBad := status.Error(codes.InvalidArgument, "invalid page_token")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, errBad
	}
	digits, ok := strings.CutPrefix(string(raw), pageTokenPrefix)
	if !ok {
		return 0, errBad
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 {
		return 0, errBad
	}
	return n, nil
}

func mustBeMethod(method string) {
	for _, m := range secretmanagerpb.SecretManagerService_ServiceDesc.Methods {
		if m.MethodName == method {
			return
		}
	}
	panic(errors.New("gsmfake: SecretManagerService has no method " + strconv.Quote(method)))
}

func crc32c(data []byte) int64 {
	return int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
