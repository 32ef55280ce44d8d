package duckdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/stream"
)

// faultyFile passes calls to a real file until it is armed: then a write
// takes at most room more bytes and fails with err beyond them (a full
// disk takes what fits, then refuses), and Truncate fails with err.
type faultyFile struct {
	file
	path string

	mu   sync.Mutex
	err  error
	room int64
}

func (f *faultyFile) arm(err error, room int64) {
	f.mu.Lock()
	f.err, f.room = err, room
	f.mu.Unlock()
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		return f.file.WriteAt(p, off)
	}
	n, err := f.file.WriteAt(p[:min(int64(len(p)), f.room)], off)
	f.room -= int64(n)
	if err == nil && n < len(p) {
		err = &os.PathError{Op: "write", Path: f.path, Err: f.err}
	}
	return n, err
}

func (f *faultyFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return &os.PathError{Op: "truncate", Path: f.path, Err: f.err}
	}
	return f.file.Truncate(size)
}

// faulty makes both staging files of t faulty.
func faulty(t *table) (cur, spare *faultyFile) {
	for _, st := range []*staging{t.cur, t.spare} {
		st.f = &faultyFile{file: st.f, path: st.path}
	}
	return t.cur.f.(*faultyFile), t.spare.f.(*faultyFile)
}

// eventIDs returns the event ids of enriched lines, sorted.
func eventIDs(lines ...[][]byte) []string {
	var ids []string
	for _, ls := range lines {
		for _, l := range ls {
			ids = append(ids, strings.Split(string(l), "\t")[event.EventID])
		}
	}
	slices.Sort(ids)
	return ids
}

// checkLoaded checks that atomic.events holds exactly the events of
// lines, each once, and that bad_rows holds badRows rows.
func checkLoaded(t *testing.T, s *Store, badRows int, lines ...[][]byte) {
	t.Helper()
	want := eventIDs(lines...)
	rows, err := s.DB().Query("SELECT event_id::VARCHAR FROM atomic.events ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		dup, missing := 0, 0
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				dup++
			}
		}
		for _, id := range want {
			if _, found := slices.BinarySearch(got, id); !found {
				missing++
			}
		}
		t.Errorf("%d events loaded, want %d: %d duplicates, %d missing", len(got), len(want), dup, missing)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.bad_rows"); n != badRows {
		t.Errorf("%d bad rows, want %d", n, badRows)
	}
}

// checkRetryable checks that err is a retryable store error of op that
// names the file.
func checkRetryable(t *testing.T, err error, op, path string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Op != op || !errors.Is(err, ErrRetryable) || (path != "" && !strings.Contains(err.Error(), path)) {
		t.Fatalf("error %v (%T), want a retryable %s error naming %s", err, err, op, path)
	}
}

// A Write whose lines cannot all be written stages none of them, and
// keeps the lines of the Writes before it, whether they were still in
// memory, in the file, or partly both; the same Write, repeated once the
// file takes writes again, stages them once.
func TestWriteIsAllOrNothing(t *testing.T) {
	const perBuffer = stagingBuffer / 717 // page views a staging buffer holds
	for _, tc := range []struct {
		name       string
		before     int   // lines of the Writes that succeed first
		room       int64 // bytes the file takes once armed
		failed     int   // lines of the Write that fails
		errno      syscall.Errno
		failedFlag bool // a line of the failing Write is invalid
	}{
		{"earlier lines in memory", 100, 0, 2 * perBuffer, syscall.ENOSPC, true},
		{"earlier lines partly written", perBuffer - 10, 300 << 10, perBuffer, syscall.ENOSPC, false},
		{"own lines partly in the file", 10, stagingBuffer + 500<<10, 3 * perBuffer, syscall.ENOSPC, true},
		{"I/O error", perBuffer / 2, 100 << 10, 2 * perBuffer, syscall.EIO, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg := prometheus.NewRegistry()
			s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc, Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			cur, _ := faulty(s.events)
			first := pageViews(tc.before, 0)
			for i := 0; i < len(first); i += 7 {
				if err := s.Good().Write(ctx, first[i:min(i+7, len(first))]...); err != nil {
					t.Fatal(err)
				}
			}
			events := pageViews(tc.failed, 1_000_000)
			failed, bad := events, 0
			if tc.failedFlag {
				failed, bad = slices.Insert(slices.Clone(events), tc.failed/2, []byte("not\tan\tevent")), 1
			}
			cur.arm(tc.errno, tc.room)
			err = s.Good().Write(ctx, failed...)
			checkRetryable(t, err, "stage", s.events.cur.path)
			if !errors.Is(err, tc.errno) {
				t.Errorf("error %v, want %v", err, tc.errno)
			}
			if n := s.Good().(stream.BlockFlusher).Staged(); n != len(first) {
				t.Fatalf("%d lines staged after the failed Write, want the %d before it", n, len(first))
			}
			if n := s.Pending(); n != len(first) {
				t.Errorf("%d lines pending, want %d (no rejected line kept)", n, len(first))
			}
			// Still failing: the retry fails the same way, changing nothing.
			if err := s.Good().Write(ctx, failed...); err == nil || s.Pending() != len(first) {
				t.Fatalf("retry on a failing file: %v, %d pending", err, s.Pending())
			}
			cur.arm(nil, 0)
			if err := s.Good().Write(ctx, failed...); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			checkLoaded(t, s, bad, first, events)
			if got := counterValue(t, reg, "furrow_duckdb_parse_errors_total"); got != float64(bad) {
				t.Errorf("%v parse errors counted, want %d", got, bad)
			}
		})
	}
}

