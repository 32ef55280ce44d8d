package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	analytics "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/testutil"
)

// TestCollectToKafka: furrow collect against a real broker. Trackers get
// 2xx while the broker is down for 30 s (the local log holds the
// payloads); once it is back the backlog drains, and the raw topic holds
// every acknowledged event, as Thrift CollectorPayload records keyed by
// a UUID. A size violation reaches the raw bad topic, read back with
// Kafka's own console consumer.
func TestCollectToKafka(t *testing.T) {
	k := testutil.Kafka(t)
	k.CreateTopic("snowplow-collector-payloads", 3)
	k.CreateTopic("snowplow-collector-bad", 1)
	cfg := kafkaConfig(t, k, "", "")
	f := startRole(t, "collect", t.TempDir(), "--config", cfg)

	tr := sendTraffic(f, "collect", nil)
	n, acked, refused := tr.N, tr.acked, &tr.refused
	time.Sleep(3 * time.Second)
	k.Kill()
	downFrom := n()
	time.Sleep(30 * time.Second)
	health := get(t, f.url("/sink-health"))
	k.Start()
	time.Sleep(3 * time.Second)
	tr.Stop()
	downAcked := n() - downFrom
	big := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"kafka-e2e","page":"` + strings.Repeat("y", 1200_000) + `"}]}`
	resp, err := http.Post(f.url("/com.snowplowanalytics.snowplow/tp2"), "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("oversized POST: %d", resp.StatusCode)
	}
	f.stop() // drains the local log into Kafka first
	t.Logf("%d events acknowledged, %d of them while the broker was down; %d refused; /sink-health while down: %q", n(), downAcked, refused.Load(), health)
	if downAcked < 100 {
		t.Fatalf("only %d events acknowledged while the broker was down", downAcked)
	}
	if refused.Load() > 0 {
		t.Fatalf("%d requests refused", refused.Load())
	}
	if !strings.HasPrefix(health, "ok; degraded: kafka/raw") {
		t.Errorf("/sink-health while the broker was down: %q", health)
	}

	// Every acknowledged event is in the raw topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.ConsumeTopics("snowplow-collector-payloads"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	keys := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(seen) < n() && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			p, err := payload.Unmarshal(r.Value)
			if err != nil {
				t.Fatalf("record at %s/%d/%d is not a CollectorPayload: %v", r.Topic, r.Partition, r.Offset, err)
			}
			if _, err := uuid.Parse(string(r.Key)); err != nil {
				t.Fatalf("key %q is not a UUID", r.Key)
			}
			keys[string(r.Key)] = true
			q, _ := url.ParseQuery(p.Querystring)
			seen[q.Get("eid")]++
		})
	}
	missing, twice := 0, 0
	for id := range acked {
		if seen[id] == 0 {
			missing++
		}
	}
	for _, c := range seen {
		if c > 1 {
			twice++
		}
	}
	t.Logf("raw topic: %d events, %d twice, %d distinct keys", len(seen), twice, len(keys))
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events missing from the raw topic", missing, len(acked))
	}

	// The size violation, read with Kafka's console consumer.
	lines := k.ConsoleConsume("snowplow-collector-bad", 1, 60*time.Second)
	if len(lines) != 1 {
		t.Fatalf("raw bad topic: %d records", len(lines))
	}
	var row struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil || !strings.Contains(row.Schema, "/size_violation/") {
		t.Fatalf("raw bad record %q: %v", lines[0], err)
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// TestSplitPipelineKafka: furrow collect -> Kafka -> two furrow enrich
// processes sharing the raw topic's partitions -> the enriched and bad
// topics. One enricher is killed with kill -9 under traffic and the other
// takes its partitions over. Every acknowledged event reaches the
// enriched topic once, as a read_committed consumer sees it (the killed
// enricher's open transaction is aborted), and Kafka's own console
// consumer reads it back as lines the Snowplow analytics SDK parses; an
// event with an invalid schema reaches the bad topic as a bad row. A
// payload that an independent producer (Python: thriftpy2, kafka-python)
// wrote in Snowplow's Thrift layout is enriched too, and a record that is
// not Thrift becomes a bad row.
func TestSplitPipelineKafka(t *testing.T) {
	k := testutil.Kafka(t)
	for name, parts := range map[string]int{"snowplow-collector-payloads": 4, "snowplow-collector-bad": 1, "snowplow-enriched": 2, "snowplow-bad": 1, "snowplow_json_event": 2} {
		k.CreateTopic(name, parts)
	}
	cfg := kafkaConfig(t, k, "    enriched_partition_key: domain_userid\n    enriched_headers: [app_id]\n    topics: {json: snowplow_json_event}\n", "")
	col := startRole(t, "collect", t.TempDir(), "--config", cfg)
	enrichers := []*furrow{startEnricher(t, cfg), startEnricher(t, cfg)}

	tr := sendTraffic(col, "split", func(_, i int) string { return fmt.Sprintf("&duid=user-%d", i%50) })
	acked := tr.acked
	time.Sleep(4 * time.Second)
	enrichers[0].kill()
	time.Sleep(6 * time.Second)
	tr.Stop()
	// An event whose self-describing JSON names a schema that is not in
	// the registry: a bad row.
	ue := url.QueryEscape(`{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.example/nothing/jsonschema/1-0-0","data":{}}}`)
	if resp, err := http.Get(col.url("/i?e=ue&p=web&tv=kafka-e2e&aid=split&ue_pr=" + ue)); err == nil {
		resp.Body.Close()
	}
	col.stop()
	// A record that is not Thrift, from Kafka's console producer: a bad
	// row, not a crash.
	k.ConsoleProduce("snowplow-collector-payloads", []string{"this is not a CollectorPayload"})
	// A payload in Snowplow's Thrift layout from an independent producer
	// (thriftpy2 and kafka-python): enriched like the collector's own.
	pyID := uuid.NewString()
	py := exec.Command("python/.venv/bin/python", "python/produce_thrift.py", k.Addr(), "snowplow-collector-payloads", pyID)
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("the Python Thrift producer (make test sets up test/e2e/python/.venv): %v\n%s", err, out)
	}
	acked[pyID] = true
	want := len(acked)
	// The enriched topic, through franz-go, until every acknowledged
	// event is there.
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.ConsumeTopics("snowplow-enriched"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	records := 0
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	missing := func() int {
		n := 0
		for id := range acked {
			if seen[id] == 0 {
				n++
			}
		}
		return n
	}
	for missing() > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			records++
			ev, err := analytics.ParseEvent(string(r.Value))
			if err != nil {
				t.Fatalf("enriched record: analytics SDK: %v\n%.300s", err, r.Value)
			}
			id, _ := ev.GetValue("event_id")
			s, _ := id.(string)
			seen[s]++
			duid, _ := ev.GetValue("domain_userid")
			if d, _ := duid.(string); d != "" && string(r.Key) != d {
				t.Fatalf("record keyed %q, domain_userid %q", r.Key, d)
			}
			aid, _ := ev.GetValue("app_id")
			if a, _ := aid.(string); len(r.Headers) != 1 || r.Headers[0].Key != "app_id" || string(r.Headers[0].Value) != a {
				t.Fatalf("headers %+v for app_id %q", r.Headers, a)
			}
		})
	}
	twice := records - len(seen)
	t.Logf("%d events acknowledged; enriched topic, read committed: %d records, %d distinct events", want, records, len(seen))
	if m := missing(); m > 0 {
		t.Fatalf("%d of %d acknowledged events missing from the enriched topic", m, want)
	}
	if twice > 0 {
		t.Fatalf("%d events twice in the enriched topic: the killed enricher's transaction was not aborted", twice)
	}
	for _, f := range enrichers[1:] {
		f.stop()
	}
	// Read back by Kafka's own console consumer: lines the analytics SDK
	// parses.
	lines := k.ConsoleConsume("snowplow-enriched", 200, 60*time.Second)
	if len(lines) != 200 {
		t.Fatalf("console consumer: %d lines", len(lines))
	}
	for _, l := range lines {
		if _, err := analytics.ParseEvent(l); err != nil {
			t.Fatalf("console consumer line: %v\n%.300s", err, l)
		}
	}
	// The JSON topic: Analytics SDK events, one JSON object a record.
	for _, l := range k.ConsoleConsume("snowplow_json_event", 200, 60*time.Second) {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["event_id"] == nil || ev["app_id"] == nil {
			t.Fatalf("JSON topic record %.300s: %v", l, err)
		}
	}
	bad := k.ConsoleConsume("snowplow-bad", 2, 60*time.Second)
	kinds := map[string]bool{}
	for _, b := range bad {
		var row struct {
			Schema string `json:"schema"`
		}
		if err := json.Unmarshal([]byte(b), &row); err != nil {
			t.Fatalf("bad topic record %q: %v", b, err)
		}
		kinds[row.Schema[strings.Index(row.Schema, "/")+1:strings.LastIndex(row.Schema, "/jsonschema")]] = true
	}
	if len(bad) != 2 || !kinds["schema_violations"] || !kinds["collector_payload_format_violation"] {
		t.Fatalf("bad topic: %v\n%q", kinds, bad)
	}
}

