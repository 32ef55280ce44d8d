package pseudo

import (
	"errors"
	"fmt"

	"github.com/furrow-io/furrow/internal/jsonx"
)

// maxJSONDepth bounds the rewriter's recursion; the enricher refuses
// deeper entities long before.
const maxJSONDepth = 128

// ErrJSON is returned for data the rewriter cannot read.
var ErrJSON = errors.New("not valid JSON")

// appendJSON appends data with every leaf that no node in at keeps
// replaced by its pseudonym:
//   - a string by the pseudonym of its (unescaped) text, so a value has
//     the same pseudonym in a JSON entity as in a column;
//   - a number by the pseudonym of its text as written, a boolean by the
//     pseudonym of true or false: the result is a string, so the entity
//     may no longer be valid against its schema;
//   - null stays null, and member names and the document's shape stay.
//
// The output has no insignificant whitespace.
func (h *Hasher) appendJSON(dst, data []byte, at []*node, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return dst, fmt.Errorf("%w: nested more than %d levels", ErrJSON, maxJSONDepth)
	}
	for _, n := range at {
		if n.keep {
			if !jsonx.Valid(data) {
				return dst, ErrJSON
			}
			return append(dst, data...), nil
		}
	}
	i := jsonx.SkipSpace(data, 0)
	if i >= len(data) {
		return dst, ErrJSON
	}
	var err error
	switch c := data[i]; {
	case c == '{':
		dst = append(dst, '{')
		first := true
		var buf [4]*node
		_, e := jsonx.Object(data, i, func(k, v []byte) bool {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, k...)
			dst = append(dst, ':')
			next := buf[:0]
			if len(at) > 0 {
				name, ok := jsonx.String(k)
				if !ok {
					err = ErrJSON
					return false
				}
				for _, n := range at {
					if c := n.members[name]; c != nil {
						next = append(next, c)
					}
					if n.any != nil {
						next = append(next, n.any)
					}
				}
			}
			dst, err = h.appendJSON(dst, v, next, depth+1)
			return err == nil
		})
		if err == nil && e != nil {
			err = ErrJSON
		}
		dst = append(dst, '}')
	case c == '[':
		dst = append(dst, '[')
		idx := 0
		var buf [4]*node
		_, e := jsonx.Array(data, i, func(v []byte) bool {
			if idx > 0 {
				dst = append(dst, ',')
			}
			next := buf[:0]
			for _, n := range at {
				if c := n.elements[idx]; c != nil {
					next = append(next, c)
				}
				if n.any != nil {
					next = append(next, n.any)
				}
			}
			idx++
			dst, err = h.appendJSON(dst, v, next, depth+1)
			return err == nil
		})
		if err == nil && e != nil {
			err = ErrJSON
		}
		dst = append(dst, ']')
	case c == '"':
		s, ok := jsonx.String(trimSpace(data[i:]))
		if !ok {
			return dst, ErrJSON
		}
		dst = h.appendQuoted(dst, s)
	case c == 'n':
		if string(trimSpace(data[i:])) != "null" {
			return dst, ErrJSON
		}
		dst = append(dst, "null"...)
	default: // numbers, true, false
		lit := trimSpace(data[i:])
		if !jsonx.Valid(lit) {
			return dst, ErrJSON
		}
		dst = h.appendQuoted(dst, string(lit))
	}
	return dst, err
}

// appendQuoted appends the pseudonym of v as a JSON string.
func (h *Hasher) appendQuoted(dst []byte, v string) []byte {
	dst = append(dst, '"')
	if h.cache != nil {
		dst = append(dst, h.String(v)...)
	} else {
		dst = h.Append(dst, v)
	}
	return append(dst, '"')
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
