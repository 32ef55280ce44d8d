// Package app wires furrow's components into the running pipeline of
// `furrow run`: collector -> durable log -> enricher -> warehouse, with the
// Micro API on the collector's port.
package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/furrow-io/furrow/internal/admin"
	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/collector"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/enrich"
	_ "github.com/furrow-io/furrow/internal/enrich/step/all" // the enrichments furrow implements
	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
	"github.com/furrow-io/furrow/internal/micro"
	"github.com/furrow-io/furrow/internal/pipeline"
	"github.com/furrow-io/furrow/internal/pseudo"
	"github.com/furrow-io/furrow/internal/stats"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/stream/kafka"
	"github.com/furrow-io/furrow/internal/tlsx"
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
	// GovernMemory, set before Run, makes Run lower the Go runtime's soft
	// memory limit below its share of memory_limit whenever the memory
	// held outside Go (DuckDB's) grows past its own share (see governor);
	// otherwise the limit is left as it is.
	GovernMemory bool

	cfg      config.Config
	role     Role
	log      *slog.Logger
	reg      *prometheus.Registry
	raw, bad *wal.Log
	store    *duckdb.Store // the fused path's (see fusedDuckDB)
	// Its sinks for the enricher and for the collector's bad rows, each
	// storing its log's position with what it loads (exactly once).
	storeRaw, storeBad *duckdb.Marked
	// The enriched log mode's (see destinations.go).
	enrichedLog *wal.Log
	enriched    *loader.Enriched
	dests       []destination
	stores      []*duckdb.Store // its duckdb destinations'
	microS      *micro.Store
	server      *fasthttp.Server
	listener    net.Listener
	// The local socket: `furrow sql` and metrics (see Socket).
	sockListener net.Listener
	sockServer   *http.Server
	sockQ        querier // what answers its queries, nil for none
	enricher     *enrich.Enricher
	resolver     *iglu.Resolver
	stdout       *tsvWriter
	proc         badrows.Processor
	policy       *pseudo.Policy // nil without pseudonymization
	health       *health.Registry
	// Damage given up in the logs, by log and wal.DamageKind.
	damaged, damagedBytes *prometheus.CounterVec
	// furrow collect's: the Kafka client and the raw and raw-bad sinks;
	// furrow enrich's: the client, the raw topic's consumer, the enriched
	// and bad sinks.
	kafka                  *kgo.Client
	kafkaRaw, kafkaBad     *kafka.Sink
	kafkaSrc               *kafka.Source
	kafkaGood, kafkaBadOut *kafka.Sink
	kafkaGoodOut           stream.Sink // kafkaGood, or a Tee with the JSON topic
	kafkaJSON              *kafka.JSONSink
	kafkaTxn               *kgo.GroupTransactSession // furrow enrich with exactly_once
	txnID                  string                    // its transactional id
	txnFailures            int                       // sessions renewed since the last commit
	kafkaLoads             []*kafkaLoad              // furrow load's, one per destination

	// The admin surface (admin.go).
	stats             *stats.Recorder // nil for furrow collect
	sampler           *admin.Sampler
	adminListener     net.Listener
	adminServer       *http.Server
	adminTLS          *tlsx.Provider
	adminAuth         func(http.Handler) http.Handler
	collectorTLS      *tlsx.Provider
	acmeHTTP          []*http.Server // HTTP-01 listeners (tls.acme.http_listen)
	microHTTP         http.Handler   // Micro's API as a net/http handler
	serving, draining atomic.Bool
}

// Role is the part of the pipeline a process runs.
type Role string

// The roles: furrow run is the whole pipeline on the embedded logs;
// furrow collect is the collector, forwarding what it logs to Kafka.
const (
	RoleRun     Role = "run"
	RoleCollect Role = "collect"
	RoleEnrich  Role = "enrich"
	RoleLoad    Role = "load"
)

// New opens everything for furrow run; Run starts serving.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	return NewRole(ctx, cfg, log, RoleRun)
}

