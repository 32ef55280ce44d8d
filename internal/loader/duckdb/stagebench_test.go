package duckdb

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkStage stages a row group of page views in batches of 500, as
// the pipeline writes them, without loading them: the cost of staging
// alone (the staged lines are dropped after each op), for a Trusted
// store as furrow run opens it.
func BenchmarkStage(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "f.duckdb"), Processor: proc, Trusted: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	lines := pageViews(RowGroupRows, 0)
	b.SetBytes(int64(len(lines[0])+1) * RowGroupRows)
	b.ResetTimer()
	for range b.N {
		for i := 0; i < len(lines); i += 500 {
			if err := s.Good().Write(context.Background(), lines[i:min(i+500, len(lines))]...); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		dropStaged(s.events)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*RowGroupRows), "ns/event")
}

// dropStaged unstages what t staged, as a load does once done.
func dropStaged(t *table) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur.sync()
	t.cur.reset()
}
