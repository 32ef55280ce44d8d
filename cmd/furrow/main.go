// Command furrow runs a Snowplow-compatible event pipeline in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/furrow-io/furrow/internal/app"
	"github.com/furrow-io/furrow/internal/config"
)

const usage = `furrow: a Snowplow-compatible event pipeline in one binary.

Usage:
  furrow run [flags]      collect, enrich and load events (embedded defaults)
  furrow collect [flags]  only collect: log each payload, forward the log to Kafka
                          (streams.type: kafka)
  furrow enrich [flags]   only enrich: raw topic -> enriched and bad topics, in a
                          consumer group (streams.type: kafka)
  furrow load [flags]     only load: enriched and bad topics -> the destinations
                          (duckdb, postgres, files, s3), exactly once (streams.type: kafka)
  furrow config [flags]   print the effective configuration as YAML
  furrow config --validate FILE
                          check a configuration as 'furrow run' would
  furrow sql [flags] SQL  query the DuckDB warehouse (through furrow while it runs)
  furrow snowflake sql --destination NAME [--config FILE]  print the Snowflake SQL that loads a files or s3 destination
  furrow pseudonymize [--config FILE] VALUE...
                          print the pseudonym of each value under the configured key
  furrow admin new-token  make an API token for admin.auth, and its hash
  furrow admin hash-token < FILE
                          print the hash (admin.auth.token_hashes) of a token
  furrow version          print the version

Run 'furrow run -h' for the flags.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		// One error a line, as errors.Join writes them.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "furrow:", line)
		}
		os.Exit(1)
	}
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// configFlags are the flags of the commands that read the configuration:
// a file, and settings over it.
type configFlags struct {
	file, listen, dataDir, resolver, logLevel, pprof *string
	enrichments                                      *string
	igluDirs                                         stringList
	outputTSV, noDuck                                *bool
}

func addConfigFlags(fs *flag.FlagSet) *configFlags {
	f := &configFlags{}
	f.file = fs.String("config", "", "YAML configuration file (defaults apply to anything it leaves out)")
	f.listen = fs.String("listen", "", "collector address (default 127.0.0.1:9090)")
	f.dataDir = fs.String("data-dir", "", "directory for the durable log and the DuckDB warehouse (default ./furrow-data)")
	f.resolver = fs.String("iglu", "", "Iglu resolver-config JSON file")
	fs.Var(&f.igluDirs, "iglu-dir", "static Iglu repository directory holding schemas/ (repeatable)")
	f.enrichments = fs.String("enrichments", "", "directory of Snowplow enrichment configurations (*.json)")
	f.outputTSV = fs.Bool("output-tsv", false, "also print enriched events to stdout as TSV")
	f.noDuck = fs.Bool("no-duckdb", false, "do not load events into DuckDB")
	f.logLevel = fs.String("log-level", "", "debug, info, warn or error")
	f.pprof = fs.String("pprof-listen", "", "serve Go's net/http/pprof profiles on this address (for diagnosis)")
	return f
}

// load reads the file, then applies the flags over it. Its error is
// config.Load's: when that is a *config.DecodeError, cfg holds the rest
// of the file and the flags, for checking (see checkConfig).
func (f *configFlags) load() (config.Config, error) {
	cfg, err := config.Load(*f.file)
	if err != nil && !errors.As(err, new(*config.DecodeError)) {
		return cfg, err
	}
	if *f.listen != "" {
		cfg.Listen = *f.listen
	}
	if *f.dataDir != "" {
		cfg.DataDir = *f.dataDir
	}
	if *f.resolver != "" {
		cfg.Enrich.Resolver = *f.resolver
	}
	if len(f.igluDirs) > 0 {
		cfg.Enrich.IgluDirs = append(cfg.Enrich.IgluDirs, f.igluDirs...)
	}
	if *f.enrichments != "" {
		cfg.Enrich.EnrichmentsDir = *f.enrichments
	}
	if *f.outputTSV {
		cfg.OutputTSV = true
	}
	if *f.noDuck {
		cfg.DuckDB.Enabled = false
	}
	if *f.logLevel != "" {
		cfg.LogLevel = *f.logLevel
	}
	if *f.pprof != "" {
		cfg.PprofListen = *f.pprof
	}
	return cfg, err
}

// checkConfig decides for both `furrow run` and `furrow config
// --validate`: a configuration is accepted when its file loaded (loadErr,
// from configFlags.load, is nil) and app.Check passes. fileErr is
// loadErr, whose errors name the file; when that is only settings that did
// not decode, the rest is checked too, and checkErr holds app.Check's
// errors, which do not name it.
func checkConfig(cfg config.Config, loadErr error) (fileErr, checkErr error) {
	if loadErr != nil && !errors.As(loadErr, new(*config.DecodeError)) {
		return loadErr, nil
	}
	return loadErr, app.Check(cfg)
}

