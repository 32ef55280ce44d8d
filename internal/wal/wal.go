// Package wal is furrow's embedded durable log: an append-only, segmented
// file log with group commit and named readers whose positions survive
// restarts. The collector appends raw events to it and answers the tracker
// only once the append has returned, so an acknowledged event is in the
// operating system's page cache (or on disk, with FsyncAlways) before the
// tracker hears 2xx.
//
// Records are framed so that damage can be located (see format.go). A
// record's offset is the global byte position of its header; segment
// files are named after the offset of their first byte.
//
// What the log does with damage, so that good records are never given
// up for a bad one:
//   - Open cuts an incomplete write at the end of the active segment (the
//     only bytes it removes), after saving them in quarantine; damage
//     followed by valid records is left for the readers.
//   - A reader skips bytes that hold no valid record, resynchronises on
//     the next valid one, saves the bytes in quarantine and reports them
//     to Options.OnDamage; the records around them are read.
//   - Bytes that are gone (a deleted or truncated segment) are reported
//     too, as Missing.
//
// Open returns what it cut in Repairs.
//
// What the log keeps in Dir, and for how long (records are payloads as
// appended, in clear):
//   - <offset>.seg, the segments, 20-digit base offset: records, framed.
//     A segment is deleted once every reader has committed past its end
//     (see Options.MaxSegmentAge for the active segment); a segment some
//     reader has not committed whole is kept.
//   - readers/<name>: a reader's committed offset, in decimal; no payload.
//     readers/<name>.tmp is a commit in progress (the same), removed by
//     Open if a crash left it.
//   - quarantine/<offset>-<length>.bin: the bytes of a stretch a reader
//     skipped as damaged, or Open cut as a torn write, copied whole for
//     forensics. They may hold records, or parts of them. The log never
//     deletes them.
//   - lock: empty; held while the log is open.
//   - probe: 64 KiB of zeros, written and removed every
//     Options.ProbeInterval; no payload.
//   - <offset>.seg.upgrade: a segment being rewritten from furrow 0.1's
//     format (records, as in a segment), renamed to <offset>.seg when
//     done; Open removes one an interrupted upgrade left.
package wal

