package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/admin"
	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

// socketHandler is the socket's handler of an App that has only these.
func socketHandler(q querier, lim config.SQLConfig, reg *prometheus.Registry, log *slog.Logger) http.Handler {
	cfg := config.Default()
	cfg.SQL = lim
	a := &App{cfg: cfg, log: log, reg: reg, health: health.New(log, 0), sampler: admin.NewSampler(reg)}
	return a.adminHandler(q, true)
}

func TestSocketHandler(t *testing.T) {
	ctx := context.Background()
	s, err := duckdb.Open(ctx, duckdb.Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	srv := httptest.NewServer(socketHandler(s, config.Default().SQL, reg, slog.New(slog.DiscardHandler)))
	defer srv.Close()

	tests := []struct {
		name, method, path, sql string
		status                  int
		body, trailer           string // the whole body for 200, else a substring; trailer substring
	}{
		{"select", "POST", "/sql", "SELECT 1 AS a, NULL AS b, 'x\ty' AS c", 200, "a\tb\tc\n1\tNULL\tx\\ty\n", ""},
		{"write refused", "POST", "/sql", "DROP TABLE atomic.events", 400, "only one SELECT or EXPLAIN", ""},
		{"error before rows", "POST", "/sql", "SELECT nope", 400, "nope", ""},
		{"GET", "GET", "/sql", "", 405, "use POST", ""},
		{"other path", "POST", "/other", "SELECT 1", 404, "404", ""},
		{"metrics", "GET", "/metrics", "", 200, "# HELP furrow_test_total A test counter.\n# TYPE furrow_test_total counter\nfurrow_test_total 3\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.sql))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			bodyOK := string(body) == tt.body
			if tt.status != 200 {
				bodyOK = strings.Contains(string(body), tt.body)
			}
			if resp.StatusCode != tt.status || !bodyOK {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			if got := resp.Trailer.Get(QueryErrorTrailer); !strings.Contains(got, tt.trailer) || (tt.trailer == "") != (got == "") {
				t.Errorf("trailer %q, want %q", got, tt.trailer)
			}
		})
	}
}

type querierFunc func(ctx context.Context, q string, w io.Writer) error

func (f querierFunc) Query(ctx context.Context, q string, _ duckdb.Limits, w io.Writer) error {
	return f(ctx, q, w)
}

// Without DuckDB there is nothing to query; metrics are still served.
func TestSocketHandlerWithoutDuckDB(t *testing.T) {
	srv := httptest.NewServer(socketHandler(nil, config.Default().SQL, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/sql", "text/plain", strings.NewReader("SELECT 1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "disabled") {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("metrics: %d", resp.StatusCode)
	}
}

// A query that fails once rows were sent has already answered 200: the
// error comes as a trailer, on one line.
func TestQueryHandlerErrorAfterRows(t *testing.T) {
	failing := querierFunc(func(_ context.Context, _ string, w io.Writer) error {
		io.WriteString(w, "a\n1\n")
		return errors.New("Conversion Error:\nboom")
	})
	srv := httptest.NewServer(socketHandler(failing, config.Default().SQL, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/sql", "text/plain", strings.NewReader("SELECT 1"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "a\n1\n" {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
	if got := resp.Trailer.Get(QueryErrorTrailer); got != "Conversion Error: boom" {
		t.Errorf("trailer %q", got)
	}
}

// The socket applies furrow's own limits: a query past sql.timeout is
// interrupted, a result past sql.max_result_bytes is cut, and the errors
// name the setting; the sandbox's refusals come through as they are.
func TestSocketLimitsAndSandbox(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := duckdb.Open(ctx, duckdb.Options{Path: filepath.Join(dir, "f.duckdb"), Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	lim := config.SQLConfig{Timeout: 300 * time.Millisecond, MaxResultBytes: 1000}
	srv := httptest.NewServer(socketHandler(s, lim, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	defer srv.Close()

	tests := []struct {
		name, sql     string
		status        int
		body, trailer string // substrings
	}{
		{"time limit", "SELECT count(*) FROM range(100000000000)", 400, "the query was interrupted: it ran longer than its time limit of 300ms (sql.timeout in the configuration of the running furrow; 0 means no limit)", ""},
		{"result limit", "SELECT range AS i FROM range(100000)", 200, "i\n0\n1\n", "the result was cut: it is larger than its limit of 1000 bytes (sql.max_result_bytes in the configuration of the running furrow; 0 means no limit)"},
		{"a file", "SELECT * FROM read_text('/etc/passwd')", 400, "Permission Error: Cannot access file \"/etc/passwd\"", ""},
		{"a directory", "SELECT * FROM glob('/root/*')", 400, "Permission Error", ""},
		{"a URL", "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')", 400, "Permission Error", ""},
		{"a setting", "SET enable_external_access = true", 400, "only one SELECT or EXPLAIN", ""},
		{"a write by EXPLAIN ANALYZE", "EXPLAIN ANALYZE DELETE FROM atomic.events", 400, "read-only mode", ""},
		{"within the limits", "SELECT 1 AS a", 200, "a\n1\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, err := http.Post(srv.URL+"/sql", "text/plain", strings.NewReader(tt.sql))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			if got := resp.Trailer.Get(QueryErrorTrailer); !strings.Contains(got, tt.trailer) || (tt.trailer == "") != (got == "") {
				t.Errorf("trailer %q, want %q", got, tt.trailer)
			}
			if tt.status == 200 && len(body) > int(lim.MaxResultBytes) {
				t.Errorf("%d bytes sent, over the limit", len(body))
			}
			if took := time.Since(start); took > lim.Timeout+5*time.Second {
				t.Errorf("answered after %s", took)
			}
		})
	}
}
