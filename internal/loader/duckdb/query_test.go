package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/furrow-io/furrow/internal/event"
)

// closedPort returns a local TCP address that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// sandboxCase is a statement the sandbox refuses, with a part of DuckDB's
// error and, for writes, the file that must not appear.
type sandboxCase struct {
	name, sql, err string
	created        string
}

// sandboxCases are the refusals, for a database in dir whose loader
// stages in dir/furrow.duckdb.load, beside a file that is not the
// database's.
func sandboxCases(t *testing.T, dir string) []sandboxCase {
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Shares the staging directory's name as a prefix.
	sibling := filepath.Join(dir, "furrow.duckdb.loadx")
	if err := os.WriteFile(sibling, []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := filepath.Join(dir, "furrow.duckdb.load")
	const denied = "Permission Error: Cannot access file"
	const locked = "the configuration has been locked"
	return []sandboxCase{
		{"read_text of a file", "SELECT * FROM read_text(" + quoteString(secret) + ")", denied, ""},
		{"read_csv of a file", "SELECT * FROM read_csv(" + quoteString(secret) + ")", denied, ""},
		{"read_blob of a file", "SELECT * FROM read_blob(" + quoteString(secret) + ")", denied, ""},
		{"read_text out of the staging directory with ..", "SELECT * FROM read_text(" + quoteString(load+"/../secret.txt") + ")", denied, ""},
		{"read_text of the staging directory's sibling", "SELECT * FROM read_text(" + quoteString(sibling) + ")", denied, ""},
		{"read_text of a list with one file outside", "SELECT * FROM read_text([" + quoteString(load+"/events.a.tsv") + ", " + quoteString(secret) + "])", denied, ""},
		{"glob of a directory", "SELECT * FROM glob(" + quoteString(dir+"/*") + ")", denied, ""},
		{"glob of /", "SELECT * FROM glob('/*')", denied, ""},
		{"read_csv of a URL", "SELECT * FROM read_csv('http://" + closedPort(t) + "/x.csv')", denied, ""},
		{"INSTALL", "INSTALL httpfs", "Permission Error", ""},
		{"LOAD", "LOAD httpfs", "Loading external extensions is disabled", ""},
		{"COPY TO a file", "COPY (SELECT 1) TO " + quoteString(filepath.Join(dir, "out.csv")), denied, filepath.Join(dir, "out.csv")},
		{"ATTACH another file", "ATTACH " + quoteString(filepath.Join(dir, "other.duckdb")) + " AS other", denied, filepath.Join(dir, "other.duckdb")},
		{"SET", "SET threads = 4", locked, ""},
		{"SET GLOBAL", "SET GLOBAL enable_external_access = true", locked, ""},
		{"RESET", "RESET threads", locked, ""},
		{"unlock", "SET lock_configuration = false", locked, ""},
		{"widen the allowed directories", "SET allowed_directories = ['/']", locked, ""},
	}
}

func checkRefused(t *testing.T, c sandboxCase, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), c.err) {
		t.Errorf("%s: error %v, want %q", c.sql, err, c.err)
	}
	if c.created != "" {
		if _, err := os.Stat(c.created); !os.IsNotExist(err) {
			t.Errorf("%s: %s was created (%v)", c.sql, c.created, err)
		}
	}
}

// The store's DuckDB instance refuses everything outside the database,
// whatever the statement, even on a connection that bypasses Query's
// statement check; the loader's COPY from staging still works.
func TestSandboxStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "furrow.duckdb"))
	defer s.Close(ctx)
	for _, c := range sandboxCases(t, dir) {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.DB().ExecContext(ctx, c.sql)
			checkRefused(t, c, err)
		})
	}
	// Loading, after all of the above.
	if err := s.Good().Write(ctx, pageViews(10, 0)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 10 {
		t.Errorf("%d rows loaded, want 10", n)
	}
}

