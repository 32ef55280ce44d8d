package app

import (
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

// MemoryPlan shares memory_limit out between furrow's parts.
type MemoryPlan struct {
	// GoHeap is the Go runtime's soft memory limit: the collector,
	// enricher, Micro and the batches in flight.
	GoHeap int64
	// DuckDB is DuckDB's memory_limit: a load of a row group needs it
	// (duckdb.RowGroupMemory); past it, queries spill to disk.
	DuckDB int64
	// RowGroupRows is the size of the row groups DuckDB writes.
	RowGroupRows int
	// BatchBytes bounds a batch read from a log; the enricher holds a few
	// batches, and the events made from them, at once.
	BatchBytes int
	// MicroEvents is how many events Micro keeps (micro.max_events, or
	// one for about every 20 KB of the Go heap's share, at most 10,000:
	// each takes about 6.5 KB).
	MicroEvents int
}

// memoryOverhead is what the budget keeps outside the Go and DuckDB
// limits: the program's code as mapped from disk (45-50 MB resident,
// most of it DuckDB's), thread stacks, and DuckDB's allocations outside
// its buffer pool.
const memoryOverhead = 64 << 20

// rowGroupSizes are the row group sizes furrow picks from, largest (and
// cheapest per event) first; each divides the next larger, so loads stay
// aligned when a database file changes hands between budgets.
var rowGroupSizes = []int{duckdb.RowGroupRows, duckdb.RowGroupRows / 2, duckdb.RowGroupRows / 5}

// Memory returns how cfg's memory_limit is shared: the largest row group
// whose load needs at most 45% of the budget (61,440 rows from 512 MiB,
// 12,288 at 256 MiB), DuckDB that load's memory or a quarter of the
// budget if more, memoryOverhead set aside, and the rest to the Go heap;
// batches of a sixty-fourth of the budget, at most 8 MiB. With DuckDB
// disabled, its share goes to the Go heap.
func Memory(cfg config.Config) MemoryPlan {
	total := int64(cfg.MemoryLimit)
	p := MemoryPlan{RowGroupRows: rowGroupSizes[len(rowGroupSizes)-1]}
	for _, rows := range rowGroupSizes {
		if duckdb.RowGroupMemory(rows) <= total*45/100 {
			p.RowGroupRows = rows
			break
		}
	}
	if cfg.DuckDB.Enabled {
		p.DuckDB = max(duckdb.RowGroupMemory(p.RowGroupRows), total/4)
	}
	p.GoHeap = max(total-p.DuckDB-memoryOverhead, 48<<20)
	p.BatchBytes = int(min(total/64, 8<<20))
	p.MicroEvents = cfg.Micro.MaxEvents
	if p.MicroEvents == 0 {
		p.MicroEvents = int(min(p.GoHeap/(20<<10), 10000))
	}
	return p
}
