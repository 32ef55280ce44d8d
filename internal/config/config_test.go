package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/furrow-io/furrow/internal/wal"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "furrow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsRunEverythingEmbedded(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9090" || c.DataDir != "./furrow-data" || !c.DuckDB.Enabled || !c.Micro.Enabled {
		t.Errorf("defaults %+v", c)
	}
	if c.DuckDBPath() != filepath.Join("furrow-data", "furrow.duckdb") {
		t.Errorf("DuckDBPath %q", c.DuckDBPath())
	}
	if c.Log.Fsync != wal.FsyncInterval || c.Log.FsyncInterval != time.Second {
		t.Errorf("log %+v", c.Log)
	}
	if c.Collector.MaxPayloadSize != 1048576 || c.Collector.DropPayloadSize != 2097152 {
		t.Errorf("collector payload limits %d, %d", c.Collector.MaxPayloadSize, c.Collector.DropPayloadSize)
	}
	if c.SQL.Timeout != 30*time.Second || c.SQL.MaxResultBytes != 128<<20 {
		t.Errorf("sql limits %+v", c.SQL)
	}
}

func TestLoadOverridesDefaults(t *testing.T) {
	c, err := Load(write(t, `
listen: 0.0.0.0:8080
log:
  fsync: always
enrich:
  workers: 3
  iglu_dirs: [./schemas]
duckdb:
  path: /var/lib/furrow/events.duckdb
drain_timeout: 30s
sql:
  timeout: 2m
collector:
  cookie:
    name: sp2
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:8080" || c.Log.Fsync != wal.FsyncAlways || c.Enrich.Workers != 3 || c.DrainTimeout != 30*time.Second {
		t.Errorf("not loaded: %+v", c)
	}
	if c.DuckDBPath() != "/var/lib/furrow/events.duckdb" {
		t.Errorf("DuckDBPath %q", c.DuckDBPath())
	}
	// What the file leaves out keeps its default, including inside a
	// section the file does set.
	if c.Log.FsyncInterval != time.Second || c.Enrich.BatchSize != Default().Enrich.BatchSize || c.DataDir != "./furrow-data" {
		t.Errorf("defaults lost: %+v", c)
	}
	if c.SQL.Timeout != 2*time.Minute || c.SQL.MaxResultBytes != 128<<20 {
		t.Errorf("sql %+v", c.SQL)
	}
	if c.Collector.Cookie.Name != "sp2" || !c.Collector.Cookie.Enabled {
		t.Errorf("cookie %+v", c.Collector.Cookie)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"unknown key", "listne: 1.2.3.4:5\n", "field listne not found"},
		{"wrong type", "enrich:\n  workers: many\n", "cannot unmarshal"},
		{"bad duration", "drain_timeout: soon\n", "into time.Duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file is not an error")
	}
	if c, err := Load(write(t, "")); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("an empty file: %v", err)
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	c := Default()
	c.Listen = "nowhere"
	c.LogLevel = "loud"
	c.Log.Fsync = "sometimes"
	c.Enrich.BatchSize = 0
	c.Enrich.Resolver = "resolver.json"
	c.Enrich.IgluDirs = []string{"schemas"}
	c.DuckDB.Nice = 20
	c.DrainTimeout = -time.Second
	c.SQL.Timeout = -time.Second
	c.SQL.MaxResultBytes = -1
	c.Collector.Cookie.SameSite = "sometimes"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"listen", "log_level", "fsync policy", "batch_size", "resolver or iglu_dirs", "duckdb.nice", "drain_timeout", "same_site", "sql.timeout: -1s is negative", "sql.max_result_bytes: -1 is negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

// `furrow config` prints the configuration as YAML; that output must load
// back to the same configuration, so users can start from it.
func TestPrintedConfigLoadsBack(t *testing.T) {
	c := Default()
	c.Enrich.IgluDirs = []string{"a", "b"}
	c.Collector.Paths = map[string]string{"/com.acme/track": "/com.snowplowanalytics.snowplow/tp2"}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(write(t, string(b)))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	// Empty lists and maps load as empty rather than nil; compare what
	// they print as.
	again, _ := yaml.Marshal(got)
	if string(again) != string(b) {
		t.Errorf("round trip changed the configuration:\n%s\nthen\n%s", b, again)
	}
	if got.Enrich.IgluDirs[1] != "b" || got.Collector.Paths["/com.acme/track"] == "" || got.Log.FsyncInterval != time.Second {
		t.Errorf("round trip lost values: %+v", got)
	}
}
