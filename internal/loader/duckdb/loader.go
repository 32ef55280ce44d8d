package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// store stay right if it is. Close removes its staging files (see
// Stage); the store is closed by its owner, after its loaders are done.
//
// The loader is also a loader.Wanter (the good events that end events on
// a row group boundary) and a loader.Stager (lines staged on disk as the
// runner reads them).
func (s *Store) Loader(name string) loader.Loader { return &storeLoader{s: s, name: name} }

type storeLoader struct {
	s    *Store
	name string
	// On the loader thread: whether PositionsTable was made; whether a
	// commit failed without telling whether it committed, which the next
	// Load settles (its position check, and a recount of the tables).
	ready, uncertain bool
	pending          int64 // rows in PendingTable
	staged           *stagedBatch
	badOnly          bool // loads only bad rows, and leaves PendingTable alone (see Marked)
}

var (
	_ loader.Loader = (*storeLoader)(nil)
	_ loader.Wanter = (*storeLoader)(nil)
	_ loader.Idler  = (*storeLoader)(nil)
	_ loader.Stager = (*storeLoader)(nil)
)

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

// Close removes the staging files; the store is closed by its owner.
func (l *storeLoader) Close(context.Context) error {
	if l.staged != nil {
		l.staged.close()
		l.staged = nil
	}
	return nil
}

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
	return classify(ctx, l.load(ctx, b, l.staged))
}

// load stores b: its lines or, if st holds any, the lines staged in st,
// which it resets once they are stored.
func (l *storeLoader) load(ctx context.Context, b loader.Batch, st *stagedBatch) error {
	s := l.s
	var (
		good, bad   [][]byte
		parseErrors int
		skipped     bool
		err         error
		refused     *errRefused
	)
	if st != nil && st.lines() > 0 {
		// The batch is in the staging files (see Stage).
		if skipped, err = l.attemptStaged(ctx, st, b.End, b.More); err == nil {
			if !skipped {
				s.loaded.Add(float64(st.good.lines() + st.tail.lines()))
				s.badLoaded.Add(float64(st.bad.lines()))
				s.lastLoad.Store(time.Now().UnixNano())
				s.parseErrors.Add(float64(st.parseErrors))
			}
			st.reset()
			return nil
		}
		if !errors.As(err, &refused) {
			return err
		}
		// The staging files stay as they are until the batch is
		// stored: a retried Load starts over from them.
		var rerr error
		if good, bad, rerr = st.read(); rerr != nil {
			return storeError("stage", "events", rerr)
		}
		parseErrors = st.parseErrors
	} else {
		good = make([][]byte, 0, len(b.Good))
		bad = make([][]byte, 0, len(b.Bad))
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
		skipped, err = l.attempt(ctx, b.End, good, bad, b.More)
	}
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
		if err == nil && st != nil {
			st.reset()
		}
		return err
	}
	if st != nil {
		st.reset()
	}
	s.loaded.Add(float64(len(good)))
	s.badLoaded.Add(float64(len(bad)))
	s.lastLoad.Store(time.Now().UnixNano())
	s.parseErrors.Add(float64(parseErrors))
	return nil
}

// stagedBatch is the next batch as Stage wrote it: its good lines, the
// newest of them that its load keeps in PendingTable (tail, once cut),
// and its bad rows, each a staging file a COPY reads.
type stagedBatch struct {
	good, tail, bad *staging
	parseErrors     int  // good lines that failed the check, now in bad
	cut, move       bool // tail is cut; PendingTable's rows move first
}

func (st *stagedBatch) lines() int { return st.good.lines() + st.tail.lines() + st.bad.lines() }

// read returns the good lines (tail included) and the bad rows staged.
func (st *stagedBatch) read() (good, bad [][]byte, err error) {
	for _, f := range []struct {
		st  *staging
		out *[][]byte
	}{{st.good, &good}, {st.tail, &good}, {st.bad, &bad}} {
		if f.st.lines() == 0 {
			continue
		}
		if err := f.st.sync(); err != nil {
			return nil, nil, err
		}
		content := make([]byte, f.st.size())
		if _, err := f.st.f.ReadAt(content, 0); err != nil {
			return nil, nil, err
		}
		*f.out = append(*f.out, bytes.Split(bytes.TrimSuffix(content, []byte("\n")), []byte("\n"))...)
	}
	return good, bad, nil
}

func (st *stagedBatch) reset() {
	st.good.reset()
	st.tail.reset()
	st.bad.reset()
	st.parseErrors, st.cut, st.move = 0, false, false
}

func (st *stagedBatch) close() {
	st.good.close()
	st.tail.close()
	st.bad.close()
}

