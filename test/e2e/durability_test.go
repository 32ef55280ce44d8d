package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestKill9ExactlyOnce checks the collector's promise and the warehouse's:
// an event answered with 2xx survives the process being killed with
// SIGKILL at any moment, and reaches DuckDB once. Trackers keep sending
// while furrow is killed; after a restart every acknowledged event must
// be in the warehouse, none twice (DuckDB holds the raw log's position
// with the rows, see duckdb.Marked).
func TestKill9ExactlyOnce(t *testing.T) {
	dataDir := t.TempDir()
	f := start(t, dataDir)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var mu sync.Mutex
	acked := map[string]bool{}
	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				var ids []string
				var req *http.Request
				if i%2 == 0 {
					id := uuid.NewString()
					ids = []string{id}
					req, _ = http.NewRequest("GET", f.url(fmt.Sprintf("/i?e=pv&p=web&tv=e2e&aid=kill9&eid=%s&url=https%%3A%%2F%%2Fexample.com%%2F%d", id, i)), nil)
				} else {
					var items []string
					for j := 0; j < 3; j++ {
						id := uuid.NewString()
						ids = append(ids, id)
						items = append(items, fmt.Sprintf(`{"e":"se","p":"web","tv":"e2e","aid":"kill9","eid":"%s","se_ca":"c","se_ac":"a%d"}`, id, j))
					}
					body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` + strings.Join(items, ",") + `]}`
					req, _ = http.NewRequest("POST", f.url("/com.snowplowanalytics.snowplow/tp2"), strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
				}
				sent.Add(int64(len(ids)))
				resp, err := client.Do(req)
				if err != nil {
					continue // killed mid-request: not acknowledged
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					for _, id := range ids {
						acked[id] = true
					}
					mu.Unlock()
				}
			}
		}(w)
	}
	// Let some events reach the warehouse (the enricher's reader has
	// moved: loads committed and acknowledged) and leave others in the
	// log, so that the kill falls among loads.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 && committed(dataDir) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	loadedBefore := committed(dataDir) > 0
	f.kill()
	stop.Store(true)
	wg.Wait()
	t.Logf("killed with %d bytes of the raw log not yet loaded", backlog(t, dataDir))
	if len(acked) < 500 || !loadedBefore {
		t.Fatalf("only %d events acknowledged before the kill, loads before it: %v", len(acked), loadedBefore)
	}

	// Restart on the same data: the log is repaired and the remainder of
	// it is enriched and loaded; a graceful stop waits for that.
	f2 := start(t, dataDir)
	f2.stop()

	loaded := loadedEvents(t, dataDir, "kill9")
	missing := 0
	for id := range acked {
		if loaded[id] == 0 {
			missing++
		}
	}
	dups := 0
	for _, n := range loaded {
		if n > 1 {
			dups++
		}
	}
	t.Logf("sent %d events, %d acknowledged, %d loaded (%d unacknowledged but stored, %d loaded twice)",
		sent.Load(), len(acked), len(loaded), len(loaded)-len(acked)+missing, dups)
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events lost after kill -9", missing, len(acked))
	}
	if dups > 0 {
		t.Fatalf("%d events loaded twice after kill -9", dups)
	}
	for id := range loaded {
		if !acked[id] && !strings.Contains(id, "-") {
			t.Fatalf("unexpected event id %q", id)
		}
	}
}

// committed reads the enricher's committed position in the raw log.
func committed(dataDir string) int64 {
	b, err := os.ReadFile(filepath.Join(dataDir, "log", "raw", "readers", "enrich"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

// backlog reads how far the enricher's committed position is behind the
// end of the raw log, from the files furrow left behind.
func backlog(t *testing.T, dataDir string) int64 {
	dir := filepath.Join(dataDir, "log", "raw")
	committed := committed(dataDir)
	ents, _ := os.ReadDir(dir)
	var end int64
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(base, 10, 64)
		if st, err := e.Info(); err == nil && n+st.Size() > end {
			end = n + st.Size()
		}
	}
	return end - committed
}
