package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
	"github.com/jackc/pgx/v5"
)

var proc = badrows.Processor{Artifact: "furrow", Version: "0.0.0"}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t testing.TB, dsn string) *Loader {
	t.Helper()
	l, err := Open(context.Background(), Options{DSN: dsn, Processor: proc, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
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

// pageViews returns n page view lines with event ids offset, offset+1...
func pageViews(n, offset int) [][]byte {
	vals := map[int]string{
		event.AppID: "shop", event.Platform: "web", event.Event: "page_view", event.PageURL: "https://shop.example.com/a?b=c",
		event.PageURLHost: "shop.example.com", event.PageURLScheme: "https", event.PageURLPort: "443", event.PageURLPath: "/a",
		event.UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", event.NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20",
		event.UserIPAddress: "203.0.113.9", event.DvceCreatedTstamp: "2026-01-02 03:04:04.000", event.DerivedTstamp: "2026-01-02 03:04:04.000",
		event.EtlTstamp: "2026-01-02 03:04:06.000", event.EventVendor: "com.snowplowanalytics.snowplow", event.EventName: "page_view",
		event.EventFormat: "jsonschema", event.EventVersion: "1-0-0", event.BrViewwidth: "1200", event.BrViewheight: "800",
		event.PageTitle: `Shoes \ "quoted"`, event.BrCookies: "1", event.GeoLatitude: "52.52",
		event.Contexts: `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}]}`,
	}
	lines := make([][]byte, n)
	for i := range lines {
		vals[event.EventID] = fmt.Sprintf("8c3c4f36-8b3e-4c0c-9b0f-%012x", offset+i)
		vals[event.TxnID] = strconv.Itoa(offset + i)
		lines[i] = line(vals)
	}
	return lines
}

func TestOpenCreatesTables(t *testing.T) {
	pg := testutil.Postgres(t)
	open(t, pg.DSN())
	if n := pg.Psql("-c", `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'atomic' AND table_name = 'events'`); n != "132" {
		t.Errorf("events has %s columns, want 131 and load_tstamp", n)
	}
	types := map[string]string{
		"event_id": "uuid NO", "collector_tstamp": "timestamp without time zone NO", "etl_tstamp": "timestamp without time zone YES",
		"txn_id": "integer YES", "tr_total": "double precision YES", "br_cookies": "boolean YES", "app_id": "character varying YES",
		"contexts": "jsonb YES", "derived_contexts": "jsonb YES", "unstruct_event": "jsonb YES", "load_tstamp": "timestamp without time zone YES",
	}
	for col, want := range types {
		got := pg.Psql("-c", `SELECT data_type || ' ' || is_nullable FROM information_schema.columns
WHERE table_schema = 'atomic' AND table_name = 'events' AND column_name = '`+col+`'`)
		if got != want {
			t.Errorf("events.%s is %q, want %q", col, got, want)
		}
	}
	if got := pg.Psql("-c", `SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
FROM information_schema.columns WHERE table_schema = 'atomic' AND table_name = 'bad_rows'`); got != "schema:text,failure_type:text,payload:jsonb,load_tstamp:timestamp without time zone" {
		t.Errorf("bad_rows: %s", got)
	}
	if got := pg.Psql("-c", `SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
FROM information_schema.columns WHERE table_schema = 'atomic' AND table_name = '_furrow_positions'`); got != "destination:text,position:bigint,updated_at:timestamp without time zone" {
		t.Errorf("_furrow_positions: %s", got)
	}
	// Opening again keeps what is there.
	l := open(t, pg.DSN())
	if p, err := l.Position(context.Background()); err != nil || p != 0 {
		t.Fatalf("Position of an empty destination: %d, %v", p, err)
	}
}

func TestLoadReadBackAndReplay(t *testing.T) {
	pg := testutil.Postgres(t)
	l := open(t, pg.DSN())
	ctx := context.Background()
	good := pageViews(100, 0)
	good = append(good, line(map[int]string{
		event.EventID: "00000000-0000-4000-8000-0000000000ff", event.AppID: "typed", event.TxnID: "-42", event.TrTotal: "19.99",
		event.BrCookies: "0", event.DvceCreatedTstamp: "2026-01-02 03:04:04.123", event.PageTitle: "tab-free \\ \"ünïcode\" \\o/",
		event.UnstructEvent: `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/e/jsonschema/1-0-0","data":{"n":3,"s":"a\"b\\c"}}}`,
	}))
	bad := badrows.GenericError(proc, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []string{"boom"}, "payload")
	b := loader.Batch{Start: 10, End: 20, Good: good, Bad: [][]byte{bad}}
	if err := l.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, query, want string }{
		{"events", `SELECT count(*) FROM atomic.events`, "101"},
		{"distinct ids", `SELECT count(DISTINCT event_id) FROM atomic.events`, "101"},
		{"bad rows", `SELECT failure_type || ' ' || (payload->'data'->'failure'->'errors'->>0) FROM atomic.bad_rows`, "generic_error boom"},
		{"int", `SELECT txn_id FROM atomic.events WHERE app_id = 'typed'`, "-42"},
		{"double", `SELECT tr_total * 2 FROM atomic.events WHERE app_id = 'typed'`, "39.98"},
		{"bool", `SELECT br_cookies FROM atomic.events WHERE app_id = 'typed'`, "f"},
		{"timestamp", `SELECT dvce_created_tstamp FROM atomic.events WHERE app_id = 'typed'`, "2026-01-02 03:04:04.123"},
		{"collector", `SELECT collector_tstamp FROM atomic.events WHERE app_id = 'typed'`, "2026-01-02 03:04:05.678"},
		{"text", `SELECT page_title FROM atomic.events WHERE app_id = 'typed'`, "tab-free \\ \"ünïcode\" \\o/"},
		{"null", `SELECT count(*) FROM atomic.events WHERE se_value IS NULL AND user_id IS NULL AND contexts IS NOT NULL`, "100"},
		{"uuid", `SELECT event_id FROM atomic.events WHERE txn_id = 7`, "8c3c4f36-8b3e-4c0c-9b0f-000000000007"},
		{"jsonb path", `SELECT count(*) FROM atomic.events
WHERE jsonb_path_exists(contexts, '$.data[*] ? (@.schema starts with "iglu:com.snowplowanalytics.snowplow/web_page/") .data.id')`, "100"},
		{"jsonb value", `SELECT DISTINCT contexts #>> '{data,0,data,id}' FROM atomic.events WHERE contexts IS NOT NULL`, "0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"},
		{"unstruct", `SELECT (unstruct_event->'data'->'data'->>'n')::int + 1 || (unstruct_event #>> '{data,data,s}') FROM atomic.events WHERE app_id = 'typed'`, `4a"b\c`},
		{"load_tstamp", `SELECT count(*) FROM atomic.events WHERE load_tstamp > (now() AT TIME ZONE 'utc') - interval '1 hour'`, "101"},
		{"position", `SELECT destination || ' ' || position FROM atomic._furrow_positions`, "postgres 20"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := pg.Psql("-c", c.query); got != c.want {
				t.Errorf("%s\n= %q, want %q", c.query, got, c.want)
			}
		})
	}
	// A replay of the same batch, or of one ending earlier, is skipped.
	for _, r := range []loader.Batch{b, {Start: 0, End: 10, Good: pageViews(5, 1000)}} {
		if err := l.Load(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := pg.Psql("-c", `SELECT count(*) || ' ' || (SELECT count(*) FROM atomic.bad_rows) FROM atomic.events`); got != "101 1" {
		t.Errorf("after replays: %s events and bad rows, want 101 1", got)
	}
	// The next batch loads, and a new Loader reads its End.
	if err := l.Load(ctx, loader.Batch{Start: 20, End: 25, Good: pageViews(5, 2000)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := open(t, pg.DSN())
	if p, err := l2.Position(ctx); err != nil || p != 25 {
		t.Fatalf("Position after reopening: %d, %v; want 25", p, err)
	}
	if got := pg.Psql("-c", `SELECT count(*) FROM atomic.events`); got != "106" {
		t.Errorf("%s events, want 106", got)
	}
}

func TestBadLinesBecomeParsingErrors(t *testing.T) {
	pg := testutil.Postgres(t)
	l := open(t, pg.DSN())
	ctx := context.Background()
	validate := testutil.BadRowValidator(t, "../../../testdata/iglu-central")
	cases := []struct {
		name, key string
		line      []byte
	}{
		{"too few fields", "", []byte("a\tb\tc")},
		{"too many fields", "", []byte(string(line(nil)) + "\textra")},
		{"bad integer", "txn_id", line(map[int]string{event.TxnID: "forty-two"})},
		{"integer too big", "txn_id", line(map[int]string{event.TxnID: "3000000000"})},
		{"bad double", "tr_total", line(map[int]string{event.TrTotal: "1,5"})},
		{"bad bool", "br_cookies", line(map[int]string{event.BrCookies: "yes"})},
		{"bad timestamp", "dvce_created_tstamp", line(map[int]string{event.DvceCreatedTstamp: "not a time"})},
		{"invalid json", "contexts", line(map[int]string{event.Contexts: `{"schema":`})},
		{"json with NUL escape", "contexts", line(map[int]string{event.Contexts: `{"a":"x\u0000y"}`})},
		{"NUL byte in text", "page_title", line(map[int]string{event.PageTitle: "a\x00b"})},
		{"invalid UTF-8", "page_title", line(map[int]string{event.PageTitle: "a\xffb"})},
		{"bad uuid", "event_id", line(map[int]string{event.EventID: "not-a-uuid"})},
		{"missing event_id", "event_id", line(map[int]string{event.EventID: ""})},
		// Go lets it through, jsonb refuses it: found by bisection.
		{"lone surrogate in json", "contexts", line(map[int]string{event.Contexts: `{"a":"\ud800"}`})},
	}
	good := pageViews(10, 0)
	var lines [][]byte
	for i, c := range cases {
		lines = append(lines, good[i%len(good)], c.line)
	}
	lines = append(lines, good[len(cases)%len(good):]...)
	lines = append(lines, line(map[int]string{event.EventID: "00000000-0000-4000-8000-000000000001", event.Contexts: `{"a":"\\u0000 is fine escaped"}`}))
	if err := l.Load(ctx, loader.Batch{Start: 0, End: 1, Good: lines}); err != nil {
		t.Fatal(err)
	}
	// Bad rows jsonb refuses: a \u0000 escape (made \ufffd), and one that
	// is not JSON (stored as a JSON string).
	nul := badrows.GenericError(proc, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []string{"nul"}, "a\x00b")
	if err := l.Load(ctx, loader.Batch{Start: 1, End: 2, Bad: [][]byte{nul, []byte("not json")}}); err != nil {
		t.Fatal(err)
	}
	if got := pg.Psql("-c", `SELECT string_agg(failure_type || ':' || coalesce(payload #>> '{data,payload}', payload #>> '{}'), ',' ORDER BY failure_type)
FROM atomic.bad_rows WHERE failure_type <> 'loader_parsing_error'`); got != "generic_error:a\uFFFDb,unknown:not json" {
		t.Errorf("refused bad rows stored as %q", got)
	}
	pg.Psql("-c", `DELETE FROM atomic.bad_rows WHERE failure_type <> 'loader_parsing_error'`)
	if got := pg.Psql("-c", `SELECT count(*) FROM atomic.events`); got != "21" {
		t.Errorf("%s events loaded, want 21", got)
	}
	if got := pg.Psql("-c", `SELECT count(*) FROM atomic.bad_rows WHERE failure_type = 'loader_parsing_error'`); got != strconv.Itoa(len(cases)) {
		t.Fatalf("%s loader_parsing_error rows, want %d", got, len(cases))
	}
	rows := strings.Split(pg.Psql("-c", `SELECT payload::text FROM atomic.bad_rows`), "\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := `SELECT count(*) FROM atomic.bad_rows WHERE payload #>> '{data,payload}' = convert_from(decode('` +
				fmt.Sprintf("%x", strings.ToValidUTF8(strings.ReplaceAll(string(c.line), "\x00", ""), "\uFFFD")) + `', 'hex'), 'UTF8')`
			if c.name == "invalid UTF-8" || c.name == "NUL byte in text" {
				return // the payload cannot hold the line byte for byte
			}
			if got := pg.Psql("-c", q); got != "1" {
				t.Errorf("%s bad rows hold the line", got)
			}
			if c.key != "" {
				k := pg.Psql("-c", `SELECT count(*) FROM atomic.bad_rows WHERE payload @? '$.data.failure.errors[*] ? (@.key == "`+c.key+`")'`)
				if k == "0" {
					t.Errorf("no bad row names column %s", c.key)
				}
			}
		})
	}
	for _, r := range rows {
		validate([]byte(r))
	}
	// The lone surrogate passed the conversion in Go; Postgres refused it.
	if got := pg.Psql("-c", `SELECT count(*) FROM atomic.bad_rows WHERE payload @? '$.data.failure.errors[*] ? (@.key == "contexts" && @.message starts with "refused by Postgres")'`); got != "1" {
		t.Errorf("%s bad rows refused by Postgres, want 1 (the lone surrogate)", got)
	}
}

func TestWrongCredentialsArePermanent(t *testing.T) {
	pg := testutil.Postgres(t)
	pg.Psql("-c", `CREATE ROLE limited LOGIN PASSWORD 'limited-pw'`)
	const secret = "s3cret-wrong-pw"
	cases := []struct {
		name, dsn, want string
	}{
		{"wrong password", pg.DSNFor(testutil.PostgresUser, secret, testutil.PostgresDB), "password"},
		{"missing database", pg.DSNFor(testutil.PostgresUser, testutil.PostgresPassword, "nope"), `database "nope" does not exist`},
		{"permission denied", pg.DSNFor("limited", "limited-pw", testutil.PostgresDB), "permission denied"},
		{"unparsable dsn", "postgres://u:" + secret + "@127.0.0.1:notaport/db", "dsn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(context.Background(), Options{DSN: c.dsn, Logger: quiet})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if loader.IsRetryable(err) {
				t.Errorf("retryable: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "dsn") {
				t.Errorf("message %q does not say %q and name the dsn setting", msg, c.want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("message shows the password: %s", msg)
			}
		})
	}
}

func TestOutageIsRetryable(t *testing.T) {
	pg := testutil.Postgres(t)
	ctx := context.Background()
	var logs syncBuffer
	l, err := Open(ctx, Options{DSN: pg.DSN(), Processor: proc, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	defer func() {
		if strings.Contains(logs.String(), testutil.PostgresPassword) {
			t.Errorf("the log shows the password:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "connected") {
			t.Errorf("no reconnection logged:\n%s", logs.String())
		}
	}()
	pos := int64(0)
	load := func(n int) error {
		err := l.Load(ctx, loader.Batch{Start: pos, End: pos + int64(n), Good: pageViews(n, int(pos))})
		if err == nil {
			pos += int64(n)
		}
		if strings.Contains(fmt.Sprint(err), testutil.PostgresPassword) {
			t.Errorf("message shows the password: %v", err)
		}
		return err
	}
	if err := load(3); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	for _, when := range []string{"the connection lost", "the connection refused"} {
		if err := load(3); !loader.IsRetryable(err) {
			t.Fatalf("Load with %s: %v, want retryable", when, err)
		}
	}
	if _, err := l.Position(ctx); !loader.IsRetryable(err) {
		t.Fatalf("Position with the server stopped: %v, want retryable", err)
	}
	if _, err := Open(ctx, Options{DSN: pg.DSN(), Logger: quiet}); !loader.IsRetryable(err) {
		t.Fatalf("Open with the server stopped: %v, want retryable", err)
	}
	pg.Start()
	if err := load(3); err != nil {
		t.Fatalf("Load after the restart: %v", err)
	}
	// An administrator ends the session (57P01, or the connection lost).
	pg.Psql("-c", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '' AND datname = 'furrow'`)
	if err := load(1); !loader.IsRetryable(err) {
		t.Fatalf("Load on a terminated session: %v, want retryable", err)
	}
	if err := load(1); err != nil {
		t.Fatalf("Load after the session was terminated: %v", err)
	}
	if p, err := l.Position(ctx); err != nil || p != 7 {
		t.Fatalf("Position: %d, %v; want 7", p, err)
	}
	if got := pg.Psql("-c", `SELECT count(*) FROM atomic.events`); got != "7" {
		t.Errorf("%s events, want 7", got)
	}
}

// A Load that runs out of its caller's time (here, waiting on a lock)
// is retryable; one whose context is canceled is not.
func TestTimeoutIsRetryable(t *testing.T) {
	pg := testutil.Postgres(t)
	ctx := context.Background()
	l := open(t, pg.DSN())
	locker, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE atomic._furrow_positions IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	b := loader.Batch{Start: 0, End: 2, Good: pageViews(2, 0)}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := l.Load(short, b); !loader.IsRetryable(err) {
		t.Fatalf("Load past its deadline: %v, want retryable", err)
	}
	canceled, cancel2 := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, cancel2)
	if err := l.Load(canceled, b); err == nil || loader.IsRetryable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Load canceled: %v, want context.Canceled, not retryable", err)
	}
	tx.Rollback(ctx)
	if err := l.Load(ctx, b); err != nil {
		t.Fatalf("Load once the lock is released: %v", err)
	}
}

func TestHasNULEscape(t *testing.T) {
	for in, want := range map[string]bool{
		`"a"`: false, `"\u0000"`: true, `"\\u0000"`: false, `"\\\u0000"`: true, `"\\u0000\u0000"`: true, `"\u00000"`: true,
	} {
		if got := hasNULEscape([]byte(in)); got != want {
			t.Errorf("hasNULEscape(%s) = %v", in, got)
		}
	}
}

// Two destinations loading one schema keep their own positions; a
// column per context schema added as a generated column, and a view, as
// the README shows, keep working across loads and a reopen; an events
// table furrow did not make is refused.
func TestNamesGeneratedColumnsAndForeignTables(t *testing.T) {
	pg := testutil.Postgres(t)
	ctx := context.Background()
	a := open(t, pg.DSN())
	other, err := Open(ctx, Options{DSN: pg.DSN(), Name: "replica", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	pg.Psql("-c", `ALTER TABLE atomic.events ADD COLUMN contexts_com_snowplowanalytics_snowplow_web_page_1 JSONB
GENERATED ALWAYS AS (jsonb_path_query_array(contexts,
  '$.data[*] ? (@.schema starts with "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-").data')) STORED`)
	pg.Psql("-c", `CREATE VIEW atomic.page_views AS
SELECT event_id, collector_tstamp, page_url, contexts_com_snowplowanalytics_snowplow_web_page_1 #>> '{0,id}' AS page_view_id
FROM atomic.events WHERE event = 'page_view'`)
	if err := a.Load(ctx, loader.Batch{Start: 0, End: 5, Good: pageViews(5, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := other.Load(ctx, loader.Batch{Start: 0, End: 2, Good: pageViews(2, 100)}); err != nil {
		t.Fatal(err)
	}
	if got := pg.Psql("-c", `SELECT string_agg(destination || '=' || position, ',' ORDER BY destination) FROM atomic._furrow_positions`); got != "postgres=5,replica=2" {
		t.Errorf("positions %s", got)
	}
	if got := pg.Psql("-c", `SELECT count(*) || ' ' || min(page_view_id) FROM atomic.page_views`); got != "7 0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77" {
		t.Errorf("view: %s", got)
	}
	// Reopening accepts the extra column.
	a.Close(ctx)
	a = open(t, pg.DSN())
	if p, err := a.Position(ctx); err != nil || p != 5 {
		t.Fatalf("Position %d, %v", p, err)
	}
	pg.Psql("-c", `CREATE SCHEMA foreign_app; CREATE TABLE foreign_app.events (id int, name text)`)
	_, err = Open(ctx, Options{DSN: pg.DSN(), Schema: "foreign_app", Logger: quiet})
	if err == nil || loader.IsRetryable(err) || !strings.Contains(err.Error(), "not made by furrow") {
		t.Fatalf("Open on a foreign events table: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A role over its connection limit (53300, too many connections) is an
// outage: retryable.
func TestTooManyConnectionsIsRetryable(t *testing.T) {
	pg := testutil.Postgres(t)
	ctx := context.Background()
	pg.Psql("-c", `CREATE ROLE busy LOGIN PASSWORD 'busy-pw' CONNECTION LIMIT 1; CREATE SCHEMA atomic AUTHORIZATION busy`)
	dsn := pg.DSNFor("busy", "busy-pw", testutil.PostgresDB)
	l := open(t, dsn)
	_, err := Open(ctx, Options{DSN: dsn, Logger: quiet})
	if !loader.IsRetryable(err) || !strings.Contains(err.Error(), "53300") {
		t.Fatalf("Open over the connection limit: %v, want retryable 53300", err)
	}
	l.Close(ctx)
	// The server frees the slot when the closed connection's backend has
	// exited, a moment after Close.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := Open(ctx, Options{DSN: dsn, Logger: quiet})
		if err == nil {
			l.Close(ctx)
			return
		}
		if !loader.IsRetryable(err) || time.Now().After(deadline) {
			t.Fatalf("Open after the first connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A user with no CREATE privilege loads into tables made for it, with
// the grants the README lists.
func TestLeastPrivilegeUser(t *testing.T) {
	pg := testutil.Postgres(t)
	ctx := context.Background()
	open(t, pg.DSN()).Close(ctx) // the owner creates the tables
	pg.Psql("-c", `CREATE ROLE loader LOGIN PASSWORD 'loader-pw';
GRANT USAGE ON SCHEMA atomic TO loader;
GRANT INSERT ON atomic.events, atomic.bad_rows TO loader;
GRANT SELECT, INSERT, UPDATE ON atomic._furrow_positions TO loader`)
	l := open(t, pg.DSNFor("loader", "loader-pw", testutil.PostgresDB))
	bad := badrows.GenericError(proc, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []string{"x"}, "p")
	if err := l.Load(ctx, loader.Batch{Start: 0, End: 4, Good: append(pageViews(3, 0), []byte("short")), Bad: [][]byte{bad}}); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Position(ctx); err != nil || p != 4 {
		t.Fatalf("Position %d, %v", p, err)
	}
	if got := pg.Psql("-c", `SELECT (SELECT count(*) FROM atomic.events) || ' ' || (SELECT count(*) FROM atomic.bad_rows)`); got != "3 2" {
		t.Errorf("events and bad rows: %s, want 3 2", got)
	}
}
