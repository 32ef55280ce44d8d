package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestGracefulStopIsBounded stops furrow while a backlog waits in its
// log: the stop takes at most drain_timeout plus the stop margin (5 s)
// and the final close, and after a restart every acknowledged event is
// loaded.
func TestGracefulStopIsBounded(t *testing.T) {
	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	os.WriteFile(cfg, []byte("drain_timeout: 1s\n"), 0o600)
	f := start(t, dataDir, "--config", cfg)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var mu sync.Mutex
	acked := map[string]bool{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				var ids, items []string
				for j := 0; j < 25; j++ {
					id := uuid.NewString()
					ids = append(ids, id)
					items = append(items, fmt.Sprintf(`{"e":"se","p":"web","tv":"e2e","aid":"stop","eid":"%s","se_ca":"c","se_ac":"a%d","url":"https://example.com/%s"}`, id, j, strings.Repeat("x", 100)))
				}
				body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` + strings.Join(items, ",") + `]}`
				resp, err := client.Post(f.url("/com.snowplowanalytics.snowplow/tp2"), "application/json", strings.NewReader(body))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					for _, id := range ids {
						acked[id] = true
					}
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(4 * time.Second)
	stop.Store(true)
	wg.Wait()
	lag := backlog(t, dataDir)
	began := time.Now()
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("furrow exited with %v\n%s", err, f.stderr.String())
		}
	case <-time.After(60 * time.Second):
		f.cmd.Process.Kill()
		t.Fatalf("furrow did not stop\n%s", f.stderr.String())
	}
	took := time.Since(began)
	t.Logf("%d events acknowledged; stopped with %d bytes of the raw log unprocessed, in %v", len(acked), lag, took.Round(time.Millisecond))
	if took > 1*time.Second+5*time.Second+3*time.Second {
		t.Errorf("the stop took %v, more than drain_timeout (1s) + the 5 s margin + 3 s to close\n%s", took, f.stderr.String())
	}

	f = start(t, dataDir)
	f.stop()
	loaded := loadedEvents(t, dataDir, "stop")
	for id := range acked {
		if loaded[id] == 0 {
			t.Fatalf("acknowledged event %s not loaded after the restart (%d of %d loaded)", id, len(loaded), len(acked))
		}
	}
}
