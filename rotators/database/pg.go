package database

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aivo-platform/rotary/rotators/secret"
)

// Session settings of the connections rotary opens.
const (
	// adminAppName is the application_name of rotary's admin sessions, so a
	// DBA can tell them apart in pg_stat_activity.
	adminAppName = "rotary"
	// ddlLockTimeout: GRANT and REASSIGN OWNED lock the application's
	// tables, and every application query would queue behind a waiting
	// lock; failing fast and trying again is kinder than a stalled app.
	ddlLockTimeout = 5 * time.Second
	// adminStatementTimeout bounds any one statement rotary runs.
	adminStatementTimeout = time.Minute
	// connectTimeout applies when the DSN sets no connect_timeout.
	connectTimeout = 15 * time.Second
)

// db is what the queries need of a connection or a transaction.
type db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ident quotes one identifier (a role, database, schema or table name).
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// tableIdent quotes "table" or "schema"."table".
func tableIdent(schema, table string) string {
	if schema == "" {
		return ident(table)
	}
	return pgx.Identifier{schema, table}.Sanitize()
}

// quoteLiterals quotes values as SQL literals with the server's own
// format('%L'), so the quoting matches the server's settings
// (standard_conforming_strings, encoding) exactly.
func quoteLiterals(ctx context.Context, q db, values ...string) ([]string, error) {
	rows, err := q.Query(ctx, "SELECT format('%L', v) FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n", values)
	if err != nil {
		return nil, fmt.Errorf("quoting literals: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("quoting literals: %w", err)
	}
	if len(out) != len(values) {
		return nil, fmt.Errorf("quoting literals: got %d for %d values", len(out), len(values))
	}
	return out, nil
}

// connect opens a session to database with base's host, port and TLS
// settings; user and password replace base's when user is set. Admin
// sessions get short lock and statement timeouts. The error never holds a
// password: pgx's connect errors name user and database only, and redact
// scrubs the passwords given anyway.
func connect(ctx context.Context, base *pgx.ConnConfig, database, user string, password secret.Value, appName string, admin bool) (*pgx.Conn, error) {
	cfg := base.Copy()
	cfg.Database = database
	if user != "" {
		cfg.User = user
		cfg.Password = string(password.Reveal())
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = appName
	if admin {
		cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(ddlLockTimeout.Milliseconds(), 10)
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(adminStatementTimeout.Milliseconds(), 10)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, redact(fmt.Errorf("connecting to database %q as role %q: %w", database, cfg.User, err), password.Reveal(), []byte(base.Password))
	}
	return conn, nil
}

// redactedError hides secret strings from an error's text while keeping its
// chain for errors.Is/As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// minRedactLen: shorter strings would blank out unrelated words.
const minRedactLen = 4

// redact returns err with every secret's text replaced by [REDACTED].
func redact(err error, secrets ...[]byte) error {
	msg := err.Error()
	for _, s := range secrets {
		if len(s) >= minRedactLen {
			msg = strings.ReplaceAll(msg, string(s), secret.Redacted)
		}
	}
	return &redactedError{msg: msg, err: err}
}

// roleInfo is what rotary reads of a role.
type roleInfo struct {
	oid         uint32
	name        string
	super       bool
	inherit     bool
	createRole  bool
	createDB    bool
	replication bool
	bypassRLS   bool
	connLimit   int32
	comment     string
}

// lookupRole reads role name; ok is false when there is none.
func lookupRole(ctx context.Context, q db, name string) (roleInfo, bool, error) {
	r := roleInfo{name: name}
	err := q.QueryRow(ctx, `SELECT oid, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
		rolconnlimit, COALESCE(shobj_description(oid, 'pg_authid'), '')
		FROM pg_roles WHERE rolname = $1`, name).
		Scan(&r.oid, &r.super, &r.inherit, &r.createRole, &r.createDB, &r.replication, &r.bypassRLS, &r.connLimit, &r.comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return roleInfo{}, false, nil
	}
	if err != nil {
		return roleInfo{}, false, fmt.Errorf("reading role %q: %w", name, err)
	}
	return r, true, nil
}

// attributes renders the role options the new role copies from the old
// one. SUPERUSER is never copied (rotary refuses superuser roles), and
// neither is VALID UNTIL: the new password's life starts now.
func (r roleInfo) attributes() string {
	opt := func(on bool, name string) string {
		if on {
			return name
		}
		return "NO" + name
	}
	return strings.Join([]string{
		"LOGIN", "NOSUPERUSER",
		opt(r.inherit, "INHERIT"), opt(r.createRole, "CREATEROLE"), opt(r.createDB, "CREATEDB"),
		opt(r.replication, "REPLICATION"), opt(r.bypassRLS, "BYPASSRLS"),
		"CONNECTION LIMIT " + strconv.FormatInt(int64(r.connLimit), 10),
	}, " ")
}

func currentUser(ctx context.Context, q db) (string, error) {
	var u string
	if err := q.QueryRow(ctx, "SELECT current_user").Scan(&u); err != nil {
		return "", fmt.Errorf("reading the admin role's name: %w", err)
	}
	return u, nil
}

func serverVersion(ctx context.Context, q db) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the server version: %w", err)
	}
	return v, nil
}

