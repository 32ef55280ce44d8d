package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"
)

// instance is the driver.Connector of the store's *sql.DB: it opens
// connections on the current DuckDB instance, which the store replaces
// when DuckDB has invalidated the database (see Store.reopen). The
// *sql.DB, and so Store.DB, stays the same.
type instance struct {
	open func() (*duck.Connector, error)

	mu   sync.Mutex
	cur  *duck.Connector // nil while the store reopens the database
	gone *duck.Connector // the instance replaced, until it is closed
}

func newInstance(c *duck.Connector, open func() (*duck.Connector, error)) *instance {
	return &instance{open: open, cur: c}
}

func (in *instance) Connect(ctx context.Context) (driver.Conn, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == nil {
		return nil, errReopening
	}
	return in.cur.Connect(ctx)
}

func (in *instance) Driver() driver.Driver { return duck.Driver{} }

// Close closes the current DuckDB instance; sql.DB.Close calls it.
func (in *instance) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range []*duck.Connector{in.gone, in.cur} {
		if c != nil {
			c.Close()
		}
	}
	in.cur, in.gone = nil, nil
	return nil
}

// poolIdleConns is the number of idle connections the pool keeps:
// database/sql's default, restored after a reopen.
const poolIdleConns = 2

// reopen replaces the DuckDB instance with a new one made by the same
// connect function, which attaches the database file again: DuckDB
// replays its WAL, so every committed row is there. It runs on the
// loader thread. Connections on the old instance are all closed first
// (queries running on them are waited for): two instances writing one
// file would damage it, and the old one closing the file would release
// the lock that keeps other processes out. Meanwhile, new connections
// fail with errReopening. On error, the store stays broken and the next
// load calls reopen again.
func (s *Store) reopen(ctx context.Context) error {
	in := s.inst
	in.mu.Lock()
	if in.cur != nil {
		in.gone, in.cur = in.cur, nil
	}
	in.mu.Unlock()
	s.db.SetMaxIdleConns(0) // closes idle connections, and busy ones once they are done
	for s.db.Stats().OpenConnections > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	in.mu.Lock()
	if in.gone != nil {
		in.gone.Close()
		in.gone = nil
	}
	in.mu.Unlock()
	c, err := in.open()
	if err != nil {
		return fmt.Errorf("reopen %s: %w", s.path, err)
	}
	in.mu.Lock()
	in.cur = c
	in.mu.Unlock()
	s.db.SetMaxIdleConns(poolIdleConns)
	// The file is attached by the first connection.
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("reopen %s: %w", s.path, err)
	}
	return nil
}

// copyAttempt is a COPY that failed with an error that does not say
// whether it committed. The table's row count tells, once the database
// can be queried, before anything else is loaded into it.
type copyAttempt struct {
	target    string // table loaded
	before, n int64  // its rows before the COPY; rows the COPY held
	committed bool   // known once settled
}

// settle makes the database usable and settles the attempt left by a
// COPY that failed: it reopens the database if DuckDB invalidated it,
// then counts the rows of the attempt's table. It runs on the loader
// thread, before every COPY, so nothing was loaded since the attempt.
func (s *Store) settle(ctx context.Context) error {
	if s.broken != nil {
		if err := s.reopen(ctx); err != nil {
			return fmt.Errorf("%w (after: %v)", err, s.broken)
		}
		s.log.Warn("duckdb: database reopened after DuckDB invalidated it", "path", s.path, "cause", s.broken)
		s.broken = nil
	}
	a := s.pending
	if a == nil {
		return nil
	}
	var got int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(s.schema)+"."+a.target).Scan(&got); err != nil {
		s.checkInvalidated(err)
		return err
	}
	switch got {
	case a.before:
	case a.before + a.n:
		a.committed = true
		s.log.Warn("duckdb: a load reported as failed had committed; it is not loaded again", "table", a.target, "rows", a.n)
	default:
		return fmt.Errorf("%w: %s.%s holds %d rows after a failed load of %d rows onto %d: has something else loaded it?", errMiscounted, s.schema, a.target, got, a.n, a.before)
	}
	s.rowCount[a.target] = got
	s.pending = nil
	return nil
}

// checkInvalidated marks the store broken if err says that DuckDB
// invalidated the database.
func (s *Store) checkInvalidated(err error) {
	if s.broken == nil && invalidated(err) {
		s.log.Warn("duckdb: DuckDB invalidated the database; reopening it", "path", s.path, "err", err)
		s.broken = err
	}
}
