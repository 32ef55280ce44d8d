package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"
)

// ErrNotAQuery is returned by Query for a statement other than one SELECT
// or EXPLAIN.
var ErrNotAQuery = errors.New("only one SELECT or EXPLAIN statement can be run while furrow is running")

// Limits bound one query. Zero means no limit.
type Limits struct {
	// Timeout interrupts the query (DuckDB stops working on it) when it
	// runs longer, the writing of its result included.
	Timeout time.Duration
	// MaxResultBytes stops the result before the line that would make
	// its TSV, header included, longer.
	MaxResultBytes int64
}

// TimeLimitError reports a query interrupted at Limits.Timeout.
type TimeLimitError struct{ Limit time.Duration }

func (e *TimeLimitError) Error() string {
	return fmt.Sprintf("the query was interrupted: it ran longer than its time limit of %s", e.Limit)
}

// ResultLimitError reports a result cut at Limits.MaxResultBytes: the
// lines before the limit were written.
type ResultLimitError struct{ Limit int64 }

func (e *ResultLimitError) Error() string {
	return fmt.Sprintf("the result was cut: it is larger than its limit of %d bytes", e.Limit)
}

// Query runs one SELECT or EXPLAIN statement, in a read-only transaction,
// within lim, and writes its result to w as TSV (see QueryTSV). It is how
// `furrow sql` queries a running furrow; the store goes on loading
// meanwhile, on its own connection. Anything else is refused with
// ErrNotAQuery before it runs; the transaction also refuses the writes
// of EXPLAIN ANALYZE, which runs the statement it explains. The
// database itself is sandboxed (see Open).
func (s *Store) Query(ctx context.Context, query string, lim Limits, w io.Writer) error {
	return runQuery(ctx, s.db, query, lim, w, true)
}

// QueryTSV runs one statement on db within lim and writes its result to
// w as tab-separated lines with a header line: NULL for nulls,
// timestamps as "2006-01-02 15:04:05.000" (UTC), and tabs, newlines and
// backslashes in values escaped so that each row stays on one line.
// Several statements are refused before any runs. db is meant to come
// from OpenReadOnly.
func QueryTSV(ctx context.Context, db *sql.DB, query string, lim Limits, w io.Writer) error {
	return runQuery(ctx, db, query, lim, w, false)
}

// runQuery runs query within lim; with onlyQueries, only a SELECT or
// EXPLAIN, in a read-only transaction.
func runQuery(ctx context.Context, db *sql.DB, query string, lim Limits, w io.Writer, onlyQueries bool) error {
	if lim.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, lim.Timeout, &TimeLimitError{lim.Timeout})
		defer cancel()
	}
	err := queryConn(ctx, db, query, lim.MaxResultBytes, w, onlyQueries)
	var tl *TimeLimitError
	if err != nil && errors.As(context.Cause(ctx), &tl) {
		return tl
	}
	return err
}

func queryConn(ctx context.Context, db *sql.DB, query string, maxBytes int64, w io.Writer, onlyQueries bool) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) (err error) {
		c, ok := dc.(*duck.Conn)
		if !ok {
			return fmt.Errorf("duckdb: unexpected driver connection %T", dc)
		}
		if onlyQueries {
			if _, err := c.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY", nil); err != nil {
				return err
			}
			defer func() {
				// Not ctx: once the time limit has passed, it would
				// refuse to run the ROLLBACK and leave the transaction
				// open on a connection that goes back to the pool.
				if _, rerr := c.ExecContext(context.Background(), "ROLLBACK", nil); rerr != nil {
					err = errors.Join(err, rerr, driver.ErrBadConn) // the pool drops the connection
				}
			}()
		}
		// Prepare (unlike PrepareContext) refuses several statements,
		// so nothing runs before the type check.
		st, err := c.Prepare(query)
		if err != nil {
			if onlyQueries && strings.Contains(err.Error(), "multi-statement") {
				return ErrNotAQuery
			}
			return err
		}
		defer st.Close()
		stmt := st.(*duck.Stmt)
		if onlyQueries {
			typ, err := stmt.StatementType()
			if err != nil {
				return err
			}
			if typ != duck.STATEMENT_TYPE_SELECT && typ != duck.STATEMENT_TYPE_EXPLAIN {
				return ErrNotAQuery
			}
		}
		// The driver interrupts DuckDB when ctx ends. It hands back the
		// result only once DuckDB has made all of it: the time limit
		// bounds that work, the size limit what is written.
		rows, err := stmt.QueryContext(ctx, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		return writeTSV(ctx, rows, maxBytes, w)
	})
}

