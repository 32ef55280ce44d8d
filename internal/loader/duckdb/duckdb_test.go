package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	duck "github.com/duckdb/duckdb-go/v2"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/testutil"
)

var proc = badrows.Processor{Artifact: "furrow", Version: "0.0.0"}

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: path, Processor: proc})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// line builds an enriched TSV line from column values.
func line(vals map[int]string) []byte {
	f := make([]string, event.NumFields)
	f[event.EventID] = "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11"
	f[event.VCollector] = "furrow-test"
	f[event.VEtl] = "furrow-test"
	f[event.CollectorTstamp] = "2026-01-02 03:04:05.678"
	for k, v := range vals {
		f[k] = v
	}
	return []byte(strings.Join(f, "\t"))
}

func TestLoadEventsTyped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "furrow.duckdb")
	s := open(t, path)
	ctx := context.Background()
	good := line(map[int]string{
		event.AppID: "shop", event.Event: "unstruct", event.TxnID: "42", event.BrCookies: "1",
		event.TrTotal: "19.99", event.DvceCreatedTstamp: "2026-01-02 03:04:04.000", event.PageTitle: `He said "hi" \o/`,
		event.Contexts:      `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"k":"v\"w"}}]}`,
		event.UnstructEvent: `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/e/jsonschema/1-0-0","data":{"n":3}}}`,
	})
	tooFew := []byte("a\tb\tc")
	badType := line(map[int]string{event.TxnID: "forty-two", event.BrCookies: "yes"})
	if err := s.Good().Write(ctx, good, tooFew, badType); err != nil {
		t.Fatal(err)
	}
	if s.Pending() != 3 {
		t.Fatalf("%d pending", s.Pending())
	}
	var before int
	s.DB().QueryRow(`SELECT count(*) FROM atomic.events`).Scan(&before)
	if before != 0 {
		t.Fatal("events visible before Flush")
	}
	if err := s.Good().(stream.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		appID, title, ctxVal string
		txn                  int
		cookies              bool
		total                float64
		created, collector   time.Time
		n                    json.Number
		platform             *string
		load                 time.Time
	)
	err := s.DB().QueryRow(`SELECT app_id, page_title, txn_id, br_cookies, tr_total, dvce_created_tstamp, collector_tstamp,
		contexts->'$.data[0].data'->>'k', unstruct_event->'$.data.data'->>'n', platform, load_tstamp FROM atomic.events`).
		Scan(&appID, &title, &txn, &cookies, &total, &created, &collector, &ctxVal, &n, &platform, &load)
	if err != nil {
		t.Fatal(err)
	}
	if appID != "shop" || title != `He said "hi" \o/` || txn != 42 || !cookies || total != 19.99 ||
		created.Format(event.TimestampLayout) != "2026-01-02 03:04:04.000" || collector.Format(event.TimestampLayout) != "2026-01-02 03:04:05.678" ||
		ctxVal != `v"w` || n != "3" || platform != nil || time.Since(load) > time.Hour || time.Since(load) < -time.Hour {
		t.Fatalf("%q %q %d %v %v %v %v %q %q %v %v", appID, title, txn, cookies, total, created, collector, ctxVal, n, platform, load)
	}
	rows, err := s.DB().Query(`SELECT failure_type, payload->'$.data.failure'->>'type', payload::VARCHAR FROM atomic.bad_rows ORDER BY 2`)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for rows.Next() {
		var ft, typ, payload string
		rows.Scan(&ft, &typ, &payload)
		if ft != "loader_parsing_error" {
			t.Fatalf("failure type %s", ft)
		}
		types = append(types, typ)
		if typ == "RowDecodingError" && (!strings.Contains(payload, `"key":"txn_id"`) || !strings.Contains(payload, `"key":"br_cookies"`)) {
			t.Fatalf("payload %s", payload)
		}
	}
	if strings.Join(types, ",") != "FieldNumberMismatch,RowDecodingError" {
		t.Fatalf("bad row types %v", types)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Data survives reopening.
	s = open(t, path)
	defer s.Close(ctx)
	var count int
	s.DB().QueryRow(`SELECT count(*) FROM atomic.events`).Scan(&count)
	if count != 1 {
		t.Fatalf("%d events after reopen", count)
	}
}

