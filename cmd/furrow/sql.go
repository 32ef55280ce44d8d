package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/furrow-io/furrow/internal/app"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

// runSQL queries the warehouse read-only and prints the result as TSV
// with a header line: through the running furrow's query socket if there
// is one, otherwise from the database file.
func runSQL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("furrow sql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: furrow sql [flags] "SELECT ..."

Queries the DuckDB warehouse read-only, printing tab-separated rows with a
header. While 'furrow run' is running on the same data directory, the
query goes to it (through the socket <data-dir>/furrow.sock) and can be
one SELECT or EXPLAIN; otherwise the database file is opened read-only.`)
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
	err = queryRunning(ctx, app.Socket(cfg.DataDir), fs.Arg(0), stdout)
	if !errors.Is(err, errNotRunning) {
		return err
	}
	conn, err := duck.NewConnector(cfg.DuckDBPath()+"?access_mode=READ_ONLY", nil)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("%s is in use by another process, and no furrow answers on %s: %w", cfg.DuckDBPath(), app.Socket(cfg.DataDir), err)
		}
		return fmt.Errorf("open %s: %w", cfg.DuckDBPath(), err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	return duckdb.QueryTSV(ctx, db, fs.Arg(0), stdout, false)
}

var errNotRunning = errors.New("no furrow is running on this data directory")

// queryRunning sends the query to a running furrow and copies its answer
// to w. It returns errNotRunning if nothing listens on the socket.
func queryRunning(ctx context.Context, socket, query string, w io.Writer) error {
	if _, err := os.Stat(socket); err != nil {
		return errNotRunning
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://furrow/sql", strings.NewReader(query))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return errNotRunning // a socket left by a furrow that was killed
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return errors.New(strings.TrimSpace(string(msg)))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return err
	}
	if msg := resp.Trailer.Get(app.QueryErrorTrailer); msg != "" {
		return errors.New(msg)
	}
	return nil
}
