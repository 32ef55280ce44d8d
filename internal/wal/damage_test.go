package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/testutil"
)

// damageLog records what a log reports.
type damageLog struct {
	mu   sync.Mutex
	list []Damage
	fail error // returned by the next report, once
}

func (d *damageLog) report(x Damage) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fail; err != nil {
		d.fail = nil
		return err
	}
	d.list = append(d.list, x)
	return nil
}

func (d *damageLog) all() []Damage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Damage(nil), d.list...)
}

// written is one record appended by a test, and where it landed.
type written struct {
	data      []byte
	off, next int64
}

// fill appends n records named prefix-i, each its own append, and
// returns them with their offsets.
func fill(t testing.TB, l *Log, prefix string, n int) []written {
	t.Helper()
	var out []written
	for i := 0; i < n; i++ {
		rec := []byte(fmt.Sprintf("%s-%04d-%s", prefix, i, strings.Repeat("x", i%37)))
		off := l.End()
		if err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, written{rec, off, l.End()})
	}
	return out
}

func dataOf(ws []written) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = string(w.data)
	}
	return out
}

func strs(b [][]byte) []string {
	out := make([]string, len(b))
	for i, x := range b {
		out[i] = string(x)
	}
	return out
}

// without returns ws without the records at the given indexes.
func without(ws []written, skip ...int) []written {
	var out []written
	for i, w := range ws {
		drop := false
		for _, s := range skip {
			drop = drop || s == i
		}
		if !drop {
			out = append(out, w)
		}
	}
	return out
}

// segmentOf returns the path of the segment holding global offset off.
func segmentOf(t *testing.T, dir string, off int64) (string, int64) {
	t.Helper()
	bases, _ := listSegments(dir)
	for i := len(bases) - 1; i >= 0; i-- {
		if bases[i] <= off {
			return segmentPath(dir, bases[i]), bases[i]
		}
	}
	t.Fatalf("no segment holds %d", off)
	return "", 0
}

// flip xors one byte of the log at global offset off.
func flip(t *testing.T, dir string, off int64) {
	t.Helper()
	path, base := segmentOf(t, dir, off)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off-base] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: got %d records %q\nwant %d %q", what, len(got), got, len(want), want)
	}
}

func checkQuarantine(t *testing.T, d Damage, want []byte) {
	t.Helper()
	got, err := os.ReadFile(d.Quarantine)
	if err != nil {
		t.Fatalf("quarantine of %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("quarantine %s holds %d bytes, want the %d damaged ones", d.Quarantine, len(got), len(want))
	}
	if int64(len(got)) != d.Length || !bytes.Equal(d.Head, want[:min(len(want), DamageHeadBytes)]) {
		t.Fatalf("damage %s: length %d, head %d bytes; want %d", d, d.Length, len(d.Head), len(want))
	}
}

// TestDamagedRecordIsSkipped flips one bit in a record's payload and in
// another's header, in the active segment and in an older one: the
// readers return every other record, report each damaged record with its
// exact offset and length and quarantine its bytes, and nothing is cut
// at open.
func TestDamagedRecordIsSkipped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segment int64 // SegmentBytes
		at      func(w written) int64
		reason  string
	}{
		{"payload, active segment", 0, func(w written) int64 { return w.off + headerSize + 2 }, "payload checksum mismatch"},
		{"header length, active segment", 0, func(w written) int64 { return w.off + 6 }, "damaged record header"},
		{"magic, active segment", 0, func(w written) int64 { return w.off }, "damaged record header"},
		{"payload, older segment", 1000, func(w written) int64 { return w.off + headerSize + 2 }, "payload checksum mismatch"},
		{"header checksum, older segment", 1000, func(w written) int64 { return w.off + 13 }, "damaged record header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := func(o *Options) { o.SegmentBytes = tc.segment }
			l := open(t, dir, mod)
			ws := fill(t, l, "r", 100)
			end := l.End()
			l.Close()
			victim := ws[40]
			path, base := segmentOf(t, dir, victim.off)
			before, _ := os.ReadFile(path)
			flip(t, dir, tc.at(victim))

			var dl damageLog
			l = open(t, dir, func(o *Options) { mod(o); o.OnDamage = dl.report })
			defer l.Close()
			if l.End() != end || len(l.Repairs()) != 0 {
				t.Fatalf("open changed the log: end %d (was %d), repairs %v", l.End(), end, l.Repairs())
			}
			r, _ := l.Reader("x")
			equal(t, "records read", strs(readAll(t, r)), dataOf(without(ws, 40)))
			ds := dl.all()
			if len(ds) != 1 {
				t.Fatalf("reported %v, want one damaged record", ds)
			}
			d := ds[0]
			if d.Kind != Skipped || d.Offset != victim.off || d.Length != victim.next-victim.off || d.Reason != tc.reason || d.Reader != "x" {
				t.Fatalf("reported %+v; want skipped %d bytes at %d (%s)", d, victim.next-victim.off, victim.off, tc.reason)
			}
			want := append([]byte(nil), before[victim.off-base:victim.next-base]...)
			want[tc.at(victim)-victim.off] ^= 0x10
			checkQuarantine(t, d, want)
		})
	}
}

