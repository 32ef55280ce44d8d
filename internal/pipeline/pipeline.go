// Package pipeline moves records between stages: it reads batches from a
// source, processes them, writes the results to sinks and acknowledges
// batches only once every output is stored (written, and flushed for
// buffering sinks). Batches flow through bounded
// channels, so a slow sink holds back reading (the durable log absorbs the
// difference) instead of growing memory.
package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/stats"
	"github.com/furrow-io/furrow/internal/stream"
)

// Observer sees results once they are handed to the sinks (Micro's
// store, stdout).
type Observer interface {
	Observe(good []enrich.Good, bad [][]byte)
}

// Enrich runs the enricher between a raw source and good and bad sinks.
type Enrich struct {
	Source    stream.Source
	Enricher  *enrich.Enricher
	Good, Bad stream.Sink
	Observers []Observer
	// Workers enrich each batch in parallel; default half of GOMAXPROCS
	// (at least 1), leaving the rest to the collector and the loader.
	Workers  int
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// RetryDelay is the first pause before retrying a failed sink write;
	// it doubles up to MaxRetryDelay. Writes are retried until they succeed or the
	// pipeline stops, so nothing is acknowledged unstored.
	RetryDelay time.Duration
	// Buffering sinks (stream.Flusher) are flushed, and the batches written
	// since acknowledged, when FlushRecords outputs (events and bad rows)
	// are pending, when the oldest pending one waited FlushInterval, or
	// when no batch followed within IdleFlush. Under load that makes few
	// large loads; when quiet, events are stored within IdleFlush. A
	// stream.BlockFlusher is also flushed once it has FlushRecords staged,
	// counting what the last flush kept. A flush for FlushRecords lets it
	// keep part of a block for the next one; the others store everything.
	FlushRecords  int           // default 122880
	FlushInterval time.Duration // default 5s
	IdleFlush     time.Duration // default 50ms
	// Health, if set, hears of every failed and successful read, write
	// and flush (see package health).
	Health *health.Component
	// Stats, if set, counts each batch's outputs once it is acknowledged
	// (after its commit), for the agent API's /v1/stats.
	Stats *stats.Recorder

	soft softStop
}

// softStop is the Stop of a stage: it ends reading, not storing.
type softStop struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *softStop) init() {
	s.once.Do(func() { s.ctx, s.cancel = context.WithCancel(context.Background()) })
}

// stop ends reading.
func (s *softStop) stop() { s.init(); s.cancel() }

// reading returns a context for reading, done when ctx is or stop was
// called, and its cancel function.
func (s *softStop) reading(ctx context.Context) (context.Context, context.CancelFunc) {
	s.init()
	rctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.ctx, cancel)
	return rctx, func() { unhook(); cancel() }
}

// Stop makes Run stop reading and return once the batches already read
// are stored and acknowledged (a graceful stop). It may be called before
// or during Run, more than once.
func (p *Enrich) Stop() { p.soft.stop() }

type enriched struct {
	good  []enrich.Good
	bad   [][]byte
	batch *stream.Batch
}

// written is a batch whose outputs were written to the sinks: how to
// acknowledge it, how many records it had and how many lines it wrote to
// the good sink. The records themselves are not kept: a batch can wait
// for its acknowledgement through more than one flush.
type written struct {
	ack     func(context.Context) error
	records int
	good    int
	stats   *stats.Counts // nil without Enrich.Stats
}

// flushJob asks the flusher to flush the sinks and acknowledge batches.
type flushJob struct {
	batches []written
	blocks  bool // the good sink may keep part of a block (BlockFlusher)
}

// Run processes until Stop is called or ctx is done. After Stop it
// stops reading, finishes storing the batches already read and returns
// nil. Canceling ctx stops it at once, storing included: what was not
// stored stays unacknowledged and is processed again by the next run.
// Failed reads, writes and flushes are retried with backoff (reported to
// Health); Run returns an error only for one marked stream.Permanent.
//
// Three stages overlap: reading and enriching the next batch, writing
// enriched batches to the sinks, and flushing (loading) the batches
// written before. At most one flush runs at a time; while it does, the
// next batches are enriched and written, so a slow warehouse load does
// not idle the enricher, and the bounded channels between the stages hold
// back reading when loading falls behind.
func (p *Enrich) Run(ctx context.Context) error {
	err := p.run(ctx)
	if err != nil && ctx.Err() != nil && !stream.IsPermanent(err) {
		p.Logger.Warn("pipeline: stopped before every batch read was stored; those batches will be processed again at the next start", "err", err)
		return nil
	}
	return err
}

