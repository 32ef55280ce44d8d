package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads a YAML file over the defaults, after replacing the
// environment references in its values (see the package documentation).
// Unknown keys are errors. path "" is no file: the defaults.
//
// The errors, each naming the file:
//   - the file cannot be read or is not YAML: that error; the Config is
//     the defaults.
//   - references that are malformed or name unset variables: a *FileError
//     for each malformed one and one *EnvError naming every unset
//     variable; nothing is decoded, the Config is the defaults.
//   - settings that do not decode (unknown keys, values of the wrong
//     type): one *DecodeError listing them all. The Config holds every
//     other setting of the file, those keep their defaults, so that
//     Validate can report the remaining errors with them.
func Load(path string) (Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookup lookupFunc) (Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	return c, decode(path, b, lookup, &c)
}

// decode expands and decodes the YAML document b, named file, into c.
func decode(file string, b []byte, lookup lookupFunc, c *Config) error {
	doc := &document{cfg: c, x: &expander{file: file, lookup: lookup}}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(doc)
	var te *yaml.TypeError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &te):
		de := &DecodeError{}
		for _, msg := range te.Errors {
			de.Errs = append(de.Errs, doc.settings.fileError(file, msg))
		}
		return de
	case err == doc.expandErr:
		return err // the expander's errors name the file
	}
	return fmt.Errorf("%s: %w", file, err)
}

// document decodes a file into cfg, expanding its references first.
//
// It implements yaml.v3's older Unmarshaler form on purpose: the decode
// function that form receives is the calling decoder's own, which
// refuses unknown keys (KnownFields), where yaml.Node.Decode would not.
// The first call hands the decoder's own node tree to a rawNode, and
// UnmarshalYAML expands it in place; the second decodes the expanded
// tree into cfg, with the file's own line numbers in its errors.
//
// A section type that needs its own UnmarshalYAML should use that form
// too (decode into a plain alias of the type), for the same reason.
type document struct {
	cfg       *Config
	x         *expander
	expandErr error    // the expander's, which UnmarshalYAML returned
	settings  settings // the file's settings, to name them in errors
}

func (d *document) UnmarshalYAML(decode func(any) error) error {
	var root rawNode
	if err := decode(&root); err != nil {
		return err
	}
	d.x.node(root.n, "")
	if d.expandErr = d.x.err(); d.expandErr != nil {
		return d.expandErr
	}
	d.settings = indexSettings(root.n)
	return decode(d.cfg)
}

// rawNode keeps the node a decoder hands it: the decoder's own, not a
// copy.
type rawNode struct{ n *yaml.Node }

func (r *rawNode) UnmarshalYAML(n *yaml.Node) error {
	r.n = n
	return nil
}

// FileError is an error at one place of a configuration file.
type FileError struct {
	File    string
	Line    int    // 0 when not known
	Setting string // e.g. duckdb.nice; "" when not known
	Err     error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Setting != "" {
		b.WriteString(e.Setting + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// DecodeError lists the settings of a file that did not decode, each a
// *FileError, one per line of its message.
type DecodeError struct {
	Errs []error
}

func (e *DecodeError) Error() string {
	s := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		s[i] = err.Error()
	}
	return strings.Join(s, "\n")
}

func (e *DecodeError) Unwrap() []error { return e.Errs }

// setting is one value of a file: a mapping's value, or a list's element
// (whose key is "").
type setting struct {
	path  string
	key   *yaml.Node // nil for a list element
	value *yaml.Node
}

// settings are a file's settings in document order.
type settings []setting

func indexSettings(n *yaml.Node) settings {
	var s settings
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := join(path, n.Content[i].Value)
				s = append(s, setting{p, n.Content[i], n.Content[i+1]})
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				s = append(s, setting{p, nil, c})
				walk(c, p)
			}
		}
	}
	if n != nil {
		walk(n, "")
	}
	return s
}

var (
	// yaml.v3's type errors start with the line of the node.
	lineMsg = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	// KnownFields: "field X not found in type T".
	notFound = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// fileError turns one of yaml.v3's type error messages into a *FileError
// naming the setting it is about.
func (s settings) fileError(file, msg string) error {
	m := lineMsg.FindStringSubmatch(msg)
	if m == nil {
		return &FileError{File: file, Err: errors.New(msg)}
	}
	line, _ := strconv.Atoi(m[1])
	msg = m[2]
	if f := notFound.FindStringSubmatch(msg); f != nil {
		for _, st := range s {
			if st.key != nil && st.key.Line == line && st.key.Value == f[1] {
				return &FileError{File: file, Line: line, Setting: st.path, Err: errors.New("unknown setting")}
			}
		}
		return &FileError{File: file, Line: line, Setting: f[1], Err: errors.New("unknown setting")}
	}
	// Errors about a value are at the value's line; several values can
	// share one (a flow mapping): prefer the one the message quotes.
	var at *setting
	for i, st := range s {
		// A block mapping or list starts on the line after its key.
		if st.value.Line != line || st.value.Kind != yaml.ScalarNode && st.key != nil && st.key.Line != line {
			continue
		}
		if at == nil {
			at = &s[i]
		}
		if st.value.Kind == yaml.ScalarNode && strings.Contains(msg, "`"+st.value.Value+"`") {
			at = &s[i]
			break
		}
	}
	if at == nil {
		return &FileError{File: file, Line: line, Err: errors.New(msg)}
	}
	return &FileError{File: file, Line: line, Setting: at.path, Err: errors.New(msg)}
}
