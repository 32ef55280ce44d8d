// Package config holds furrow's configuration: defaults that run
// everything embedded, an optional YAML file on top, then Validate.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/furrow-io/furrow/internal/collector"
	"github.com/furrow-io/furrow/internal/wal"
)

// Config is the whole configuration of `furrow run`.
type Config struct {
	// Listen is the collector's address; Micro's API shares it when it is
	// on (see MicroOn).
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`

	Collector collector.Config `yaml:"collector"`
	Log       LogConfig        `yaml:"log"`
	Enrich    EnrichConfig     `yaml:"enrich"`
	DuckDB    DuckDBConfig     `yaml:"duckdb"`
	Micro     MicroConfig      `yaml:"micro"`
	SQL       SQLConfig        `yaml:"sql"`

	// OutputTSV also prints every enriched event to stdout, one TSV line
	// each, like Micro's --output-tsv.
	OutputTSV bool `yaml:"output_tsv"`
	// DrainTimeout is how long a graceful stop waits for events already
	// collected to be enriched and loaded.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// PprofListen serves Go's profiling endpoints on a separate address.
	PprofListen string `yaml:"pprof_listen"`
	// MemoryLimit is the memory furrow may use, DuckDB's included;
	// app.Memory shares it out.
	MemoryLimit ByteSize `yaml:"memory_limit"`
}

// MinMemoryLimit is the smallest memory_limit furrow accepts.
const MinMemoryLimit = 256 << 20

// LogConfig configures the embedded durable log.
type LogConfig struct {
	Fsync         wal.FsyncPolicy `yaml:"fsync"`
	FsyncInterval time.Duration   `yaml:"fsync_interval"`
	SegmentBytes  int64           `yaml:"segment_bytes"`
}

// EnrichConfig configures the enricher.
type EnrichConfig struct {
	// Resolver is a Snowplow resolver-config JSON file. Without one,
	// furrow uses its built-in protocol schemas, IgluDirs, then Iglu Central.
	Resolver string `yaml:"resolver"`
	// IgluDirs are static repositories on disk (each holding schemas/),
	// searched before Iglu Central.
	IgluDirs []string `yaml:"iglu_dirs"`
	// Workers enrich in parallel; default half the CPUs, at least 1.
	Workers       int            `yaml:"workers"`
	BatchSize     int            `yaml:"batch_size"`
	MaxJSONDepth  int            `yaml:"max_json_depth"`
	FieldLimits   map[string]int `yaml:"field_limits"`
	AcceptInvalid bool           `yaml:"accept_invalid"`
	// EnrichmentsDir holds Snowplow enrichment configurations (*.json),
	// as Snowplow Enrich's enrichments directory does.
	EnrichmentsDir string `yaml:"enrichments_dir"`
}

// DuckDBConfig configures the embedded warehouse.
type DuckDBConfig struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`   // default <data_dir>/furrow.duckdb
	Schema  string `yaml:"schema"` // default atomic
	// Threads DuckDB may use; default 1, leaving the other cores to the
	// collector.
	Threads int `yaml:"threads"`
	// Nice is the scheduling niceness of the loading thread (Linux, 0-19):
	// under load, collection and enrichment come first and the durable
	// log holds the backlog; default 10.
	Nice int `yaml:"nice"`
}

// SQLConfig bounds each query of `furrow sql`: a running furrow applies
// its own values to the queries it answers on its socket, whatever the
// client asks; without a running furrow, `furrow sql` applies them (or
// its flags) to the database file it opens. Zero means no limit.
type SQLConfig struct {
	// Timeout interrupts a query that runs longer, writing of its result
	// included; default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxResultBytes cuts a result whose TSV would be longer: the rows
	// before the limit are written, then an error; default 128 MiB.
	MaxResultBytes int64 `yaml:"max_result_bytes"`
}

// MicroConfig configures the Micro-compatible testing API.
type MicroConfig struct {
	// Enabled is auto (the default), true or false: see Config.MicroOn.
	Enabled Switch `yaml:"enabled"`
	// MaxEvents is how many good and bad events Micro keeps in memory
	// (the counts cover all); 0, the default, leaves it to app.Memory:
	// 10,000, fewer under a small memory_limit.
	MaxEvents int `yaml:"max_events"`
}

// Switch is a setting that is on, off, or left to furrow (auto). In YAML
// it is auto or a boolean: true and false, and the YAML 1.1 spellings
// (yes, on, ...) that a boolean setting accepts.
type Switch string

// The values of a Switch.
const (
	Auto Switch = "auto"
	On   Switch = "true"
	Off  Switch = "false"
)

// UnmarshalYAML reads a boolean or a string. A string other than auto,
// true or false is kept, for Validate to report with the other errors.
func (s *Switch) UnmarshalYAML(n *yaml.Node) error {
	var b bool
	if err := n.Decode(&b); err == nil {
		*s = Off
		if b {
			*s = On
		}
		return nil
	}
	var str string
	if err := n.Decode(&str); err != nil {
		return err
	}
	*s = Switch(str)
	return nil
}