// TestRestartPassesDamage: after a damaged record is skipped and the
// records after it committed, a restart neither stalls nor reports it
// again.
func TestRestartPassesDamage(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, func(o *Options) { o.SegmentBytes = 500 })
	ws := fill(t, l, "r", 50)
	l.Close()
	flip(t, dir, ws[3].off+headerSize)
	for round := 0; round < 2; round++ {
		var dl damageLog
		l = open(t, dir, func(o *Options) { o.SegmentBytes = 500; o.OnDamage = dl.report })
		r, _ := l.Reader("x")
		got := readAll(t, r)
		if round == 0 {
			equal(t, "first run", strs(got), dataOf(without(ws, 3)))
			if len(dl.all()) != 1 {
				t.Fatalf("first run reported %v", dl.all())
			}
			r.Commit(r.Position())
		} else if len(got) != 0 || len(dl.all()) != 0 {
			t.Fatalf("after the restart: read %d records, reported %v", len(got), dl.all())
		}
		l.Close()
	}
}

// TestTornTailIsCut: an incomplete write at the end of the active
// segment (a partial header, a header whose record runs past the end, or
// garbage) is cut at open, reported with its offset and saved, and the
// log goes on after it.
func TestTornTailIsCut(t *testing.T) {
	whole := appendRecord(nil, []byte("a record that was being written"))
	for name, tail := range map[string][]byte{
		"partial header": whole[:7],
		"partial record": whole[:len(whole)-5],
		"garbage":        []byte("\x00\x00\x00\x00\xffgarbage"),
		"zeros":          make([]byte, 4096),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, nil)
			ws := fill(t, l, "r", 3)
			end := l.End()
			l.Close()
			f, _ := os.OpenFile(segmentPath(dir, 0), os.O_APPEND|os.O_WRONLY, 0)
			f.Write(tail)
			f.Close()

			l = open(t, dir, nil)
			defer l.Close()
			if l.End() != end {
				t.Fatalf("end after recovery = %d, want %d", l.End(), end)
			}
			rep := l.Repairs()
			if len(rep) != 1 || rep[0].Kind != Cut || rep[0].Offset != end || rep[0].Length != int64(len(tail)) {
				t.Fatalf("repairs %v; want a cut of %d bytes at %d", rep, len(tail), end)
			}
			checkQuarantine(t, rep[0], tail)
			l.Append([]byte("after"))
			r, _ := l.Reader("x")
			equal(t, "records", strs(readAll(t, r)), append(dataOf(ws), "after"))
		})
	}
}

