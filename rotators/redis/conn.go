package redis

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Redis connection limits.
const (
	dialTimeout = 5 * time.Second
	ioTimeout   = 10 * time.Second
	// respVersion: RESP2 replies (flat arrays) are what aclUserFrom parses
	// first; RESP3 maps are handled too.
	respVersion = 2
)

// passwordBytes is the entropy of a new password (hex-encoded: 64 characters,
// safe in env vars, URLs and redis.conf without quoting).
const passwordBytes = 32

// newPassword reads a new password from r.
func newPassword(r io.Reader) (secret.Value, error) {
	raw := make([]byte, passwordBytes)
	if _, err := io.ReadFull(r, raw); err != nil {
		return secret.Value{}, fmt.Errorf("generating a new password: %w", err)
	}
	out := make([]byte, hex.EncodedLen(len(raw)))
	hex.Encode(out, raw)
	clear(raw)
	return secret.New(out), nil
}

// hashOf is the SHA-256 hex of a password: the form ACL GETUSER lists and
// the `#`/`!` rules take. It is a crackable verifier: never keep or show it.
func hashOf(v secret.Value) string {
	sum := sha256.Sum256(v.Reveal())
	return hex.EncodeToString(sum[:])
}

// scrubber removes the secrets in play (values and hashes) from error texts:
// Redis echoes ACL SETUSER rules (`#<hash>`, `!<hash>`) in its errors.
type scrubber struct{ texts []string }

// add registers values, and their hashes.
func (s *scrubber) add(vs ...secret.Value) {
	for _, v := range vs {
		if !v.IsZero() {
			s.texts = append(s.texts, string(v.Reveal()), hashOf(v))
		}
	}
}

// addHashes registers hashes read from Redis (of passwords rotary may not know).
func (s *scrubber) addHashes(hs ...string) {
	for _, h := range hs {
		if h != "" {
			s.texts = append(s.texts, h)
		}
	}
}

func (s *scrubber) clean(msg string) string {
	for _, t := range s.texts {
		msg = strings.ReplaceAll(msg, t, secret.Redacted)
	}
	return msg
}

// redisError is a Redis failure whose text was scrubbed. It deliberately
// does not wrap the original error, whose text may hold a password or hash;
// it unwraps to a context error only, so timeouts still read as timeouts.
type redisError struct {
	msg   string
	cause error
}

func (e *redisError) Error() string { return e.msg }
func (e *redisError) Unwrap() error { return e.cause }

// fail turns a Redis client error into a scrubbed one. Authentication and
// permission errors are permanent: retrying cannot fix a password or an ACL.
func (s *scrubber) fail(what string, err error) error {
	e := &redisError{msg: what + ": " + s.clean(err.Error())}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.cause = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		e.cause = context.Canceled
	}
	if goredis.IsAuthError(err) || goredis.IsPermissionError(err) {
		return rotators.Permanent(e)
	}
	return e
}

