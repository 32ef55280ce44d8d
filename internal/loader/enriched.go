package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/wal"
)

// The enriched log holds what the destinations load: the enricher's good
// events and bad rows, and the collector's bad rows. It is written in
// frames, one log record each, so a frame is stored whole or not at all:
//
//	'F' uvarint(len(source)) source varint(position) uvarint(lines)
//	    then per line: kind ('G' or 'B') uvarint(len) bytes
//
// A frame holds the whole output of one or more batches of an upstream
// log (source, e.g. "raw") and the position that log resumes at after
// them. The upstream reader is committed only after the frame is
// written; if furrow stops in between, the next start finds the frame
// (Open returns its position) and moves the upstream reader past it
// instead of processing those batches again, so nothing reaches the
// destinations twice.
const KindFrame byte = 'F'

// The kinds of a frame's lines.
const (
	KindGood byte = 'G' // a good event's enriched TSV line
	KindBad  byte = 'B' // a bad row
)

// GoodRecord and BadRecord build an enriched log record of one line, a
// frame without a source (for tests and tools that write the log).
func GoodRecord(tsv []byte) []byte { return AppendFrame(nil, Frame{Lines: []Line{{KindGood, tsv}}}) }
func BadRecord(row []byte) []byte  { return AppendFrame(nil, Frame{Lines: []Line{{KindBad, row}}}) }

// Frame is one enriched log record.
type Frame struct {
	Source   string
	Position int64
	Lines    []Line
}

// Line is one output: a good event's TSV line or a bad row.
type Line struct {
	Kind byte // KindGood or KindBad
	Data []byte
}

// AppendFrame appends f's encoding to buf.
func AppendFrame(buf []byte, f Frame) []byte {
	buf = append(buf, KindFrame)
	buf = binary.AppendUvarint(buf, uint64(len(f.Source)))
	buf = append(buf, f.Source...)
	buf = binary.AppendVarint(buf, f.Position)
	buf = binary.AppendUvarint(buf, uint64(len(f.Lines)))
	for _, l := range f.Lines {
		buf = append(buf, l.Kind)
		buf = binary.AppendUvarint(buf, uint64(len(l.Data)))
		buf = append(buf, l.Data...)
	}
	return buf
}

// errFrame is a record that is not a frame furrow wrote.
var errFrame = errors.New("enriched log: malformed frame")

// DecodeFrame decodes an enriched log record. Lines alias rec.
func DecodeFrame(rec []byte) (Frame, error) {
	var f Frame
	if len(rec) == 0 {
		return f, errFrame
	}
	if rec[0] != KindFrame {
		return f, fmt.Errorf("%w: record starts with %q", errFrame, rec[0])
	}
	p := rec[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	n, ok := uv()
	if !ok || n > uint64(len(p)) {
		return f, errFrame
	}
	f.Source, p = string(p[:n]), p[n:]
	pos, k := binary.Varint(p)
	if k <= 0 {
		return f, errFrame
	}
	f.Position, p = pos, p[k:]
	count, ok := uv()
	if !ok || count > uint64(len(p)) {
		return f, errFrame
	}
	f.Lines = make([]Line, 0, count)
	for range count {
		if len(p) == 0 {
			return f, errFrame
		}
		kind := p[0]
		p = p[1:]
		if kind != KindGood && kind != KindBad {
			return f, fmt.Errorf("%w: line kind %q", errFrame, kind)
		}
		size, ok := uv()
		if !ok || size > uint64(len(p)) {
			return f, errFrame
		}
		f.Lines = append(f.Lines, Line{kind, p[:size:size]})
		p = p[size:]
	}
	if len(p) != 0 {
		return f, fmt.Errorf("%w: %d bytes after the last line", errFrame, len(p))
	}
	return f, nil
}

// MarksReader is the enriched log reader that keeps the newest frame of
// each source on disk until that source's reader has committed past it
// (see Enriched).
const MarksReader = "marks"

// MaxFrameBytes is the largest frame a Stage writes; larger outputs of
// one batch are split into several frames, only the last carrying the
// position. The enriched log's MaxRecordBytes must be at least this.
const MaxFrameBytes = 32 << 20

// Enriched writes the enriched log. Every append to the log goes through
// it (its stages), so it knows where each frame starts.
type Enriched struct {
	log   *wal.Log
	marks *wal.Reader

	mu sync.Mutex
	// newest frame of each source whose position the source has not yet
	// committed: the marks reader stays at or before the first of them.
	unacked map[string]unacked
}

type unacked struct {
	start, position int64
}

// OpenEnriched opens the writing side of the enriched log l and returns
// the position carried by the newest frame of each source found there:
// the caller moves each upstream reader to at least that position
// before reading (see Frame).
func OpenEnriched(ctx context.Context, l *wal.Log) (*Enriched, map[string]int64, error) {
	rd, err := l.Reader(MarksReader)
	if err != nil {
		return nil, nil, err
	}
	last := map[string]int64{}
	for rd.Position() < l.End() {
		recs, err := rd.Read(ctx, 1024, 8<<20)
		if err != nil {
			rd.Close()
			return nil, nil, fmt.Errorf("enriched log: reading frames at start: %w", err)
		}
		for _, r := range recs {
			f, err := DecodeFrame(r.Data)
			if err != nil || f.Source == "" {
				continue
			}
			last[f.Source] = max(last[f.Source], f.Position)
		}
	}
	// The upstream readers are moved past these frames before anything
	// else is written: nothing behind the end needs keeping.
	if err := rd.Commit(l.End()); err != nil {
		rd.Close()
		return nil, nil, err
	}
	return &Enriched{log: l, marks: rd, unacked: map[string]unacked{}}, last, nil
}

// Close releases the marks reader; the log is the caller's.
func (e *Enriched) Close() error { return e.marks.Close() }

// append writes frames; the last one carries a position for source.
func (e *Enriched) append(source string, frames [][]byte, position int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := e.log.End()
	if err := e.log.Append(frames...); err != nil {
		return err
	}
	e.unacked[source] = unacked{start, position}
	return e.commitMarks()
}

// acked records that source's reader committed position.
func (e *Enriched) acked(source string, position int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u, ok := e.unacked[source]; ok && position >= u.position {
		delete(e.unacked, source)
		return e.commitMarks()
	}
	return nil
}

// commitMarks moves the marks reader to the first unacknowledged frame,
// or the end of the log. Under e.mu.
func (e *Enriched) commitMarks() error {
	pos := e.log.End()
	for _, u := range e.unacked {
		pos = min(pos, u.start)
	}
	if pos == e.marks.Position() {
		return nil
	}
	e.marks.Rewind(pos)
	return e.marks.Commit(pos)
}

// Source wraps src, the source of upstream log source, so that each
// acknowledgement is recorded (the marks reader then lets go of the
// frame holding it).
func (e *Enriched) Source(source string, src stream.Source) stream.Source {
	return &ackedSource{src, e, source}
}

type ackedSource struct {
	stream.Source
	e      *Enriched
	source string
}

func (s *ackedSource) Read(ctx context.Context) (*stream.Batch, error) {
	b, err := s.Source.Read(ctx)
	if err != nil || b == nil {
		return b, err
	}
	ack, pos := b.Ack, b.Position
	b.Ack = func(ctx context.Context) error {
		if err := ack(ctx); err != nil {
			return err
		}
		return s.e.acked(s.source, pos)
	}
	return b, nil
}

// Stage is where the stage reading one upstream log writes: Good and
// Bad are its two sinks (stream.Flusher and stream.Marker both), sharing
// one buffer in write order. A flush writes what was written up to the
// last Mark as frames carrying that Mark's position; what was written
// after it waits for the next flush.
func (e *Enriched) Stage(source string) *Stage {
	return &Stage{e: e, source: source}
}

// Stage: see Enriched.Stage.
type Stage struct {
	e      *Enriched
	source string

	flushMu sync.Mutex // one flush at a time

	mu sync.Mutex
	// The lines written, in order: line i is kinds[i], the bytes of
	// arena up to ends[i] from the end of line i-1. Writes copy, as the
	// writer may reuse its buffers.
	arena    []byte
	ends     []int
	kinds    []byte
	marked   int   // lines up to the last Mark
	position int64 // its position
	flushed  int64 // position of the last frame written

	frames [][]byte // the last flush's frame buffers, reused (under flushMu)
}

// Good returns the sink of good events' TSV lines.
func (s *Stage) Good() stream.Sink { return stageSink{s, KindGood} }

// Bad returns the sink of bad rows.
func (s *Stage) Bad() stream.Sink { return stageSink{s, KindBad} }

type stageSink struct {
	s    *Stage
	kind byte
}

func (k stageSink) Write(_ context.Context, recs ...[]byte) error {
	s := k.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.arena = append(s.arena, r...)
		s.ends = append(s.ends, len(s.arena))
		s.kinds = append(s.kinds, k.kind)
	}
	return nil
}

