package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	analytics "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"
	"github.com/snowplow/snowplow-golang-tracker/v3/pkg/storage/memory"
	"github.com/snowplow/snowplow-golang-tracker/v3/pkg/storage/storageiface"
	sp "github.com/snowplow/snowplow-golang-tracker/v3/tracker"

	"github.com/furrow-io/furrow/internal/testutil"
)

// withDuckDB puts a duckdb destination beside the others in these tests
// (its loader on the loader contract landed after the other types; the
// switch leaves it out to test the others alone).
const withDuckDB = true

// The destinations of these tests, by name.
const (
	destDuckDB  = "warehouse"
	destPG      = "pg"
	destS3      = "lake"
	destFiles   = "tsv"
	destParquet = "pq"
	s3Prefix    = "lake"
)

// destSetup is where the destinations of a test live.
type destSetup struct {
	pg       *testutil.PG
	s3       *testutil.S3Server
	pgDSN    string // the DSN furrow is given
	s3Secret string // the secret furrow is given
	duckdb   string // file of the duckdb destination
	files    string // directory of the tsv.gz files destination
	parquet  string // directory of the parquet files destination, "" for none
}

// config writes furrow's YAML for s and returns its path.
func (s destSetup) config(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("drain_timeout: 30s\ndestinations:\n")
	if withDuckDB && s.duckdb != "" {
		fmt.Fprintf(&b, "  - name: %s\n    type: duckdb\n    path: %q\n", destDuckDB, s.duckdb)
	}
	if s.pg != nil {
		fmt.Fprintf(&b, "  - name: %s\n    type: postgres\n    dsn: %q\n", destPG, s.pgDSN)
	}
	if s.s3 != nil {
		fmt.Fprintf(&b, "  - name: %s\n    type: s3\n    bucket: %s\n    prefix: %s\n    region: %s\n    endpoint: %q\n    path_style: true\n"+
			"    access_key_id: %q\n    secret_access_key: %q\n    max_delay: 1s\n",
			destS3, s.s3.Bucket, s3Prefix, s.s3.Region, s.s3.Endpoint, s.s3.AccessKey, s.s3Secret)
	}
	if s.files != "" {
		fmt.Fprintf(&b, "  - name: %s\n    type: files\n    path: %q\n    max_delay: 1s\n", destFiles, s.files)
	}
	if s.parquet != "" {
		fmt.Fprintf(&b, "  - name: %s\n    type: files\n    path: %q\n    format: parquet\n    max_delay: 1s\n", destParquet, s.parquet)
	}
	path := filepath.Join(t.TempDir(), "furrow.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// names lists the destinations of s.
func (s destSetup) names() []string {
	var n []string
	if withDuckDB && s.duckdb != "" {
		n = append(n, destDuckDB)
	}
	if s.pg != nil {
		n = append(n, destPG)
	}
	if s.s3 != nil {
		n = append(n, destS3)
	}
	if s.files != "" {
		n = append(n, destFiles)
	}
	if s.parquet != "" {
		n = append(n, destParquet)
	}
	return n
}

// recorder is a tracker's transport: it notes the event ids of every
// request the collector acknowledged, and the statuses of the others.
type recorder struct {
	base http.RoundTripper

	mu     sync.Mutex
	acked  map[string]bool
	failed []string
}

func newRecorder() *recorder {
	return &recorder{base: &http.Transport{MaxIdleConnsPerHost: 64}, acked: map[string]bool{}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var ids []string
	if req.Method == http.MethodGet {
		ids = []string{req.URL.Query().Get("eid")}
	} else {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		var p struct {
			Data []struct {
				EID string `json:"eid"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("recorder: tracker POST body: %w", err)
		}
		for _, e := range p.Data {
			ids = append(ids, e.EID)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := r.base.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.failed = append(r.failed, err.Error())
	case resp.StatusCode != http.StatusOK:
		r.failed = append(r.failed, resp.Status)
	default:
		for _, id := range ids {
			if id == "" {
				r.failed = append(r.failed, "a request without eid")
			}
			r.acked[id] = true
		}
	}
	return resp, err
}

func (r *recorder) ids() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.acked))
	for id := range r.acked {
		out[id] = true
	}
	return out
}

// gatedStorage holds the tracker's send loop until open is closed. The
// Go tracker's emitter writes its SendChannel field when a send loop has
// finished while the loop's goroutine read it without synchronisation (a
// race the race detector reports now and then); with the loop held
// until every event is tracked, and Emitter.Stop (a receive) after it,
// the field is only written in order.
type gatedStorage struct {
	storageiface.Storage
	open chan struct{}
}

func (g gatedStorage) GetEventRowsWithinRange(n int) []storageiface.EventRow {
	<-g.open
	return g.Storage.GetEventRowsWithinRange(n)
}

// newTracker returns a Go tracker sending to addr by method through rec,
// and send, which sends what was tracked and waits until it was; it
// returns how many events were not sent.
func newTracker(addr, method string, rec *recorder) (tr *sp.Tracker, send func() int) {
	store := gatedStorage{Storage: memory.Init(), open: make(chan struct{})}
	emitter := sp.InitEmitter(
		sp.RequireCollectorUri(addr),
		sp.RequireStorage(store),
		sp.OptionRequestType(method),
		sp.OptionProtocol("http"),
		sp.OptionSendLimit(100),
		sp.OptionHttpClient(&http.Client{Timeout: 10 * time.Second, Transport: rec}),
	)
	subject := sp.InitSubject()
	subject.SetUserId("user-" + method)
	subject.SetIpAddress("198.51.100.7")
	subject.SetUseragent("go-e2e-destinations/1.0")
	subject.SetLanguage("en")
	tr = sp.InitTracker(
		sp.RequireEmitter(emitter),
		sp.OptionSubject(subject),
		sp.OptionNamespace("dest"),
		sp.OptionAppId("dest-"+strings.ToLower(method)),
		sp.OptionPlatform("srv"),
		sp.OptionBase64Encode(method == http.MethodGet),
	)
	return tr, func() int {
		close(store.open)
		emitter.Stop()
		return len(store.GetAllEventRows())
	}
}

// TestDestinationsEndToEnd sends ~2,000 events of six kinds with
// Snowplow's Go tracker, by GET and POST, plus a few that fail
// validation, to furrow loading postgres, s3, a tsv.gz files destination
// and a parquet one at once (and duckdb, see withDuckDB). After a
// graceful stop each destination holds exactly the events the tracker
// sent, once each, and every bad row, read with tools furrow's authors
// did not write: psql, Snowplow's Go Analytics SDK, compress/gzip and
// DuckDB's read_parquet.
func TestDestinationsEndToEnd(t *testing.T) {
	pg, s3s := testutil.Postgres(t), testutil.S3(t)
	setup := destSetup{pg: pg, s3: s3s, pgDSN: pg.DSN(), s3Secret: s3s.Secret,
		duckdb: filepath.Join(t.TempDir(), "dest.duckdb"), files: t.TempDir(), parquet: t.TempDir()}
	dataDir := t.TempDir()
	f := start(t, dataDir, "--config", setup.config(t), "--iglu-dir", igluCentral)

	good, bad := newRecorder(), newRecorder()
	const rounds = 170 // 6 events a round and method: 2,040
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		tr, send := newTracker(f.addr, method, good)
		for i := range rounds {
			webPage := *sp.InitSelfDescribingJson("iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
				map[string]any{"id": uuid.NewString()})
			tr.TrackPageView(sp.PageViewEvent{PageUrl: str(fmt.Sprintf("https://shop.example.com/p/%d?q=1", i)), PageTitle: str("Product"),
				Referrer: str("https://search.example.org/?q=shoes"), Contexts: []sp.SelfDescribingJson{webPage}})
			tr.TrackStructEvent(sp.StructuredEvent{Category: str("shop"), Action: str("add"), Label: str("item\t" + strconv.Itoa(i)), Value: num(float64(i) + 0.5)})
			tr.TrackSelfDescribingEvent(sp.SelfDescribingEvent{Event: sp.InitSelfDescribingJson(
				"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
				map[string]any{"targetUrl": fmt.Sprintf("https://example.com/next/%d", i), "elementId": "cta"})})
			tr.TrackScreenView(sp.ScreenViewEvent{Name: str("home"), Id: str(fmt.Sprintf("screen-%d", i))})
			tr.TrackEcommerceTransaction(sp.EcommerceTransactionEvent{
				OrderId: str(fmt.Sprintf("order-%s-%d", method, i)), TotalValue: num(45.5), Currency: str("EUR"),
				Items: []sp.EcommerceTransactionItemEvent{{Sku: str("sku-1"), Price: num(20), Quantity: i64(2), Name: str("Shoe")}},
			})
		}
		if left := send(); left != 0 {
			t.Fatalf("%s tracker: %d events not sent", method, left)
		}
	}
	// Events whose schema does not exist: schema_violations bad rows.
	btr, bsend := newTracker(f.addr, http.MethodPost, bad)
	for i := range 7 {
		btr.TrackSelfDescribingEvent(sp.SelfDescribingEvent{Event: sp.InitSelfDescribingJson(
			"iglu:com.acme/missing/jsonschema/1-0-0", map[string]any{"n": i})})
	}
	if left := bsend(); left != 0 {
		t.Fatalf("bad tracker: %d events not sent", left)
	}
	if len(good.failed)+len(bad.failed) > 0 {
		t.Fatalf("requests not acknowledged: %v %v", good.failed, bad.failed)
	}
	sentGood, sentBad := good.ids(), bad.ids()
	t.Logf("the trackers sent %d good events and %d that fail validation", len(sentGood), len(sentBad))
	if len(sentGood) != 2*rounds*6 || len(sentBad) != 7 {
		t.Fatalf("acknowledged %d good and %d bad event ids", len(sentGood), len(sentBad))
	}

	names := setup.names()
	waitLoaded(t, f, names, len(sentGood), len(sentBad), 90*time.Second)
	m := mustMetrics(t, f)
	for _, d := range names {
		if n, b := destMetric(m, "furrow_destination_rows_loaded_total", d), destMetric(m, "furrow_destination_bad_rows_loaded_total", d); n != float64(len(sentGood)) || b != float64(len(sentBad)) {
			t.Errorf("%s: metrics say %v events and %v bad rows loaded, want %d and %d", d, n, b, len(sentGood), len(sentBad))
		}
	}
	if code, body, err := sinkHealth(f); err != nil || code != http.StatusOK || body != "ok" {
		t.Errorf("/sink-health with every destination loading: %d %q (%v)", code, body, err)
	}
	f.stop()

	for _, name := range names {
		var loaded map[string]int
		var badRows []string
		switch name {
		case destPG:
			loaded, badRows = pgContents(t, pg)
		case destDuckDB:
			loaded, badRows = duckDBContents(t, setup.duckdb)
		case destS3:
			loaded, badRows = objectContents(t, name, s3Objects(t, s3s), ".tsv.gz")
		case destFiles:
			loaded, badRows = objectContents(t, name, dirObjects(t, setup.files), ".tsv.gz")
		case destParquet:
			loaded, badRows = objectContents(t, name, dirObjects(t, setup.parquet), ".parquet")
			loaded = parquetContents(t, setup.parquet, len(sentGood))
		}
		checkExactly(t, name, sentGood, loaded)
		checkBadRows(t, name, sentBad, badRows)
	}
	if !withDuckDB {
		t.Log("the duckdb destination beside the others is switched off (withDuckDB)")
	}
}

// checkExactly fails unless loaded holds each id of sent once, and no other.
func checkExactly(t *testing.T, dest string, sent map[string]bool, loaded map[string]int) {
	t.Helper()
	checkAcked(t, dest, sent, sent, loaded)
}

// checkBadRows fails unless each id of sent is named by exactly one of
// the bad rows and there are no others.
func checkBadRows(t *testing.T, dest string, sent map[string]bool, rows []string) {
	t.Helper()
	if len(rows) != len(sent) {
		t.Errorf("%s: %d bad rows, want %d", dest, len(rows), len(sent))
	}
	for id := range sent {
		n := 0
		for _, r := range rows {
			if strings.Contains(r, id) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: the event %s is in %d bad rows", dest, id, n)
		}
	}
	for _, r := range rows {
		if !strings.Contains(r, "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/") ||
			!strings.Contains(r, "iglu:com.acme/missing/jsonschema/1-0-0") {
			t.Errorf("%s: bad row is not the schema violation sent: %.300s", dest, r)
		}
	}
}

func head(s []string) []string {
	sort.Strings(s)
	return s[:min(len(s), 5)]
}

// pgContents reads the events and bad rows of a postgres destination
// with psql, and checks there with SQL that no event id is there twice.
func pgContents(t *testing.T, pg *testutil.PG) (map[string]int, []string) {
	t.Helper()
	if dups := pg.Psql("-c", "SELECT event_id, count(*) FROM atomic.events GROUP BY event_id HAVING count(*) > 1 LIMIT 5"); dups != "" {
		t.Errorf("pg: event ids loaded more than once:\n%s", dups)
	}
	counts := pg.Psql("-c", "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM atomic.events")
	t.Logf("pg: count, distinct event_id: %s", counts)
	loaded := map[string]int{}
	for _, id := range lines(pg.Psql("-c", "SELECT event_id FROM atomic.events")) {
		loaded[id]++
	}
	return loaded, lines(pg.Psql("-c", "SELECT payload::text FROM atomic.bad_rows"))
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// duckDBContents reads a duckdb destination's file (furrow stopped).
func duckDBContents(t *testing.T, path string) (map[string]int, []string) {
	t.Helper()
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, distinct int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT event_id) FROM atomic.events`).Scan(&n, &distinct); err != nil {
		t.Fatalf("duckdb destination: %v", err)
	}
	t.Logf("duckdb: count %d, distinct event_id %d", n, distinct)
	if n != distinct {
		t.Errorf("duckdb: %d rows for %d event ids", n, distinct)
	}
	loaded := map[string]int{}
	for _, id := range queryStrings(t, db, `SELECT event_id::VARCHAR FROM atomic.events`) {
		loaded[id]++
	}
	return loaded, queryStrings(t, db, `SELECT payload::VARCHAR FROM atomic.bad_rows`)
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// parquetContents reads the good objects of a parquet files destination
// with DuckDB's read_parquet.
func parquetContents(t *testing.T, dir string, want int) map[string]int {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.Join(dir, "good", "**", "*.parquet")
	var n, distinct int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT event_id) FROM read_parquet(?)`, glob).Scan(&n, &distinct); err != nil {
		t.Fatalf("read_parquet: %v", err)
	}
	t.Logf("parquet: read_parquet count %d, distinct event_id %d", n, distinct)
	if n != want || distinct != want {
		t.Errorf("parquet: read_parquet count %d, distinct event_id %d, want %d", n, distinct, want)
	}
	loaded := map[string]int{}
	for _, id := range queryStrings(t, db, `SELECT event_id::VARCHAR FROM read_parquet(?)`, glob) {
		loaded[id]++
	}
	return loaded
}

// dirObjects returns the objects of a files destination, by key.
func dirObjects(t *testing.T, root string) map[string][]byte {
	t.Helper()
	objs := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		objs[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// s3Objects returns the objects under the s3 destination's prefix, by key
// relative to it.
func s3Objects(t *testing.T, s *testutil.S3Server) map[string][]byte {
	t.Helper()
	ctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	c := s.Client()
	objs := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: str(s3Prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("s3 list: %v", err)
		}
		for _, o := range page.Contents {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: o.Key})
			if err != nil {
				t.Fatalf("s3 get %s: %v", *o.Key, err)
			}
			b, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("s3 get %s: %v", *o.Key, err)
			}
			objs[strings.TrimPrefix(*o.Key, s3Prefix+"/")] = b
		}
	}
	return objs
}

var (
	// One state object, or one per Kafka partition (furrow load).
	stateKey = regexp.MustCompile(`^_furrow/state(-[a-z][a-z0-9._-]*-\d+)?\.json$`)
	goodKey  = regexp.MustCompile(`^good/\d{4}/\d{2}/\d{2}/\d{2}/[0-9-]+-([a-z][a-z0-9._-]*-\d+-)?\d{20}-\d{20}(\.tsv\.gz|\.parquet)$`)
	badKey   = regexp.MustCompile(`^bad/com\.snowplowanalytics\.snowplow\.badrows\.[a-z_]+/model=\d+/\d{4}/\d{2}/\d{2}/\d{2}/[0-9-]+-([a-z][a-z0-9._-]*-\d+-)?\d{20}-\d{20}\.json\.gz$`)
)

// objectContents checks the objects of a files or s3 destination: keys
// as documented, the state object, each .gz object gunzips whole, each
// TSV line parses with Snowplow's Analytics SDK, each bad row is JSON. It
// returns the event ids of the good TSV objects (none for parquet, read
// by parquetContents) and the bad rows.
func objectContents(t *testing.T, dest string, objs map[string][]byte, goodExt string) (map[string]int, []string) {
	t.Helper()
	loaded := map[string]int{}
	var badRows []string
	kinds := map[string]int{}
	goodObjs, badObjs := 0, 0
	for key, body := range objs {
		switch {
		case stateKey.MatchString(key):
			var st struct{ Position int64 }
			if err := json.Unmarshal(body, &st); err != nil || st.Position <= 0 {
				t.Errorf("%s: state object %q: %v", dest, body, err)
			}
		case strings.HasPrefix(key, "good/"):
			goodObjs++
			if !goodKey.MatchString(key) || !strings.HasSuffix(key, goodExt) {
				t.Errorf("%s: good object key %q", dest, key)
			}
			if goodExt != ".tsv.gz" {
				continue // parquet: read with DuckDB
			}
			for _, line := range gunzipLines(t, dest, key, body) {
				ev, err := analytics.ParseEvent(line)
				if err != nil {
					t.Errorf("%s: %s: analytics SDK: %v\n%.300s", dest, key, err, line)
					continue
				}
				id, _ := ev.GetValue("event_id")
				s, _ := id.(string)
				loaded[s]++
				name, _ := ev.GetValue("event_name")
				n, _ := name.(string)
				kinds[n]++
			}
		case strings.HasPrefix(key, "bad/"):
			badObjs++
			if !badKey.MatchString(key) {
				t.Errorf("%s: bad object key %q", dest, key)
			}
			for _, line := range gunzipLines(t, dest, key, body) {
				var row struct {
					Schema string          `json:"schema"`
					Data   json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal([]byte(line), &row); err != nil || !strings.HasPrefix(row.Schema, "iglu:com.snowplowanalytics.snowplow.badrows/") {
					t.Errorf("%s: %s: a line that is not a bad row (%v): %.300s", dest, key, err, line)
				}
				badRows = append(badRows, line)
			}
		case strings.HasPrefix(filepath.Base(key), ".furrow-tmp-"):
			t.Logf("%s: a temporary file left: %s", dest, key)
		default:
			t.Errorf("%s: unexpected object %q", dest, key)
		}
	}
	t.Logf("%s: %d good and %d bad objects; events by name %v", dest, goodObjs, badObjs, kinds)
	return loaded, badRows
}

// gunzipLines gunzips a whole object and splits it into lines; a
// truncated or corrupt object fails the test.
func gunzipLines(t *testing.T, dest, key string, body []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s: %s: not gzip: %v", dest, key, err)
		return nil
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Errorf("%s: %s: does not gunzip whole: %v", dest, key, err)
		return nil
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		t.Errorf("%s: %s: does not end with a full line", dest, key)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// metrics scrapes furrow's Prometheus metrics from its local socket:
// each series ("name{labels}") and its value.
func metrics(dataDir string) (map[string]float64, error) {
	resp, err := socketClient(dataDir).Get("http://furrow/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// series names a destination's series of metric name.
func series(name, dest string) string { return fmt.Sprintf(`%s{destination=%q}`, name, dest) }

// destMetric is a destination's value of a metric, -1 if absent.
func destMetric(m map[string]float64, name, dest string) float64 {
	if v, ok := m[series(name, dest)]; ok {
		return v
	}
	return -1
}

// waitLoaded waits until each destination loaded good events and bad
// rows and has no backlog.
func waitLoaded(t *testing.T, f *furrow, dests []string, good, bad int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := metrics(f.dataDir)
		done := err == nil
		for _, d := range dests {
			if destMetric(m, "furrow_destination_rows_loaded_total", d) < float64(good) ||
				destMetric(m, "furrow_destination_bad_rows_loaded_total", d) < float64(bad) ||
				destMetric(m, "furrow_destination_backlog_bytes", d) != 0 {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("destinations not loaded after %s (want %d good, %d bad): %v (%v)\n%s", within, good, bad, destMetrics(m), err, tail(f.stderr.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitDrained waits until the raw logs and every destination have no
// backlog, twice in a row (with nothing being sent).
func waitDrained(t *testing.T, f *furrow, dests []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	clean := 0
	for {
		m, err := metrics(f.dataDir)
		ok := err == nil && m[`furrow_log_backlog_bytes{log="raw"}`] == 0 && m[`furrow_log_backlog_bytes{log="collector-bad"}`] == 0
		for _, d := range dests {
			if destMetric(m, "furrow_destination_backlog_bytes", d) != 0 {
				ok = false
			}
		}
		if ok {
			if clean++; clean == 2 {
				return
			}
		} else {
			clean = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("destinations not drained after %s: %v (%v)\n%s", within, destMetrics(m), err, tail(f.stderr.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// destMetrics picks the destination and log backlog metrics, for messages.
func destMetrics(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "furrow_destination_") || strings.HasPrefix(k, "furrow_log_backlog") {
			out[k] = v
		}
	}
	return out
}

func tail(s string, n int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// sinkHealth asks furrow's /sink-health.
func sinkHealth(f *furrow) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(f.url("/sink-health"))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// pixelSender sends GET pixel events, each its own event id, to the
// furrow at addr (which may change: a restart), from a few goroutines,
// and records which were acknowledged.
type pixelSender struct {
	addr atomic.Pointer[string]
	stop atomic.Bool
	wg   sync.WaitGroup

	mu    sync.Mutex
	sent  map[string]bool
	acked map[string]bool
}

func startSender(addr string, workers int, pause time.Duration) *pixelSender {
	s := &pixelSender{sent: map[string]bool{}, acked: map[string]bool{}}
	s.addr.Store(&addr)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := range workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := 0; !s.stop.Load(); i++ {
				id := uuid.NewString()
				s.mu.Lock()
				s.sent[id] = true
				s.mu.Unlock()
				url := fmt.Sprintf("http://%s/i?e=pv&p=web&tv=e2e&aid=faults&eid=%s&url=https%%3A%%2F%%2Fexample.com%%2F%d%%2F%d", *s.addr.Load(), id, w, i)
				resp, err := client.Get(url)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // furrow down: try on
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 200 && resp.StatusCode < 300 {
					s.mu.Lock()
					s.acked[id] = true
					s.mu.Unlock()
				}
				time.Sleep(pause)
			}
		}()
	}
	return s
}

func (s *pixelSender) finish() (sent, acked map[string]bool) {
	s.stop.Store(true)
	s.wg.Wait()
	return s.sent, s.acked
}

func (s *pixelSender) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// TestDestinationFaults loads postgres, s3, files (and duckdb, see
// withDuckDB) under a steady load of GET pixel events while Postgres is
// down for 30 s, the S3 server for 10 s, and furrow is killed with
// SIGKILL once and restarted on the same data. Every acknowledged event
// must then be in every destination, once, in whole objects; while
// Postgres was down the files destination kept loading and
// /sink-health said so.
func TestDestinationFaults(t *testing.T) {
	pg, s3s := testutil.Postgres(t), testutil.S3(t)
	setup := destSetup{pg: pg, s3: s3s, pgDSN: pg.DSN(), s3Secret: s3s.Secret,
		duckdb: filepath.Join(t.TempDir(), "dest.duckdb"), files: t.TempDir()}
	cfg := setup.config(t)
	names := setup.names()
	dataDir := t.TempDir()
	f := start(t, dataDir, "--config", cfg)
	began := time.Now()
	sender := startSender(f.addr, 4, 5*time.Millisecond)
	defer sender.finish()

	// Every destination loading before the faults.
	waitFor(t, f, "every destination loading", 30*time.Second, func(m map[string]float64) bool {
		for _, d := range names {
			if destMetric(m, "furrow_destination_rows_loaded_total", d) <= 0 {
				return false
			}
		}
		return true
	})

	// Postgres down for 30 s.
	m0 := mustMetrics(t, f)
	pg.Stop()
	downAt := time.Now()
	degraded := ""
	for time.Since(downAt) < 30*time.Second {
		if code, body, err := sinkHealth(f); err == nil && code == http.StatusOK &&
			strings.Contains(body, "degraded") && strings.Contains(body, "destination/"+destPG) && degraded == "" {
			degraded = body
		}
		time.Sleep(250 * time.Millisecond)
	}
	m1 := mustMetrics(t, f)
	pg.Start()
	filesBefore, filesAfter := destMetric(m0, "furrow_destination_rows_loaded_total", destFiles), destMetric(m1, "furrow_destination_rows_loaded_total", destFiles)
	pgBefore, pgAfter := destMetric(m0, "furrow_destination_rows_loaded_total", destPG), destMetric(m1, "furrow_destination_rows_loaded_total", destPG)
	t.Logf("Postgres down 30 s: files loaded %v -> %v events, pg %v -> %v; pg backlog %v bytes; /sink-health: %q",
		filesBefore, filesAfter, pgBefore, pgAfter, destMetric(m1, "furrow_destination_backlog_bytes", destPG), degraded)
	if filesAfter <= filesBefore {
		t.Errorf("the files destination loaded nothing while Postgres was down (%v -> %v)", filesBefore, filesAfter)
	}
	if degraded == "" {
		t.Errorf("/sink-health never said degraded naming destination/%s while Postgres was down", destPG)
	}

	// The S3 server down for 10 s.
	s3s.Stop()
	time.Sleep(10 * time.Second)
	m2 := mustMetrics(t, f)
	s3s.Start()
	s3Before := destMetric(m2, "furrow_destination_rows_loaded_total", destS3)
	t.Logf("S3 down 10 s: s3 backlog %v bytes", destMetric(m2, "furrow_destination_backlog_bytes", destS3))

	// kill -9 while the destinations catch up: s3 with its first loads
	// after the outage. Aimed at loads in flight: once a fresh frame of
	// the enricher is in every destination's backlog, each runner waits
	// its batch delay (1 s) for more and then loads.
	waitFor(t, f, "s3 loading again", 30*time.Second, func(m map[string]float64) bool {
		return destMetric(m, "furrow_destination_rows_loaded_total", destS3) > s3Before
	})
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m, err := metrics(f.dataDir)
		if err != nil {
			continue
		}
		all := true
		for _, d := range names {
			all = all && destMetric(m, "furrow_destination_backlog_bytes", d) > 0
		}
		if all {
			time.Sleep(time.Second)
			break
		}
	}
	mk := mustMetrics(t, f)
	f.kill()
	t.Logf("killed with backlogs %v", backlogs(mk, names))
	// The outages were retried as outages, not held back as refusals.
	for _, d := range []string{destPG, destS3} {
		retryable := mk[fmt.Sprintf(`furrow_destination_retries_total{class="retryable",destination=%q}`, d)]
		permanent := mk[fmt.Sprintf(`furrow_destination_retries_total{class="permanent",destination=%q}`, d)]
		t.Logf("%s: %v retryable and %v permanent retries during its outage", d, retryable, permanent)
		if retryable < 1 || permanent != 0 {
			t.Errorf("%s: %v retryable and %v permanent retries during its outage, want some retryable and no permanent", d, retryable, permanent)
		}
	}
	f = start(t, dataDir, "--config", cfg)
	sender.addr.Store(&f.addr)
	restartedAcked := sender.ackedCount()
	for sender.ackedCount() < restartedAcked+1000 && time.Since(began) < 110*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	sent, acked := sender.finish()
	t.Logf("sent %d events, %d acknowledged, in %s", len(sent), len(acked), time.Since(began).Round(time.Second))
	waitDrained(t, f, names, 60*time.Second)
	if code, body, err := sinkHealth(f); err != nil || code != http.StatusOK || body != "ok" {
		t.Errorf("/sink-health once every destination caught up: %d %q (%v)", code, body, err)
	}
	f.stop()
	for _, line := range strings.Split(f.stderr.String(), "\n") {
		if strings.Contains(line, "a load did not finish") {
			t.Logf("after the restart: %s", line) // the kill landed in an object load
		}
	}

	for _, name := range names {
		var loaded map[string]int
		switch name {
		case destPG:
			loaded, _ = pgContents(t, pg)
		case destDuckDB:
			loaded, _ = duckDBContents(t, setup.duckdb)
		case destS3:
			loaded, _ = objectContents(t, name, s3Objects(t, s3s), ".tsv.gz")
		case destFiles:
			loaded, _ = objectContents(t, name, dirObjects(t, setup.files), ".tsv.gz")
		}
		checkAcked(t, name, sent, acked, loaded)
	}
	if !withDuckDB {
		t.Log("the duckdb destination beside the others is switched off (withDuckDB)")
	}
}

// checkAcked fails unless loaded holds every acknowledged id, each id at
// most once, and only ids that were sent.
func checkAcked(t *testing.T, dest string, sent, acked map[string]bool, loaded map[string]int) {
	t.Helper()
	var missing, extra, dups []string
	for id, n := range loaded {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
		if !sent[id] {
			extra = append(extra, id)
		}
	}
	for id := range acked {
		if loaded[id] == 0 {
			missing = append(missing, id)
		}
	}
	t.Logf("%s: %d distinct events loaded (%d acknowledged, %d sent)", dest, len(loaded), len(acked), len(sent))
	if len(missing)+len(extra)+len(dups) > 0 {
		t.Errorf("%s: %d acknowledged events missing %v, %d never sent %v, %d loaded more than once %v",
			dest, len(missing), head(missing), len(extra), head(extra), len(dups), head(dups))
	}
}

func backlogs(m map[string]float64, dests []string) map[string]float64 {
	out := map[string]float64{}
	for _, d := range dests {
		out[d] = destMetric(m, "furrow_destination_backlog_bytes", d)
	}
	return out
}

func mustMetrics(t *testing.T, f *furrow) map[string]float64 {
	t.Helper()
	m, err := metrics(f.dataDir)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return m
}

// waitFor polls the metrics until ok says so.
func waitFor(t *testing.T, f *furrow, what string, within time.Duration, ok func(map[string]float64) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := metrics(f.dataDir)
		if err == nil && ok(m) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %s: %v (%v)\n%s", what, within, destMetrics(m), err, tail(f.stderr.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDestinationRefused gives furrow a Postgres DSN with a wrong
// password and S3 credentials with a wrong secret, beside a files
// destination: furrow runs, the files destination loads every event,
// /sink-health is 200 and names both refusing destinations, the log says
// they refused, their events wait in their backlog, and once furrow is
// restarted with the right credentials they load every event.
func TestDestinationRefused(t *testing.T) {
	pg, s3s := testutil.Postgres(t), testutil.S3(t)
	setup := destSetup{pg: pg, s3: s3s, pgDSN: pg.DSNFor(testutil.PostgresUser, "wrong-password", testutil.PostgresDB),
		s3Secret: "wrong-secret-0123456789", files: t.TempDir()}
	dataDir := t.TempDir()
	f := start(t, dataDir, "--config", setup.config(t))

	sender := startSender(f.addr, 2, 0)
	for deadline := time.Now().Add(30 * time.Second); sender.ackedCount() < 500; {
		if time.Now().After(deadline) {
			sender.finish()
			t.Fatalf("only %d events acknowledged in 30 s\n%s", sender.ackedCount(), tail(f.stderr.String(), 30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent, acked := sender.finish()
	if len(sent) != len(acked) {
		t.Fatalf("%d of %d events not acknowledged", len(sent)-len(acked), len(sent))
	}
	waitFor(t, f, "the files destination loading every event, the refused destinations retried", 30*time.Second, func(m map[string]float64) bool {
		return destMetric(m, "furrow_destination_rows_loaded_total", destFiles) >= float64(len(acked)) &&
			destMetric(m, "furrow_destination_backlog_bytes", destFiles) == 0 &&
			m[`furrow_destination_retries_total{class="permanent",destination="pg"}`] >= 1 &&
			m[`furrow_destination_retries_total{class="permanent",destination="lake"}`] >= 1
	})
	m := mustMetrics(t, f)
	for _, d := range []string{destPG, destS3} {
		if b := destMetric(m, "furrow_destination_backlog_bytes", d); b <= 0 {
			t.Errorf("%s: backlog %v bytes, want the events waiting", d, b)
		}
		if n := destMetric(m, "furrow_destination_rows_loaded_total", d); n > 0 {
			t.Errorf("%s: %v rows loaded with wrong credentials", d, n)
		}
	}
	code, body, err := sinkHealth(f)
	t.Logf("/sink-health: %d %q (%v)", code, body, err)
	if err != nil || code != http.StatusOK || !strings.Contains(body, "degraded") ||
		!strings.Contains(body, "destination/"+destPG) || !strings.Contains(body, "destination/"+destS3) {
		t.Errorf("/sink-health: %d %q (%v), want 200 naming destination/%s and destination/%s", code, body, err, destPG, destS3)
	}
	for _, d := range []string{destPG, destS3} {
		if !logHas(f.stderr.String(), "destination refused", d) {
			t.Errorf("no log line says destination %s refused:\n%s", d, tail(f.stderr.String(), 30))
		}
	}
	if strings.Contains(f.stderr.String(), "wrong-password") || strings.Contains(f.stderr.String(), "wrong-secret") {
		t.Error("the log shows a secret")
	}
	f.stop()
	loaded, _ := objectContents(t, destFiles, dirObjects(t, setup.files), ".tsv.gz")
	checkExactly(t, destFiles, acked, loaded)

	// Nothing was lost: with the right credentials they load it all.
	setup.pgDSN, setup.s3Secret = pg.DSN(), s3s.Secret
	f = start(t, dataDir, "--config", setup.config(t))
	waitLoaded(t, f, []string{destPG, destS3}, len(acked), 0, 60*time.Second)
	f.stop()
	loaded, _ = pgContents(t, pg)
	checkExactly(t, destPG, acked, loaded)
	loaded, _ = objectContents(t, destS3, s3Objects(t, s3s), ".tsv.gz")
	checkExactly(t, destS3, acked, loaded)
}

// logHas reports whether a line of log holds all of words.
func logHas(log string, words ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