func (p *Enrich) run(ctx context.Context) error {
	if p.Workers <= 0 {
		p.Workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.RetryDelay <= 0 {
		p.RetryDelay = 100 * time.Millisecond
	}
	if p.FlushRecords <= 0 {
		p.FlushRecords = 122880
	}
	if p.FlushInterval <= 0 {
		p.FlushInterval = 5 * time.Second
	}
	if p.IdleFlush <= 0 {
		p.IdleFlush = 50 * time.Millisecond
	}
	m := newMetrics(p.Registry)
	// Reading ends at Stop, at a failure, or with ctx; storing (and its
	// retries) only with ctx.
	store := ctx
	ctx, cancel := p.soft.reading(ctx)
	defer cancel()
	work := make(chan enriched, 2)
	readErr := make(chan error, 1)
	// busy is set while the reader holds a batch it has not handed over:
	// more work is on its way, so an idle flush would only split a load.
	var busy atomic.Bool
	go func() {
		defer close(work)
		for {
			busy.Store(false)
			b, err := read(ctx, p.Source, p.Logger, p.RetryDelay, p.Health)
			if err != nil || b == nil {
				readErr <- err
				return
			}
			busy.Store(true)
			start := time.Now()
			good, bad := p.process(ctx, b.Records)
			m.enrichSeconds.Observe(time.Since(start).Seconds())
			select {
			case work <- enriched{good, bad, b}:
			case <-ctx.Done():
				readErr <- nil
				return
			}
		}
	}()
	bf, blockSink := p.Good.(stream.BlockFlusher)

	// The flusher flushes the sinks and then acknowledges, in order.
	// Batches whose lines the good sink kept for a later flush wait in
	// held until one stores them.
	jobs := make(chan flushJob)
	flushErr := make(chan error, 1)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		var held []written
		for j := range jobs {
			j.batches = append(held, j.batches...)
			start := time.Now()
			var err error
			if held, err = p.flushAndAck(store, j, bf); err != nil {
				flushErr <- err
				for range jobs {
				}
				return
			}
			records := 0
			for _, w := range j.batches[:len(j.batches)-len(held)] {
				records += w.records
			}
			m.records.Add(float64(records))
			p.Logger.Debug("pipeline: stored and acknowledged", "records", records, "batches_kept", len(held), "blocks", j.blocks, "seconds", time.Since(start).Seconds())
		}
	}()
	stopFlusher := func() error {
		close(jobs)
		<-flusherDone
		select {
		case err := <-flushErr:
			return err
		default:
			return nil
		}
	}
	fail := func(err error) error {
		cancel()
		for range work {
		}
		return errors.Join(err, stopFlusher())
	}

	var (
		pending      []written // batches written but not yet handed to the flusher
		pendingCount int       // their outputs
		oldest       time.Time
		mayHold      bool // the last flush let the good sink keep lines
		timer        = time.NewTimer(time.Hour)
	)
	timer.Stop()
	// flush hands the written batches to the flusher, waiting while the
	// previous flush is still running. A full flush also stores what the
	// last one kept.
	flush := func(blocks bool) error {
		if len(pending) == 0 && (blocks || !mayHold) {
			return nil
		}
		timer.Stop()
		select {
		case jobs <- flushJob{pending, blocks}:
		case err := <-flushErr:
			return err
		}
		pending, pendingCount = nil, 0
		// What a block flush keeps is stored by the next flush, or by a
		// full one once the source goes quiet.
		mayHold = blocks && blockSink
		if mayHold {
			timer.Reset(p.IdleFlush)
		}
		return nil
	}
	for {
		var w enriched
		var ok bool
		select {
		case w, ok = <-work:
		case <-timer.C:
			if busy.Load() || len(work) > 0 {
				if len(pending) == 0 {
					timer.Reset(p.IdleFlush)
					continue
				}
				if wait := p.FlushInterval - time.Since(oldest); wait > 0 {
					timer.Reset(min(p.IdleFlush, wait))
					continue
				}
			}
			if err := flush(false); err != nil {
				return fail(err)
			}
			continue
		case err := <-flushErr:
			return fail(err)
		}
		if !ok {
			if err := flush(false); err != nil {
				return errors.Join(err, stopFlusher())
			}
			if err := stopFlusher(); err != nil {
				return err
			}
			break
		}
		lines := make([][]byte, len(w.good))
		for i, g := range w.good {
			lines[i] = g.TSV
		}
		if err := p.write(store, p.Bad, w.bad); err != nil {
			return fail(err)
		}
		if err := p.write(store, p.Good, lines); err != nil {
			return fail(err)
		}
		stream.MarkWritten(p.Good, w.batch)
		stream.MarkWritten(p.Bad, w.batch)
		m.good.Add(float64(len(w.good)))
		m.bad.Add(float64(len(w.bad)))
		for _, o := range p.Observers {
			o.Observe(w.good, w.bad)
		}
		if len(pending) == 0 {
			oldest = time.Now()
		}
		var counts *stats.Counts
		if p.Stats != nil {
			counts = stats.Summarize(w.good, w.bad)
		}
		pending = append(pending, written{w.batch.Ack, len(w.batch.Records), len(lines), counts})
		pendingCount += len(lines) + len(w.bad)
		// A block sink is flushed as soon as it holds a block, counting
		// the lines the last flush kept: it then loads one block, keeps
		// a few lines, and what waits for the next load stays under a
		// block.
		full := pendingCount >= p.FlushRecords || (blockSink && bf.Staged() >= p.FlushRecords)
		if full || time.Since(oldest) >= p.FlushInterval {
			if err := flush(full); err != nil {
				return fail(err)
			}
			continue
		}
		timer.Reset(min(p.IdleFlush, p.FlushInterval-time.Since(oldest)))
	}
	return <-readErr
}

