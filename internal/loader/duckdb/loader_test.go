package duckdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/testutil"
)

// fillingFile fills the disk once its file is written.
type fillingFile struct {
	file
	fill func()
}

func (f fillingFile) Close() error {
	err := f.file.Close()
	f.fill()
	return err
}

// On a full disk, Load fails with a retryable error and stores nothing;
// once space is freed, the same batch loads once, whether the disk
// filled before the load's files were written, while DuckDB wrote its
// WAL, or while a commit checkpointed (DuckDB then invalidates the
// database, which the store reopens).
func TestLoaderFullDisk(t *testing.T) {
	for _, c := range []struct {
		name       string
		checkpoint []string
		during     bool // the disk fills once the load's files are written
	}{
		{"before the load", nil, false},
		{"during a COPY", nil, true},
		{"during a checkpoint", []string{"1KB"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s, dir := fullDiskStore(t, 4<<20, true, c.checkpoint...)
			l := s.Loader("duckdb")
			first := loader.Batch{End: 100, Good: pageViews(100, 0)}
			if err := l.Load(ctx, first); err != nil {
				t.Fatal(err)
			}
			b := loader.Batch{Start: 100, End: 1100, Good: pageViews(1000, 1000), Bad: [][]byte{[]byte("not json")}}
			var fill string
			if c.during {
				s.create = func(path string) (file, error) {
					f, err := createPrivate(path)
					if err != nil {
						return nil, err
					}
					return fillingFile{f, func() {
						// Once both files of the first attempt are written.
						if fill == "" && strings.Contains(path, "bad_rows-") {
							fill = testutil.Fill(t, dir)
						}
					}}, nil
				}
			} else {
				fill = testutil.Fill(t, dir)
			}
			for range 2 {
				err := l.Load(ctx, b)
				full := errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "No space left on device")
				if !loader.IsRetryable(err) || !errors.Is(err, ErrRetryable) || !full {
					t.Fatalf("error %v, want a retryable one saying the disk is full", err)
				}
				t.Log(err)
			}
			s.create = createPrivate
			os.Remove(fill)
			if err := l.Load(ctx, b); err != nil {
				t.Fatal(err)
			}
			if pos := position(t, l); pos != 1100 {
				t.Errorf("position %d, want 1100", pos)
			}
			checkLoaded(t, s, 1, first.Good, b.Good)
		})
	}
}

