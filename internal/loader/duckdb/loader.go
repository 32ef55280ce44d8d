package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
)

// PositionsTable is the table, in the store's schema, where each
// destination loading the store keeps the End of the last batch it
// loaded, committed with the batch's rows (the Postgres destination's
// table of the same name, same meaning):
//
//	CREATE TABLE IF NOT EXISTS atomic._furrow_positions (
//	  destination VARCHAR PRIMARY KEY, -- the name given to Store.Loader
//	  position BIGINT NOT NULL,        -- End of the last batch loaded
//	  updated_at TIMESTAMPTZ
//	);
//
// It is created by the first Position or Load of a Loader.
const PositionsTable = "_furrow_positions"

// PendingTable holds, in the store's schema, the newest events a Loader
// stored but keeps out of events for now, fewer than a row group: under
// traffic (loader.Batch.More) a load moves into events only what ends the
// table on a row group boundary (see RowGroupRows: a row group left
// short between full ones is rewritten by DuckDB's next checkpoint, which
// costs more than the load did), and keeps the rest here, in the same
// transaction as its position. The next load moves it first; a load cut
// by a pause, the runner's stop, Idle, or opening the store moves it
// all. The table has the columns of events.
const PendingTable = "_furrow_pending_events"

// Loader returns the store as a loader.Loader keeping its position in
// PositionsTable under name. Load stores a batch's good lines in events,
// its bad rows in bad_rows and b.End as name's position in one DuckDB
// transaction, on the store's loader thread; a batch that ends at or
// before the stored position is skipped, so a retry after a commit whose
// outcome was unknown stores nothing twice.
//
// Good lines are checked in Go as a sink's Write checks them (unless the
// store is Trusted); a line that fails the check, or that DuckDB refuses,
// becomes a loader_parsing_error bad row of the same load, and a bad row
// that DuckDB refuses (not JSON) a generic_error row. Lines DuckDB refuses
// are found by bisection into temporary tables of the same columns: the
// tables themselves only ever see the committed load.
//
// Errors are the store's (an *Error), wrapped with loader.Retryable when
// retrying can help (a full disk, an I/O error, too little memory, a
// database DuckDB invalidated and that the next call reopens, a deadline
// that expired). Load takes turns with the sinks' flushes; a store is
// meant to be loaded either way, not both, though the row counts of the
// store stay right if it is. Close does nothing: the store is closed by
// its owner, after its loaders are done.
func (s *Store) Loader(name string) loader.Loader { return &storeLoader{s: s, name: name} }

type storeLoader struct {
	s    *Store
	name string
	// On the loader thread: whether PositionsTable was made; whether a
	// commit failed without telling whether it committed, which the next
	// Load settles (its position check, and a recount of the tables).
	ready, uncertain bool
	pending          int64 // rows in PendingTable
}

var _ loader.Loader = (*storeLoader)(nil)

// errRefused marks a COPY that DuckDB refused for a line's data.
type errRefused struct {
	table string
	err   error
}

func (e *errRefused) Error() string { return e.table + ": " + e.err.Error() }
func (e *errRefused) Unwrap() error { return e.err }

func (l *storeLoader) positions() string {
	return quoteIdent(l.s.schema) + "." + PositionsTable
}

// prepare makes the positions table and settles what a failed load left
// behind; with recount, it counts the tables' rows again after a commit
// of unknown outcome (for the sinks' loads: Load holds their flushMu).
// On the loader thread.
func (l *storeLoader) prepare(ctx context.Context, recount bool) error {
	s := l.s
	if err := s.settle(ctx); err != nil {
		return storeError("load", "events", err)
	}
	if !l.ready {
		_, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+l.positions()+` (
  destination VARCHAR PRIMARY KEY,
  position BIGINT NOT NULL,
  updated_at TIMESTAMPTZ
)`)
		if err != nil {
			s.checkInvalidated(err)
			return storeError("create", PositionsTable, err)
		}
		pendingDDL := strings.Replace(EventsDDL(s.schema), "."+"events (", "."+PendingTable+" (", 1)
		if _, err := s.db.ExecContext(ctx, pendingDDL); err != nil {
			s.checkInvalidated(err)
			return storeError("create", PendingTable, err)
		}
		if err := l.countPending(ctx); err != nil {
			return err
		}
		l.ready = true
	}
	if recount && l.uncertain {
		// The sinks' loads count on the row counts.
		for _, table := range []string{"events", "bad_rows"} {
			var n int64
			if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(s.schema)+"."+table).Scan(&n); err != nil {
				s.checkInvalidated(err)
				return storeError("load", table, err)
			}
			s.rowCount[table] = n
		}
		s.events.rows = s.rowCount["events"]
		if err := l.countPending(ctx); err != nil {
			return err
		}
		l.uncertain = false
	}
	return nil
}