// flushAndAck flushes both sinks, retrying failures, then acknowledges
// the batches stored. It returns the newest batches, whose lines the good
// sink kept for a later flush. bf is the good sink as a BlockFlusher, or
// nil if it is not one.
func (p *Enrich) flushAndAck(ctx context.Context, j flushJob, bf stream.BlockFlusher) (held []written, err error) {
	kept := 0
	if err := retry(ctx, p.Logger, p.RetryDelay, p.Health, func() (err error) {
		if bf != nil && j.blocks {
			kept, err = bf.FlushBlocks(ctx)
			return err
		}
		return stream.Flush(ctx, p.Good)
	}); err != nil {
		return nil, err
	}
	if err := retry(ctx, p.Logger, p.RetryDelay, p.Health, func() error { return stream.Flush(ctx, p.Bad) }); err != nil {
		return nil, err
	}
	// The kept lines are the newest: walk back over the batches until
	// they are all accounted for; every batch before is stored.
	n := len(j.batches)
	for n > 0 && kept > 0 {
		n--
		kept -= j.batches[n].good
	}
	if n > 0 {
		if err := retry(ctx, p.Logger, p.RetryDelay, p.Health, func() error { return j.batches[n-1].ack(ctx) }); err != nil {
			return nil, err
		}
		for _, b := range j.batches[:n] {
			p.Stats.Add(b.stats)
		}
		if p.Health != nil {
			p.Health.OK()
		}
	}
	return j.batches[n:], nil
}

// write stores records, retrying failures until ctx is done.
func (p *Enrich) write(ctx context.Context, s stream.Sink, recs [][]byte) error {
	if len(recs) == 0 {
		return nil
	}
	return retry(ctx, p.Logger, p.RetryDelay, p.Health, func() error { return s.Write(ctx, recs...) })
}

// MaxRetryDelay is the longest pause between two attempts of a failed
// read, write or flush: once the cause is gone (space freed on a full
// disk), work resumes within it.
const MaxRetryDelay = 5 * time.Second

// retry calls f until it succeeds, returns a permanent error, or ctx is
// done, pausing between attempts from delay up to MaxRetryDelay. Failures go to h;
// the stage reports health again once a batch is acknowledged, so that
// a write that succeeds while the load after it fails does not count.
func retry(ctx context.Context, log *slog.Logger, delay time.Duration, h *health.Component, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if stream.IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(errors.New("pipeline stopped before a batch could be stored; it will be processed again at start"), err)
		}
		if h != nil {
			h.Fail(err)
		} else {
			log.Error("pipeline: failed; retrying", "err", err, "in", delay)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(delay*2, MaxRetryDelay)
	}
}

// read reads the next batch from src, retrying failed reads. It returns
// nil, nil when ctx is done.
func read(ctx context.Context, src stream.Source, log *slog.Logger, delay time.Duration, h *health.Component) (*stream.Batch, error) {
	var b *stream.Batch
	err := retry(ctx, log, delay, h, func() (err error) {
		b, err = src.Read(ctx)
		return err
	})
	if ctx.Err() != nil {
		return nil, nil
	}
	return b, err
}

