// Package analytics turns enriched TSV events into the JSON shape of
// Snowplow's Scala Analytics SDK event, as Micro's API returns it.
package analytics

import (
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// isoTimestamp converts "yyyy-MM-dd HH:mm:ss.SSS" to ISO-8601 with Z.
func isoTimestamp(dst []byte, v []byte) []byte {
	dst = append(dst, '"')
	dst = append(dst, v[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, v[11:]...)
	return append(dst, 'Z', '"')
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
			dst = append(dst, v...)
		case event.Bool:
			if v[0] == '1' {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		case event.Timestamp:
			if len(v) < 19 {
				dst = append(dst, "null"...)
				continue
			}
			dst = isoTimestamp(dst, v)
		case event.JSON:
			dst = append(dst, v...)
		default:
			dst = jsonx.Quote(dst, string(v))
		}
	}
	return append(dst, '}'), nil
}