// listeningLoad is furrow load's line saying it runs.
var listeningLoad = regexp.MustCompile(`role=load`)

// startEnricher starts furrow enrich, which has no collector to wait for:
// it is ready when it says it is running.
func startEnricher(t *testing.T, cfg string) *furrow {
	t.Helper()
	return startRoleUntil(t, "enrich", regexp.MustCompile(`role=enrich`), "--data-dir", t.TempDir(), "--config", cfg)
}

// TestKafkaLoadExactlyOnce: collect -> Kafka -> enrich -> Kafka -> furrow
// load into DuckDB and Postgres (with password authentication). furrow
// load is killed with kill -9 twice under traffic and restarted: each
// destination holds every acknowledged event exactly once, because it
// stores each partition's offset in the transaction of its rows.
func TestKafkaLoadExactlyOnce(t *testing.T) {
	k := testutil.Kafka(t)
	for name, parts := range map[string]int{"snowplow-collector-payloads": 2, "snowplow-collector-bad": 1, "snowplow-enriched": 3, "snowplow-bad": 1} {
		k.CreateTopic(name, parts)
	}
	pg := testutil.Postgres(t)
	s3srv := testutil.S3(t)
	loadDir, filesDir := t.TempDir(), t.TempDir()
	// DuckDB and Postgres keep their offsets in their transactions; files
	// and S3 in one state object per partition.
	objects := fmt.Sprintf("  - name: s3\n    type: s3\n    bucket: %s\n    prefix: %s\n    region: %s\n    endpoint: %q\n    path_style: true\n"+
		"    access_key_id: %q\n    secret_access_key: %q\n    max_delay: 2s\n  - name: files\n    type: files\n    path: %q\n    max_delay: 2s\n",
		s3srv.Bucket, s3Prefix, s3srv.Region, s3srv.Endpoint, s3srv.AccessKey, s3srv.Secret, filesDir)
	cfg := kafkaConfig(t, k, "", duckAndPostgres(filepath.Join(loadDir, "furrow.duckdb"), pg.DSN())+objects)
	col := startRole(t, "collect", t.TempDir(), "--config", cfg)
	enr := startEnricher(t, cfg)
	startLoader := func() *furrow {
		return startRoleUntil(t, "load", listeningLoad, "--data-dir", loadDir, "--config", cfg)
	}
	ld := startLoader()

	tr := sendTraffic(col, "load", nil)
	acked := tr.acked
	var logs []*furrow
	for range 2 {
		time.Sleep(4 * time.Second)
		ld.kill()
		logs = append(logs, ld)
		ld = startLoader()
	}
	time.Sleep(3 * time.Second)
	tr.Stop()
	col.stop()
	want := len(acked)
	// Wait until Postgres holds them all, then stop the loader.
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := strconv.Atoi(pg.Psql("-c", "SELECT count(DISTINCT event_id) FROM atomic.events")); n >= want {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// At rest, every group's committed offsets reach the end of each
	// partition, past the enricher's transaction markers.
	var lag map[string]float64
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		lag = map[string]float64{}
		m, _ := metrics(loadDir)
		total := 0.0
		for name, v := range m {
			if strings.HasPrefix(name, "furrow_kafka_consumer_lag{") {
				lag[name] = v
				total += v
			}
		}
		if len(lag) == 4*4 && total == 0 { // 4 groups, 3+1 partitions
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	ld.stop()
	enr.stop()
	// The loaders' groups deleted, as if Kafka lost their offsets: a new
	// loader reads both topics from the start and skips everything, as
	// the destinations hold it.
	adm := kadm.NewClient(kgoClient(t, k.Addr()))
	if _, err := adm.DeleteGroups(context.Background(), "furrow-load-duck", "furrow-load-pg", "furrow-load-s3", "furrow-load-files"); err != nil {
		t.Fatal(err)
	}
	again := startLoader()
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && strings.Count(again.stderr.String(), "records the destination holds already, skipped") < 4 {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	again.stop()
	if n := strings.Count(again.stderr.String(), "records the destination holds already, skipped"); n < 4 {
		t.Fatalf("the loader started without offsets skipped %d batches:\n%s", n, again.stderr.String())
	}

	counts := strings.Fields(pg.Psql("-c", "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM atomic.events"))
	pgRows, _ := strconv.Atoi(counts[0])
	pgDistinct, _ := strconv.Atoi(counts[1])
	loaded := loadedEvents(t, loadDir, "load")
	duckRows, missing := rowsAndMissing(loaded, acked)
	total := 0.0
	for _, v := range lag {
		total += v
	}
	if len(lag) != 16 || total != 0 {
		t.Errorf("lag at rest: %d series, total %v, want 16 series at 0: %v", len(lag), total, lag)
	}
	for dest, objs := range map[string]map[string][]byte{"s3": s3Objects(t, s3srv), "files": dirObjects(t, filesDir)} {
		got, _ := objectContents(t, dest, objs, ".tsv.gz")
		rows, lost := rowsAndMissing(got, acked)
		t.Logf("%s: %d objects, %d rows for %d ids, %d missing", dest, len(objs), rows, len(got), lost)
		if rows != len(got) || lost > 0 {
			t.Errorf("%s: %d rows for %d ids, %d of %d acknowledged missing", dest, rows, len(got), lost, want)
		}
	}
	skips := 0
	for _, f := range append(logs, ld) {
		skips += strings.Count(f.stderr.String(), "records the destination holds already, skipped")
	}
	t.Logf("%d events acknowledged; Postgres %d rows (%d distinct); DuckDB %d rows (%d distinct), %d missing; %d partition batches replayed after a kill were skipped, in part or whole", want, pgRows, pgDistinct, duckRows, len(loaded), missing, skips)
	if pgRows != pgDistinct || duckRows != len(loaded) {
		t.Fatalf("events loaded twice: Postgres %d rows for %d ids, DuckDB %d rows for %d ids", pgRows, pgDistinct, duckRows, len(loaded))
	}
	if pgDistinct < want || missing > 0 {
		t.Fatalf("events lost: Postgres %d of %d, DuckDB missing %d", pgDistinct, want, missing)
	}
}

// rowsAndMissing counts the rows of loaded (rows by event id) and the
// acknowledged events it lacks.
func rowsAndMissing(loaded map[string]int, acked map[string]bool) (rows, missing int) {
	for _, n := range loaded {
		rows += n
	}
	for id := range acked {
		if loaded[id] == 0 {
			missing++
		}
	}
	return rows, missing
}

// traffic sends page views to a collector from 4 workers until Stop,
// keeping the event ids answered 200.
type traffic struct {
	mu      sync.Mutex
	acked   map[string]bool
	refused atomic.Int64
	stop    atomic.Bool
	wg      sync.WaitGroup
}

// sendTraffic starts the workers; query adds parameters to the i-th
// request of worker w.
func sendTraffic(f *furrow, aid string, query func(w, i int) string) *traffic {
	tr := &traffic{acked: map[string]bool{}}
	for w := range 4 {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for i := 0; !tr.stop.Load(); i++ {
				id := uuid.NewString()
				q := fmt.Sprintf("e=pv&p=web&tv=kafka-e2e&aid=%s&eid=%s&url=%s", aid, id, url.QueryEscape(fmt.Sprintf("https://example.com/%d/%d", w, i)))
				if query != nil {
					q += query(w, i)
				}
				resp, err := http.Get(f.url("/i?" + q))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					tr.refused.Add(1)
					continue
				}
				tr.mu.Lock()
				tr.acked[id] = true
				tr.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return tr
}

// Stop stops the workers and waits for them.
func (tr *traffic) Stop() { tr.stop.Store(true); tr.wg.Wait() }

// N is how many events were acknowledged so far.
func (tr *traffic) N() int { tr.mu.Lock(); defer tr.mu.Unlock(); return len(tr.acked) }

func kgoClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// kafkaConfig writes a furrow configuration for the Kafka roles on k's
// broker (a short session timeout, so that a killed member's partitions
// move on within seconds), with extra settings under streams.kafka and
// extra top-level YAML after.
func kafkaConfig(t *testing.T, k *testutil.KafkaBroker, kafkaExtra, extra string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	body := fmt.Sprintf("drain_timeout: 120s\nstreams:\n  type: kafka\n  kafka:\n    brokers: [%s]\n    session_timeout: 6s\n%s%s", k.Addr(), kafkaExtra, extra)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// duckAndPostgres is the destinations list of the load tests.
func duckAndPostgres(path, dsn string) string {
	return fmt.Sprintf("destinations:\n  - name: duck\n    type: duckdb\n    path: %s\n  - name: pg\n    type: postgres\n    dsn: %q\n", path, dsn)
}
