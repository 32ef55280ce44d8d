package files

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	sdk "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
)

var proc = badrows.Processor{Artifact: "furrow", Version: "0.0.0"}

var clock = func() time.Time { return time.Date(2026, 1, 2, 5, 6, 7, 0, time.UTC) }

// line builds an enriched TSV line: event i, collected at ts, with values
// that trip naive readers (quotes, backslashes, non-ASCII, JSON).
func line(i int, ts string) []byte {
	f := make([]string, event.NumFields)
	set := func(name, v string) {
		k, ok := event.Index(name)
		if !ok {
			panic(name)
		}
		f[k] = v
	}
	set("app_id", "shop")
	set("platform", "web")
	set("etl_tstamp", "2026-01-02 05:00:00.000")
	set("collector_tstamp", ts)
	set("event", "page_view")
	set("event_id", fmt.Sprintf("8c3c4f36-8b3e-4c0c-9b0f-%012d", i))
	set("v_collector", "furrow-test")
	set("v_etl", "furrow-test")
	set("domain_sessionidx", "3")
	set("geo_latitude", "51.5")
	set("page_url", fmt.Sprintf(`https://shop.example.com/a?b="c"\d&i=%d`, i))
	set("page_title", "Shoes — été 👟 'x' \"y\"")
	set("br_cookies", "1")
	set("contexts", `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:com.acme/ctx/jsonschema/1-0-0","data":{"a":"b\tc"}}]}`)
	return []byte(strings.Join(f, "\t"))
}

// batch is n good events over two hours (03 and 04), two bad rows of two
// schemas and one good line that is not an enriched event.
func batch(start, end int64, n int) loader.Batch {
	b := loader.Batch{Start: start, End: end}
	for i := range n {
		ts := fmt.Sprintf("2026-01-02 03:%02d:%02d.%03d", (i/60)%60, i%60, i%1000)
		if i%2 == 1 {
			ts = fmt.Sprintf("2026-01-02 04:%02d:%02d.000", (i/60)%60, i%60)
		}
		b.Good = append(b.Good, line(int(start)+i, ts))
	}
	at := time.Date(2026, 1, 2, 3, 30, 0, 0, time.UTC)
	b.Bad = append(b.Bad,
		badrows.GenericError(proc, at, []string{"boom"}, "payload\nwith a line break"),
		badrows.SizeViolation(proc, at, 10, 20, "small", "xxxxxxxxxxxxxxxxxxxx"),
	)
	b.Good = append(b.Good, []byte("not\tan\tevent"))
	return b
}

