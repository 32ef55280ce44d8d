package loader

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/wal"
)

// Runner feeds one destination from the enriched log, as the named
// reader "dest-<Name>": each destination reads at its own pace, so one
// that is down, slow or refusing holds back only itself, and what it has
// not loaded waits on disk (the log keeps segments until every reader has
// passed them).
//
// Run reads up to MaxRecords records (about MaxBytes), waiting up to
// MaxDelay after the first for a fuller batch, loads them as one Batch,
// and only then commits the reader's position. A batch that ends at or
// before the destination's own Position is skipped: the destination
// stored it before a crash that the reader's position did not see.
//
// A load that fails with a retryable error is retried, MaxRetryDelay
// apart at most, with the destination reported unhealthy; it catches up
// once it comes back. Any other error is permanent: Run reports it and
// returns it, to stop furrow loudly.
type Runner struct {
	Name   string
	Loader Loader
	// Open, when Loader is nil, opens the destination; it is retried
	// like a load, so furrow starts while a destination is unreachable.
	Open func(ctx context.Context) (Loader, error)
	Log  *wal.Log

	MaxRecords int           // default 10,000
	MaxBytes   int           // default 8 MiB
	MaxDelay   time.Duration // default 200ms
	// IdleDelay, when set, loads a batch before MaxDelay once no record
	// has come for this long: under traffic batches fill up, when quiet
	// events are loaded within IdleDelay.
	IdleDelay time.Duration
	// Busy, when set, tells that more records are on their way (the
	// enricher has a backlog): IdleDelay then does not cut a batch.
	Busy          func() bool
	RetryDelay    time.Duration // first retry; default 100ms
	MaxRetryDelay time.Duration // default 5s
	// PermanentRetryDelay, when set, makes a permanent error hold the
	// destination back rather than end Run: it is reported (log at
	// error level, Health, metric) and the load tried again this long
	// after, so that a fixed password or bucket policy takes effect
	// without a restart. Zero: Run returns the error.
	PermanentRetryDelay time.Duration
	// Processor names furrow in the bad row made of a record that is not
	// a frame (see DecodeFrame).
	Processor badrows.Processor

	Health   *health.Component
	Logger   *slog.Logger
	Registry prometheus.Registerer

	m                  *runnerMetrics
	arena              []byte // the current batch's records, reused
	arenaWant          int    // the largest batch's size
	good, bad          int    // the current batch's lines of each kind
	initOnce, stopOnce sync.Once
	stopping           chan struct{}
}

// metrics per destination, labelled by its name.
type runnerMetrics struct {
	rows, bad, retries *prometheus.CounterVec
	lastLoad           *prometheus.GaugeVec
}

// metricsByRegistry holds one set of metrics per registry, shared by the
// destinations registered in it (each its own label value).
var (
	metricsMu         sync.Mutex
	metricsByRegistry = map[prometheus.Registerer]*runnerMetrics{}
)

func metricsFor(reg prometheus.Registerer) (*runnerMetrics, error) {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m := metricsByRegistry[reg]; m != nil {
		return m, nil
	}
	m := newRunnerMetrics()
	if reg != nil {
		if err := m.register(reg); err != nil {
			return nil, err
		}
	}
	metricsByRegistry[reg] = m
	return m, nil
}

func newRunnerMetrics() *runnerMetrics {
	return &runnerMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "furrow_destination_rows_loaded_total",
			Help: "Enriched events a destination loaded."}, []string{"destination"}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "furrow_destination_bad_rows_loaded_total",
			Help: "Bad rows a destination loaded (its own loader_parsing_error rows not included)."}, []string{"destination"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "furrow_destination_retries_total",
			Help: "Loads (or opens) of a destination tried again after an error, by its class: retryable (an outage, retried with backoff) or permanent (configuration or permission, retried slowly and reported)."}, []string{"destination", "class"}),
		lastLoad: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "furrow_destination_last_load_timestamp_seconds",
			Help: "When a destination last loaded a batch (Unix time)."}, []string{"destination"}),
	}
}

