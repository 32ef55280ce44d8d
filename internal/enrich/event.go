package enrich

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"
	"unsafe"

	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
)

// Event is an event being enriched: the 131 columns as their TSV text
// ("" is null), plus the parsed entities behind the JSON columns.
type Event struct {
	F [ev.NumFields]string

	Contexts []iglu.SelfDescribing
	Derived  []iglu.SelfDescribing
	Unstruct *iglu.SelfDescribing

	Raw *RawEvent

	emitted []*Event // see Emit
}

// Schemas written around entities in the enriched event.
const (
	contextsSchemaOut = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
	unstructSchemaOut = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
)

// AddDerived attaches an entity computed by an enrichment.
func (e *Event) AddDerived(sdj iglu.SelfDescribing) { e.Derived = append(e.Derived, sdj) }

// finishJSON renders the entity columns from the parsed entities.
func (e *Event) finishJSON() {
	e.F[ev.Contexts] = string(appendContexts(nil, e.Contexts))
	e.F[ev.DerivedContexts] = string(appendContexts(nil, e.Derived))
	if e.Unstruct != nil {
		b := make([]byte, 0, 64+len(e.Unstruct.Data))
		b = append(b, `{"schema":"`+unstructSchemaOut+`","data":`...)
		b = appendSDJ(b, *e.Unstruct)
		e.F[ev.UnstructEvent] = string(append(b, '}'))
	} else {
		e.F[ev.UnstructEvent] = ""
	}
}

func appendSDJ(b []byte, s iglu.SelfDescribing) []byte {
	b = append(b, `{"schema":"`...)
	b = append(b, s.Key.URI()...)
	b = append(b, `","data":`...)
	b = append(b, s.Data...)
	return append(b, '}')
}

// appendContexts renders a contexts column; no entities is an empty column.
func appendContexts(b []byte, list []iglu.SelfDescribing) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, `{"schema":"`+contextsSchemaOut+`","data":[`...)
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSDJ(b, s)
	}
	return append(b, "]}"...)
}

// tsvLen is the length of the event's TSV line when no value needs
// cleaning: a buffer of that size is written without growing.
func (e *Event) tsvLen() int {
	n := len(e.F) - 1
	for i := range e.F {
		n += len(e.F[i])
	}
	return n
}

// AppendTSV appends the event as one enriched TSV line, without newline.
func (e *Event) AppendTSV(b []byte) []byte {
	for i := range e.F {
		if i > 0 {
			b = append(b, '\t')
		}
		b = appendTSVSafe(b, e.F[i])
	}
	return b
}

// appendTSVSafe writes s with tabs as four spaces and other control
// characters dropped, so a value can never break the TSV framing.
func appendTSVSafe(b []byte, s string) []byte {
	if tsvClean(s) {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\t':
			b = append(b, "    "...)
		case c < 0x20 || c == 0x7f:
		default:
			b = append(b, c)
		}
	}
	return b
}

// tsvClean reports whether s has no control characters (below 0x20, or
// 0x7f). It tests eight bytes at a time: in each 64-bit word, a byte
// below 0x20 borrows when 0x20 is subtracted from it, and a byte equal to
// 0x7f becomes zero when xored with 0x7f and then borrows when 1 is
// subtracted; bytes of 0x80 and above are masked out (~x), as are bytes
// whose high bit the subtraction set without a borrow from below.
func tsvClean(s string) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
		y := x ^ (0x7f * ones)
		if ((x-0x20*ones)|(y-ones))&^x&highs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// tsvSafe is appendTSVSafe for strings.
func tsvSafe(s string) string {
	if !tsvClean(s) {
		return string(appendTSVSafe(nil, s))
	}
	return s
}

// appendTimestamp formats t as yyyy-MM-dd HH:mm:ss.SSS (UTC).
func appendTimestamp(b []byte, t time.Time) []byte {
	return ev.AppendTimestamp(b, t)
}

func formatTimestamp(t time.Time) string {
	var buf [32]byte
	return string(appendTimestamp(buf[:0], t))
}

// enrichedJSON renders all columns as the "enriched" object of a bad row:
// integer columns as numbers, latitude and longitude as numbers, the
// rest as strings, nulls as null.
func (e *Event) enrichedJSON() json.RawMessage {
	b := make([]byte, 0, 2048)
	b = append(b, '{')
	for i, f := range ev.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.Name...)
		b = append(b, `":`...)
		v := e.F[i]
		if v == "" {
			b = append(b, "null"...)
			continue
		}
		numeric := (f.Type == ev.Int && i != ev.TxnID) || f.Type == ev.Bool || i == ev.GeoLatitude || i == ev.GeoLongitude
		if numeric {
			if _, err := strconv.ParseFloat(v, 64); err == nil {
				b = append(b, v...)
				continue
			}
		}
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