// Close drops what no flush stored: its input was never acknowledged,
// and is loaded again after a restart. What was flushed stays.
func TestCloseDropsUnflushed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.duckdb")
	s := open(t, path)
	s.Good().Write(ctx, pageViews(3, 0)...)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Good().Write(ctx, pageViews(2, 100)...)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close(ctx)
	if n := count(t, s, `SELECT count(*) FROM atomic.events`); n != 3 {
		t.Fatalf("%d events, want the 3 flushed", n)
	}
	// With its context done, Close skips the checkpoint and still closes.
	s2 := open(t, filepath.Join(t.TempDir(), "g.duckdb"))
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s2.Close(done); err != nil {
		t.Fatalf("Close with a done context: %v", err)
	}
}

func TestBisectIsolatesRejectedLines(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	lines := pageViews(9, 0)
	// Trusted: passes nothing in Go on purpose, goes straight to COPY.
	lines[5] = line(map[int]string{event.DvceCreatedTstamp: "not a time"})
	if err := s.Good().Write(ctx, lines...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(DISTINCT event_id) FROM atomic.events`); n != 8 {
		t.Fatalf("%d rows loaded, want 8", n)
	}
	var payload string
	if err := s.DB().QueryRow(`SELECT payload::VARCHAR FROM atomic.bad_rows`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(payload, "not a time") {
		t.Errorf("bad row %s", payload)
	}
	// Valid against Iglu Central's loader_parsing_error schema.
	testutil.BadRowValidator(t, "../../../testdata/iglu-central")([]byte(payload))
}

// A trusted store stages lines without checking them; one the database
// rejects still becomes a loader_parsing_error bad row, and the others
// are loaded.
func TestTrustedStoreIsolatesRejectedLines(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	lines := [][]byte{
		line(map[int]string{event.AppID: "a"}),
		line(map[int]string{event.AppID: "b", event.TxnID: "forty-two"}),
		line(map[int]string{event.AppID: "c"}),
	}
	if err := s.Good().Write(ctx, lines...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events WHERE app_id IN ('a', 'c')"); n != 2 {
		t.Errorf("%d good events loaded, want 2", n)
	}
	var ft, payload string
	if err := s.DB().QueryRow("SELECT failure_type, payload::VARCHAR FROM atomic.bad_rows").Scan(&ft, &payload); err != nil {
		t.Fatal(err)
	}
	if ft != "loader_parsing_error" || !strings.Contains(payload, "forty-two") {
		t.Errorf("bad row %s: %s", ft, payload)
	}
	testutil.BadRowValidator(t, "../../../testdata/iglu-central")([]byte(payload))
}

func TestLoadBadRows(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(context.Background())
	sv := badrows.SizeViolation(proc, time.Now(), 10, 20, "too big", "CollectorPayload(...)")
	pretty := []byte("{\n\t\"schema\": \"iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0\",\n\t\"data\": {}\n}")
	if err := s.Bad().Write(context.Background(), sv, pretty, []byte("not json at all")); err != nil {
		t.Fatal(err)
	}
	if err := stream.Flush(context.Background(), s.Bad()); err != nil {
		t.Fatal(err)
	}
	rows, _ := s.DB().Query(`SELECT failure_type FROM atomic.bad_rows ORDER BY failure_type`)
	var got []string
	for rows.Next() {
		var ft string
		rows.Scan(&ft)
		got = append(got, ft)
	}
	if strings.Join(got, ",") != "generic_error,generic_error,size_violation" {
		t.Fatalf("%v", got)
	}
}

func TestEventsDDL(t *testing.T) {
	ddl := EventsDDL("atomic")
	for _, want := range []string{"event_id UUID NOT NULL", "txn_id INTEGER", "br_cookies BOOLEAN", "contexts JSON", "etl_tstamp TIMESTAMP", "geo_latitude DOUBLE", "refr_dvce_tstamp TIMESTAMP", "true_tstamp TIMESTAMP,\n  load_tstamp"} {
		if !strings.Contains(ddl, want) {
			t.Errorf("DDL lacks %q", want)
		}
	}
}

// BenchmarkLoad loads page views in batches of the sizes the pipeline
// flushes: small when traffic is light, one row group under load.
func BenchmarkLoad(b *testing.B) {
	for _, batch := range []int{1000, 10000, RowGroupRows} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "f.duckdb"))
			defer s.Close(context.Background())
			lines := pageViews(batch, 0)
			b.ResetTimer()
			for range b.N { // one op is one batch
				if err := s.Good().Write(context.Background(), lines...); err != nil {
					b.Fatal(err)
				}
				if err := s.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
		})
		// As furrow run loads: Marked, with the position in each load.
		b.Run(fmt.Sprintf("marked,batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s := open(b, filepath.Join(b.TempDir(), "f.duckdb"))
			defer s.Close(ctx)
			m := s.Marked("raw@bench", false)
			defer m.Close(ctx)
			lines := pageViews(batch, 0)
			b.ResetTimer()
			for i := range b.N {
				if err := m.Good().Write(ctx, lines...); err != nil {
					b.Fatal(err)
				}
				stream.MarkWritten(m.Good(), &stream.Batch{Position: int64(i + 1)})
				if err := m.Good().(stream.Flusher).Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
		})
	}
}

// pageViews returns n enriched page views with event ids from offset on.
func pageViews(n, offset int) [][]byte {
	vals := map[int]string{
		event.AppID: "shop", event.Platform: "web", event.Event: "page_view", event.PageURL: "https://shop.example.com/a?b=c",
		event.PageURLHost: "shop.example.com", event.PageURLScheme: "https", event.PageURLPort: "443", event.PageURLPath: "/a",
		event.UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", event.NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20",
		event.UserIPAddress: "203.0.113.9", event.DvceCreatedTstamp: "2026-01-02 03:04:04.000", event.DerivedTstamp: "2026-01-02 03:04:04.000",
		event.EtlTstamp: "2026-01-02 03:04:06.000", event.EventVendor: "com.snowplowanalytics.snowplow", event.EventName: "page_view",
		event.EventFormat: "jsonschema", event.EventVersion: "1-0-0", event.BrViewwidth: "1200", event.BrViewheight: "800",
		event.Contexts: `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}]}`,
	}
	lines := make([][]byte, n)
	for i := range lines {
		vals[event.EventID] = fmt.Sprintf("8c3c4f36-8b3e-4c0c-9b0f-%012x", offset+i)
		lines[i] = line(vals)
	}
	return lines
}

// BenchmarkLoadUnderTraffic loads what a busy pipeline hands the store,
// a row group and a few rows at a time (six loads, then the last partial
// one), and checkpoints, which is when DuckDB compacts. "whole" loads
// every batch as it comes, leaving short row groups between full ones;
// "blocks" is FlushBlocks, which keeps the table on row group boundaries;
// "marked" is Marked's FlushBlocks, as furrow run loads (the rows past a
// boundary go to PendingTable, with the position).
// One DuckDB thread, as furrow run uses by default.
func BenchmarkLoadUnderTraffic(b *testing.B) {
	sizes := []int{RowGroupRows + 23, RowGroupRows + 19, RowGroupRows + 95, RowGroupRows, RowGroupRows + 190, RowGroupRows + 7, 92380}
	total := 0
	for _, n := range sizes {
		total += n
	}
	all := pageViews(total, 0)
	for _, mode := range []string{"whole", "blocks", "marked"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			for range b.N {
				b.StopTimer()
				s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "f.duckdb"), Processor: proc, Threads: 1})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				lines := all
				if mode == "marked" {
					// As furrow run loads: a batch marked at a time,
					// FlushBlocks once a row group is staged.
					m := s.Marked("raw@bench", false)
					good := m.Good()
					for i, n := range sizes {
						if err := good.Write(ctx, lines[:n]...); err != nil {
							b.Fatal(err)
						}
						lines = lines[n:]
						stream.MarkWritten(good, &stream.Batch{Position: int64(i + 1)})
						var err error
						if i == len(sizes)-1 {
							err = good.(stream.Flusher).Flush(ctx)
						} else {
							_, err = good.(stream.BlockFlusher).FlushBlocks(ctx)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					m.Close(ctx)
				} else {
					for i, n := range sizes {
						if err := s.Good().Write(ctx, lines[:n]...); err != nil {
							b.Fatal(err)
						}
						lines = lines[n:]
						block := RowGroupRows
						if mode == "whole" || i == len(sizes)-1 {
							block = 0 // the last load of a burst is always whole
						}
						if _, err := s.flushEvents(ctx, block); err != nil {
							b.Fatal(err)
						}
					}
				}
				if _, err := s.DB().ExecContext(ctx, "CHECKPOINT"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close(ctx)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/event")
		})
	}
}

func count(t *testing.T, s *Store, q string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Writers keep staging while flushes load: every row is loaded exactly
// once.
func TestWritesDuringFlush(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(context.Background())
	ctx := context.Background()
	const writers, batches, per = 2, 20, 50
	errc := make(chan error, writers+1)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			if err := stream.Flush(ctx, s.Good()); err != nil {
				errc <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				lines := make([][]byte, per)
				for i := range lines {
					lines[i] = line(map[int]string{event.EventID: fmt.Sprintf("00000000-0000-4000-8000-%04d%04d%04d", w, b, i)})
				}
				if err := s.Good().Write(ctx, lines...); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := stream.Flush(ctx, s.Good()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(*) FROM atomic.events`); n != writers*batches*per {
		t.Errorf("%d rows, want %d", n, writers*batches*per)
	}
	if n := count(t, s, `SELECT count(DISTINCT event_id) FROM atomic.events`); n != writers*batches*per {
		t.Errorf("%d distinct event ids, want %d", n, writers*batches*per)
	}
}