// pg16 is the first version with per-grant INHERIT and SET options.
const pg16 = 160000

// sessions counts the sessions of role other than this one and those whose
// application_name is exclude (rotary's own check sessions).
func sessions(ctx context.Context, q db, role uint32, exclude string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE usesysid = $1 AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM $2`, role, exclude).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reading pg_stat_activity: %w", err)
	}
	return n, nil
}

// sessionsInUse counts role's sessions that are doing something: running a
// statement or holding a transaction open (anything but plain idle).
func sessionsInUse(ctx context.Context, q db, role uint32, exclude string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE usesysid = $1 AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM $2
		AND state IS DISTINCT FROM 'idle'`, role, exclude).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reading pg_stat_activity: %w", err)
	}
	return n, nil
}

// idleTerminateWait bounds the wait for terminated sessions to be gone.
const idleTerminateWait = 10 * time.Second

// terminateIdleSessions terminates role's idle sessions and waits until
// they have left pg_stat_activity (pg_terminate_backend with a timeout
// waits for the backend to exit). It returns how many it terminated.
func terminateIdleSessions(ctx context.Context, q db, role uint32, exclude string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $3)) FROM pg_stat_activity
		WHERE usesysid = $1 AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM $2
		AND state = 'idle'`, role, exclude, idleTerminateWait.Milliseconds()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("terminating idle sessions: %w", err)
	}
	return n, nil
}

// sessionsInDB counts role's sessions to database, but those named exclude.
func sessionsInDB(ctx context.Context, q db, role uint32, database, exclude string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE usesysid = $1 AND datname = $2 AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM $3`,
		role, database, exclude).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("reading pg_stat_activity: %w", err)
	}
	return n, nil
}

