package database

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// errStillConnected refuses to drop a role that has sessions. It is not
// permanent: the retire step waits and tries again.
type errStillConnected struct {
	role     string
	sessions int
}

func (e errStillConnected) Error() string {
	return fmt.Sprintf("role %q still has %d session(s)", e.role, e.sessions)
}

// retire drops the old role once retire_due_at has come or a participant
// pressed the button, whichever is first. A refusal (the old role still
// has sessions) or a transient failure is reported and tried again after
// retireRecheck or on the next press, until the step's deadline.
func (x *rotation) retire(ctx context.Context, run rotators.Run) error {
	if run.Fact(factOldRoleDropped) != "" {
		return nil
	}
	oldName, newName := run.Fact(factOldRole), run.Fact(factNewRole)
	verifiedAt, err := time.Parse(time.RFC3339, run.Fact(factVerifiedAt))
	if oldName == "" || newName == "" || err != nil {
		return rotators.Permanent(fmt.Errorf("not dropping the old role: verification has not passed (fact %s is missing)", factVerifiedAt))
	}
	due, err := x.retireDue(ctx, run, verifiedAt)
	if err != nil {
		return err
	}
	prompt := rotators.Prompt{
		ID:       PromptRetireNow,
		Audience: rotators.AudienceParticipants,
		Button:   retireButton,
		Label: fmt.Sprintf("The application now uses role %s. The old role %s will be dropped at %s UTC (%s after verification), if nothing is connected as it. Drop it now instead?",
			newName, oldName, due.UTC().Format("2006-01-02 15:04"), humanDuration(x.r.s.retireAfter)),
	}
	b := newButton(ctx, run, prompt)
	defer b.stop()
	if d := due.Sub(run.Now()); d > 0 {
		run.Progress(ctx, fmt.Sprintf("Dropping %s at %s UTC, or at once with %q", oldName, due.UTC().Format("2006-01-02 15:04"), retireButton))
	}

	next := due
	var last error
	for {
		timer := time.NewTimer(max(next.Sub(run.Now()), 0))
		pressed := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return x.retireGaveUp(ctx, oldName, newName, last)
		case <-timer.C:
		case err := <-b.answered:
			timer.Stop()
			if err != nil {
				if ctx.Err() != nil {
					return x.retireGaveUp(ctx, oldName, newName, last)
				}
				return fmt.Errorf("waiting for the %q button: %w", retireButton, err)
			}
			pressed = true
			run.Log().InfoContext(ctx, "dropping the old role now, as asked with the button", "role", oldName)
		}
		err := x.retireOnce(ctx, run, oldName, newName)
		if err == nil {
			return nil
		}
		var je journalError
		if errors.As(err, &je) {
			return err // the journal failed: the executor decides
		}
		if rotators.IsPermanent(err) {
			return fmt.Errorf("%w; %s", err, notUndone(newName, oldName))
		}
		if ctx.Err() != nil {
			return x.retireGaveUp(ctx, oldName, newName, err)
		}
		last = err
		next = run.Now().Add(x.r.retireRecheck)
		run.Log().WarnContext(ctx, "old role not dropped yet", "role", oldName, "err", err)
		run.Progress(ctx, fmt.Sprintf("Not dropped yet: %v. Trying again at %s UTC, or press %q.", err, next.UTC().Format("15:04"), retireButton))
		if pressed {
			b.ask()
		}
	}
}

// journalError is a failed Record: the retire loop does not take it for a
// refusal to try again later.
type journalError struct{ err error }

func (e journalError) Error() string { return e.err.Error() }
func (e journalError) Unwrap() error { return e.err }

func record(ctx context.Context, run rotators.Run, key, value string) error {
	if err := run.Record(ctx, key, value); err != nil {
		return journalError{err}
	}
	return nil
}

// retireDue returns retire_due_at, recording it once (verified_at +
// retire_after), so a restarted step waits only for the remainder.
func (x *rotation) retireDue(ctx context.Context, run rotators.Run, verifiedAt time.Time) (time.Time, error) {
	if s := run.Fact(factRetireDueAt); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, rotators.Permanent(fmt.Errorf("fact %s=%q is not a time: %w", factRetireDueAt, s, err))
		}
		return t, nil
	}
	due := verifiedAt.Add(x.r.s.retireAfter).UTC()
	if err := run.Record(ctx, factRetireDueAt, due.Format(time.RFC3339)); err != nil {
		return time.Time{}, err
	}
	return due, nil
}

// notUndone is said with every retire failure: rollback will not help.
func notUndone(newName, oldName string) string {
	return fmt.Sprintf("the rotation is done (the application uses %s) and rollback will not undo it; drop %s by hand once nothing connects as it (REASSIGN OWNED and DROP OWNED in each database, then DROP ROLE)", newName, oldName)
}

// retireGaveUp is the error at the step's deadline.
func (x *rotation) retireGaveUp(ctx context.Context, oldName, newName string, last error) error {
	why := "nobody pressed the button and the time did not come"
	if last != nil {
		why = last.Error()
	}
	return rotators.Permanent(fmt.Errorf("old role %s not dropped (%s: %w); %s", oldName, why, ctx.Err(), notUndone(newName, oldName)))
}

