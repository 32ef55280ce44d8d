// Package wal is furrow's embedded durable log: an append-only, segmented
// file log with group commit and named readers whose positions survive
// restarts. The collector appends raw events to it and answers the tracker
// only once the append has returned, so an acknowledged event is in the
// operating system's page cache (or on disk, with FsyncAlways) before the
// tracker hears 2xx.
//
// Record layout: 4-byte big-endian payload length, 4-byte CRC-32C of the
// payload, payload. A record's offset is the global byte position of its
// header; segment files are named after the offset of their first byte.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FsyncPolicy says when appended data is forced to stable storage.
type FsyncPolicy string

const (
	// FsyncAlways syncs before Append returns: acknowledged records survive
	// power loss, at the cost of one fsync per group commit.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval syncs in the background every Options.FsyncInterval.
	// Acknowledged records survive a crash of the process (kill -9); a power
	// cut can lose up to one interval.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves syncing to the operating system.
	FsyncNever FsyncPolicy = "never"
)

const headerSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configures a Log. Zero values take the defaults shown.
type Options struct {
	Dir            string
	SegmentBytes   int64         // roll to a new segment past this size; default 64 MiB
	Fsync          FsyncPolicy   // default FsyncInterval
	FsyncInterval  time.Duration // default 1s
	MaxRecordBytes int           // default 16 MiB
}

func (o *Options) setDefaults() {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.Fsync == "" {
		o.Fsync = FsyncInterval
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = time.Second
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 16 << 20
	}
}

// Validate reports a configuration error.
func (o Options) Validate() error {
	if o.Dir == "" {
		return errors.New("wal: Dir is required")
	}
	switch o.Fsync {
	case "", FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return fmt.Errorf("wal: unknown fsync policy %q (always, interval, never)", o.Fsync)
	}
	return nil
}

// ErrClosed is returned by operations on a closed Log.
var ErrClosed = errors.New("wal: closed")

// ErrTooLarge is returned for a record over Options.MaxRecordBytes.
var ErrTooLarge = errors.New("wal: record too large")

// ErrLocked is returned by Open when another open log, in this process
// or another, holds the directory.
var ErrLocked = errors.New("wal: log in use by another process")

// Log is safe for concurrent use.
type Log struct {
	opts Options
	lock *os.File // holds the directory; see lockDir

	mu       sync.Mutex
	cond     *sync.Cond
	cur      *batch // records queued for the next write
	spare    []byte
	flushing bool
	closed   bool

	// fileMu guards the active segment file and the segment list.
	fileMu   sync.Mutex
	active   *os.File
	bases    []int64 // sorted segment base offsets
	activeSz int64
	dirty    bool

	end     atomic.Int64 // global offset just past the last written record
	signal  atomic.Pointer[chan struct{}]
	healthy atomic.Bool

	readersMu sync.Mutex
	readers   map[string]int64 // committed offsets

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens or creates the log in opts.Dir, repairing a torn tail left by
// a crash. The log holds the directory until Close; opening it again
// meanwhile fails with ErrLocked.
func Open(opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if err := os.MkdirAll(filepath.Join(opts.Dir, "readers"), 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	l, err := openLocked(opts, lock)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return l, nil
}

// lockDir locks dir for this log: a second log opened on it, here or in
// another process, would recover the tail the first one is writing and
// interleave appends with it. The lock goes with the returned file.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, err
	}
	return f, nil
}

