package duckdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/testutil"
)

// fullDiskStore opens a store whose database and staging files are on a
// tmpfs of size bytes.
func fullDiskStore(t *testing.T, size int64, trusted bool, checkpoint ...string) (s *Store, dir string) {
	t.Helper()
	dir = testutil.Tmpfs(t, size)
	o := Options{Path: filepath.Join(dir, "furrow.duckdb"), Processor: proc, Threads: 1, Trusted: trusted}
	if len(checkpoint) > 0 {
		o.CheckpointThreshold = checkpoint[0]
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, dir
}

// syncStaging writes what t staged in memory to its file.
func syncStaging(t *testing.T, tb *table) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if err := tb.cur.sync(); err != nil {
		t.Fatal(err)
	}
}

// checkFull checks that err is the retryable error of a full disk.
func checkFull(t *testing.T, err error, op string) {
	t.Helper()
	checkRetryable(t, err, op, "")
	if !errors.Is(err, syscall.ENOSPC) && !strings.Contains(err.Error(), "No space left on device") {
		t.Errorf("error %v, want one saying the disk is full", err)
	}
}

// The database and the staging files on a small tmpfs, filled at each
// step of a load: the step fails with a retryable error and keeps what
// is staged; once space is freed, the next attempts load every event
// once.
func TestFullDisk(t *testing.T) {
	ctx := context.Background()
	t.Run("while staging", func(t *testing.T) {
		s, dir := fullDiskStore(t, 4<<20, false)
		first := pageViews(300, 0)
		if err := s.Good().Write(ctx, first...); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		fill := testutil.Fill(t, dir)
		var staged [][]byte
		var err error
		next := 1000
		for range 100 {
			batch := pageViews(200, next)
			if err = s.Good().Write(ctx, batch...); err != nil {
				staged = append(staged, batch...) // staged once the retry succeeds
				break
			}
			staged = append(staged, batch...)
			next += 200
		}
		checkFull(t, err, "stage")
		n := len(staged) - 200
		if s.Pending() != n {
			t.Errorf("%d pending, want %d", s.Pending(), n)
		}
		os.Remove(fill)
		if err := s.Good().Write(ctx, staged[n:]...); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, s, 0, first, staged)
	})

	t.Run("before a flush", func(t *testing.T) {
		s, dir := fullDiskStore(t, 4<<20, false)
		lines := pageViews(1000, 0) // in memory
		lines = append(lines, []byte("not an event"))
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
		fill := testutil.Fill(t, dir)
		checkFull(t, s.Good().(stream.Flusher).Flush(ctx), "load")
		if s.Pending() != len(lines) {
			t.Errorf("%d pending, want %d", s.Pending(), len(lines))
		}
		os.Remove(fill)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, s, 1, lines[:1000])
	})

	t.Run("during a COPY", func(t *testing.T) {
		s, dir := fullDiskStore(t, 4<<20, false)
		lines := pageViews(1000, 0)
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
		syncStaging(t, s.events)
		fill := testutil.Fill(t, dir)
		for range 3 { // DuckDB cannot write its WAL, and goes on working
			checkFull(t, s.Good().(stream.Flusher).Flush(ctx), "load")
		}
		if s.Pending() != len(lines) || count(t, s, "SELECT count(*) FROM atomic.events") != 0 {
			t.Errorf("%d pending, want %d, and nothing loaded", s.Pending(), len(lines))
		}
		os.Remove(fill)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, s, 0, lines)
	})

	t.Run("during a COPY of a row group", func(t *testing.T) {
		// A load of a row group or more goes to the database file directly.
		s, dir := fullDiskStore(t, 64<<20, true)
		lines := pageViews(RowGroupRows, 0)
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
		syncStaging(t, s.events)
		fill := testutil.Fill(t, dir)
		_, err := s.flushEvents(ctx, RowGroupRows)
		checkFull(t, err, "load")
		os.Remove(fill)
		if held, err := s.flushEvents(ctx, RowGroupRows); err != nil || held != 0 {
			t.Fatalf("held %d, %v", held, err)
		}
		checkLoaded(t, s, 0, lines)
	})

	t.Run("during a checkpoint", func(t *testing.T) {
		// DuckDB invalidates the database when a checkpoint cannot write
		// the file; the store reopens it.
		// Every commit checkpoints: the next load's does.
		s, dir := fullDiskStore(t, 4<<20, false, "1KB")
		first := pageViews(100, 0)
		if err := s.Good().Write(ctx, first...); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		db := s.DB()
		lines := pageViews(1000, 1000)
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
		syncStaging(t, s.events)
		fill := testutil.Fill(t, dir)
		err := s.Good().(stream.Flusher).Flush(ctx)
		checkFull(t, err, "load")
		if !strings.Contains(err.Error(), "invalidated") {
			t.Errorf("error %v, want DuckDB's invalidation", err)
		}
		checkFull(t, s.Good().(stream.Flusher).Flush(ctx), "load")
		os.Remove(fill)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if s.DB() != db {
			t.Error("DB changed")
		}
		checkLoaded(t, s, 0, first, lines)
	})

	t.Run("checkpoint by a query", func(t *testing.T) {
		// The store finds the database invalidated by its next load.
		s, dir := fullDiskStore(t, 4<<20, false)
		first := pageViews(100, 0)
		if err := s.Good().Write(ctx, first...); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		fill := testutil.Fill(t, dir)
		if _, err := s.DB().Exec("CHECKPOINT"); err == nil || !strings.Contains(err.Error(), "invalidated") {
			t.Fatalf("CHECKPOINT on a full disk: %v", err)
		}
		os.Remove(fill)
		lines := pageViews(100, 1000)
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
		// The COPY finds the database invalidated; reopened, it is not
		// retried in the same call.
		err := s.Flush(ctx)
		checkRetryable(t, err, "load", "")
		if !strings.Contains(err.Error(), "invalidated") {
			t.Errorf("error %v, want DuckDB's invalidation", err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, s, 0, first, lines)
	})

	t.Run("while isolating a bad line", func(t *testing.T) {
		s, dir := fullDiskStore(t, 4<<20, true)
		lines := pageViews(200, 0)
		lines[150] = line(map[int]string{event.EventID: "8c3c4f36-8b3e-4c0c-9b0f-00000000ffff", event.TxnID: "forty-two"})
		if err := s.Good().Write(ctx, lines...); err != nil {
			t.Fatal(err)
		}
		syncStaging(t, s.events)
		fill := testutil.Fill(t, dir)
		for range 2 {
			checkFull(t, s.Good().(stream.Flusher).Flush(ctx), "load")
		}
		os.Remove(fill)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, s, 1, lines[:150], lines[151:])
	})
}