// TestDamageInTheMiddleOfTheActiveSegmentIsKept: one flipped bit in the
// middle of the active segment used to truncate everything after it.
func TestDamageInTheMiddleOfTheActiveSegmentIsKept(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	ws := fill(t, l, "r", 2000)
	end := l.End()
	l.Close()
	flip(t, dir, ws[100].off+headerSize+1)
	var dl damageLog
	l = open(t, dir, func(o *Options) { o.OnDamage = dl.report })
	defer l.Close()
	if l.End() != end || len(l.Repairs()) != 0 {
		t.Fatalf("end %d (want %d), repairs %v", l.End(), end, l.Repairs())
	}
	r, _ := l.Reader("x")
	if got := readAll(t, r); len(got) != 1999 {
		t.Fatalf("read %d records, want 1999", len(got))
	}
}

// TestDamagedTailRecordIsKept: a whole last record whose payload fails
// its checksum is not an incomplete write; it is kept for the readers,
// which skip it.
func TestDamagedTailRecordIsKept(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	ws := fill(t, l, "r", 5)
	l.Close()
	flip(t, dir, ws[4].off+headerSize)
	var dl damageLog
	l = open(t, dir, func(o *Options) { o.OnDamage = dl.report })
	defer l.Close()
	if l.End() != ws[4].next || len(l.Repairs()) != 0 {
		t.Fatalf("end %d, repairs %v", l.End(), l.Repairs())
	}
	l.Append([]byte("after"))
	r, _ := l.Reader("x")
	equal(t, "records", strs(readAll(t, r)), append(dataOf(ws[:4]), "after"))
	if ds := dl.all(); len(ds) != 1 || ds[0].Offset != ws[4].off {
		t.Fatalf("reported %v", ds)
	}
}

// TestCutOlderSegment: an older segment cut in the middle of a record.
// The partial record is quarantined, the bytes cut away are reported
// missing, and the next segments are read.
func TestCutOlderSegment(t *testing.T) {
	dir := t.TempDir()
	mod := func(o *Options) { o.SegmentBytes = 600 }
	l := open(t, dir, mod)
	ws := fill(t, l, "r", 60)
	l.Close()
	bases, _ := listSegments(dir)
	if len(bases) < 4 {
		t.Fatalf("only %d segments", len(bases))
	}
	// Cut the second segment 10 bytes into its third record.
	var third written
	n := 0
	for _, w := range ws {
		if w.off >= bases[1] && w.off < bases[2] {
			if n == 2 {
				third = w
			}
			n++
		}
	}
	if err := os.Truncate(segmentPath(dir, bases[1]), third.off+10-bases[1]); err != nil {
		t.Fatal(err)
	}
	var dl damageLog
	l = open(t, dir, func(o *Options) { mod(o); o.OnDamage = dl.report })
	defer l.Close()
	r, _ := l.Reader("x")
	var want []written
	for _, w := range ws {
		if w.off < third.off || w.off >= bases[2] {
			want = append(want, w)
		}
	}
	equal(t, "records", strs(readAll(t, r)), dataOf(want))
	ds := dl.all()
	if len(ds) != 2 ||
		ds[0].Kind != Skipped || ds[0].Offset != third.off || ds[0].Length != 10 ||
		ds[1].Kind != Missing || ds[1].Offset != third.off+10 || ds[1].Length != bases[2]-third.off-10 {
		t.Fatalf("reported %v", ds)
	}
}

