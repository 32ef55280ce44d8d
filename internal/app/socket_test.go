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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

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
