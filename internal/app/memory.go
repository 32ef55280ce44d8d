package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

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
	// DestinationBytes bounds the enriched lines each destination's
	// runner holds for one load, when destinations load from the
	// enriched log (a third of the Go heap's share, split between them,
	// 4-256 MiB each); 0 on the fused path.
	DestinationBytes int
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
// batches of a 256th of the budget (2 MiB at 512 MiB), at most 8 MiB.
// With DuckDB disabled, its share goes to the Go heap.
//
// Batches are small because the enricher holds up to three of them and
// the events made from them, which the GC scans: a batch of 8 MiB of POST
// payloads makes 24,000 events, about 100 MB of live heap. Under the POST
// load test at 512 MiB, 2 MiB batches took 58-69k events/s end to end,
// 8 MiB ones 49-55k.
func Memory(cfg config.Config) MemoryPlan {
	total := int64(cfg.MemoryLimit)
	p := MemoryPlan{RowGroupRows: rowGroupSizes[len(rowGroupSizes)-1]}
	for _, rows := range rowGroupSizes {
		if duckdb.RowGroupMemory(rows) <= total*45/100 {
			p.RowGroupRows = rows
			break
		}
	}
	ducks := 0
	dests := cfg.EffectiveDestinations()
	for _, d := range dests {
		if d.DuckDB != nil {
			ducks++
		}
	}
	if ducks > 0 {
		p.DuckDB = max(duckdb.RowGroupMemory(p.RowGroupRows), total/4)
	}
	p.GoHeap = max(total-p.DuckDB-memoryOverhead, 48<<20)
	if !fusedDuckDB(cfg) {
		p.DestinationBytes = int(min(max(p.GoHeap/int64(3*len(dests)), 4<<20), 256<<20))
	}
	p.BatchBytes = int(min(total/256, 8<<20))
	p.MicroEvents = cfg.Micro.MaxEvents
	if p.MicroEvents == 0 {
		p.MicroEvents = int(min(p.GoHeap/(20<<10), 10000))
	}
	return p
}

// memoryMargin is kept free under memory_limit by the governor, for the
// memory that grows between two of its looks.
const memoryMargin = 32 << 20

// governor keeps the process under memory_limit when memory outside the
// Go runtime (DuckDB's, the program's code as mapped from disk) grows
// past its planned share: every interval it sets the Go heap's soft
// limit to the plan's GoHeap, or to what the budget leaves after the
// memory held outside Go, if that is less (never below minHeap). Giving
// the Go heap what DuckDB does not use between loads is no good: DuckDB
// takes its share back within a fraction of a second when a load starts,
// faster than the Go heap can shrink, and the process overshoots.
type governor struct {
	budget, ceiling, minHeap int64
	rss                      func() (int64, error) // the process's resident bytes
	goHeld                   func() int64          // what the Go runtime holds from the OS
	set                      func(int64) int64     // debug.SetMemoryLimit
}

func newGovernor(budget, ceiling int64) *governor {
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	goHeld := func() int64 {
		metrics.Read(samples)
		return int64(samples[0].Value.Uint64() - samples[1].Value.Uint64())
	}
	return &governor{budget: budget, ceiling: ceiling, minHeap: 48 << 20, rss: residentBytes, goHeld: goHeld, set: debug.SetMemoryLimit}
}

// adjust sets the Go limit once from the current figures and returns it.
func (g *governor) adjust() (int64, error) {
	rss, err := g.rss()
	if err != nil {
		return 0, err
	}
	outside := max(rss-g.goHeld(), 0)
	limit := max(min(g.budget-outside-memoryMargin, g.ceiling), g.minHeap)
	g.set(limit)
	return limit, nil
}

// run adjusts every interval until ctx is done.
func (g *governor) run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := g.adjust(); err != nil {
			log.Warn("memory: cannot read the process's resident memory; the Go heap keeps its fixed share of memory_limit", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// residentBytes reads the process's resident memory from /proc.
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("unexpected /proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}