// MarshalYAML writes true and false as booleans, auto as a string.
func (s Switch) MarshalYAML() (any, error) {
	switch s {
	case On:
		return true, nil
	case Off:
		return false, nil
	}
	return string(s), nil
}

func (s Switch) valid() bool { return s == Auto || s == On || s == Off }

// MicroOn tells whether Micro's API is served on the collector's port.
// Micro keeps the raw events it saw (request headers with cookies and
// Authorization, IP addresses, user ids, full URLs) for anyone who asks,
// and anyone can wipe them: it is for local testing. So with
// micro.enabled auto it is on only when listen's host is a loopback
// address (127.0.0.0/8, ::1 or localhost); 0.0.0.0, ::, an empty host
// (all addresses) and any other address or host name turn it off. true
// and false turn it on and off wherever furrow listens.
//
// note, when not empty, is a message for the startup log, to log with the
// listen address: when on, a warning that the API is exposed beyond this
// machine; when off, why.
func (c *Config) MicroOn() (on bool, note string) {
	loopback := isLoopback(c.Listen)
	switch {
	case c.Micro.Enabled == Off:
		return false, ""
	case loopback:
		return true, ""
	case c.Micro.Enabled == On:
		return true, "Micro's API is served on a listen address that is not loopback: anyone who reaches it can read the raw events " +
			"Micro keeps (request headers with cookies and Authorization, IP addresses, user ids, URLs) and wipe them with /micro/reset. " +
			"Micro is for local testing; set micro.enabled to auto or false to turn it off"
	default:
		return false, "Micro's API is off: the listen address is not loopback, and Micro would show the raw events " +
			"(request headers with cookies, IP addresses) to anyone who reaches it. Set micro.enabled to true to serve it there anyway"
	}
}

// isLoopback tells whether a listen address's host is a loopback address
// or localhost. Other host names are not looked up: they could name any
// address, now or later.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Default returns the configuration of `furrow run` with no file.
func Default() Config {
	return Config{
		Listen:       "127.0.0.1:9090",
		DataDir:      "./furrow-data",
		LogLevel:     "info",
		Collector:    collector.DefaultConfig(),
		Log:          LogConfig{Fsync: wal.FsyncInterval, FsyncInterval: time.Second, SegmentBytes: 64 << 20},
		Enrich:       EnrichConfig{BatchSize: 10000, MaxJSONDepth: 40},
		DuckDB:       DuckDBConfig{Enabled: true, Schema: "atomic", Threads: 1, Nice: 10},
		Micro:        MicroConfig{Enabled: Auto},
		SQL:          SQLConfig{Timeout: 30 * time.Second, MaxResultBytes: 128 << 20},
		DrainTimeout: 10 * time.Second,
		MemoryLimit:  512 << 20,
	}
}

// Load reads a YAML file over the defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// DuckDBPath is where the warehouse file lives.
func (c *Config) DuckDBPath() string {
	if c.DuckDB.Path != "" {
		return c.DuckDB.Path
	}
	return filepath.Join(c.DataDir, "furrow.duckdb")
}

// Validate reports every configuration error at once.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if c.Micro.MaxEvents < 0 {
		errs = append(errs, errors.New("micro.max_events must not be negative"))
	}
	if c.MemoryLimit < MinMemoryLimit {
		errs = append(errs, fmt.Errorf("memory_limit: %s is below the minimum of %s", c.MemoryLimit, ByteSize(MinMemoryLimit)))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if err := c.Collector.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := (wal.Options{Dir: "x", Fsync: c.Log.Fsync}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Enrich.BatchSize <= 0 {
		errs = append(errs, errors.New("enrich.batch_size must be positive"))
	}
	if c.Enrich.Resolver != "" && len(c.Enrich.IgluDirs) > 0 {
		errs = append(errs, errors.New("enrich: set either resolver or iglu_dirs, not both (add directories to the resolver config as embedded repositories)"))
	}
	if c.DuckDB.Threads < 0 {
		errs = append(errs, errors.New("duckdb.threads must not be negative"))
	}
	if c.DuckDB.Nice < 0 || c.DuckDB.Nice > 19 {
		errs = append(errs, errors.New("duckdb.nice must be between 0 and 19"))
	}
	if c.SQL.Timeout < 0 {
		errs = append(errs, fmt.Errorf("sql.timeout: %s is negative (0 means no limit)", c.SQL.Timeout))
	}
	if c.SQL.MaxResultBytes < 0 {
		errs = append(errs, fmt.Errorf("sql.max_result_bytes: %d is negative (0 means no limit)", c.SQL.MaxResultBytes))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain_timeout must not be negative"))
	}
	if !c.Micro.Enabled.valid() {
		errs = append(errs, fmt.Errorf("micro.enabled: %q is not auto, true or false", c.Micro.Enabled))
	}
	return errors.Join(errs...)
}
