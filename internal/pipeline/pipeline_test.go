package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/stream"
)

// source hands out fixed batches, then blocks; it records acknowledgements.
type source struct {
	mu      sync.Mutex
	batches [][][]byte
	next    int
	acked   []int // index of the batch each Ack call acknowledged
	ackCh   chan int
	onAck   func(i int)
	// failReads makes that many reads fail first.
	failReads int
}

func newSource(batches ...[][]byte) *source {
	return &source{batches: batches, ackCh: make(chan int, 100)}
}

func (s *source) Read(ctx context.Context) (*stream.Batch, error) {
	s.mu.Lock()
	if s.failReads > 0 {
		s.failReads--
		s.mu.Unlock()
		return nil, errors.New("read failed: input/output error")
	}
	if s.next == len(s.batches) {
		s.mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	i := s.next
	s.next++
	s.mu.Unlock()
	return &stream.Batch{Records: s.batches[i], Ack: func(context.Context) error {
		s.mu.Lock()
		s.acked = append(s.acked, i)
		s.mu.Unlock()
		if s.onAck != nil {
			s.onAck(i)
		}
		s.ackCh <- i
		return nil
	}}, nil
}

func (s *source) Close(context.Context) error { return nil }

func (s *source) acks() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.acked...)
}

// sink buffers writes until Flush, like the DuckDB loader. Writes fail
// while failWrites > 0; Flush waits on gate when it is set.
type sink struct {
	mu         sync.Mutex
	buffered   [][]byte
	stored     [][]byte
	writes     int
	flushes    int
	failWrites int
	failWith   error // what failing writes return; default "write failed"
	gate       chan struct{}
}

func (s *sink) Write(_ context.Context, recs ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.failWrites > 0 {
		s.failWrites--
		if s.failWith != nil {
			return s.failWith
		}
		return errors.New("write failed: sink unavailable")
	}
	for _, r := range recs {
		s.buffered = append(s.buffered, append([]byte(nil), r...))
	}
	return nil
}

func (s *sink) Flush(context.Context) error {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	s.stored = append(s.stored, s.buffered...)
	s.buffered = nil
	return nil
}

func (s *sink) Close(context.Context) error { return nil }

func (s *sink) snapshot() (stored [][]byte, flushes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.stored...), s.flushes
}

func testEnricher(t testing.TB) *enrich.Enricher {
	t.Helper()
	e, err := enrich.New(enrich.Options{
		Resolver:  iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil)}}),
		Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0-test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pageView is a raw collector payload holding one page view with the
// given event id.
func pageView(eid string) []byte {
	p := &payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000,
		Encoding: "UTF-8", Collector: "furrow-test", Path: "/i",
		Querystring: "e=pv&p=web&tv=js-3.24.0&aid=shop&eid=" + eid + "&url=https%3A%2F%2Fshop.example.com%2F",
		Hostname:    "collector.test",
	}
	return p.Marshal()
}

func eid(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func eventIDs(t *testing.T, lines [][]byte) []string {
	t.Helper()
	ids := make([]string, len(lines))
	for i, l := range lines {
		f := strings.Split(string(l), "\t")
		if len(f) != event.NumFields {
			t.Fatalf("line %d has %d fields", i, len(f))
		}
		ids[i] = f[event.EventID]
	}
	return ids
}

// run starts the pipeline and returns a function that stops it
// gracefully (Stop) and returns Run's error.
func run(t *testing.T, p *Enrich) (stop func() error) {
	stop, _ = runHard(t, p)
	return stop
}

// runHard is run, also returning the function that cancels Run's
// context: a hard stop.
func runHard(t *testing.T, p *Enrich) (stop func() error, cancel context.CancelFunc) {
	t.Helper()
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	return func() error {
		p.Stop()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("pipeline did not stop")
			return nil
		}
	}, cancel
}

// waitBuffered waits until s holds at least n unflushed records.
func waitBuffered(t *testing.T, s *sink, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.buffered)
		s.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records written, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitAck(t *testing.T, s *source, want int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case i := <-s.ackCh:
			if i == want {
				return
			}
		case <-deadline:
			t.Fatalf("batch %d was not acknowledged; acks so far %v", want, s.acks())
		}
	}
}

