package e2e

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// TestStageFailureStopsFurrow: a warehouse whose atomic.events table
// cannot take furrow's events (made by something else, with other
// columns) is a permanent failure, not one to wait out: furrow logs the
// cause at once, stops the collector and exits non-zero.
func TestStageFailureStopsFurrow(t *testing.T) {
	dataDir := t.TempDir()
	db, err := sql.Open("duckdb", filepath.Join(dataDir, "furrow.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE SCHEMA atomic", "CREATE TABLE atomic.events (event_id UUID, note VARCHAR)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	f := start(t, dataDir)
	resp, err := http.Get(f.url("/i?e=pv&p=web&tv=e2e&aid=fail&url=https%3A%2F%2Fexample.com%2F"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-f.done:
		if err == nil {
			t.Fatalf("furrow exited 0 after a stage failed\n%s", f.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("furrow still runs after a permanent failure\n%s", f.stderr.String())
	}
	log := f.stderr.String()
	for _, want := range []string{`msg="enrich: stopped"`, "enrich stopped: ", "Binder Error"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if _, err := http.Get(f.url("/health")); err == nil {
		t.Error("the collector still answers after furrow stopped")
	}
}
