package config

import (
	"errors"
	"fmt"
	"slices"
	"time"

	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/wal"
)

// Each section of the file has a type with the same shape as
// collector.Config: a Default... function with the section's defaults, and
// a Validate method reporting every error of the section at once, each
// naming its setting relative to the section ("nice: ..."); Config.Validate
// adds the section's name ("duckdb.nice: ...").

// LogConfig configures the embedded durable log.
type LogConfig struct {
	Fsync         wal.FsyncPolicy `yaml:"fsync"`
	FsyncInterval time.Duration   `yaml:"fsync_interval"`
	SegmentBytes  int64           `yaml:"segment_bytes"`
	// MaxSegmentAge closes the segment being written once its first
	// record is that old, so processed payloads leave the disk within
	// about that time even when no more traffic comes (see
	// wal.Options.MaxSegmentAge). 0, the default, means 1m with
	// pseudonymization on (the log is the one place payloads are in
	// clear) and off otherwise; see Config.EffectiveMaxSegmentAge.
	MaxSegmentAge time.Duration `yaml:"max_segment_age"`
}

// DefaultLogConfig is the log section's defaults: fsync every second,
// 64 MiB segments.
func DefaultLogConfig() LogConfig {
	return LogConfig{Fsync: wal.FsyncInterval, FsyncInterval: time.Second, SegmentBytes: 64 << 20}
}

// Validate reports the section's errors, as wal.Open would.
func (c *LogConfig) Validate() error {
	var errs []error
	if err := (wal.Options{Dir: "x", Fsync: c.Fsync}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("fsync: unknown fsync policy %q (always, interval, never)", c.Fsync))
	}
	if c.FsyncInterval < 0 {
		errs = append(errs, fmt.Errorf("fsync_interval: %s is negative", c.FsyncInterval))
	}
	if c.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("segment_bytes: %d is negative", c.SegmentBytes))
	}
	if c.MaxSegmentAge < 0 {
		errs = append(errs, fmt.Errorf("max_segment_age: %s is negative", c.MaxSegmentAge))
	}
	return errors.Join(errs...)
}

// EnrichConfig configures the enricher.
type EnrichConfig struct {
	// Resolver is a Snowplow resolver-config JSON file. Without one,
	// furrow uses its built-in protocol schemas, IgluDirs, then Iglu Central.
	Resolver string `yaml:"resolver"`
	// IgluDirs are static repositories on disk (each holding schemas/),
	// searched before Iglu Central.
	IgluDirs []string `yaml:"iglu_dirs"`
	// Workers enrich in parallel; default (0) half the CPUs, at least 1.
	Workers       int            `yaml:"workers"`
	BatchSize     int            `yaml:"batch_size"`
	MaxJSONDepth  int            `yaml:"max_json_depth"`
	FieldLimits   map[string]int `yaml:"field_limits"`
	AcceptInvalid bool           `yaml:"accept_invalid"`
	// EnrichmentsDir holds Snowplow enrichment configurations (*.json),
	// as Snowplow Enrich's enrichments directory does.
	EnrichmentsDir string `yaml:"enrichments_dir"`
}

// DefaultEnrichConfig is the enrich section's defaults.
func DefaultEnrichConfig() EnrichConfig {
	return EnrichConfig{BatchSize: 10000, MaxJSONDepth: 40}
}

// Validate reports the section's errors. That resolver and iglu_dirs
// exist is app.Check's to see: it reads the disk.
func (c *EnrichConfig) Validate() error {
	var errs []error
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("batch_size: %d is not positive", c.BatchSize))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers: %d is negative (0: half the CPUs)", c.Workers))
	}
	if c.MaxJSONDepth < 0 {
		errs = append(errs, fmt.Errorf("max_json_depth: %d is negative (0: the default, 40)", c.MaxJSONDepth))
	}
	if c.Resolver != "" && len(c.IgluDirs) > 0 {
		errs = append(errs, errors.New("iglu_dirs: set either resolver or iglu_dirs, not both (add directories to the resolver config as embedded repositories)"))
	}
	// As enrich.Options.Validate checks them, but all at once.
	names := make([]string, 0, len(c.FieldLimits))
	for name := range c.FieldLimits {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if i, ok := ev.Index(name); !ok || ev.Fields[i].Type != ev.String {
			errs = append(errs, fmt.Errorf("field_limits: %q is not a string column of atomic.events", name))
		} else if n := c.FieldLimits[name]; n <= 0 {
			errs = append(errs, fmt.Errorf("field_limits.%s: %d is not positive", name, n))
		}
	}
	return errors.Join(errs...)
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

// DefaultDuckDBConfig is the duckdb section's defaults: on, in schema
// atomic, one thread at niceness 10.
func DefaultDuckDBConfig() DuckDBConfig {
	return DuckDBConfig{Enabled: true, Schema: "atomic", Threads: 1, Nice: 10}
}

// Validate reports the section's errors.
func (c *DuckDBConfig) Validate() error {
	var errs []error
	if c.Threads < 0 {
		errs = append(errs, fmt.Errorf("threads: %d is negative (0 lets DuckDB decide)", c.Threads))
	}
	if c.Nice < 0 || c.Nice > 19 {
		errs = append(errs, fmt.Errorf("nice: %d is not between 0 and 19", c.Nice))
	}
	return errors.Join(errs...)
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

// DefaultSQLConfig is the sql section's defaults: 30 s and 128 MiB.
func DefaultSQLConfig() SQLConfig {
	return SQLConfig{Timeout: 30 * time.Second, MaxResultBytes: 128 << 20}
}

// Validate reports the section's errors.
func (c *SQLConfig) Validate() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s is negative (0 means no limit)", c.Timeout))
	}
	if c.MaxResultBytes < 0 {
		errs = append(errs, fmt.Errorf("max_result_bytes: %d is negative (0 means no limit)", c.MaxResultBytes))
	}
	return errors.Join(errs...)
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

// DefaultMicroConfig is the micro section's defaults: auto.
func DefaultMicroConfig() MicroConfig {
	return MicroConfig{Enabled: Auto}
}

// Validate reports the section's errors.
func (c *MicroConfig) Validate() error {
	var errs []error
	if !c.Enabled.valid() {
		errs = append(errs, fmt.Errorf("enabled: %q is not auto, true or false", c.Enabled))
	}
	if c.MaxEvents < 0 {
		errs = append(errs, fmt.Errorf("max_events: %d is negative (0: the default)", c.MaxEvents))
	}
	return errors.Join(errs...)
}