// sessionsSince counts role's sessions that started after since, and those
// whose start the admin may not see (it lacks pg_read_all_stats).
func sessionsSince(ctx context.Context, q db, role uint32, since time.Time) (started, hidden int, err error) {
	err = q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE backend_start > $2), count(*) FILTER (WHERE backend_start IS NULL)
		FROM pg_stat_activity WHERE usesysid = $1 AND pid <> pg_backend_pid()`, role, since).Scan(&started, &hidden)
	if err != nil {
		return 0, 0, fmt.Errorf("reading pg_stat_activity: %w", err)
	}
	return started, hidden, nil
}

// grantSpec is what the new role is granted: the runbook's grants on the
// database and the configured schemas, plus what the old role has.
type grantSpec struct {
	database string
	schemas  []string
	old      roleInfo
	newRole  string
}

// grantStatements reads the old role's memberships, role settings, schema
// privileges and default privileges in the connected database, and returns
// the statements that give the new role the same, plus the runbook's grants.
// Every statement is idempotent, so a repeated step runs them all again.
func grantStatements(ctx context.Context, q db, g grantSpec) ([]string, error) {
	version, err := serverVersion(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(stmts []string, err error) error {
		out = append(out, stmts...)
		return err
	}
	if err := add(membershipStatements(ctx, q, g, version)); err != nil {
		return nil, err
	}
	if err := add(settingStatements(ctx, q, g)); err != nil {
		return nil, err
	}
	if err := add(runbookStatements(ctx, q, g)); err != nil {
		return nil, err
	}
	if err := add(schemaStatements(ctx, q, g)); err != nil {
		return nil, err
	}
	if err := add(defaultPrivilegeStatements(ctx, q, g)); err != nil {
		return nil, err
	}
	return out, nil
}

// membershipStatements: the groups the old role belongs to, and the roles
// that belong to it (e.g. a migration role that works as the app's owner),
// with the same options.
func membershipStatements(ctx context.Context, q db, g grantSpec, version int) ([]string, error) {
	options := "bool_or(m.admin_option), true, true"
	if version >= pg16 {
		options = "bool_or(m.admin_option), bool_or(m.inherit_option), bool_or(m.set_option)"
	}
	with := func(admin, inherit, set bool) string {
		if version < pg16 {
			if admin {
				return " WITH ADMIN OPTION"
			}
			return ""
		}
		return fmt.Sprintf(" WITH ADMIN %t, INHERIT %t, SET %t", admin, inherit, set)
	}
	var out []string
	for _, dir := range []struct{ join, where string }{
		// Groups of the old role: GRANT group TO new.
		{join: "m.roleid", where: "m.member = $1"},
		// Members of the old role: GRANT new TO member. The admin itself
		// is skipped: it made the new role and needs no grant on it.
		{join: "m.member", where: "m.roleid = $1 AND r.rolname <> current_user"},
	} {
		rows, err := q.Query(ctx, "SELECT r.rolname, "+options+" FROM pg_auth_members m JOIN pg_roles r ON r.oid = "+dir.join+
			" WHERE "+dir.where+" GROUP BY r.rolname ORDER BY r.rolname", g.old.oid)
		if err != nil {
			return nil, fmt.Errorf("reading the memberships of role %q: %w", g.old.name, err)
		}
		for rows.Next() {
			var (
				role                   string
				admin, inherit, setOpt bool
			)
			if err := rows.Scan(&role, &admin, &inherit, &setOpt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading the memberships of role %q: %w", g.old.name, err)
			}
			if role == g.newRole {
				continue
			}
			if dir.join == "m.roleid" {
				out = append(out, "GRANT "+ident(role)+" TO "+ident(g.newRole)+with(admin, inherit, setOpt))
			} else {
				out = append(out, "GRANT "+ident(g.newRole)+" TO "+ident(role)+with(admin, inherit, setOpt))
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading the memberships of role %q: %w", g.old.name, err)
		}
	}
	return out, nil
}

// gucNamePattern is what a setting's name may look like (custom settings
// have one dot).
var gucNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// listQuoteSettings are the settings whose stored value is a list of
// quoted elements; pg_dump (variable_is_guc_list_quote) renders them as a
// list of literals, and so does rotary.
var listQuoteSettings = []string{
	"local_preload_libraries", "search_path", "session_preload_libraries",
	"shared_preload_libraries", "temp_tablespaces", "unix_socket_directories",
}

// settingStatements copies the old role's ALTER ROLE … SET settings (a
// search_path, a statement_timeout) the application may rely on.
func settingStatements(ctx context.Context, q db, g grantSpec) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT COALESCE(d.datname, ''), s.setconfig FROM pg_db_role_setting s
		LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = $1 ORDER BY 1`, g.old.oid)
	if err != nil {
		return nil, fmt.Errorf("reading the settings of role %q: %w", g.old.name, err)
	}
	type setting struct {
		database string
		config   []string
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (setting, error) {
		var s setting
		err := r.Scan(&s.database, &s.config)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the settings of role %q: %w", g.old.name, err)
	}
	var out []string
	for _, s := range found {
		scope := ""
		if s.database != "" {
			scope = " IN DATABASE " + ident(s.database)
		}
		for _, c := range s.config {
			name, value, ok := strings.Cut(c, "=")
			if !ok || !gucNamePattern.MatchString(name) {
				return nil, fmt.Errorf("role %q has a setting rotary cannot copy (%q is not a setting name)", g.old.name, name)
			}
			values := []string{value}
			if slices.Contains(listQuoteSettings, strings.ToLower(name)) {
				if values, ok = splitGUCList(value); !ok {
					return nil, fmt.Errorf("role %q: cannot parse the list value of setting %s", g.old.name, name)
				}
				if len(values) == 0 {
					values = []string{""}
				}
			}
			lits, err := quoteLiterals(ctx, q, values...)
			if err != nil {
				return nil, err
			}
			out = append(out, "ALTER ROLE "+ident(g.newRole)+scope+" SET "+ident(name)+" TO "+strings.Join(lits, ", "))
		}
	}
	return out, nil
}