// dial returns a client that logs in as user with password on its first
// command. It holds one connection and never retries on its own: steps are
// retried whole, re-reading state first.
func (x *rotation) dial(user string, password secret.Value) *goredis.Client {
	if user == redisDefaultUser {
		// AUTH <password> (no user name) also works on servers without ACLs.
		user = ""
	}
	opts := &goredis.Options{
		Addr:                     x.address,
		Username:                 user,
		Password:                 string(password.Reveal()),
		Protocol:                 respVersion,
		DisableIdentity:          true,
		MaxRetries:               -1,
		PoolSize:                 1,
		DialTimeout:              dialTimeout,
		ReadTimeout:              ioTimeout,
		WriteTimeout:             ioTimeout,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if x.r.s.TLS {
		host, _, _ := net.SplitHostPort(x.address)
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	return goredis.NewClient(opts)
}

// session is one step's access to the Secrets and to Redis. Every secret it
// reads is registered with its scrubber, and every Redis error goes through it.
type session struct {
	x     *rotation
	run   rotators.Run
	cl    Cluster
	sc    scrubber
	admin *goredis.Client
}

func (x *rotation) open(run rotators.Run) (*session, error) {
	if x.r.clients.Cluster == nil {
		return nil, rotators.Permanent(errors.New("no Kubernetes client is configured"))
	}
	return &session{x: x, run: run, cl: x.r.clients.Cluster}, nil
}

func (s *session) close() {
	if s.admin != nil {
		_ = s.admin.Close() // closing a client that is done; nothing to report
		s.admin = nil
	}
}

func (s *session) secretRef() string { return s.x.namespace + "/" + s.x.secretName }

// readKey reads the password key of Secret ns/name.
func (s *session) readKey(ctx context.Context, name string) (secret.Value, error) {
	data, err := s.cl.SecretData(ctx, s.x.namespace, name)
	if err != nil {
		return secret.Value{}, fmt.Errorf("reading Secret %s/%s: %w", s.x.namespace, name, err)
	}
	v, ok := data[s.x.secretKey]
	if !ok || v.IsZero() {
		return secret.Value{}, rotators.Permanent(fmt.Errorf("Secret %s/%s has no key %s (or it is empty)", s.x.namespace, name, s.x.secretKey))
	}
	s.sc.add(v)
	return v, nil
}

// current is the password the Secret holds now.
func (s *session) current(ctx context.Context) (secret.Value, error) {
	return s.readKey(ctx, s.x.secretName)
}

// old is the password before the rotation, read from the backup Secret:
// rotary never stores it anywhere else.
func (s *session) old(ctx context.Context) (secret.Value, error) {
	name := s.run.Fact(factBackup)
	if name == "" {
		return secret.Value{}, rotators.Permanent(fmt.Errorf("no backup of Secret %s is recorded (fact %s): step %s has not run", s.secretRef(), factBackup, StepBackup))
	}
	return s.readKey(ctx, name)
}

// Which password logged the admin in, when it is the rotated one.
const (
	loggedInWithCredential = "credential"
	loggedInWithCurrent    = "current"
	loggedInWithOld        = "old"
)

type candidate struct {
	which, from string
	password    secret.Value
}

// connectAdmin logs in as the admin user and returns which password worked.
// In requirepass mode with admin_user default, the admin's password is the
// rotated one: Redis holds either the Secret's current value or the
// backup's (see the package doc), so both are tried, current first.
// Otherwise the password is the credential named in admin_password_env.
func (s *session) connectAdmin(ctx context.Context) (string, error) {
	var cands []candidate
	if s.x.r.s.adminRotated() {
		cur, err := s.current(ctx)
		if err != nil {
			return "", err
		}
		cands = append(cands, candidate{loggedInWithCurrent, "the password in Secret " + s.secretRef(), cur})
		if s.run.Fact(factBackup) != "" {
			old, err := s.old(ctx)
			if err != nil {
				return "", err
			}
			if !old.Equal(cur) {
				cands = append(cands, candidate{loggedInWithOld, "the password in backup Secret " + s.x.namespace + "/" + s.run.Fact(factBackup), old})
			}
		}
	} else {
		creds := s.x.r.clients.Creds
		if creds == nil {
			return "", rotators.Permanent(errors.New("no credential source is configured"))
		}
		v, err := creds.Lookup(s.x.adminCred)
		if err != nil {
			return "", rotators.Permanent(fmt.Errorf("looking up the Redis admin password (credential %s): %w", s.x.adminCred, err))
		}
		if v.IsZero() {
			return "", rotators.Permanent(fmt.Errorf("the Redis admin password (credential %s) is empty", s.x.adminCred))
		}
		s.sc.add(v)
		cands = append(cands, candidate{loggedInWithCredential, "the password in credential " + s.x.adminCred, v})
	}
	var tried []string
	for _, c := range cands {
		cl := s.x.dial(s.x.adminUser, c.password)
		err := cl.Ping(ctx).Err()
		if err == nil {
			s.admin = cl
			return c.which, nil
		}
		_ = cl.Close() // a failed login's client; nothing to report
		if !goredis.IsAuthError(err) {
			return "", s.sc.fail(fmt.Sprintf("connecting to Redis at %s as %s", s.x.address, s.x.adminUser), err)
		}
		tried = append(tried, c.from)
	}
	msg := fmt.Sprintf("Redis at %s refuses %s as user %s", s.x.address, strings.Join(tried, " and "), s.x.adminUser)
	if s.x.r.s.adminRotated() {
		msg += ": its password was changed outside this rotation; set it back by hand (or fix the Secret)"
	}
	return "", rotators.Permanent(errors.New(msg))
}

// authenticates reports whether user logs in with password, on a fresh
// connection. A login that may not run PING still counts as a login.
func (s *session) authenticates(ctx context.Context, user string, password secret.Value) (bool, error) {
	cl := s.x.dial(user, password)
	defer func() { _ = cl.Close() }() // a probe's client; nothing to report
	err := cl.Ping(ctx).Err()
	switch {
	case err == nil, goredis.IsPermissionError(err):
		return true, nil
	case goredis.IsAuthError(err):
		return false, nil
	}
	return false, s.sc.fail(fmt.Sprintf("logging in to Redis at %s as %s", s.x.address, user), err)
}

// aclUser is what ACL GETUSER says of a user.
type aclUser struct {
	flags     []string
	passwords []string // SHA-256 hex
}

func (u *aclUser) hasFlag(f string) bool     { return slices.Contains(u.flags, f) }
func (u *aclUser) hasPassword(h string) bool { return slices.Contains(u.passwords, h) }
func (u *aclUser) passwordsBut(h string) []string {
	return slices.DeleteFunc(slices.Clone(u.passwords), func(p string) bool { return p == h })
}

// getUser returns the user, or nil when Redis has no such user.
func (s *session) getUser(ctx context.Context, name string) (*aclUser, error) {
	reply, err := s.admin.Do(ctx, "ACL", "GETUSER", name).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.sc.fail("ACL GETUSER "+name, err)
	}
	u, err := aclUserFrom(reply)
	if err != nil {
		return nil, fmt.Errorf("ACL GETUSER %s: %w", name, err)
	}
	s.sc.addHashes(u.passwords...)
	return u, nil
}

// aclUserFrom parses ACL GETUSER's reply: a flat key/value array (RESP2) or
// a map (RESP3).
func aclUserFrom(reply any) (*aclUser, error) {
	fields := map[string]any{}
	switch r := reply.(type) {
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			k, ok := r[i].(string)
			if !ok {
				return nil, fmt.Errorf("unexpected reply: field name of type %T", r[i])
			}
			fields[k] = r[i+1]
		}
	case map[any]any:
		for k, v := range r {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("unexpected reply: field name of type %T", k)
			}
			fields[ks] = v
		}
	default:
		return nil, fmt.Errorf("unexpected reply of type %T", reply)
	}
	u := &aclUser{}
	var err error
	if u.flags, err = stringList(fields["flags"]); err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	if u.passwords, err = stringList(fields["passwords"]); err != nil {
		return nil, fmt.Errorf("passwords: %w", err)
	}
	return u, nil
}

