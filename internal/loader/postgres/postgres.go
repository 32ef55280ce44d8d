// Package postgres is the PostgreSQL destination: it loads batches of
// the enriched log into an events table and a bad_rows table, and keeps
// the log position it holds in the same database, committed with the
// rows.
//
// Open creates what is missing (nothing is altered or dropped), in the
// schema of Options.Schema ("atomic" by default):
//
//	CREATE SCHEMA IF NOT EXISTS atomic;
//	CREATE TABLE IF NOT EXISTS atomic.events (
//	  app_id VARCHAR, platform VARCHAR,
//	  etl_tstamp TIMESTAMP, collector_tstamp TIMESTAMP NOT NULL, ...
//	  event_id UUID NOT NULL, txn_id INTEGER, ...
//	  contexts JSONB, ..., unstruct_event JSONB, ..., derived_contexts JSONB, ...
//	  load_tstamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'utc')
//	);
//	CREATE TABLE IF NOT EXISTS atomic.bad_rows (
//	  schema TEXT NOT NULL,        -- the bad row's Iglu schema URI
//	  failure_type TEXT NOT NULL,  -- its name, e.g. schema_violations
//	  payload JSONB NOT NULL,      -- the whole self-describing bad row
//	  load_tstamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'utc')
//	);
//	CREATE TABLE IF NOT EXISTS atomic._furrow_positions (
//	  destination TEXT PRIMARY KEY, -- Options.Name, "postgres" by default
//	  position BIGINT NOT NULL,     -- End of the last batch loaded
//	  updated_at TIMESTAMP NOT NULL
//	);
//
// The events table has the 131 columns of the enriched TSV, in its order
// (EventsDDL gives the full statement): strings are VARCHAR (no length
// limit: the enricher enforces the limits), event_id is UUID, integers
// INTEGER, numbers DOUBLE PRECISION, flags BOOLEAN, timestamps TIMESTAMP
// (UTC, without time zone), the three JSON columns JSONB; event_id,
// v_collector, v_etl and collector_tstamp are NOT NULL.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/jackc/pgx/v5"
)

// DefaultName is the destination name used when Options.Name is empty.
const DefaultName = "postgres"

// PositionsTable is the name of the positions table in the schema.
const PositionsTable = "_furrow_positions"

// Options configure a Loader.
type Options struct {
	// DSN is a libpq connection string or URL
	// (postgres://user:password@host:5432/db). It is never logged.
	DSN string
	// Schema holds the tables; "atomic" if empty.
	Schema string
	// Name is the destination's name (the config's name), its key in the
	// positions table: destinations loading the same schema keep their
	// own positions. DefaultName if empty.
	Name      string
	Processor badrows.Processor // names furrow in loader_parsing_error rows
	Logger    *slog.Logger      // slog.Default() if nil
}

// Loader loads batches into PostgreSQL over one connection, which it
// opens again after an outage. It implements loader.Loader; its methods
// are safe for concurrent use (they take turns).
type Loader struct {
	opts   Options
	cfg    *pgx.ConnConfig
	secret string // the password, scrubbed from every error
	log    *slog.Logger

	mu   sync.Mutex
	conn *pgx.Conn
	buf  []byte
	lens []int // per good line: length of its tuple in buf, -1 if refused
}

var _ loader.Loader = (*Loader)(nil)