// TestDeletedSegments: a deleted segment in the middle, the oldest ones,
// or the newest ones. Every record still on disk is read once, and the
// missing bytes are reported with their offsets.
func TestDeletedSegments(t *testing.T) {
	mod := func(o *Options) { o.SegmentBytes = 600 }
	setup := func(t *testing.T) (string, []written, []int64) {
		dir := t.TempDir()
		l := open(t, dir, mod)
		ws := fill(t, l, "r", 60)
		l.Close()
		bases, _ := listSegments(dir)
		return dir, ws, bases
	}
	keep := func(ws []written, from, to int64) (out []written) {
		for _, w := range ws {
			if w.off < from || w.off >= to {
				out = append(out, w)
			}
		}
		return out
	}

	t.Run("middle", func(t *testing.T) {
		dir, ws, bases := setup(t)
		os.Remove(segmentPath(dir, bases[2]))
		var dl damageLog
		l := open(t, dir, func(o *Options) { mod(o); o.OnDamage = dl.report })
		defer l.Close()
		r, _ := l.Reader("x")
		equal(t, "records", strs(readAll(t, r)), dataOf(keep(ws, bases[2], bases[3])))
		if ds := dl.all(); len(ds) != 1 || ds[0].Kind != Missing || ds[0].Offset != bases[2] || ds[0].Length != bases[3]-bases[2] {
			t.Fatalf("reported %v", ds)
		}
	})
	t.Run("oldest, reader behind them", func(t *testing.T) {
		dir, ws, bases := setup(t)
		l := open(t, dir, mod)
		r, _ := l.Reader("x")
		r.Commit(ws[1].off) // processed one record
		l.Close()
		os.Remove(segmentPath(dir, bases[0]))
		os.Remove(segmentPath(dir, bases[1]))
		var dl damageLog
		l = open(t, dir, func(o *Options) { mod(o); o.OnDamage = dl.report })
		defer l.Close()
		r, _ = l.Reader("x")
		equal(t, "records", strs(readAll(t, r)), dataOf(keep(ws, 0, bases[2])))
		if ds := dl.all(); len(ds) != 1 || ds[0].Kind != Missing || ds[0].Offset != ws[1].off || ds[0].Length != bases[2]-ws[1].off {
			t.Fatalf("reported %v", ds)
		}
	})
	t.Run("newest, one reader past them", func(t *testing.T) {
		dir, ws, bases := setup(t)
		l := open(t, dir, mod)
		slow, _ := l.Reader("slow")
		slow.Commit(0) // holds the segments
		r, _ := l.Reader("x")
		readAll(t, r)
		r.Commit(r.Position())
		end := l.End()
		l.Close()
		gone := bases[len(bases)-2]
		os.Remove(segmentPath(dir, bases[len(bases)-1]))
		os.Remove(segmentPath(dir, gone))
		var dl damageLog
		l = open(t, dir, func(o *Options) { mod(o); o.OnDamage = dl.report })
		defer l.Close()
		if l.End() != end || len(l.Repairs()) != 0 {
			t.Fatalf("end %d (want %d: offsets must not repeat), repairs %v", l.End(), end, l.Repairs())
		}
		l.Append([]byte("new"))
		r, err := l.Reader("x")
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "reader past the end", strs(readAll(t, r)), []string{"new"})
		if len(dl.all()) != 0 {
			t.Fatalf("reported %v for a reader that had read the lost bytes", dl.all())
		}
		slow, _ = l.Reader("slow")
		equal(t, "reader behind", strs(readAll(t, slow)), append(dataOf(keep(ws, gone, end)), "new"))
		if ds := dl.all(); len(ds) != 1 || ds[0].Kind != Missing || ds[0].Offset != gone || ds[0].Length != end-gone || ds[0].Reader != "slow" {
			t.Fatalf("reported %v", ds)
		}
	})
}

// TestGarbageOffsetFile: Open refuses a reader offset file that does not
// hold an offset, naming the file.
func TestGarbageOffsetFile(t *testing.T) {
	for _, content := range []string{"garbage", "", "-5", "12 34", strings.Repeat("9", 30)} {
		dir := t.TempDir()
		l := open(t, dir, nil)
		fill(t, l, "r", 3)
		l.Close()
		path := filepath.Join(dir, "readers", "enrich")
		os.WriteFile(path, []byte(content), 0o600)
		_, err := Open(Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a byte offset") {
			t.Fatalf("offset file %q: Open: %v", content, err)
		}
	}
	// A commit interrupted before its rename leaves a .tmp: ignored.
	dir := t.TempDir()
	l := open(t, dir, nil)
	fill(t, l, "r", 3)
	l.Close()
	os.WriteFile(filepath.Join(dir, "readers", "enrich.tmp"), []byte("12"), 0o600)
	l = open(t, dir, nil)
	l.Close()
}

