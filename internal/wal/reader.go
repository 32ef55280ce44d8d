package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Record is one record read from the log.
type Record struct {
	Offset int64  // position of this record
	Next   int64  // position of the record after it; commit this to consume it
	Data   []byte // valid until the next call to Read
}

// Reader reads the log in order on behalf of one named consumer whose
// committed position is kept in Dir/readers/<name>. A Reader is not safe
// for concurrent use.
//
// A reader never stops at damage: bytes that hold no valid record are
// saved in quarantine, reported to Options.OnDamage and skipped, and so
// are stretches of the log missing from the disk. Each reader reports
// what it skips, so with several readers the same damage is reported by
// each.
//
// A segment is deleted once every reader has committed past it: every
// name with an offset file, whether opened since Open or not, and every
// reader opened. Delete a retired reader's offset file (while the log is
// closed), or it keeps every segment from its offset on.
type Reader struct {
	l       *Log
	name    string
	pos     int64
	f       *os.File
	fbase   int64
	buf     []byte
	scratch []byte
	recs    []Record
}

// Reader returns a reader positioned at name's last committed offset, or at
// the start of the log for a new name.
func (l *Log) Reader(name string) (*Reader, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasSuffix(name, ".tmp") {
		return nil, fmt.Errorf("wal: bad reader name %q", name)
	}
	pos, err := readOffset(l.readerPath(name))
	isNew := errors.Is(err, os.ErrNotExist)
	if err != nil && !isNew {
		return nil, err
	}
	// Register the reader under readersMu, which prune holds while it
	// takes segments off the lists, so that a new reader's start is not
	// pruned under it.
	l.readersMu.Lock()
	defer l.readersMu.Unlock()
	if isNew {
		pos = l.firstOffset()
	}
	if end := l.End(); pos > end {
		return nil, fmt.Errorf("wal: reader %s is at %d, past the end of the log (%d)", name, pos, end)
	}
	l.readers[name] = pos
	return &Reader{l: l, name: name, pos: pos, fbase: -1}, nil
}