// runConfig is `furrow config`: print the effective configuration, or
// with --validate check it as `furrow run` would.
func runConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("furrow config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: furrow config [flags]
       furrow config --validate [flags] [FILE]

Prints the effective configuration (the defaults, then the file, then the
flags) as YAML, secrets redacted. With --validate, checks it as 'furrow run'
does before it starts, changing nothing, then prints "FILE: ok", or every
error, one a line, and exits 1. FILE is the same as --config FILE.`)
		fs.PrintDefaults()
	}
	f := addConfigFlags(fs)
	validate := fs.Bool("validate", false, "check the configuration as 'furrow run' would and report every error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *validate && fs.NArg() == 1 && *f.file == "" {
		*f.file = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := f.load()
	if !*validate {
		if err != nil && !errors.As(err, new(*config.DecodeError)) {
			return err
		}
		// The disk is app.Check's: printing needs only what the settings say.
		if err := errors.Join(err, cfg.Validate()); err != nil {
			return err
		}
		enc := yaml.NewEncoder(stdout)
		enc.SetIndent(2)
		return enc.Encode(cfg)
	}
	name := *f.file
	if name == "" {
		name = "the default configuration"
	}
	fileErr, checkErr := checkConfig(cfg, err)
	lines := configErrors(*f.file, fileErr, checkErr)
	// Warnings do not fail the check: furrow run logs them and starts.
	if cfg.Pseudonymize.Enabled && cfg.Pseudonymize.KeyFile != "" {
		if _, warnings, _ := cfg.Pseudonymize.LoadKey(); len(warnings) > 0 {
			for _, w := range warnings {
				fmt.Fprintf(stderr, "%s: warning: %s\n", name, w)
			}
		}
	}
	if len(lines) == 0 {
		fmt.Fprintf(stdout, "%s: ok\n", name)
		return nil
	}
	for _, l := range lines {
		fmt.Fprintln(stderr, l)
	}
	if len(lines) == 1 {
		return fmt.Errorf("%s: 1 error", name)
	}
	return fmt.Errorf("%s: %d errors", name, len(lines))
}

// configErrors are checkConfig's errors, one a line, each naming file
// (when there is one) then the setting.
func configErrors(file string, fileErr, checkErr error) []string {
	var lines []string
	for _, e := range leaves(fileErr) {
		lines = append(lines, e.Error())
	}
	for _, e := range leaves(checkErr) {
		if file != "" {
			lines = append(lines, file+": "+e.Error())
		} else {
			lines = append(lines, e.Error())
		}
	}
	return lines
}

// leaves takes err apart into the errors it joins.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, leaves(e)...)
		}
		return errs
	}
	return []error{err}
}

// defaultGCPercent is the GC setting of 'furrow run' unless GOGC is
// set: furrow's heap is mostly short-lived batches; collecting a fifth
// as often as Go's default saves CPU.
const defaultGCPercent = 400

// tuneRuntime applies the GC settings that getenv leaves unset: GC at
// defaultGCPercent, and a soft memory limit of goHeap bytes (the Go
// heap's share of memory_limit, see app.Memory). With GC at 400%, a
// backlog of large batches would otherwise let the heap grow to several
// times what is live before a collection; the limit makes the GC run
// sooner once the heap nears it.
func tuneRuntime(getenv func(string) string, goHeap int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(goHeap)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "furrow", app.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "config":
		err := runConfig(args[1:], stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "pseudonymize":
		err := runPseudonymize(args[1:], os.Stdin, stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "snowflake":
		return runSnowflake(args[1:], stdout, stderr)
	case "admin":
		return runAdmin(args[1:], os.Stdin, stdout)
	case "sql":
		err := runSQL(ctx, args[1:], stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "run":
		return runRole(ctx, app.RoleRun, args[1:], stderr)
	case "collect":
		return runRole(ctx, app.RoleCollect, args[1:], stderr)
	case "enrich":
		return runRole(ctx, app.RoleEnrich, args[1:], stderr)
	case "load":
		return runRole(ctx, app.RoleLoad, args[1:], stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// runRole runs furrow run, or one role of the pipeline (furrow collect).
func runRole(ctx context.Context, role app.Role, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("furrow "+string(role), flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := addConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := f.load()
	fileErr, checkErr := checkConfig(cfg, err)
	if lines := configErrors(*f.file, fileErr, checkErr); len(lines) > 0 {
		return errors.New(strings.Join(lines, "\n"))
	}
	tuneRuntime(os.Getenv, app.Memory(cfg).GoHeap)
	privateUmask()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: app.ParseLevel(cfg.LogLevel)}))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.NewRole(ctx, cfg, log, role)
	if err != nil {
		return err
	}
	// The Go heap's limit follows DuckDB's use, unless GOMEMLIMIT
	// fixes it.
	a.GovernMemory = os.Getenv("GOMEMLIMIT") == ""
	return a.Run(ctx)
}