// writeTSV writes rows to w, stopping with a ResultLimitError before the
// line that would take the output past maxBytes (0: no limit), and with
// ctx's error once ctx ends.
func writeTSV(ctx context.Context, rows driver.Rows, maxBytes int64, w io.Writer) error {
	cols := rows.Columns()
	types := make([]string, len(cols))
	if ct, ok := rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		for i := range cols {
			types[i] = ct.ColumnTypeDatabaseTypeName(i)
		}
	}
	var written int64
	write := func(line []byte) error {
		if maxBytes > 0 && written+int64(len(line)) > maxBytes {
			return &ResultLimitError{maxBytes}
		}
		written += int64(len(line))
		_, err := w.Write(line)
		return err
	}
	line := []byte(strings.Join(cols, "\t") + "\n")
	if err := write(line); err != nil {
		return err
	}
	vals := make([]driver.Value, len(cols))
	for n := 1; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		err := rows.Next(vals)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line = line[:0]
		for i, v := range vals {
			if i > 0 {
				line = append(line, '\t')
			}
			if b, ok := v.([]byte); ok && len(b) == 16 && types[i] == "UUID" {
				v = duck.UUID(b)
			}
			line = appendCell(line, v)
		}
		line = append(line, '\n')
		if err := write(line); err != nil {
			return err
		}
	}
}

var cellEscaper = strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n", "\r", "\\r")

func appendCell(b []byte, v any) []byte {
	var s string
	switch x := v.(type) {
	case nil:
		return append(b, "NULL"...)
	case []byte:
		s = string(x)
	case string:
		s = x
	case time.Time:
		s = x.UTC().Format("2006-01-02 15:04:05.000")
	case duck.UUID:
		s = x.String()
	default:
		s = fmt.Sprint(x)
	}
	return append(b, cellEscaper.Replace(s)...)
}

// OpenReadOnly opens the database file read-only and sandboxed like a
// running store (see Open), for QueryTSV: no file but the database's own
// (and DuckDB's temporary files, beside it in <path>.tmp) can be read,
// and nothing can be written.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	c, err := duck.NewConnector(path+"?access_mode=READ_ONLY", nil)
	if err != nil {
		return nil, err
	}
	if err := sandbox(ctx, c, "", nil); err != nil {
		c.Close()
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// sandbox locks the DuckDB instance of c down, on a connection of its
// own, for queries that anyone with access to the socket or the file may
// write:
//
//   - temp_directory (when tempDir is set) is where DuckDB spills what
//     does not fit in memory; DuckDB keeps it readable and writable.
//   - allowed_directories are the only directories, besides the attached
//     database files and the temporary directory, that statements may
//     read and write once external access is off: the loader's staging
//     directory. DuckDB makes each path absolute and refuses one that
//     climbs out with "..".
//   - autoinstall_known_extensions, autoload_known_extensions and
//     allow_community_extensions off: no extension is downloaded or
//     loaded behind a query's back.
//   - enable_external_access off: no other local file, no URL, no
//     ATTACH of another file, no INSTALL or LOAD.
//   - lock_configuration on, last: no SET or RESET changes any of it
//     (nor any other setting) for the life of the instance.
//
// Settings must be made before this, in the DSN or the connector.
func sandbox(ctx context.Context, c *duck.Connector, tempDir string, allowed []string) error {
	var stmts []string
	if tempDir != "" {
		stmts = append(stmts, "SET GLOBAL temp_directory = "+quoteString(tempDir))
	}
	if len(allowed) > 0 {
		dirs := make([]string, len(allowed))
		for i, d := range allowed {
			abs, err := filepath.Abs(d)
			if err != nil {
				return err
			}
			// The separator at the end keeps out siblings that share
			// the directory's name as a prefix.
			dirs[i] = quoteString(abs + string(filepath.Separator))
		}
		stmts = append(stmts, "SET GLOBAL allowed_directories = ["+strings.Join(dirs, ", ")+"]")
	}
	stmts = append(stmts,
		"SET GLOBAL autoinstall_known_extensions = false",
		"SET GLOBAL autoload_known_extensions = false",
		"SET GLOBAL allow_community_extensions = false",
		"SET GLOBAL enable_external_access = false",
		"SET GLOBAL lock_configuration = true",
	)
	dc, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("duckdb: unexpected driver connection %T", dc)
	}
	for _, q := range stmts {
		if _, err := ex.ExecContext(ctx, q, nil); err != nil {
			return fmt.Errorf("sandbox: %s: %w", q, err)
		}
	}
	return nil
}
