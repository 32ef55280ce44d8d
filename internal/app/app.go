// Package app wires furrow's components into the running pipeline of
// `furrow run`: collector -> durable log -> enricher -> warehouse, with the
// Micro API on the collector's port.
package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sync/errgroup"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/collector"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
	"github.com/furrow-io/furrow/internal/micro"
	"github.com/furrow-io/furrow/internal/pipeline"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/wal"
)

// Version is furrow's version, set at build time with
// -ldflags "-X github.com/furrow-io/furrow/internal/app.Version=...".
var Version = "0.1.0-dev"

// Processor is how furrow signs its bad rows.
func Processor() badrows.Processor {
	v := Version
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0.0.0-" + v
	}
	return badrows.Processor{Artifact: "furrow", Version: v}
}

// Resolver builds the Iglu resolver the configuration asks for.
func Resolver(c *config.Config) (*iglu.Resolver, error) {
	if c.Enrich.Resolver != "" {
		b, err := os.ReadFile(c.Enrich.Resolver)
		if err != nil {
			return nil, err
		}
		o, err := iglu.ParseResolverConfig(b, nil)
		if err != nil {
			return nil, err
		}
		// The protocol schemas are always available, after the user's
		// repositories.
		o.Repositories = append(o.Repositories, iglu.Builtin("", 1<<30, nil))
		return iglu.NewResolver(o), nil
	}
	repos := []iglu.Repository{iglu.Builtin("", 0, []string{"com.snowplowanalytics.snowplow"})}
	for i, d := range c.Enrich.IgluDirs {
		r, err := iglu.NewDirRepo(d, d, i+1, nil)
		if err != nil {
			return nil, err
		}
		repos = append(repos, r)
	}
	repos = append(repos, iglu.NewHTTPRepo("Iglu Central", iglu.IgluCentralURI, "", 0, nil, nil))
	return iglu.NewResolver(iglu.ResolverOptions{Repositories: repos, CacheSize: 500}), nil
}

const backlogHelp = "Bytes in a log not yet processed and stored: collected payloads waiting for enrichment (raw), size violations waiting for loading (collector-bad)."

// App is a running furrow.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	raw, bad *wal.Log
	store    *duckdb.Store
	microS   *micro.Store
	server   *fasthttp.Server
	listener net.Listener
	// The local socket: `furrow sql` and metrics (see Socket).
	sockListener net.Listener
	sockServer   *http.Server
	enricher     *enrich.Enricher
	resolver     *iglu.Resolver
	stdout       *tsvWriter
}

