package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"
)

// ErrNotAQuery is returned by Query for a statement other than one SELECT
// or EXPLAIN.
var ErrNotAQuery = errors.New("only one SELECT or EXPLAIN statement can be run while furrow is running")

// Query runs one SELECT or EXPLAIN statement and writes its result to w
// as tab-separated lines, with a header line. It is how `furrow sql`
// queries a running furrow; the store goes on loading meanwhile, on its
// own connection.
func (s *Store) Query(ctx context.Context, query string, w io.Writer) error {
	return QueryTSV(ctx, s.db, query, w, true)
}

// QueryTSV runs one statement on db and writes its result to w as
// tab-separated lines with a header line: NULL for nulls, timestamps as
// "2006-01-02 15:04:05.000" (UTC), and tabs, newlines and backslashes in
// values escaped so that each row stays on one line. With onlyQueries,
// anything but a single SELECT or EXPLAIN is refused with ErrNotAQuery
// before it runs.
func QueryTSV(ctx context.Context, db *sql.DB, query string, w io.Writer, onlyQueries bool) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*duck.Conn)
		if !ok {
			return fmt.Errorf("duckdb: unexpected driver connection %T", dc)
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
		rows, err := stmt.QueryContext(ctx, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		return writeTSV(rows, w)
	})
}

func writeTSV(rows driver.Rows, w io.Writer) error {
	cols := rows.Columns()
	types := make([]string, len(cols))
	if ct, ok := rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		for i := range cols {
			types[i] = ct.ColumnTypeDatabaseTypeName(i)
		}
	}
	line := []byte(strings.Join(cols, "\t") + "\n")
	if _, err := w.Write(line); err != nil {
		return err
	}
	vals := make([]driver.Value, len(cols))
	for {
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
		if _, err := w.Write(line); err != nil {
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