// retireOnce drops the old role now, unless it has sessions.
func (x *rotation) retireOnce(ctx context.Context, run rotators.Run, oldName, newName string) error {
	conn, base, err := x.admin(ctx, x.database)
	if err != nil {
		return err
	}
	defer closeConn(ctx, run, conn)
	old, ok, err := lookupRole(ctx, conn, oldName)
	if err != nil {
		return err
	}
	if !ok {
		if err := record(ctx, run, factOldRoleDropped, run.Now().UTC().Format(time.RFC3339)); err != nil {
			return err
		}
		run.Progress(ctx, fmt.Sprintf("The old role %s no longer exists", oldName))
		return nil
	}
	me, err := currentUser(ctx, conn)
	if err != nil {
		return err
	}
	if oldName == me || old.super {
		return rotators.Permanent(fmt.Errorf("role %q is rotary's admin role or a superuser: rotary will not drop it", oldName))
	}
	dbs, err := x.dropRole(ctx, run, conn, base, old, newName, factRetireStarted, true)
	if err != nil {
		return err
	}
	if err := record(ctx, run, factOldRoleDropped, run.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	run.Log().InfoContext(ctx, "dropped the old database role", "role", oldName, "owner_now", newName, "databases", dbs)
	run.Progress(ctx, fmt.Sprintf("Dropped the old role %s; what it owned now belongs to %s (databases: %s)", oldName, newName, strings.Join(dbs, ", ")))
	return nil
}

// dropRole drops role from, after handing what it owns to role to: it is
// refused while from has sessions in use (rotary's own check sessions
// aside); then from is made NOLOGIN (recording startedFact first) so nothing
// new can connect; then, with terminateIdle, its remaining idle sessions are
// terminated (the runbook's retirement: after verification the application
// no longer uses the role, so what is left idle is a leftover), otherwise
// any session at all refuses; then, in every database where from owns
// objects or holds privileges, REASSIGN OWNED and DROP OWNED; then DROP
// ROLE. It returns the databases it cleaned.
//
// Rollback drops the new role without terminateIdle: before the rollback's
// restart the application's pools still hold idle sessions as that role,
// and killing them would cut the application off.
func (x *rotation) dropRole(ctx context.Context, run rotators.Run, conn *pgx.Conn, base *pgx.ConnConfig, from roleInfo, to, startedFact string, terminateIdle bool) ([]string, error) {
	count := sessions
	if terminateIdle {
		count = sessionsInUse
	}
	if n, err := count(ctx, conn, from.oid, x.checkAppName); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, errStillConnected{role: from.name, sessions: n}
	}
	if _, ok, err := lookupRole(ctx, conn, to); err != nil {
		return nil, err
	} else if !ok {
		return nil, rotators.Permanent(fmt.Errorf("role %q, which is to own what %q owns, does not exist", to, from.name))
	}
	if run.Fact(startedFact) == "" {
		if err := record(ctx, run, startedFact, run.Now().UTC().Format(time.RFC3339)); err != nil {
			return nil, err
		}
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+ident(from.name)+" NOLOGIN"); err != nil {
		return nil, fmt.Errorf("making role %q NOLOGIN: %w", from.name, err)
	}
	if terminateIdle {
		n, err := terminateIdleSessions(ctx, conn, from.oid, x.checkAppName)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			run.Progress(ctx, fmt.Sprintf("Terminated %d idle session(s) of the old role %s", n, from.name))
		}
	}
	if n, err := sessions(ctx, conn, from.oid, x.checkAppName); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, errStillConnected{role: from.name, sessions: n}
	}
	others, err := ownerDatabases(ctx, conn, from.oid)
	if err != nil {
		return nil, err
	}
	// The configured database first, on this session; it also takes the
	// shared objects (a database owned by the role).
	dbs := []string{x.database}
	for _, d := range others {
		if d != x.database {
			dbs = append(dbs, d)
		}
	}
	for _, d := range dbs {
		if err := x.disown(ctx, run, conn, base, d, from.name, to); err != nil {
			return nil, err
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE "+ident(from.name)); err != nil {
		return nil, fmt.Errorf("dropping role %q: %w%s", from.name, err, pgDetail(err))
	}
	return dbs, nil
}

// disown hands what from owns in database d to to, and drops its
// privileges there.
func (x *rotation) disown(ctx context.Context, run rotators.Run, conn *pgx.Conn, base *pgx.ConnConfig, d, from, to string) error {
	if d != x.database {
		c, err := connect(ctx, base, d, "", secret.Value{}, adminAppName, true)
		if err != nil {
			return fmt.Errorf("admin session: %w", err)
		}
		defer closeConn(ctx, run, c)
		conn = c
	}
	for _, stmt := range []string{
		"REASSIGN OWNED BY " + ident(from) + " TO " + ident(to),
		"DROP OWNED BY " + ident(from),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("in database %q, %s: %w%s", d, strings.SplitN(stmt, " BY", 2)[0], err, pgDetail(err))
		}
	}
	return nil
}

// button keeps one prompt open in the thread while the retire step waits,
// so the periodic re-checks do not post a new prompt each time.
type button struct {
	ctx      context.Context
	run      rotators.Run
	prompt   rotators.Prompt
	answered chan error
	cancel   context.CancelFunc
	done     chan struct{}
}

func newButton(ctx context.Context, run rotators.Run, p rotators.Prompt) *button {
	b := &button{ctx: ctx, run: run, prompt: p, answered: make(chan error, 1)}
	b.ask()
	return b
}

// ask opens the prompt; the answer (or Ask's error) arrives on answered.
// Call it only when no Ask is running.
func (b *button) ask() {
	actx, cancel := context.WithCancel(b.ctx)
	b.cancel, b.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		_, err := b.run.Ask(actx, b.prompt)
		if actx.Err() != nil && b.ctx.Err() == nil {
			return // stop() withdrew the prompt
		}
		b.answered <- err
	}(b.done)
}

// stop withdraws the prompt and waits for its Ask to return.
func (b *button) stop() {
	b.cancel()
	<-b.done
}