func (m *runnerMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.rows, m.bad, m.retries, m.lastLoad} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) defaults() {
	r.initStop()
	if r.MaxRecords <= 0 {
		r.MaxRecords = 10000
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = 8 << 20
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 200 * time.Millisecond
	}
	if r.RetryDelay <= 0 {
		r.RetryDelay = 100 * time.Millisecond
	}
	if r.MaxRetryDelay <= 0 {
		r.MaxRetryDelay = 5 * time.Second
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	r.Logger = r.Logger.With("destination", r.Name)
}

// Idler is implemented by a Loader that may keep part of a batch cut by
// its size (Batch.More) out of sight, stored, until the next load: Idle
// makes it visible. The runner calls it once the log has been quiet for
// IdleAfter.
type Idler interface {
	Idle(ctx context.Context) error
}

// Wanter is implemented by a Loader that loads most cheaply in batches
// of a given number of good events (DuckDB: the number that ends its
// table on a row group boundary, see duckdb.PendingTable). Want returns
// that number for the next batch, 0 for none; the runner then ends the
// batch with the record that reaches it, and leaves the records after
// it in the log for the next batch. The runner calls Want between loads.
type Wanter interface {
	Want() int
}

// Stager is implemented by a Loader that takes a batch's lines while the
// runner reads them, writing them where its Load takes them from (DuckDB:
// the files its COPY reads). The runner then holds no batch in memory,
// so a batch can be as large as the destination loads best, whatever the
// memory share. Stage is called with the lines of the next batch, in
// order, over as many calls as the runner reads; it copies what it keeps
// (the runner reuses the memory) and takes all of the lines or, on
// error, none, so the runner can call it again with the same ones. Load
// then gets the batch without its lines (Good and Bad empty) and loads
// what was staged; a failed Load is retried from the same staged lines,
// and nothing is staged until a Load succeeds. Close drops what is
// staged.
type Stager interface {
	Loader
	Stage(ctx context.Context, good, bad [][]byte) error
}

// IdleAfter is how long the enriched log stays quiet before Idle.
const IdleAfter = time.Second

// readBytes bounds one read from the enriched log.
const readBytes = 8 << 20

// ReaderName is the enriched log reader of destination name.
func ReaderName(name string) string { return "dest-" + name }

// Stop makes Run return once the batch being loaded is stored (a
// graceful stop); it may be called before or during Run.
func (r *Runner) Stop() {
	r.initStop()
	r.stopOnce.Do(func() { close(r.stopping) })
}

func (r *Runner) initStop() {
	r.initOnce.Do(func() { r.stopping = make(chan struct{}) })
}

// Run loads until Stop is called or ctx is done (then it returns nil;
// what was read and not stored is read again at the next start), or,
// without PermanentRetryDelay, until a permanent error. It closes the
// Loader when it returns.
func (r *Runner) Run(ctx context.Context) error {
	r.defaults()
	r.initStop()
	m, err := metricsFor(r.Registry)
	if err != nil {
		return err
	}
	r.m = m
	if r.Registry != nil {
		log, name := r.Log, ReaderName(r.Name)
		backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_destination_backlog_bytes",
			Help: "Bytes of the enriched log a destination has not loaded yet.", ConstLabels: prometheus.Labels{"destination": r.Name}},
			func() float64 { return float64(log.Lag(name)) })
		if err := r.Registry.Register(backlog); err != nil {
			return err
		}
		defer r.Registry.Unregister(backlog)
	}
	// Reading ends with Stop too; loading only with ctx.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stopping:
			cancel()
		case <-rctx.Done():
		}
	}()
	rd, err := r.Log.Reader(ReaderName(r.Name))
	if err != nil {
		return err
	}
	defer rd.Close()
	defer func() { freeOffHeap(r.arena); r.arena = nil }()
	if r.Loader == nil {
		if err := r.retry(rctx, func() (err error) { r.Loader, err = r.Open(rctx); return err }); err != nil {
			return r.stop(rctx, err)
		}
	}
	defer r.Loader.Close(context.WithoutCancel(ctx))
	var stored int64
	if err := r.retry(rctx, func() (err error) { stored, err = r.Loader.Position(rctx); return err }); err != nil {
		return r.stop(rctx, err)
	}
	due, _ := r.Loader.(interface {
		Due(rawBytes int, age time.Duration) bool
	})
	for {
		b, err := r.read(rctx, rd, stored, due)
		if err != nil {
			return r.stop(rctx, err)
		}
		if b.End > stored {
			// The load itself ends only with ctx; waits between
			// attempts end with Stop too (what is not loaded stays in
			// the log).
			if err := r.retry(rctx, func() error { return r.Loader.Load(ctx, b) }); err != nil {
				return r.stop(rctx, err)
			}
			stored = b.End
			m.rows.WithLabelValues(r.Name).Add(float64(r.good))
			m.bad.WithLabelValues(r.Name).Add(float64(r.bad))
			m.lastLoad.WithLabelValues(r.Name).SetToCurrentTime()
		}
		if err := rd.Commit(b.End); err != nil {
			return r.stop(ctx, fmt.Errorf("committing the enriched log position: %w", err))
		}
		if r.Health != nil {
			r.Health.OK()
		}
	}
}

