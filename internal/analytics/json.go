// Package analytics turns enriched TSV events into the JSON shape of
// Snowplow's Scala Analytics SDK event, as Micro's API returns it.
package analytics

import (
	"bytes"
	"math"
	"strconv"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// isoTimestamp converts "yyyy-MM-dd HH:mm:ss.SSS" to ISO-8601 with Z.
// Other spellings event.Check accepts are parsed and rewritten; what
// does not parse becomes null.
func isoTimestamp(dst []byte, v []byte) []byte {
	if len(v) == 23 && v[4] == '-' && v[7] == '-' && v[10] == ' ' && v[13] == ':' && v[16] == ':' && v[19] == '.' {
		dst = append(dst, '"')
		dst = append(dst, v[:10]...)
		dst = append(dst, 'T')
		dst = append(dst, v[11:]...)
		return append(dst, 'Z', '"')
	}
	t, err := event.ParseTimestamp(string(v))
	if err != nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	return append(dst, '"')
}

// number appends a numeric column as a JSON number. Values that are
// numbers to Go but not to JSON ("007", "+1", "1e5" as an int, "0x1p-2")
// are rewritten; NaN, infinities and unparseable values become null.
func number(dst []byte, v []byte, integer bool) []byte {
	if jsonx.IsNumber(v) && (!integer || !bytes.ContainsAny(v, ".eE")) {
		return append(dst, v...)
	}
	if integer {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return append(dst, "null"...)
		}
		return strconv.AppendInt(dst, n, 10)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// AppendEventJSON appends the Scala Analytics SDK's JSON of an enriched
// line: every column, null when empty, typed values, entities as
// self-describing JSON ({} for no contexts, null for no event). line must
// have passed event.Check.
func AppendEventJSON(dst []byte, line []byte) ([]byte, error) {
	var cols [event.NumFields][]byte
	if err := event.Split(line, &cols); err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	for i, f := range event.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, f.Name...)
		dst = append(dst, '"', ':')
		v := cols[i]
		if len(v) == 0 {
			switch {
			case i == event.Contexts || i == event.DerivedContexts:
				dst = append(dst, "{}"...)
			default:
				dst = append(dst, "null"...)
			}
			continue
		}
		switch f.Type {
		case event.Int, event.Double:
			dst = number(dst, v, f.Type == event.Int)
		case event.Bool:
			if v[0] == '1' {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		case event.Timestamp:
			dst = isoTimestamp(dst, v)
		case event.JSON:
			dst = append(dst, v...)
		default:
			dst = jsonx.Quote(dst, string(v))
		}
	}
	return append(dst, '}'), nil
}