// openLocked is Open once the directory is locked.
func openLocked(opts Options, lock *os.File) (*Log, error) {
	l := &Log{opts: opts, lock: lock, readers: map[string]int64{}, stop: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	l.cur = &batch{}
	ch := make(chan struct{})
	l.signal.Store(&ch)
	l.healthy.Store(true)

	bases, err := listSegments(opts.Dir)
	if err != nil {
		return nil, err
	}
	if len(bases) == 0 {
		bases = []int64{0}
		// The first segment starts where the readers say the old log ended,
		// so offsets never go backwards after the segments were pruned.
		if off, err := l.maxReaderOffset(); err == nil {
			bases[0] = off
		}
	}
	l.bases = bases
	last := bases[len(bases)-1]
	f, err := os.OpenFile(segmentPath(opts.Dir, last), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	size, err := recoverSegment(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	l.active, l.activeSz = f, size
	l.end.Store(last + size)
	if opts.Fsync == FsyncInterval {
		l.wg.Add(1)
		go l.syncLoop()
	}
	return l, nil
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", base))
}

func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, n)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// recoverSegment scans f and truncates it after the last whole, valid record.
func recoverSegment(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	var pos int64
	hdr := make([]byte, headerSize)
	var buf []byte
	for pos+headerSize <= size {
		if _, err := f.ReadAt(hdr, pos); err != nil {
			return 0, err
		}
		n := int64(binary.BigEndian.Uint32(hdr))
		if pos+headerSize+n > size {
			break
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := f.ReadAt(buf, pos+headerSize); err != nil {
			return 0, err
		}
		if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
			break
		}
		pos += headerSize + n
	}
	if pos != size {
		if err := f.Truncate(pos); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

// batch is a group of appends written with one write call.
type batch struct {
	buf  []byte
	done bool
	err  error
}

// Append writes recs as consecutive records and returns once they are
// written (and synced, under FsyncAlways). Concurrent calls are grouped
// into one write: the first caller to find no write in progress writes
// everything queued so far, the others wait for it.
func (l *Log) Append(recs ...[]byte) error {
	for _, r := range recs {
		if len(r) > l.opts.MaxRecordBytes {
			return ErrTooLarge
		}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	b := l.cur
	for _, r := range recs {
		b.buf = binary.BigEndian.AppendUint32(b.buf, uint32(len(r)))
		b.buf = binary.BigEndian.AppendUint32(b.buf, crc32.Checksum(r, castagnoli))
		b.buf = append(b.buf, r...)
	}
	for !b.done {
		if l.flushing {
			l.cond.Wait()
			continue
		}
		// Batches are written in order and a batch being written is
		// finished before flushing is cleared, so b is l.cur here.
		l.flushing = true
		// Let the other goroutines that are ready to append join this
		// write before taking the batch.
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
		l.cur = &batch{buf: l.spare[:0]}
		l.mu.Unlock()
		err := l.write(b.buf)
		l.mu.Lock()
		l.spare, b.buf = b.buf, nil
		b.err, b.done = err, true
		l.flushing = false
		l.cond.Broadcast()
	}
	err := b.err
	l.mu.Unlock()
	return err
}

// write appends buf to the active segment, rolling first if it is full.
// On failure the segment is cut back to its previous size so that the log
// never holds a partial batch, and the error is returned.
func (l *Log) write(buf []byte) error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.activeSz >= l.opts.SegmentBytes {
		if err := l.roll(); err != nil {
			l.healthy.Store(false)
			return err
		}
	}
	if _, err := l.active.Write(buf); err != nil {
		l.healthy.Store(false)
		if terr := l.active.Truncate(l.activeSz); terr == nil {
			l.active.Seek(l.activeSz, io.SeekStart)
		}
		return fmt.Errorf("wal: write: %w", err)
	}
	if l.opts.Fsync == FsyncAlways {
		if err := l.active.Sync(); err != nil {
			l.healthy.Store(false)
			l.active.Truncate(l.activeSz)
			l.active.Seek(l.activeSz, io.SeekStart)
			return fmt.Errorf("wal: fsync: %w", err)
		}
	} else {
		l.dirty = true
	}
	l.activeSz += int64(len(buf))
	l.end.Store(l.bases[len(l.bases)-1] + l.activeSz)
	l.healthy.Store(true)
	ch := make(chan struct{})
	old := l.signal.Swap(&ch)
	close(*old)
	return nil
}

// roll closes the active segment and opens a new one. fileMu must be held.
func (l *Log) roll() error {
	if l.opts.Fsync != FsyncNever {
		if err := l.active.Sync(); err != nil {
			return err
		}
	}
	base := l.bases[len(l.bases)-1] + l.activeSz
	f, err := os.OpenFile(segmentPath(l.opts.Dir, base), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if l.opts.Fsync == FsyncAlways {
		syncDir(l.opts.Dir)
	}
	l.active.Close()
	l.active, l.activeSz, l.dirty = f, 0, false
	l.bases = append(l.bases, base)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func (l *Log) syncLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.Sync()
		}
	}
}

// Sync forces written records to stable storage.
func (l *Log) Sync() error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if !l.dirty || l.active == nil {
		return nil
	}
	l.dirty = false
	return l.active.Sync()
}

// Healthy reports whether the last write succeeded.
func (l *Log) Healthy() bool { return l.healthy.Load() }

// End returns the offset just past the last written record.
func (l *Log) End() int64 { return l.end.Load() }

// Close waits for in-flight appends, syncs and closes the log. Readers
// must not be used afterwards.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for l.flushing {
		l.cond.Wait()
	}
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	var err error
	if l.opts.Fsync != FsyncNever {
		err = l.active.Sync()
	}
	if cerr := l.active.Close(); err == nil {
		err = cerr
	}
	l.lock.Close()
	ch := make(chan struct{})
	close(*l.signal.Swap(&ch))
	return err
}

// segmentFor returns the base offset of the segment holding off and the
// offset where that segment ends (for the active one, the log end).
func (l *Log) segmentFor(off int64) (base, end int64, ok bool) {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	i := sort.Search(len(l.bases), func(i int) bool { return l.bases[i] > off }) - 1
	if i < 0 {
		return 0, 0, false
	}
	base = l.bases[i]
	if i+1 < len(l.bases) {
		end = l.bases[i+1]
	} else {
		end = l.end.Load()
	}
	return base, end, true
}

// Lag returns how many bytes the named reader has not yet committed.
func (l *Log) Lag(name string) int64 {
	l.readersMu.Lock()
	off, ok := l.readers[name]
	l.readersMu.Unlock()
	if !ok {
		off = l.firstOffset()
	}
	return l.End() - off
}

func (l *Log) firstOffset() int64 {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	return l.bases[0]
}

// prune deletes whole segments that every reader has committed past.
func (l *Log) prune() error {
	l.readersMu.Lock()
	if len(l.readers) == 0 {
		l.readersMu.Unlock()
		return nil
	}
	min := int64(-1)
	for _, off := range l.readers {
		if min < 0 || off < min {
			min = off
		}
	}
	l.readersMu.Unlock()

	l.fileMu.Lock()
	var drop []int64
	for len(l.bases) > 1 && l.bases[1] <= min {
		drop = append(drop, l.bases[0])
		l.bases = l.bases[1:]
	}
	l.fileMu.Unlock()
	for _, b := range drop {
		if err := os.Remove(segmentPath(l.opts.Dir, b)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func (l *Log) maxReaderOffset() (int64, error) {
	ents, err := os.ReadDir(filepath.Join(l.opts.Dir, "readers"))
	if err != nil {
		return 0, err
	}
	var max int64
	for _, e := range ents {
		if off, err := readOffset(filepath.Join(l.opts.Dir, "readers", e.Name())); err == nil && off > max {
			max = off
		}
	}
	return max, nil
}
