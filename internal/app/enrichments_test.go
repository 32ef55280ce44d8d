package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/config"
)

// New loads enrichments_dir: it logs the notices and refuses to start on
// a configuration error, naming the file.
func TestNewLoadsEnrichments(t *testing.T) {
	anon := `{"schema":"iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1","data":{"name":"anon_ip","vendor":"com.snowplowanalytics.snowplow","enabled":true,"parameters":{"anonOctets":%s}}}`
	disabled := `{"schema":"iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-0","data":{"name":"anon_ip","vendor":"com.snowplowanalytics.snowplow","enabled":false,"parameters":{"anonOctets":1}}}`
	for _, tc := range []struct {
		name, file, err, logged string
	}{
		{"good", strings.Replace(anon, "%s", "2", 1), "", `msg="enrichments loaded"`},
		{"disabled", disabled, "", "disabled, skipped"},
		{"invalid", strings.Replace(anon, "%s", "7", 1), "anon.json: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1: does not match its schema: $.parameters.anonOctets", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "anon.json"), []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
			cfg.DuckDB.Enabled = false
			cfg.Enrich.EnrichmentsDir = dir
			var logs lockedBuffer
			a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a.closeAll(context.Background())
			if !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log lacks %q:\n%s", tc.logged, logs.String())
			}
		})
	}
}
