package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/furrow-io/furrow/internal/config"
)

// runSQL queries the warehouse read-only and prints the result as TSV
// with a header line.
func runSQL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("furrow sql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: furrow sql [flags] "SELECT ..."

Queries the DuckDB warehouse read-only, printing tab-separated rows with a
header. DuckDB lets one process write a database file, so stop 'furrow run'
first (it loads everything it has collected before it exits).`)
		fs.PrintDefaults()
	}
	file := fs.String("config", "", "YAML configuration file, to find the warehouse")
	dataDir := fs.String("data-dir", "", "data directory of 'furrow run' (default ./furrow-data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("give one SQL statement")
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	conn, err := duck.NewConnector(cfg.DuckDBPath()+"?access_mode=READ_ONLY", nil)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("%s is in use, most likely by a running 'furrow run'; stop it and query again: %w", cfg.DuckDBPath(), err)
		}
		return fmt.Errorf("open %s: %w", cfg.DuckDBPath(), err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	rows, err := db.QueryContext(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := make([]string, len(cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok && len(b) == 16 && types[i].DatabaseTypeName() == "UUID" {
				v = duck.UUID(b)
			}
			out[i] = cell(v)
		}
		fmt.Fprintln(stdout, strings.Join(out, "\t"))
	}
	return rows.Err()
}

// cell renders one value; tabs and newlines are escaped so each row stays
// on one line.
func cell(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		s = string(x)
	case time.Time:
		s = x.UTC().Format("2006-01-02 15:04:05.000")
	case duck.UUID:
		s = x.String()
	default:
		s = fmt.Sprint(x)
	}
	return strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n", "\r", "\\r").Replace(s)
}
