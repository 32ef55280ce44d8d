package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/furrow-io/furrow/internal/testutil"
)

// TestFullDiskRecovers runs furrow with its data directory on a small
// tmpfs, fills the disk under load, then frees the space. While the disk
// is full trackers get 503 and /sink-health says 503, and the log does
// not fill with one line per refused request; once space is back,
// /sink-health turns 200 and loading resumes by itself, without a
// restart; every acknowledged event is loaded.
func TestFullDiskRecovers(t *testing.T) {
	mnt := testutil.Tmpfs(t, 160<<20)
	dataDir := filepath.Join(mnt, "data")
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	os.WriteFile(cfg, []byte("log:\n  segment_bytes: 4194304\ndrain_timeout: 60s\n"), 0o600)
	f := start(t, dataDir, "--config", cfg)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var (
		mu      sync.Mutex
		acked   []string
		refused atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				id := uuid.NewString()
				resp, err := client.Get(f.url("/i?e=pv&p=web&tv=e2e&aid=fulldisk&eid=" + id + "&url=https%3A%2F%2Fexample.com%2F" + strings.Repeat("p", 200)))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				case 503:
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	health := func() int {
		resp, err := client.Get(f.url("/sink-health"))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, d time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > d {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("%s: not within %v\n%s", what, d, f.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}

	waitFor("events acknowledged before the disk fills", 20*time.Second, func() bool { return count() > 2000 })
	filler := testutil.Fill(t, mnt)
	waitFor("trackers refused while the disk is full", 10*time.Second, func() bool { return refused.Load() > 100 })
	waitFor("/sink-health 503 while the disk is full", 10*time.Second, func() bool { return health() == 503 })
	// Stay full a while: every request fails meanwhile.
	time.Sleep(3 * time.Second)
	full := count()
	stderrWhileFull := len(f.stderr.String())

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	healthy := waitFor("/sink-health 200 after space was freed", 15*time.Second, func() bool { return health() == 200 })
	waitFor("events acknowledged again", 15*time.Second, func() bool { return count() > full+2000 })
	loadedBefore := f.counts().Good
	resumed := waitFor("loading resumed", 20*time.Second, func() bool { return f.counts().Good > loadedBefore+1000 })
	stop.Store(true)
	wg.Wait()
	t.Logf("acknowledged %d events, refused %d requests; after space was freed: /sink-health 200 within %v, 1000 more events loaded within %v",
		count(), refused.Load(), healthy.Round(time.Millisecond), (healthy + resumed).Round(time.Millisecond))

	total := count()
	f.waitCounts(total, 0)
	f.stop()

	// The log holds one line per error and interval, not one per refused
	// request.
	lines := strings.Count(f.stderr.String(), "sink write failed")
	t.Logf("%d log lines in all, %d of them about failed sink writes, for %d refused requests",
		strings.Count(f.stderr.String(), "\n"), lines, refused.Load())
	if lines > 20 {
		t.Errorf("%d lines about failed sink writes for %d refused requests", lines, refused.Load())
	}
	if stderrWhileFull > 200<<10 {
		t.Errorf("%d bytes of log while the disk was full", stderrWhileFull)
	}

	loaded := loadedEvents(t, dataDir, "fulldisk")
	missing := 0
	for _, id := range acked {
		if loaded[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events not loaded", missing, total)
	}
}
