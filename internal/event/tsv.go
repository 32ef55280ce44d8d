package event

import (
	"bytes"
	"fmt"
	"strconv"
	"unsafe"

	"github.com/furrow-io/furrow/internal/jsonx"
)

// InvalidValue says why one column of a TSV line could not be read.
type InvalidValue struct {
	Field   string
	Value   string
	Message string
}

// ParseError is why an enriched TSV line is unusable: a wrong number of
// fields (FieldCount set), or invalid values.
type ParseError struct {
	FieldCount int
	Invalid    []InvalidValue
}

func (e *ParseError) Error() string {
	if e.FieldCount != 0 {
		return fmt.Sprintf("expected %d fields, got %d", NumFields, e.FieldCount)
	}
	return fmt.Sprintf("%d invalid values, first: %s: %s", len(e.Invalid), e.Invalid[0].Field, e.Invalid[0].Message)
}

// Split cuts an enriched TSV line into its columns. The slices alias line.
func Split(line []byte, out *[NumFields][]byte) error {
	n := 0
	for {
		i := bytes.IndexByte(line, '\t')
		if n == NumFields-1 {
			if i >= 0 {
				return &ParseError{FieldCount: NumFields + 1 + bytes.Count(line[i+1:], []byte{'\t'})}
			}
			out[n] = line
			return nil
		}
		if i < 0 {
			return &ParseError{FieldCount: n + 1}
		}
		out[n] = line[:i]
		line = line[i+1:]
		n++
	}
}

// Check splits a line and verifies every non-empty value parses as its
// column's type, and that required columns are present.
func Check(line []byte) error {
	var bad []InvalidValue
	rest := line
	for i := range NumFields {
		j := bytes.IndexByte(rest, '\t')
		var v []byte
		if i == NumFields-1 {
			if j >= 0 {
				return &ParseError{FieldCount: NumFields + 1 + bytes.Count(rest[j+1:], []byte{'\t'})}
			}
			v = rest
		} else {
			if j < 0 {
				return &ParseError{FieldCount: i + 1}
			}
			v, rest = rest[:j], rest[j+1:]
		}
		if len(v) == 0 {
			if i == EventID || i == VCollector || i == VEtl || i == CollectorTstamp {
				bad = append(bad, InvalidValue{Fields[i].Name, "", "required field is empty"})
			}
			continue
		}
		if Fields[i].Type == String && i != EventID {
			continue
		}
		if msg := checkValue(i, Fields[i].Type, v); msg != "" {
			bad = append(bad, InvalidValue{Fields[i].Name, string(v), msg})
		}
	}
	if len(bad) > 0 {
		return &ParseError{Invalid: bad}
	}
	return nil
}

func checkValue(i int, t Type, v []byte) string {
	// s aliases v only for this call: parsed values and errors are dropped.
	s := unsafe.String(unsafe.SliceData(v), len(v))
	switch t {
	case Int:
		if _, err := strconv.ParseInt(s, 10, 32); err != nil {
			return "not an integer"
		}
	case Double:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "not a number"
		}
	case Bool:
		if s != "0" && s != "1" {
			return "not a boolean (0 or 1)"
		}
	case Timestamp:
		if _, err := ParseTimestamp(s); err != nil {
			return "not a timestamp (yyyy-MM-dd HH:mm:ss.SSS)"
		}
	case JSON:
		if !jsonx.Valid(v) {
			return "not valid JSON"
		}
	case String:
		if i == EventID && !validUUID(v) {
			return "not a UUID"
		}
	}
	return ""
}

func validUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
