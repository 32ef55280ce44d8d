package duckdb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/stream"
)

// A flush stores what was written up to the last mark, with its
// position, and nothing after it; under traffic the rows past a row
// group boundary wait in PendingTable, and a quiet Flush moves them.
// After the store is reopened, Position tells where the stage resumes,
// and a bad-only Marked beside keeps its own position.
func TestMarked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "f.duckdb")
	s, err := Open(ctx, Options{Path: path, Processor: proc, RowGroupRows: 2048})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Marked("raw@x", false)
	if pos, err := m.Position(ctx); err != nil || pos != 0 {
		t.Fatalf("Position %d, %v on a new store", pos, err)
	}
	good, bad := m.Good(), m.Bad()
	bf := good.(stream.BlockFlusher)
	sv := badrows.SizeViolation(proc, time.Now(), 10, 20, "too big", "x")
	write := func(from, n int, pos int64, withBad bool) {
		t.Helper()
		if withBad {
			if err := bad.Write(ctx, sv); err != nil {
				t.Fatal(err)
			}
		}
		if err := good.Write(ctx, pageViews(n, from)...); err != nil {
			t.Fatal(err)
		}
		stream.MarkWritten(good, &stream.Batch{Position: pos})
		stream.MarkWritten(bad, &stream.Batch{Position: pos})
	}
	tables := func() (events, pending, badRows int) {
		return count(t, s, "SELECT count(*) FROM atomic.events"), count(t, s, "SELECT count(*) FROM atomic."+PendingTable), count(t, s, "SELECT count(*) FROM atomic.bad_rows")
	}
	check := func(what string, wantEvents, wantPending, wantBad int, wantPos int64) {
		t.Helper()
		if e, p, b := tables(); e != wantEvents || p != wantPending || b != wantBad {
			t.Fatalf("%s: events %d, pending %d, bad rows %d; want %d, %d, %d", what, e, p, b, wantEvents, wantPending, wantBad)
		}
		if pos, err := m.Position(ctx); err != nil || pos != wantPos {
			t.Fatalf("%s: position %d (%v), want %d", what, pos, err, wantPos)
		}
	}

	write(0, 1500, 10, true)
	write(1500, 1000, 20, false)
	if err := good.Write(ctx, pageViews(100, 2500)...); err != nil { // not marked yet
		t.Fatal(err)
	}
	if n := bf.Staged(); n != 2600 {
		t.Fatalf("Staged %d, want 2600", n)
	}
	if held, err := bf.FlushBlocks(ctx); err != nil || held != 0 {
		t.Fatalf("FlushBlocks: held %d, %v", held, err)
	}
	if err := bad.(stream.Flusher).Flush(ctx); err != nil { // beside the good sink: nothing of its own
		t.Fatal(err)
	}
	check("a block under traffic", 2048, 452, 1, 20)
	if n := bf.Staged(); n != 552 {
		t.Fatalf("Staged %d after the block, want 452 kept + 100 written", n)
	}
	stream.MarkWritten(good, &stream.Batch{Position: 30})
	if err := good.(stream.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("a quiet flush", 2600, 0, 1, 30)
	if err := good.(stream.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("a flush with nothing new", 2600, 0, 1, 30)

	// A block, then the store closed: reopening it moves the rows kept.
	write(2600, 10, 40, true)
	// Short of the next boundary: nothing stored, every batch held.
	if held, err := bf.FlushBlocks(ctx); err != nil || held < 10 {
		t.Fatalf("FlushBlocks short of a block: held %d, %v", held, err)
	}
	check("short of a block", 2600, 0, 1, 30)
	write(2610, 3000, 50, false)
	if _, err := bf.FlushBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	check("a second block", 4096, 1514, 2, 50)
	m.Close(ctx)
	s.Close(ctx)
	if s, err = Open(ctx, Options{Path: path, Processor: proc, RowGroupRows: 2048}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	m = s.Marked("raw@x", false)
	defer m.Close(ctx)
	check("reopened", 5610, 0, 2, 50)
	// Written and marked but not flushed when the process ends: nothing
	// of it is stored, and the stage resumes from 50.
	write(5610, 10, 60, true)
	m.Close(ctx)
	m = s.Marked("raw@x", false)
	check("not flushed", 5610, 0, 2, 50)
	if n := count(t, s, "SELECT count(DISTINCT event_id) FROM atomic.events"); n != 5610 {
		t.Fatalf("%d distinct event ids, want 5610", n)
	}

	fwd := s.Marked("collector-bad@y", true)
	defer fwd.Close(ctx)
	if err := fwd.Bad().Write(ctx, sv, sv); err != nil {
		t.Fatal(err)
	}
	stream.MarkWritten(fwd.Bad(), &stream.Batch{Position: 7})
	if err := fwd.Bad().(stream.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if pos, err := fwd.Position(ctx); err != nil || pos != 7 {
		t.Fatalf("bad-only position %d (%v), want 7", pos, err)
	}
	check("bad rows beside", 5610, 0, 4, 50)
}

// A flush that cannot move the lines written after the mark to the next
// files (a full disk) changes nothing: the retry stores what was marked,
// and the lines after it stay for the flush after their mark.
func TestMarkedFullDiskWhileTaking(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "f.duckdb"), Processor: proc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var full *faultyFile
	s.create = func(path string) (file, error) {
		f, err := createPrivate(path)
		if err != nil || full != nil || !strings.Contains(filepath.Base(path), "bad_rows-") || !strings.HasSuffix(path, "-6.tsv") {
			return f, err
		}
		full = &faultyFile{file: f, path: path}
		full.arm(syscall.ENOSPC, 0)
		return full, nil
	}
	m := s.Marked("raw@x", false)
	defer m.Close(ctx)
	good, bad := m.Good(), m.Bad()
	sv := badrows.SizeViolation(proc, time.Now(), 10, 20, "too big", strings.Repeat("x", 400))
	if err := good.Write(ctx, pageViews(100, 0)...); err != nil {
		t.Fatal(err)
	}
	stream.MarkWritten(good, &stream.Batch{Position: 10})
	// Not marked: more than the staging buffer of each, so that moving
	// them writes to the next files.
	if err := good.Write(ctx, pageViews(3000, 100)...); err != nil {
		t.Fatal(err)
	}
	rows := make([][]byte, 3000)
	for i := range rows {
		rows[i] = sv
	}
	if err := bad.Write(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	err = good.(stream.Flusher).Flush(ctx)
	if err == nil || full == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("flush on a full disk: %v (file armed: %v)", err, full != nil)
	}
	full.arm(nil, 0)
	if err := good.(stream.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e, b := count(t, s, "SELECT count(*) FROM atomic.events"), count(t, s, "SELECT count(*) FROM atomic.bad_rows"); e != 100 || b != 0 {
		t.Fatalf("after the retry: %d events, %d bad rows; want 100, 0", e, b)
	}
	stream.MarkWritten(good, &stream.Batch{Position: 20})
	if err := good.(stream.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e, b := count(t, s, "SELECT count(*) FROM atomic.events"), count(t, s, "SELECT count(*) FROM atomic.bad_rows"); e != 3100 || b != 3000 {
		t.Fatalf("%d events, %d bad rows; want 3100, 3000", e, b)
	}
	if n := count(t, s, "SELECT count(DISTINCT event_id) FROM atomic.events"); n != 3100 {
		t.Fatalf("%d distinct event ids, want 3100", n)
	}
	if pos, err := m.Position(ctx); err != nil || pos != 20 {
		t.Fatalf("position %d (%v), want 20", pos, err)
	}
}
