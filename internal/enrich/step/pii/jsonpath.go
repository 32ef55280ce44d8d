package pii

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/furrow-io/furrow/internal/jsonx"
)

// A Path is the subset of JsonPath (Jayway's dialect, which Snowplow
// Enrich uses) that selects the fields of an entity to hash:
//
//	$.name  $['name']  $.['name']  ["name"]   one property
//	$['a','b']                                several properties, in that order
//	$.a.b  $.a['b']                           properties of properties
//	$.*  $[*]  $.a[*].b                       every value of an object, element of an array
//	$.a[0]  $.a[-1]  $.a[0,2]                 array elements by index (negative: from the end)
//	$..name  $..['name']                      a property at any depth
//
// Filters ([?(...)]), slices ([1:3]), functions (.length()), scripts and
// $..* are not supported: ParsePath rejects them.
//
// Matching follows Jayway: a property applies to objects, an index to
// arrays, and a path that does not exist in an entity matches nothing.
// $..name visits the document depth first, an object's own member before
// those of its values.
type Path struct {
	toks []token
}

type tokKind uint8

const (
	tokProps    tokKind = iota // one or more property names
	tokIndexes                 // one or more array indexes
	tokWildcard                // every object value or array element
	tokScan                    // ..name: the property at any depth
)

type token struct {
	kind    tokKind
	names   []string
	indexes []int
}

// PathError says why a JsonPath is not accepted.
type PathError struct {
	Path string
	Pos  int // byte offset of the problem
	Msg  string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("jsonPath %q: %s (at offset %d); supported forms: $.a, $['a','b'], $.a.b, $.a[*].b, $.a[0], $.*, $..a", e.Path, e.Msg, e.Pos)
}

// ParsePath parses a JsonPath of the supported subset.
func ParsePath(s string) (*Path, error) {
	p := &pathParser{s: s}
	if !strings.HasPrefix(s, "$") {
		return nil, p.err(0, "must start with $")
	}
	p.i = 1
	var toks []token
	for p.i < len(s) {
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t != nil {
			toks = append(toks, *t)
		}
	}
	if len(toks) == 0 {
		return nil, p.err(0, "$ alone selects the whole entity; name the fields to hash")
	}
	return &Path{toks: toks}, nil
}

type pathParser struct {
	s string
	i int
}

