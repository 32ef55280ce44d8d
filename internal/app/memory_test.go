package app

import (
	"testing"

	"github.com/furrow-io/furrow/internal/config"
)

func TestMemoryPlan(t *testing.T) {
	for _, tc := range []struct {
		limit config.ByteSize
		duck  bool
		micro int
		plan  MemoryPlan
	}{
		{512 << 20, true, 0, MemoryPlan{GoHeap: 224 << 20, DuckDB: 224 << 20, RowGroupRows: 61440, BatchBytes: 2 << 20, MicroEvents: 10000}},
		{256 << 20, true, 0, MemoryPlan{GoHeap: 80 << 20, DuckDB: 112 << 20, RowGroupRows: 12288, BatchBytes: 1 << 20, MicroEvents: 4096}},
		{1 << 30, true, 0, MemoryPlan{GoHeap: 704 << 20, DuckDB: 256 << 20, RowGroupRows: 61440, BatchBytes: 4 << 20, MicroEvents: 10000}},
		{384 << 20, true, 0, MemoryPlan{GoHeap: 160 << 20, DuckDB: 160 << 20, RowGroupRows: 30720, BatchBytes: 3 << 19, MicroEvents: 8192}},
		{512 << 20, false, 500, MemoryPlan{GoHeap: 448 << 20, RowGroupRows: 61440, BatchBytes: 2 << 20, MicroEvents: 500}},
	} {
		c := config.Default()
		c.MemoryLimit, c.DuckDB.Enabled, c.Micro.MaxEvents = tc.limit, tc.duck, tc.micro
		if got := Memory(c); got != tc.plan {
			t.Errorf("%s (duckdb %v): %+v, want %+v", tc.limit, tc.duck, got, tc.plan)
		}
	}
}

func TestGovernor(t *testing.T) {
	const mb = 1 << 20
	var rss, held, limit int64
	g := &governor{budget: 512 * mb, ceiling: 224 * mb, minHeap: 48 * mb,
		rss: func() (int64, error) { return rss, nil }, goHeld: func() int64 { return held },
		set: func(l int64) int64 { old := limit; limit = l; return old }}
	for _, tc := range []struct{ rss, held, want int64 }{
		{300 * mb, 100 * mb, 224 * mb}, // 200 MB outside Go: the plan's share fits
		{400 * mb, 100 * mb, 180 * mb}, // 300 MB outside Go: less for the Go heap
		{600 * mb, 100 * mb, 48 * mb},  // over budget outside Go: the floor
		{50 * mb, 60 * mb, 224 * mb},   // Go holds more than is resident
	} {
		rss, held = tc.rss, tc.held
		if got, err := g.adjust(); err != nil || got != tc.want || limit != tc.want {
			t.Errorf("rss %d MB, Go %d MB: limit %d MB (set %d), %v; want %d MB", tc.rss/mb, tc.held/mb, got/mb, limit/mb, err, tc.want/mb)
		}
	}
	if n, err := residentBytes(); err != nil || n <= 0 {
		t.Errorf("residentBytes: %d, %v", n, err)
	}
}
