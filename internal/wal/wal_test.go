package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB, dir string, mod func(*Options)) *Log {
	t.Helper()
	o := Options{Dir: dir, Logger: quietLogger()}
	if mod != nil {
		mod(&o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readAll(t *testing.T, r *Reader) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		recs, err := r.Read(ctx, 1000, 1<<20)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			out = append(out, append([]byte(nil), rec.Data...))
		}
	}
}

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	for i := 0; i < 10; i++ {
		if err := l.Append([]byte(fmt.Sprintf("rec-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.Reader("enrich")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.Read(context.Background(), 4, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || string(recs[3].Data) != "rec-3" {
		t.Fatalf("got %d records, last %q", len(recs), recs[len(recs)-1].Data)
	}
	if err := r.Commit(recs[3].Next); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, dir, nil)
	defer l.Close()
	r, err = l.Reader("enrich")
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 6 || string(got[0]) != "rec-4" || string(got[5]) != "rec-9" {
		t.Fatalf("after reopen got %q", got)
	}
	// A second reader starts from the beginning.
	r2, _ := l.Reader("other")
	if got := readAll(t, r2); len(got) != 10 {
		t.Fatalf("new reader got %d records", len(got))
	}
}

func TestConcurrentAppendsAllReadOnce(t *testing.T) {
	l := open(t, t.TempDir(), func(o *Options) { o.SegmentBytes = 4096 })
	defer l.Close()
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append([]byte(fmt.Sprintf("%d/%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	r, _ := l.Reader("x")
	seen := map[string]bool{}
	for _, rec := range readAll(t, r) {
		if seen[string(rec)] {
			t.Fatalf("duplicate %s", rec)
		}
		seen[string(rec)] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("read %d distinct records, want %d", len(seen), writers*each)
	}
	segs, _ := listSegments(l.opts.Dir)
	if len(segs) < 5 {
		t.Fatalf("expected segment rolling, have %d segments", len(segs))
	}
}

func TestReaderWaitsForNewData(t *testing.T) {
	l := open(t, t.TempDir(), nil)
	defer l.Close()
	r, _ := l.Reader("x")
	got := make(chan string, 1)
	go func() {
		recs, err := r.Read(context.Background(), 10, 1<<20)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(recs[0].Data)
	}()
	time.Sleep(20 * time.Millisecond)
	l.Append([]byte("late"))
	select {
	case s := <-got:
		if s != "late" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader did not wake up")
	}
}

func TestPruneDeletesConsumedSegments(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, func(o *Options) { o.SegmentBytes = 64 })
	defer l.Close()
	for i := 0; i < 20; i++ {
		l.Append(bytes.Repeat([]byte{'x'}, 40))
	}
	a, _ := l.Reader("a")
	b, _ := l.Reader("b")
	readAll(t, a)
	a.Commit(a.Position())
	before, _ := listSegments(dir)
	if len(before) < 10 {
		t.Fatalf("only %d segments", len(before))
	}
	// b has not committed: nothing may go.
	if now, _ := listSegments(dir); len(now) != len(before) {
		t.Fatalf("pruned while reader b lagged")
	}
	readAll(t, b)
	b.Commit(b.Position())
	after, _ := listSegments(dir)
	if len(after) != 1 {
		t.Fatalf("%d segments left after both readers committed", len(after))
	}
	if l.Lag("a") != 0 || l.Lag("b") != 0 {
		t.Fatalf("lag a=%d b=%d", l.Lag("a"), l.Lag("b"))
	}
}

func TestOffsetsContinueAfterFullPrune(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, func(o *Options) { o.SegmentBytes = 16 })
	l.Append([]byte("0123456789"))
	l.Append([]byte("abcdefghij"))
	r, _ := l.Reader("a")
	readAll(t, r)
	r.Commit(r.Position())
	end := l.End()
	l.Close()
	// Remove every segment: the reader offset alone must place the new log.
	segs, _ := listSegments(dir)
	for _, s := range segs {
		os.Remove(segmentPath(dir, s))
	}
	l = open(t, dir, nil)
	defer l.Close()
	if l.End() != end {
		t.Fatalf("end = %d, want %d", l.End(), end)
	}
	l.Append([]byte("new"))
	r, err := l.Reader("a")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || string(got[0]) != "new" {
		t.Fatalf("got %q", got)
	}
}

func TestLargeRecordBeyondReadSize(t *testing.T) {
	l := open(t, t.TempDir(), nil)
	defer l.Close()
	big := bytes.Repeat([]byte{'b'}, 100_000)
	l.Append([]byte("small"), big, []byte("after"))
	r, _ := l.Reader("x")
	var got [][]byte
	for len(got) < 3 {
		recs, err := r.Read(context.Background(), 10, 1024)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			got = append(got, append([]byte(nil), rec.Data...))
		}
	}
	if !bytes.Equal(got[1], big) || string(got[2]) != "after" {
		t.Fatalf("records mangled: lens %d %d %d", len(got[0]), len(got[1]), len(got[2]))
	}
}

func TestFsyncAlwaysAndLimits(t *testing.T) {
	l := open(t, t.TempDir(), func(o *Options) { o.Fsync = FsyncAlways; o.MaxRecordBytes = 10 })
	if err := l.Append([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	l.Close()
	if err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := Open(Options{Dir: t.TempDir(), Fsync: "sometimes"}); err == nil {
		t.Fatal("bad policy accepted")
	}
	if _, err := l.Reader("../x"); err == nil {
		t.Fatal("bad reader name accepted")
	}
}

func TestWriteFailureIsReportedAndRecovered(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	defer l.Close()
	l.Append([]byte("before"))
	// Swap the active file for a read-only handle to force a write error.
	l.fileMu.Lock()
	good := l.active
	ro, _ := os.Open(filepath.Join(dir, good.Name()[len(dir)+1:]))
	l.active = ro
	l.fileMu.Unlock()
	if err := l.Append([]byte("lost")); err == nil {
		t.Fatal("expected a write error")
	}
	if l.Healthy() {
		t.Fatal("log reports healthy after a failed write")
	}
	l.fileMu.Lock()
	l.active = good
	l.fileMu.Unlock()
	ro.Close()
	if err := l.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if !l.Healthy() {
		t.Fatal("not healthy after a good write")
	}
	r, _ := l.Reader("x")
	if got := readAll(t, r); len(got) != 2 || string(got[1]) != "after" {
		t.Fatalf("got %q", got)
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	for _, policy := range []FsyncPolicy{FsyncInterval, FsyncAlways} {
		b.Run(string(policy), func(b *testing.B) {
			l := open(b, b.TempDir(), func(o *Options) { o.Fsync = policy })
			defer l.Close()
			rec := bytes.Repeat([]byte{'r'}, 600)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Append(rec); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkRead(b *testing.B) {
	l := open(b, b.TempDir(), nil)
	defer l.Close()
	rec := bytes.Repeat([]byte{'r'}, 600)
	for i := 0; i < b.N; i++ {
		l.Append(rec)
	}
	r, _ := l.Reader("x")
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	n := 0
	for n < b.N {
		recs, err := r.Read(context.Background(), 1000, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
}

// A removed reader no longer holds segments.
func TestRemoveReader(t *testing.T) {
	l, err := Open(Options{Dir: t.TempDir(), SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	old, _ := l.Reader("old")
	old.Close()
	cur, _ := l.Reader("cur")
	defer cur.Close()
	for range 100 {
		if err := l.Append(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cur.Commit(l.End()); err != nil {
		t.Fatal(err)
	}
	if got := l.Readers(); len(got) != 2 || got[0] != "cur" || got[1] != "old" {
		t.Fatalf("readers %v", got)
	}
	held := l.firstOffset()
	if err := l.RemoveReader("old"); err != nil {
		t.Fatal(err)
	}
	if got := l.Readers(); len(got) != 1 || l.firstOffset() <= held {
		t.Fatalf("readers %v, first offset %d (was %d)", got, l.firstOffset(), held)
	}
}
