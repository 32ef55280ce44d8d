package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/furrow-io/furrow/internal/loader"
	"github.com/jackc/pgx/v5/pgconn"
)

// scrubbed is an error whose message has the password removed; Unwrap
// still reaches the cause (for errors.As on *pgconn.PgError).
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

func (l *Loader) scrub(err error) error {
	if err == nil || l.secret == "" || !strings.Contains(err.Error(), l.secret) {
		return err
	}
	return &scrubbed{strings.ReplaceAll(err.Error(), l.secret, "xxxxx"), err}
}

// classify wraps err for the runner: retryable for an outage, permanent
// otherwise, with what to fix for the usual permanent causes. The
// password never appears in the message.
func (l *Loader) classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var done *classified
	if errors.As(err, &done) {
		return err
	}
	return &classified{l.classify1(ctx, err)}
}

// classified marks an error classify has wrapped already.
type classified struct{ err error }

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

func (l *Loader) classify1(ctx context.Context, err error) error {
	err = l.scrub(err)
	where := fmt.Sprintf("host=%s port=%d database=%s user=%s", l.cfg.Host, l.cfg.Port, l.cfg.Database, l.cfg.User)
	switch ctx.Err() {
	case context.Canceled: // shutdown: not an outage
		return fmt.Errorf("postgres (%s): %w", where, errors.Join(ctx.Err(), err))
	case context.DeadlineExceeded: // the caller's time for this attempt ran out
		return loader.Retryable(fmt.Errorf("postgres (%s): timed out: %w", where, errors.Join(ctx.Err(), err)))
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "28P01" || pg.Code == "28000":
			return fmt.Errorf("postgres (%s): authentication failed: fix the user or password in the dsn setting: %w", where, err)
		case pg.Code == "3D000":
			return fmt.Errorf("postgres (%s): database %q does not exist: create it or fix the database in the dsn setting: %w", where, l.cfg.Database, err)
		case pg.Code == "42501":
			return fmt.Errorf("postgres (%s): permission denied: grant user %s USAGE and CREATE on schema %s (and CREATE on the database if the schema is missing), "+
				"or use another user in the dsn setting: %w", where, l.cfg.User, l.opts.Schema, err)
		case pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03" || // shutdown, crash, cannot connect now
			pg.Code == "53300" || pg.Code == "53400" || // too many connections, configuration limit
			pg.Code == "53100" || pg.Code == "53200" || // disk full, out of memory
			pg.Code == "40001" || pg.Code == "40P01" || // serialization failure, deadlock
			pg.Code == "55P03" || pg.Code == "57014" || // lock not available, statement timeout or cancel
			strings.HasPrefix(pg.Code, "08"): // connection exception
			return loader.Retryable(fmt.Errorf("postgres (%s): %w", where, err))
		}
		return fmt.Errorf("postgres (%s): %w", where, err)
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || isClosedConn(err) {
		return loader.Retryable(fmt.Errorf("postgres (%s): server unreachable or connection lost: %w", where, err))
	}
	return fmt.Errorf("postgres (%s): %w", where, err)
}

func isClosedConn(err error) bool {
	s := err.Error()
	return strings.Contains(s, "conn closed") || strings.Contains(s, "conn busy") || strings.Contains(s, "unexpected EOF")
}
