package pseudo

import (
	"fmt"
	"strconv"
	"strings"
)

// A JSON path of an allowlist names what stays in clear in a
// self-describing JSON's data. The syntax is the part of JSONPath that
// names places, not queries: $ (the whole data), then any of
//
//	.name  ['name']  ["name"]    a member
//	.*  [*]                      every member or element
//	[3]                          an array element
//	['a','b']                    several members (a union)
//
// A path keeps what it names and everything below it. Recursive descent
// (..), filters ([?(...)]), slices ([1:3]) and script expressions are
// refused: an allowlist must say exactly where clear values may be.
type step struct {
	name  string // member name, if kind == member
	index int    // element index, if kind == element
	kind  stepKind
}

type stepKind uint8

const (
	member stepKind = iota
	element
	wildcard
)

// parsePath returns the paths p stands for (more than one for a union).
func parsePath(p string) ([][]step, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, fmt.Errorf("%q: a path starts with $", p)
	}
	paths := [][]step{{}}
	add := func(alts ...step) {
		var next [][]step
		for _, base := range paths {
			for _, s := range alts {
				np := append(append([]step(nil), base...), s)
				next = append(next, np)
			}
		}
		paths = next
	}
	i := 1
	for i < len(p) {
		switch p[i] {
		case '.':
			i++
			if i < len(p) && p[i] == '.' {
				return nil, fmt.Errorf("%q: recursive descent (..) is not supported: name each place", p)
			}
			if i < len(p) && p[i] == '*' {
				add(step{kind: wildcard})
				i++
				continue
			}
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			name := p[i:j]
			if name == "" {
				return nil, fmt.Errorf("%q: empty member name at offset %d", p, i)
			}
			if strings.ContainsAny(name, "]'\"*?()@ ") {
				return nil, fmt.Errorf("%q: member name %q: use ['...'] for names with special characters", p, name)
			}
			add(step{kind: member, name: name})
			i = j
		case '[':
			end := closing(p, i)
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed [ at offset %d", p, i)
			}
			inner := strings.TrimSpace(p[i+1 : end])
			i = end + 1
			switch {
			case inner == "*":
				add(step{kind: wildcard})
			case inner != "" && (inner[0] == '\'' || inner[0] == '"'):
				names, err := quotedNames(inner)
				if err != nil {
					return nil, fmt.Errorf("%q: %v", p, err)
				}
				alts := make([]step, len(names))
				for k, n := range names {
					alts[k] = step{kind: member, name: n}
				}
				add(alts...)
			default:
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("%q: [%s] is not supported: use [N], [*] or ['name'] (no filters, slices or negative indexes)", p, inner)
				}
				add(step{kind: element, index: n})
			}
		default:
			return nil, fmt.Errorf("%q: unexpected %q at offset %d", p, p[i], i)
		}
	}
	return paths, nil
}

// closing finds the ] that closes the [ at p[i], skipping quoted names.
func closing(p string, i int) int {
	var quote byte
	for j := i + 1; j < len(p); j++ {
		c := p[j]
		switch {
		case quote != 0 && c == '\\':
			j++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '\'' || c == '"':
			quote = c
		case c == ']':
			return j
		}
	}
	return -1
}

// quotedNames reads 'a', "b", ... (a union of member names).
func quotedNames(s string) ([]string, error) {
	var names []string
	for {
		s = strings.TrimSpace(s)
		if s == "" || (s[0] != '\'' && s[0] != '"') {
			return nil, fmt.Errorf("expected a quoted name in [...]")
		}
		q := s[0]
		var b strings.Builder
		j := 1
		for ; j < len(s) && s[j] != q; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
		}
		if j >= len(s) {
			return nil, fmt.Errorf("unclosed quote in [...]")
		}
		if b.Len() == 0 {
			return nil, fmt.Errorf("empty member name in [...]")
		}
		names = append(names, b.String())
		s = strings.TrimSpace(s[j+1:])
		if s == "" {
			return names, nil
		}
		if s[0] != ',' {
			return nil, fmt.Errorf("expected , between names in [...]")
		}
		s = s[1:]
	}
}

// node is a trie of allowed paths: at each place in a document, the
// nodes that reach it tell whether it is kept (keep) and where to go next.
type node struct {
	keep     bool
	members  map[string]*node
	elements map[int]*node
	any      *node
}

func (n *node) insert(path []step) {
	for _, s := range path {
		var next **node
		switch s.kind {
		case wildcard:
			next = &n.any
		case member:
			if n.members == nil {
				n.members = map[string]*node{}
			}
			c := n.members[s.name]
			if c == nil {
				c = &node{}
				n.members[s.name] = c
			}
			n = c
			continue
		case element:
			if n.elements == nil {
				n.elements = map[int]*node{}
			}
			c := n.elements[s.index]
			if c == nil {
				c = &node{}
				n.elements[s.index] = c
			}
			n = c
			continue
		}
		if *next == nil {
			*next = &node{}
		}
		n = *next
	}
	n.keep = true
}