// splitGUCList splits a list setting's stored value as the server's
// SplitGUCList does: comma-separated elements, each optionally in double
// quotes ("" for a quote), whitespace around them ignored.
func splitGUCList(s string) ([]string, bool) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	var out []string
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i == len(s) {
		return nil, true
	}
	for {
		var elem strings.Builder
		if s[i] == '"' {
			i++
			for {
				if i >= len(s) {
					return nil, false // unterminated quote
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						elem.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				elem.WriteByte(s[i])
				i++
			}
		} else {
			start := i
			for i < len(s) && s[i] != ',' && !isSpace(s[i]) {
				i++
			}
			if i == start {
				return nil, false // empty element
			}
			elem.WriteString(s[start:i])
		}
		out = append(out, elem.String())
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return out, true
		}
		if s[i] != ',' {
			return nil, false
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return nil, false // trailing comma
		}
	}
}

// runbookStatements are the runbook's grants: ALL on the database and on
// every table and sequence of the configured schemas, USAGE on those
// schemas, and, for tables and sequences the old role creates while its
// pods still run, default privileges for the new role (they go with the old
// role's DROP OWNED at retirement).
func runbookStatements(ctx context.Context, q db, g grantSpec) ([]string, error) {
	rows, err := q.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)", g.schemas)
	if err != nil {
		return nil, fmt.Errorf("reading schemas: %w", err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading schemas: %w", err)
	}
	var missing []string
	for _, s := range g.schemas {
		if !slices.Contains(present, s) {
			missing = append(missing, strconv.Quote(s))
		}
	}
	if len(missing) > 0 {
		return nil, errSchemasMissing{database: g.database, schemas: missing}
	}
	newRole, oldRole := ident(g.newRole), ident(g.old.name)
	out := []string{"GRANT ALL PRIVILEGES ON DATABASE " + ident(g.database) + " TO " + newRole}
	for _, s := range g.schemas {
		schema := ident(s)
		out = append(out,
			"GRANT USAGE ON SCHEMA "+schema+" TO "+newRole,
			"GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA "+schema+" TO "+newRole,
			"GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA "+schema+" TO "+newRole,
			"ALTER DEFAULT PRIVILEGES FOR ROLE "+oldRole+" IN SCHEMA "+schema+" GRANT ALL PRIVILEGES ON TABLES TO "+newRole,
			"ALTER DEFAULT PRIVILEGES FOR ROLE "+oldRole+" IN SCHEMA "+schema+" GRANT ALL PRIVILEGES ON SEQUENCES TO "+newRole,
		)
	}
	return out, nil
}

// errSchemasMissing is a configuration error: retrying cannot fix it.
type errSchemasMissing struct {
	database string
	schemas  []string
}

func (e errSchemasMissing) Error() string {
	return fmt.Sprintf("database %q has no schema %s (see schemas in the target's settings)", e.database, strings.Join(e.schemas, ", "))
}

// privileges a GRANT may name; anything else read from the catalogs is
// refused rather than spliced into SQL.
var privileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "EXECUTE", "CREATE", "MAINTAIN"}

func checkPrivilege(p string) error {
	if !slices.Contains(privileges, p) {
		return fmt.Errorf("unknown privilege %q in the catalogs", p)
	}
	return nil
}

