// Package duckdb is furrow's embedded warehouse: enriched events and bad
// rows loaded into a DuckDB database file, in Snowplow's atomic.events
// layout (one column per enriched field, entities as JSON columns).
package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/stream"
)

// Options configures the store.
type Options struct {
	Path    string // database file
	Schema  string // default "atomic"
	Threads int    // DuckDB worker threads; 0 lets DuckDB decide
	// MemoryLimit is DuckDB's memory_limit in bytes: its buffer pool,
	// for loads and queries; queries spill to <Path>.tmp past it. 0 keeps
	// DuckDB's default (80% of the machine's memory).
	MemoryLimit int64
	// CheckpointThreshold is DuckDB's checkpoint_threshold (e.g.
	// "16MB", its default when empty): the WAL size at which a commit
	// checkpoints. The configuration is locked once the store is open, so
	// tests that need frequent checkpoints set it here.
	CheckpointThreshold string
	// RowGroupRows is the row group size of new row groups, a multiple
	// of 2048; default RowGroupRows. A load of one row group needs about
	// that much of DuckDB's memory (see RowGroupMemory).
	RowGroupRows int
	// Nice lowers the scheduling priority of the thread that loads (Linux
	// niceness, 0-19), so loading yields the CPU to collection. It is
	// most effective with Threads = 1, where DuckDB works on that thread.
	Nice int
	// Trusted skips the type check of each enriched line before staging:
	// for lines from furrow's own enricher, whose output always passes it
	// (its fuzz test asserts so). A line the database still rejects is
	// isolated by bisection and stored as a bad row, at the cost of a few
	// more COPYs.
	Trusted   bool
	Processor badrows.Processor
	Logger    *slog.Logger
	Registry  prometheus.Registerer
}

// Store holds the database. Each table stages rows in a file that the
// next flush loads with one COPY; a flush swaps in a fresh file first, so
// writes go on while it loads. Loads run one at a time, on one thread.
//
// The store recovers from a full disk or an I/O error without a restart:
// see Error for what a failed Write or Flush leaves behind. If DuckDB
// invalidates the database (a checkpoint that could not write the file),
// the store reopens it before the next load, and counts the table a
// failed load was for to tell whether it committed after all.
type Store struct {
	rowGroup int // Options.RowGroupRows
	trusted  bool
	db       *sql.DB
	inst     *instance
	path     string
	schema   string
	tmpDir   string
	proc     badrows.Processor
	log      *slog.Logger
	create   func(path string) (file, error) // staging and load files

	seq     atomic.Int64
	events  *table
	badRows *table

	// On the loader thread: the rows in each table (events, bad_rows) as
	// loads commit; the failed load not yet settled, if any; the error
	// with which DuckDB invalidated the database, until it is reopened.
	rowCount map[string]int64
	pending  *copyAttempt
	broken   error

	jobs chan func()
	done chan struct{}

	loaded, parseErrors, badLoaded prometheus.Counter
	lastLoad                       atomic.Int64 // Unix nanoseconds of the last load that stored rows
}

