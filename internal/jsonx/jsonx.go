// Package jsonx is a small, allocation-light JSON reader for the
// enricher's hot path: skipping and validating values, walking objects
// and arrays without decoding them, and decoding into the generic form
// (map[string]any, []any, string, json.Number, bool, nil) that the schema
// validator takes. It accepts exactly what encoding/json accepts.
package jsonx

import (
	"encoding/json"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrSyntax is returned for input that is not valid JSON.
var ErrSyntax = errors.New("jsonx: invalid JSON")

// maxDepth bounds recursion in Skip and Decode.
const maxDepth = 10000

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipSpace returns the index of the first non-space byte at or after i.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Valid reports whether b is exactly one JSON value (with optional
// surrounding whitespace).
func Valid(b []byte) bool {
	end, err := Skip(b, SkipSpace(b, 0))
	return err == nil && SkipSpace(b, end) == len(b)
}

// Skip validates the value starting at b[i] (no leading space) and
// returns the index just after it.
func Skip(b []byte, i int) (int, error) { return skip(b, i, 0) }

func skip(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, ErrSyntax
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		if depth >= maxDepth {
			return 0, ErrSyntax
		}
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, ErrSyntax
			}
			end, _, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			i = SkipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, ErrSyntax
			}
			i, err = skip(b, SkipSpace(b, i+1), depth+1)
			if err != nil {
				return 0, err
			}
			i = SkipSpace(b, i)
			if i >= len(b) {
				return 0, ErrSyntax
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, ErrSyntax
			}
			i = SkipSpace(b, i+1)
		}
	case c == '[':
		if depth >= maxDepth {
			return 0, ErrSyntax
		}
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			i, err = skip(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = SkipSpace(b, i)
			if i >= len(b) {
				return 0, ErrSyntax
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, ErrSyntax
			}
			i = SkipSpace(b, i+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	}
	return 0, ErrSyntax
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return 0, ErrSyntax
}

// IsNumber reports whether b is exactly one JSON number.
func IsNumber(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	end, err := scanNumber(b, 0)
	return err == nil && end == len(b)
}

func scanNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, ErrSyntax
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return 0, ErrSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, ErrSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, ErrSyntax
		}
	}
	return i, nil
}

// scanString validates the string starting at b[i] == '"' and returns the
// index after the closing quote and whether it holds escapes.
func scanString(b []byte, i int) (int, bool, error) {
	escaped := false
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return 0, false, ErrSyntax
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return 0, false, ErrSyntax
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return 0, false, ErrSyntax
					}
				}
				i += 4
			default:
				return 0, false, ErrSyntax
			}
		case c < 0x20:
			return 0, false, ErrSyntax
		}
	}
	return 0, false, ErrSyntax
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// String returns the string value of the JSON string b[i:end] (quotes
// included), decoding escapes as encoding/json does.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	end, escaped, err := scanString(raw, 0)
	if err != nil || end != len(raw) {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if !escaped {
		if utf8.Valid(body) {
			return string(body), true
		}
		return string(toValidUTF8(nil, body)), true
	}
	return string(unescape(body)), true
}

func toValidUTF8(dst, s []byte) []byte {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[:n]...)
		}
		s = s[n:]
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			v = c - 'A' + 10
		}
		r = r<<4 | rune(v)
	}
	return r
}

// unescape decodes a valid string body holding escapes.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				out = append(out, c)
				i++
				continue
			}
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s[i:i+n]...)
			}
			i += n
			continue
		}
		i++
		switch s[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 := hex4(s[i+3:])
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						out = utf8.AppendRune(out, dec)
						break
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default: // " \ /
			out = append(out, s[i])
		}
		i++
	}
	return out
}

// Object calls fn for each member of the object at b[i] with the key's
// raw bytes (quotes included) and the value's raw bytes. It returns the
// index after the object. fn returning false stops the walk early.
func Object(b []byte, i int, fn func(key, value []byte) bool) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, ErrSyntax
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, ErrSyntax
		}
		kEnd, _, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i:kEnd]
		i = SkipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return 0, ErrSyntax
		}
		vStart := SkipSpace(b, i+1)
		vEnd, err := Skip(b, vStart)
		if err != nil {
			return 0, err
		}
		if !fn(key, b[vStart:vEnd]) {
			return vEnd, nil
		}
		i = SkipSpace(b, vEnd)
		if i >= len(b) {
			return 0, ErrSyntax
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, ErrSyntax
		}
		i = SkipSpace(b, i+1)
	}
}

// Array calls fn with the raw bytes of each element of the array at b[i].
func Array(b []byte, i int, fn func(elem []byte) bool) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return 0, ErrSyntax
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := Skip(b, i)
		if err != nil {
			return 0, err
		}
		if !fn(b[i:end]) {
			return end, nil
		}
		i = SkipSpace(b, end)
		if i >= len(b) {
			return 0, ErrSyntax
		}
		if b[i] == ']' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, ErrSyntax
		}
		i = SkipSpace(b, i+1)
	}
}

// Decode parses b into the generic form, with numbers as json.Number.
func Decode(b []byte) (any, error) {
	i := SkipSpace(b, 0)
	v, end, err := decode(b, i, 0)
	if err != nil {
		return nil, err
	}
	if SkipSpace(b, end) != len(b) {
		return nil, ErrSyntax
	}
	return v, nil
}

func decode(b []byte, i, depth int) (any, int, error) {
	if i >= len(b) {
		return nil, 0, ErrSyntax
	}
	if depth > maxDepth {
		return nil, 0, ErrSyntax
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		if err != nil {
			return nil, 0, err
		}
		s, _ := String(b[i:end])
		return s, end, nil
	case c == '{':
		m := map[string]any{}
		var derr error
		end, err := Object(b, i, func(k, v []byte) bool {
			key, _ := String(k)
			var val any
			val, _, derr = decode(v, 0, depth+1)
			m[key] = val
			return derr == nil
		})
		if derr != nil {
			return nil, 0, derr
		}
		return m, end, err
	case c == '[':
		arr := []any{}
		var derr error
		end, err := Array(b, i, func(e []byte) bool {
			var val any
			val, _, derr = decode(e, 0, depth+1)
			arr = append(arr, val)
			return derr == nil
		})
		if derr != nil {
			return nil, 0, derr
		}
		return arr, end, err
	case c == 't':
		end, err := literal(b, i, "true")
		return true, end, err
	case c == 'f':
		end, err := literal(b, i, "false")
		return false, end, err
	case c == 'n':
		end, err := literal(b, i, "null")
		return nil, end, err
	default:
		end, err := scanNumber(b, i)
		if err != nil {
			return nil, 0, err
		}
		return json.Number(b[i:end]), end, nil
	}
}

// Quote appends s as a JSON string (as encoding/json writes it, without
// HTML escaping).
func Quote(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexd[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
