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
  furrow config [flags]   print the effective configuration as YAML
  furrow sql [flags] SQL  query the DuckDB warehouse (through furrow while it runs)
  furrow version          print the version

Run 'furrow run -h' for the flags.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "furrow:", err)
		os.Exit(1)
	}
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func loadConfig(name string, args []string, stderr io.Writer) (config.Config, error) {
	fs := flag.NewFlagSet("furrow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration file (defaults apply to anything it leaves out)")
	listen := fs.String("listen", "", "collector address (default 127.0.0.1:9090)")
	dataDir := fs.String("data-dir", "", "directory for the durable log and the DuckDB warehouse (default ./furrow-data)")
	resolver := fs.String("iglu", "", "Iglu resolver-config JSON file")
	var igluDirs stringList
	fs.Var(&igluDirs, "iglu-dir", "static Iglu repository directory holding schemas/ (repeatable)")
	enrichments := fs.String("enrichments", "", "directory of Snowplow enrichment configurations (*.json)")
	outputTSV := fs.Bool("output-tsv", false, "also print enriched events to stdout as TSV")
	noDuck := fs.Bool("no-duckdb", false, "do not load events into DuckDB")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	pprof := fs.String("pprof-listen", "", "serve Go's net/http/pprof profiles on this address (for diagnosis)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return cfg, err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *resolver != "" {
		cfg.Enrich.Resolver = *resolver
	}
	if len(igluDirs) > 0 {
		cfg.Enrich.IgluDirs = append(cfg.Enrich.IgluDirs, igluDirs...)
	}
	if *enrichments != "" {
		cfg.Enrich.EnrichmentsDir = *enrichments
	}
	if *outputTSV {
		cfg.OutputTSV = true
	}
	if *noDuck {
		cfg.DuckDB.Enabled = false
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	if *pprof != "" {
		cfg.PprofListen = *pprof
	}
	return cfg, cfg.Validate()
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
		cfg, err := loadConfig("config", args[1:], stderr)
		if err != nil {
			return err
		}
		enc := yaml.NewEncoder(stdout)
		enc.SetIndent(2)
		return enc.Encode(cfg)
	case "sql":
		err := runSQL(ctx, args[1:], stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	case "run":
		cfg, err := loadConfig("run", args[1:], stderr)
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		tuneRuntime(os.Getenv, app.Memory(cfg).GoHeap)
		privateUmask()
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: app.ParseLevel(cfg.LogLevel)}))
		slog.SetDefault(log)
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		a, err := app.New(ctx, cfg, log)
		if err != nil {
			return err
		}
		// The Go heap's limit follows DuckDB's use, unless GOMEMLIMIT
		// fixes it.
		a.GovernMemory = os.Getenv("GOMEMLIMIT") == ""
		return a.Run(ctx)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
