package duckdb

import (
	"context"
	"math"
	"sync"
	"sync/atomic"

	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/stream"
)

// Marked is the store as the sinks of a pipeline stage that reads a log
// (the fused path: the enricher loading DuckDB directly), loaded exactly
// once: the stage marks each batch it has written (stream.Marker), and a
// flush stores what was written up to the last mark, good events and bad
// rows, with that batch's log position as name's position in
// PositionsTable, in one transaction. After a crash, Position tells how
// far the log was stored, and the stage's reader is moved there before
// it reads again, so nothing is stored twice (as a destination's Loader
// does for the enriched log; same table, same contract).
//
// Writes are staged on disk; a flush takes them while writers go on into
// a second set of files. FlushBlocks, under traffic, moves into events
// what ends the table on a row group boundary and keeps the rest in
// PendingTable, in the same transaction (see there); Flush, when the
// stage goes quiet or stops, moves them all. Staged counts, from the
// last boundary, the rows the next flush would store or move, so that a
// stage flushing once Staged reaches a row group keeps the pending rows
// few. Nothing is held back from the stage: once a flush returns, every
// batch marked before it is stored, and the stage may acknowledge them.
type Marked struct {
	l        *storeLoader
	goodOnly bool

	mu     sync.Mutex // writes and marks
	cur    *stagedBatch
	spare  *stagedBatch
	marked struct {
		good, bad int   // lines of cur written before the last mark
		pos       int64 // its position
		ok        bool
	}

	flushMu   sync.Mutex // one flush at a time
	taken     *stagedBatch
	takenEnd  int64
	takenMore bool
	kept      atomic.Int64 // rows past the last row group boundary
}

// Marked returns the store's Marked sinks keeping their position under
// name. With badOnly, for a stage that writes only bad rows (beside
// another Marked on the same store), the bad sink's Flush stores, and
// never moves PendingTable's rows.
func (s *Store) Marked(name string, badOnly bool) *Marked {
	return &Marked{l: &storeLoader{s: s, name: name, badOnly: badOnly}}
}

// Position returns the position of the last batch stored, 0 if none.
func (m *Marked) Position(ctx context.Context) (int64, error) {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	pos, err := m.l.Position(ctx)
	if err == nil {
		m.setKept()
	}
	return pos, err
}

// Good is the sink of enriched TSV lines.
func (m *Marked) Good() stream.Sink { return markedGood{m} }

// Bad is the sink of bad rows.
func (m *Marked) Bad() stream.Sink { return markedBad{m} }

func (m *Marked) write(good, bad [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		cur, err := m.l.s.newStaged()
		if err != nil {
			return err
		}
		m.cur = cur
	}
	return m.l.s.stage(m.cur, good, bad)
}

// Mark records that what was written so far is the output of the batches
// up to b.
func (m *Marked) Mark(b *stream.Batch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		// A batch without output, first: its position is stored all the
		// same, unless the files cannot be made (then a later batch's is).
		cur, err := m.l.s.newStaged()
		if err != nil {
			return
		}
		m.cur = cur
	}
	m.marked.good, m.marked.bad = m.cur.good.lines(), m.cur.bad.lines()
	m.marked.pos, m.marked.ok = b.Position, true
}

// flush stores what was marked; see Marked. With idle, and nothing
// marked, it moves PendingTable's rows into events. Under traffic (more),
// marked lines that do not reach the next row group boundary are left
// for a later flush (kept): storing them would only put them all in
// PendingTable, to be moved again.
func (m *Marked) flush(ctx context.Context, more, idle bool) (kept bool, err error) {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	if m.taken != nil {
		// A flush that failed: its lines go first.
		if err := m.store(ctx); err != nil {
			return false, err
		}
	}
	if more && m.short() {
		return true, nil
	}
	if err := m.take(more); err != nil {
		return false, err
	}
	if m.taken == nil {
		if !idle {
			return false, nil
		}
		// Quiet: what PendingTable holds becomes visible.
		err := m.l.Idle(ctx)
		m.setKept()
		return false, err
	}
	return false, m.store(ctx)
}

// short tells whether the marked good lines fall short of the next row
// group boundary.
func (m *Marked) short() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marked.ok && int(m.kept.Load())+m.marked.good < m.l.s.rowGroup
}