// LastLoad is when the store last committed a load, zero before any.
func (s *Store) LastLoad() time.Time {
	if n := s.lastLoad.Load(); n > 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// table is one table's staging. Writers append to cur under mu; a flush
// (one at a time, under flushMu) swaps cur for spare and loads it.
type table struct {
	name, columns string

	mu          sync.Mutex
	cur, spare  *staging
	curRejected [][]byte // bad_rows lines for lines rejected while staging
	written     int64    // lines ever passed to Write, staged or rejected

	flushMu sync.Mutex
	loading *staging // taken by a flush that failed; loaded first next time
	// After the database rejected loading as a whole: its lines not yet
	// loaded, in parts that are loaded, or split further, in order.
	parts     [][][]byte
	rejected  [][]byte     // bad_rows lines not yet stored by the flush that made them
	rows      int64        // rows in the table, counted at open and as loads commit
	uncertain *copyAttempt // this table's last COPY, if it failed and may have committed
}

// Open opens or creates the database and its tables.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Path == "" {
		return nil, errors.New("duckdb: path is required")
	}
	if o.Schema == "" {
		o.Schema = "atomic"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.RowGroupRows == 0 {
		o.RowGroupRows = RowGroupRows
	}
	if o.RowGroupRows < 2048 || o.RowGroupRows%2048 != 0 {
		return nil, fmt.Errorf("duckdb: row group size %d is not a positive multiple of 2048", o.RowGroupRows)
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, err
	}
	tmp := o.Path + ".load"
	if err := mkdirPrivate(tmp); err != nil {
		return nil, err
	}
	// The file is attached by the first connection, which connect makes
	// to sandbox the instance: a file that cannot be opened (locked by
	// another process, not a database) fails here.
	conn, err := connect(ctx, o.Path, tmp, o)
	if err != nil {
		return nil, fmt.Errorf("duckdb: open %s: %w", o.Path, err)
	}
	// A reopen (after DuckDB invalidated the database) connects again in
	// the same way, sandbox included.
	inst := newInstance(conn, func() (*duck.Connector, error) { return connect(context.Background(), o.Path, tmp, o) })
	s := &Store{rowGroup: o.RowGroupRows, trusted: o.Trusted, db: sql.OpenDB(inst), inst: inst, path: o.Path, schema: o.Schema, tmpDir: tmp, proc: o.Processor, log: o.Logger, create: createPrivate}
	s.loaded = prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_duckdb_events_loaded_total", Help: "Enriched events loaded into DuckDB."})
	s.badLoaded = prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_duckdb_bad_rows_loaded_total", Help: "Bad rows loaded into DuckDB."})
	s.parseErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_duckdb_parse_errors_total", Help: "Enriched lines rejected by the loader as loader_parsing_error."})
	lastLoad := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_duckdb_last_load_timestamp_seconds", Help: "When DuckDB last committed a load (Unix seconds; 0 before any)."},
		func() float64 { return float64(s.lastLoad.Load()) / 1e9 })
	for _, c := range []prometheus.Collector{s.loaded, s.badLoaded, s.parseErrors, lastLoad} {
		if err := o.Registry.Register(c); err != nil {
			s.db.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	// Whatever was staged before a crash was never acknowledged: it will
	// be enriched again, so the staging files start empty.
	if s.events, err = openTable(tmp, "events", eventColumns, s.create); err != nil {
		s.db.Close()
		return nil, err
	}
	if err := s.countRows(ctx); err != nil {
		s.events.close()
		s.db.Close()
		return nil, err
	}
	if s.badRows, err = openTable(tmp, "bad_rows", badRowsColumns, s.create); err != nil {
		s.events.close()
		s.db.Close()
		return nil, err
	}
	s.jobs, s.done = make(chan func()), make(chan struct{})
	started := make(chan error, 1)
	go s.worker(o.Nice, started)
	if err := <-started; err != nil {
		s.log.Warn("duckdb: could not lower the loader's priority", "err", err)
	}
	return s, nil
}

// mkdirPrivate creates the directory dir if needed, and makes it
// accessible to its owner only.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// countRows counts the rows in both tables, for the loads to keep count.
func (s *Store) countRows(ctx context.Context) error {
	s.rowCount = map[string]int64{}
	for _, table := range []string{"events", "bad_rows"} {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(s.schema)+"."+table).Scan(&n); err != nil {
			return fmt.Errorf("duckdb: count %s.%s: %w", s.schema, table, err)
		}
		s.rowCount[table] = n
	}
	s.events.rows = s.rowCount["events"]
	return nil
}

// StorageVersion is the DuckDB storage format furrow writes: DuckDB 1.4
// and later read the database file. It lets DuckDB pick the compression
// methods added in 1.3 (DICT_FSST among them), whose analysis makes a
// load about a fifth cheaper than under DuckDB's default, the 0.10.2
// format. A file made in the older format is upgraded as it is written.
const StorageVersion = "v1.4.0"

