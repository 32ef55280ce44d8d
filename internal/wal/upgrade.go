package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// furrow 0.1 framed a record with an 8-byte header: the payload length
// and its CRC-32C, both big-endian, without a magic number or a header
// checksum. Open upgrades a log in that format: segments every reader has
// consumed are deleted; the records some reader still has to read are
// rewritten, in order, into one segment in the current format that
// starts past the old log's end, and the reader offsets are moved to
// match. Each step is atomic (rename), and a crash part way leaves the
// old segments in place, so the next Open does it again.
const v1HeaderSize = 8

// isV1Segment reports whether the segment at path starts with a valid
// record of furrow 0.1's format. A segment in the current format cannot:
// its first four bytes, read as a length, exceed the segment.
func isV1Segment(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	var h [v1HeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		if err == io.EOF {
			return false, nil
		}
		return false, err
	}
	n := int64(binary.BigEndian.Uint32(h[:]))
	if binary.BigEndian.Uint32(h[:]) == magic || v1HeaderSize+n > st.Size() {
		return false, nil
	}
	payload := make([]byte, n)
	if _, err := f.ReadAt(payload, v1HeaderSize); err != nil {
		return false, err
	}
	return crc32.Checksum(payload, castagnoli) == binary.BigEndian.Uint32(h[4:]), nil
}

// upgrade converts the leading segments of opts.Dir that are in furrow
// 0.1's format, if any, and returns the readers' offsets after it and
// what it had to give up: the rest of an old segment after a record that
// fails its checksum (that format cannot resynchronise), saved in
// quarantine.
func upgrade(opts Options, offsets map[string]int64) (map[string]int64, []Damage, error) {
	bases, err := listSegments(opts.Dir)
	if err != nil {
		return nil, nil, err
	}
	var old []int64
	for _, b := range bases {
		v1, err := isV1Segment(segmentPath(opts.Dir, b))
		if err != nil {
			return nil, nil, err
		}
		if !v1 {
			break
		}
		old = append(old, b)
	}
	if len(old) == 0 {
		return offsets, nil, nil
	}
	lastOld := old[len(old)-1]
	st, err := os.Stat(segmentPath(opts.Dir, lastOld))
	if err != nil {
		return nil, nil, err
	}
	oldEnd := lastOld + st.Size()
	from, newBase := oldEnd, oldEnd
	for _, off := range offsets {
		from, newBase = min(from, off), max(newBase, off)
	}
	from = max(from, old[0])
	if len(offsets) == 0 {
		from = old[0]
	}

	var repairs []Damage
	moved := map[string]int64{}
	converted := 0
	if from >= oldEnd {
		moved = offsets // nothing to convert: the old segments go
	} else {
		tmpPath := segmentPath(opts.Dir, newBase) + ".upgrade"
		out, err := openPrivate(tmpPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC)
		if err != nil {
			return nil, nil, err
		}
		var written int64
		// place gives every reader at or before oldOff (and not yet
		// placed) the new offset of the record that starts there; readers
		// at or past the old end go after the last record.
		place := func(oldOff int64) {
			for name, off := range offsets {
				if _, done := moved[name]; !done && off <= oldOff {
					moved[name] = newBase + written
				}
			}
		}
		var buf []byte
		for i, base := range old {
			end := oldEnd
			if i+1 < len(old) {
				end = old[i+1]
			}
			if end <= from {
				continue
			}
			f, err := os.Open(segmentPath(opts.Dir, base))
			if err != nil {
				out.Close()
				return nil, nil, err
			}
			r := io.NewSectionReader(f, 0, end-base)
			pos := max(from, base) - base
			for pos < end-base {
				var h [v1HeaderSize]byte
				n := int64(-1)
				if _, err := r.ReadAt(h[:], pos); err == nil {
					n = int64(binary.BigEndian.Uint32(h[:]))
					if pos+v1HeaderSize+n > end-base {
						n = -1
					}
				}
				if n >= 0 {
					if int64(cap(buf)) < n {
						buf = make([]byte, n)
					}
					buf = buf[:n]
					if _, err := r.ReadAt(buf, pos+v1HeaderSize); err != nil {
						f.Close()
						out.Close()
						return nil, nil, err
					}
					if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
						n = -1
					}
				}
				if n < 0 {
					d := Damage{Kind: Cut, Dir: opts.Dir, Offset: base + pos, Length: end - base - pos, Segment: f.Name(),
						Reason: "record of furrow 0.1's format fails its checksum or is incomplete; that format cannot resynchronise, so the rest of the segment is given up"}
					if err := quarantine(&d, f, base); err != nil {
						f.Close()
						out.Close()
						return nil, nil, err
					}
					repairs = append(repairs, d)
					break
				}
				place(base + pos)
				rec := appendRecord(nil, buf)
				if _, err := out.Write(rec); err != nil {
					f.Close()
					out.Close()
					return nil, nil, fmt.Errorf("wal: upgrade %s: %w", opts.Dir, err)
				}
				written += int64(len(rec))
				converted++
				pos += v1HeaderSize + n
			}
			f.Close()
		}
		place(oldEnd)
		if err := out.Sync(); err != nil {
			out.Close()
			return nil, nil, err
		}
		if err := out.Close(); err != nil {
			return nil, nil, err
		}
		if err := os.Rename(tmpPath, segmentPath(opts.Dir, newBase)); err != nil {
			return nil, nil, err
		}
		syncDir(opts.Dir)
	}
	for name, off := range moved {
		path := filepath.Join(opts.Dir, "readers", name)
		if err := os.WriteFile(path+".tmp", strconv.AppendInt(nil, off, 10), filePerm); err != nil {
			return nil, nil, err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return nil, nil, err
		}
	}
	syncDir(filepath.Join(opts.Dir, "readers"))
	for _, b := range old {
		if err := os.Remove(segmentPath(opts.Dir, b)); err != nil {
			return nil, nil, err
		}
	}
	opts.Logger.Info("wal: upgraded the log from furrow 0.1's record format", "dir", opts.Dir,
		"old_segments", len(old), "records_kept", converted, "readers", moved)
	return moved, repairs, nil
}