// take moves the lines written up to the last mark to m.taken, those
// written since to a fresh set of files that writers go on with.
func (m *Marked) take(more bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.marked.ok {
		return nil
	}
	next := m.spare
	if next == nil {
		var err error
		if next, err = m.l.s.newStaged(); err != nil {
			return err
		}
	}
	cur := m.cur
	for _, st := range []*staging{cur.good, cur.bad} {
		if err := st.sync(); err != nil {
			m.spare = next
			return storeError("stage", "events", err)
		}
	}
	// The good lines moved first are put back if the bad rows' move
	// fails: their bytes stay in the file until its next sync.
	undo := struct {
		ends, seqs []int64
		written    int64
	}{cur.good.ends, cur.good.seqs, cur.good.written}
	for _, t := range []struct {
		from, to *staging
		marked   int
	}{{cur.good, next.good, m.marked.good}, {cur.bad, next.bad, m.marked.bad}} {
		if n := t.from.lines() - t.marked; n > 0 {
			if err := t.from.moveTail(n, t.to); err != nil {
				cur.good.ends, cur.good.seqs, cur.good.written = undo.ends, undo.seqs, undo.written
				next.reset()
				m.spare = next
				return storeError("stage", "events", err)
			}
		}
	}
	m.taken, m.takenEnd, m.takenMore = cur, m.marked.pos, more
	m.cur, m.spare = next, nil
	m.marked.good, m.marked.bad, m.marked.ok = 0, 0, false
	return nil
}

// store loads m.taken, under flushMu.
func (m *Marked) store(ctx context.Context) error {
	s := m.l.s
	s.events.flushMu.Lock()
	err := func() error {
		defer s.events.flushMu.Unlock()
		s.badRows.flushMu.Lock()
		defer s.badRows.flushMu.Unlock()
		return m.l.load(ctx, loader.Batch{End: m.takenEnd, More: m.takenMore}, m.taken)
	}()
	if err != nil {
		return err
	}
	m.setKept()
	m.mu.Lock()
	m.taken.reset()
	if m.spare == nil {
		m.spare = m.taken
	} else {
		m.taken.close()
	}
	m.taken = nil
	m.mu.Unlock()
	return nil
}

// setKept records the rows past the last row group boundary, for Staged;
// after a load or a Position, on the same goroutine.
func (m *Marked) setKept() {
	if w := m.l.Want(); w > 0 {
		m.kept.Store(int64(m.l.s.rowGroup - w))
	}
}

// staged counts the good lines written and not yet taken, plus the rows
// since the last row group boundary.
func (m *Marked) staged() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int(m.kept.Load())
	if m.cur != nil {
		n += m.cur.good.lines()
	}
	return n
}

// Close removes the staging files; what was not flushed is not stored.
func (m *Marked) Close(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range []*stagedBatch{m.cur, m.spare, m.taken} {
		if st != nil {
			st.close()
		}
	}
	m.cur, m.spare, m.taken = nil, nil, nil
	return nil
}

type markedGood struct{ m *Marked }

var (
	_ stream.BlockFlusher = markedGood{}
	_ stream.Marker       = markedGood{}
)

func (g markedGood) Write(_ context.Context, lines ...[]byte) error { return g.m.write(lines, nil) }
func (g markedGood) Mark(b *stream.Batch)                           { g.m.Mark(b) }
func (g markedGood) Flush(ctx context.Context) error {
	_, err := g.m.flush(ctx, false, true)
	return err
}

// FlushBlocks stores like Flush but keeps the rows past the last row
// group boundary in PendingTable: it holds nothing back (held 0), unless
// what was marked does not reach the boundary. Then it stores nothing,
// and held covers every line written (math.MaxInt: the caller keeps every
// batch not yet acknowledged, bad rows included, for a later flush).
func (g markedGood) FlushBlocks(ctx context.Context) (int, error) {
	kept, err := g.m.flush(ctx, true, false)
	if kept {
		return math.MaxInt, err
	}
	return 0, err
}
func (g markedGood) Staged() int                 { return g.m.staged() }
func (g markedGood) Close(context.Context) error { return nil }

type markedBad struct{ m *Marked }

func (b markedBad) Write(_ context.Context, rows ...[]byte) error { return b.m.write(nil, rows) }
func (b markedBad) Mark(batch *stream.Batch)                      { b.m.Mark(batch) }

// Flush stores what was marked, for a stage that writes only bad rows;
// beside a good sink, whose flush stores the bad rows too, it does
// nothing (a flush of its own would cut the good sink's row groups).
func (b markedBad) Flush(ctx context.Context) error {
	if !b.m.l.badOnly {
		return nil
	}
	_, err := b.m.flush(ctx, false, false)
	return err
}
func (b markedBad) Close(context.Context) error { return nil }
