package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
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
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("drain_timeout: 60s\nstreams:\n  type: kafka\n  kafka:\n    brokers: [%s]\n", k.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	f := startRole(t, "collect", t.TempDir(), "--config", cfg)

	var mu sync.Mutex
	acked := map[string]bool{}
	var stop atomic.Bool
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := uuid.NewString()
				resp, err := http.Get(f.url(fmt.Sprintf("/i?e=pv&p=web&tv=kafka-e2e&aid=collect&eid=%s&url=%s", id, url.QueryEscape(fmt.Sprintf("https://example.com/%d/%d", w, i)))))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					refused.Add(1)
					continue
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	n := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	time.Sleep(3 * time.Second)
	k.Kill()
	downFrom := n()
	time.Sleep(30 * time.Second)
	health := get(t, f.url("/sink-health"))
	k.Start()
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
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
