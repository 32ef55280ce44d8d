package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
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
type Reader struct {
	l     *Log
	name  string
	pos   int64
	f     *os.File
	fbase int64
	buf   []byte
	recs  []Record
}

// ErrCorrupt is returned when a record in the middle of the log fails its
// checksum.
var ErrCorrupt = errors.New("wal: corrupt record")

// Reader returns a reader positioned at name's last committed offset, or at
// the start of the log for a new name.
func (l *Log) Reader(name string) (*Reader, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("wal: bad reader name %q", name)
	}
	first := l.firstOffset()
	pos, err := readOffset(l.readerPath(name))
	if errors.Is(err, os.ErrNotExist) {
		pos = first
	} else if err != nil {
		return nil, err
	}
	if pos < first {
		pos = first
	}
	if end := l.End(); pos > end {
		return nil, fmt.Errorf("wal: reader %s is at %d, past the end of the log (%d)", name, pos, end)
	}
	l.readersMu.Lock()
	l.readers[name] = pos
	l.readersMu.Unlock()
	return &Reader{l: l, name: name, pos: pos, fbase: -1}, nil
}

func (l *Log) readerPath(name string) string {
	return filepath.Join(l.opts.Dir, "readers", name)
}

func readOffset(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// Position returns the offset of the next record Read will return.
func (r *Reader) Position() int64 { return r.pos }

// Read returns up to maxRecords records totalling about maxBytes (at least
// one record), waiting until at least one is available or ctx is done.
func (r *Reader) Read(ctx context.Context, maxRecords, maxBytes int) ([]Record, error) {
	for {
		sig := *r.l.signal.Load()
		if r.pos < r.l.End() {
			return r.readAvailable(maxRecords, maxBytes)
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

func (r *Reader) readAvailable(maxRecords, maxBytes int) ([]Record, error) {
	base, segEnd, ok := r.l.segmentFor(r.pos)
	if !ok {
		return nil, fmt.Errorf("wal: offset %d is before the start of the log", r.pos)
	}
	if base != r.fbase {
		if r.f != nil {
			r.f.Close()
		}
		f, err := os.Open(segmentPath(r.l.opts.Dir, base))
		if err != nil {
			return nil, err
		}
		r.f, r.fbase = f, base
	}
	avail := segEnd - r.pos
	n := int64(maxBytes)
	if n > avail {
		n = avail
	}
	if n < headerSize {
		n = min(headerSize, avail)
	}
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	buf := r.buf[:n]
	if _, err := r.f.ReadAt(buf, r.pos-base); err != nil {
		return nil, fmt.Errorf("wal: read %s at %d: %w", r.f.Name(), r.pos-base, err)
	}
	r.recs = r.recs[:0]
	off := 0
	for len(r.recs) < maxRecords && len(buf)-off >= headerSize {
		size := int(binary.BigEndian.Uint32(buf[off:]))
		if len(buf)-off-headerSize < size {
			break
		}
		data := buf[off+headerSize : off+headerSize+size]
		if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(buf[off+4:]) {
			return nil, fmt.Errorf("%w at offset %d", ErrCorrupt, r.pos+int64(off))
		}
		at := r.pos + int64(off)
		off += headerSize + size
		r.recs = append(r.recs, Record{Offset: at, Next: r.pos + int64(off), Data: data})
	}
	if len(r.recs) == 0 {
		// The first record is larger than maxBytes: read exactly it.
		size := int64(binary.BigEndian.Uint32(buf))
		if headerSize+size > avail {
			return nil, fmt.Errorf("%w: record at %d runs past the segment end", ErrCorrupt, r.pos)
		}
		return r.readAvailable(1, int(headerSize+size))
	}
	r.pos = r.recs[len(r.recs)-1].Next
	return r.recs, nil
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
	if err := os.WriteFile(tmp, strconv.AppendInt(nil, off, 10), 0o644); err != nil {
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