// The good and bad sinks flush their own tables; lines rejected by the
// good sink are stored by the good sink's flush.
func TestSinksFlushTheirOwnTable(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(context.Background())
	ctx := context.Background()
	sv := badrows.SizeViolation(proc, time.Now(), 10, 20, "too big", "CollectorPayload(...)")
	if err := s.Bad().Write(ctx, sv); err != nil {
		t.Fatal(err)
	}
	if err := s.Good().Write(ctx, line(nil), []byte("a\tb")); err != nil {
		t.Fatal(err)
	}
	if err := stream.Flush(ctx, s.Good()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(*) FROM atomic.events`); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
	if got := count(t, s, `SELECT count(*) FROM atomic.bad_rows WHERE failure_type = 'loader_parsing_error'`); got != 1 {
		t.Errorf("%d loader_parsing_error rows, want 1", got)
	}
	if got := count(t, s, `SELECT count(*) FROM atomic.bad_rows WHERE failure_type = 'size_violation'`); got != 0 {
		t.Errorf("the good sink's flush loaded %d staged bad rows", got)
	}
	if err := stream.Flush(ctx, s.Bad()); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, `SELECT count(*) FROM atomic.bad_rows WHERE failure_type = 'size_violation'`); got != 1 {
		t.Errorf("%d size_violation rows after the bad sink's flush, want 1", got)
	}
}

// A flush that fails keeps the rows it took; the next flush loads them
// along with rows written since.
func TestFailedFlushKeepsRows(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(context.Background())
	ctx := context.Background()
	if err := s.Good().Write(ctx, line(map[int]string{event.AppID: "first"}), []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := stream.Flush(cancelled, s.Good()); err == nil {
		t.Fatal("flush with a cancelled context succeeded")
	}
	if s.Pending() != 2 {
		t.Fatalf("%d pending after the failed flush, want 2", s.Pending())
	}
	if err := s.Good().Write(ctx, line(map[int]string{event.AppID: "second", event.EventID: "00000000-0000-4000-8000-000000000002"})); err != nil {
		t.Fatal(err)
	}
	if err := stream.Flush(ctx, s.Good()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(*) FROM atomic.events WHERE app_id IN ('first', 'second')`); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
	if n := count(t, s, `SELECT count(*) FROM atomic.bad_rows`); n != 1 {
		t.Errorf("%d bad rows, want 1", n)
	}
	if s.Pending() != 0 {
		t.Errorf("%d pending", s.Pending())
	}
}

