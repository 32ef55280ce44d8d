package files

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
)

// parquetBatch is the enricher's golden output, events from line() over
// two hours, and lines that cannot be stored.
func parquetBatch(t *testing.T) (b loader.Batch, stored [][]byte) {
	t.Helper()
	good, bad := enricherOutput(t)
	for i := range 300 {
		good = append(good, line(i, fmt.Sprintf("2026-01-02 0%d:%02d:%02d.%03d", 3+i%2, i%60, i%60, i)))
	}
	rejected := [][]byte{
		[]byte("not\tan\tevent"),
		setField(line(1, "2026-01-02 03:04:05.678"), "br_viewwidth", "wide"),
		setField(line(2, "2026-01-02 03:04:05.678"), "page_title", "caf\xe9"),
	}
	all := slices.Concat(good[:len(good)/2], rejected, good[len(good)/2:])
	return loader.Batch{Start: 7, End: 42, Good: all, Bad: bad}, good
}

func setField(ln []byte, name, v string) []byte {
	f := strings.Split(string(ln), "\t")
	i, _ := event.Index(name)
	f[i] = v
	return []byte(strings.Join(f, "\t"))
}

// inObjectOrder sorts good lines as the objects hold them: by partition
// (the hour of collector_tstamp), then in batch order.
func inObjectOrder(t *testing.T, good [][]byte) [][]byte {
	t.Helper()
	hour := func(ln []byte) string {
		ts, err := event.ParseTimestamp(strings.Split(string(ln), "\t")[event.CollectorTstamp])
		if err != nil {
			t.Fatal(err)
		}
		return ts.Format("2006010215")
	}
	out := slices.Clone(good)
	slices.SortStableFunc(out, func(a, b []byte) int { return cmp.Compare(hour(a), hour(b)) })
	return out
}

func TestParquetLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, Options{Format: FormatParquet})
	b, good := parquetBatch(t)
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	var goodKeys []string
	nBad, nParsing := 0, 0
	for _, k := range objects(t, dir) {
		switch {
		case k == StateKey:
		case strings.HasPrefix(k, "good/"):
			if !strings.HasSuffix(k, "-00000000000000000007-00000000000000000042.parquet") {
				t.Errorf("good object %s", k)
			}
			goodKeys = append(goodKeys, k)
		case strings.HasPrefix(k, "bad/"):
			rows := lines(gunzip(t, filepath.Join(dir, k)))
			if strings.Contains(k, "loader_parsing_error") {
				nParsing += len(rows)
			}
			nBad += len(rows)
		default:
			t.Errorf("object %s", k)
		}
	}
	if len(goodKeys) < 2 {
		t.Fatalf("good objects %q, want several partitions", goodKeys)
	}
	if nBad != len(b.Bad)+3 || nParsing != 3 {
		t.Fatalf("%d bad rows, %d loader_parsing_error, want %d, 3", nBad, nParsing, len(b.Bad)+3)
	}
	db := duck(t)
	glob := filepath.Join(dir, "good/*/*/*/*/*.parquet")

	t.Run("columns", func(t *testing.T) {
		rows, err := db.Query(fmt.Sprintf(`DESCRIBE SELECT * FROM read_parquet('%s')`, glob))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		want := map[event.Type]string{
			event.String: "VARCHAR", event.JSON: "VARCHAR", event.Int: "INTEGER",
			event.Double: "DOUBLE", event.Bool: "BOOLEAN", event.Timestamp: "TIMESTAMP WITH TIME ZONE",
		}
		i := 0
		for rows.Next() {
			var name, typ string
			var null, key, def, extra sql.NullString
			if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
				t.Fatal(err)
			}
			if i >= event.NumFields {
				t.Fatalf("extra column %s", name)
			}
			if f := event.Fields[i]; name != f.Name || typ != want[f.Type] || null.String != "YES" {
				t.Errorf("column %d: %s %s (null %s), want %s %s", i, name, typ, null.String, f.Name, want[f.Type])
			}
			i++
		}
		if err := rows.Err(); err != nil || i != event.NumFields {
			t.Fatalf("%d columns, %v", i, err)
		}
	})

	t.Run("every value", func(t *testing.T) { sameRows(t, db, glob, inObjectOrder(t, good)) })

	t.Run("metadata", func(t *testing.T) {
		for _, k := range goodKeys {
			f := filepath.Join(dir, k)
			var groups, chunks, zstd int
			var createdBy, tsType string
			if err := db.QueryRow(fmt.Sprintf(`SELECT count(DISTINCT row_group_id), count(*), count(*) FILTER (WHERE compression = 'ZSTD') FROM parquet_metadata('%s')`, f)).Scan(&groups, &chunks, &zstd); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(fmt.Sprintf(`SELECT created_by FROM parquet_file_metadata('%s')`, f)).Scan(&createdBy); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(fmt.Sprintf(`SELECT type || ' ' || logical_type FROM parquet_schema('%s') WHERE name = 'derived_tstamp'`, f)).Scan(&tsType); err != nil {
				t.Fatal(err)
			}
			if groups != 1 || chunks != event.NumFields || zstd != chunks || createdBy != "furrow version 0.0.0" ||
				!strings.HasPrefix(tsType, "INT64 TimestampType(isAdjustedToUTC=1, unit=TimeUnit(MILLIS=") {
				t.Errorf("%s: %d row groups, %d column chunks (%d zstd), created by %q, timestamps %s", k, groups, chunks, zstd, createdBy, tsType)
			}
		}
	})

	t.Run("typed queries", func(t *testing.T) {
		for _, tc := range []struct{ q, want string }{
			{`SELECT count(*) FROM %s`, strconv.Itoa(len(good))},
			{`SELECT epoch_ms(collector_tstamp) FROM %s WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000123'`,
				strconv.FormatInt(time.Date(2026, 1, 2, 4, 3, 3, 123e6, time.UTC).UnixMilli(), 10)},
			{`SELECT strftime(collector_tstamp AT TIME ZONE 'UTC', '%%Y-%%m-%%d %%H:%%M:%%S.%%g') FROM %s WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000123'`,
				"2026-01-02 04:03:03.123"},
			{`SELECT sum(domain_sessionidx) FROM %s WHERE app_id = 'shop' AND v_collector = 'furrow-test'`, "900"},
			{`SELECT geo_latitude * 2 FROM %s WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000001'`, "103.0"},
			{`SELECT count(*) FROM %s WHERE br_cookies AND v_collector = 'furrow-test'`, "300"},
			{`SELECT json_extract_string(contexts, '$.data[0].data.a') FROM %s WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000001'`, "b\tc"},
			{`SELECT json_extract_string(contexts::JSON, '$.schema') FROM %s WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000001'`,
				"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"},
			{`SELECT count(*) FROM %s WHERE txn_id IS NULL AND tr_total IS NULL AND br_cookies IS NOT NULL AND v_collector = 'furrow-test'`, "300"},
			{`SELECT count(*) FROM %s WHERE unstruct_event IS NOT NULL AND json_valid(unstruct_event)`, countNonEmpty(good, "unstruct_event")},
			{`SELECT page_title FROM %s WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000001'`, "Shoes — été 👟 'x' \"y\""},
		} {
			q := fmt.Sprintf(tc.q, fmt.Sprintf("read_parquet('%s')", glob))
			var got string
			if err := db.QueryRow(`SELECT CAST((` + q + `) AS VARCHAR)`).Scan(&got); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if got != tc.want {
				t.Errorf("%s: %q, want %q", q, got, tc.want)
			}
		}
	})
}

