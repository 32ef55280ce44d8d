package postgres

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// The binary COPY format (PostgreSQL docs, "COPY", "Binary Format"): a
// signature, flags and header extension length, then per tuple a 16-bit
// field count and per field a 32-bit length (-1 for NULL) and the value
// in the type's binary send format; a 16-bit -1 ends the data.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

var copyTrailer = []byte{0xff, 0xff}

// pgEpochMicros is 2000-01-01 00:00:00 UTC, the origin of binary
// timestamps, in Unix microseconds.
const pgEpochMicros = 946684800 * 1_000_000

// required columns are NOT NULL in the events table.
func required(i int) bool {
	return i == event.EventID || i == event.VCollector || i == event.VEtl || i == event.CollectorTstamp
}

// encodeLine appends the binary COPY tuple of an enriched TSV line to
// buf. On a line that the events table cannot take (wrong field count,
// a value its column's type refuses, a missing required value) it
// returns buf unchanged and an *event.ParseError, so a COPY of what it
// appends does not fail on data.
func encodeLine(buf, line []byte) ([]byte, error) {
	start := len(buf)
	buf = binary.BigEndian.AppendUint16(buf, event.NumFields)
	var bad []event.InvalidValue
	rest := line
	for i := range event.NumFields {
		var v []byte
		j := bytes.IndexByte(rest, '\t')
		if i == event.NumFields-1 {
			if j >= 0 {
				return buf[:start], &event.ParseError{FieldCount: event.NumFields + 1 + bytes.Count(rest[j+1:], []byte{'\t'})}
			}
			v = rest
		} else {
			if j < 0 {
				return buf[:start], &event.ParseError{FieldCount: i + 1}
			}
			v, rest = rest[:j], rest[j+1:]
		}
		if len(v) == 0 {
			if required(i) {
				bad = append(bad, event.InvalidValue{Field: event.Fields[i].Name, Message: "required field is empty"})
			}
			buf = append(buf, 0xff, 0xff, 0xff, 0xff)
			continue
		}
		var msg string
		buf, msg = appendValue(buf, i, v)
		if msg != "" {
			bad = append(bad, event.InvalidValue{Field: event.Fields[i].Name, Value: string(v), Message: msg})
		}
	}
	if bad != nil {
		return buf[:start], &event.ParseError{Invalid: bad}
	}
	return buf, nil
}

// appendValue appends the length and binary value of column i, or says
// why v does not fit the column.
func appendValue(buf []byte, i int, v []byte) ([]byte, string) {
	s := unsafe.String(unsafe.SliceData(v), len(v)) // only for parsing
	switch event.Fields[i].Type {
	case event.Int:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return buf, "not an integer"
		}
		buf = binary.BigEndian.AppendUint32(buf, 4)
		return binary.BigEndian.AppendUint32(buf, uint32(int32(n))), ""
	case event.Double:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return buf, "not a number"
		}
		buf = binary.BigEndian.AppendUint32(buf, 8)
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(f)), ""
	case event.Bool:
		if s != "0" && s != "1" {
			return buf, "not a boolean (0 or 1)"
		}
		buf = binary.BigEndian.AppendUint32(buf, 1)
		return append(buf, s[0]-'0'), ""
	case event.Timestamp:
		t, err := event.ParseTimestamp(s)
		if err != nil {
			return buf, "not a timestamp (yyyy-MM-dd HH:mm:ss.SSS)"
		}
		buf = binary.BigEndian.AppendUint32(buf, 8)
		return binary.BigEndian.AppendUint64(buf, uint64(t.UnixMicro()-pgEpochMicros)), ""
	case event.JSON:
		if !jsonx.Valid(v) {
			return buf, "not valid JSON"
		}
		if hasNULEscape(v) {
			return buf, `JSONB cannot hold \u0000`
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)+1))
		buf = append(buf, 1) // jsonb binary format version
		return append(buf, v...), ""
	}
	if i == event.EventID {
		var u [16]byte
		if !parseUUID(&u, v) {
			return buf, "not a UUID"
		}
		buf = binary.BigEndian.AppendUint32(buf, 16)
		return append(buf, u[:]...), ""
	}
	if msg := checkText(v); msg != "" {
		return buf, msg
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...), ""
}

// checkText says why Postgres (a UTF8 database) would refuse v as text.
func checkText(v []byte) string {
	if bytes.IndexByte(v, 0) >= 0 {
		return "contains a NUL byte, which Postgres text cannot hold"
	}
	if !utf8.Valid(v) {
		return "not valid UTF-8"
	}
	return ""
}

// hasNULEscape tells whether JSON text v has a \u0000 escape (one not
// itself preceded by an escaped backslash), which jsonb refuses.
func hasNULEscape(v []byte) bool {
	for off := 0; ; {
		k := bytes.Index(v[off:], []byte(`\u0000`))
		if k < 0 {
			return false
		}
		k += off
		n := 0 // backslashes before this one
		for p := k - 1; p >= 0 && v[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		off = k + 1
	}
}

func parseUUID(u *[16]byte, b []byte) bool {
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(b[i])
		lo, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 {
			return false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendBadRow appends the bad_rows tuple (schema, failure_type, payload)
// of a bad row. A \u0000 escape, which jsonb refuses, becomes \ufffd.
func appendBadRow(buf, row []byte, schema string) []byte {
	buf = binary.BigEndian.AppendUint16(buf, 3)
	buf = appendText(buf, schema)
	buf = appendText(buf, badrowsName(schema))
	if hasNULEscape(row) {
		row = bytes.ReplaceAll(row, []byte(`\u0000`), []byte(`\ufffd`))
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(row)+1))
	buf = append(buf, 1)
	return append(buf, row...)
}

func appendText(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}