// NewRole opens what role needs, and the admin surface; Run starts
// serving.
func NewRole(ctx context.Context, cfg config.Config, log *slog.Logger, role Role) (*App, error) {
	a, err := newRole(ctx, cfg, log, role)
	if err != nil {
		return nil, err
	}
	if err := a.openAdmin(ctx); err != nil {
		a.closeAll(context.Background())
		return nil, err
	}
	return a, nil
}

func newRole(ctx context.Context, cfg config.Config, log *slog.Logger, role Role) (*App, error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	if role != RoleRun && cfg.Streams.Type != config.StreamsKafka {
		return nil, fmt.Errorf("furrow %s joins the other roles over Kafka: set streams.type: kafka and streams.kafka.brokers (furrow run does everything in one process, on the embedded log)", role)
	}
	a := &App{cfg: cfg, log: log, role: role, reg: prometheus.NewRegistry(), proc: Processor(), health: health.New(log, 0)}
	ok := false
	defer func() {
		if !ok {
			a.closeAll(context.Background())
		}
	}()
	if err := privateDataDir(cfg); err != nil {
		return nil, err
	}
	a.damaged = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "furrow_log_damage_total",
		Help: "Stretches of a log given up because they held no valid record (skipped, cut) or were gone from the disk (missing); each is a bad row."}, []string{"log", "kind"})
	a.damagedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "furrow_log_damage_bytes_total",
		Help: "Bytes of those stretches."}, []string{"log", "kind"})
	var err error
	walOpts := func(name string) wal.Options {
		return wal.Options{Dir: filepath.Join(cfg.DataDir, "log", name), Fsync: cfg.Log.Fsync,
			FsyncInterval: cfg.Log.FsyncInterval, SegmentBytes: cfg.Log.SegmentBytes, MaxSegmentAge: cfg.EffectiveMaxSegmentAge(), MaxRecordBytes: max(cfg.Collector.MaxRecordBytes, cfg.Collector.MaxPayloadSize) + 1<<16,
			OnDamage: a.reportDamage(name), Logger: log}
	}
	if role == RoleLoad {
		// furrow load reads Kafka into the destinations: no logs either.
		if err := a.health.Register(a.reg); err != nil {
			return nil, err
		}
		a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if err := a.openLoadRole(ctx); err != nil {
			return nil, err
		}
		ok = true
		return a, nil
	}
	if role == RoleEnrich {
		// furrow enrich reads Kafka and writes Kafka: no logs of its own.
		if err := a.health.Register(a.reg); err != nil {
			return nil, err
		}
		a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if err := a.openEnrichRole(ctx); err != nil {
			return nil, err
		}
		ok = true
		return a, nil
	}
	if a.raw, err = wal.Open(walOpts("raw")); err != nil {
		return nil, err
	}
	if a.bad, err = wal.Open(walOpts("collector-bad")); err != nil {
		return nil, err
	}
	for name, l := range map[string]*wal.Log{"raw": a.raw, "collector-bad": a.bad} {
		for _, d := range l.Repairs() {
			if err := a.reportDamage(name)(d); err != nil {
				return nil, err
			}
		}
		a.health.Check("log/"+name, l.Health)
	}
	if err := a.health.Register(a.reg); err != nil {
		return nil, err
	}
	a.reg.MustRegister(a.damaged, a.damagedBytes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_log_backlog_bytes", ConstLabels: prometheus.Labels{"log": "raw"},
			Help: backlogHelp},
			func() float64 { return float64(a.raw.Lag("enrich")) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_log_backlog_bytes", ConstLabels: prometheus.Labels{"log": "collector-bad"},
			Help: backlogHelp},
			func() float64 { return float64(a.bad.Lag("load")) }),
	)
	proc := a.proc
	if a.policy, err = Policy(cfg, log); err != nil {
		return nil, err
	}
	if role == RoleCollect {
		if err := a.openCollect(); err != nil {
			return nil, err
		}
		ok = true
		return a, nil
	}
	microOn, microNote := cfg.MicroOn()
	if err := a.openEnricher(ctx, microOn); err != nil {
		return nil, err
	}
	if fusedDuckDB(cfg) {
		if err := checkEnrichedDrained(walOpts("enriched")); err != nil {
			return nil, err
		}
		// The one duckdb destination, or the duckdb section's.
		if ds := cfg.EffectiveDestinations(); len(ds) == 1 {
			cfg.DuckDB.Path, cfg.DuckDB.Schema = ds[0].DuckDB.Path, ds[0].DuckDB.Schema
		}
		if cfg.DuckDB.Enabled {
			// Only furrow's enricher writes to it: see duckdb.Options.Trusted.
			a.store, err = duckdb.Open(ctx, duckdb.Options{Path: cfg.DuckDBPath(), Schema: cfg.DuckDB.Schema, Threads: cfg.DuckDB.Threads, Nice: cfg.DuckDB.Nice, MemoryLimit: Memory(cfg).DuckDB, RowGroupRows: Memory(cfg).RowGroupRows, Trusted: true, Processor: proc, Logger: log, Registry: a.reg})
			if err != nil {
				return nil, err
			}
			if err := a.openMarked(ctx, walOpts); err != nil {
				return nil, err
			}
		}
	} else if err := a.openDestinations(ctx, walOpts("enriched")); err != nil {
		return nil, err
	}
	if a.sockListener, err = listenSocket(cfg.DataDir); err != nil {
		log.Warn("no local socket: furrow sql cannot query this furrow while it runs, and metrics are not served", "err", err)
	} else {
		var q querier
		switch {
		case a.store != nil:
			q = a.store
		case len(a.stores) > 0:
			q = a.stores[0] // the first duckdb destination
		}
		a.sockQ = q
		a.sockServer = &http.Server{ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}
	switch {
	case !microOn && cfg.Micro.Enabled == config.On:
		log.Warn(microNote, "listen", cfg.Listen, "micro.enabled", cfg.Micro.Enabled)
	case microNote != "":
		log.Info(microNote, "listen", cfg.Listen, "micro.enabled", cfg.Micro.Enabled, "admin.listen", cfg.Admin.Listen)
	}
	if microOn {
		a.microS = micro.NewStore(Memory(cfg).MicroEvents)
	}
	if cfg.OutputTSV {
		a.stdout = &tsvWriter{w: bufio.NewWriterSize(os.Stdout, 1<<16)}
	}
	col, err := collector.New(collector.Options{
		Config: cfg.Collector, Good: a.raw.Sink(), Bad: a.bad.Sink(),
		Name: "furrow-" + shortVersion() + "-embedded", Processor: proc, Logger: log, Registry: a.reg,
		// A destination failing does not stop collection: /sink-health
		// names it but stays 200 (see collector.Options.Degraded).
		Health:   func() error { return a.health.ErrOf(func(n string) bool { return !isDestination(n) }) },
		Degraded: func() error { return a.health.ErrOf(isDestination) },
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
		a.microHTTP = micro.Handler(a.microS, a.resolver)
		if !a.microOnAdmin() {
			mh = fasthttpadaptor.NewFastHTTPHandler(a.microHTTP)
		}
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		if bytes.HasPrefix(ctx.Path(), []byte("/micro/")) {
			mh(ctx)
			return
		}
		col.Handle(ctx)
	}
	a.server = col.NewServer(handler, collector.DefaultServerOptions())
	if a.listener, err = a.listenCollector(ctx); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// listenCollector opens the collector's listener, over TLS when the tls
// section says so. The collector's server (fasthttp) speaks HTTP/1.1
// only, so h2 is not offered to browsers there.
func (a *App) listenCollector(ctx context.Context) (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil || !a.cfg.TLS.Enabled() {
		return ln, err
	}
	if a.collectorTLS, err = a.tlsProvider(ctx, "tls", a.cfg.TLS); err != nil {
		ln.Close()
		return nil, err
	}
	tc := a.collectorTLS.TLSConfig()
	tc.NextProtos = slices.DeleteFunc(slices.Clone(tc.NextProtos), func(p string) bool { return p == "h2" })
	return tls.NewListener(ln, tc), nil
}

// openEnricher loads the Iglu resolver, the enrichments and the enricher;
// keepRaw keeps each event's raw form, for Micro.
func (a *App) openEnricher(ctx context.Context, keepRaw bool) error {
	cfg, log, proc := a.cfg, a.log, a.proc
	var err error
	if a.resolver, err = Resolver(&cfg); err != nil {
		return err
	}
	var steps []enrich.Step
	if dir := cfg.Enrich.EnrichmentsDir; dir != "" {
		var notices []enrich.Notice
		steps, notices, err = enrich.LoadEnrichments(ctx, dir, a.resolver)
		for _, n := range notices {
			log.Log(ctx, n.Level, "enrichments: "+n.Message, "file", n.Source, "schema", n.Schema)
		}
		if err != nil {
			return err
		}
		log.Info("enrichments loaded", "dir", dir, "enabled", strings.Join(enrich.StepNames(steps), ", "))
	}
	a.enricher, err = enrich.New(enrich.Options{
		Resolver: a.resolver, Processor: proc, MaxJSONDepth: cfg.Enrich.MaxJSONDepth,
		FieldLimits: cfg.Enrich.FieldLimits, AcceptInvalid: cfg.Enrich.AcceptInvalid, Steps: steps,
		Pseudonymize: a.policy, KeepRaw: keepRaw,
	})
	if err != nil {
		return err
	}
	return nil
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
		return a.storeRaw.Good(), a.storeRaw.Bad()
	}
	discard := stream.SinkFunc(func(context.Context, ...[]byte) error { return nil })
	return discard, discard
}

// EnrichedFrameRecords is how many outputs the enricher writes to the
// enriched log at most in one frame, under traffic.
const EnrichedFrameRecords = 1024

// StopMargin is how long a graceful stop waits, after DrainTimeout, for
// the stages to store what they read; then it interrupts them (what they
// had not stored is processed again at the next start).
const StopMargin = 5 * time.Second

// stage is a pipeline stage: Run until Stop (or a hard stop through
// ctx); see pipeline.Enrich.
type stage struct {
	name string
	s    interface {
		Run(ctx context.Context) error
		Stop()
	}
}

type stageDone struct {
	name string
	err  error
}

// Run serves until ctx is done or a stage stops, then stops: the
// listener closes, events already collected are enriched and loaded
// (for up to DrainTimeout, then StopMargin to store what was read), and
// everything is closed. A stage that stopped on its own makes Run return
// its error, after the same stop.
func (a *App) Run(ctx context.Context) error {
	switch a.role {
	case RoleEnrich:
		return a.runEnrichRole(ctx)
	case RoleLoad:
		return a.runLoadRole(ctx)
	}
	good, bad := a.sinks()
	// Batches are bounded by the memory budget: see Memory.
	batchBytes := Memory(a.cfg).BatchBytes
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
	fwdSink := bad
	if a.storeBad != nil {
		fwdSink = a.storeBad.Bad()
	}
	if a.enriched != nil {
		// Into the enriched log, in frames that record how far each
		// upstream log was read (loader.Enriched).
		st := a.enriched.Stage("raw")
		good, bad = st.Good(), st.Bad()
		rawSrc = a.enriched.Source("raw", rawSrc)
		fwdSink = a.enriched.Stage("collector-bad").Bad()
		badSrc = a.enriched.Source("collector-bad", badSrc)
	}
	enr := &pipeline.Enrich{Source: rawSrc, Enricher: a.enricher, Good: good, Bad: bad, Observers: observers,
		Workers: a.cfg.Enrich.Workers, Logger: a.log, Registry: a.reg, Health: a.health.Component("enrich"), Stats: a.stats}
	switch {
	case a.store != nil:
		// Under traffic, load one row group at a time.
		enr.FlushRecords = a.store.RowGroupRows()
	case a.enriched != nil:
		// Frames of about a MB, at least every second: the destinations
		// batch on their own. Smaller frames measured faster under the GET
		// load test than 4,096 or 16,384 outputs (see README).
		enr.FlushRecords, enr.FlushInterval = EnrichedFrameRecords, time.Second
	}
	fwd := &pipeline.Forward{Source: badSrc, Sink: fwdSink, Logger: a.log, Health: a.health.Component("forward"), Stats: a.stats, Observe: func(recs [][]byte) {
		if a.microS != nil {
			a.microS.Observe(nil, recs)
		}
	}}
	if a.policy != nil {
		// Size violations and log damage reports carry raw bytes.
		fwd.Transform = a.pseudonymizeBad
	}
	// The upstream stages (enrich, forward) stop first, then the
	// destinations, which load what the upstream stages stored.
	stages := []stage{{"enrich", enr}, {"forward", fwd}}
	if a.role == RoleCollect {
		stages = a.collectStages(rawSrc, badSrc)
	}
	const upstream = 2
	for _, d := range a.dests {
		stages = append(stages, stage{"destination/" + d.d.Name, d.runner})
	}

	// hard ends the stages at once; a graceful stop uses Stop first.
	hard, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	done := make(chan stageDone, len(stages))
	for _, s := range stages {
		go func() { done <- stageDone{s.name, s.s.Run(hard)} }()
	}

	if a.cfg.PprofListen != "" {
		go func() {
			a.log.Info("serving pprof", "addr", a.cfg.PprofListen)
			if err := http.ListenAndServe(a.cfg.PprofListen, pprofMux()); err != nil {
				a.log.Error("pprof", "err", err)
			}
		}()
	}
	if a.GovernMemory {
		go newGovernor(int64(a.cfg.MemoryLimit), Memory(a.cfg).GoHeap).run(hard, 100*time.Millisecond, a.log)
	}
	go a.serveSocket(ctx)
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.server.Serve(a.listener) }()
	scheme := "http://"
	if a.collectorTLS != nil {
		scheme = "https://"
	}
	a.log.Info("furrow is running", "collector", scheme+a.Addr(), "data_dir", a.cfg.DataDir,
		"destinations", destinationNames(a.cfg), "micro", a.microS != nil)

	running := len(stages)
	finished := map[string]bool{}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err == nil {
			err = errors.New("the collector's server stopped")
		}
		runErr = err
	case d := <-done:
		running--
		finished[d.name] = true
		runErr = a.stageStopped(d)
	}

	a.draining.Store(true) // /readyz: 503 from here on
	a.log.Info("furrow is stopping", "drain_timeout", a.cfg.DrainTimeout.String())
	start := time.Now()
	drainBy := start.Add(a.cfg.DrainTimeout)
	shutCtx, cancel := context.WithDeadline(context.Background(), drainBy)
	a.server.ShutdownWithContext(shutCtx)
	cancel()
	if runErr == nil {
		a.drain(drainBy)
	}
	for _, s := range stages[:upstream] {
		s.s.Stop()
	}
	margin := time.NewTimer(time.Until(drainBy.Add(StopMargin)))
	defer margin.Stop()
	downstreamStopped := false
	for running > 0 {
		if !downstreamStopped && finished[stages[0].name] && finished[stages[1].name] {
			for _, s := range stages[upstream:] {
				s.s.Stop()
			}
			downstreamStopped = true
			continue
		}
		select {
		case d := <-done:
			running--
			finished[d.name] = true
			if d.err != nil && runErr == nil {
				runErr = a.stageStopped(d)
			}
		case <-margin.C:
			a.log.Warn("stopping: storing what was read is taking longer than drain_timeout plus the stop margin; interrupting it (those events are processed again at the next start)",
				"margin", StopMargin.String())
			abort()
		}
	}
	if err := a.closeAll(hard); err != nil && runErr == nil {
		runErr = err
	}
	a.log.Info("furrow stopped", "seconds", time.Since(start).Seconds())
	return runErr
}

