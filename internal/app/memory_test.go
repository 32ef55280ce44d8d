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
		{512 << 20, true, 0, MemoryPlan{GoHeap: 224 << 20, DuckDB: 224 << 20, RowGroupRows: 61440, BatchBytes: 8 << 20, MicroEvents: 10000}},
		{256 << 20, true, 0, MemoryPlan{GoHeap: 80 << 20, DuckDB: 112 << 20, RowGroupRows: 12288, BatchBytes: 4 << 20, MicroEvents: 4096}},
		{1 << 30, true, 0, MemoryPlan{GoHeap: 704 << 20, DuckDB: 256 << 20, RowGroupRows: 61440, BatchBytes: 8 << 20, MicroEvents: 10000}},
		{384 << 20, true, 0, MemoryPlan{GoHeap: 160 << 20, DuckDB: 160 << 20, RowGroupRows: 30720, BatchBytes: 6 << 20, MicroEvents: 8192}},
		{512 << 20, false, 500, MemoryPlan{GoHeap: 448 << 20, RowGroupRows: 61440, BatchBytes: 8 << 20, MicroEvents: 500}},
	} {
		c := config.Default()
		c.MemoryLimit, c.DuckDB.Enabled, c.Micro.MaxEvents = tc.limit, tc.duck, tc.micro
		if got := Memory(c); got != tc.plan {
			t.Errorf("%s (duckdb %v): %+v, want %+v", tc.limit, tc.duck, got, tc.plan)
		}
	}
}