func TestEnrichAcknowledgesOnlyAfterGoodAndBadAreFlushed(t *testing.T) {
	src := newSource(
		[][]byte{pageView(eid(1)), []byte("not thrift")},
		[][]byte{pageView(eid(2))},
	)
	good := &sink{gate: make(chan struct{})}
	bad := &sink{}
	stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: bad, Workers: 1, IdleFlush: time.Millisecond})

	// Both batches are enriched and written, but the good sink's flush
	// is held: nothing may be acknowledged yet.
	waitBuffered(t, good, 2)
	time.Sleep(20 * time.Millisecond)
	if a := src.acks(); len(a) != 0 {
		t.Fatalf("acknowledged %v before the good sink was flushed", a)
	}
	close(good.gate)
	waitAck(t, src, 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	stored, _ := good.snapshot()
	if got := eventIDs(t, stored); strings.Join(got, ",") != eid(1)+","+eid(2) {
		t.Errorf("good events %v", got)
	}
	badStored, badFlushes := bad.snapshot()
	if len(badStored) != 1 || badFlushes == 0 {
		t.Fatalf("bad rows %d, bad flushes %d; want 1 row, flushed", len(badStored), badFlushes)
	}
	if !strings.Contains(string(badStored[0]), "iglu:com.snowplowanalytics.snowplow.badrows/collector_payload_format_violation/") {
		t.Errorf("bad row is not a collector_payload_format_violation: %s", badStored[0])
	}
	// A later batch's acknowledgement covers the earlier ones, so the
	// pipeline acknowledges once per flush.
	if a := src.acks(); a[len(a)-1] != 1 {
		t.Errorf("acks %v, want the last to be batch 1", a)
	}
}