// Stage writes lines of the next batch to the files its Load COPYs (see
// loader.Stager), checking good lines as Load does.
func (l *storeLoader) Stage(ctx context.Context, good, bad [][]byte) error {
	if l.staged == nil {
		st, err := l.s.newStaged()
		if err != nil {
			return classify(ctx, err)
		}
		l.staged = st
	}
	if l.staged.cut {
		return errors.New("duckdb: Stage after a Load that did not store its batch")
	}
	return classify(ctx, l.s.stage(l.staged, good, bad))
}

// newStaged creates the staging files of a stagedBatch.
func (s *Store) newStaged() (*stagedBatch, error) {
	st := &stagedBatch{}
	for _, f := range []struct {
		st   **staging
		name string
	}{{&st.good, "events"}, {&st.tail, PendingTable}, {&st.bad, "bad_rows"}} {
		var err error
		if *f.st, err = openStaging(filepath.Join(s.tmpDir, fmt.Sprintf("%s-%d.tsv", f.name, s.seq.Add(1))), s.create); err != nil {
			for _, o := range []*staging{st.good, st.tail, st.bad} {
				if o != nil {
					o.close()
				}
			}
			return nil, storeError("stage", f.name, err)
		}
	}
	return st, nil
}

// stage adds good lines (checked unless the store is Trusted) and bad
// rows to st: all of them or, on error, none.
func (s *Store) stage(st *stagedBatch, good, bad [][]byte) error {
	ng, nb, pe := st.good.lines(), st.bad.lines(), st.parseErrors
	err := func() error {
		for _, line := range good {
			line = bytes.TrimRight(line, "\r\n")
			if !s.trusted {
				if err := event.Check(line); err != nil {
					st.parseErrors++
					if err := st.bad.add(badRowLine(parsingError(s.proc, err, line)), 0); err != nil {
						return err
					}
					continue
				}
			}
			if err := st.good.add(line, 0); err != nil {
				return err
			}
		}
		for _, r := range bad {
			if err := st.bad.add(badRowLine(r), 0); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		st.good.rollback(ng)
		st.bad.rollback(nb)
		st.parseErrors = pe
		return storeError("stage", "events", err)
	}
	return nil
}

// attemptStaged is attempt for the staged batch: the first attempt cuts
// its tail, which later ones keep.
func (l *storeLoader) attemptStaged(ctx context.Context, st *stagedBatch, end int64, more bool) (skipped bool, err error) {
	if !st.cut {
		if err := st.good.sync(); err != nil {
			return false, storeError("stage", "events", err)
		}
		n := st.good.lines()
		t, move := l.tailOf(n, more)
		switch {
		case t == n && n > 0:
			st.good, st.tail = st.tail, st.good // all of them kept
		case t > 0:
			if err := st.good.moveTail(t, st.tail); err != nil {
				return false, storeError("stage", PendingTable, err)
			}
		}
		st.cut, st.move = true, move
	}
	f := loadFiles{nGood: st.good.lines(), nTail: st.tail.lines(), nBad: st.bad.lines(), movePending: st.move}
	for _, w := range []struct {
		path *string
		st   *staging
	}{{&f.good, st.good}, {&f.tail, st.tail}, {&f.bad, st.bad}} {
		if w.st.lines() == 0 {
			continue
		}
		if err := w.st.sync(); err != nil {
			return false, storeError("stage", "events", err)
		}
		*w.path = w.st.path
	}
	err = l.s.run(func() error {
		var err error
		skipped, err = l.commit(ctx, end, f)
		return err
	})
	return skipped, err
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

// Want is the number of good events that ends events on a row group
// boundary, counting the rows kept in PendingTable (see loader.Wanter):
// a batch of that many, cut by traffic, leaves nothing in PendingTable.
func (l *storeLoader) Want() int {
	blk := int64(l.s.rowGroup)
	if blk <= 0 || !l.ready {
		return 0
	}
	return int(blk - (l.s.rowCount["events"]+l.pending)%blk)
}

// split cuts a batch's good lines into those loaded into events and
// those kept in PendingTable (see there), and tells whether the rows
// already kept move into events with them.
func (l *storeLoader) split(good [][]byte, more bool) (direct, tail [][]byte, move bool) {
	t, move := l.tailOf(len(good), more)
	return good[:len(good)-t], good[len(good)-t:], move
}

// tailOf is split for n good lines: how many of the newest are kept.
func (l *storeLoader) tailOf(n int, more bool) (tail int, move bool) {
	if l.badOnly {
		return 0, false
	}
	blk := int64(l.s.rowGroup)
	if !more || blk <= 0 {
		return 0, true
	}
	keep := (l.s.rowCount["events"] + l.pending + int64(n)) % blk
	if keep > int64(n) {
		return n, false // not a row group yet: keep them all
	}
	return int(keep), true
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
