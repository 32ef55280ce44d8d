package loader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/wal"
)

// fakeLoader records what it loads, as a transactional destination would:
// rows and position together. fail, when set, decides each load's error.
type fakeLoader struct {
	mu       sync.Mutex
	good     []string
	bad      []string
	position int64
	batches  []Batch
	fail     func(n int) error
	calls    int
}

func (f *fakeLoader) Load(_ context.Context, b Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		if err := f.fail(f.calls); err != nil {
			return err
		}
	}
	for _, g := range b.Good {
		f.good = append(f.good, string(g))
	}
	for _, r := range b.Bad {
		f.bad = append(f.bad, string(r))
	}
	f.position = b.End
	f.batches = append(f.batches, b)
	return nil
}

func (f *fakeLoader) Position(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.position, nil
}

func (f *fakeLoader) Close(context.Context) error { return nil }

func (f *fakeLoader) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.good), len(f.bad)
}

func openLog(t *testing.T, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendEvents writes n good events and every tenth a bad row too.
func appendEvents(t *testing.T, l *wal.Log, from, n int) (good, bad int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		recs := [][]byte{GoodRecord([]byte(fmt.Sprintf("event-%d", i)))}
		good++
		if i%10 == 0 {
			recs = append(recs, BadRecord([]byte(fmt.Sprintf(`{"bad":%d}`, i))))
			bad++
		}
		if err := l.Append(recs...); err != nil {
			t.Fatal(err)
		}
	}
	return good, bad
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startRunner(t *testing.T, r *Runner) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// Every record is loaded once, in order, in batches that cover the log
// without gaps, good and bad apart; the reader's position follows.
func TestRunnerLoadsInOrder(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	f := &fakeLoader{}
	r := &Runner{Name: "a", Loader: f, Log: l, MaxRecords: 64, MaxDelay: time.Millisecond, Registry: prometheus.NewRegistry()}
	stop := startRunner(t, r)
	good, bad := appendEvents(t, l, 0, 1000)
	waitFor(t, "the loads", func() bool { g, b := f.counts(); return g == good && b == bad })
	waitFor(t, "the commit", func() bool { return l.Lag(ReaderName("a")) == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, g := range f.good {
		if g != fmt.Sprintf("event-%d", i) {
			t.Fatalf("good[%d] = %s", i, g)
		}
	}
	for i := 1; i < len(f.batches); i++ {
		if f.batches[i].Start != f.batches[i-1].End {
			t.Fatalf("batch %d starts at %d, the one before ended at %d", i, f.batches[i].Start, f.batches[i-1].End)
		}
		if n := len(f.batches[i].Good) + len(f.batches[i].Bad); n > 64 {
			t.Fatalf("batch %d holds %d records, more than MaxRecords", i, n)
		}
	}
}

// A retryable failure is retried until the destination comes back, with
// nothing lost or loaded twice; a permanent one stops the runner.
func TestRunnerRetriesAndStops(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	down := true
	var mu sync.Mutex
	f := &fakeLoader{fail: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return Retryable(errors.New("connection refused"))
		}
		return nil
	}}
	r := &Runner{Name: "flaky", Loader: f, Log: l, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}
	stop := startRunner(t, r)
	good, bad := appendEvents(t, l, 0, 300)
	waitFor(t, "retries", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.calls > 3 })
	if g, _ := f.counts(); g != 0 {
		t.Fatalf("%d loaded while down", g)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, "catching up", func() bool { g, b := f.counts(); return g == good && b == bad })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	f2 := &fakeLoader{fail: func(int) error { return errors.New("password authentication failed") }}
	r2 := &Runner{Name: "refused", Loader: f2, Log: l}
	err := r2.Run(context.Background())
	if err == nil || IsRetryable(err) || f2.calls != 1 {
		t.Fatalf("permanent error: %v after %d calls", err, f2.calls)
	}
	if want := "destination refused: password authentication failed"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// A batch the destination already holds (it committed its rows and
// position, then furrow died before the reader's commit) is not loaded
// again.
func TestRunnerSkipsWhatTheDestinationHolds(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	appendEvents(t, l, 0, 100)
	// The destination stored the first 100 events; the reader committed
	// nothing.
	f := &fakeLoader{position: l.End()}
	good, bad := appendEvents(t, l, 100, 50)
	r := &Runner{Name: "db", Loader: f, Log: l, MaxRecords: 100, MaxDelay: time.Millisecond}
	stop := startRunner(t, r)
	waitFor(t, "the new events", func() bool { g, b := f.counts(); return g == good && b == bad })
	waitFor(t, "the commit", func() bool { return l.Lag(ReaderName("db")) == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if f.good[0] != "event-100" {
		t.Fatalf("first loaded %s, want event-100: the stored events were loaded again", f.good[0])
	}
	l.Close()
}

// Two destinations read the same log apart: one that is down holds back
// only itself, its backlog waits in the log, and it catches up later.
func TestRunnersAreIsolated(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	var mu sync.Mutex
	down := true
	slow := &fakeLoader{fail: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return Retryable(errors.New("bucket unreachable"))
		}
		return nil
	}}
	fast := &fakeLoader{}
	stop1 := startRunner(t, &Runner{Name: "fast", Loader: fast, Log: l, MaxDelay: time.Millisecond})
	stop2 := startRunner(t, &Runner{Name: "slow", Loader: slow, Log: l, MaxDelay: time.Millisecond, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond})
	good, bad := appendEvents(t, l, 0, 500)
	waitFor(t, "the healthy destination", func() bool { g, b := fast.counts(); return g == good && b == bad })
	if g, _ := slow.counts(); g != 0 {
		t.Fatalf("the destination that is down loaded %d", g)
	}
	if l.Lag(ReaderName("slow")) == 0 {
		t.Fatal("no backlog kept for the destination that is down")
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, "the destination that came back", func() bool { g, b := slow.counts(); return g == good && b == bad })
	if err := errors.Join(stop1(), stop2()); err != nil {
		t.Fatal(err)
	}
}

// A permanent error with PermanentRetryDelay holds the destination back
// and is tried again; Stop ends the wait.
func TestRunnerRetriesPermanentSlowly(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	var mu sync.Mutex
	refused := true
	f := &fakeLoader{fail: func(int) error {
		mu.Lock()
		defer mu.Unlock()
		if refused {
			return errors.New("password authentication failed")
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	r := &Runner{Name: "pg", Loader: f, Log: l, MaxDelay: time.Millisecond, PermanentRetryDelay: 20 * time.Millisecond, Registry: reg}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	good, bad := appendEvents(t, l, 0, 50)
	waitFor(t, "two refusals", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.calls >= 2 })
	mu.Lock()
	refused = false
	mu.Unlock()
	waitFor(t, "the loads", func() bool { g, b := f.counts(); return g == good && b == bad })
	r.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "furrow_destination_retries_total" {
			for _, m := range mf.Metric {
				for _, lp := range m.Label {
					if lp.GetName() == "class" && lp.GetValue() == "permanent" && m.Counter.GetValue() >= 2 {
						found = true
					}
				}
			}
		}
	}
	if !found {
		t.Fatal("no furrow_destination_retries_total{class=permanent} >= 2")
	}
}

// Open is retried while the destination is unreachable.
func TestRunnerOpensLazily(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	f := &fakeLoader{}
	tries := 0
	r := &Runner{Name: "late", Log: l, MaxDelay: time.Millisecond, RetryDelay: time.Millisecond,
		Open: func(context.Context) (Loader, error) {
			if tries++; tries < 3 {
				return nil, Retryable(errors.New("connection refused"))
			}
			return f, nil
		}}
	stop := startRunner(t, r)
	good, bad := appendEvents(t, l, 0, 20)
	waitFor(t, "the loads", func() bool { g, b := f.counts(); return g == good && b == bad })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// IdleDelay loads a lone batch long before MaxDelay, unless Busy says
// more is coming.
func TestRunnerIdleDelay(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	f := &fakeLoader{}
	var mu sync.Mutex
	busy := true
	r := &Runner{Name: "idle", Loader: f, Log: l, MaxDelay: time.Hour, IdleDelay: 5 * time.Millisecond,
		Busy: func() bool { mu.Lock(); defer mu.Unlock(); return busy }}
	stop := startRunner(t, r)
	appendEvents(t, l, 0, 3)
	time.Sleep(50 * time.Millisecond)
	if g, _ := f.counts(); g != 0 {
		t.Fatalf("%d loaded while upstream was busy", g)
	}
	mu.Lock()
	busy = false
	mu.Unlock()
	waitFor(t, "the idle load", func() bool { g, _ := f.counts(); return g == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// stagingLoader is a fakeLoader that takes its lines through Stage and
// wants batches of want good events.
type stagingLoader struct {
	fakeLoader
	want            int
	staged          Batch // lines staged for the next Load
	stages, emptied int
}

func (s *stagingLoader) Stage(_ context.Context, good, bad [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stages++
	for _, g := range good {
		s.staged.Good = append(s.staged.Good, append([]byte(nil), g...))
	}
	for _, b := range bad {
		s.staged.Bad = append(s.staged.Bad, append([]byte(nil), b...))
	}
	return nil
}

func (s *stagingLoader) Load(ctx context.Context, b Batch) error {
	s.mu.Lock()
	if len(b.Good)+len(b.Bad) > 0 {
		s.mu.Unlock()
		return errors.New("a Stager's Load was given lines")
	}
	b.Good, b.Bad = s.staged.Good, s.staged.Bad
	s.mu.Unlock()
	if err := s.fakeLoader.Load(ctx, b); err != nil {
		return err // staged lines kept for the retry
	}
	s.mu.Lock()
	s.staged = Batch{}
	s.emptied++
	s.mu.Unlock()
	return nil
}

func (s *stagingLoader) Want() int { return s.want }

// A Stager gets every line through Stage, none in the Batch, and a
// failed load is retried from what was staged; a Wanter gets batches
// of the good events it wants, the records after read again for the
// next batch.
func TestRunnerStagesAndWants(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	f := &stagingLoader{want: 7}
	f.fail = func(n int) error {
		if n == 2 {
			return Retryable(errors.New("outage"))
		}
		return nil
	}
	good, bad := appendEvents(t, l, 0, 500)
	r := &Runner{Name: "a", Loader: f, Log: l, MaxRecords: 1000, MaxDelay: 50 * time.Millisecond, RetryDelay: time.Millisecond, Registry: prometheus.NewRegistry()}
	stop := startRunner(t, r)
	waitFor(t, "the loads", func() bool { g, b := f.counts(); return g == good && b == bad })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, g := range f.good {
		if g != fmt.Sprintf("event-%d", i) {
			t.Fatalf("good[%d] = %s", i, g)
		}
	}
	for i, b := range f.batches {
		if len(b.Good) > 7 {
			t.Fatalf("batch %d holds %d good events, want at most 7", i, len(b.Good))
		}
		if i > 0 && b.Start != f.batches[i-1].End {
			t.Fatalf("batch %d starts at %d, the one before ended at %d", i, b.Start, f.batches[i-1].End)
		}
		if i < len(f.batches)-1 && len(b.Good) != 7 {
			t.Fatalf("batch %d holds %d good events under traffic, want 7", i, len(b.Good))
		}
	}
	if f.stages == 0 || f.emptied != len(f.batches) {
		t.Fatalf("%d stages, %d loads emptied the staging, %d batches", f.stages, f.emptied, len(f.batches))
	}
}
