package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/app"
	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

func TestSQL(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := duckdb.Open(ctx, duckdb.Options{Path: filepath.Join(dir, "furrow.duckdb"), Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	f := make([]string, event.NumFields)
	f[event.EventID] = "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11"
	f[event.VCollector], f[event.VEtl] = "c", "e"
	f[event.CollectorTstamp] = "2026-01-02 03:04:05.678"
	f[event.AppID] = "shop"
	f[event.PageTitle] = "Shoes & more"
	f[event.BrViewwidth] = "1200"
	if err := s.Good().Write(ctx, []byte(strings.Join(f, "\t"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	err = run(ctx, []string{"sql", "--data-dir", dir,
		"SELECT event_id, app_id, collector_tstamp, br_viewwidth, page_title, user_id FROM atomic.events"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	want := "event_id\tapp_id\tcollector_tstamp\tbr_viewwidth\tpage_title\tuser_id\n" +
		"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11\tshop\t2026-01-02 03:04:05.678\t1200\tShoes & more\tNULL\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}

	// Tabs and newlines inside values are escaped, one row per line.
	out.Reset()
	if err := run(ctx, []string{"sql", "--data-dir", dir, `SELECT E'a\tb\nc' AS s`}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "s\na\\tb\\nc\n" {
		t.Errorf("escaped value %q", out.String())
	}

	// Read-only: writes are refused.
	if err := run(ctx, []string{"sql", "--data-dir", dir, "DELETE FROM atomic.events"}, &out, &errb); err == nil {
		t.Error("a DELETE succeeded on the read-only connection")
	}
	if err := run(ctx, []string{"sql", "--data-dir", t.TempDir(), "SELECT 1"}, &out, &errb); err == nil {
		t.Error("querying a missing warehouse succeeded")
	}
}

// Without a running furrow, the file is opened sandboxed: the query
// reaches nothing outside the database, and the time and size limits of
// the flags (or of the configuration) apply.
func TestSQLSandboxOnTheFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := duckdb.Open(ctx, duckdb.Options{Path: filepath.Join(dir, "furrow.duckdb"), Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	const denied = "Permission Error"
	for _, tt := range []struct{ sql, want, created string }{
		{"SELECT * FROM read_text('" + secret + "')", denied, ""},
		{"SELECT * FROM read_csv('" + secret + "')", denied, ""},
		{"SELECT * FROM glob('" + dir + "/*')", denied, ""},
		{"SELECT * FROM read_csv('http://" + closed + "/x.csv')", denied, ""},
		{"INSTALL httpfs", denied, ""},
		{"LOAD httpfs", "Loading external extensions is disabled", ""},
		{"COPY (SELECT 42) TO '" + dir + "/out.csv'", denied, dir + "/out.csv"},
		{"ATTACH '" + dir + "/other.duckdb' AS other", denied, dir + "/other.duckdb"},
		{"SET enable_external_access = true", "the configuration has been locked", ""},
		{"RESET threads", "the configuration has been locked", ""},
	} {
		var out, errb bytes.Buffer
		err := run(ctx, []string{"sql", "--data-dir", dir, tt.sql}, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.sql, err, tt.want)
		}
		if tt.created != "" {
			if _, err := os.Stat(tt.created); !os.IsNotExist(err) {
				t.Errorf("%s: %s created", tt.sql, tt.created)
			}
		}
	}

	// The time limit: a flag, or sql.timeout in the configuration.
	conf := filepath.Join(dir, "furrow.yaml")
	if err := os.WriteFile(conf, []byte("sql:\n  timeout: 300ms\n  max_result_bytes: 100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const forever = "SELECT count(*) FROM range(100000000000)"
	for _, args := range [][]string{
		{"--timeout", "300ms", forever},
		{"--config", conf, forever},
	} {
		var out, errb bytes.Buffer
		start := time.Now()
		err := run(ctx, append([]string{"sql", "--data-dir", dir}, args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "time limit of 300ms (--timeout, or sql.timeout in the configuration; 0 means no limit)") {
			t.Errorf("%v: error %v", args, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%v: interrupted after %s", args, took)
		}
	}
	// The size limit: the rows before it are printed.
	const many = "SELECT range AS i FROM range(1000)"
	for _, args := range [][]string{
		{"--max-result-bytes", "100", many},
		{"--config", conf, many},
	} {
		var out, errb bytes.Buffer
		err := run(ctx, append([]string{"sql", "--data-dir", dir}, args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "limit of 100 bytes (--max-result-bytes, or sql.max_result_bytes in the configuration; 0 means no limit)") {
			t.Errorf("%v: error %v", args, err)
		}
		if out.Len() > 100 || !strings.HasPrefix(out.String(), "i\n0\n1\n") {
			t.Errorf("%v: printed %q", args, out.String())
		}
	}
	// A flag overrides the configuration; 0 is no limit.
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"sql", "--data-dir", dir, "--config", conf, "--max-result-bytes", "0", many}, &out, &errb); err != nil || strings.Count(out.String(), "\n") != 1001 {
		t.Errorf("no size limit: %d lines, %v", strings.Count(out.String(), "\n"), err)
	}
	if err := run(ctx, []string{"sql", "--data-dir", dir, "--timeout", "-1s", "SELECT 1"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("a negative time limit: %v", err)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		wantOut string
	}{
		{[]string{"version"}, false, "furrow "},
		{[]string{"help"}, false, "Usage:"},
		{[]string{"config", "--listen", "0.0.0.0:9999"}, false, "listen: 0.0.0.0:9999"},
		{[]string{"config", "--log-level", "loud"}, true, ""},
		{[]string{"config", "--validate", "--log-level", "loud"}, true, ""},
		{[]string{"config", "--validate", "--data-dir", "/tmp/furrow-test-data"}, false, "the default configuration: ok\n"},
		{[]string{"config", "extra"}, true, ""},
		{[]string{"config", "--validate", "a.yaml", "b.yaml"}, true, ""},
		{[]string{"config", "-h"}, false, ""},
		{[]string{"run", "extra"}, true, ""},
		{[]string{"nope"}, true, ""},
		{nil, true, ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := run(context.Background(), tt.args, &out, &errb)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: error %v", tt.args, err)
		}
		if !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("%v: output %q does not contain %q", tt.args, out.String(), tt.wantOut)
		}
	}
}

// While furrow runs, `furrow sql` queries it through its socket: the
// events it has loaded so far, and nothing but queries.
func TestSQLWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.SQL.Timeout = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	resp, err := http.Get("http://" + a.Addr() + "/i?e=pv&p=web&tv=js-3.24.0&aid=live&page=Live")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The event is loaded within the idle flush; poll for it.
	var out, errb bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for {
		out.Reset()
		if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT app_id, page_title FROM atomic.events"}, &out, &errb); err != nil {
			t.Fatalf("query while running: %v", err)
		}
		if out.String() == "app_id\tpage_title\nlive\tLive\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query result %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The same socket serves the metrics.
	metrics := socketGet(t, dir, "/metrics")
	for _, want := range []string{"furrow_enrich_good_total 1", "furrow_duckdb_events_loaded_total 1", `furrow_log_backlog_bytes{log="raw"} 0`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	for _, q := range []string{"DELETE FROM atomic.events", "SELECT 1; DELETE FROM atomic.events", "CHECKPOINT"} {
		if err := run(ctx, []string{"sql", "--data-dir", dir, q}, &out, &errb); err == nil || !strings.Contains(err.Error(), "only one SELECT or EXPLAIN") {
			t.Errorf("%q: error %v, want a refusal", q, err)
		}
	}
	// A failing query reports DuckDB's error.
	if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT nope FROM atomic.events"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad column: error %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT count(*) AS n FROM atomic.events"}, &out, &errb); err != nil || out.String() != "n\n1\n" {
		t.Errorf("after refused statements: %q, %v", out.String(), err)
	}
	// The sandbox, and furrow's own time limit, which the client's flag
	// does not lift.
	if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT * FROM read_text('/etc/passwd')"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "Permission Error") {
		t.Errorf("read_text: error %v", err)
	}
	start := time.Now()
	err = run(ctx, []string{"sql", "--data-dir", dir, "--timeout", "1h", "SELECT count(*) FROM range(100000000000)"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "time limit of 2s (sql.timeout in the configuration of the running furrow") {
		t.Errorf("time limit: error %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("interrupted after %s", took)
	}
	// Loading went on meanwhile.
	resp, err = http.Get("http://" + a.Addr() + "/i?e=pv&p=web&tv=js-3.24.0&aid=live&page=Again")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		out.Reset()
		if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT count(*) AS n FROM atomic.events"}, &out, &errb); err != nil {
			t.Fatal(err)
		}
		if out.String() == "n\n2\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the interrupt: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopped: the socket is gone and the file is queried directly.
	if _, err := os.Stat(app.Socket(dir)); !os.IsNotExist(err) {
		t.Errorf("socket left after a clean stop: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"sql", "--data-dir", dir, "SELECT count(*) AS n FROM atomic.events"}, &out, &errb); err != nil || out.String() != "n\n2\n" {
		t.Errorf("after stop: %q, %v", out.String(), err)
	}
}

// A socket left by a furrow that was killed does not stop `furrow sql`
// from reading the file, nor the next furrow from starting.
func TestSQLStaleSocket(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", app.Socket(dir))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT 42 AS answer"}, &out, &errb); err != nil || out.String() != "answer\n42\n" {
		t.Errorf("through the new socket: %q, %v", out.String(), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	l, err = net.Listen("unix", app.Socket(dir))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	out.Reset()
	if err := run(ctx, []string{"sql", "--data-dir", dir, "SELECT 42 AS answer"}, &out, &errb); err != nil || out.String() != "answer\n42\n" {
		t.Errorf("from the file, past a stale socket: %q, %v", out.String(), err)
	}
}

// socketGet GETs path from the furrow running on dir, through its socket.
func socketGet(t *testing.T, dir, path string) string {
	t.Helper()
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", app.Socket(dir))
	}}}
	resp, err := c.Get("http://furrow" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

func TestTuneRuntime(t *testing.T) {
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) }()

	tuneRuntime(func(string) string { return "" }, 300<<20)
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GC percent %d, want %d", got, defaultGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != 300<<20 {
		t.Errorf("memory limit %d, want %d", got, 300<<20)
	}

	// Set in the environment: the runtime has read them already.
	env := map[string]string{"GOGC": "100", "GOMEMLIMIT": "512MiB"}
	tuneRuntime(func(k string) string { return env[k] }, 300<<20)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d with GOGC set", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("memory limit %d with GOMEMLIMIT set", got)
	}
}

// writeFile writes a configuration file for a test.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "furrow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// `furrow config --validate` reports every error of a file at once, one
// a line, each naming the file and the setting.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, `listne: 127.0.0.1:1
log_level: loud
data_dir: `+dir+`/data
enrich:
  workers: many
  iglu_dirs: [`+dir+`/schemas]
duckdb:
  nice: 25
`)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"config", "--validate", file}, &out, &errb)
	if err == nil || err.Error() != file+": 5 errors" {
		t.Errorf("error %v", err)
	}
	want := file + ":1: listne: unknown setting\n" +
		file + ":5: enrich.workers: cannot unmarshal !!str `many` into int\n" +
		file + `: log_level: "loud" is not debug, info, warn or error` + "\n" +
		file + ": duckdb.nice: 25 is not between 0 and 19\n" +
		file + `: enrich.iglu_dirs[0]: iglu repository "` + dir + `/schemas": ` + dir + "/schemas has no schemas/ directory\n"
	if errb.String() != want || out.Len() != 0 {
		t.Errorf("stderr\n%s\nwant\n%s\nstdout %q", errb.String(), want, out.String())
	}

	// Unset variables: one error naming them all.
	errb.Reset()
	file = writeFile(t, "listen: ${FURROW_TEST_UNSET_A}\ndata_dir: ${FURROW_TEST_UNSET_B}\n")
	err = run(context.Background(), []string{"config", "--validate", "--config", file}, &out, &errb)
	if err == nil || errb.String() != file+": environment variables not set: FURROW_TEST_UNSET_A (line 1), FURROW_TEST_UNSET_B (line 2) (give a default with ${NAME:-default})\n" {
		t.Errorf("unset variables: %v\n%s", err, errb.String())
	}

	// A good file, as the argument or with --config.
	t.Setenv("FURROW_TEST_DATA", filepath.Join(dir, "data"))
	file = writeFile(t, "listen: 127.0.0.1:0\ndata_dir: ${FURROW_TEST_DATA}\nduckdb:\n  nice: ${FURROW_TEST_NICE:-5}\n")
	for _, args := range [][]string{{"--validate", file}, {"--validate", "--config", file}, {"--config", file, "--validate"}} {
		out.Reset()
		errb.Reset()
		if err := run(context.Background(), append([]string{"config"}, args...), &out, &errb); err != nil || out.String() != file+": ok\n" || errb.Len() != 0 {
			t.Errorf("%v: %v, stdout %q, stderr %q", args, err, out.String(), errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("--validate created the data directory: %v", err)
	}
}

// What `furrow config --validate` accepts, `furrow run` accepts, and what
// it rejects, `furrow run` rejects with the same errors: both go through
// app.Check.
func TestValidateAgreesWithRun(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "good")+"\n")
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"config", "--validate", good}, &out, &errb); err != nil {
		t.Fatalf("--validate: %v\n%s", err, errb.String())
	}
	cfg, err := config.Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Check(cfg); err != nil {
		t.Errorf("app.Check refuses what --validate accepts: %v", err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("app.New refuses what --validate accepts: %v", err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Run(stopped); err != nil {
		t.Fatal(err)
	}

	// Errors only app.Check sees (Validate cannot: they need the disk),
	// and a setting that does not decode.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		"listen: 127.0.0.1:0\ndata_dir: " + file + "\n",
		"listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "bad") + "\nenrich:\n  resolver: " + filepath.Join(dir, "missing.json") + "\n",
		"listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "bad") + "\nenrich:\n  iglu_dirs: [" + dir + "]\n",
		"listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "bad") + "\nduckdb:\n  threads: all\n",
	} {
		bad := writeFile(t, body)
		errb.Reset()
		verr := run(context.Background(), []string{"config", "--validate", bad}, &out, &errb)
		if verr == nil {
			t.Errorf("--validate accepts\n%s", body)
			continue
		}
		// furrow run stops before it changes anything (GC settings, umask).
		rerr := run(context.Background(), []string{"run", "--config", bad}, &out, io.Discard)
		if rerr == nil {
			t.Fatalf("furrow run accepts\n%s", body)
		}
		if errb.String() != rerr.Error()+"\n" {
			t.Errorf("--validate says\n%s\nfurrow run says\n%v", errb.String(), rerr)
		}
		cfg, lerr := config.Load(bad)
		if lerr == nil {
			if err := app.Check(cfg); err == nil {
				t.Errorf("app.Check accepts\n%s", body)
			}
			if _, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil {
				t.Errorf("app.New accepts\n%s", body)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Errorf("a refused configuration created its data directory: %v", err)
	}
}