// TestFailedReportIsRetried: a report that fails leaves the reader where
// it was; the next Read reports the damage again and goes on.
func TestFailedReportIsRetried(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	ws := fill(t, l, "r", 10)
	l.Close()
	flip(t, dir, ws[0].off+headerSize)
	dl := damageLog{fail: errors.New("bad row sink is full")}
	l = open(t, dir, func(o *Options) { o.OnDamage = dl.report })
	defer l.Close()
	r, _ := l.Reader("x")
	if _, err := r.Read(context.Background(), 100, 1<<20); err == nil || !strings.Contains(err.Error(), "bad row sink is full") {
		t.Fatalf("Read: %v", err)
	}
	equal(t, "records", strs(readAll(t, r)), dataOf(ws[1:]))
	if len(dl.all()) != 1 {
		t.Fatalf("reported %v", dl.all())
	}
}

// TestResyncAcrossWindows: a long run of garbage (more than the scan
// window) before valid records.
func TestResyncAcrossWindows(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	ws := fill(t, l, "r", 3)
	// A record whose payload holds the magic number and a fake header.
	fake := appendRecord(nil, []byte("inner"))
	trap := append(bytes.Repeat([]byte{0xAB}, scanWindow+100), fake[:headerSize]...)
	l.Append(trap)
	ws2 := fill(t, l, "s", 3)
	l.Close()
	// Damage the trap's header: the scan must not stop at the fake
	// header inside its payload (its payload does not follow), and must
	// find the record after.
	flip(t, dir, ws[2].next+1)
	var dl damageLog
	l = open(t, dir, func(o *Options) { o.OnDamage = dl.report })
	defer l.Close()
	r, _ := l.Reader("x")
	equal(t, "records", strs(readAll(t, r)), append(dataOf(ws), dataOf(ws2)...))
	if ds := dl.all(); len(ds) != 1 || ds[0].Offset != ws[2].next || ds[0].Offset+ds[0].Length != ws2[0].off {
		t.Fatalf("reported %v", ds)
	}
}

// writeV1 writes records in furrow 0.1's format into segments of
// segBytes, returning their old offsets.
func writeV1(t *testing.T, dir string, recs []string, segBytes int64) []int64 {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "readers"), 0o755)
	var offs []int64
	var base, pos int64
	var f *os.File
	for _, r := range recs {
		if f == nil || pos >= segBytes {
			if f != nil {
				f.Close()
			}
			base += pos
			pos = 0
			f, _ = os.Create(segmentPath(dir, base))
		}
		var h [8]byte
		binary.BigEndian.PutUint32(h[:], uint32(len(r)))
		binary.BigEndian.PutUint32(h[4:], crc32.Checksum([]byte(r), castagnoli))
		f.Write(h[:])
		f.Write([]byte(r))
		offs = append(offs, base+pos)
		pos += 8 + int64(len(r))
	}
	f.Close()
	return append(offs, base+pos)
}

// TestUpgradeFromV1: a log written by furrow 0.1 is upgraded at open;
// each reader goes on with exactly the records it had not committed.
func TestUpgradeFromV1(t *testing.T) {
	var recs []string
	for i := 0; i < 50; i++ {
		recs = append(recs, fmt.Sprintf("old-%02d", i))
	}
	dir := t.TempDir()
	offs := writeV1(t, dir, recs, 100)
	os.WriteFile(filepath.Join(dir, "readers", "fast"), []byte(fmt.Sprint(offs[30])), 0o644)
	os.WriteFile(filepath.Join(dir, "readers", "slow"), []byte(fmt.Sprint(offs[12])), 0o644)
	os.WriteFile(filepath.Join(dir, "readers", "done"), []byte(fmt.Sprint(offs[50])), 0o644)
	for round := 0; round < 2; round++ {
		l := open(t, dir, nil)
		if round == 0 {
			if l.End() <= offs[50] {
				t.Fatalf("end %d: offsets went backwards (old end %d)", l.End(), offs[50])
			}
			l.Append([]byte("new"))
		}
		for name, from := range map[string]int{"fast": 30, "slow": 12, "done": 50} {
			r, err := l.Reader(name)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, name, strs(readAll(t, r)), append(append([]string(nil), recs[from:]...), "new"))
		}
		l.Close()
	}
	if segs, _ := listSegments(dir); len(segs) != 1 {
		t.Fatalf("%d segments after the upgrade, want the one new one", len(segs))
	}
}

