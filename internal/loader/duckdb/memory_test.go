package duckdb

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Options.RowGroupRows sets the size of new row groups, for a smaller
// memory budget.
func TestRowGroupOption(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.duckdb")
	s, err := Open(ctx, Options{Path: path, Processor: proc, Threads: 1, Trusted: true, RowGroupRows: 12288})
	if err != nil {
		t.Fatal(err)
	}
	if s.RowGroupRows() != 12288 {
		t.Fatalf("RowGroupRows() = %d", s.RowGroupRows())
	}
	if err := s.Good().Write(ctx, pageViews(3*12288+10, 0)...); err != nil {
		t.Fatal(err)
	}
	held, err := s.Good().(interface {
		FlushBlocks(context.Context) (int, error)
	}).FlushBlocks(ctx)
	if err != nil || held != 10 {
		t.Fatalf("FlushBlocks: held %d, %v", held, err)
	}
	var groups, rows int
	if err := s.DB().QueryRow(`SELECT count(DISTINCT row_group_id), max(count) FROM pragma_storage_info('atomic.events')`).Scan(&groups, &rows); err != nil {
		t.Fatal(err)
	}
	if groups != 3 {
		t.Errorf("%d row groups, want 3 of 12288", groups)
	}
	s.Close(ctx)
	if _, err := Open(ctx, Options{Path: path, Processor: proc, RowGroupRows: 1000}); err == nil || !strings.Contains(err.Error(), "multiple of 2048") {
		t.Fatalf("row group of 1000: %v", err)
	}
}

// A block flush with fewer staged lines than reach the next row group
// boundary keeps them all: a pipeline retrying a failed block flush
// calls it so, after the failed load took the lines before.
func TestBlockFlushShortOfABoundary(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "b.duckdb"), Processor: proc, Trusted: true, RowGroupRows: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	first := pageViews(100, 0)
	s.Good().Write(ctx, first...)
	if err := s.Flush(ctx); err != nil { // 100 rows: off the boundary
		t.Fatal(err)
	}
	second := pageViews(50, 1000)
	s.Good().Write(ctx, second...)
	if held, err := s.flushEvents(ctx, 2048); err != nil || held != 50 {
		t.Fatalf("held %d, %v; want all 50 kept", held, err)
	}
	third := pageViews(2000, 5000)
	s.Good().Write(ctx, third...)
	if held, err := s.flushEvents(ctx, 2048); err != nil || held != 100+50+2000-2048 {
		t.Fatalf("held %d, %v; want %d", held, err, 100+50+2000-2048)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, s, 0, first, second, third)
}
