package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

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
one SELECT or EXPLAIN; otherwise the database file is opened read-only.

Either way the query reads nothing but the warehouse: no other file, no
URL, no extension, no change of DuckDB's settings. It is interrupted when
it runs longer than its time limit, and its result is cut at a size limit.
While furrow runs, its own sql.timeout and sql.max_result_bytes apply;
otherwise those of the configuration, or the flags below (0: no limit).`)
		fs.PrintDefaults()
	}
	file := fs.String("config", "", "YAML configuration file, to find the warehouse")
	dataDir := fs.String("data-dir", "", "data directory of 'furrow run' (default ./furrow-data)")
	timeout := fs.Duration("timeout", 0, "time limit of the query on the file (default sql.timeout, 30s)")
	maxBytes := fs.Int64("max-result-bytes", 0, "size limit of the result from the file (default sql.max_result_bytes, 128 MiB)")
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
	lim := duckdb.Limits{Timeout: cfg.SQL.Timeout, MaxResultBytes: cfg.SQL.MaxResultBytes}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "timeout":
			lim.Timeout = *timeout
		case "max-result-bytes":
			lim.MaxResultBytes = *maxBytes
		}
	})
	var errs []error
	if lim.Timeout < 0 {
		errs = append(errs, fmt.Errorf("time limit %s is negative (0 means no limit)", lim.Timeout))
	}
	if lim.MaxResultBytes < 0 {
		errs = append(errs, fmt.Errorf("result size limit %d is negative (0 means no limit)", lim.MaxResultBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	err = queryRunning(ctx, app.Socket(cfg.DataDir), fs.Arg(0), stdout)
	if !errors.Is(err, errNotRunning) {
		return err
	}
	db, err := duckdb.OpenReadOnly(ctx, cfg.DuckDBPath())
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("%s is in use by another process, and no furrow answers on %s: %w", cfg.DuckDBPath(), app.Socket(cfg.DataDir), err)
		}
		return fmt.Errorf("open %s: %w", cfg.DuckDBPath(), err)
	}
	defer db.Close()
	err = duckdb.QueryTSV(ctx, db, fs.Arg(0), lim, stdout)
	var tl *duckdb.TimeLimitError
	var rl *duckdb.ResultLimitError
	switch {
	case errors.As(err, &tl):
		return fmt.Errorf("%w (--timeout, or sql.timeout in the configuration; 0 means no limit)", err)
	case errors.As(err, &rl):
		return fmt.Errorf("%w (--max-result-bytes, or sql.max_result_bytes in the configuration; 0 means no limit)", err)
	}
	return err
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
