package iglu

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/furrow-io/furrow/internal/jsonx"
)

// SelfDescribing is a parsed self-describing JSON: {"schema": ..., "data": ...}.
type SelfDescribing struct {
	Key  SchemaKey
	Data json.RawMessage // compact
}

// NotIgluError says a JSON value is not a self-describing JSON. Code is
// empty when the shape is wrong, or INVALID_IGLUURI / INVALID_SCHEMAVER
// when the schema field is present but malformed.
type NotIgluError struct {
	Code string
	Msg  string
}

func (e *NotIgluError) Error() string { return e.Msg }

// ParseSelfDescribing reads {"schema":"iglu:...","data":...}. Other keys
// are not allowed, as in Iglu's own parser.
func ParseSelfDescribing(raw []byte) (SelfDescribing, error) {
	i := jsonx.SkipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return SelfDescribing{}, &NotIgluError{Msg: "not a self-describing JSON: not a JSON object"}
	}
	var schemaRaw, data []byte
	members := 0
	end, err := jsonx.Object(raw, i, func(k, v []byte) bool {
		members++
		key := string(k[1 : len(k)-1])
		if bytes.IndexByte(k, '\\') >= 0 {
			key, _ = jsonx.String(k)
		}
		switch key {
		case "schema":
			schemaRaw = v
		case "data":
			data = v
		}
		return true
	})
	if err != nil || jsonx.SkipSpace(raw, end) != len(raw) {
		return SelfDescribing{}, &NotIgluError{Msg: "not a self-describing JSON: not a JSON object"}
	}
	if schemaRaw == nil {
		return SelfDescribing{}, &NotIgluError{Msg: "not a self-describing JSON: no schema field"}
	}
	if data == nil {
		return SelfDescribing{}, &NotIgluError{Msg: "not a self-describing JSON: no data field"}
	}
	if members != 2 {
		return SelfDescribing{}, &NotIgluError{Msg: "not a self-describing JSON: unexpected fields besides schema and data"}
	}
	uri, ok := jsonx.String(schemaRaw)
	if !ok {
		return SelfDescribing{}, &NotIgluError{Msg: "not a self-describing JSON: schema is not a string"}
	}
	key, err := ParseSchemaKey(uri)
	if err != nil {
		var pe *ParseError
		errors.As(err, &pe)
		return SelfDescribing{}, &NotIgluError{Code: pe.Code, Msg: err.Error()}
	}
	return SelfDescribing{Key: key, Data: compact(data)}, nil
}

// compact strips insignificant whitespace; raw is valid JSON.
func compact(raw json.RawMessage) json.RawMessage {
	if !needsCompact(raw) {
		return raw
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

// needsCompact reports whether raw has whitespace outside strings.
func needsCompact(raw []byte) bool {
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if in {
			if c == '\\' {
				i++
			} else if c == '"' {
				in = false
			}
			continue
		}
		switch c {
		case '"':
			in = true
		case ' ', '\t', '\n', '\r':
			return true
		}
	}
	return false
}

// Decode parses JSON into the generic form the validator expects
// (numbers as json.Number).
func Decode(raw []byte) (any, error) { return jsonx.Decode(raw) }

// Depth returns the nesting depth of a JSON document (1 for a flat object
// or array, 0 for a scalar), without decoding it.
func Depth(raw []byte) int {
	depth, max := 0, 0
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if in {
			if c == '\\' {
				i++
			} else if c == '"' {
				in = false
			}
			continue
		}
		switch c {
		case '"':
			in = true
		case '{', '[':
			depth++
			if depth > max {
				max = depth
			}
		case '}', ']':
			depth--
		}
	}
	return max
}
