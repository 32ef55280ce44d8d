package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzReadDamaged damages a log's segments as the input says (flipped
// bytes, cut or deleted segments), then opens it and reads it all. It
// checks that open and the reader never fail or stall, that every record
// read is one that was written, in order and once, and that every record
// whose bytes are intact on disk is read.
func FuzzReadDamaged(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0x40}, uint16(4096))
	f.Add([]byte{0, 1, 200, 1, 1, 2, 0, 50}, uint16(64))
	f.Add([]byte{2, 1, 0, 0, 2, 3, 0, 0}, uint16(300))
	f.Add([]byte{1, 0, 90, 0, 0, 7, 7, 7, 0, 9, 9, 9}, uint16(20))
	f.Fuzz(func(t *testing.T, ops []byte, readBytes uint16) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		dir := t.TempDir()
		mod := func(o *Options) { o.SegmentBytes = 700; o.Logger = quietLogger() }
		l := open(t, dir, mod)
		var ws []written
		for i := 0; i < 40; i++ {
			rec := []byte(fmt.Sprintf("record-%02d:%s", i, strings.Repeat("p", (i*37)%160)))
			off := l.End()
			if err := l.Append(rec); err != nil {
				t.Fatal(err)
			}
			ws = append(ws, written{rec, off, l.End()})
		}
		end := l.End()
		l.Close()

		// damaged[i] is true for the log's bytes that are changed or gone.
		damaged := make([]bool, end)
		for len(ops) >= 4 {
			kind, a, b, v := ops[0]%3, int64(ops[1]), int64(ops[2]), ops[3]
			ops = ops[4:]
			bases, _ := listSegments(dir)
			if len(bases) == 0 {
				break
			}
			base := bases[int(a)%len(bases)]
			path := segmentPath(dir, base)
			data, err := os.ReadFile(path)
			if err != nil || len(data) == 0 {
				continue
			}
			switch kind {
			case 0: // flip bits of one byte
				if v == 0 {
					v = 1
				}
				i := (b*256 + a) % int64(len(data))
				data[i] ^= v
				os.WriteFile(path, data, 0o600)
				damaged[base+i] = true
			case 1: // cut the segment short
				n := b % int64(len(data))
				os.Truncate(path, n)
				for i := base + n; i < base+int64(len(data)); i++ {
					damaged[i] = true
				}
			case 2: // delete it
				os.Remove(path)
				for i := base; i < base+int64(len(data)); i++ {
					damaged[i] = true
				}
			}
		}

		l, err := Open(Options{Dir: dir, SegmentBytes: 700, Logger: quietLogger(), OnDamage: func(Damage) error { return nil }})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer l.Close()
		r, err := l.Reader("x")
		if err != nil {
			t.Fatal(err)
		}
		maxBytes := int(readBytes%2048) + 1
		var got []string
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			recs, err := r.Read(ctx, 7, maxBytes)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			for _, rec := range recs {
				got = append(got, string(rec.Data))
			}
		}
		next := 0
		for _, g := range got {
			for next < len(ws) && string(ws[next].data) != g {
				if intact(damaged, ws[next]) {
					t.Fatalf("intact record %d at %d not read (read %q)", next, ws[next].off, got)
				}
				next++
			}
			if next == len(ws) {
				t.Fatalf("read %q, which was not written (or out of order)", g)
			}
			next++
		}
		for ; next < len(ws); next++ {
			if intact(damaged, ws[next]) {
				t.Fatalf("intact record %d at %d not read (read %q)", next, ws[next].off, got)
			}
		}
	})
}

func intact(damaged []bool, w written) bool {
	for i := w.off; i < w.next; i++ {
		if damaged[i] {
			return false
		}
	}
	return true
}