// The sandbox does not get in the loader's way, on a new database file
// and on one that exists: events are COPYed from the staging files, a
// line the database rejects is stored as a bad row (COPYed from a file
// of its own), and the file closes and reopens.
func TestSandboxLoads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "furrow.duckdb")
	for round := 1; round <= 2; round++ {
		s := open(t, path)
		if err := s.Good().Write(ctx, pageViews(100, 0)...); err != nil {
			t.Fatal(err)
		}
		if err := s.Good().Write(ctx, line(map[int]string{event.TxnID: "forty-two"})); err != nil {
			t.Fatal(err)
		}
		if err := s.Bad().Write(ctx, []byte(`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0","data":{}}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 100*round {
			t.Errorf("round %d: %d events, want %d", round, n, 100*round)
		}
		if n := count(t, s, "SELECT count(*) FROM atomic.bad_rows"); n != 2*round {
			t.Errorf("round %d: %d bad rows, want %d", round, n, 2*round)
		}
		var ext, lock string
		if err := s.DB().QueryRow("SELECT current_setting('enable_external_access')::VARCHAR, current_setting('lock_configuration')::VARCHAR").Scan(&ext, &lock); err != nil {
			t.Fatal(err)
		}
		if ext != "false" || lock != "true" {
			t.Errorf("round %d: enable_external_access %s, lock_configuration %s", round, ext, lock)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}
}

// What a query can still reach, stated so that a change in DuckDB shows:
// the staging directory (events not loaded yet), the database file and
// its WAL, and DuckDB's temporary directory, all furrow's own data.
func TestSandboxStillReaches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "furrow.duckdb")
	s := open(t, path)
	defer s.Close(ctx)
	if err := s.Good().Write(ctx, pageViews(3, 0)...); err != nil {
		t.Fatal(err)
	}
	s.events.mu.Lock()
	err := s.events.cur.sync()
	s.events.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT count(*) FROM read_text(" + quoteString(path+".load/events.a.tsv") + ") WHERE content LIKE '%page_view%'",
		"SELECT count(*) FROM glob(" + quoteString(path+".load/*") + ")",
		"SELECT count(*) FROM read_blob(" + quoteString(path) + ")",
	} {
		var n int
		if err := s.DB().QueryRow(q).Scan(&n); err != nil || n == 0 {
			t.Errorf("%s: %d, %v", q, n, err)
		}
	}
	var allowed, paths, temp string
	if err := s.DB().QueryRow("SELECT current_setting('allowed_directories')::VARCHAR, current_setting('allowed_paths')::VARCHAR, current_setting('temp_directory')").Scan(&allowed, &paths, &temp); err != nil {
		t.Fatal(err)
	}
	want := []string{path + ".load/", path + ".tmp/"}
	for _, w := range want {
		if !strings.Contains(allowed, w) {
			t.Errorf("allowed_directories %s lack %s", allowed, w)
		}
	}
	if strings.Count(allowed, ",") != len(want)-1 {
		t.Errorf("allowed_directories %s, want only %v", allowed, want)
	}
	if temp != path+".tmp" {
		t.Errorf("temp_directory %s", temp)
	}
	t.Logf("allowed_directories %s\nallowed_paths %s", allowed, paths)
}

// DuckDB still spills to its temporary directory under the sandbox, and
// removes it when it closes.
func TestSandboxSpills(t *testing.T) {
	ctx := context.Background()
	tmp := filepath.Join(t.TempDir(), "spill")
	c, err := duck.NewConnector("?memory_limit=32MB&threads=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sandbox(ctx, c, tmp, nil); err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE big AS SELECT range AS i, md5(range::VARCHAR) AS m FROM range(2000000) ORDER BY m"); err != nil {
		t.Fatal(err)
	}
	var files int
	var size int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(size), 0) FROM duckdb_temporary_files()").Scan(&files, &size); err != nil {
		t.Fatal(err)
	}
	if files == 0 || size == 0 {
		t.Errorf("%d temporary files, %d bytes: nothing spilled", files, size)
	}
	if entries, err := os.ReadDir(tmp); err != nil || len(entries) == 0 {
		t.Errorf("%s: %d entries, %v", tmp, len(entries), err)
	}
	conn.Close()
	db.Close()
	// DuckDB removes the directory it made.
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("%s after close: %v", tmp, err)
	}
}

// Query refuses what is not a query, and its read-only transaction the
// writes EXPLAIN ANALYZE would run; the sandbox refuses the rest.
func TestQueryRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "furrow.duckdb"))
	defer s.Close(ctx)
	if err := s.Good().Write(ctx, pageViews(5, 0)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range sandboxCases(t, dir) {
		t.Run(c.name, func(t *testing.T) {
			err := s.Query(ctx, c.sql, Limits{}, &bytes.Buffer{})
			// The statement check refuses what is not a query, unless
			// DuckDB does while it prepares it (COPY TO a file).
			if !strings.HasPrefix(c.sql, "SELECT") && errors.Is(err, ErrNotAQuery) {
				c.err = ErrNotAQuery.Error()
			}
			checkRefused(t, c, err)
		})
	}
	for _, q := range []string{
		"EXPLAIN ANALYZE DELETE FROM atomic.events",
		"EXPLAIN ANALYZE INSERT INTO atomic.events SELECT * FROM atomic.events",
		"EXPLAIN ANALYZE CREATE TABLE atomic.x AS SELECT 1",
	} {
		if err := s.Query(ctx, q, Limits{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "read-only mode") {
			t.Errorf("%s: error %v, want a refusal to write", q, err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 5 {
		t.Errorf("%d rows after the refusals, want 5", n)
	}
	// A read still works, EXPLAIN ANALYZE of a SELECT included, on the
	// connections the refusals went back to the pool with.
	var out bytes.Buffer
	if err := s.Query(ctx, "EXPLAIN ANALYZE SELECT count(*) FROM atomic.events", Limits{}, &out); err != nil {
		t.Error(err)
	}
	for range 3 {
		out.Reset()
		if err := s.Query(ctx, "SELECT count(*) AS n FROM atomic.events", Limits{}, &out); err != nil || out.String() != "n\n5\n" {
			t.Errorf("%q, %v", out.String(), err)
		}
	}
}

// A query past its time limit is interrupted (DuckDB stops), about when
// the limit passes, and the store goes on loading and answering.
func TestQueryTimeLimit(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "furrow.duckdb"))
	defer s.Close(ctx)
	const limit = 300 * time.Millisecond
	for _, q := range []string{
		"SELECT count(*) FROM range(100000000000)",
		"SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b",
	} {
		start := time.Now()
		err := s.Query(ctx, q, Limits{Timeout: limit}, &bytes.Buffer{})
		took := time.Since(start)
		t.Logf("%s: interrupted after %s", q, took)
		var tl *TimeLimitError
		if !errors.As(err, &tl) || tl.Limit != limit || !strings.Contains(err.Error(), "time limit of 300ms") {
			t.Fatalf("%s: error %v, want a TimeLimitError", q, err)
		}
		// DuckDB checks for interrupts between chunks of work: well under a
		// second here, but the machine may be busy.
		if took < limit || took > limit+5*time.Second {
			t.Errorf("%s: interrupted after %s, limit %s", q, took, limit)
		}
	}
	// The client going away interrupts too, without calling it a limit.
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := s.Query(cctx, "SELECT count(*) FROM range(100000000000)", Limits{Timeout: time.Hour}, &bytes.Buffer{})
	var tl *TimeLimitError
	if err == nil || errors.As(err, &tl) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled by the caller: %v", err)
	}
	if err := s.Good().Write(ctx, pageViews(3, 0)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Query(ctx, "SELECT count(*) AS n FROM atomic.events", Limits{Timeout: limit}, &out); err != nil || out.String() != "n\n3\n" {
		t.Errorf("after the interrupt: %q, %v", out.String(), err)
	}
}

// A result is cut before the line that would pass the size limit.
func TestQueryResultLimit(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "furrow.duckdb"))
	defer s.Close(ctx)
	const q = "SELECT range AS i FROM range(100000)"
	var all bytes.Buffer
	if err := s.Query(ctx, q, Limits{}, &all); err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{1, 1000, 1001, int64(all.Len()) - 1} {
		var out bytes.Buffer
		err := s.Query(ctx, q, Limits{MaxResultBytes: max}, &out)
		var rl *ResultLimitError
		if !errors.As(err, &rl) || rl.Limit != max || !strings.Contains(err.Error(), fmt.Sprintf("limit of %d bytes", max)) {
			t.Fatalf("limit %d: error %v", max, err)
		}
		if int64(out.Len()) > max || !bytes.HasPrefix(all.Bytes(), out.Bytes()) || (out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n"))) {
			t.Errorf("limit %d: %d bytes written, not whole lines of the result", max, out.Len())
		}
		if max >= 1000 && int64(out.Len()) < max-7 {
			t.Errorf("limit %d: only %d bytes written", max, out.Len())
		}
	}
	var out bytes.Buffer
	if err := s.Query(ctx, q, Limits{MaxResultBytes: int64(all.Len())}, &out); err != nil || out.Len() != all.Len() {
		t.Errorf("a result of exactly the limit: %d bytes, %v", out.Len(), err)
	}
}

// The file opened for `furrow sql` without a running furrow has the same
// sandbox, and reaches nothing but the database.
func TestOpenReadOnlySandbox(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "furrow.duckdb")
	s := open(t, path)
	if err := s.Good().Write(ctx, pageViews(5, 0)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cases := sandboxCases(t, dir)
	// Nothing else is allowed, the staging directory included.
	if err := os.MkdirAll(path+".load", 0o700); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, sandboxCase{"glob of the staging directory", "SELECT * FROM glob(" + quoteString(path+".load/*") + ")", "Permission Error", ""},
		sandboxCase{"a write", "DELETE FROM atomic.events", "read-only", ""})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := QueryTSV(ctx, db, c.sql, Limits{}, &bytes.Buffer{})
			checkRefused(t, c, err)
		})
	}
	var out bytes.Buffer
	if err := QueryTSV(ctx, db, "SELECT count(*) AS n FROM atomic.events", Limits{Timeout: time.Second, MaxResultBytes: 100}, &out); err != nil || out.String() != "n\n5\n" {
		t.Errorf("%q, %v", out.String(), err)
	}
	start := time.Now()
	err = QueryTSV(ctx, db, "SELECT count(*) FROM range(100000000000)", Limits{Timeout: 300 * time.Millisecond}, &out)
	var tl *TimeLimitError
	if !errors.As(err, &tl) || time.Since(start) > 5*time.Second {
		t.Errorf("after %s: %v, want a TimeLimitError", time.Since(start), err)
	}
}