func (l *storeLoader) countPending(ctx context.Context) error {
	err := l.s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(l.s.schema)+"."+PendingTable).Scan(&l.pending)
	if err != nil {
		l.s.checkInvalidated(err)
		return storeError("read", PendingTable, err)
	}
	return nil
}

// Idle moves the rows kept in PendingTable into events, for the runner
// when no record has come for a while.
func (l *storeLoader) Idle(ctx context.Context) error {
	s := l.s
	s.events.flushMu.Lock()
	defer s.events.flushMu.Unlock()
	return classify(ctx, s.run(func() error {
		if err := l.prepare(ctx, true); err != nil || l.pending == 0 {
			return err
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			s.checkInvalidated(err)
			return storeError("load", "events", err)
		}
		defer tx.Rollback()
		n, err := movePending(ctx, tx, s.schema)
		if err != nil {
			s.checkInvalidated(err)
			return storeError("load", "events", err)
		}
		if err := tx.Commit(); err != nil {
			l.uncertain = true
			s.checkInvalidated(err)
			return storeError("load", "events", fmt.Errorf("commit: %w", err))
		}
		s.rowCount["events"] += n
		s.events.rows += n
		l.pending = 0
		return nil
	}))
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (l *storeLoader) position(ctx context.Context, q queryRower) (int64, error) {
	var pos int64
	err := q.QueryRowContext(ctx, "SELECT position FROM "+l.positions()+" WHERE destination = ?", l.name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		l.s.checkInvalidated(err)
		return 0, storeError("read", PositionsTable, err)
	}
	return pos, nil
}

// Position returns the End of the last batch loaded under the loader's
// name, 0 if none.
func (l *storeLoader) Position(ctx context.Context) (int64, error) {
	var pos int64
	err := l.s.run(func() error {
		if err := l.prepare(ctx, false); err != nil {
			return err
		}
		var err error
		pos, err = l.position(ctx, l.s.db)
		return err
	})
	return pos, classify(ctx, err)
}

// Close does nothing: the store is closed by its owner.
func (l *storeLoader) Close(context.Context) error { return nil }

// classify wraps the errors retrying can help with loader.Retryable.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Retryable {
		return loader.Retryable(err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return loader.Retryable(err)
	}
	return err
}

// loadFiles is a load attempt: its TSV files (empty path: no lines) and
// line counts.
type loadFiles struct {
	good, tail, bad    string
	nGood, nTail, nBad int
	movePending        bool // move PendingTable's rows into events first
}

// Load stores b; see Store.Loader.
func (l *storeLoader) Load(ctx context.Context, b loader.Batch) error {
	s := l.s
	// Take turns with the sinks' flushes, whose row counts a load moves.
	s.events.flushMu.Lock()
	defer s.events.flushMu.Unlock()
	s.badRows.flushMu.Lock()
	defer s.badRows.flushMu.Unlock()
	return classify(ctx, l.load(ctx, b))
}

