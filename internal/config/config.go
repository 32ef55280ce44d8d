package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/furrow-io/furrow/internal/collector"
	"github.com/furrow-io/furrow/internal/pseudo"
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
	// Pseudonymize replaces every value outside its allowlists by its
	// HMAC-SHA256 before anything is stored (see internal/pseudo).
	Pseudonymize pseudo.Config `yaml:"pseudonymize"`
	// Destinations are where events are loaded; absent, the duckdb
	// section's (see destinations.go and EffectiveDestinations).
	Destinations Destinations `yaml:"destinations,omitempty"`
	// Streams joins the stages: the embedded log, or Kafka for the roles
	// run apart (furrow collect, ...).
	Streams StreamsConfig `yaml:"streams"`
	// TLS serves the collector over HTTPS (absent: plain HTTP, the
	// default on loopback).
	TLS TLSConfig `yaml:"tls"`
	// Admin is the admin surface (see AdminConfig).
	Admin AdminConfig `yaml:"admin"`

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

// DefaultClearAge is log.max_segment_age with pseudonymization on.
const DefaultClearAge = time.Minute

// EffectiveMaxSegmentAge is the segment age the logs are opened with.
func (c *Config) EffectiveMaxSegmentAge() time.Duration {
	if c.Log.MaxSegmentAge == 0 && c.Pseudonymize.Enabled {
		return DefaultClearAge
	}
	return c.Log.MaxSegmentAge
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
	case c.Admin.Listen != "":
		return true, "Micro's API is served on the admin listener (admin.listen), behind its authentication, " +
			"and not on the collector's port, which is not loopback"
	case c.Micro.Enabled == On:
		return false, "Micro's API is not served: the listen address is not loopback, and Micro would show the raw events " +
			"(request headers with cookies and Authorization, IP addresses, user ids) to anyone who reaches the collector. " +
			"Set admin.listen to serve it on the admin listener, behind its TLS and authentication"
	default:
		return false, "Micro's API is off: the listen address is not loopback, and Micro would show the raw events " +
			"(request headers with cookies, IP addresses) to anyone who reaches it. Set admin.listen to serve it on the authenticated admin listener"
	}
}

// IsLoopback tells whether a listen address is on loopback only (see
// isLoopback).
func IsLoopback(listen string) bool { return isLoopback(listen) }

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
		Log:          DefaultLogConfig(),
		Enrich:       DefaultEnrichConfig(),
		DuckDB:       DefaultDuckDBConfig(),
		Micro:        DefaultMicroConfig(),
		SQL:          DefaultSQLConfig(),
		Pseudonymize: pseudo.Default(),
		Streams:      DefaultStreamsConfig(),
		Admin:        DefaultAdminConfig(),
		DrainTimeout: 10 * time.Second,
		MemoryLimit:  512 << 20,
	}
}

// DuckDBPath is where the warehouse file lives.
// With a destinations list, it is the first duckdb destination's.
func (c *Config) DuckDBPath() string {
	if c.Destinations != nil {
		for _, d := range c.EffectiveDestinations() {
			if d.DuckDB != nil {
				return d.DuckDB.Path
			}
		}
	}
	if c.DuckDB.Path != "" {
		return c.DuckDB.Path
	}
	return filepath.Join(c.DataDir, "furrow.duckdb")
}

// Validate reports every configuration error at once, each naming its
// setting as the file does (duckdb.nice: ...). It reads nothing but c:
// what needs the disk is app.Check's.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, validateAddr("listen", c.Listen, false)...)
	errs = append(errs, validateAddr("pprof_listen", c.PprofListen, true)...)
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout: %s is negative", c.DrainTimeout))
	}
	if c.MemoryLimit < MinMemoryLimit {
		errs = append(errs, fmt.Errorf("memory_limit: %s is below the minimum of %s", c.MemoryLimit, ByteSize(MinMemoryLimit)))
	}
	for _, s := range []struct {
		name string
		err  error
	}{
		{"collector", c.Collector.Validate()},
		{"log", c.Log.Validate()},
		{"enrich", c.Enrich.Validate()},
		{"duckdb", c.DuckDB.Validate()},
		{"micro", c.Micro.Validate()},
		{"sql", c.SQL.Validate()},
		{"pseudonymize", c.Pseudonymize.Validate()},
		{"streams", c.Streams.Validate()},
		{"tls", c.TLS.Validate()},
		{"admin", c.Admin.Validate()},
	} {
		errs = append(errs, within(s.name, s.err)...)
	}
	errs = append(errs, c.validateDestinations()...)
	return errors.Join(errs...)
}

// validateAddr checks a listen address: host:port, the port a number up
// to 65535 or a service name. The host is not looked up.
func validateAddr(name, addr string, optional bool) []error {
	if addr == "" && optional {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", name, err)}
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return []error{fmt.Errorf("%s: port %q is not a port number (0-65535) or a known service", name, port)}
	}
	return nil
}

// within names a section's errors: each error of err (a join is taken
// apart) that does not start with the section's name already gets
// "name." before it. The collector names its settings itself.
func within(name string, err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, within(name, e)...)
		}
		return errs
	}
	msg := err.Error()
	if strings.HasPrefix(msg, name+".") || strings.HasPrefix(msg, name+":") {
		return []error{err}
	}
	return []error{fmt.Errorf("%s.%w", name, err)}
}