// schemaStatements copies the old role's privileges on schemas (USAGE,
// CREATE), and gives the new role USAGE and CREATE on the schemas the old
// role owns (ownership moves to the new role at retirement).
func schemaStatements(ctx context.Context, q db, g grantSpec) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname, a.privilege_type, a.is_grantable
		FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a WHERE a.grantee = $1
		UNION
		SELECT nspname, p, false FROM pg_namespace, unnest(ARRAY['USAGE', 'CREATE']) AS p WHERE nspowner = $1
		ORDER BY 1, 2, 3`, g.old.oid)
	if err != nil {
		return nil, fmt.Errorf("reading the schema privileges of role %q: %w", g.old.name, err)
	}
	var out []string
	for rows.Next() {
		var (
			schema, priv string
			grantable    bool
		)
		if err := rows.Scan(&schema, &priv, &grantable); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the schema privileges of role %q: %w", g.old.name, err)
		}
		if err := checkPrivilege(priv); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, "GRANT "+priv+" ON SCHEMA "+ident(schema)+" TO "+ident(g.newRole)+grantOption(grantable))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the schema privileges of role %q: %w", g.old.name, err)
	}
	return out, nil
}

func grantOption(grantable bool) string {
	if grantable {
		return " WITH GRANT OPTION"
	}
	return ""
}

// defaultObjects maps pg_default_acl.defaclobjtype to ALTER DEFAULT
// PRIVILEGES' object words.
var defaultObjects = map[string]string{
	"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS", "L": "LARGE OBJECTS",
}

// publicDefaults are the privileges PUBLIC has on new objects unless an
// owner's global default privileges revoke them.
var publicDefaults = map[string]string{"f": "EXECUTE", "T": "USAGE"}

// defaultPrivilegeStatements copies the default privileges that involve the
// old role in the connected database, so objects created later keep
// working: those other roles (a migration role) give the old role on what
// they create are given to the new role too, and those the old role gives
// others on what it creates are given by the new role too (including a
// revocation from PUBLIC, which is a protection to keep).
func defaultPrivilegeStatements(ctx context.Context, q db, g grantSpec) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT o.rolname, COALESCE(n.nspname, ''), d.defaclobjtype::text,
		a.grantee, COALESCE(r.rolname, ''), a.privilege_type, a.is_grantable
		FROM pg_default_acl d
		JOIN pg_roles o ON o.oid = d.defaclrole
		LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
		CROSS JOIN LATERAL aclexplode(d.defaclacl) a
		LEFT JOIN pg_roles r ON r.oid = a.grantee
		WHERE (d.defaclrole = $1) <> (a.grantee = $1)
		ORDER BY 1, 2, 3, 5, 6`, g.old.oid)
	if err != nil {
		return nil, fmt.Errorf("reading the default privileges of role %q: %w", g.old.name, err)
	}
	var out []string
	for rows.Next() {
		var (
			owner, schema, objtype, grantee, priv string
			granteeOID                            uint32
			grantable                             bool
		)
		if err := rows.Scan(&owner, &schema, &objtype, &granteeOID, &grantee, &priv, &grantable); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the default privileges of role %q: %w", g.old.name, err)
		}
		objects, ok := defaultObjects[objtype]
		if !ok {
			rows.Close()
			return nil, fmt.Errorf("unknown default privilege object type %q in the catalogs", objtype)
		}
		if err := checkPrivilege(priv); err != nil {
			rows.Close()
			return nil, err
		}
		in := ""
		if schema != "" {
			in = " IN SCHEMA " + ident(schema)
		}
		if owner == g.old.name {
			// What the old role gives others: the new role gives it too.
			if grantee == g.newRole {
				continue // the transition default runbookStatements made
			}
			to := "PUBLIC"
			if granteeOID != 0 {
				to = ident(grantee)
			}
			out = append(out, "ALTER DEFAULT PRIVILEGES FOR ROLE "+ident(g.newRole)+in+" GRANT "+priv+" ON "+objects+" TO "+to+grantOption(grantable))
		} else {
			// What another role gives the old one: it gives the new one too.
			out = append(out, "ALTER DEFAULT PRIVILEGES FOR ROLE "+ident(owner)+in+" GRANT "+priv+" ON "+objects+" TO "+ident(g.newRole)+grantOption(grantable))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the default privileges of role %q: %w", g.old.name, err)
	}

	// Revocations from PUBLIC show as a global entry without PUBLIC.
	rows, err = q.Query(ctx, `SELECT d.defaclobjtype::text FROM pg_default_acl d
		WHERE d.defaclrole = $1 AND d.defaclnamespace = 0 AND d.defaclobjtype IN ('f', 'T')
		AND NOT EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) a WHERE a.grantee = 0)
		ORDER BY 1`, g.old.oid)
	if err != nil {
		return nil, fmt.Errorf("reading the default privileges of role %q: %w", g.old.name, err)
	}
	revoked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading the default privileges of role %q: %w", g.old.name, err)
	}
	for _, objtype := range revoked {
		out = append(out, "ALTER DEFAULT PRIVILEGES FOR ROLE "+ident(g.newRole)+" REVOKE "+publicDefaults[objtype]+" ON "+defaultObjects[objtype]+" FROM PUBLIC")
	}
	return out, nil
}

// ownerDatabases lists the databases, other than the shared catalogs, in
// which role owns objects or holds privileges (pg_shdepend).
func ownerDatabases(ctx context.Context, q db, role uint32) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
		WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1 ORDER BY 1`, role)
	if err != nil {
		return nil, fmt.Errorf("reading where role objects live: %w", err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading where role objects live: %w", err)
	}
	return dbs, nil
}

// pgDetail appends a server error's DETAIL (which lists, for a role that
// cannot be dropped, what still depends on it).
func pgDetail(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Detail != "" {
		return " (" + pe.Detail + ")"
	}
	return ""
}
