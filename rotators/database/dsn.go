package database

import (
	"errors"
	"net/url"
	"strings"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// Errors of dsnUser. They never quote the DSN: it holds a password.
var (
	errDSNSyntax = errors.New("the DSN is neither a postgresql:// URL nor keyword=value pairs rotary can read")
	errDSNNoUser = errors.New("the DSN names no user")
)

// dsnUser returns the user name of a PostgreSQL connection string: a
// postgres:// or postgresql:// URL, or libpq keyword=value pairs. Unlike
// pgx.ParseConfig it does not fall back to PGUSER or the OS user: a DSN
// without a user is an error, not a guess.
func dsnUser(dsn secret.Value) (string, error) {
	s := strings.TrimSpace(string(dsn.Reveal()))
	if strings.HasPrefix(s, "postgresql://") || strings.HasPrefix(s, "postgres://") {
		u, err := url.Parse(s)
		if err != nil {
			// url.Parse's error quotes the whole URL: do not wrap it.
			return "", errDSNSyntax
		}
		if u.User == nil || u.User.Username() == "" {
			// libpq also reads ?user=.
			if q := u.Query().Get("user"); q != "" {
				return q, nil
			}
			return "", errDSNNoUser
		}
		return u.User.Username(), nil
	}
	kv, ok := parseKeywordValue(s)
	if !ok {
		return "", errDSNSyntax
	}
	if kv["user"] == "" {
		return "", errDSNNoUser
	}
	return kv["user"], nil
}

// parseKeywordValue parses libpq's "key = value key='quoted \' value'"
// form (conninfo_parse): values are bare words or single-quoted, and a
// backslash escapes the next character in both.
func parseKeywordValue(s string) (map[string]string, bool) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	out := map[string]string{}
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return out, len(out) > 0
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if key == "" || i == len(s) || s[i] != '=' {
			return nil, false
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) && !closed {
				switch c := s[i]; {
				case c == '\\' && i+1 < len(s):
					val.WriteByte(s[i+1])
					i += 2
				case c == '\'':
					closed = true
					i++
				default:
					val.WriteByte(c)
					i++
				}
			}
			if !closed {
				return nil, false
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out[key] = val.String()
	}
}

// buildDSN fills a validated dsn_template ({env} already expanded) with user
// and password, both URL-escaped as userinfo (url.UserPassword), so a role
// name or password holding '@', ':', '/', '%' or spaces stays one value.
func buildDSN(template, user string, password secret.Value) (secret.Value, error) {
	scheme, rest, ok := splitTemplate(template)
	if !ok {
		return secret.Value{}, errors.New("dsn_template does not start with postgresql://{user}:{password}@")
	}
	userinfo := url.UserPassword(user, string(password.Reveal())).String()
	return secret.FromString(scheme + "://" + userinfo + "@" + rest), nil
}