func (l *storeLoader) load(ctx context.Context, b loader.Batch) error {
	s := l.s
	good := make([][]byte, 0, len(b.Good))
	bad := make([][]byte, 0, len(b.Bad))
	parseErrors := 0
	for _, line := range b.Good {
		line = bytes.TrimRight(line, "\r\n")
		if !s.trusted {
			if err := event.Check(line); err != nil {
				parseErrors++
				bad = append(bad, badRowLine(parsingError(s.proc, err, line)))
				continue
			}
		}
		good = append(good, line)
	}
	for _, r := range b.Bad {
		bad = append(bad, badRowLine(r))
	}

	skipped, err := l.attempt(ctx, b.End, good, bad, b.More)
	var refused *errRefused
	if errors.As(err, &refused) {
		// Find the lines DuckDB refuses, and load the others.
		var rejected []rejectedLine
		good, rejected, err = l.probe(ctx, "events", good)
		if err != nil {
			return err
		}
		for _, r := range rejected {
			parseErrors++
			bad = append(bad, badRowLine(parsingError(s.proc, r.err, r.line)))
		}
		var refusedBad []rejectedLine
		bad, refusedBad, err = l.probe(ctx, "bad_rows", bad)
		if err != nil {
			return err
		}
		if len(refusedBad) > 0 {
			wrapped := make([][]byte, len(refusedBad))
			for i, r := range refusedBad {
				// Not JSON at all: keep it, wrapped in a generic_error.
				wrapped[i] = badRowLine(badrows.GenericError(s.proc, time.Now(), []string{"bad row is not valid JSON: " + r.err.Error()}, string(r.line)))
			}
			kept, lost, err := l.probe(ctx, "bad_rows", wrapped)
			if err != nil {
				return err
			}
			for _, r := range lost {
				s.log.Error("duckdb: bad row lost: DuckDB refused it even wrapped in a generic_error", "err", r.err, "row", string(r.line))
			}
			bad = append(bad, kept...)
		}
		s.log.Warn("duckdb: lines refused by DuckDB stored as bad rows", "events", len(rejected), "bad_rows", len(refusedBad), "start", b.Start, "end", b.End)
		skipped, err = l.attempt(ctx, b.End, good, bad, b.More)
		if errors.As(err, &refused) {
			// Refused again, in the table it took in probes: not a bad line.
			err = storeError("load", refused.table, err)
		}
	}
	if err != nil || skipped {
		if skipped {
			s.log.Debug("duckdb: batch already loaded, skipped", "destination", l.name, "start", b.Start, "end", b.End)
		}
		return err
	}
	s.loaded.Add(float64(len(good)))
	s.badLoaded.Add(float64(len(bad)))
	s.parseErrors.Add(float64(parseErrors))
	return nil
}

// writeFile writes lines to a new TSV file in the staging directory,
// which COPY may read; "" if there are none.
func (l *storeLoader) writeFile(target string, lines [][]byte) (string, error) {
	if len(lines) == 0 {
		return "", nil
	}
	path, err := l.s.writeLines(target, lines)
	if err != nil {
		return "", storeError("stage", target, err)
	}
	return path, nil
}

// attempt loads good and bad with end as the position, in one
// transaction, unless the stored position is at end or past it
// (skipped). An *errRefused says that DuckDB refused a line; nothing was
// committed then.
func (l *storeLoader) attempt(ctx context.Context, end int64, good, bad [][]byte, more bool) (skipped bool, err error) {
	direct, tail, move := l.split(good, more)
	f := loadFiles{nGood: len(direct), nTail: len(tail), nBad: len(bad), movePending: move}
	for _, w := range []struct {
		path   *string
		target string
		lines  [][]byte
	}{{&f.good, "events", direct}, {&f.tail, PendingTable, tail}, {&f.bad, "bad_rows", bad}} {
		if *w.path, err = l.writeFile(w.target, w.lines); err != nil {
			return false, err
		}
		if *w.path != "" {
			defer os.Remove(*w.path)
		}
	}
	err = l.s.run(func() error {
		var err error
		skipped, err = l.commit(ctx, end, f)
		return err
	})
	return skipped, err
}

// split cuts a batch's good lines into those loaded into events and
// those kept in PendingTable (see there), and tells whether the rows
// already kept move into events with them.
func (l *storeLoader) split(good [][]byte, more bool) (direct, tail [][]byte, move bool) {
	blk := int64(l.s.rowGroup)
	if !more || blk <= 0 {
		return good, nil, true
	}
	n := int64(len(good))
	keep := (l.s.rowCount["events"] + l.pending + n) % blk
	if keep > n {
		return nil, good, false // not a row group yet: keep them all
	}
	return good[:n-keep], good[n-keep:], true
}

