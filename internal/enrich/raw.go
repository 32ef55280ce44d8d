package enrich

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/payload"
)

// Param is one tracker parameter. Null marks a querystring name given
// without '=' (its value is then absent rather than empty).
type Param struct {
	Name, Value string
	Null        bool
}

// RawEvent is one event as an adapter extracted it from a collector
// payload, before any enrichment.
type RawEvent struct {
	Vendor, Version string
	Params          []Param
	ContentType     string
	Payload         *payload.CollectorPayload
}

// Get returns the value of name and whether it is present with a value.
func (r *RawEvent) Get(name string) (string, bool) {
	for i := len(r.Params) - 1; i >= 0; i-- {
		if r.Params[i].Name == name {
			return r.Params[i].Value, !r.Params[i].Null
		}
	}
	return "", false
}

// set replaces or appends a parameter.
func (r *RawEvent) set(name, value string) {
	for i := range r.Params {
		if r.Params[i].Name == name {
			r.Params[i] = Param{Name: name, Value: value}
			return
		}
	}
	r.Params = append(r.Params, Param{Name: name, Value: value})
}

func (r *RawEvent) del(name string) {
	out := r.Params[:0]
	for _, p := range r.Params {
		if p.Name != name {
			out = append(out, p)
		}
	}
	r.Params = out
}

// mergeParams returns base with over applied on top: a name in over
// replaces the same name in base, keeping base's position.
func mergeParams(base, over []Param) []Param {
	out := append(make([]Param, 0, len(base)+len(over)), base...)
	for _, p := range over {
		found := false
		for i := range out {
			if out[i].Name == p.Name {
				out[i], found = p, true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

// ParseQuery decodes an application/x-www-form-urlencoded querystring,
// keeping parameter order. Repeated names keep the last value at the
// first position. Decoding is lenient, like the servlet-era parsers
// trackers were written against: a '%' not followed by two hex digits is
// kept literally, '+' is a space, and invalid UTF-8 becomes U+FFFD.
func ParseQuery(qs string) []Param {
	if qs == "" {
		return nil
	}
	params := make([]Param, 0, strings.Count(qs, "&")+1)
	// Decoded text goes into one buffer no longer than qs (decoding only
	// shrinks valid UTF-8); the strings returned share it.
	var buf []byte
	// seen has bit h(name) set for every name kept, so the search for a
	// repeated name runs only when the bit is already set.
	var seen uint64
	for qs != "" {
		var part string
		part, qs, _ = strings.Cut(qs, "&")
		if part == "" {
			continue
		}
		name, value, hasEq := strings.Cut(part, "=")
		name = unescapeInto(&buf, name, len(part)+len(qs))
		if name == "" {
			continue
		}
		p := Param{Name: name, Value: unescapeInto(&buf, value, len(value)+len(qs)), Null: !hasEq}
		bit := uint64(1) << ((uint(len(name))*7 + uint(name[0]) + uint(name[len(name)-1])*3) & 63)
		dup := false
		if seen&bit != 0 {
			for i := range params {
				if params[i].Name == name {
					params[i], dup = p, true
					break
				}
			}
		}
		seen |= bit
		if !dup {
			params = append(params, p)
		}
	}
	return params
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

// plain reports whether s needs no decoding: no escapes, no '+', ASCII.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '+' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// unescapeInto decodes s like unescape. A decoded value that is valid
// UTF-8 is written at the end of *buf, which is allocated on first use
// with room for rest more bytes, and returned as a string sharing it.
// Bytes already in *buf are never written again.
func unescapeInto(buf *[]byte, s string, rest int) string {
	if plain(s) {
		return s
	}
	if *buf == nil {
		*buf = make([]byte, 0, rest)
	}
	b := *buf
	if cap(b)-len(b) < len(s) {
		return unescape(s)
	}
	start := len(b)
	b = appendUnescaped(b, s)
	v := b[start:]
	if !utf8.Valid(v) {
		return unescape(s)
	}
	*buf = b
	return unsafe.String(unsafe.SliceData(v), len(v))
}

func appendUnescaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i+2 < len(s) {
				h, ok1 := unhex(s[i+1])
				l, ok2 := unhex(s[i+2])
				if ok1 && ok2 {
					b = append(b, h<<4|l)
					i += 2
					continue
				}
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return b
}

func unescape(s string) string {
	if plain(s) {
		return s
	}
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		if utf8.ValidString(s) {
			return s
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	b := appendUnescaped(make([]byte, 0, len(s)), s)
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

func nameValues(ps []Param) []badrows.NameValue {
	out := make([]badrows.NameValue, len(ps))
	for i, p := range ps {
		out[i].Name = p.Name
		if !p.Null {
			v := p.Value
			out[i].Value = &v
		}
	}
	return out
}