func stringList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected type %T", v)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected element type %T", e)
		}
		out = append(out, s)
	}
	return out, nil
}

// setUser applies ACL rules to user (passwords only by hash: `#h`, `!h`).
func (s *session) setUser(ctx context.Context, user string, rules ...string) error {
	args := []any{"ACL", "SETUSER", user}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := s.admin.Do(ctx, args...).Err(); err != nil {
		return s.sc.fail("ACL SETUSER "+user, err)
	}
	return nil
}

// setRequirepass sets the default user's only password.
func (s *session) setRequirepass(ctx context.Context, v secret.Value) error {
	s.sc.add(v)
	if err := s.admin.ConfigSet(ctx, "requirepass", string(v.Reveal())).Err(); err != nil {
		return s.sc.fail("CONFIG SET requirepass", err)
	}
	return nil
}

// Ways of persisting, as Redis commands.
const (
	cmdACLSave       = "ACL SAVE"
	cmdConfigRewrite = "CONFIG REWRITE"
)

// persistCommands returns how this server's passwords are persisted, or a
// permanent error when they cannot be (checked before anything changes).
//   - requirepass mode: CONFIG REWRITE, and ACL SAVE too when Redis loads
//     users from an aclfile (which then overrides requirepass at start-up).
//   - acl mode: ACL SAVE with an aclfile, CONFIG REWRITE without; persist
//     forces one, and is refused when it would not persist the users.
func (s *session) persistCommands(ctx context.Context) ([]string, error) {
	files, err := s.admin.ConfigGet(ctx, "aclfile").Result()
	if err != nil {
		return nil, s.sc.fail("CONFIG GET aclfile", err)
	}
	aclfile := files["aclfile"]
	info, err := s.admin.Info(ctx, "server").Result()
	if err != nil {
		return nil, s.sc.fail("INFO server", err)
	}
	configFile := infoField(info, "config_file")
	noConfig := rotators.Permanent(errors.New("Redis runs without a config file, so CONFIG REWRITE cannot persist the new password and a restart of Redis would bring back the old one"))

	if s.x.r.s.Mode == ModeRequirepass {
		if configFile == "" {
			return nil, noConfig
		}
		if aclfile != "" {
			return []string{cmdConfigRewrite, cmdACLSave}, nil
		}
		return []string{cmdConfigRewrite}, nil
	}
	switch s.x.r.s.Persist {
	case PersistACLSave:
		if aclfile == "" {
			return nil, rotators.Permanent(errors.New("persist is acl_save but Redis has no aclfile configured; use persist: config_rewrite"))
		}
		return []string{cmdACLSave}, nil
	case PersistConfigRewrite:
		if aclfile != "" {
			return nil, rotators.Permanent(errors.New("persist is config_rewrite but Redis loads its users from an aclfile, which CONFIG REWRITE does not write; use persist: acl_save"))
		}
		if configFile == "" {
			return nil, noConfig
		}
		return []string{cmdConfigRewrite}, nil
	}
	switch {
	case aclfile != "":
		return []string{cmdACLSave}, nil
	case configFile != "":
		return []string{cmdConfigRewrite}, nil
	}
	return nil, rotators.Permanent(errors.New("Redis has neither an aclfile nor a config file, so the new password cannot be persisted and a restart of Redis would bring back the old one"))
}

// persist runs the persist commands.
func (s *session) persist(ctx context.Context, cmds []string) error {
	for _, c := range cmds {
		args := []any{}
		for _, w := range strings.Fields(c) {
			args = append(args, w)
		}
		if err := s.admin.Do(ctx, args...).Err(); err != nil {
			return s.sc.fail(c, err)
		}
	}
	return nil
}

// infoField returns field's value in an INFO reply ("field:value" lines).
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), field+":"); ok {
			return v
		}
	}
	return ""
}