// sameRows reads the objects of glob in key order with DuckDB and
// compares every value with the TSV lines want.
func sameRows(t *testing.T, db *sql.DB, glob string, want [][]byte) {
	t.Helper()
	rows, err := db.Query(fmt.Sprintf(`SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet('%s', filename = true, file_row_number = true) ORDER BY filename, file_row_number`, glob))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	vals := make([]any, event.NumFields)
	ptrs := make([]any, event.NumFields)
	for i := range ptrs {
		ptrs[i] = &vals[i]
	}
	n := 0
	for ; rows.Next(); n++ {
		if n >= len(want) {
			t.Fatalf("more than %d rows", len(want))
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, s := range strings.Split(string(want[n]), "\t") {
			if msg := sameValue(event.Fields[i].Type, s, vals[i]); msg != "" {
				t.Fatalf("row %d, %s: %s", n, event.Fields[i].Name, msg)
			}
		}
	}
	if err := rows.Err(); err != nil || n != len(want) {
		t.Fatalf("%d rows read, want %d: %v", n, len(want), err)
	}
}

func countNonEmpty(good [][]byte, name string) string {
	i, _ := event.Index(name)
	n := 0
	for _, ln := range good {
		if strings.Split(string(ln), "\t")[i] != "" {
			n++
		}
	}
	return strconv.Itoa(n)
}

// sameValue compares a TSV value with what DuckDB read from Parquet.
func sameValue(t event.Type, s string, v any) string {
	if s == "" {
		if v != nil {
			return fmt.Sprintf("%v (%T), want null", v, v)
		}
		return ""
	}
	var want any
	switch t {
	case event.String, event.JSON:
		want = s
	case event.Int:
		n, _ := strconv.ParseInt(s, 10, 32)
		want = int32(n)
	case event.Double:
		want, _ = strconv.ParseFloat(s, 64)
	case event.Bool:
		want = s == "1"
	case event.Timestamp:
		ts, _ := event.ParseTimestamp(s)
		if got, ok := v.(time.Time); !ok || !got.Equal(ts) {
			return fmt.Sprintf("%v (%T), want %s", v, v, ts)
		}
		return ""
	}
	if v != want {
		return fmt.Sprintf("%#v (%T), want %#v from %q", v, v, want, s)
	}
	return ""
}

func TestParquetReplay(t *testing.T) {
	ctx := context.Background()
	b, _ := parquetBatch(t)
	load := func() (string, []string) {
		dir := t.TempDir()
		l := open(t, dir, Options{Format: FormatParquet})
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
		return dir, objects(t, dir)
	}
	dir1, keys1 := load()
	dir2, keys2 := load()
	if !slices.Equal(keys1, keys2) {
		t.Fatalf("keys differ:\n%q\n%q", keys1, keys2)
	}
	for _, k := range keys1 {
		a, err := os.ReadFile(filepath.Join(dir1, k))
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile(filepath.Join(dir2, k))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, c) {
			t.Errorf("%s: the replay wrote other bytes", k)
		}
	}

	// A replay into the same store after a crash mid-load (the state names
	// the objects, the position is not moved) writes the same objects.
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	pend, _ := json.Marshal(state{Position: 0, Pending: &pending{Start: b.Start, End: b.End, Keys: keys1[1:]}})
	if err := d.Put(ctx, StateKey, bytes.NewReader(pend)); err != nil {
		t.Fatal(err)
	}
	l := open(t, dir, Options{Format: FormatParquet})
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	if keys := objects(t, dir); !slices.Equal(keys, keys1) {
		t.Fatalf("keys after replay %q, want %q", keys, keys1)
	}
}

// TestParquetLarge loads objects of several chunks, written while the
// next chunk is converted.
func TestParquetLarge(t *testing.T) {
	ctx := context.Background()
	var b loader.Batch
	for i := range 5000 {
		b.Good = append(b.Good, line(i, fmt.Sprintf("2026-01-02 0%d:%02d:%02d.%03d", 3+i%3/2, i%60, i%60, i%1000)))
	}
	b.End = 1
	var first map[string][]byte
	for range 2 {
		dir := t.TempDir()
		l := open(t, dir, Options{Format: FormatParquet, Trusted: true})
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
		sameRows(t, duck(t), filepath.Join(dir, "good/*/*/*/*/*.parquet"), inObjectOrder(t, b.Good))
		got := map[string][]byte{}
		for _, k := range objects(t, dir) {
			if got[k], _ = os.ReadFile(filepath.Join(dir, k)); !strings.HasSuffix(k, ".parquet") && k != StateKey {
				t.Errorf("object %s", k)
			}
		}
		if first != nil && !maps.EqualFunc(first, got, bytes.Equal) {
			t.Fatal("the replay wrote other objects or bytes")
		}
		first = got
	}
}