// process enriches records in parallel, keeping their order.
func (p *Enrich) process(ctx context.Context, recs [][]byte) ([]enrich.Good, [][]byte) {
	return Process(ctx, p.Enricher, p.Workers, recs)
}

// Process enriches recs with up to workers goroutines, keeping their
// order: the good events and the bad rows.
func Process(ctx context.Context, e *enrich.Enricher, workers int, recs [][]byte) ([]enrich.Good, [][]byte) {
	workers = min(workers, len(recs))
	if workers <= 1 {
		var out enrich.Output
		for _, r := range recs {
			e.Process(ctx, r, &out)
		}
		return out.Good, out.Bad
	}
	outs := make([]enrich.Output, workers)
	chunk := (len(recs) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(recs))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func(out *enrich.Output, part [][]byte) {
			defer wg.Done()
			for _, r := range part {
				e.Process(ctx, r, out)
			}
		}(&outs[w], recs[lo:hi])
	}
	wg.Wait()
	var good []enrich.Good
	var bad [][]byte
	for _, o := range outs {
		good = append(good, o.Good...)
		bad = append(bad, o.Bad...)
	}
	return good, bad
}

// Forward copies records from a source to a sink unchanged (the
// collector's bad rows into the warehouse).
type Forward struct {
	Source  stream.Source
	Sink    stream.Sink
	Observe func(recs [][]byte)
	// Transform, when set, rewrites each record before it is written
	// (pseudonymization of bad rows); Observe sees the rewritten records.
	Transform  func(rec []byte) []byte
	Logger     *slog.Logger
	RetryDelay time.Duration
	Health     *health.Component // as Enrich.Health
	// Stats, if set, counts the records as bad rows once acknowledged.
	Stats *stats.Recorder

	soft softStop
}

// Stop makes Run return once the batch being forwarded is stored.
func (f *Forward) Stop() { f.soft.stop() }

// Run forwards until Stop is called or ctx is done, with the same
// contract as Enrich.Run.
func (f *Forward) Run(ctx context.Context) error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.RetryDelay <= 0 {
		f.RetryDelay = 100 * time.Millisecond
	}
	rctx, cancel := f.soft.reading(ctx)
	defer cancel()
	for {
		b, err := read(rctx, f.Source, f.Logger, f.RetryDelay, f.Health)
		if err != nil || b == nil {
			return err
		}
		recs := b.Records
		if f.Transform != nil {
			recs = make([][]byte, len(b.Records))
			for i, r := range b.Records {
				recs[i] = f.Transform(r)
			}
		}
		// Written once: a retried Write after a failed Flush would store
		// the batch twice in a buffering sink.
		err = retry(ctx, f.Logger, f.RetryDelay, f.Health, func() error { return f.Sink.Write(ctx, recs...) })
		if err == nil {
			stream.MarkWritten(f.Sink, b)
			err = retry(ctx, f.Logger, f.RetryDelay, f.Health, func() error { return stream.Flush(ctx, f.Sink) })
		}
		if err == nil {
			err = retry(ctx, f.Logger, f.RetryDelay, f.Health, func() error { return b.Ack(ctx) })
		}
		if err != nil {
			if ctx.Err() != nil && !stream.IsPermanent(err) {
				return nil // stopped: the batch is forwarded again at the next start
			}
			return err
		}
		if f.Health != nil {
			f.Health.OK()
		}
		if f.Stats != nil {
			f.Stats.Add(stats.SummarizeBad(recs))
		}
		if f.Observe != nil {
			f.Observe(recs)
		}
	}
}

type metrics struct {
	records, good, bad prometheus.Counter
	enrichSeconds      prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		records:       prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_enrich_payloads_total", Help: "Raw collector payloads enriched, stored and acknowledged."}),
		good:          prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_enrich_good_total", Help: "Enriched events stored."}),
		bad:           prometheus.NewCounter(prometheus.CounterOpts{Name: "furrow_enrich_bad_total", Help: "Bad rows produced by enrichment and stored."}),
		enrichSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "furrow_enrich_batch_seconds", Help: "Time to enrich one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.records, m.good, m.bad, m.enrichSeconds} {
			reg.MustRegister(c)
		}
	}
	return m
}