// A COPY that failed but had committed (which the count of rows tells)
// is not loaded again: the next flush of the same lines finds it so.
func TestFailedLoadThatCommitted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "f.duckdb"))
	defer s.Close(ctx)
	lines := pageViews(10, 0)
	if err := s.Good().Write(ctx, lines...); err != nil {
		t.Fatal(err)
	}
	// Load them behind the store's back, and have it believe that its
	// COPY of them failed without saying whether it committed. (The
	// sandbox lets COPY read the staging directory only.)
	path := filepath.Join(dir, "f.duckdb.load", "side.tsv")
	if err := os.WriteFile(path, joinLines(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec("COPY atomic.events (" + eventColumns + ") FROM " + quoteString(path) + " " + copyOptions); err != nil {
		t.Fatal(err)
	}
	t.Run("committed", func(t *testing.T) {
		s.run(func() error {
			s.pending = &copyAttempt{target: "events", before: s.rowCount["events"], n: int64(len(lines))}
			s.events.uncertain = s.pending
			return nil
		})
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, s, 0, lines)
	})
	t.Run("count not as loaded", func(t *testing.T) {
		if err := s.Good().Write(ctx, pageViews(5, 100)...); err != nil {
			t.Fatal(err)
		}
		s.run(func() error {
			s.pending = &copyAttempt{target: "events", before: 3, n: 5}
			s.events.uncertain = s.pending
			return nil
		})
		err := s.Flush(ctx)
		var se *Error
		if !errors.As(err, &se) || errors.Is(err, ErrRetryable) || !strings.Contains(err.Error(), "10 rows after a failed load of 5 rows onto 3") {
			t.Fatalf("error %v, want a non-retryable one saying the count is off", err)
		}
		if s.Pending() != 5 {
			t.Errorf("%d pending, want 5", s.Pending())
		}
	})
}

func joinLines(lines [][]byte) []byte {
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return b
}

// Writes and flushes retried as the pipeline does, while the disk fills
// and is freed twice, checkpoints failing too: loading resumes by itself
// and every event is loaded once.
func TestFullDiskUnderLoad(t *testing.T) {
	ctx := context.Background()
	// The WAL takes about 700 bytes per event until a checkpoint.
	s, dir := fullDiskStore(t, 16<<20, false, "256KB")
	var (
		mu       sync.Mutex
		written  [][]byte
		failures = map[string]int{}
		errs     []error
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	retry := func(f func() error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := f()
			mu.Lock()
			switch {
			case err != nil && time.Now().After(deadline):
				errs = append(errs, err)
			case err != nil && !errors.Is(err, ErrRetryable):
				errs = append(errs, err)
			case err != nil:
				var se *Error
				errors.As(err, &se)
				kind := se.Op
				if invalidated(err) {
					kind += ", invalidated"
				}
				failures[kind]++
			}
			mu.Unlock()
			if err == nil || len(errs) > 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wg.Add(2)
	go func() { // the enricher: writes, retried
		defer wg.Done()
		defer close(done)
		for b := range 100 {
			batch := pageViews(100, b*100)
			retry(func() error { return s.Good().Write(ctx, batch...) })
			mu.Lock()
			written = append(written, batch...)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() { // the loader: flushes, retried
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			retry(func() error { return s.Flush(ctx) })
		}
	}()
	for range 2 {
		time.Sleep(150 * time.Millisecond)
		fill := testutil.Fill(t, dir)
		time.Sleep(300 * time.Millisecond)
		os.Remove(fill)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if failures["stage"] == 0 || failures["load"]+failures["load, invalidated"] == 0 {
		t.Errorf("failed attempts %v: want failed writes and flushes", failures)
	}
	t.Logf("failed attempts: %v", failures)
	checkLoaded(t, s, 0, written)
}

// The staging directory and files are private, whatever was there.
func TestStagingFilesArePrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "f.duckdb")
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	if err := os.Mkdir(path+".load", 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path+".load", "events.a.tsv"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	defer s.Close(ctx)
	check := func(p string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	check(path+".load", 0o700)
	for _, name := range []string{"events.a.tsv", "events.b.tsv", "bad_rows.a.tsv", "bad_rows.b.tsv"} {
		check(filepath.Join(path+".load", name), 0o600)
	}
	// The temporary files of a bisection too.
	var created []string
	s.create = func(p string) (file, error) {
		f, err := createPrivate(p)
		if err == nil {
			check(p, 0o600)
			created = append(created, p)
		}
		return f, err
	}
	if err := s.Good().Write(ctx, line(nil), []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(created) == 0 {
		t.Error("no file created for the bad row")
	}
}
