package files

import (
	"fmt"
	"strings"
	"time"
)

// Placeholders of partition templates, as Snowplow's S3 loader spells
// them. Times are UTC. {schema} is Snowplow's other name for {name}.
const (
	phYear   = "yyyy"
	phMonth  = "MM"
	phDay    = "dd"
	phHour   = "HH"
	phMinute = "mm"
	phSecond = "ss"
	phVendor = "vendor"
	phName   = "name"
	phSchema = "schema"
	phFormat = "format"
	phModel  = "model"
)

var timePlaceholders = map[string]int{
	// The value is how many characters of a canonical timestamp
	// ("2006-01-02 15:04:05.000") the placeholder depends on.
	phYear: 4, phMonth: 7, phDay: 10, phHour: 13, phMinute: 16, phSecond: 19,
}

var schemaPlaceholders = map[string]bool{
	phVendor: true, phName: true, phSchema: true, phFormat: true, phModel: true,
}

// Template is a parsed partition template: literal text and placeholders
// in braces, e.g. "{vendor}.{name}/model={model}/{yyyy}/{MM}/{dd}/{HH}".
// It renders to a relative key path: no leading or trailing "/", no empty,
// "." or ".." segment, no backslash or control character.
type Template struct {
	src   string
	parts []tmplPart
	// width is how many leading characters of a canonical timestamp the
	// rendering depends on (0: none).
	width int
}

type tmplPart struct {
	lit string // literal text when ph == ""
	ph  string
}

// SchemaKey is the part of a bad row's schema a template can use.
type SchemaKey struct {
	Vendor, Name, Format, Model string
}

// ParseTemplate parses a partition template. With schema false, schema
// placeholders are refused: enriched events can only be partitioned by
// date and time (as Snowplow's loader says). The empty template is valid
// and renders to "" (objects directly under the prefix).
func ParseTemplate(s string, schema bool) (Template, error) {
	t := Template{src: s}
	if strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
		return Template{}, fmt.Errorf("partition template %q: must not start or end with /", s)
	}
	var shape strings.Builder // s with each placeholder replaced by "x", to check segments
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: rest})
			shape.WriteString(rest)
			break
		}
		if rest[i] == '}' {
			return Template{}, fmt.Errorf("partition template %q: } without {", s)
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
			shape.WriteString(rest[:i])
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] == '{' {
			return Template{}, fmt.Errorf("partition template %q: { without }", s)
		}
		name := rest[i+1 : i+1+j]
		switch w, isTime := timePlaceholders[name]; {
		case isTime:
			t.width = max(t.width, w)
		case schemaPlaceholders[name]:
			if !schema {
				return Template{}, fmt.Errorf("partition template %q: {%s}: enriched events can only be partitioned by date and time ({yyyy} {MM} {dd} {HH} {mm} {ss})", s, name)
			}
		default:
			return Template{}, fmt.Errorf("partition template %q: unknown placeholder {%s} (known: {yyyy} {MM} {dd} {HH} {mm} {ss}%s)", s, name, map[bool]string{true: " {vendor} {name} {schema} {format} {model}"}[schema])
		}
		t.parts = append(t.parts, tmplPart{ph: name})
		shape.WriteString("x")
		rest = rest[i+2+j:]
	}
	if err := checkPath(shape.String()); err != nil {
		return Template{}, fmt.Errorf("partition template %q: %w", s, err)
	}
	return t, nil
}

// String returns the template as it was written.
func (t Template) String() string { return t.src }

// checkPath refuses what would make an unsafe or ambiguous key: empty,
// "." or ".." segments, backslashes and control characters. "" is valid.
func checkPath(p string) error {
	if p == "" {
		return nil
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("empty path segment")
		case ".", "..":
			return fmt.Errorf("path segment %q not allowed", seg)
		}
	}
	return nil
}

// Render appends the partition of an object holding rows of time ts (UTC)
// and, for bad rows, schema k.
func (t Template) Render(dst []byte, ts time.Time, k SchemaKey) []byte {
	ts = ts.UTC()
	for _, p := range t.parts {
		switch p.ph {
		case "":
			dst = append(dst, p.lit...)
		case phYear:
			dst = ts.AppendFormat(dst, "2006")
		case phMonth:
			dst = ts.AppendFormat(dst, "01")
		case phDay:
			dst = ts.AppendFormat(dst, "02")
		case phHour:
			dst = ts.AppendFormat(dst, "15")
		case phMinute:
			dst = ts.AppendFormat(dst, "04")
		case phSecond:
			dst = ts.AppendFormat(dst, "05")
		case phVendor:
			dst = append(dst, safeValue(k.Vendor, "unknown")...)
		case phName, phSchema:
			dst = append(dst, safeValue(k.Name, "unknown")...)
		case phFormat:
			dst = append(dst, safeValue(k.Format, "unknown")...)
		case phModel:
			dst = append(dst, safeValue(k.Model, "-1")...)
		}
	}
	return dst
}

// safeValue returns v if it is a usable key segment part ([A-Za-z0-9._-]
// with at least one letter or digit), else def: a schema comes from the
// bad row itself and must not be able to climb out of the prefix.
func safeValue(v, def string) string {
	alnum := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			alnum = true
		case c == '.' || c == '_' || c == '-':
		default:
			return def
		}
	}
	if !alnum || len(v) > 128 {
		return def
	}
	return v
}

// parseSchema reads an Iglu URI "iglu:vendor/name/format/M-R-A". What
// does not parse gives vendor "unknown".
func parseSchema(uri string) SchemaKey {
	rest, ok := strings.CutPrefix(uri, "iglu:")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 {
		return SchemaKey{Vendor: "unknown", Name: "unknown", Format: "unknown", Model: "-1"}
	}
	model, _, _ := strings.Cut(parts[3], "-")
	return SchemaKey{
		Vendor: safeValue(parts[0], "unknown"),
		Name:   safeValue(parts[1], "unknown"),
		Format: safeValue(parts[2], "unknown"),
		Model:  safeValue(model, "-1"),
	}
}
