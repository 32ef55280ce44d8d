package collector

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/jsonx"
	"github.com/furrow-io/furrow/internal/payload"
)

// split serializes cp into records no larger than MaxRecordBytes. A POST
// of a payload_data batch that is too large is split into several
// payloads carrying part of the events each; what cannot be stored
// becomes size_violation bad rows.
func (c *Collector) split(cp *payload.CollectorPayload) (good, bad [][]byte) {
	size := cp.Size()
	if size < c.cfg.MaxRecordBytes {
		return [][]byte{cp.Marshal()}, nil
	}
	if size > c.cfg.MaxPayloadSize {
		return nil, [][]byte{c.violation(cp, size, c.cfg.MaxPayloadSize,
			fmt.Sprintf("oversized collector payload: Payload exceeds max size of %d. Actual length: %d", c.cfg.MaxPayloadSize, size))}
	}
	if cp.Body == "" {
		return nil, [][]byte{c.violation(cp, size, c.cfg.MaxRecordBytes, "oversized collector payload: GET requests cannot be split")}
	}
	schema, events, reason := batchEvents([]byte(cp.Body))
	if reason != "" {
		return nil, [][]byte{c.violation(cp, size, c.cfg.MaxRecordBytes, "oversized collector payload: cannot split POST requests which "+reason)}
	}
	// Room for the events: the payload without body, the body envelope,
	// and the separators.
	empty := *cp
	empty.Body = ""
	envelope := `{"schema":` + schema + `,"data":[]}`
	overhead := empty.Size() + 7 + len(envelope)
	var chunk [][]byte
	chunkSize := overhead
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		part := empty
		part.Body = `{"schema":` + schema + `,"data":[` + string(joinRaw(chunk)) + `]}`
		good = append(good, part.Marshal())
		chunk, chunkSize = nil, overhead
	}
	for _, ev := range events {
		if overhead+len(ev) >= c.cfg.MaxRecordBytes {
			single := empty
			single.Body = `{"schema":` + schema + `,"data":[` + string(ev) + `]}`
			bad = append(bad, c.violation(&single, single.Size(), c.cfg.MaxRecordBytes,
				"oversized collector payload: this POST request split is still too large"))
			continue
		}
		if chunkSize+len(ev)+1 >= c.cfg.MaxRecordBytes {
			flush()
		}
		chunk = append(chunk, ev)
		chunkSize += len(ev) + 1
	}
	flush()
	return good, bad
}

func joinRaw(parts [][]byte) []byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return out
}

// batchEvents reads a self-describing JSON whose data is an array and
// returns its raw schema value and elements, or why it cannot.
func batchEvents(body []byte) (schema string, events [][]byte, reason string) {
	i := jsonx.SkipSpace(body, 0)
	if !jsonx.Valid(body) {
		return "", nil, "are not json"
	}
	if i >= len(body) || body[i] != '{' {
		return "", nil, "are not self-describing"
	}
	var schemaRaw, data []byte
	jsonx.Object(body, i, func(k, v []byte) bool {
		switch string(k) {
		case `"schema"`:
			schemaRaw = v
		case `"data"`:
			data = v
		}
		return true
	})
	if schemaRaw == nil || schemaRaw[0] != '"' {
		return "", nil, "are not self-describing"
	}
	if data == nil || data[0] != '[' {
		return "", nil, "do not contain a data array"
	}
	jsonx.Array(data, 0, func(e []byte) bool {
		events = append(events, e)
		return true
	})
	return string(schemaRaw), events, ""
}

// violation builds a size_violation bad row. Its payload is a text
// rendering of the collector payload cut to a tenth of the limit.
func (c *Collector) violation(cp *payload.CollectorPayload, actual, limit int, expectation string) []byte {
	text := describe(cp)
	if max := limit / 10; len(text) > max {
		text = text[:max]
	}
	return badrows.SizeViolation(c.processor, c.now(), limit, actual, expectation, text)
}

// describe renders a payload the way Thrift's generated toString does.
func describe(cp *payload.CollectorPayload) string {
	var b strings.Builder
	b.WriteString("CollectorPayload(")
	field := func(name, v string, first bool) {
		if !first {
			b.WriteString(", ")
		}
		b.WriteString(name + ":" + v)
	}
	field("schema", cp.Schema, true)
	field("ipAddress", cp.IPAddress, false)
	field("timestamp", strconv.FormatInt(cp.Timestamp, 10), false)
	field("encoding", cp.Encoding, false)
	field("collector", cp.Collector, false)
	for _, f := range []struct{ n, v string }{
		{"userAgent", cp.UserAgent}, {"refererUri", cp.RefererURI}, {"path", cp.Path},
		{"querystring", cp.Querystring}, {"body", cp.Body},
	} {
		if f.v != "" {
			field(f.n, f.v, false)
		}
	}
	if cp.Headers != nil {
		field("headers", "["+strings.Join(cp.Headers, ", ")+"]", false)
	}
	for _, f := range []struct{ n, v string }{
		{"contentType", cp.ContentType}, {"hostname", cp.Hostname}, {"networkUserId", cp.NetworkUserID},
	} {
		if f.v != "" {
			field(f.n, f.v, false)
		}
	}
	b.WriteString(")")
	return b.String()
}