func (p *pathParser) err(pos int, format string, args ...any) *PathError {
	return &PathError{Path: p.s, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// next reads one token; it returns nil for a '.' that introduces a
// bracket.
func (p *pathParser) next() (*token, error) {
	s := p.s
	switch s[p.i] {
	case '[':
		return p.bracket()
	case '.':
		if strings.HasPrefix(s[p.i:], "..") {
			start := p.i
			p.i += 2
			if p.i >= len(s) {
				return nil, p.err(start, "ends with '..'")
			}
			var t *token
			var err error
			switch s[p.i] {
			case '*':
				return nil, p.err(p.i, "$..* (every node) is not supported")
			case '.':
				return nil, p.err(p.i, "unexpected '.'")
			case '[':
				t, err = p.bracket()
				if err == nil && (t.kind != tokProps || len(t.names) != 1) {
					return nil, p.err(start, "a deep scan (..) takes one property name")
				}
			default:
				t, err = p.name()
			}
			if err != nil {
				return nil, err
			}
			t.kind = tokScan
			return t, nil
		}
		p.i++
		if p.i >= len(s) {
			return nil, p.err(p.i-1, "ends with '.'")
		}
		switch s[p.i] {
		case '[':
			return nil, nil
		case '*':
			p.i++
			return &token{kind: tokWildcard}, nil
		}
		return p.name()
	}
	return nil, p.err(p.i, "unexpected %q, expected '.' or '['", s[p.i])
}

// name reads a property name in dot notation.
func (p *pathParser) name() (*token, error) {
	s, start := p.s, p.i
	for p.i < len(s) && s[p.i] != '.' && s[p.i] != '[' {
		switch c := s[p.i]; {
		case c == '(' || c == ')':
			return nil, p.err(p.i, "functions such as length() are not supported")
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return nil, p.err(p.i, "unexpected space in a property name (use ['a b'])")
		case c == '*':
			return nil, p.err(p.i, "'*' inside a property name (use ['a*b'])")
		}
		p.i++
	}
	if p.i == start {
		return nil, p.err(start, "empty property name")
	}
	return &token{kind: tokProps, names: []string{s[start:p.i]}}, nil
}

func (p *pathParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// bracket reads [*], ['a','b'] or [0,-1].
func (p *pathParser) bracket() (*token, error) {
	s, open := p.s, p.i
	p.i++
	p.space()
	if p.i >= len(s) {
		return nil, p.err(open, "unclosed '['")
	}
	var t token
	switch c := s[p.i]; {
	case c == '*':
		p.i++
		t.kind = tokWildcard
	case c == '?':
		return nil, p.err(p.i, "filter expressions [?(...)] are not supported")
	case c == '(':
		return nil, p.err(p.i, "script expressions [(...)] are not supported")
	case c == '\'' || c == '"':
		t.kind = tokProps
		for {
			name, err := p.quoted()
			if err != nil {
				return nil, err
			}
			t.names = append(t.names, name)
			p.space()
			if p.i < len(s) && s[p.i] == ',' {
				p.i++
				p.space()
				continue
			}
			break
		}
	case c == '-' || c >= '0' && c <= '9' || c == ':':
		t.kind = tokIndexes
		for {
			start := p.i
			if p.i < len(s) && s[p.i] == '-' {
				p.i++
			}
			for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
				p.i++
			}
			if p.i < len(s) && s[p.i] == ':' {
				return nil, p.err(p.i, "array slices [a:b] are not supported")
			}
			n, err := strconv.Atoi(s[start:p.i])
			if err != nil || n > 1<<30 || n < -(1<<30) {
				return nil, p.err(start, "invalid array index")
			}
			t.indexes = append(t.indexes, n)
			p.space()
			if p.i < len(s) && s[p.i] == ',' {
				p.i++
				p.space()
				continue
			}
			break
		}
	default:
		return nil, p.err(p.i, "unexpected %q after '['", c)
	}
	p.space()
	if p.i >= len(s) || s[p.i] != ']' {
		return nil, p.err(p.i, "expected ']'")
	}
	p.i++
	return &t, nil
}

// quoted reads a '...' or "..." name; a backslash escapes the next byte.
func (p *pathParser) quoted() (string, error) {
	s, start := p.s, p.i
	if p.i >= len(s) || (s[p.i] != '\'' && s[p.i] != '"') {
		return "", p.err(p.i, "expected a quoted property name")
	}
	q := s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(s) {
		c := s[p.i]
		switch {
		case c == '\\' && p.i+1 < len(s):
			b.WriteByte(s[p.i+1])
			p.i += 2
		case c == q:
			p.i++
			return b.String(), nil
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.err(start, "unterminated quoted name")
}

// String renders the path in bracket notation; ParsePath reads it back
// to the same path.
func (p *Path) String() string {
	var b strings.Builder
	b.WriteByte('$')
	quote := func(n string) {
		b.WriteByte('\'')
		for i := 0; i < len(n); i++ {
			if n[i] == '\'' || n[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(n[i])
		}
		b.WriteByte('\'')
	}
	for _, t := range p.toks {
		switch t.kind {
		case tokProps, tokScan:
			if t.kind == tokScan {
				b.WriteString("..")
			}
			b.WriteByte('[')
			for i, n := range t.names {
				if i > 0 {
					b.WriteByte(',')
				}
				quote(n)
			}
			b.WriteByte(']')
		case tokIndexes:
			b.WriteByte('[')
			for i, n := range t.indexes {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.Itoa(n))
			}
			b.WriteByte(']')
		case tokWildcard:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

// span is a string node of a document: doc[start:end], quotes included.
type span struct{ start, end int }

// matcher collects the string nodes a path selects.
type matcher struct {
	root  []byte
	spans []span
}

// strings appends to spans the string nodes p selects in doc, in the
// order Jayway's map would visit them: a selected string, and the strings
// directly inside a selected array. A node selected twice appears twice.
func (p *Path) strings(doc []byte, spans []span) []span {
	m := matcher{root: doc, spans: spans}
	i := jsonx.SkipSpace(doc, 0)
	if i < len(doc) {
		end, err := jsonx.Skip(doc, i)
		if err == nil {
			m.eval(p.toks, doc[i:end])
		}
	}
	return m.spans
}

// offset returns where v, a sub-slice of the root, starts in it.
func (m *matcher) offset(v []byte) int { return cap(m.root) - cap(v) }

func (m *matcher) leaf(v []byte) {
	switch v[0] {
	case '"':
		start := m.offset(v)
		m.spans = append(m.spans, span{start, start + len(v)})
	case '[':
		jsonx.Array(v, 0, func(e []byte) bool {
			if e[0] == '"' {
				start := m.offset(e)
				m.spans = append(m.spans, span{start, start + len(e)})
			}
			return true
		})
	}
}

func keyIs(k []byte, name string) bool {
	body := k[1 : len(k)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body) == name
	}
	s, _ := jsonx.String(k)
	return s == name
}

func (m *matcher) eval(toks []token, v []byte) {
	if len(toks) == 0 {
		m.leaf(v)
		return
	}
	t, rest := &toks[0], toks[1:]
	switch t.kind {
	case tokProps:
		if v[0] != '{' {
			return
		}
		for _, name := range t.names {
			jsonx.Object(v, 0, func(k, val []byte) bool {
				if keyIs(k, name) {
					m.eval(rest, val)
				}
				return true
			})
		}
	case tokIndexes:
		if v[0] != '[' {
			return
		}
		n := 0
		jsonx.Array(v, 0, func([]byte) bool { n++; return true })
		for _, idx := range t.indexes {
			if idx < 0 {
				idx += n
			}
			if idx < 0 || idx >= n {
				continue
			}
			i := 0
			jsonx.Array(v, 0, func(e []byte) bool {
				if i == idx {
					m.eval(rest, e)
					return false
				}
				i++
				return true
			})
		}
	case tokWildcard:
		switch v[0] {
		case '{':
			jsonx.Object(v, 0, func(_, val []byte) bool { m.eval(rest, val); return true })
		case '[':
			jsonx.Array(v, 0, func(e []byte) bool { m.eval(rest, e); return true })
		}
	case tokScan:
		m.scan(t.names[0], rest, v)
	}
}

// scan visits v depth first: an object holding name has the rest of the
// path applied to that member before its values are scanned in turn.
func (m *matcher) scan(name string, rest []token, v []byte) {
	switch v[0] {
	case '{':
		jsonx.Object(v, 0, func(k, val []byte) bool {
			if keyIs(k, name) {
				m.eval(rest, val)
			}
			return true
		})
		jsonx.Object(v, 0, func(_, val []byte) bool { m.scan(name, rest, val); return true })
	case '[':
		jsonx.Array(v, 0, func(e []byte) bool { m.scan(name, rest, e); return true })
	}
}