// stop turns ctx's end into a clean return and reports anything else.
func (r *Runner) stop(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	r.Logger.Error("destination stopped", "err", err)
	if r.Health != nil {
		r.Health.Stop(err)
	}
	return fmt.Errorf("destination %s: %w", r.Name, err)
}

// read returns the next batch: at least one record, then more for up to
// MaxDelay while the batch is not full (nor due, for a destination that
// says when). Records that end at or before stored, which the
// destination holds already, are left out of it (its End still covers
// them, so that they are committed).
func (r *Runner) read(ctx context.Context, rd *wal.Reader, stored int64, due interface {
	Due(int, time.Duration) bool
}) (Batch, error) {
	var b Batch
	b.Start = -1
	size, lines := 0, 0
	want, reached := 0, false
	if w, ok := r.Loader.(Wanter); ok {
		want = w.Want()
	}
	r.good, r.bad = 0, 0
	stager, _ := r.Loader.(Stager)
	// The batch's lines are slices of arena, which the next batch reuses
	// (a Loader keeps nothing of a Batch after Load). Records are copied
	// in: Data is reused by the next Read. A record that does not fit
	// gets its own buffer rather than moving the ones before. A Stager
	// is given each read's lines before the next read instead.
	if stager == nil && cap(r.arena) < r.arenaWant {
		// As large as the largest batch yet, outside the Go heap where
		// the platform allows (see offHeap).
		freeOffHeap(r.arena)
		r.arena = offHeap(r.arenaWant)
	}
	r.arena = r.arena[:0]
	defer func() { r.arenaWant = max(r.arenaWant, size) }()
	hold := func(data []byte) []byte {
		if stager != nil {
			return data
		}
		if len(r.arena)+len(data) > cap(r.arena) {
			return append([]byte(nil), data...)
		}
		start := len(r.arena)
		r.arena = append(r.arena, data...)
		return r.arena[start:len(r.arena):len(r.arena)]
	}
	add := func(recs []wal.Record) error {
		for i, rec := range recs {
			if reached {
				// The batch is as the destination wants it: the rest
				// is read again for the next one.
				rd.Rewind(recs[i].Offset)
				break
			}
			b.End = rec.Next
			size += len(rec.Data)
			if rec.Next <= stored || len(rec.Data) == 0 {
				continue
			}
			if b.Start < 0 {
				b.Start = rec.Offset
			}
			data := hold(rec.Data)
			f, err := DecodeFrame(data)
			if err != nil {
				// Written by furrow, under a valid checksum: only a bug
				// or a foreign writer gets here. Kept, as a bad row.
				b.Bad = append(b.Bad, badrows.GenericError(r.Processor, time.Now(),
					[]string{fmt.Sprintf("enriched log record at offset %d: %v", rec.Offset, err)}, string(data)))
				lines++
				r.bad++
				continue
			}
			for _, l := range f.Lines {
				if l.Kind == KindGood {
					b.Good = append(b.Good, l.Data)
					r.good++
				} else {
					b.Bad = append(b.Bad, l.Data)
					r.bad++
				}
			}
			lines += len(f.Lines)
			reached = want > 0 && r.good >= want
		}
		if stager == nil || len(b.Good)+len(b.Bad) == 0 {
			return nil
		}
		err := r.retry(ctx, func() error { return stager.Stage(ctx, b.Good, b.Bad) })
		clear(b.Good)
		clear(b.Bad)
		b.Good, b.Bad = b.Good[:0], b.Bad[:0]
		return err
	}
	full := func() bool {
		return reached || lines >= r.MaxRecords || size >= r.MaxBytes || (due != nil && due.Due(size, 0))
	}
	// Reads of at most readBytes: the reader's buffer is in the Go heap.
	// A destination that keeps rows out of sight under traffic (Idler)
	// is told when the log has been quiet for IdleAfter.
	var recs []wal.Record
	var err error
	if idler, ok := r.Loader.(Idler); ok {
		quiet, cancel := context.WithTimeout(ctx, IdleAfter)
		recs, err = rd.Read(quiet, r.MaxRecords, min(r.MaxBytes, readBytes))
		cancel()
		if err != nil && quiet.Err() != nil && ctx.Err() == nil {
			if err := idler.Idle(ctx); err != nil {
				r.Logger.Warn("destination: storing what it kept for the next load failed; the next load does it", "err", err)
			}
			recs, err = rd.Read(ctx, r.MaxRecords, min(r.MaxBytes, readBytes))
		}
	} else {
		recs, err = rd.Read(ctx, r.MaxRecords, min(r.MaxBytes, readBytes))
	}
	if err != nil {
		return b, err
	}
	if err := add(recs); err != nil {
		return b, err
	}
	deadline, cancel := context.WithTimeout(ctx, r.MaxDelay)
	defer cancel()
	for !full() {
		wait, cancelWait := deadline, context.CancelFunc(func() {})
		if r.IdleDelay > 0 {
			wait, cancelWait = context.WithTimeout(deadline, r.IdleDelay)
		}
		recs, err := rd.Read(wait, r.MaxRecords-lines, min(r.MaxBytes-size, readBytes))
		cancelWait()
		if err != nil {
			if wait.Err() != nil && deadline.Err() == nil && ctx.Err() == nil && r.Busy != nil && r.Busy() {
				continue // idle here, but more is coming upstream
			}
			if wait.Err() != nil && ctx.Err() == nil {
				break // MaxDelay or IdleDelay passed: load what there is
			}
			if ctx.Err() != nil && b.End > 0 {
				break // stopping: load what was read
			}
			return b, err
		}
		if err := add(recs); err != nil {
			return b, err
		}
	}
	if b.Start < 0 {
		b.Start = b.End
	}
	b.More = full() && ctx.Err() == nil
	return b, nil
}