func TestParquetRejectedLines(t *testing.T) {
	ctx := context.Background()
	ok := line(1, "2026-01-02 03:04:05.678")
	for _, tc := range []struct {
		name    string
		line    []byte
		trusted bool
		failure string // "" if the line is stored
	}{
		{"stored", ok, false, ""},
		{"stored trusted", ok, true, ""},
		{"fields", []byte("a\tb"), false, `"type":"FieldNumberMismatch","fieldCount":2`},
		{"fields trusted", append(slices.Clone(ok), "\tx"...), true, `"fieldCount":132`},
		{"int", setField(ok, "br_viewwidth", "wide"), false, `"key":"br_viewwidth","value":"wide"`},
		{"int trusted", setField(ok, "br_viewwidth", "wide"), true, `"key":"br_viewwidth","value":"wide","message":"not an integer"`},
		{"int out of range trusted", setField(ok, "txn_id", "3000000000"), true, `"key":"txn_id"`},
		{"double trusted", setField(ok, "geo_latitude", "north"), true, `"key":"geo_latitude","value":"north","message":"not a number"`},
		{"bool trusted", setField(ok, "br_cookies", "true"), true, `"key":"br_cookies","value":"true","message":"not a boolean (0 or 1)"`},
		{"timestamp trusted", setField(ok, "etl_tstamp", "today"), true, `"key":"etl_tstamp","value":"today"`},
		{"json trusted", setField(ok, "contexts", "{"), true, `"key":"contexts","value":"{","message":"not valid JSON"`},
		{"utf-8", setField(ok, "page_title", "caf\xe9"), false, `"key":"page_title"`},
		{"utf-8 trusted", setField(ok, "page_title", "caf\xe9"), true, `"message":"not UTF-8"`},
		{"two values trusted", setField(setField(ok, "br_cookies", "x"), "txn_id", "y"), true, `"key":"br_cookies"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, Options{Format: FormatParquet, Trusted: tc.trusted})
			if err := l.Load(ctx, loader.Batch{Start: 0, End: 1, Good: [][]byte{tc.line}}); err != nil {
				t.Fatal(err)
			}
			keys := objects(t, dir)[1:]
			if len(keys) != 1 {
				t.Fatalf("objects %q", keys)
			}
			if tc.failure == "" {
				if keys[0] != "good/2026/01/02/03/2026-01-02-030405-00000000000000000000-00000000000000000001.parquet" {
					t.Fatalf("object %s", keys[0])
				}
				var n int
				q := fmt.Sprintf(`SELECT count(*) FROM read_parquet('%s') WHERE event_id = '8c3c4f36-8b3e-4c0c-9b0f-000000000001'`, filepath.Join(dir, keys[0]))
				if err := duck(t).QueryRow(q).Scan(&n); err != nil || n != 1 {
					t.Fatalf("%d rows, %v", n, err)
				}
				return
			}
			if !strings.HasPrefix(keys[0], "bad/com.snowplowanalytics.snowplow.badrows.loader_parsing_error/model=2/2026/01/02/") {
				t.Fatalf("object %s", keys[0])
			}
			got := lines(gunzip(t, filepath.Join(dir, keys[0])))
			if len(got) != 1 || !bytes.Contains(got[0], []byte(tc.failure)) {
				t.Fatalf("%s:\n%s\nwant %s", keys[0], got, tc.failure)
			}
			var row struct {
				Schema string
				Data   struct{ Payload string }
			}
			if err := json.Unmarshal(got[0], &row); err != nil || badrows.Name(row.Schema) != "loader_parsing_error" {
				t.Fatalf("bad row %s: %v", got[0], err)
			}
			if !strings.Contains(tc.name, "utf-8") && row.Data.Payload != string(tc.line) {
				t.Fatalf("payload %q", row.Data.Payload)
			}
		})
	}
}

// BenchmarkLoadParquet loads the same batch of enriched events as
// parquet and as tsv.gz (trusted lines from furrow's enricher, the
// default gzip level) and reports events/s and bytes per event of each.
func BenchmarkLoadParquet(b *testing.B) {
	const n = 20000
	synthetic := make([][]byte, n)
	for i := range synthetic {
		synthetic[i] = line(i, fmt.Sprintf("2026-01-02 03:%02d:%02d.%03d", (i/60)%60, i%60, i%1000))
	}
	// The enricher's golden events, repeated with new event ids.
	golden, _ := enricherOutput(b)
	enriched := make([][]byte, n)
	for i := range enriched {
		enriched[i] = setField(golden[i%len(golden)], "event_id", fmt.Sprintf("8c3c4f36-8b3e-4c0c-9b0f-%012d", i))
	}
	for _, tc := range []struct {
		name   string
		format string
		good   [][]byte
	}{
		{"synthetic/tsv.gz", FormatTSV, synthetic}, {"synthetic/parquet", FormatParquet, synthetic},
		{"enriched/tsv.gz", FormatTSV, enriched}, {"enriched/parquet", FormatParquet, enriched},
	} {
		format, good := tc.format, tc.good
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			l := open(b, dir, Options{Format: format, Trusted: true})
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if err := l.Load(ctx, loader.Batch{Start: int64(i) * n, End: int64(i+1) * n, Good: good}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
			size := int64(0)
			for _, k := range objects(b, dir) {
				if strings.HasPrefix(k, "good/") {
					fi, err := os.Stat(filepath.Join(dir, k))
					if err != nil {
						b.Fatal(err)
					}
					size += fi.Size()
				}
			}
			b.ReportMetric(float64(size)/float64(n*b.N), "bytes/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}