// commit is attempt's transaction, on the loader thread.
func (l *storeLoader) commit(ctx context.Context, end int64, f loadFiles) (skipped bool, err error) {
	s := l.s
	if err := l.prepare(ctx, true); err != nil {
		return false, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		s.checkInvalidated(err)
		return false, storeError("load", "events", err)
	}
	defer tx.Rollback()
	pos, err := l.position(ctx, tx)
	if err != nil {
		return false, err
	}
	if pos >= end {
		return true, nil
	}
	var moved int64
	if f.movePending && l.pending > 0 {
		// The rows kept are older than this batch's: they go first.
		if moved, err = movePending(ctx, tx, s.schema); err != nil {
			s.checkInvalidated(err)
			return false, storeError("load", "events", err)
		}
	}
	for _, c := range []struct {
		table, target, columns, path string
	}{{"events", "events", eventColumns, f.good}, {"events", PendingTable, eventColumns, f.tail}, {"bad_rows", "bad_rows", badRowsColumns, f.bad}} {
		if c.path == "" {
			continue
		}
		q := fmt.Sprintf("COPY %s.%s (%s) FROM %s %s", quoteIdent(s.schema), c.target, c.columns, quoteString(c.path), copyOptions)
		if _, err := tx.ExecContext(ctx, q); err != nil {
			if isDataError(err) {
				return false, &errRefused{c.table, err}
			}
			s.checkInvalidated(err)
			return false, storeError("load", c.table, err)
		}
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+l.positions()+` (destination, position, updated_at) VALUES (?, ?, now())
ON CONFLICT (destination) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`, l.name, end)
	if err != nil {
		s.checkInvalidated(err)
		return false, storeError("load", PositionsTable, err)
	}
	if err := tx.Commit(); err != nil {
		// Committed or not: the next load's position check tells.
		l.uncertain = true
		s.checkInvalidated(err)
		return false, storeError("load", "events", fmt.Errorf("commit: %w", err))
	}
	s.rowCount["events"] += moved + int64(f.nGood)
	s.rowCount["bad_rows"] += int64(f.nBad)
	s.events.rows += moved + int64(f.nGood)
	if f.movePending {
		l.pending = 0
	}
	l.pending += int64(f.nTail)
	return false, nil
}

// probeDDL creates the temporary table, of the same columns as table,
// that probe COPYs into.
func (l *storeLoader) probeDDL(table string) string {
	if table == "events" {
		ddl := EventsDDL(l.s.schema)
		return strings.Replace(ddl, "CREATE TABLE IF NOT EXISTS "+quoteIdent(l.s.schema)+".events", "CREATE OR REPLACE TEMP TABLE furrow_probe_events", 1)
	}
	return `CREATE OR REPLACE TEMP TABLE furrow_probe_bad_rows (
  schema VARCHAR NOT NULL,
  failure_type VARCHAR NOT NULL,
  payload JSON NOT NULL
)`
}

// probe splits lines, for table, into those DuckDB takes and those it
// refuses (with its error), by COPYing halves into a temporary table of
// the same columns, in transactions that are rolled back.
func (l *storeLoader) probe(ctx context.Context, table string, lines [][]byte) (taken [][]byte, refused []rejectedLine, err error) {
	columns := eventColumns
	if table == "bad_rows" {
		columns = badRowsColumns
	}
	ddl := l.probeDDL(table)
	q := "COPY furrow_probe_" + table + " (" + columns + ") FROM %s " + copyOptions
	parts := [][][]byte{lines}
	for len(parts) > 0 {
		part := parts[0]
		if len(part) == 0 {
			parts = parts[1:]
			continue
		}
		path, err := l.writeFile("probe-"+table, part)
		if err != nil {
			return nil, nil, err
		}
		err = l.s.run(func() error {
			conn, err := l.s.db.Conn(ctx)
			if err != nil {
				return err
			}
			// Closed before the call returns: a reopen waits for every
			// connection to close.
			defer conn.Close()
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, ddl); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, fmt.Sprintf(q, quoteString(path)))
			if err != nil && !isDataError(err) {
				l.s.checkInvalidated(err)
			}
			return err
		})
		os.Remove(path)
		switch {
		case err == nil:
			taken = append(taken, part...)
			parts = parts[1:]
		case ctx.Err() != nil || !isDataError(err):
			return nil, nil, storeError("load", table, err)
		case len(part) == 1:
			refused = append(refused, rejectedLine{part[0], err})
			parts = parts[1:]
		default:
			parts = append(halves(part), parts[1:]...)
		}
	}
	return taken, refused, nil
}