// New opens everything; Run starts serving.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			a.closeAll(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	var err error
	walOpts := func(name string) wal.Options {
		return wal.Options{Dir: filepath.Join(cfg.DataDir, "log", name), Fsync: cfg.Log.Fsync,
			FsyncInterval: cfg.Log.FsyncInterval, SegmentBytes: cfg.Log.SegmentBytes, MaxRecordBytes: max(cfg.Collector.MaxRecordBytes, cfg.Collector.MaxPayloadSize) + 1<<16}
	}
	if a.raw, err = wal.Open(walOpts("raw")); err != nil {
		return nil, err
	}
	if a.bad, err = wal.Open(walOpts("collector-bad")); err != nil {
		return nil, err
	}
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_log_backlog_bytes", ConstLabels: prometheus.Labels{"log": "raw"},
			Help: backlogHelp},
			func() float64 { return float64(a.raw.Lag("enrich")) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_log_backlog_bytes", ConstLabels: prometheus.Labels{"log": "collector-bad"},
			Help: backlogHelp},
			func() float64 { return float64(a.bad.Lag("load")) }),
	)
	if a.resolver, err = Resolver(&cfg); err != nil {
		return nil, err
	}
	proc := Processor()
	a.enricher, err = enrich.New(enrich.Options{
		Resolver: a.resolver, Processor: proc, MaxJSONDepth: cfg.Enrich.MaxJSONDepth,
		FieldLimits: cfg.Enrich.FieldLimits, AcceptInvalid: cfg.Enrich.AcceptInvalid,
	})
	if err != nil {
		return nil, err
	}
	if cfg.DuckDB.Enabled {
		// Only furrow's enricher writes to it: see duckdb.Options.Trusted.
		a.store, err = duckdb.Open(ctx, duckdb.Options{Path: cfg.DuckDBPath(), Schema: cfg.DuckDB.Schema, Threads: cfg.DuckDB.Threads, Nice: cfg.DuckDB.Nice, Trusted: true, Processor: proc, Logger: log, Registry: a.reg})
		if err != nil {
			return nil, err
		}
	}
	if a.sockListener, err = listenSocket(cfg.DataDir); err != nil {
		log.Warn("no local socket: furrow sql cannot query this furrow while it runs, and metrics are not served", "err", err)
	} else {
		var q querier
		if a.store != nil {
			q = a.store
		}
		a.sockServer = &http.Server{Handler: socketHandler(q, a.reg, log), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}
	microOn, microNote := cfg.MicroOn()
	switch {
	case microOn && microNote != "":
		log.Warn(microNote, "listen", cfg.Listen, "micro.enabled", cfg.Micro.Enabled)
	case microNote != "":
		log.Info(microNote, "listen", cfg.Listen, "micro.enabled", cfg.Micro.Enabled)
	}
	if microOn {
		a.microS = micro.NewStore(cfg.Micro.MaxEvents)
	}
	if cfg.OutputTSV {
		a.stdout = &tsvWriter{w: bufio.NewWriterSize(os.Stdout, 1<<16)}
	}
	col, err := collector.New(collector.Options{
		Config: cfg.Collector, Good: a.raw.Sink(), Bad: a.bad.Sink(),
		Name: "furrow-" + shortVersion() + "-embedded", Processor: proc, Logger: log, Registry: a.reg,
	})
	if err != nil {
		return nil, err
	}
	// Two routes, chosen by prefix: a ServeMux would cost allocations on
	// every tracker request. Micro's API is a net/http handler, served
	// through fasthttp's adaptor. With Micro off its paths answer 404
	// rather than being collected as /vendor/version tracker paths.
	mh := microOff
	if a.microS != nil {
		mh = fasthttpadaptor.NewFastHTTPHandler(micro.Handler(a.microS, a.resolver))
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		if bytes.HasPrefix(ctx.Path(), []byte("/micro/")) {
			mh(ctx)
			return
		}
		col.Handle(ctx)
	}
	a.server = col.NewServer(handler, collector.DefaultServerOptions())
	if a.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// microOff answers Micro's paths when Micro is off.
func microOff(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("Micro's API is off (see micro.enabled)\n")
}

// shortVersion keeps the collector name within 32 characters.
func shortVersion() string {
	v := Version
	if len(v) > 14 {
		v = v[:14]
	}
	return v
}

// Addr is the address the collector listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Registry holds furrow's metrics.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// sinks returns where enriched events and bad rows go.
func (a *App) sinks() (good, bad stream.Sink) {
	if a.store != nil {
		return a.store.Good(), a.store.Bad()
	}
	discard := stream.SinkFunc(func(context.Context, ...[]byte) error { return nil })
	return discard, discard
}

// batchBytes bounds a batch read from a log, with enrich.batch_size. The
// enricher holds up to four batches and the events made from them at
// once; at 32 MB of POST payloads, five events each, RSS peaked at 3.9 GB
// in the POST load test, against 2.1-2.2 GB at 8 MB (GC at 400%, no
// memory limit), for the same throughput.
const batchBytes = 8 << 20

// Run serves until ctx is done, then stops gracefully: the listener
// closes, events already collected are enriched and loaded (for up to
// DrainTimeout), and everything is closed.
func (a *App) Run(ctx context.Context) error {
	good, bad := a.sinks()
	rawSrc, err := a.raw.Source("enrich", a.cfg.Enrich.BatchSize, batchBytes)
	if err != nil {
		return err
	}
	badSrc, err := a.bad.Source("load", a.cfg.Enrich.BatchSize, batchBytes)
	if err != nil {
		return err
	}
	var observers []pipeline.Observer
	if a.microS != nil {
		observers = append(observers, a.microS)
	}
	if a.stdout != nil {
		observers = append(observers, a.stdout)
	}
	enr := &pipeline.Enrich{Source: rawSrc, Enricher: a.enricher, Good: good, Bad: bad, Observers: observers,
		Workers: a.cfg.Enrich.Workers, Logger: a.log, Registry: a.reg}
	if a.store != nil {
		// Under traffic, load one row group at a time.
		enr.FlushRecords = duckdb.RowGroupRows
	}
	fwd := &pipeline.Forward{Source: badSrc, Sink: bad, Logger: a.log, Observe: func(recs [][]byte) {
		if a.microS != nil {
			a.microS.Observe(nil, recs)
		}
	}}

	pipeCtx, stopPipes := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipes()
	var g errgroup.Group
	g.Go(func() error { return enr.Run(pipeCtx) })
	g.Go(func() error { return fwd.Run(pipeCtx) })

	if a.cfg.PprofListen != "" {
		go func() {
			a.log.Info("serving pprof", "addr", a.cfg.PprofListen)
			if err := http.ListenAndServe(a.cfg.PprofListen, pprofMux()); err != nil {
				a.log.Error("pprof", "err", err)
			}
		}()
	}
	go a.serveSocket()
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.server.Serve(a.listener) }()
	a.log.Info("furrow is running", "collector", "http://"+a.Addr(), "data_dir", a.cfg.DataDir,
		"duckdb", a.cfg.DuckDB.Enabled, "micro", a.microS != nil)

	var runErr error
	pipesDone := make(chan error, 1)
	go func() { pipesDone <- g.Wait() }()
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err == nil {
			err = errors.New("the collector's server stopped")
		}
		runErr = err
	case err := <-pipesDone:
		runErr = fmt.Errorf("pipeline stopped: %w", err)
		pipesDone <- err
	}

	a.log.Info("furrow is stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a.server.ShutdownWithContext(shutCtx)
	cancel()
	a.drain()
	stopPipes()
	if err := <-pipesDone; err != nil && runErr == nil {
		runErr = err
	}
	if err := a.closeAll(context.Background()); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// drain waits until the pipelines have caught up with the logs.
func (a *App) drain() {
	deadline := time.Now().Add(a.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		if a.raw.Lag("enrich") == 0 && a.bad.Lag("load") == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.log.Warn("stopping before every collected event was processed; the rest will be processed at the next start",
		"raw_bytes_left", a.raw.Lag("enrich"))
}

func (a *App) closeAll(ctx context.Context) error {
	var errs []error
	if a.stdout != nil {
		errs = append(errs, a.stdout.flush())
	}
	a.stopSocket()
	if a.store != nil {
		errs = append(errs, a.store.Close(ctx))
	}
	for _, l := range []*wal.Log{a.raw, a.bad} {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	if a.listener != nil {
		a.listener.Close()
	}
	return errors.Join(errs...)
}

// tsvWriter prints enriched events to stdout.
type tsvWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (t *tsvWriter) Observe(good []enrich.Good, _ [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range good {
		t.w.Write(g.TSV)
		t.w.WriteByte('\n')
	}
	t.w.Flush()
}

func (t *tsvWriter) flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.w.Flush()
}

// ParseLevel maps a log level name to slog.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l
}

func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