// stageStopped marks a stage that returned before it was asked to stop
// (or with an error) as stopped, and returns the error Run reports.
func (a *App) stageStopped(d stageDone) error {
	err := d.err
	if err == nil {
		err = errors.New("stopped unexpectedly")
	}
	a.health.Component(d.name).Stop(err)
	return fmt.Errorf("%s stopped: %w", d.name, err)
}

// drain waits until the pipelines have caught up with the logs, or until
// the deadline.
func (a *App) drain(deadline time.Time) {
	for time.Now().Before(deadline) {
		if a.raw.Lag("enrich") == 0 && a.bad.Lag("load") == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.log.Warn("stopping before every collected event was processed (drain_timeout); the rest will be processed at the next start",
		"raw_bytes_left", a.raw.Lag("enrich"))
}

// reportDamage returns the wal.Options.OnDamage of the log named name:
// each stretch given up becomes a generic_error bad row in the
// collector-bad log (and so in the warehouse's bad rows and Micro),
// carrying the first bytes base64-encoded and naming the quarantine file
// that holds them all; it is counted and logged once the row is stored.
func (a *App) reportDamage(name string) func(wal.Damage) error {
	return func(d wal.Damage) error {
		errs := []string{d.String()}
		payload := ""
		if len(d.Head) > 0 {
			payload = base64.StdEncoding.EncodeToString(d.Head)
			errs = append(errs, fmt.Sprintf("payload: the first %d of the %d bytes given up, base64; all of them are in %s", len(d.Head), d.Length, d.Quarantine))
		}
		if err := a.bad.Append(badrows.GenericError(a.proc, time.Now(), errs, payload)); err != nil {
			return err
		}
		a.damaged.WithLabelValues(name, string(d.Kind)).Inc()
		a.damagedBytes.WithLabelValues(name, string(d.Kind)).Add(float64(d.Length))
		a.log.Error("log damage: bytes given up, stored as a bad row", "log", name, "kind", d.Kind, "offset", d.Offset, "bytes", d.Length,
			"reason", d.Reason, "segment", d.Segment, "quarantine", d.Quarantine, "reader", d.Reader)
		return nil
	}
}

func (a *App) closeAll(ctx context.Context) error {
	var errs []error
	if a.stdout != nil {
		errs = append(errs, a.stdout.flush())
	}
	a.stopSocket()
	for _, m := range []*duckdb.Marked{a.storeRaw, a.storeBad} {
		if m != nil {
			errs = append(errs, m.Close(ctx))
		}
	}
	if a.store != nil {
		errs = append(errs, a.store.Close(ctx))
	}
	for _, st := range a.stores {
		errs = append(errs, st.Close(ctx))
	}
	if a.enriched != nil {
		errs = append(errs, a.enriched.Close())
	}
	for _, l := range []*wal.Log{a.raw, a.bad, a.enrichedLog} {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	if a.listener != nil {
		a.listener.Close()
	}
	if a.kafkaSrc != nil {
		a.kafkaSrc.Close(ctx)
	}
	if a.kafkaTxn != nil {
		a.kafkaTxn.Close()
	}
	if a.kafka != nil {
		a.kafka.Close()
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

// privateDataDir creates the data directory for furrow's own user only
// (0700), narrowing the mode of one an older version made wider, and
// narrows an existing warehouse file and its WAL to 0600. What furrow
// creates inside is private too: the logs set their own modes, and
// `furrow run` sets the umask to 077 for the files DuckDB creates.
func privateDataDir(cfg config.Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return err
	}
	for _, p := range []string{cfg.DuckDBPath(), cfg.DuckDBPath() + ".wal"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Policy loads the pseudonymization key and builds the policy, or returns
// nil when pseudonymization is off. Warnings about the key file are
// logged.
func Policy(cfg config.Config, log *slog.Logger) (*pseudo.Policy, error) {
	if !cfg.Pseudonymize.Enabled {
		return nil, nil
	}
	key, warnings, err := cfg.Pseudonymize.LoadKey()
	for _, w := range warnings {
		log.Warn(w)
	}
	if err != nil {
		return nil, err
	}
	p := pseudo.New(cfg.Pseudonymize, key)
	p.SetParams(enrich.ParamFields())
	return p, nil
}

// pseudonymizeBad rewrites a bad row from the collector-bad log; one
// the policy cannot read becomes a generic_error row holding its
// pseudonym.
func (a *App) pseudonymizeBad(rec []byte) []byte {
	out, err := a.policy.BadRow(rec)
	if err != nil {
		return badrows.GenericError(a.proc, time.Now(), []string{"could not pseudonymize a bad row: " + err.Error()}, a.policy.Pseudonym(string(rec)))
	}
	return out
}
