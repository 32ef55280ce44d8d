package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
	"github.com/furrow-io/furrow/internal/wal"
)

func filesDestination(name, path string) config.Destination {
	d := config.DefaultFilesDestination()
	d.Path = path
	d.MaxDelay = time.Hour // cut by the stop
	return config.Destination{Name: name, Type: config.TypeFiles, Files: &d}
}

// goodLines counts the enriched lines in a files destination's good
// objects.
func goodLines(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(dir, "good"), func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte("\n"))
		return nil
	})
	return n
}

func runApp(t *testing.T, cfg config.Config, log *slog.Logger, send func(addr string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	send(a.Addr())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// rewindReader moves reader name of the log in dir back to 0, as if
// its commits were lost, and returns the log's end.
func rewindReader(t *testing.T, dir, name string) int64 {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rd, err := l.Reader(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rd.Rewind(0)
	if err := rd.Commit(0); err != nil {
		t.Fatal(err)
	}
	return l.End()
}

func sendPageViews(t *testing.T, addr string, n int) {
	t.Helper()
	for i := range n {
		resp, err := http.Get(fmt.Sprintf("http://%s/i?e=pv&p=web&tv=js-3&aid=t&eid=%08d-0000-4000-8000-000000000000", addr, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// Two destinations both get every event, the stop loads what the
// enriched log holds (even under max_delay), and a destination taken out
// of the configuration lets go of the log.
func TestTwoFilesDestinations(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = filepath.Join(dir, "data"), "127.0.0.1:0"
	cfg.Destinations = config.Destinations{filesDestination("a", filepath.Join(dir, "a")), filesDestination("b", filepath.Join(dir, "b"))}
	runApp(t, cfg, slog.New(slog.DiscardHandler), func(addr string) { sendPageViews(t, addr, 300) })
	if a, b := goodLines(t, filepath.Join(dir, "a")), goodLines(t, filepath.Join(dir, "b")); a != 300 || b != 300 {
		t.Fatalf("loaded %d and %d, want 300 each", a, b)
	}
	id, err := os.ReadFile(filepath.Join(cfg.DataDir, "log", "enriched", "id"))
	if err != nil || len(strings.TrimSpace(string(id))) != 36 {
		t.Fatalf("log id %q, %v", id, err)
	}

	var logs bytes.Buffer
	cfg.Destinations = cfg.Destinations[:1]
	runApp(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(addr string) { sendPageViews(t, addr, 10) })
	if !strings.Contains(logs.String(), "a destination is no longer configured") || !strings.Contains(logs.String(), "destination=b") {
		t.Fatalf("no warning about b:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "log", "enriched", "readers", loader.ReaderName("b"))); !os.IsNotExist(err) {
		t.Fatalf("b's reader is still there: %v", err)
	}
	if a := goodLines(t, filepath.Join(dir, "a")); a != 310 {
		t.Fatalf("a loaded %d, want 310", a)
	}
}

// A frame written before furrow stopped, whose raw commit was lost, is
// not enriched again: the raw reader is moved past it at the start.
func TestFrameMovesRawReader(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = filepath.Join(dir, "data"), "127.0.0.1:0"
	cfg.Destinations = config.Destinations{filesDestination("a", filepath.Join(dir, "a")), filesDestination("b", filepath.Join(dir, "b"))}
	runApp(t, cfg, slog.New(slog.DiscardHandler), func(addr string) { sendPageViews(t, addr, 50) })
	// Rewind the raw reader to 0, as if its last commits were lost.
	end := rewindReader(t, filepath.Join(cfg.DataDir, "log", "raw"), "enrich")
	// The marks reader is committed after the raw reader: a stop that
	// lost the raw commit left it at the frames (here: at the start).
	enr, err := wal.Open(wal.Options{Dir: filepath.Join(cfg.DataDir, "log", "enriched")})
	if err != nil {
		t.Fatal(err)
	}
	marks, _ := enr.Reader(loader.MarksReader)
	marks.Rewind(0)
	if err := marks.Commit(0); err != nil {
		t.Fatal(err)
	}
	marks.Close()
	enr.Close()
	runApp(t, cfg, slog.New(slog.DiscardHandler), func(string) {})
	if a := goodLines(t, filepath.Join(dir, "a")); a != 50 {
		t.Fatalf("a loaded %d, want 50: payloads enriched twice", a)
	}
	raw, _ := wal.Open(wal.Options{Dir: filepath.Join(cfg.DataDir, "log", "raw")})
	defer raw.Close()
	if lag := raw.Lag("enrich"); lag != 0 || raw.End() != end {
		t.Fatalf("raw reader lag %d", lag)
	}
}

// The default, DuckDB loaded by the enricher, holds the raw log's
// position with the rows: a start whose raw reader lost its commits
// (a crash between DuckDB's commit and the reader's) moves the reader
// past what DuckDB holds instead of loading it again.
func TestDuckDBPositionMovesRawReader(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = filepath.Join(dir, "data"), "127.0.0.1:0"
	runApp(t, cfg, slog.New(slog.DiscardHandler), func(addr string) { sendPageViews(t, addr, 50) })
	end := rewindReader(t, filepath.Join(cfg.DataDir, "log", "raw"), "enrich")
	runApp(t, cfg, slog.New(slog.DiscardHandler), func(addr string) { sendPageViews(t, addr, 5) })
	st, err := duckdb.Open(context.Background(), duckdb.Options{Path: cfg.DuckDBPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	var n, distinct int
	if err := st.DB().QueryRow("SELECT count(*), count(DISTINCT event_id) FROM atomic.events").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 55 || distinct != 50 {
		// The 5 sent by the second run have the ids of the first 5; the
		// 50 enriched again would make 105.
		t.Fatalf("%d events (%d distinct), want 55 of 50 ids", n, distinct)
	}
	var pos int64
	if err := st.DB().QueryRow("SELECT position FROM atomic." + duckdb.PositionsTable + " WHERE destination LIKE 'raw@%'").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	if pos <= end {
		t.Fatalf("raw position %d, want past %d", pos, end)
	}
}

// Going back to one duckdb destination while the enriched log still
// holds events another destination has not loaded is refused.
func TestBackToFusedRefusedWhileEnrichedLogHoldsEvents(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = filepath.Join(dir, "data"), "127.0.0.1:0"
	cfg.Destinations = config.Destinations{filesDestination("a", filepath.Join(dir, "a")), filesDestination("b", filepath.Join(dir, "b"))}
	runApp(t, cfg, slog.New(slog.DiscardHandler), func(addr string) { sendPageViews(t, addr, 5) })
	// Drained: back to the default is fine.
	fused := cfg
	fused.Destinations = nil
	a, err := New(context.Background(), fused, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.closeAll(context.Background())
	// Destination b's reader rewound: it has events to load.
	enr, err := wal.Open(wal.Options{Dir: filepath.Join(cfg.DataDir, "log", "enriched")})
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := enr.Reader(loader.ReaderName("b"))
	rd.Rewind(0)
	rd.Commit(0)
	rd.Close()
	enr.Close()
	_, err = New(context.Background(), fused, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "holds events not yet loaded into destination b (") {
		t.Fatalf("New: %v", err)
	}
}