func open(t testing.TB, dir string, o Options) *Loader {
	t.Helper()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	o.Store, o.Processor, o.Now = d, proc, clock
	l, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// gunzip reads an object with the gzip binary: gzip -t, then gzip -dc.
func gunzip(t testing.TB, path string) []byte {
	t.Helper()
	if out, err := exec.Command("gzip", "-t", path).CombinedOutput(); err != nil {
		t.Fatalf("gzip -t %s: %v: %s (the gzip binary is needed: apt-get install gzip)", path, err, out)
	}
	out, err := exec.Command("gzip", "-dc", path).Output()
	if err != nil {
		t.Fatalf("gzip -dc %s: %v", path, err)
	}
	return out
}

func lines(b []byte) [][]byte {
	if !bytes.HasSuffix(b, []byte("\n")) {
		panic("last line not terminated")
	}
	return bytes.Split(b[:len(b)-1], []byte("\n"))
}

func objects(t testing.TB, dir string) []string {
	t.Helper()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := d.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func duck(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLoadTSV(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, Options{})
	b := batch(100, 200, 500)
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	keys := objects(t, dir)
	want := []string{
		"_furrow/state.json",
		"bad/com.snowplowanalytics.snowplow.badrows.generic_error/model=1/2026/01/02/03/2026-01-02-033000-00000000000000000100-00000000000000000200.json.gz",
		"bad/com.snowplowanalytics.snowplow.badrows.loader_parsing_error/model=2/2026/01/02/05/2026-01-02-050607-00000000000000000100-00000000000000000200.json.gz",
		"bad/com.snowplowanalytics.snowplow.badrows.size_violation/model=1/2026/01/02/03/2026-01-02-033000-00000000000000000100-00000000000000000200.json.gz",
		"good/2026/01/02/03/2026-01-02-030000-00000000000000000100-00000000000000000200.tsv.gz",
		"good/2026/01/02/04/2026-01-02-040001-00000000000000000100-00000000000000000200.tsv.gz",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("objects:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}

	// Every good line is in its hour's object, as it was, in batch order.
	var got [][]byte
	for _, k := range keys[4:] {
		ls := lines(gunzip(t, filepath.Join(dir, k)))
		hour := strings.Split(k, "/")[4]
		for _, ln := range ls {
			if !bytes.Contains(ln, []byte("\t2026-01-02 "+hour+":")) {
				t.Errorf("%s holds a line of another hour", k)
			}
			// Snowplow's Go analytics SDK reads every line.
			ev, err := sdk.ParseEvent(string(ln))
			if err != nil {
				t.Fatalf("SDK: %v", err)
			}
			if _, err := ev.ToJson(); err != nil {
				t.Fatalf("SDK ToJson: %v", err)
			}
		}
		got = append(got, ls...)
	}
	var wantGood [][]byte
	for i := 0; i < 500; i += 2 {
		wantGood = append(wantGood, b.Good[i])
	}
	for i := 1; i < 500; i += 2 {
		wantGood = append(wantGood, b.Good[i])
	}
	if len(got) != len(wantGood) {
		t.Fatalf("%d good lines, want %d", len(got), len(wantGood))
	}
	for i := range got {
		if !bytes.Equal(got[i], wantGood[i]) {
			t.Fatalf("line %d changed:\n%q\nwant\n%q", i, got[i], wantGood[i])
		}
	}

	// DuckDB reads the TSV objects as Snowpipe's file format would: tab
	// delimited, no quoting, no escape, 131 columns.
	q := fmt.Sprintf(`SELECT count(*), count(DISTINCT event_id), min(collector_tstamp), max(page_url), max(page_title), max(contexts)
		FROM read_csv('%s', delim='\t', header=false, quote='', escape='', columns={%s})`,
		filepath.Join(dir, "good/*/*/*/*/*.tsv.gz"), duckColumns())
	var n, distinct int
	var minTs, url, title, ctxs string
	if err := duck(t).QueryRow(q).Scan(&n, &distinct, &minTs, &url, &title, &ctxs); err != nil {
		t.Fatal(err)
	}
	if n != 500 || distinct != 500 {
		t.Errorf("DuckDB: %d rows, %d distinct event_id, want 500", n, distinct)
	}
	if minTs != "2026-01-02 03:00:00.000" || !strings.HasPrefix(url, `https://shop.example.com/a?b="c"\d&i=`) || title != "Shoes — été 👟 'x' \"y\"" || !json.Valid([]byte(ctxs)) {
		t.Errorf("DuckDB columns: %q %q %q %q", minTs, url, title, ctxs)
	}

	// Bad rows: one self-describing JSON per line, valid against Iglu
	// Central's schemas, under their schema's partition.
	validate := testutil.BadRowValidator(t, "../../../testdata/iglu-central")
	for _, k := range keys[1:4] {
		for _, row := range lines(gunzip(t, filepath.Join(dir, k))) {
			validate(row)
			var sdj struct{ Schema string }
			json.Unmarshal(row, &sdj)
			if !strings.HasPrefix(k, "bad/com.snowplowanalytics.snowplow.badrows."+badrows.Name(sdj.Schema)+"/") {
				t.Errorf("%s holds a %s", k, sdj.Schema)
			}
			if badrows.Name(sdj.Schema) == "loader_parsing_error" && !bytes.Contains(row, []byte(`"payload":"not\tan\tevent"`)) {
				t.Errorf("loader_parsing_error: %s", row)
			}
		}
	}
	if p, err := l.Position(ctx); err != nil || p != 200 {
		t.Fatalf("position %d, %v", p, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Reopened, it knows what it holds.
	if p, err := open(t, dir, Options{}).Position(ctx); err != nil || p != 200 {
		t.Fatalf("position after reopen %d, %v", p, err)
	}
}

func TestLoadJSON(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, Options{Format: FormatJSON, GoodPartition: "date={yyyy}-{MM}-{dd}"})
	b := batch(0, 7, 40)
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	keys := objects(t, dir)
	good := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return !strings.HasPrefix(k, "good/") })
	if !slices.Equal(good, []string{"good/date=2026-01-02/2026-01-02-030000-00000000000000000000-00000000000000000007.json.gz"}) {
		t.Fatalf("good objects %q", good)
	}
	path := filepath.Join(dir, good[0])
	ls := lines(gunzip(t, path))
	if len(ls) != 40 {
		t.Fatalf("%d lines, want 40", len(ls))
	}
	for i, ln := range ls {
		var m map[string]any
		if err := json.Unmarshal(ln, &m); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if len(m) != event.NumFields {
			t.Fatalf("line %d: %d keys", i, len(m))
		}
	}
	var n int
	var title string
	var lat float64
	q := fmt.Sprintf(`SELECT count(*), max(page_title), max(geo_latitude) FROM read_json_auto('%s')`, path)
	if err := duck(t).QueryRow(q).Scan(&n, &title, &lat); err != nil {
		t.Fatal(err)
	}
	if n != 40 || title != "Shoes — été 👟 'x' \"y\"" || lat != 51.5 {
		t.Errorf("DuckDB: %d rows, %q, %v", n, title, lat)
	}
	if !slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "loader_parsing_error") }) {
		t.Errorf("no loader_parsing_error object: %q", keys)
	}
}