// TestUpgradeFromV1AllConsumed: when every reader had read everything,
// the old segments are simply deleted.
func TestUpgradeFromV1AllConsumed(t *testing.T) {
	dir := t.TempDir()
	offs := writeV1(t, dir, []string{"a", "b", "c"}, 1<<20)
	os.WriteFile(filepath.Join(dir, "readers", "enrich"), []byte(fmt.Sprint(offs[3])), 0o644)
	l := open(t, dir, nil)
	defer l.Close()
	if l.End() != offs[3] {
		t.Fatalf("end %d, want %d", l.End(), offs[3])
	}
	l.Append([]byte("d"))
	r, _ := l.Reader("enrich")
	equal(t, "records", strs(readAll(t, r)), []string{"d"})
}

// TestFileModes: the log's directories are 0700 and its files 0600,
// whatever the umask, also when an older version made them wider.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "log", "raw")
	os.MkdirAll(filepath.Join(dir, "readers"), 0o777)
	os.WriteFile(segmentPath(dir, 0), nil, 0o666)
	os.WriteFile(filepath.Join(dir, "readers", "x"), []byte("0"), 0o666)
	var dl damageLog
	l := open(t, dir, func(o *Options) { o.SegmentBytes = 100; o.OnDamage = dl.report })
	ws := fill(t, l, "r", 20)
	r, _ := l.Reader("x")
	l.Close()
	flip(t, dir, ws[15].off+headerSize)
	l = open(t, dir, func(o *Options) { o.SegmentBytes = 100; o.OnDamage = dl.report })
	r, _ = l.Reader("x")
	readAll(t, r)
	r.Commit(ws[10].off)
	defer l.Close()
	if len(dl.all()) != 1 {
		t.Fatalf("no damage quarantined: %v", dl.all())
	}
	n := 0
	filepath.Walk(filepath.Dir(dir), func(path string, fi os.FileInfo, err error) error {
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if n < 6 {
		t.Fatalf("only %d files checked", n)
	}
}

// TestHealthFollowsTheDisk: on a full disk appends fail and the log
// reports unhealthy; once space is freed the probe reports it healthy
// again without any append, and the failed appends left nothing behind.
func TestHealthFollowsTheDisk(t *testing.T) {
	mnt := testutil.Tmpfs(t, 2<<20)
	dir := filepath.Join(mnt, "log")
	l := open(t, dir, func(o *Options) { o.ProbeInterval = 20 * time.Millisecond })
	defer l.Close()
	ws := fill(t, l, "before", 10)
	filler := testutil.Fill(t, mnt)
	rec := bytes.Repeat([]byte{'z'}, 100_000)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = l.Append(rec)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if l.Healthy() || !errors.Is(l.Health(), syscall.ENOSPC) {
		t.Fatalf("healthy after ENOSPC: %v", l.Health())
	}
	time.Sleep(100 * time.Millisecond)
	if l.Healthy() {
		t.Fatal("the probe reported a full disk healthy")
	}
	end := l.End()
	os.Remove(filler)
	deadline := time.Now().Add(5 * time.Second)
	for !l.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("still unhealthy after space was freed: %v", l.Health())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l.End() != end {
		t.Fatal("the probe appended")
	}
	if err := l.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
	r, _ := l.Reader("x")
	got := strs(readAll(t, r))
	want := dataOf(ws)
	for len(got) > len(want)+1 && got[len(want)] == string(rec) {
		got = append(got[:len(want)], got[len(want)+1:]...) // appends that fit before the disk filled
	}
	equal(t, "records", got, append(want, "after"))
}