// retry runs f until it succeeds or ctx is done; a permanent error ends
// it too, unless PermanentRetryDelay is set.
func (r *Runner) retry(ctx context.Context, f func() error) error {
	rt := Retrier{Name: r.Name, RetryDelay: r.RetryDelay, MaxRetryDelay: r.MaxRetryDelay,
		PermanentRetryDelay: r.PermanentRetryDelay, Health: r.Health, Logger: r.Logger, m: r.m}
	return rt.Do(ctx, f)
}

// Retrier retries a destination's loads and opens as its Runner does:
// retryable errors with backoff from RetryDelay to MaxRetryDelay, permanent
// ones every PermanentRetryDelay (logged at error level), or not at all
// without it; each retry counted in furrow_destination_retries_total and
// reported to Health. For destinations loaded without a Runner (furrow
// load): see NewRetrier.
type Retrier struct {
	Name                                           string
	RetryDelay, MaxRetryDelay, PermanentRetryDelay time.Duration
	Health                                         *health.Component
	Logger                                         *slog.Logger
	m                                              *runnerMetrics
}

// NewRetrier returns a Retrier of destination name whose retries are
// counted in reg's destination metrics (shared with its Runners).
func NewRetrier(reg prometheus.Registerer, name string, h *health.Component, log *slog.Logger, permanentDelay time.Duration) (*Retrier, error) {
	m, err := metricsFor(reg)
	if err != nil {
		return nil, err
	}
	return &Retrier{Name: name, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: 5 * time.Second,
		PermanentRetryDelay: permanentDelay, Health: h, Logger: log, m: m}, nil
}

// Do runs f until it succeeds or ctx is done.
func (r *Retrier) Do(ctx context.Context, f func() error) error {
	delay := r.RetryDelay
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait, class := delay, "retryable"
		if !IsRetryable(err) {
			if r.PermanentRetryDelay <= 0 {
				return err
			}
			wait, class = r.PermanentRetryDelay, "permanent"
			r.Logger.Error("destination refused: fix its configuration or permissions; furrow keeps its backlog and tries again", "destination", r.Name, "err", err, "in", wait.String())
		}
		r.m.retries.WithLabelValues(r.Name, class).Inc()
		if r.Health != nil {
			r.Health.Fail(err)
		} else if class == "retryable" {
			r.Logger.Warn("destination failing; retrying", "destination", r.Name, "err", err, "in", delay)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if class == "retryable" {
			delay = min(2*delay, r.MaxRetryDelay)
		}
	}
}

// NoteLoads returns how a destination loaded without a Runner (furrow
// load, from Kafka) records its loads in the Runner's metrics of reg:
// rows, bad rows and the time of the last load.
func NoteLoads(reg prometheus.Registerer) (func(destination string, good, bad int), error) {
	m, err := metricsFor(reg)
	if err != nil {
		return nil, err
	}
	return func(dest string, good, bad int) {
		m.rows.WithLabelValues(dest).Add(float64(good))
		m.bad.WithLabelValues(dest).Add(float64(bad))
		m.lastLoad.WithLabelValues(dest).SetToCurrentTime()
	}, nil
}