func position(t *testing.T, l loader.Loader) int64 {
	t.Helper()
	pos, err := l.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func TestLoaderPosition(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.duckdb")
	s := open(t, path)
	l := s.Loader("duckdb")
	if pos := position(t, l); pos != 0 {
		t.Fatalf("position %d before any load, want 0", pos)
	}
	batches := []loader.Batch{
		{Start: 0, End: 10, Good: pageViews(10, 0)},
		{Start: 10, End: 25, Good: pageViews(15, 10), Bad: [][]byte{badrows.SizeViolation(proc, time.Now(), 10, 20, "too big", "x")}},
		{Start: 25, End: 26}, // nothing to load: the position still moves
	}
	for _, b := range batches {
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
		if pos := position(t, l); pos != b.End {
			t.Fatalf("position %d after loading up to %d", pos, b.End)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 25 {
		t.Fatalf("%d events, want 25", n)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.bad_rows WHERE failure_type = 'size_violation'"); n != 1 {
		t.Fatalf("%d bad rows, want 1", n)
	}
	// Another destination on the same store has its own position.
	if pos := position(t, s.Loader("other")); pos != 0 {
		t.Fatalf("other destination at %d, want 0", pos)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close(ctx)
	if pos := position(t, s.Loader("duckdb")); pos != 26 {
		t.Fatalf("position %d after reopening, want 26", pos)
	}
}

// A batch ending at or before the position is already loaded: loading it
// again (a retry after a commit reported as failed) stores nothing.
func TestLoaderSkipsLoadedBatches(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	l := s.Loader("duckdb")
	b := loader.Batch{Start: 0, End: 10, Good: pageViews(10, 0), Bad: [][]byte{[]byte(`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0","data":{}}`)}}
	for range 2 {
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	older := loader.Batch{Start: 0, End: 5, Good: pageViews(5, 100)}
	if err := l.Load(ctx, older); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 10 {
		t.Errorf("%d events, want 10", n)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.bad_rows"); n != 1 {
		t.Errorf("%d bad rows, want 1", n)
	}
	if pos := position(t, l); pos != 10 {
		t.Errorf("position %d, want 10", pos)
	}
}

// Lines the store cannot take become loader_parsing_error rows of the
// same load, whether the check in Go finds them or DuckDB refuses them
// (a trusted store); bad rows that are not JSON become generic_error
// rows. Nothing is dropped, and the position moves.
func TestLoaderRefusedLines(t *testing.T) {
	validate := testutil.BadRowValidator(t, "../../../testdata/iglu-central")
	for _, c := range []struct{ trusted, staged bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		trusted := c.trusted
		t.Run(fmt.Sprintf("trusted=%v,staged=%v", c.trusted, c.staged), func(t *testing.T) {
			ctx := context.Background()
			reg := prometheus.NewRegistry()
			s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc, Trusted: trusted, Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			s.DB().SetMaxOpenConns(1) // for the check of temporary tables below
			good := pageViews(20, 0)
			good[3] = line(map[int]string{event.AppID: "x", event.DvceCreatedTstamp: "not a time"})
			good[11] = []byte("a\tb\tc")
			good[17] = line(map[int]string{event.AppID: "y", event.TxnID: "forty-two"})
			sv := badrows.SizeViolation(proc, time.Now(), 10, 20, "too big", "x")
			b := loader.Batch{Start: 100, End: 140, Good: good, Bad: [][]byte{sv, []byte("not json at all")}}
			l := s.Loader("duckdb")
			if err := load(ctx, l, b, c.staged); err != nil {
				t.Fatal(err)
			}
			if pos := position(t, l); pos != 140 {
				t.Errorf("position %d, want 140", pos)
			}
			if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 17 {
				t.Errorf("%d events, want 17", n)
			}
			if n := count(t, s, "SELECT count(*) FROM atomic.events WHERE app_id IN ('x', 'y')"); n != 0 {
				t.Errorf("%d refused lines loaded", n)
			}
			rows, err := s.DB().Query("SELECT failure_type, payload::VARCHAR FROM atomic.bad_rows ORDER BY failure_type, payload::VARCHAR")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var types []string
			var payloads string
			for rows.Next() {
				var ft, payload string
				if err := rows.Scan(&ft, &payload); err != nil {
					t.Fatal(err)
				}
				types = append(types, ft)
				payloads += payload + "\n"
				if ft == "loader_parsing_error" {
					validate([]byte(payload))
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			want := "generic_error,loader_parsing_error,loader_parsing_error,loader_parsing_error,size_violation"
			if strings.Join(types, ",") != want {
				t.Fatalf("bad rows %v, want %s", types, want)
			}
			for _, w := range []string{"not a time", "forty-two", "not json at all"} {
				if !strings.Contains(payloads, w) {
					t.Errorf("no bad row holds %q:\n%s", w, payloads)
				}
			}
			for name, want := range map[string]float64{
				"furrow_duckdb_events_loaded_total":   17,
				"furrow_duckdb_bad_rows_loaded_total": 5,
				"furrow_duckdb_parse_errors_total":    3,
			} {
				if got := counterValue(t, reg, name); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			// Probes leave nothing behind.
			if n := count(t, s, "SELECT count(*) FROM duckdb_tables() WHERE temporary"); n != 0 {
				t.Errorf("%d temporary tables left", n)
			}
		})
	}
}

// The loader and the sinks keep the store's row counts together: a
// block flush after loads still ends on a row group boundary, and a
// failed load that had committed is settled.
func TestLoaderKeepsRowCounts(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	if err := s.Loader("duckdb").Load(ctx, loader.Batch{End: 7, Good: pageViews(7, 0)}); err != nil {
		t.Fatal(err)
	}
	var events, bad int64
	s.run(func() error { events, bad = s.rowCount["events"], s.rowCount["bad_rows"]; return nil })
	if events != 7 || bad != 0 || s.events.rows != 7 {
		t.Fatalf("row counts %d, %d, %d; want 7, 0, 7", events, bad, s.events.rows)
	}
	if err := s.Good().Write(ctx, pageViews(5, 100)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 12 {
		t.Fatalf("%d events, want 12", n)
	}
}

// After a commit whose outcome was unknown, the next Load of the same
// batch finds it loaded by the position, and the row counts are taken
// again.
func TestLoaderSettlesUncertainCommit(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	l := s.Loader("duckdb").(*storeLoader)
	b := loader.Batch{End: 10, Good: pageViews(10, 0)}
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	// As if the commit had failed: the counts are not moved.
	s.run(func() error {
		s.rowCount["events"] -= 10
		s.events.rows -= 10
		l.uncertain = true
		return nil
	})
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 10 {
		t.Errorf("%d events, want 10", n)
	}
	var events int64
	s.run(func() error { events = s.rowCount["events"]; return nil })
	if events != 10 || s.events.rows != 10 || l.uncertain {
		t.Errorf("row counts %d, %d, uncertain %v; want 10, 10, false", events, s.events.rows, l.uncertain)
	}
}

func TestLoaderErrors(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	l := s.Loader("duckdb")
	// A table furrow cannot use: not an outage.
	if _, err := s.DB().Exec("DROP TABLE atomic.bad_rows"); err != nil {
		t.Fatal(err)
	}
	err := l.Load(ctx, loader.Batch{End: 1, Good: pageViews(1, 0), Bad: [][]byte{[]byte(`{"schema":"iglu:x/y/jsonschema/1-0-0","data":{}}`)}})
	var se *Error
	if err == nil || loader.IsRetryable(err) || !errors.As(err, &se) {
		t.Fatalf("error %v, want a permanent *Error", err)
	}
	if pos := position(t, l); pos != 0 {
		t.Errorf("position %d after a failed load", pos)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 0 {
		t.Errorf("%d events after a failed load", n)
	}
	// A full disk is an outage (TestFullDisk covers the store's I/O).
	for _, c := range []struct {
		err  error
		want bool
	}{
		{storeError("load", "events", fmt.Errorf("write: %w", syscall.ENOSPC)), true},
		{storeError("load", "events", errors.New("no such table")), false},
		{nil, false},
	} {
		if got := loader.IsRetryable(classify(ctx, c.err)); got != c.want {
			t.Errorf("classify(%v) retryable %v, want %v", c.err, got, c.want)
		}
	}
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if !loader.IsRetryable(classify(expired, storeError("load", "events", expired.Err()))) {
		t.Error("an expired deadline is not retryable")
	}
}

// BenchmarkLoader compares Load with the sinks' Write and Flush, for the
// same batch of page views.
func BenchmarkLoader(b *testing.B) {
	const batch = 10000
	lines := pageViews(batch, 0)
	for _, mode := range []string{"loader", "sinks"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "f.duckdb"), Processor: proc, Trusted: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			l := s.Loader("duckdb")
			b.ResetTimer()
			for i := range b.N {
				if mode == "loader" {
					err = l.Load(ctx, loader.Batch{Start: int64(i * batch), End: int64((i + 1) * batch), Good: lines})
				} else if err = s.Good().Write(ctx, lines...); err == nil {
					err = stream.Flush(ctx, s.Good())
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
		})
	}
}

// Loads and the sinks' flushes take turns: run together, every row is
// loaded once and the row counts stay right.
func TestLoaderBesideSinks(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	l := s.Loader("duckdb")
	const rounds, per = 10, 30
	var loaded, flushed [][]byte
	errc := make(chan error, 1)
	go func() {
		for i := range rounds {
			lines := pageViews(per, 10000+i*per)
			if err := s.Good().Write(ctx, lines...); err != nil {
				errc <- err
				return
			}
			if err := s.Flush(ctx); err != nil {
				errc <- err
				return
			}
			flushed = append(flushed, lines...)
		}
		errc <- nil
	}()
	for i := range rounds {
		lines := pageViews(per, i*per)
		if err := l.Load(ctx, loader.Batch{Start: int64(i * per), End: int64((i + 1) * per), Good: lines}); err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, lines...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, s, 0, loaded, flushed)
	var events int64
	s.run(func() error { events = s.rowCount["events"]; return nil })
	if events != 2*rounds*per {
		t.Errorf("row count %d, want %d", events, 2*rounds*per)
	}
}

// Under traffic (More) a load ends events on a row group boundary and
// keeps the rest in PendingTable, in the same transaction as its
// position; the next load, Idle, a load without More and opening the
// store move it. Nothing is lost or loaded twice.
func TestLoaderKeepsRowGroupsWhole(t *testing.T) {
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%v", staged), func(t *testing.T) { testRowGroupsWhole(t, staged) })
	}
}

func testRowGroupsWhole(t *testing.T, staged bool) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.duckdb")
	s, err := Open(ctx, Options{Path: path, Processor: proc, RowGroupRows: 2048})
	if err != nil {
		t.Fatal(err)
	}
	l := s.Loader("d")
	events := func() (int, int) {
		return count(t, s, "SELECT count(*) FROM atomic.events"), count(t, s, "SELECT count(*) FROM atomic."+PendingTable)
	}
	step := func(what string, b loader.Batch, wantEvents, wantPending int) {
		t.Helper()
		if w := l.(loader.Wanter).Want(); b.More && len(b.Good) == w && wantPending != 0 {
			t.Fatalf("%s: Want %d, yet %d kept", what, w, wantPending)
		}
		if err := load(ctx, l, b, staged); err != nil {
			t.Fatal(err)
		}
		if e, p := events(); e != wantEvents || p != wantPending {
			t.Fatalf("%s: events %d, pending %d; want %d, %d", what, e, p, wantEvents, wantPending)
		}
		if pos, _ := l.Position(ctx); pos != b.End {
			t.Fatalf("%s: position %d, want %d", what, pos, b.End)
		}
	}
	step("3,000 under traffic", loader.Batch{Start: 0, End: 10, Good: pageViews(3000, 0), More: true}, 2048, 952)
	step("1,500 under traffic", loader.Batch{Start: 10, End: 20, Good: pageViews(1500, 3000), More: true}, 4096, 404)
	step("the same batch again", loader.Batch{Start: 10, End: 20, Good: pageViews(1500, 3000), More: true}, 4096, 404)
	step("100 under traffic", loader.Batch{Start: 20, End: 30, Good: pageViews(100, 4500), More: true}, 4096, 504)
	if err := l.(loader.Idler).Idle(ctx); err != nil {
		t.Fatal(err)
	}
	if e, p := events(); e != 4600 || p != 0 {
		t.Fatalf("after Idle: events %d, pending %d", e, p)
	}
	step("realigned after Idle", loader.Batch{Start: 30, End: 40, Good: pageViews(2000, 4600), More: true}, 6144, 456)
	step("after a pause", loader.Batch{Start: 40, End: 50, Good: pageViews(10, 6600)}, 6610, 0)
	step("kept, then the store closed", loader.Batch{Start: 50, End: 60, Good: pageViews(30, 6610), More: true}, 6610, 30)
	s.Close(ctx)
	s, err = Open(ctx, Options{Path: path, Processor: proc, RowGroupRows: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if e, p := events(); e != 6640 || p != 0 {
		t.Fatalf("after reopening: events %d, pending %d", e, p)
	}
	if n := count(t, s, "SELECT count(DISTINCT event_id) FROM atomic.events"); n != 6640 {
		t.Fatalf("%d distinct event ids, want 6640", n)
	}
}

// load gives b to l, in memory or, staged, as the runner gives a batch
// to a loader.Stager: its lines through Stage in three parts, then Load
// without them.
func load(ctx context.Context, l loader.Loader, b loader.Batch, staged bool) error {
	if !staged {
		return l.Load(ctx, b)
	}
	st := l.(loader.Stager)
	for i := range 3 {
		g, bad := len(b.Good), len(b.Bad)
		if err := st.Stage(ctx, b.Good[i*g/3:(i+1)*g/3], b.Bad[i*bad/3:(i+1)*bad/3]); err != nil {
			return err
		}
	}
	return l.Load(ctx, loader.Batch{Start: b.Start, End: b.End, More: b.More})
}

// Want is what ends events on a row group boundary; a staged batch
// whose Load fails stays staged, and the retry loads it once.
func TestLoaderStagedWantAndRetry(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc, RowGroupRows: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	l := s.Loader("d")
	if _, err := l.Position(ctx); err != nil {
		t.Fatal(err)
	}
	if w := l.(loader.Wanter).Want(); w != 2048 {
		t.Fatalf("Want %d on an empty table, want 2048", w)
	}
	if err := load(ctx, l, loader.Batch{Start: 0, End: 10, Good: pageViews(500, 0), More: true}, true); err != nil {
		t.Fatal(err)
	}
	if w := l.(loader.Wanter).Want(); w != 1548 {
		t.Fatalf("Want %d with 500 kept, want 1548", w)
	}
	st := l.(loader.Stager)
	if err := st.Stage(ctx, pageViews(1548, 500), nil); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Load(cancelled, loader.Batch{Start: 10, End: 20, More: true}); err == nil {
		t.Fatal("a load with its context cancelled succeeded")
	}
	if err := l.Load(ctx, loader.Batch{Start: 10, End: 20, More: true}); err != nil {
		t.Fatal(err)
	}
	if e, p := count(t, s, "SELECT count(*) FROM atomic.events"), count(t, s, "SELECT count(*) FROM atomic."+PendingTable); e != 2048 || p != 0 {
		t.Fatalf("events %d, pending %d; want 2048, 0", e, p)
	}
	if n := count(t, s, "SELECT count(DISTINCT event_id) FROM atomic.events"); n != 2048 {
		t.Fatalf("%d distinct event ids, want 2048", n)
	}
	if pos := position(t, l); pos != 20 {
		t.Fatalf("position %d, want 20", pos)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.tmpDir, "*-*.tsv")); len(left) != 0 {
		t.Fatalf("staging files left after Close: %v", left)
	}
}