func TestEnrichFlushTriggers(t *testing.T) {
	tests := []struct {
		name    string
		p       *Enrich
		batches int
		// wantFlushes is the fewest good-sink flushes expected once every
		// batch is acknowledged; wantMax the most.
		wantMin, wantMax int
	}{
		// Records reach FlushRecords with every batch: one flush each.
		{"records", &Enrich{FlushRecords: 2, IdleFlush: time.Hour, FlushInterval: time.Hour}, 5, 5, 5},
		// Below FlushRecords, a pause after the last batch flushes.
		{"idle", &Enrich{FlushRecords: 1000, IdleFlush: 5 * time.Millisecond, FlushInterval: time.Hour}, 3, 1, 3},
		// Below FlushRecords with no idle flush, FlushInterval bounds the wait.
		{"interval", &Enrich{FlushRecords: 1000, IdleFlush: time.Hour, FlushInterval: 20 * time.Millisecond}, 3, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batches [][][]byte
			for i := range tt.batches {
				batches = append(batches, [][]byte{pageView(eid(2 * i)), pageView(eid(2*i + 1))})
			}
			src := newSource(batches...)
			good, bad := &sink{}, &sink{}
			p := tt.p
			p.Source, p.Enricher, p.Good, p.Bad, p.Workers = src, testEnricher(t), good, bad, 1
			stop := run(t, p)
			waitAck(t, src, tt.batches-1)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			stored, flushes := good.snapshot()
			if len(stored) != 2*tt.batches {
				t.Errorf("stored %d events, want %d", len(stored), 2*tt.batches)
			}
			if flushes < tt.wantMin || flushes > tt.wantMax {
				t.Errorf("%d flushes, want %d to %d", flushes, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestEnrichRetriesFailedWrites(t *testing.T) {
	src := newSource([][]byte{pageView(eid(1)), pageView(eid(2))})
	good := &sink{failWrites: 3}
	stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, RetryDelay: time.Millisecond})
	waitAck(t, src, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stored, _ := good.snapshot()
	if got := eventIDs(t, stored); len(got) != 2 || got[0] != eid(1) || got[1] != eid(2) {
		t.Errorf("stored %v, want each event once in order", got)
	}
	if good.writes != 4 {
		t.Errorf("%d writes, want 3 failures and 1 success", good.writes)
	}
}

func TestEnrichStopsWithoutAcknowledgingUnstoredBatches(t *testing.T) {
	src := newSource([][]byte{pageView(eid(1))})
	good := &sink{failWrites: 1 << 30}
	h := health.New(slog.New(slog.DiscardHandler), 0)
	p := &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, RetryDelay: time.Millisecond, Health: h.Component("enrich")}
	stop, cancel := runHard(t, p)
	for {
		good.mu.Lock()
		w := good.writes
		good.mu.Unlock()
		if w >= 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := h.Err(); err == nil || !strings.Contains(err.Error(), "enrich: write failed") {
		t.Errorf("health while writes fail: %v", err)
	}
	// A graceful stop goes on retrying the write; a hard one ends it.
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := stop(); err != nil {
		t.Errorf("Run returned %v after a hard stop, want nil", err)
	}
	if a := src.acks(); len(a) != 0 {
		t.Errorf("acknowledged %v although nothing was stored", a)
	}
}

// A permanent error stops the pipeline with that error.
func TestEnrichStopsOnAPermanentError(t *testing.T) {
	src := newSource([][]byte{pageView(eid(1))})
	good := &sink{failWrites: 1 << 30, failWith: stream.Permanent(errors.New("permission denied"))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, RetryDelay: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if err := p.Run(ctx); !stream.IsPermanent(err) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Run returned %v, want the permanent error", err)
	}
	if a := src.acks(); len(a) != 0 {
		t.Errorf("acknowledged %v although nothing was stored", a)
	}
}

// A source whose reads fail is retried, and reported unhealthy
// meanwhile; the batches after are processed.
func TestEnrichRetriesFailedReads(t *testing.T) {
	src := newSource([][]byte{pageView(eid(1))})
	src.failReads = 3
	h := health.New(slog.New(slog.DiscardHandler), 0)
	good := &sink{}
	stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, RetryDelay: time.Millisecond, Health: h.Component("enrich"), IdleFlush: time.Millisecond})
	waitAck(t, src, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if stored, _ := good.snapshot(); len(stored) != 1 {
		t.Fatalf("stored %d events", len(stored))
	}
	if err := h.Err(); err != nil {
		t.Fatalf("still unhealthy after reads succeeded: %v", err)
	}
}

func TestEnrichKeepsOrderAcrossWorkers(t *testing.T) {
	const n = 1000
	var batches [][][]byte
	var want []string
	for b := range 4 {
		var recs [][]byte
		for i := range n / 4 {
			id := eid(b*n + i)
			recs = append(recs, pageView(id))
			want = append(want, id)
		}
		batches = append(batches, recs)
	}
	src := newSource(batches...)
	good := &sink{}
	var observed int
	stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, Workers: 4,
		Observers: []Observer{observerFunc(func(g []enrich.Good, _ [][]byte) { observed += len(g) })}})
	waitAck(t, src, 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stored, _ := good.snapshot()
	if got := eventIDs(t, stored); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Error("events were stored out of order")
	}
	if observed != n {
		t.Errorf("observers saw %d events, want %d", observed, n)
	}
}

type observerFunc func([]enrich.Good, [][]byte)

func (f observerFunc) Observe(g []enrich.Good, b [][]byte) { f(g, b) }

func TestForwardAcknowledgesAfterFlush(t *testing.T) {
	src := newSource([][]byte{[]byte("a"), []byte("b")}, [][]byte{[]byte("c")})
	dst := &sink{failWrites: 1}
	var seen []string
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	f := &Forward{Source: src, Sink: dst, RetryDelay: time.Millisecond, Logger: slog.New(slog.DiscardHandler), Observe: func(recs [][]byte) {
		for _, r := range recs {
			seen = append(seen, string(r))
		}
	}}
	defer cancel()
	go func() { errc <- f.Run(ctx) }()
	waitAck(t, src, 1)
	f.Stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	stored, flushes := dst.snapshot()
	if len(stored) != 3 || string(stored[0]) != "a" || string(stored[2]) != "c" || flushes != 2 {
		t.Errorf("stored %q with %d flushes", stored, flushes)
	}
	if strings.Join(seen, "") != "abc" {
		t.Errorf("observed %q", seen)
	}
}

// While one flush is held up, the next batch is still enriched and
// written; nothing is acknowledged until its flush returns, and the
// acknowledgements keep their order.
func TestEnrichWritesWhileFlushing(t *testing.T) {
	src := newSource(
		[][]byte{pageView(eid(1)), pageView(eid(2))},
		[][]byte{pageView(eid(3)), pageView(eid(4))},
		[][]byte{pageView(eid(5)), pageView(eid(6))},
	)
	good := &sink{gate: make(chan struct{})}
	stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, Workers: 1,
		FlushRecords: 2, IdleFlush: time.Hour, FlushInterval: time.Hour})

	// The first flush waits on the gate. The second batch is written
	// meanwhile; the third waits for the flusher to be free.
	waitBuffered(t, good, 4)
	if a := src.acks(); len(a) != 0 {
		t.Fatalf("acknowledged %v before any flush returned", a)
	}
	close(good.gate)
	waitAck(t, src, 2)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a := src.acks(); !slices.IsSorted(a) || a[len(a)-1] != 2 {
		t.Errorf("acks %v, want increasing and ending with batch 2", a)
	}
	stored, _ := good.snapshot()
	if got := eventIDs(t, stored); len(got) != 6 || got[0] != eid(1) || got[5] != eid(6) {
		t.Errorf("stored %v", got)
	}
}

