package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// lookupFunc finds an environment variable, as os.LookupEnv does.
type lookupFunc func(name string) (value string, ok bool)

// expandString replaces the references in s. It returns the names of the
// unset variables s refers to without a default, in order of appearance,
// and an error for a malformed reference.
func expandString(s string, lookup lookupFunc) (out string, missing []string, err error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			return b.String(), missing, nil
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			s = s[i+2:]
			continue
		case '{':
		default:
			b.WriteByte('$')
			s = s[i+1:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("%q has a ${ without its closing } (write $${ for a literal ${)", s[i:])
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDefault := strings.Cut(ref, ":-")
		if !validName(name) {
			return "", nil, fmt.Errorf("%q is not ${NAME} or ${NAME:-default} (NAME: letters, digits and _, not starting with a digit; write $${ for a literal ${)", "${"+ref+"}")
		}
		v, ok := lookup(name)
		switch {
		case hasDefault && v == "":
			v = def
		case !ok:
			missing = append(missing, name)
		}
		b.WriteString(v)
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// MissingVar is an environment variable a file refers to that is not set.
type MissingVar struct {
	Name string
	// Lines are the lines of the values that refer to it (where each
	// value starts).
	Lines []int
}

// EnvError lists every environment variable a file refers to without a
// default that is not set.
type EnvError struct {
	File    string
	Missing []MissingVar
}

func (e *EnvError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if len(e.Missing) == 1 {
		b.WriteString(": environment variable not set: ")
	} else {
		b.WriteString(": environment variables not set: ")
	}
	for i, m := range e.Missing {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name)
		if len(m.Lines) == 1 {
			b.WriteString(" (line ")
		} else {
			b.WriteString(" (lines ")
		}
		for j, l := range m.Lines {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(l))
		}
		b.WriteString(")")
	}
	b.WriteString(" (give a default with ${NAME:-default})")
	return b.String()
}

// expander replaces the references in a parsed file, one scalar at a time.
type expander struct {
	file    string
	lookup  lookupFunc
	missing []MissingVar
	errs    []error // malformed references, as *FileError
}

// node expands the scalars under n in place. path is the setting n is the
// value of. Aliases are not followed: the node they point to is expanded
// where it is defined, once (expanding twice would turn $${ into a
// reference).
func (x *expander) node(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.node(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			x.node(n.Content[i+1], join(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			x.node(c, path+"["+strconv.Itoa(i)+"]")
		}
	case yaml.ScalarNode:
		x.scalar(n, path)
	}
}

func (x *expander) scalar(n *yaml.Node, path string) {
	v, missing, err := expandString(n.Value, x.lookup)
	if err != nil {
		x.errs = append(x.errs, &FileError{File: x.file, Line: n.Line, Setting: path, Err: err})
		return
	}
	for _, name := range missing {
		i := slices.IndexFunc(x.missing, func(m MissingVar) bool { return m.Name == name })
		if i < 0 {
			x.missing = append(x.missing, MissingVar{Name: name})
			i = len(x.missing) - 1
		}
		if l := x.missing[i].Lines; len(l) == 0 || l[len(l)-1] != n.Line {
			x.missing[i].Lines = append(l, n.Line)
		}
	}
	if v == n.Value {
		return
	}
	n.Value = v
	// A plain scalar's tag was resolved from the text with the reference
	// in it (always !!str); let the decoder resolve it from the new text,
	// as if that had been written. Quoted and tagged scalars keep theirs.
	if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		n.Tag = ""
	}
}

// err is the expansion's error: the malformed references, then the unset
// variables.
func (x *expander) err() error {
	errs := x.errs
	if len(x.missing) > 0 {
		errs = append(errs, &EnvError{File: x.file, Missing: x.missing})
	}
	return errors.Join(errs...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