// Open connects to the database and creates the schema and tables that
// are missing. Errors are classified as Load's are: an unreachable
// server is retryable, a wrong password or missing database is not.
func Open(ctx context.Context, opts Options) (*Loader, error) {
	if opts.Schema == "" {
		opts.Schema = "atomic"
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DSN == "" {
		return nil, errors.New("postgres: dsn is empty: set it to a connection string such as postgres://user:password@host:5432/db")
	}
	cfg, err := pgx.ParseConfig(opts.DSN)
	if err != nil {
		// pgconn redacts the password from its parse errors.
		return nil, fmt.Errorf("postgres: dsn cannot be parsed: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	l := &Loader{opts: opts, cfg: cfg, secret: cfg.Password,
		log: opts.Logger.With("destination", opts.Name, "host", cfg.Host, "port", cfg.Port, "database", cfg.Database, "user", cfg.User)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.connect(ctx); err != nil {
		return nil, err
	}
	if err := l.migrate(ctx); err != nil {
		l.drop()
		return nil, err
	}
	return l, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sqlType(i int, f event.Field) string {
	switch f.Type {
	case event.Int:
		return "INTEGER"
	case event.Double:
		return "DOUBLE PRECISION"
	case event.Bool:
		return "BOOLEAN"
	case event.Timestamp:
		return "TIMESTAMP"
	case event.JSON:
		return "JSONB"
	}
	if i == event.EventID {
		return "UUID"
	}
	return "VARCHAR"
}

// EventsDDL returns the CREATE TABLE statement of the events table.
func EventsDDL(schema string) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS " + quoteIdent(schema) + ".events (\n")
	for i, f := range event.Fields {
		b.WriteString("  " + f.Name + " " + sqlType(i, f))
		if required(i) {
			b.WriteString(" NOT NULL")
		}
		b.WriteString(",\n")
	}
	b.WriteString("  load_tstamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'utc')\n)")
	return b.String()
}

// migrate creates the schema and tables that are missing. It creates
// only what is missing (CREATE ... IF NOT EXISTS checks the privilege
// first), so a user without CREATE can load into tables made for it.
func (l *Loader) migrate(ctx context.Context) error {
	q := quoteIdent(l.opts.Schema)
	objects := []struct{ kind, name, ddl string }{
		{"schema", l.opts.Schema, "CREATE SCHEMA IF NOT EXISTS " + q},
		{"table", "events", EventsDDL(l.opts.Schema)},
		{"table", "bad_rows", "CREATE TABLE IF NOT EXISTS " + q + `.bad_rows (
  schema TEXT NOT NULL,
  failure_type TEXT NOT NULL,
  payload JSONB NOT NULL,
  load_tstamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'utc')
)`},
		{"table", PositionsTable, "CREATE TABLE IF NOT EXISTS " + q + "." + PositionsTable + ` (
  destination TEXT PRIMARY KEY,
  position BIGINT NOT NULL,
  updated_at TIMESTAMP NOT NULL
)`},
	}
	for _, o := range objects {
		var exists bool
		var err error
		if o.kind == "schema" {
			err = l.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", o.name).Scan(&exists)
		} else {
			err = l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2)`, l.opts.Schema, o.name).Scan(&exists)
		}
		if err != nil {
			return l.classify(ctx, err)
		}
		if exists {
			continue
		}
		if _, err := l.conn.Exec(ctx, o.ddl); err != nil {
			return l.classify(ctx, fmt.Errorf("creating %s %s: %w", o.kind, o.name, err))
		}
		l.log.Info("created", o.kind, o.name)
	}
	// A table of the same name made by someone else is refused here
	// rather than by every COPY. Columns added beside furrow's (generated
	// columns, say) are fine.
	var n int
	err := l.conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
WHERE table_schema = $1 AND table_name = 'events' AND column_name = ANY($2)`, l.opts.Schema, columnNames).Scan(&n)
	if err != nil {
		return l.classify(ctx, err)
	}
	if n != event.NumFields {
		return fmt.Errorf("postgres: table %s.events has %d of the %d enriched event columns: it was not made by furrow; set schema to another one or drop the table",
			l.opts.Schema, n, event.NumFields)
	}
	return nil
}

// connect (re)opens the connection if there is none. l.mu is held.
func (l *Loader) connect(ctx context.Context) (*pgx.Conn, error) {
	if l.conn != nil && !l.conn.IsClosed() {
		return l.conn, nil
	}
	l.drop()
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, l.classify(ctx, err)
	}
	l.conn = conn
	l.log.Info("connected")
	return conn, nil
}

// drop closes the connection, if any, after an error. l.mu is held.
func (l *Loader) drop() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.conn.Close(ctx)
	l.conn = nil
}

// Position returns the End of the last batch loaded, 0 if none.
func (l *Loader) Position(ctx context.Context) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	conn, err := l.connect(ctx)
	if err != nil {
		return 0, err
	}
	var pos int64
	err = conn.QueryRow(ctx, "SELECT position FROM "+quoteIdent(l.opts.Schema)+"."+PositionsTable+" WHERE destination = $1",
		l.opts.Name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		err = l.classify(ctx, fmt.Errorf("reading the position: %w", err))
		if loader.IsRetryable(err) {
			l.drop()
		}
		return 0, err
	}
	return pos, nil
}

// Close closes the connection.
func (l *Loader) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close(ctx)
	l.conn = nil
	if err != nil {
		return l.scrub(fmt.Errorf("postgres: close: %w", err))
	}
	return nil
}