// contents reads every object but the state.
func contents(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range objects(t, dir) {
		if k == StateKey {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, k))
		if err != nil {
			t.Fatal(err)
		}
		m[k] = string(b)
	}
	return m
}

func goodEventIDs(t testing.TB, dir string) []string {
	t.Helper()
	var ids []string
	for k := range contents(t, dir) {
		if !strings.HasPrefix(k, "good/") {
			continue
		}
		for _, ln := range lines(gunzip(t, filepath.Join(dir, k))) {
			ids = append(ids, strings.Split(string(ln), "\t")[event.EventID])
		}
	}
	slices.Sort(ids)
	return ids
}

func TestReplay(t *testing.T) {
	ctx := context.Background()
	b1, b2 := batch(0, 100, 50), batch(100, 200, 50)

	// The reference: both batches loaded once.
	ref := t.TempDir()
	l := open(t, ref, Options{})
	for _, b := range []loader.Batch{b1, b2} {
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	want := contents(t, ref)

	t.Run("same batch twice", func(t *testing.T) {
		dir := t.TempDir()
		l := open(t, dir, Options{})
		for _, b := range []loader.Batch{b1, b2, b2, b1} {
			if err := l.Load(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if got := contents(t, dir); !equalMaps(got, want) {
			t.Fatalf("objects differ from one load each:\n%q", keysOf(got))
		}
	})

	t.Run("crash in the middle of a load, same batch replayed", func(t *testing.T) {
		dir := t.TempDir()
		l := open(t, dir, Options{})
		if err := l.Load(ctx, b1); err != nil {
			t.Fatal(err)
		}
		d, _ := OpenDir(dir)
		crash := &failAfter{Store: d, puts: 3} // state, one object, then dies
		lc, err := Open(ctx, Options{Store: crash, Processor: proc, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		if err := lc.Load(ctx, b2); !errors.Is(err, errDied) {
			t.Fatalf("load: %v", err)
		}
		l = open(t, dir, Options{})
		if p, _ := l.Position(ctx); p != 100 {
			t.Fatalf("position %d after the crash, want 100", p)
		}
		if err := l.Load(ctx, b2); err != nil {
			t.Fatal(err)
		}
		if got := contents(t, dir); !equalMaps(got, want) {
			t.Fatalf("objects differ from one load each:\n%q", keysOf(got))
		}
	})

	t.Run("crash, replay cut differently", func(t *testing.T) {
		dir := t.TempDir()
		d, _ := OpenDir(dir)
		crash := &failAfter{Store: d, puts: 4}
		lc, err := Open(ctx, Options{Store: crash, Processor: proc, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		whole := batch(0, 200, 100)
		if err := lc.Load(ctx, whole); !errors.Is(err, errDied) {
			t.Fatalf("load: %v", err)
		}
		// The runner replays from 0 in two batches, and another clock.
		l := open(t, dir, Options{Now: func() time.Time { return clock().Add(time.Hour) }})
		first := loader.Batch{Start: 0, End: 120, Good: whole.Good[:60]}
		second := loader.Batch{Start: 120, End: 200, Good: whole.Good[60:], Bad: whole.Bad}
		for _, b := range []loader.Batch{first, second} {
			if err := l.Load(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		ids := goodEventIDs(t, dir)
		if len(ids) != 100 || len(slices.Compact(slices.Clone(ids))) != 100 {
			t.Fatalf("%d good events (%d distinct), want 100", len(ids), len(slices.Compact(ids)))
		}
		for k := range contents(t, dir) {
			if strings.Contains(k, "-00000000000000000000-00000000000000000200.") {
				t.Errorf("object of the crashed load left: %s", k)
			}
		}
	})
}

var errDied = errors.New("process died")

// failAfter is a store whose process dies after a number of Puts.
type failAfter struct {
	Store
	puts int
}

func (f *failAfter) Put(ctx context.Context, key string, r io.Reader) error {
	if f.puts == 0 {
		return errDied
	}
	f.puts--
	return f.Store.Put(ctx, key, r)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// crashOnPut makes the Dir crash (before rename) from the nth Put on.
type crashOnPut struct {
	*Dir
	n int
}

func (c *crashOnPut) Put(ctx context.Context, key string, r io.Reader) error {
	if c.n--; c.n <= 0 {
		c.Dir.crashBeforeRename = true
	}
	return c.Dir.Put(ctx, key, r)
}

func TestCrashBeforeRename(t *testing.T) {
	ctx := context.Background()
	b1, b2 := batch(0, 10, 5), batch(10, 20, 5)
	ref := t.TempDir()
	l := open(t, ref, Options{})
	for _, b := range []loader.Batch{b1, b2} {
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	l = open(t, dir, Options{})
	if err := l.Load(ctx, b1); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// b2: the state is written, then the process dies while writing the
	// first object, after its bytes are on disk, before the rename.
	lc, err := Open(ctx, Options{Store: &crashOnPut{Dir: d, n: 2}, Processor: proc, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Load(ctx, b2); !errors.Is(err, errCrash) {
		t.Fatalf("load: %v", err)
	}
	var tmps []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if !e.IsDir() && strings.HasPrefix(e.Name(), tmpPrefix) {
			tmps = append(tmps, p)
		}
		return nil
	})
	if len(tmps) != 1 || !strings.Contains(tmps[0], "/good/") {
		t.Fatalf("temporary files %q, want one good object's", tmps)
	}
	keys, err := d.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, tmpPrefix) || strings.Contains(k, "-00000000000000000010-00000000000000000020.") {
			t.Fatalf("list shows %s after the crash", k)
		}
	}
	if p, err := lc.Position(ctx); err != nil || p != 10 {
		t.Fatalf("position %d, %v after the crash, want 10", p, err)
	}
	// Reopened: the temporary file is gone; the replay completes the store.
	l = open(t, dir, Options{})
	if _, err := os.Stat(tmps[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left after open: %v", err)
	}
	if p, err := l.Position(ctx); err != nil || p != 10 {
		t.Fatalf("position %d, %v, want 10", p, err)
	}
	if err := l.Load(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(t, dir), contents(t, ref); !equalMaps(got, want) {
		t.Fatalf("objects after the replay %q, want %q", keysOf(got), keysOf(want))
	}
}

func TestOptions(t *testing.T) {
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    Options
		err  string
	}{
		{"unknown format", Options{Format: "csv"}, `unknown format "csv"`},
		{"same prefixes", Options{GoodPrefix: "x", BadPrefix: "x/"}, "overlap"},
		{"nested prefixes", Options{GoodPrefix: "events/", BadPrefix: "events/bad"}, "overlap"},
		{"state prefix", Options{GoodPrefix: "_furrow/good"}, "reserved"},
		{"absolute prefix", Options{BadPrefix: "/bad"}, "relative"},
		{"climbing prefix", Options{BadPrefix: "../bad"}, `".." not allowed`},
		{"schema in good", Options{GoodPartition: "{vendor}/{yyyy}"}, "only be partitioned by date and time"},
		{"unknown in bad", Options{BadPartition: "{vendor}/{week}"}, "unknown placeholder {week}"},
		{"gzip level", Options{Level: 12}, "gzip level"},
		{"negative", Options{MaxDelay: -time.Second}, "negative"},
		{"processor", Options{Processor: badrows.Processor{Artifact: "furrow"}}, "processor artifact and version are required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Store = d
			if tc.o.Processor.Artifact == "" {
				tc.o.Processor = proc
			}
			_, err := Open(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Fatal("no store accepted")
	}
}

func TestDue(t *testing.T) {
	ctx := context.Background()
	l := open(t, t.TempDir(), Options{MaxBytes: 1 << 20, MaxDelay: time.Minute})
	if l.Due(1000, time.Second) || !l.Due(1<<20, 0) || !l.Due(0, time.Minute) {
		t.Fatal("Due before any load")
	}
	b := batch(0, 1, 2000)
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	// TSV compresses well: 1 MiB of it is far below 1 MiB of gzip.
	if l.Due(1<<20, time.Second) || !l.Due(100<<20, time.Second) {
		t.Fatalf("Due after a load, ratio %v", l.ratio.Load())
	}
}

func TestLoadAfterCloseAndOverlap(t *testing.T) {
	ctx := context.Background()
	l := open(t, t.TempDir(), Options{})
	if err := l.Load(ctx, batch(0, 10, 3)); err != nil {
		t.Fatal(err)
	}
	if err := l.Load(ctx, batch(5, 20, 3)); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping batch: %v", err)
	}
	l.Close(ctx)
	if err := l.Load(ctx, batch(10, 20, 3)); err == nil {
		t.Fatal("load after close")
	}
}

// A full disk is an outage: retryable.
func TestFullDiskRetryable(t *testing.T) {
	ctx := context.Background()
	dir := testutil.Tmpfs(t, 4<<20)
	l := open(t, dir, Options{Level: 1})
	testutil.Fill(t, dir)
	err := l.Load(ctx, batch(0, 10, 3000))
	if !loader.IsRetryable(err) {
		t.Fatalf("full disk: %v, want retryable", err)
	}
}

func TestGzipHeaderHasNoTime(t *testing.T) {
	// Same bytes on replay needs a gzip header without a modification
	// time (compress/gzip writes 0 unless asked).
	dir := t.TempDir()
	l := open(t, dir, Options{})
	if err := l.Load(context.Background(), batch(0, 1, 3)); err != nil {
		t.Fatal(err)
	}
	for k, v := range contents(t, dir) {
		r := bufio.NewReader(strings.NewReader(v))
		h := make([]byte, 8)
		io.ReadFull(r, h)
		if !bytes.Equal(h[4:8], []byte{0, 0, 0, 0}) {
			t.Errorf("%s: gzip MTIME set", k)
		}
	}
}

func TestRejectedLines(t *testing.T) {
	ctx := context.Background()
	set := func(name, v string) []byte {
		f := strings.Split(string(line(1, "2026-01-02 03:04:05.678")), "\t")
		i, _ := event.Index(name)
		f[i] = v
		return []byte(strings.Join(f, "\t"))
	}
	for _, tc := range []struct {
		name    string
		line    []byte
		trusted bool
		failure string // "" if the line is stored
		hour    string // partition hour of the bad row
	}{
		{"line break", set("page_title", "a\nb"), false, `"type":"RowDecodingError"`, "03"},
		{"line break trusted", set("page_title", "a\rb"), true, `"type":"RowDecodingError"`, "03"},
		{"fields", []byte("a\tb"), false, `"type":"FieldNumberMismatch","fieldCount":2`, "05"},
		{"fields trusted", append(line(1, "2026-01-02 03:04:05.678"), "\tx"...), true, `"fieldCount":132`, "03"},
		{"type", set("br_viewwidth", "wide"), false, `"key":"br_viewwidth","value":"wide"`, "03"},
		{"type trusted", set("br_viewwidth", "wide"), true, "", ""},
		{"collector_tstamp", set("collector_tstamp", "yesterday"), false, `"key":"collector_tstamp"`, "05"},
		{"collector_tstamp trusted", set("collector_tstamp", "yesterday"), true, `"key":"collector_tstamp"`, "05"},
		{"collector_tstamp other spelling", set("collector_tstamp", "2026-01-02 3:04:05.678"), false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, Options{Trusted: tc.trusted})
			if err := l.Load(ctx, loader.Batch{Start: 0, End: 1, Good: [][]byte{tc.line}}); err != nil {
				t.Fatal(err)
			}
			keys := objects(t, dir)[1:]
			if len(keys) != 1 {
				t.Fatalf("objects %q", keys)
			}
			got := lines(gunzip(t, filepath.Join(dir, keys[0])))
			if tc.failure == "" {
				if !strings.HasPrefix(keys[0], "good/2026/01/02/03/2026-01-02-030405-") || !bytes.Equal(got[0], tc.line) {
					t.Fatalf("%s: %q", keys[0], got)
				}
				return
			}
			want := "bad/com.snowplowanalytics.snowplow.badrows.loader_parsing_error/model=2/2026/01/02/" + tc.hour + "/"
			if !strings.HasPrefix(keys[0], want) || len(got) != 1 || !bytes.Contains(got[0], []byte(tc.failure)) {
				t.Fatalf("%s, want %s...:\n%s\nwant %s", keys[0], want, got, tc.failure)
			}
			var row struct{ Data struct{ Payload string } }
			if err := json.Unmarshal(got[0], &row); err != nil || row.Data.Payload != string(tc.line) {
				t.Fatalf("payload %q, %v", row.Data.Payload, err)
			}
		})
	}
}

// A state written for another stream (the log was started again) is not
// resumed from; the same stream's is.
func TestStateOfAnotherStream(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, Options{Stream: "log-a"})
	if err := l.Load(ctx, batch(0, 100, 10)); err != nil {
		t.Fatal(err)
	}
	if p, _ := open(t, dir, Options{Stream: "log-a"}).Position(ctx); p != 100 {
		t.Fatalf("same stream: position %d, want 100", p)
	}
	l = open(t, dir, Options{Stream: "log-b"})
	if p, _ := l.Position(ctx); p != 0 {
		t.Fatalf("another stream: position %d, want 0", p)
	}
	if err := l.Load(ctx, batch(0, 50, 5)); err != nil {
		t.Fatal(err)
	}
	if p, _ := open(t, dir, Options{Stream: "log-b"}).Position(ctx); p != 50 {
		t.Fatalf("after a load of the new stream: position %d, want 50", p)
	}
}