// connect opens an in-memory DuckDB instance and attaches the database
// file to it with furrow's storage options, the only way to set a row
// group size. Every connection then uses the file as its default
// database, under the same name a direct open of the file gives it.
//
// The instance is then sandboxed for the queries furrow answers (see
// sandbox): statements can reach no file but the database's own, the
// staging directory loadDir, whose files the loader COPYs, and DuckDB's
// temporary files in <path>.tmp (where DuckDB puts them when it opens a
// file itself; by default an in-memory instance would spill into the
// working directory).
func connect(ctx context.Context, path, loadDir string, o Options) (*duck.Connector, error) {
	var params []string
	if o.Threads > 0 {
		params = append(params, "threads="+strconv.Itoa(o.Threads))
	}
	if o.MemoryLimit > 0 {
		params = append(params, "memory_limit="+strconv.FormatInt(o.MemoryLimit>>10, 10)+"KiB")
	}
	if o.CheckpointThreshold != "" {
		params = append(params, "checkpoint_threshold="+url.QueryEscape(o.CheckpointThreshold))
	}
	dsn := ""
	if len(params) > 0 {
		dsn = "?" + strings.Join(params, "&")
	}
	name := catalogName(path)
	attach := fmt.Sprintf("ATTACH IF NOT EXISTS %s AS %s (STORAGE_VERSION '%s', ROW_GROUP_SIZE %d)",
		quoteString(path), quoteIdent(name), StorageVersion, o.RowGroupRows)
	use := "USE " + quoteIdent(name)
	c, err := duck.NewConnector(dsn, func(c driver.ExecerContext) error {
		for _, q := range []string{attach, use} {
			if _, err := c.ExecContext(context.Background(), q, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := sandbox(ctx, c, path+".tmp", []string{loadDir}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// catalogName is the name DuckDB gives a database file it opens: the file
// name up to its first dot. Names DuckDB keeps for itself get a prefix.
func catalogName(path string) string {
	name, _, _ := strings.Cut(filepath.Base(path), ".")
	switch strings.ToLower(name) {
	case "memory", "system", "temp", "main", "":
		name = "furrow_" + name
	}
	return name
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// worker runs every COPY on one OS thread, at lowered priority.
func (s *Store) worker(nice int, started chan<- error) {
	defer close(s.done)
	started <- lockNiceThread(nice)
	for job := range s.jobs {
		job()
	}
}

// run executes f on the loader thread. Only database calls go there:
// Go code on a low-priority thread would hold up the Go scheduler.
func (s *Store) run(f func() error) error {
	errc := make(chan error, 1)
	s.jobs <- func() { errc <- f() }
	return <-errc
}

// DB exposes the database for queries.
func (s *Store) DB() *sql.DB { return s.db }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// sqlType is the DuckDB type of a column.
func sqlType(i int, f event.Field) string {
	switch f.Type {
	case event.Int:
		return "INTEGER"
	case event.Double:
		return "DOUBLE"
	case event.Bool:
		return "BOOLEAN"
	case event.Timestamp:
		return "TIMESTAMP"
	case event.JSON:
		return "JSON"
	}
	if i == event.EventID {
		return "UUID"
	}
	return "VARCHAR"
}

// EventsDDL returns the CREATE TABLE statement for the events table.
func EventsDDL(schema string) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS " + quoteIdent(schema) + ".events (\n")
	for i, f := range event.Fields {
		b.WriteString("  " + f.Name + " " + sqlType(i, f))
		if i == event.EventID || i == event.VCollector || i == event.VEtl || i == event.CollectorTstamp {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(",\n")
	}
	b.WriteString("  load_tstamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'UTC')\n)")
	return b.String()
}

func (s *Store) migrate(ctx context.Context) error {
	q := quoteIdent(s.schema)
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + q,
		EventsDDL(s.schema),
		"CREATE TABLE IF NOT EXISTS " + q + `.bad_rows (
  schema VARCHAR NOT NULL,
  failure_type VARCHAR NOT NULL,
  payload JSON NOT NULL,
  load_tstamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'UTC')
)`,
	}
	for _, st := range stmts {
		if _, err := s.db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("duckdb: %w\n%s", err, st)
		}
	}
	return s.movePendingAtOpen(ctx)
}

// movePendingAtOpen moves into events the rows a Loader left in
// PendingTable (see Store.Loader), so that a store loaded otherwise now
// (the sinks) does not leave them out of sight.
func (s *Store) movePendingAtOpen(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", s.schema, PendingTable).Scan(&n); err != nil {
		return fmt.Errorf("duckdb: %w", err)
	}
	if n == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("duckdb: %w", err)
	}
	defer tx.Rollback()
	if _, err := movePending(ctx, tx, s.schema); err != nil {
		return fmt.Errorf("duckdb: %w", err)
	}
	return tx.Commit()
}

// movePending moves every row of PendingTable into events, in tx, and
// returns how many.
func movePending(ctx context.Context, tx *sql.Tx, schema string) (int64, error) {
	q := quoteIdent(schema)
	res, err := tx.ExecContext(ctx, "INSERT INTO "+q+".events SELECT * FROM "+q+"."+PendingTable)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+q+"."+PendingTable); err != nil {
		return 0, err
	}
	return n, nil
}

// Good returns the sink for enriched TSV lines. Writes are staged on disk
// and loaded by the sink's Flush, in one COPY however many batches were
// written; lines that are not valid enriched events become bad rows,
// stored by the same Flush.
func (s *Store) Good() stream.Sink { return goodSink{s} }

// Bad returns the sink for bad rows (self-describing JSON); staged and
// loaded like Good, independently of it.
func (s *Store) Bad() stream.Sink { return badSink{s} }

type goodSink struct{ s *Store }

func (g goodSink) Write(ctx context.Context, lines ...[]byte) error { return g.s.stageEvents(lines) }
func (g goodSink) Flush(ctx context.Context) error {
	_, err := g.s.flushEvents(ctx, 0)
	return err
}

// FlushBlocks loads whole DuckDB row groups; see RowGroupRows.
func (g goodSink) FlushBlocks(ctx context.Context) (int, error) {
	return g.s.flushEvents(ctx, g.s.rowGroup)
}

// Staged counts the lines the next flush would load or keep.
func (g goodSink) Staged() int {
	t := g.s.events
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur.lines()
}
func (g goodSink) Close(context.Context) error { return nil }

type badSink struct{ s *Store }

func (b badSink) Write(ctx context.Context, rows ...[]byte) error { return b.s.stageBad(rows) }
func (b badSink) Flush(ctx context.Context) error                 { return b.s.flushBad(ctx) }
func (b badSink) Close(context.Context) error                     { return nil }

var eventColumns = func() string {
	names := make([]string, len(event.Fields))
	for i, f := range event.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}()

const (
	copyOptions    = `(FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '', ESCAPE '', NULLSTR '', AUTO_DETECT false)`
	badRowsColumns = "schema, failure_type, payload"
)

func openTable(dir, name, columns string, create func(string) (file, error)) (*table, error) {
	a, err := openStaging(filepath.Join(dir, name+".a.tsv"), create)
	if err != nil {
		return nil, err
	}
	b, err := openStaging(filepath.Join(dir, name+".b.tsv"), create)
	if err != nil {
		a.close()
		return nil, err
	}
	return &table{name: name, columns: columns, cur: a, spare: b}, nil
}

func (t *table) close() {
	for _, st := range []*staging{t.cur, t.spare, t.loading} {
		if st != nil {
			st.close()
		}
	}
}

// pending counts rows written and not yet loaded.
func (t *table) pending() int {
	t.mu.Lock()
	n := t.cur.lines() + len(t.curRejected)
	t.mu.Unlock()
	t.flushMu.Lock()
	switch {
	case t.parts != nil:
		for _, p := range t.parts {
			n += len(p)
		}
	case t.loading != nil:
		n += t.loading.lines()
	}
	n += len(t.rejected)
	t.flushMu.Unlock()
	return n
}

// Pending returns the number of staged events and bad rows.
func (s *Store) Pending() int { return s.events.pending() + s.badRows.pending() }

// stageEvents checks lines (unless the store is Trusted) and stages the
// valid ones; the others become loader_parsing_error bad rows, stored by
// the same flush. It stages all lines or, on error, none.
func (s *Store) stageEvents(lines [][]byte) error {
	t := s.events
	t.mu.Lock()
	defer t.mu.Unlock()
	undo := t.mark()
	parseErrors := 0
	for _, l := range lines {
		t.written++
		l = bytes.TrimRight(l, "\r\n")
		if !s.trusted {
			if err := event.Check(l); err != nil {
				parseErrors++
				t.curRejected = append(t.curRejected, badRowLine(parsingError(s.proc, err, l)))
				continue
			}
		}
		if err := t.cur.add(l, t.written); err != nil {
			undo()
			return storeError("stage", t.name, err)
		}
	}
	s.parseErrors.Add(float64(parseErrors))
	return nil
}

// stageBad stages bad rows: all of them or, on error, none.
func (s *Store) stageBad(rows [][]byte) error {
	t := s.badRows
	t.mu.Lock()
	defer t.mu.Unlock()
	undo := t.mark()
	for _, r := range rows {
		t.written++
		if err := t.cur.add(badRowLine(r), t.written); err != nil {
			undo()
			return storeError("stage", t.name, err)
		}
	}
	return nil
}

// mark returns a function that unstages what was staged in t since,
// under t.mu.
func (t *table) mark() (undo func()) {
	lines, rejected, written := t.cur.lines(), len(t.curRejected), t.written
	return func() {
		t.cur.rollback(lines)
		clear(t.curRejected[rejected:])
		t.curRejected = t.curRejected[:rejected]
		t.written = written
	}
}

// Flush loads everything staged in both tables. Lines the database
// rejects are isolated and stored as bad rows; nothing is dropped.
func (s *Store) Flush(ctx context.Context) error {
	if _, err := s.flushEvents(ctx, 0); err != nil {
		return err
	}
	return s.flushBad(ctx)
}

// RowGroupRows is the number of rows in a row group of the database file
// (DuckDB's default is 122880). A load of at least that many rows is
// written to the database file directly, in new row groups; if the table
// then holds row groups that are not full between full ones, DuckDB's
// next checkpoint rewrites them, which costs more than the load did.
// Loads under steady traffic are therefore cut so that the table always
// ends on a row group boundary. Half DuckDB's default costs the same per
// row and gives files of the same size, and halves the time a load takes,
// so events wait less between collection and the warehouse.
const RowGroupRows = 61440

// RowGroupMemory is the DuckDB memory_limit a load of a row group of
// rows needs (a multiple of 2048). While it loads, DuckDB holds the row
// group uncompressed: 131 columns of 16-byte values and the strings, on
// top of about 60 MB of its own. Peaks sampled every 5 ms during loads of
// enriched page views and structured events: 168 MB for 61,440 rows, 125
// MB for 30,720, 85 MB for 12,288; a limit of 192 MB still failed some
// loads of 61,440. These limits leave about a third more. Loading in
// smaller parts would not help: DuckDB holds the row group being filled
// in memory until it is full, whatever the loads that fill it.
func RowGroupMemory(rows int) int64 {
	switch {
	case rows <= 12288:
		return 112 << 20
	case rows <= 30720:
		return 160 << 20
	}
	return 224 << 20
}

// RowGroupRows is the size of the row groups the store writes; see
// Options.RowGroupRows.
func (s *Store) RowGroupRows() int { return s.rowGroup }

func (s *Store) flushEvents(ctx context.Context, block int) (held int, err error) {
	return s.flushTable(ctx, s.events, func(r rejectedLine) []byte {
		s.parseErrors.Inc()
		return badRowLine(parsingError(s.proc, r.err, r.line))
	}, s.loaded, block)
}

func (s *Store) flushBad(ctx context.Context) error {
	_, err := s.flushTable(ctx, s.badRows, func(r rejectedLine) []byte {
		// Not JSON at all: keep it, wrapped in a generic_error.
		return badRowLine(badrows.GenericError(s.proc, time.Now(), []string{"bad row is not valid JSON: " + r.err.Error()}, string(r.line)))
	}, s.badLoaded, 0)
	return err
}

// flushTable loads what t staged before the call, in one COPY (one
// transaction), while writers stage into the spare file. Rows the
// database rejects become bad rows through reject and are stored before
// flushTable returns. After a failure, the rows taken stay with the table
// and are loaded first by the next flush; rows a failed flush did load
// are not loaded again.
//
// With block > 0, the newest lines that would leave the table's row
// count short of a multiple of block stay staged for the next flush
// (fewer than block of them; all of them if no block boundary is
// reached); held is then the number of lines written to t, counting back
// from the newest, that include every line kept back.
func (s *Store) flushTable(ctx context.Context, t *table, reject func(rejectedLine) []byte, loaded prometheus.Counter, block int) (held int, err error) {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	defer func() { err = storeError("load", t.name, err) }()
	if t.loading != nil || len(t.rejected) > 0 {
		if err := s.loadTaken(ctx, t, reject, loaded); err != nil {
			return 0, err
		}
	}
	t.mu.Lock()
	if t.cur.lines() == 0 && len(t.curRejected) == 0 {
		t.mu.Unlock()
		return 0, nil
	}
	if err := t.cur.sync(); err != nil {
		t.mu.Unlock()
		return 0, err
	}
	if block > 0 {
		// With fewer lines than reach the next block boundary (as on a
		// retry, after a failed load took some), all of them are kept.
		keep := min(int((t.rows+int64(t.cur.lines()))%int64(block)), t.cur.lines())
		if keep == t.cur.lines() && len(t.curRejected) == 0 {
			// Not enough for a block: nothing to load, everything held.
			held = int(t.written - t.cur.seqs[0] + 1)
			t.mu.Unlock()
			return held, nil
		}
		if keep > 0 {
			if err := t.cur.moveTail(keep, t.spare); err != nil {
				t.mu.Unlock()
				return 0, err
			}
			held = int(t.written - t.spare.seqs[0] + 1)
		}
	}
	t.loading, t.cur, t.spare = t.cur, t.spare, nil
	t.rejected, t.curRejected = append(t.rejected, t.curRejected...), nil
	t.mu.Unlock()
	return held, s.loadTaken(ctx, t, reject, loaded)
}

// loadTaken loads t.loading, then stores t.rejected in bad_rows; each is
// cleared once stored, and the staging file goes back to t.spare. If the
// database rejects t.loading, its lines are loaded by halves to isolate
// the bad ones, which go to t.rejected. Whatever fails is tried again,
// from where it failed, by the next call.
func (s *Store) loadTaken(ctx context.Context, t *table, reject func(rejectedLine) []byte, loaded prometheus.Counter) error {
	if st := t.loading; st != nil {
		if t.parts == nil && st.lines() > 0 {
			if err := st.sync(); err != nil {
				return err
			}
			err := s.copyFile(ctx, t, t.name, t.columns, st.path, st.lines())
			switch {
			case err == nil:
				loaded.Add(float64(st.lines()))
				t.rows += int64(st.lines())
			case ctx.Err() != nil || !isDataError(err):
				return err
			default:
				content, err := os.ReadFile(st.path)
				if err != nil {
					return err
				}
				lines := bytes.Split(bytes.TrimSuffix(content, []byte("\n")), []byte("\n"))
				if len(lines) == 1 {
					t.rejected = append(t.rejected, reject(rejectedLine{lines[0], err}))
				} else {
					t.parts = halves(lines)
				}
			}
		}
		for len(t.parts) > 0 {
			part := t.parts[0]
			err := s.copyLines(ctx, t, t.name, t.columns, part)
			switch {
			case err == nil:
				loaded.Add(float64(len(part)))
				t.rows += int64(len(part))
				t.parts = t.parts[1:]
			case ctx.Err() != nil || !isDataError(err):
				return err
			case len(part) == 1:
				t.rejected = append(t.rejected, reject(rejectedLine{part[0], err}))
				t.parts = t.parts[1:]
			default:
				t.parts = append(halves(part), t.parts[1:]...)
			}
		}
		t.parts = nil
		st.reset()
		t.loading = nil
		t.mu.Lock()
		t.spare = st
		t.mu.Unlock()
	}
	if len(t.rejected) > 0 {
		if err := s.copyLines(ctx, t, "bad_rows", badRowsColumns, t.rejected); err != nil {
			return err
		}
		s.badLoaded.Add(float64(len(t.rejected)))
		t.rejected = nil
	}
	return nil
}

// halves splits lines, more than one, in two.
func halves(lines [][]byte) [][][]byte {
	mid := len(lines) / 2
	return [][][]byte{lines[:mid:mid], lines[mid:]}
}

// badRowLine is a bad_rows staging line: schema, type, JSON.
func badRowLine(r []byte) []byte {
	schema := badRowSchema(r)
	if bytes.ContainsAny(r, "\t\n\r") {
		var c bytes.Buffer
		if err := json.Compact(&c, r); err == nil {
			r = c.Bytes()
		} else {
			r = []byte(strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(string(r)))
		}
	}
	line := make([]byte, 0, len(schema)*2+len(r)+2)
	line = append(line, schema...)
	line = append(line, '\t')
	line = append(line, badrows.Name(schema)...)
	line = append(line, '\t')
	return append(line, r...)
}

// parsingError: see loader.ParsingError.
func parsingError(p badrows.Processor, err error, line []byte) []byte {
	return loader.ParsingError(p, err, line)
}

type rejectedLine struct {
	line []byte
	err  error
}

// copyLines loads lines into table target with COPY from a temporary
// file, for t (see copyFile).
func (s *Store) copyLines(ctx context.Context, t *table, target, columns string, lines [][]byte) error {
	path, err := s.writeLines(target, lines)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	return s.copyFile(ctx, t, target, columns, path, len(lines))
}

// writeLines writes lines, each ended by a newline, to a new file in the
// temporary directory for a COPY into target, and returns its path. On
// failure nothing is left behind.
func (s *Store) writeLines(target string, lines [][]byte) (string, error) {
	path := filepath.Join(s.tmpDir, fmt.Sprintf("%s-%d.tsv", target, s.seq.Add(1)))
	f, err := s.create(path)
	if err != nil {
		return "", err
	}
	// In pieces of up to stagingBuffer bytes: a load's lines can be
	// tens of MB, not worth a copy of their own in the heap.
	buf := make([]byte, 0, stagingBuffer)
	var off int64
	for i, l := range lines {
		buf = append(buf, l...)
		buf = append(buf, '\n')
		if len(buf) >= stagingBuffer || i == len(lines)-1 {
			if _, err = f.WriteAt(buf, off); err != nil {
				break
			}
			off += int64(len(buf))
			buf = buf[:0]
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// copyFile loads a TSV file of n lines into table target with one COPY,
// on the loader thread, for t. A COPY that fails with an error other
// than the database rejecting a line is settled by the table's row
// count: if it did commit, copyFile returns nil, now or, when the count
// has to wait for the database to be reopened, at t's next COPY, which
// is of the same lines (a flush retries what failed first).
func (s *Store) copyFile(ctx context.Context, t *table, target, columns, path string, n int) error {
	q := fmt.Sprintf("COPY %s.%s (%s) FROM %s %s", quoteIdent(s.schema), target, columns, quoteString(path), copyOptions)
	return s.run(func() error {
		if err := s.settle(ctx); err != nil {
			return err
		}
		if a := t.uncertain; a != nil {
			t.uncertain = nil
			if a.committed {
				return nil
			}
		}
		a := &copyAttempt{target: target, before: s.rowCount[target], n: int64(n)}
		_, err := s.db.ExecContext(ctx, q)
		if err == nil {
			s.rowCount[target] += a.n
			return nil
		}
		if isDataError(err) {
			return err // DuckDB stops at the bad line: nothing committed
		}
		s.pending, t.uncertain = a, a
		s.checkInvalidated(err)
		if serr := s.settle(ctx); serr != nil {
			return fmt.Errorf("%w; then: %w", err, serr)
		}
		t.uncertain = nil
		if a.committed {
			return nil
		}
		return err
	})
}

// badRowSchema reads the schema URI of a bad row without decoding it all.
func badRowSchema(row []byte) string {
	const key = `"schema":"`
	i := bytes.Index(row, []byte(key))
	if i < 0 {
		return "unknown"
	}
	rest := row[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 256 {
		return "unknown"
	}
	return string(rest[:j])
}

// Close checkpoints and closes the database. What is staged and not yet
// flushed is dropped: no flush returned for it, so by the Sink contract
// its input was never acknowledged and is loaded again after a restart.
// If ctx is already done there is no checkpoint (DuckDB replays its WAL
// at the next open). No writes may follow.
func (s *Store) Close(ctx context.Context) error {
	close(s.jobs)
	<-s.done
	s.events.close()
	s.badRows.close()
	var cerr error
	if ctx.Err() == nil {
		_, cerr = s.db.ExecContext(ctx, "CHECKPOINT")
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	os.RemoveAll(s.tmpDir)
	return cerr
}