// blockSink stores whole blocks on FlushBlocks and keeps the rest, like
// the DuckDB loader; Flush stores everything.
type blockSink struct {
	sink
	block int
	kinds []string
}

func (s *blockSink) FlushBlocks(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	s.kinds = append(s.kinds, "blocks")
	keep := len(s.buffered) % s.block
	n := len(s.buffered) - keep
	s.stored = append(s.stored, s.buffered[:n]...)
	s.buffered = append([][]byte(nil), s.buffered[n:]...)
	return keep, nil
}

func (s *blockSink) Staged() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buffered)
}

func (s *blockSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	s.kinds = append(s.kinds, "full")
	s.mu.Unlock()
	return s.sink.Flush(ctx)
}

// A batch whose lines a block flush kept is acknowledged only once a
// later flush stores them: the next full flush, when the source goes
// quiet or the pipeline stops.
func TestEnrichAcknowledgesKeptLinesLater(t *testing.T) {
	for _, tt := range []struct {
		name string
		idle time.Duration
	}{{"idle", 10 * time.Millisecond}, {"stop", time.Hour}} {
		t.Run(tt.name, func(t *testing.T) {
			// Two batches of two events; the flush after them stores a
			// block of three and keeps the newest event.
			src := newSource(
				[][]byte{pageView(eid(1)), pageView(eid(2))},
				[][]byte{pageView(eid(3)), pageView(eid(4))},
			)
			good := &blockSink{block: 3}
			storedAtAck := map[int]int{}
			src.onAck = func(i int) {
				stored, _ := good.snapshot()
				storedAtAck[i] = len(stored)
			}
			stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, Workers: 1,
				FlushRecords: 4, IdleFlush: tt.idle, FlushInterval: time.Hour})
			waitAck(t, src, 0)
			if tt.name == "idle" {
				waitAck(t, src, 1)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if a := src.acks(); !slices.Equal(a, []int{0, 1}) {
				t.Fatalf("acks %v, want batch 0 then batch 1", a)
			}
			if storedAtAck[0] != 3 || storedAtAck[1] != 4 {
				t.Errorf("events stored when batches were acknowledged: %v, want 3 then 4", storedAtAck)
			}
			if !slices.Equal(good.kinds, []string{"blocks", "full"}) {
				t.Errorf("flushes %v, want a block flush then a full one", good.kinds)
			}
			stored, _ := good.snapshot()
			if got := eventIDs(t, stored); strings.Join(got, ",") != strings.Join([]string{eid(1), eid(2), eid(3), eid(4)}, ",") {
				t.Errorf("stored %v", got)
			}
		})
	}
}

// A block sink is flushed once what it holds makes a block, counting
// the lines the last flush kept, even if fewer than FlushRecords outputs
// came since: what waits for a load stays under a block.
func TestEnrichFlushesWhenKeptLinesMakeABlock(t *testing.T) {
	// Three batches of three events, blocks of four.
	var batches [][][]byte
	for b := range 3 {
		batches = append(batches, [][]byte{pageView(eid(3*b + 1)), pageView(eid(3*b + 2)), pageView(eid(3*b + 3))})
	}
	src := newSource(batches...)
	good := &blockSink{block: 4}
	storedAtAck := map[int]int{}
	src.onAck = func(i int) {
		stored, _ := good.snapshot()
		storedAtAck[i] = len(stored)
	}
	stop := run(t, &Enrich{Source: src, Enricher: testEnricher(t), Good: good, Bad: &sink{}, Workers: 1,
		FlushRecords: 4, IdleFlush: time.Hour, FlushInterval: time.Hour})
	// Batch 1 brings six lines: four stored, two kept. Batch 2 brings
	// only three outputs, but with the two kept that is a block: four
	// more stored, which completes batch 1.
	waitAck(t, src, 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if a := src.acks(); !slices.Equal(a, []int{0, 1, 2}) {
		t.Fatalf("acks %v", a)
	}
	// The first flush may find batch 2 written already and store eight.
	if (storedAtAck[0] != 4 && storedAtAck[0] != 8) || storedAtAck[1] != 8 || storedAtAck[2] != 9 {
		t.Errorf("events stored when batches were acknowledged: %v, want 4 (or 8), 8, 9", storedAtAck)
	}
	if !slices.Equal(good.kinds, []string{"blocks", "blocks", "full"}) {
		t.Errorf("flushes %v", good.kinds)
	}
}