// A block flush loads so that the table ends on a block boundary and
// keeps the rest staged; held counts back from the newest write to the
// oldest line kept, rejected lines included. A full flush loads the rest.
func TestFlushBlocksKeepsTableAligned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.duckdb")
	ctx := context.Background()
	s := open(t, path)
	next := 0
	write := func(n int, bad ...int) {
		t.Helper()
		var lines [][]byte
		for i := range n {
			if slices.Contains(bad, i) {
				lines = append(lines, []byte("not\tan\tevent"))
				continue
			}
			lines = append(lines, line(map[int]string{event.EventID: fmt.Sprintf("8c3c4f36-8b3e-4c0c-9b0f-%012d", next)}))
			next++
		}
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
	}
	flushBlocks := func(block, wantHeld, wantRows int) {
		t.Helper()
		held, err := s.flushEvents(ctx, block)
		if err != nil {
			t.Fatal(err)
		}
		if held != wantHeld {
			t.Errorf("held %d, want %d", held, wantHeld)
		}
		if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != wantRows {
			t.Errorf("%d rows loaded, want %d", n, wantRows)
		}
	}
	write(10)
	flushBlocks(4, 2, 8) // 10 staged: 8 loaded, the newest 2 kept
	write(3, 1)          // one rejected in the middle: 2 kept + 2 new staged
	flushBlocks(4, 0, 12)
	write(5, 4)           // 4 staged, then a rejected line
	flushBlocks(4, 0, 16) // exactly a block: nothing kept
	write(2)              // below a block: nothing loaded
	flushBlocks(4, 2, 16) // both held
	if _, err := s.flushEvents(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 18 {
		t.Errorf("%d rows after a full flush, want 18", n) // not aligned now
	}
	write(6, 0)           // rejected first, then 5: (18+5)%4 = 3 kept
	flushBlocks(4, 3, 20) // held = the 3 kept lines, no rejected line after them
	write(1, 0)           // a rejected line after the kept ones
	if s.Pending() != 4 {
		t.Errorf("%d pending, want 3 kept + 1 rejected", s.Pending())
	}
	if err := s.Good().(stream.BlockFlusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(DISTINCT event_id) FROM atomic.events"); n != 23 || next != 23 {
		t.Errorf("%d distinct events loaded of %d written", n, next)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.bad_rows"); n != 4 {
		t.Errorf("%d bad rows, want the 4 rejected lines", n)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Reopened, the store counts the rows already there.
	s = open(t, path)
	defer s.Close(ctx)
	write(4)
	flushBlocks(4, 3, 24) // (23+4)%4 = 3 kept: one row completes the block
}

func TestStorageOptions(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "it's here") // the path is quoted in SQL
	path := filepath.Join(dir, "events.duckdb")
	s, err := Open(ctx, Options{Path: path, Processor: proc, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Good().Write(ctx, pageViews(2*RowGroupRows+100, 0)...); err != nil {
		t.Fatal(err)
	}
	if held, err := s.flushEvents(ctx, RowGroupRows); err != nil || held != 100 {
		t.Fatalf("held %d, %v", held, err)
	}
	// Every connection of the pool uses the file, under its file name.
	s.DB().SetMaxIdleConns(0)
	for range 3 {
		if n := count(t, s, "SELECT count(*) FROM events.atomic.events"); n != 2*RowGroupRows {
			t.Fatalf("%d rows", n)
		}
	}
	var tags string
	if err := s.DB().QueryRow("SELECT tags::VARCHAR FROM duckdb_databases() WHERE database_name = current_database()").Scan(&tags); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tags, "storage_version="+StorageVersion) {
		t.Errorf("tags %s, want storage_version %s", tags, StorageVersion)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// The file opened directly, read-only, as 'furrow sql' does: the rows
	// are in row groups of RowGroupRows.
	c, err := duck.NewConnector(path+"?access_mode=READ_ONLY", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var groups, rows int
	if err := db.QueryRow(`SELECT count(DISTINCT row_group_id), (SELECT count(*) FROM atomic.events)
		FROM pragma_storage_info('atomic.events')`).Scan(&groups, &rows); err != nil {
		t.Fatal(err)
	}
	if groups != 3 || rows != 2*RowGroupRows+100 {
		t.Errorf("%d rows in %d row groups, want %d in 3", rows, groups, 2*RowGroupRows+100)
	}
}

// A database file made by DuckDB's defaults (another tool, or an older
// furrow) opens and takes loads.
func TestOpenFileInDefaultFormat(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "furrow.duckdb")
	c, err := duck.NewConnector(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	for _, q := range []string{"CREATE SCHEMA atomic", EventsDDL("atomic"),
		"INSERT INTO atomic.events (event_id, v_collector, v_etl, collector_tstamp) VALUES (uuid(), 'old', 'old', now())"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := open(t, path)
	defer s.Close(ctx)
	if err := s.Good().Write(ctx, pageViews(10, 0)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.events"); n != 11 {
		t.Errorf("%d rows, want 11", n)
	}
}

func TestCatalogName(t *testing.T) {
	for path, want := range map[string]string{
		"data/furrow.duckdb":  "furrow",
		"/x/events.db":        "events",
		"/x/my.events.duckdb": "my",
		"/x/warehouse":        "warehouse",
		"/x/memory.duckdb":    "furrow_memory",
		"/x/System.duckdb":    "furrow_System",
		"/x/.duckdb":          "furrow_",
	} {
		if got := catalogName(path); got != want {
			t.Errorf("catalogName(%q) = %q, want %q", path, got, want)
		}
	}
}

// A file that is not a DuckDB database is refused at Open, naming it.
func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "furrow.duckdb")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{Path: path, Processor: proc})
	if err == nil || !strings.HasPrefix(err.Error(), "duckdb: open "+path+": ") || strings.Contains(err.Error(), "CREATE SCHEMA") {
		t.Fatalf("error %v", err)
	}
}