func (k stageSink) Mark(b *stream.Batch)            { k.s.Mark(b.Position) }
func (k stageSink) Flush(ctx context.Context) error { return k.s.Flush(ctx) }
func (k stageSink) Close(context.Context) error     { return nil }
func (k stageSink) Healthy() bool                   { return k.s.e.log.Healthy() }

// Mark records that the lines written so far are the whole output of
// the upstream log up to position.
func (s *Stage) Mark(position int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked, s.position = len(s.ends), position
}

// Flush writes the lines up to the last Mark. A failed flush keeps them
// for the next one.
func (s *Stage) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	n, pos := s.marked, s.position
	if n == 0 && pos <= s.flushed {
		s.mu.Unlock()
		return nil
	}
	// Writes during the flush only append: these stay as they are.
	ends, kinds := s.ends[:n:n], s.kinds[:n:n]
	arena := s.arena[:0]
	if n > 0 {
		arena = s.arena[:ends[n-1]:ends[n-1]]
	}
	s.mu.Unlock()

	// The log copies what it appends: the buffers are reused.
	frames := s.frames[:0]
	var f Frame
	from, i, prev := 0, 0, 0
	for len(frames) == 0 || i < n {
		f.Lines, f.Source, f.Position = f.Lines[:0], "", 0
		size := 64
		for i < n && (i == from || size+ends[i]-prev+16 <= MaxFrameBytes) {
			f.Lines = append(f.Lines, Line{kinds[i], arena[prev:ends[i]]})
			size += ends[i] - prev + 16
			prev = ends[i]
			i++
		}
		if i == n {
			f.Source, f.Position = s.source, pos
		}
		var buf []byte
		if k := len(frames); k < cap(frames) {
			buf = frames[:k+1][k][:0]
		}
		frames = append(frames, AppendFrame(buf, f))
		from = i
	}
	s.frames = frames
	if err := s.e.append(s.source, frames, pos); err != nil {
		return err
	}

	s.mu.Lock()
	cut := len(arena)
	rest := copy(s.arena, s.arena[cut:])
	s.arena = s.arena[:rest]
	m := copy(s.ends, s.ends[n:])
	s.ends = s.ends[:m]
	for j := range s.ends {
		s.ends[j] -= cut
	}
	s.kinds = s.kinds[:copy(s.kinds, s.kinds[n:])]
	s.marked -= n
	s.flushed = pos
	s.mu.Unlock()
	return nil
}