import (
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
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

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configures a Log. Zero values take the defaults shown.
type Options struct {
	Dir            string
	SegmentBytes   int64         // roll to a new segment past this size; default 64 MiB
	Fsync          FsyncPolicy   // default FsyncInterval
	FsyncInterval  time.Duration // default 1s
	MaxRecordBytes int           // default 16 MiB
	// ProbeInterval is how often the log checks that it can write to its
	// directory, for Healthy; default 1s.
	ProbeInterval time.Duration
	// OnDamage is called by a reader for every stretch of the log it
	// skips or finds missing, after the bytes are saved in quarantine and
	// before the reader moves past them. If it returns an error, Read
	// returns that error and the reader stays where it was, so the next
	// Read reports the same damage again. Nil: damage is only logged.
	OnDamage func(Damage) error
	// Logger receives what Open finds and repairs; default slog.Default().
	Logger *slog.Logger
	// MaxSegmentAge bounds how long records stay on disk after every
	// reader has committed them; 0 (the default) leaves segments to be
	// deleted only once full (SegmentBytes) and passed by every reader.
	//
	// With it set, the log checks every MaxSegmentAge/4 (at least 10ms,
	// at most 1s apart), without waiting for a write: if the first record
	// of the active segment was written more than MaxSegmentAge ago, the
	// log rolls to a new segment; then it deletes every segment that each
	// reader has committed past. A record is thus gone from the log's
	// segments MaxSegmentAge plus one check interval after it was
	// written, or as soon as the last reader commits it, whichever is
	// later. While readers lag, the rolled segments wait for them: a
	// segment that some reader has not committed whole is never deleted.
	// Offsets continue across rolls, deletions and restarts.
	//
	// After a restart the time of the active segment's first record is
	// not known, so a non-empty active segment counts as expired and
	// rolls at the first check.
	//
	// The readers are all those with an offset file under readers/,
	// whether or not they are open in this process: a retired reader's
	// file must be deleted, or it holds every segment from its offset on.
	//
	// A deleted segment is unlinked and then truncated, so its blocks are
	// freed even while a reader still has the file open; they are not
	// overwritten, so until the file system reuses them they can still be
	// read from the raw device. The quarantine directory (see the package
	// comment) is not covered: it holds damaged stretches until an
	// operator deletes them.
	MaxSegmentAge time.Duration
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
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
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
	if o.MaxSegmentAge < 0 {
		return fmt.Errorf("wal: MaxSegmentAge %s is negative (0 turns it off)", o.MaxSegmentAge)
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

	// fileMu guards the active segment file and the segment lists.
	fileMu   sync.Mutex
	active   *os.File
	bases    []int64 // sorted segment base offsets
	ends     []int64 // where each segment's data ends; the active one's is base+activeSz
	activeSz int64
	dirty    bool
	// activeSince is when the active segment's first record was written;
	// the zero time (expired) for one found non-empty at Open.
	activeSince time.Time

	end    atomic.Int64 // global offset just past the last written record
	signal atomic.Pointer[chan struct{}]
	// health is nil while the log can write, else the last error: set by
	// every write, and by the probe (see probeLoop).
	health atomic.Pointer[error]

	// readersMu is taken before fileMu when both are held.
	readersMu sync.Mutex
	readers   map[string]int64 // committed offsets: every reader with an offset file, and those opened

	repairs []Damage

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens or creates the log in opts.Dir, repairing what a crash or
// damage left (see the package comment and Repairs). The log holds the
// directory until Close; opening it again meanwhile fails with ErrLocked.
// A reader offset file that does not hold an offset makes Open fail,
// naming the file.
func Open(opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	for _, d := range []string{filepath.Dir(opts.Dir), opts.Dir, filepath.Join(opts.Dir, "readers")} {
		if err := mkdirPrivate(d); err != nil {
			return nil, err
		}
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
	f, err := openPrivate(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR)
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

// openPrivate opens a file of the log with filePerm, narrowing the mode
// of a file an older version created with a wider one.
func openPrivate(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, filePerm)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(filePerm); err != nil {
		f.Close()
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

	offsets, err := readOffsets(l.readersDir())
	if err != nil {
		return nil, err
	}
	if offsets, l.repairs, err = upgrade(opts, offsets); err != nil {
		return nil, err
	}
	if err := removeUpgradeLeftovers(opts.Dir); err != nil {
		return nil, err
	}
	// Every reader with an offset file counts for pruning from the start,
	// opened in this process or not, so that a segment is never deleted
	// before a reader that has yet to be opened has read it.
	for name, off := range offsets {
		l.readers[name] = off
	}
	maxOff := int64(0)
	for _, off := range offsets {
		maxOff = max(maxOff, off)
	}
	bases, err := listSegments(opts.Dir)
	if err != nil {
		return nil, err
	}
	if len(bases) == 0 {
		// The first segment starts where the readers say the old log ended,
		// so offsets never go backwards after the segments were pruned.
		bases = []int64{maxOff}
	}
	ends := make([]int64, len(bases))
	for i, base := range bases[:len(bases)-1] {
		st, err := os.Stat(segmentPath(opts.Dir, base))
		if err != nil {
			return nil, err
		}
		ends[i] = base + st.Size()
		if next := bases[i+1]; ends[i] > next {
			opts.Logger.Warn("wal: segment longer than the next segment's offset allows; its last bytes are ignored",
				"segment", segmentPath(opts.Dir, base), "extra_bytes", ends[i]-next)
			ends[i] = next
		} else if ends[i] < next {
			opts.Logger.Warn("wal: bytes missing between segments (a segment was deleted or cut); readers will skip them",
				"dir", opts.Dir, "offset", ends[i], "bytes", next-ends[i], "next_segment", filepath.Base(segmentPath(opts.Dir, next)))
		}
	}
	last := bases[len(bases)-1]
	f, err := openPrivate(segmentPath(opts.Dir, last), os.O_CREATE|os.O_RDWR)
	if err != nil {
		return nil, err
	}
	size, cut, err := recoverSegment(opts, f, last)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.repairs = append(l.repairs, cut...)
	if end := last + size; maxOff > end {
		// Readers have committed past the end of what is on disk: the
		// newest segments are gone. Start a new segment where the readers
		// are, so that offsets never repeat. The readers past the end had
		// processed the lost bytes; a reader behind reports them as it
		// reaches them.
		opts.Logger.Warn("wal: the log ends before its readers' committed offsets (the newest segments were deleted or cut); new records start at the furthest reader",
			"dir", opts.Dir, "end", end, "furthest_reader", maxOff)
		f.Close()
		ends[len(ends)-1] = end
		bases, ends = append(bases, maxOff), append(ends, 0)
		last, size = maxOff, 0
		if f, err = openPrivate(segmentPath(opts.Dir, last), os.O_CREATE|os.O_RDWR|os.O_TRUNC); err != nil {
			return nil, err
		}
	}
	for _, base := range bases[:len(bases)-1] {
		if err := os.Chmod(segmentPath(opts.Dir, base), filePerm); err != nil {
			f.Close()
			return nil, err
		}
	}
	l.bases, l.ends = bases, ends
	l.active, l.activeSz = f, size
	l.end.Store(last + size)
	l.wg.Add(1)
	go l.probeLoop()
	if opts.Fsync == FsyncInterval {
		l.wg.Add(1)
		go l.syncLoop()
	}
	if opts.MaxSegmentAge > 0 {
		l.wg.Add(1)
		go l.ageLoop()
	}
	return l, nil
}

// Repairs returns what Open cut: bytes no reader will see, for the
// caller to report (Open only logs what it leaves for the readers).
// Damage that readers skip is reported by them, to Options.OnDamage.
func (l *Log) Repairs() []Damage { return l.repairs }

// removeUpgradeLeftovers removes the <offset>.seg.upgrade files in dir:
// once upgrade has returned, any left are from an upgrade that a crash
// interrupted and that was done again (or was no longer needed).
func removeUpgradeLeftovers(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg.upgrade") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("wal: remove the leftover of an interrupted upgrade: %w", err)
			}
		}
	}
	return nil
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

// recoverSegment checks every record of the active segment f, whose base
// offset is base, and returns the size to keep. Damage that valid records
// follow stays, for readers to skip (it is logged here); an incomplete or
// damaged end that no valid record follows is a torn write: it is saved
// in quarantine, cut and returned.
func recoverSegment(opts Options, f *os.File, base int64) (int64, []Damage, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := st.Size()
	var pos int64
	buf := make([]byte, 0, scanWindow)
	for pos < size {
		var n int
		var state recordState
		n, state, buf, err = scanRecords(f, pos, size, buf)
		if err != nil {
			return 0, nil, err
		}
		pos += int64(n)
		if state == recOK || pos == size {
			continue
		}
		at := pos
		recSize, _ := checkRecord(buf[:min(len(buf), headerSize)])
		var next int64
		if state == recBadData {
			next = at + headerSize + recSize
		} else if next, buf, err = nextRecord(f, at, size, buf); err != nil {
			return 0, nil, err
		}
		if next < size || state == recBadData {
			opts.Logger.Warn("wal: damaged bytes in the active segment; valid records follow, so they are kept and readers will skip them",
				"segment", f.Name(), "offset", base+at, "bytes", next-at, "reason", state.String())
			pos = next
			continue
		}
		d := Damage{Kind: Cut, Dir: opts.Dir, Offset: base + at, Length: size - at, Segment: f.Name(),
			Reason: state.String() + " at the end of the active segment (a write cut short)"}
		if err := quarantine(&d, f, base); err != nil {
			return 0, nil, err
		}
		if err := f.Truncate(at); err != nil {
			return 0, nil, err
		}
		if err := f.Sync(); err != nil {
			return 0, nil, err
		}
		return at, []Damage{d}, nil
	}
	return size, nil, nil
}

// scanRecords reads f from pos (up to limit) and walks the valid records
// there. It returns how many bytes of valid records it passed and the
// state of what stopped it: recOK if it reached limit, or the state of
// the record at pos+n, whose first bytes buf then starts with.
func scanRecords(f *os.File, pos, limit int64, buf []byte) (int, recordState, []byte, error) {
	n := min(int64(cap(buf)), limit-pos)
	buf = buf[:n]
	if _, err := f.ReadAt(buf, pos); err != nil {
		return 0, 0, buf, err
	}
	off := 0
	for off < len(buf) {
		size, state := checkRecord(buf[off:])
		switch state {
		case recOK:
			off += headerSize + int(size)
			continue
		case recShort, recPartial:
			if off > 0 {
				return off, recOK, buf, nil // the rest needs another read
			}
			if state == recShort && pos+headerSize+size <= limit {
				// A record larger than the buffer: read it whole.
				big := make([]byte, headerSize+size)
				if _, err := f.ReadAt(big, pos); err != nil {
					return 0, 0, buf, err
				}
				if _, s := checkRecord(big); s != recOK {
					return 0, s, big, nil
				}
				return len(big), recOK, buf, nil
			}
		}
		copy(buf, buf[off:])
		return off, state, buf[:len(buf)-off], nil
	}
	return off, recOK, buf, nil
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
		b.buf = appendRecord(b.buf, r)
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
// never holds a partial batch, and the error is returned. Writes go to
// the segment's own size, not the file position, so a failed cut does
// not shift the next write.
func (l *Log) write(buf []byte) error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.activeSz >= l.opts.SegmentBytes {
		if err := l.roll(); err != nil {
			return l.failed(fmt.Errorf("wal: new segment: %w", err))
		}
	}
	if _, err := l.active.WriteAt(buf, l.activeSz); err != nil {
		l.active.Truncate(l.activeSz)
		return l.failed(fmt.Errorf("wal: write %s: %w", l.active.Name(), err))
	}
	if l.opts.Fsync == FsyncAlways {
		if err := l.active.Sync(); err != nil {
			l.active.Truncate(l.activeSz)
			return l.failed(fmt.Errorf("wal: fsync %s: %w", l.active.Name(), err))
		}
	} else {
		l.dirty = true
	}
	if l.activeSz == 0 {
		l.activeSince = time.Now() // once per segment
	}
	l.activeSz += int64(len(buf))
	l.end.Store(l.bases[len(l.bases)-1] + l.activeSz)
	l.health.Store(nil)
	ch := make(chan struct{})
	old := l.signal.Swap(&ch)
	close(*old)
	return nil
}

// failed marks the log unhealthy with err and returns it.
func (l *Log) failed(err error) error {
	l.health.Store(&err)
	return err
}

// roll closes the active segment and opens a new one. fileMu must be held.
func (l *Log) roll() error {
	if l.opts.Fsync != FsyncNever {
		if err := l.active.Sync(); err != nil {
			return err
		}
	}
	base := l.bases[len(l.bases)-1] + l.activeSz
	f, err := openPrivate(segmentPath(l.opts.Dir, base), os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if l.opts.Fsync == FsyncAlways {
		syncDir(l.opts.Dir)
	}
	l.active.Close()
	l.ends[len(l.ends)-1] = base
	l.active, l.activeSz, l.dirty = f, 0, false
	l.bases, l.ends = append(l.bases, base), append(l.ends, 0)
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

// ageCheckInterval is how often ageLoop checks, for MaxSegmentAge d.
func ageCheckInterval(d time.Duration) time.Duration {
	return min(max(d/4, 10*time.Millisecond), time.Second)
}

// ageLoop enforces Options.MaxSegmentAge (see there).
func (l *Log) ageLoop() {
	defer l.wg.Done()
	t := time.NewTicker(ageCheckInterval(l.opts.MaxSegmentAge))
	defer t.Stop()
	failing := false
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		err := l.expire(time.Now())
		if err != nil && !failing {
			l.opts.Logger.Warn("wal: cannot roll or delete expired segments; records stay on disk past MaxSegmentAge until this succeeds",
				"dir", l.opts.Dir, "max_segment_age", l.opts.MaxSegmentAge, "err", err)
		} else if err == nil && failing {
			l.opts.Logger.Info("wal: expired segments are deleted again", "dir", l.opts.Dir)
		}
		failing = err != nil
	}
}

// expire rolls the active segment if its first record is older than
// MaxSegmentAge at now, and prunes.
func (l *Log) expire(now time.Time) error {
	l.fileMu.Lock()
	var err error
	if l.activeSz > 0 && now.Sub(l.activeSince) >= l.opts.MaxSegmentAge {
		if err = l.roll(); err != nil {
			err = fmt.Errorf("wal: new segment in %s: %w", l.opts.Dir, err)
		}
	}
	l.fileMu.Unlock()
	return errors.Join(err, l.prune())
}

// probeBytes is the size of the probe file: about what a large POST
// needs, so that a disk with less free space than that stays unhealthy.
const probeBytes = 64 << 10

// probeLoop checks every ProbeInterval that the directory takes writes,
// by writing and removing a small file, so that Healthy follows the disk
// (space freed, a file system remounted read-only) and not only the last
// append: a collector answering 503 behind a load balancer may get no
// appends at all until it reports healthy again.
func (l *Log) probeLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.ProbeInterval)
	defer t.Stop()
	path := filepath.Join(l.opts.Dir, "probe")
	block := make([]byte, probeBytes)
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		err := os.WriteFile(path, block, filePerm)
		os.Remove(path)
		if err != nil {
			l.failed(fmt.Errorf("wal: probe write in %s: %w", l.opts.Dir, err))
		} else {
			l.health.Store(nil)
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

// Healthy reports whether the log can currently write: the last write,
// or the last probe since, succeeded.
func (l *Log) Healthy() bool { return l.health.Load() == nil }

// Health returns nil while the log can write, else why it cannot.
func (l *Log) Health() error {
	if p := l.health.Load(); p != nil {
		return *p
	}
	return nil
}

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

// segment is where a reader's position falls.
type segment struct {
	base    int64 // first offset of the segment
	dataEnd int64 // where its bytes on disk end
	next    int64 // the next segment's base; -1 for the active segment
}

// segmentFor returns the segment holding off, or ok false if off is
// before the first segment.
func (l *Log) segmentFor(off int64) (s segment, ok bool) {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	i := sort.Search(len(l.bases), func(i int) bool { return l.bases[i] > off }) - 1
	if i < 0 {
		return segment{}, false
	}
	s = segment{base: l.bases[i], dataEnd: l.ends[i], next: -1}
	if i+1 < len(l.bases) {
		s.next = l.bases[i+1]
	} else {
		s.dataEnd = l.end.Load()
	}
	return s, true
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

// prune deletes whole segments that every reader has committed past
// (never the active one). readersMu is held until the segments are out
// of the lists, so that a reader being added meanwhile (see Reader)
// either counts or starts after them.
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
	l.fileMu.Lock()
	var drop []int64
	for len(l.bases) > 1 && l.bases[1] <= min {
		drop = append(drop, l.bases[0])
		l.bases, l.ends = l.bases[1:], l.ends[1:]
	}
	l.fileMu.Unlock()
	l.readersMu.Unlock()
	var errs []error
	for _, b := range drop {
		errs = append(errs, removeSegment(segmentPath(l.opts.Dir, b)))
	}
	return errors.Join(errs...)
}

// removeSegment deletes the segment at path: unlinks it, then truncates
// it, so that its blocks are freed even if a reader still has it open (a
// reader waiting at the end of the log holds the segment it finished).
// A crash in between leaves no file behind.
func removeSegment(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		// Not writable: delete it all the same.
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("wal: delete segment: %w", err)
		}
		return nil
	}
	defer f.Close()
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("wal: delete segment: %w", err)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("wal: truncate deleted segment %s: %w", path, err)
	}
	return nil
}

func (l *Log) readersDir() string { return filepath.Join(l.opts.Dir, "readers") }

// readOffsets reads every reader's committed offset. A file that does
// not hold one is an error naming it; leftovers of an interrupted commit
// (".tmp") are removed.
func readOffsets(dir string) (map[string]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	offs := map[string]int64{}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(path)
			continue
		}
		off, err := readOffset(path)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(path, filePerm); err != nil {
			return nil, err
		}
		offs[e.Name()] = off
	}
	return offs, nil
}

// readOffset reads a reader offset file.
func readOffset(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil || off < 0 {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return 0, fmt.Errorf("wal: reader offset file %s holds %q, not a byte offset: restore it, or delete it to make "+
			"that reader start again at the beginning of the log (what it already processed would be processed again)", path, s)
	}
	return off, nil
}
