package config

import (
	"errors"
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
	if c.Listen != "127.0.0.1:9090" || c.DataDir != "./furrow-data" || !c.DuckDB.Enabled || c.Micro.Enabled != Auto {
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
		{"unknown key", "listne: 1.2.3.4:5\n", ":1: listne: unknown setting"},
		{"unknown key in a section", "duckdb:\n  nicee: 3\n", ":2: duckdb.nicee: unknown setting"},
		{"wrong type", "enrich:\n  workers: many\n", ":2: enrich.workers: cannot unmarshal !!str `many` into int"},
		{"bad duration", "drain_timeout: soon\n", ":1: drain_timeout: cannot unmarshal !!str `soon` into time.Duration"},
		{"not YAML", "listen: [\n", "did not find expected node content"},
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

// Every setting that does not decode is reported, each with its line and
// name, and the rest of the file is still loaded.
func TestLoadReportsEveryDecodeError(t *testing.T) {
	file := write(t, `listne: x
enrich:
  workers: many
  batch_sise: 3
memory_limit: lots
micro:
  enabled: [true]
drain_timeout: soon
listen: 0.0.0.0:1
collector: {cookie: {name: sp2, expiration: never}}
duckdb:
  nice: 5
`)
	c, err := Load(file)
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a *DecodeError", err)
	}
	want := []string{
		file + ":1: listne: unknown setting",
		file + ":3: enrich.workers: cannot unmarshal !!str `many` into int",
		file + ":4: enrich.batch_sise: unknown setting",
		file + `:5: memory_limit: "lots" is not a size (a number of bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB)`,
		file + ":7: micro.enabled: cannot unmarshal !!seq into string",
		file + ":8: drain_timeout: cannot unmarshal !!str `soon` into time.Duration",
		file + ":10: collector.cookie.expiration: cannot unmarshal !!str `never` into time.Duration",
	}
	var got []string
	for _, e := range de.Errs {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("message %q", err.Error())
	}
	// The rest is loaded; what failed keeps its default.
	if c.Listen != "0.0.0.0:1" || c.DuckDB.Nice != 5 || c.Collector.Cookie.Name != "sp2" || c.Enrich.Workers != 0 || c.MemoryLimit != Default().MemoryLimit {
		t.Errorf("partial config %+v", c)
	}
}

func TestValidateMessages(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(c *Config)
		want string
	}{
		{"listen", func(c *Config) { c.Listen = "nowhere" }, "listen: address nowhere: missing port in address"},
		{"listen port", func(c *Config) { c.Listen = "127.0.0.1:99999" }, `listen: port "99999" is not a port number (0-65535) or a known service`},
		{"pprof_listen", func(c *Config) { c.PprofListen = "6060" }, "pprof_listen: address 6060: missing port in address"},
		{"data_dir", func(c *Config) { c.DataDir = "" }, "data_dir is required"},
		{"log_level", func(c *Config) { c.LogLevel = "loud" }, `log_level: "loud" is not debug, info, warn or error`},
		{"drain_timeout", func(c *Config) { c.DrainTimeout = -time.Second }, "drain_timeout: -1s is negative"},
		{"log.fsync", func(c *Config) { c.Log.Fsync = "sometimes" }, `log.fsync: unknown fsync policy "sometimes" (always, interval, never)`},
		{"log.segment_bytes", func(c *Config) { c.Log.SegmentBytes = -1 }, "log.segment_bytes: -1 is negative"},
		{"enrich.batch_size", func(c *Config) { c.Enrich.BatchSize = 0 }, "enrich.batch_size: 0 is not positive"},
		{"enrich.workers", func(c *Config) { c.Enrich.Workers = -2 }, "enrich.workers: -2 is negative (0: half the CPUs)"},
		{"enrich.iglu_dirs", func(c *Config) { c.Enrich.Resolver, c.Enrich.IgluDirs = "r.json", []string{"s"} }, "enrich.iglu_dirs: set either resolver or iglu_dirs, not both (add directories to the resolver config as embedded repositories)"},
		{"enrich.field_limits name", func(c *Config) { c.Enrich.FieldLimits = map[string]int{"dvce_created_tstamp": 3} }, `enrich.field_limits: "dvce_created_tstamp" is not a string column of atomic.events`},
		{"enrich.field_limits value", func(c *Config) { c.Enrich.FieldLimits = map[string]int{"app_id": 0} }, "enrich.field_limits.app_id: 0 is not positive"},
		{"duckdb.nice", func(c *Config) { c.DuckDB.Nice = 25 }, "duckdb.nice: 25 is not between 0 and 19"},
		{"duckdb.threads", func(c *Config) { c.DuckDB.Threads = -1 }, "duckdb.threads: -1 is negative (0 lets DuckDB decide)"},
		{"micro.enabled", func(c *Config) { c.Micro.Enabled = "maybe" }, `micro.enabled: "maybe" is not auto, true or false`},
		{"micro.max_events", func(c *Config) { c.Micro.MaxEvents = -1 }, "micro.max_events: -1 is negative (0: the default)"},
		{"sql.timeout", func(c *Config) { c.SQL.Timeout = -time.Second }, "sql.timeout: -1s is negative (0 means no limit)"},
		{"collector, named by itself", func(c *Config) { c.Collector.Cookie.SameSite = "x" }, `collector.cookie.same_site: "x" is not None, Lax or Strict`},
		{"collector, section-wide", func(c *Config) { c.Collector.MaxRecordBytes = 0 }, "collector: max_record_bytes, max_payload_size and drop_payload_size must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.set(&c)
			err := c.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate: %v\nwant %s", err, tt.want)
			}
		})
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
	c.Micro.Enabled = "maybe"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"listen", "log_level", "fsync policy", "batch_size", "resolver or iglu_dirs", "duckdb.nice", "drain_timeout", "same_site",
		"sql.timeout: -1s is negative", "sql.max_result_bytes: -1 is negative", `micro.enabled: "maybe"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	// One error per setting, one per line.
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 11 || strings.Count(err.Error(), "\n") != 10 {
		t.Errorf("%d errors, want 11:\n%v", n, err)
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

// Micro is served where only this machine reaches it, unless the
// configuration says otherwise.
func TestMicroOn(t *testing.T) {
	tests := []struct {
		listen  string
		enabled Switch
		on      bool
		note    string // what the note mentions; "" for no note
	}{
		{"127.0.0.1:9090", Auto, true, ""},
		{"127.3.4.5:9090", Auto, true, ""},
		{"[::1]:9090", Auto, true, ""},
		{"[::ffff:127.0.0.1]:9090", Auto, true, ""},
		{"localhost:9090", Auto, true, ""},
		{"LocalHost:0", Auto, true, ""},
		{"0.0.0.0:9090", Auto, false, "not loopback"},
		{"[::]:9090", Auto, false, "not loopback"},
		{":9090", Auto, false, "Set admin.listen"},
		{"192.0.2.7:9090", Auto, false, "Micro's API is off"},
		{"[fe80::1%eth0]:9090", Auto, false, "not loopback"},
		{"collector.internal:9090", Auto, false, "not loopback"},
		{"localhost.example.com:9090", Auto, false, "not loopback"},
		{"127.0.0.1:9090", On, true, ""},
		{"0.0.0.0:9090", On, false, "Set admin.listen"},
		{":9090", On, false, "cookies and Authorization"},
		{"192.0.2.7:9090", On, false, "not served"},
		{"127.0.0.1:9090", Off, false, ""},
		{"0.0.0.0:9090", Off, false, ""},
	}
	for _, tt := range tests {
		c := Default()
		c.Listen, c.Micro.Enabled = tt.listen, tt.enabled
		on, note := c.MicroOn()
		if !tt.on && tt.enabled != Off && !isLoopback(tt.listen) {
			// With the admin listener, Micro is served there instead.
			c.Admin.Listen = "127.0.0.1:9443"
			if on, note := c.MicroOn(); !on || !strings.Contains(note, "admin listener") {
				t.Errorf("listen %s with admin.listen: on %v, note %q", tt.listen, on, note)
			}
		}
		if on != tt.on || (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) {
			t.Errorf("listen %s, micro.enabled %s: on %v, note %q; want %v and a note with %q", tt.listen, tt.enabled, on, note, tt.on, tt.note)
		}
	}
}

// micro.enabled was a boolean: files that say true or false keep working,
// and `furrow config` prints auto.
func TestMicroEnabledYAML(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want Switch
	}{
		{"true", On}, {"false", Off}, {"auto", Auto}, {`"auto"`, Auto}, {`"true"`, On}, {"yes", On}, {"off", Off},
	} {
		c, err := Load(write(t, "micro:\n  enabled: "+tt.yaml+"\n"))
		if err != nil || c.Micro.Enabled != tt.want {
			t.Errorf("enabled: %s loads as %q, %v; want %q", tt.yaml, c.Micro.Enabled, err, tt.want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("enabled: %s: %v", tt.yaml, err)
		}
	}
	for _, bad := range []string{"maybe", `""`, "1"} {
		c, err := Load(write(t, "micro:\n  enabled: "+bad+"\n"))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), "micro.enabled") {
			t.Errorf("enabled: %s: error %v, want one about micro.enabled", bad, err)
		}
	}
	if _, err := Load(write(t, "micro:\n  enabled: [true]\n")); err == nil {
		t.Error("enabled: [true] loads")
	}
	for s, want := range map[Switch]string{Auto: "enabled: auto\n", On: "enabled: true\n", Off: "enabled: false\n"} {
		b, err := yaml.Marshal(MicroConfig{Enabled: s})
		if err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("%q prints as %q, %v; want %q", s, b, err, want)
		}
	}
}