// The bad rows sink stages all rows of a Write or none, too.
func TestWriteBadRowsIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	cur, _ := faulty(s.badRows)
	row := func(i int) []byte {
		return fmt.Appendf(nil, `{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0","data":{"n":%d,"pad":"%s"}}`, i, strings.Repeat("x", 1000))
	}
	var first, second [][]byte
	for i := range 100 {
		first = append(first, row(i))
	}
	for i := range 2000 {
		second = append(second, row(1000+i))
	}
	if err := s.Bad().Write(ctx, first...); err != nil {
		t.Fatal(err)
	}
	cur.arm(syscall.ENOSPC, 10<<10)
	checkRetryable(t, s.Bad().Write(ctx, second...), "stage", s.badRows.cur.path)
	if s.Pending() != len(first) {
		t.Fatalf("%d pending, want %d", s.Pending(), len(first))
	}
	cur.arm(nil, 0)
	if err := s.Bad().Write(ctx, second...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(DISTINCT payload->>'$.data.n') FROM atomic.bad_rows"); n != 2100 {
		t.Errorf("%d distinct bad rows, want 2100", n)
	}
	if n := count(t, s, "SELECT count(*) FROM atomic.bad_rows"); n != 2100 {
		t.Errorf("%d bad rows, want 2100", n)
	}
}

// A Flush whose staging file cannot be written out, or cut back to the
// staged lines, fails and keeps everything staged; once the file takes
// writes again, the next Flush loads each line once.
func TestFlushWithFailingStagingFile(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "f.duckdb"))
	defer s.Close(ctx)
	cur, spare := faulty(s.events)

	// A rolled-back Write leaves its bytes in the file, to be cut off.
	first := pageViews(2000, 0)
	if err := s.Good().Write(ctx, first...); err != nil {
		t.Fatal(err)
	}
	// The file takes one more buffer, holding the end of these lines and
	// the start of the next Write, which then fails.
	cur.arm(syscall.EIO, stagingBuffer)
	checkRetryable(t, s.Good().Write(ctx, pageViews(3000, 10_000)...), "stage", cur.path)
	// The flush cannot cut off the bytes of the failed Write.
	checkRetryable(t, s.Good().(stream.Flusher).Flush(ctx), "load", cur.path)
	if s.Pending() != len(first) {
		t.Fatalf("%d pending after a failed flush, want %d", s.Pending(), len(first))
	}
	cur.arm(nil, 0)

	// Lines kept back by a block flush move to the other file: a write
	// there that fails leaves both as they were.
	more := pageViews(2500, 20_000) // 4500 staged: 3000 loaded, 1500 kept (over a buffer)
	if err := s.Good().Write(ctx, more...); err != nil {
		t.Fatal(err)
	}
	spare.arm(syscall.ENOSPC, 100)
	if _, err := s.flushEvents(ctx, 3000); err == nil {
		t.Fatal("block flush succeeded with a failing spare file")
	} else {
		checkRetryable(t, err, "load", spare.path)
	}
	if s.Pending() != 4500 || count(t, s, "SELECT count(*) FROM atomic.events") != 0 {
		t.Fatalf("%d pending, want 4500, nothing loaded", s.Pending())
	}
	spare.arm(nil, 0)
	if held, err := s.flushEvents(ctx, 3000); err != nil || held != 1500 {
		t.Fatalf("held %d, %v; want 1500", held, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, s, 0, first, more)
}

// When the database rejects a staged file, its lines are loaded by
// parts to isolate the bad one. A part that cannot be loaded for another
// reason (its temporary file cannot be written) stops the flush; the
// next one goes on from that part, and loads no part twice.
func TestBisectionResumesAfterFailure(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	lines := pageViews(64, 0)
	lines[45] = line(map[int]string{event.EventID: "8c3c4f36-8b3e-4c0c-9b0f-00000000ffff", event.TxnID: "forty-two"})
	if err := s.Good().Write(ctx, lines...); err != nil {
		t.Fatal(err)
	}
	// The parts of 32, then 16, 8, 4, 2, 1: the third and the seventh
	// file cannot be created, after parts were loaded.
	var files, failures int
	s.create = func(path string) (file, error) {
		files++
		if files == 3 || files == 7 {
			failures++
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOSPC}
		}
		return createPrivate(path)
	}
	flushes := 0
	for {
		flushes++
		err := s.Good().(stream.Flusher).Flush(ctx)
		if err == nil {
			break
		}
		checkRetryable(t, err, "load", s.tmpDir)
		if flushes > 20 {
			t.Fatal(err)
		}
	}
	if failures != 2 || flushes != 3 {
		t.Errorf("%d flushes for %d failures", flushes, failures)
	}
	checkLoaded(t, s, 1, lines[:45], lines[46:])
}

// counterValue reads the counter name from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
