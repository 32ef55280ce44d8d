package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// A record is a 16-byte header and its payload:
//
//	magic   4 bytes  0xF5 'F' 'R' 'W'
//	length  4 bytes  payload length, big-endian
//	crc     4 bytes  CRC-32C of the payload, big-endian
//	hcrc    4 bytes  CRC-32C of the 12 bytes before it, big-endian
//	payload
//
// The header checksum makes the length trustworthy: a record whose
// payload is damaged is skipped exactly, without guessing where the next
// one starts. When a header itself is damaged, readers resynchronise by
// searching for the magic number and accepting only a position where
// the header and payload checksums both hold, so a false match needs
// two 32-bit checksums to agree by chance.
//
// The magic's first byte, 0xF5, can never start a record of the format
// furrow 0.1 wrote (a 4-byte length under 16 MiB, so 0x00 or 0x01): Open
// tells the two apart and upgrades old segments (see upgrade.go).
const (
	magic      uint32 = 0xF5465257
	headerSize        = 16
)

// appendRecord appends rec to buf, framed.
func appendRecord(buf, rec []byte) []byte {
	n := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, magic)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(rec)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(rec, castagnoli))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf[n:n+12], castagnoli))
	return append(buf, rec...)
}

// parseHeader returns the payload length of the header at h[:headerSize],
// or ok false if those bytes are not a valid header.
func parseHeader(h []byte) (size int64, ok bool) {
	if binary.BigEndian.Uint32(h) != magic || crc32.Checksum(h[:12], castagnoli) != binary.BigEndian.Uint32(h[12:headerSize]) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint32(h[4:])), true
}

// recordState is what checkRecord found at the start of a buffer.
type recordState int

const (
	recOK        recordState = iota // a whole, valid record
	recShort                        // a valid header whose record the buffer does not hold whole
	recPartial                      // fewer than headerSize bytes
	recBadHeader                    // not a record header
	recBadData                      // a valid header, but the payload fails its checksum
)

var stateNames = [...]string{recOK: "valid record", recShort: "incomplete record",
	recPartial: "incomplete record header", recBadHeader: "damaged record header", recBadData: "payload checksum mismatch"}

func (s recordState) String() string { return stateNames[s] }

// checkRecord looks at the record at the start of buf. For recOK, recShort
// and recBadData, size is the payload length its header gives.
func checkRecord(buf []byte) (size int64, s recordState) {
	if len(buf) < headerSize {
		return 0, recPartial
	}
	size, ok := parseHeader(buf)
	if !ok {
		return 0, recBadHeader
	}
	if int64(len(buf))-headerSize < size {
		return size, recShort
	}
	if crc32.Checksum(buf[headerSize:headerSize+size], castagnoli) != binary.BigEndian.Uint32(buf[8:]) {
		return size, recBadData
	}
	return size, recOK
}

var magicBytes = binary.BigEndian.AppendUint32(nil, magic)

// scanWindow is how much of a file nextRecord reads at a time.
const scanWindow = 1 << 20

// nextRecord returns the position of the first valid record that starts
// after from and ends by limit, in f's own offsets, or limit if there is
// none. buf is scratch space that it may grow and return.
func nextRecord(f io.ReaderAt, from, limit int64, buf []byte) (int64, []byte, error) {
	if cap(buf) < scanWindow {
		buf = make([]byte, scanWindow)
	}
	win := buf[:scanWindow]
	var payload []byte
	pos := from + 1
	for limit-pos >= headerSize {
		n := min(int64(len(win)), limit-pos)
		w := win[:n]
		if _, err := f.ReadAt(w, pos); err != nil {
			return 0, buf, err
		}
		for i := 0; ; {
			j := bytes.Index(w[i:], magicBytes)
			if j < 0 {
				break
			}
			k := i + j // a candidate, at q in the file
			i = k + 1
			q := pos + int64(k)
			if q+headerSize > limit {
				continue
			}
			var h [headerSize]byte
			if k+headerSize <= len(w) {
				copy(h[:], w[k:])
			} else if _, err := f.ReadAt(h[:], q); err != nil {
				return 0, buf, err
			}
			size, ok := parseHeader(h[:])
			if !ok || q+headerSize+size > limit {
				continue
			}
			if int64(cap(payload)) < size {
				payload = make([]byte, size)
			}
			p := payload[:size]
			if _, err := f.ReadAt(p, q+headerSize); err != nil {
				return 0, buf, err
			}
			if crc32.Checksum(p, castagnoli) == binary.BigEndian.Uint32(h[8:]) {
				return q, buf, nil
			}
		}
		if n <= int64(len(magicBytes)) {
			break
		}
		// Overlap the windows so that a magic number across their
		// boundary is found.
		pos += n - int64(len(magicBytes)-1)
	}
	return limit, buf, nil
}
