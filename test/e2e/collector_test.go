package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCollectorLimitsEndToEnd: a body over 2 MB is refused with 413 and
// leaves no trace; one over 1 MB is answered 200 and becomes a
// size_violation bad row in Micro and in the warehouse.
func TestCollectorLimitsEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	f := start(t, dataDir)
	post := func(body string) int {
		resp, err := http.Post(f.url("/com.snowplowanalytics.snowplow/tp2"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(strings.Repeat("x", 2<<20+10)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MB+ body: %d", code)
	}
	big := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"t","page":"` + strings.Repeat("y", 1200_000) + `"}]}`
	if code := post(big); code != http.StatusOK {
		t.Fatalf("1.2 MB body: %d", code)
	}
	f.waitCounts(0, 1)

	// CORS preflight, as a browser tracker sends it.
	req, _ := http.NewRequest("OPTIONS", f.url("/com.snowplowanalytics.snowplow/tp2"), nil)
	req.Header.Set("Origin", "https://shop.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" || resp.Header.Get("Access-Control-Allow-Headers") != "Content-Type, SP-Anonymous" {
		t.Fatalf("preflight headers %v", resp.Header)
	}
	f.stop()

	db := openDuckDB(t, dataDir)
	var n int
	var expectation string
	if err := db.QueryRow(`SELECT count(*), any_value(payload->'$.data.failure'->>'expectation') FROM atomic.bad_rows WHERE failure_type = 'size_violation'`).Scan(&n, &expectation); err != nil {
		t.Fatal(err)
	}
	if n != 1 || !strings.HasPrefix(expectation, "oversized collector payload: Payload exceeds max size of 1048576") {
		t.Fatalf("%d size violations: %q", n, expectation)
	}
	var events int
	db.QueryRow(`SELECT count(*) FROM atomic.events`).Scan(&events)
	if events != 0 {
		t.Fatalf("%d events stored", events)
	}
}
