// Package iglu implements Iglu schema keys, self-describing JSON, schema
// repositories (built-in, directory, HTTP), a caching resolver and JSON
// Schema (draft 4) validation with Snowplow-style error reports.
package iglu

import (
	"fmt"
	"strconv"
	"strings"
)

// SchemaVer is MODEL-REVISION-ADDITION.
type SchemaVer struct{ Model, Revision, Addition int }

func (v SchemaVer) String() string {
	return strconv.Itoa(v.Model) + "-" + strconv.Itoa(v.Revision) + "-" + strconv.Itoa(v.Addition)
}

// SchemaKey identifies one schema: iglu:vendor/name/format/M-R-A.
type SchemaKey struct {
	Vendor, Name, Format string
	Version              SchemaVer
}

// URI returns the iglu: form of the key.
func (k SchemaKey) URI() string { return "iglu:" + k.Path() }

// Path returns vendor/name/format/version, the form used in repositories.
func (k SchemaKey) Path() string {
	return k.Vendor + "/" + k.Name + "/" + k.Format + "/" + k.Version.String()
}

func (k SchemaKey) String() string { return k.URI() }

// ParseError distinguishes the two ways an Iglu URI can be wrong, using the
// codes Snowplow puts in bad rows.
type ParseError struct {
	Code  string // INVALID_IGLUURI or INVALID_SCHEMAVER
	Input string
}

func (e *ParseError) Error() string {
	if e.Code == "INVALID_SCHEMAVER" {
		return fmt.Sprintf("invalid SchemaVer in %q", e.Input)
	}
	return fmt.Sprintf("invalid Iglu URI %q", e.Input)
}

func validVendor(s string) bool { return s != "" && allIn(s, true) }
func validName(s string) bool   { return s != "" && allIn(s, false) }

// allIn reports whether s only holds [a-zA-Z0-9-_] (and '.' if dot).
func allIn(s string, dot bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.' && dot:
		default:
			return false
		}
	}
	return true
}

// ParseSchemaKey parses an iglu: URI.
func ParseSchemaKey(uri string) (SchemaKey, error) {
	rest, ok := strings.CutPrefix(uri, "iglu:")
	if !ok {
		return SchemaKey{}, &ParseError{"INVALID_IGLUURI", uri}
	}
	return parsePath(rest, uri)
}

// ParseSchemaPath parses vendor/name/format/version.
func ParseSchemaPath(path string) (SchemaKey, error) { return parsePath(path, path) }

func parsePath(p, orig string) (SchemaKey, error) {
	parts := strings.Split(p, "/")
	if len(parts) != 4 || !validVendor(parts[0]) || !validName(parts[1]) || !validName(parts[2]) {
		return SchemaKey{}, &ParseError{"INVALID_IGLUURI", orig}
	}
	v, ok := parseVer(parts[3])
	if !ok {
		if looseVer(parts[3]) {
			return SchemaKey{}, &ParseError{"INVALID_SCHEMAVER", orig}
		}
		return SchemaKey{}, &ParseError{"INVALID_IGLUURI", orig}
	}
	return SchemaKey{parts[0], parts[1], parts[2], v}, nil
}

// parseVer accepts MODEL-REVISION-ADDITION with MODEL >= 1 and no leading
// zeros.
func parseVer(s string) (SchemaVer, bool) {
	nums := strings.Split(s, "-")
	if len(nums) != 3 {
		return SchemaVer{}, false
	}
	var out [3]int
	for i, n := range nums {
		if n == "" || len(n) > 9 || (len(n) > 1 && n[0] == '0') {
			return SchemaVer{}, false
		}
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 {
			return SchemaVer{}, false
		}
		out[i] = v
	}
	if out[0] == 0 {
		return SchemaVer{}, false
	}
	return SchemaVer{out[0], out[1], out[2]}, true
}

// looseVer reports whether s looks like a version (digits and dashes) even
// if it is not a valid SchemaVer.
func looseVer(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '-' {
			return false
		}
	}
	return strings.Count(s, "-") == 2
}

// Criterion matches schema keys with wildcards: iglu:v/n/f/1-*-*.
// A negative component means '*'.
type Criterion struct {
	Vendor, Name, Format      string
	Model, Revision, Addition int
}

// MustCriterion parses a criterion and panics on error; for constants.
func MustCriterion(s string) Criterion {
	c, err := ParseCriterion(s)
	if err != nil {
		panic(err)
	}
	return c
}

// ParseCriterion parses iglu:vendor/name/format/M-R-A where each of M, R
// and A may be '*'.
func ParseCriterion(s string) (Criterion, error) {
	rest, ok := strings.CutPrefix(s, "iglu:")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || !validVendor(parts[0]) || !validName(parts[1]) || !validName(parts[2]) {
		return Criterion{}, fmt.Errorf("invalid schema criterion %q", s)
	}
	nums := strings.Split(parts[3], "-")
	if len(nums) != 3 {
		return Criterion{}, fmt.Errorf("invalid schema criterion %q", s)
	}
	var v [3]int
	for i, n := range nums {
		if n == "*" {
			v[i] = -1
			continue
		}
		x, err := strconv.Atoi(n)
		if err != nil || x < 0 {
			return Criterion{}, fmt.Errorf("invalid schema criterion %q", s)
		}
		v[i] = x
	}
	return Criterion{parts[0], parts[1], parts[2], v[0], v[1], v[2]}, nil
}

// Matches reports whether k satisfies c.
func (c Criterion) Matches(k SchemaKey) bool {
	return c.Vendor == k.Vendor && c.Name == k.Name && c.Format == k.Format &&
		(c.Model < 0 || c.Model == k.Version.Model) &&
		(c.Revision < 0 || c.Revision == k.Version.Revision) &&
		(c.Addition < 0 || c.Addition == k.Version.Addition)
}

func (c Criterion) String() string {
	f := func(n int) string {
		if n < 0 {
			return "*"
		}
		return strconv.Itoa(n)
	}
	return "iglu:" + c.Vendor + "/" + c.Name + "/" + c.Format + "/" + f(c.Model) + "-" + f(c.Revision) + "-" + f(c.Addition)
}