// Readers returns the names of the readers with a committed offset (or
// opened in this process), sorted.
func (l *Log) Readers() []string {
	l.readersMu.Lock()
	defer l.readersMu.Unlock()
	names := make([]string, 0, len(l.readers))
	for n := range l.readers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RemoveReader deletes reader name's committed offset, so that it no
// longer holds segments, and deletes the segments every remaining reader
// has passed. A Reader of that name must not be in use.
func (l *Log) RemoveReader(name string) error {
	if err := os.Remove(l.readerPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l.readersMu.Lock()
	delete(l.readers, name)
	l.readersMu.Unlock()
	return l.prune()
}

func (l *Log) readerPath(name string) string {
	return filepath.Join(l.readersDir(), name)
}

// Position returns the offset of the next record Read will return.
func (r *Reader) Position() int64 { return r.pos }

// Read returns up to maxRecords records totalling about maxBytes (at least
// one record), waiting until at least one is available or ctx is done.
// Damage on the way is skipped and reported (see Reader); Read fails only
// if a segment cannot be read, or a report fails.
func (r *Reader) Read(ctx context.Context, maxRecords, maxBytes int) ([]Record, error) {
	for {
		sig := *r.l.signal.Load()
		if r.pos < r.l.End() {
			recs, err := r.readAvailable(maxRecords, maxBytes)
			if err != nil || len(recs) > 0 {
				return recs, err
			}
			continue // damage or a gap was skipped: look again
		}
		r.l.mu.Lock()
		closed := r.l.closed
		r.l.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sig:
		}
	}
}

// readAvailable returns the valid records from the reader's position, or
// none if it skipped damage or a gap there instead.
func (r *Reader) readAvailable(maxRecords, maxBytes int) ([]Record, error) {
	seg, ok := r.l.segmentFor(r.pos)
	if !ok {
		first := r.l.firstOffset()
		return nil, r.skip(Damage{Kind: Missing, Offset: r.pos, Length: first - r.pos,
			Reason: "the reader's offset is before the start of the log: the oldest segments were deleted"}, first)
	}
	if r.pos >= seg.dataEnd {
		return nil, r.skip(Damage{Kind: Missing, Offset: r.pos, Length: seg.next - r.pos, Segment: segmentPath(r.l.opts.Dir, seg.base),
			Reason: "the segment ends before the next one starts: its last bytes, or a whole segment after it, were deleted or cut"}, seg.next)
	}
	if seg.base != r.fbase {
		if r.f != nil {
			r.f.Close()
		}
		f, err := os.Open(segmentPath(r.l.opts.Dir, seg.base))
		if err != nil {
			return nil, err
		}
		r.f, r.fbase = f, seg.base
	}
	avail := seg.dataEnd - r.pos
	n := max(min(int64(maxBytes), avail), min(headerSize, avail))
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	buf := r.buf[:n]
	if _, err := r.f.ReadAt(buf, r.pos-seg.base); err != nil {
		return nil, fmt.Errorf("wal: read %s at %d: %w", r.f.Name(), r.pos-seg.base, err)
	}
	r.recs = r.recs[:0]
	off := 0
	for len(r.recs) < maxRecords && off < len(buf) {
		size, state := checkRecord(buf[off:])
		if state == recOK {
			start := off
			off += headerSize + int(size)
			r.recs = append(r.recs, Record{Offset: r.pos + int64(start), Next: r.pos + int64(off), Data: buf[start+headerSize : off]})
			continue
		}
		if off > 0 {
			break // return what came before; the next read starts there
		}
		if state == recShort && headerSize+size <= avail {
			// The first record is larger than maxBytes: read exactly it.
			return r.readAvailable(1, int(headerSize+size))
		}
		return nil, r.skipDamage(seg, state, size)
	}
	r.pos = r.recs[len(r.recs)-1].Next
	return r.recs, nil
}

// skipDamage skips the bytes at the reader's position, which do not
// start a valid record, up to the next valid record in the segment (or
// its end), saving them in quarantine.
func (r *Reader) skipDamage(seg segment, state recordState, size int64) error {
	end := r.pos + headerSize + size // a damaged payload under a valid header
	if state != recBadData {
		next, scratch, err := nextRecord(r.f, r.pos-seg.base, seg.dataEnd-seg.base, r.scratch)
		r.scratch = scratch
		if err != nil {
			return fmt.Errorf("wal: read %s: %w", r.f.Name(), err)
		}
		end = seg.base + next
	}
	d := Damage{Kind: Skipped, Dir: r.l.opts.Dir, Offset: r.pos, Length: end - r.pos, Segment: r.f.Name(), Reason: state.String()}
	if err := quarantine(&d, r.f, seg.base); err != nil {
		return err
	}
	return r.skip(d, end)
}

// skip reports d and moves the reader to, once the report is taken.
func (r *Reader) skip(d Damage, to int64) error {
	d.Dir, d.Reader = r.l.opts.Dir, r.name
	if h := r.l.opts.OnDamage; h != nil {
		if err := h(d); err != nil {
			return fmt.Errorf("wal: report %s: %w", d, err)
		}
	} else {
		r.l.opts.Logger.Error("wal: reader skipped damage", "reader", r.name, "damage", d.String())
	}
	r.pos = to
	return nil
}

// Rewind moves the reader to off, which must be a record boundary (a value
// taken from Record.Offset, Record.Next or Position).
func (r *Reader) Rewind(off int64) { r.pos = off }

// Commit records that everything before off has been processed, so a
// reader opened later under the same name starts there, and segments every
// reader has passed can be deleted.
func (r *Reader) Commit(off int64) error {
	path := r.l.readerPath(r.name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, strconv.AppendInt(nil, off, 10), filePerm); err != nil {
		return err
	}
	if r.l.opts.Fsync == FsyncAlways {
		if f, err := os.OpenFile(tmp, os.O_RDWR, 0); err == nil {
			f.Sync()
			f.Close()
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	r.l.readersMu.Lock()
	r.l.readers[r.name] = off
	r.l.readersMu.Unlock()
	return r.l.prune()
}

// Close releases the reader's file handle. Its committed position stays.
func (r *Reader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}
