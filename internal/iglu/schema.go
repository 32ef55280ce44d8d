package iglu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Schema is a resolved, compiled JSON Schema.
type Schema struct {
	Key SchemaKey
	Raw []byte // the schema document as found in the repository
	sch *jsonschema.Schema
}

// SchemaError says a schema was found but cannot be used.
type SchemaError struct {
	Key SchemaKey
	Err error
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("schema %s is invalid: %v", e.Key.URI(), e.Err)
}
func (e *SchemaError) Unwrap() error { return e.Err }

// CompileSchema compiles a schema document for key. Iglu schemas declare
// the self-describing meta-schema in $schema; they are JSON Schema draft 4
// underneath, which is how they are compiled. Formats are asserted.
//
// A $ref to another Iglu schema by URL (http://iglucentral.com/schemas/...)
// is fetched with refs, which may be nil to refuse such references.
func CompileSchema(key SchemaKey, raw []byte, refs RefLoader) (*Schema, error) {
	return compile(key, raw, refs)
}

// RefLoader fetches the raw document of a referenced schema.
type RefLoader func(SchemaKey) ([]byte, error)

func compile(key SchemaKey, raw []byte, refs RefLoader) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &SchemaError{key, fmt.Errorf("not JSON: %w", err)}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, &SchemaError{key, fmt.Errorf("not a JSON object")}
	}
	if self, ok := m["self"].(map[string]any); ok {
		got := fmt.Sprintf("%v/%v/%v/%v", self["vendor"], self["name"], self["format"], self["version"])
		if got != key.Path() {
			return nil, &SchemaError{key, fmt.Errorf("self-describing key %s does not match the requested key", got)}
		}
	}
	delete(m, "$schema")
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.AssertFormat()
	c.UseRegexpEngine(lenientRegexp)
	c.UseLoader(refLoader{refs})
	url := "https://schemas.furrow.invalid/" + key.Path()
	if err := c.AddResource(url, m); err != nil {
		return nil, &SchemaError{key, err}
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, &SchemaError{key, err}
	}
	return &Schema{Key: key, Raw: raw, sch: s}, nil
}

// refLoader resolves $refs of the form <scheme>://<host>/schemas/<path>
// through the Iglu repositories instead of the network.
type refLoader struct{ load RefLoader }

func (l refLoader) Load(url string) (any, error) {
	_, rest, ok := strings.Cut(url, "/schemas/")
	if !ok || l.load == nil {
		return nil, fmt.Errorf("$ref %s is not an Iglu schema URL", url)
	}
	key, err := ParseSchemaPath(strings.TrimSuffix(rest, "#"))
	if err != nil {
		return nil, fmt.Errorf("$ref %s: %w", url, err)
	}
	raw, err := l.load(key)
	if err != nil {
		return nil, fmt.Errorf("$ref %s: %w", url, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if m, ok := doc.(map[string]any); ok {
		delete(m, "$schema")
	}
	return doc, nil
}

// Iglu schemas are written for Java regular expressions. The few that use
// constructs RE2 lacks (look-arounds, back-references) are accepted
// without checking that keyword, and a warning is logged once per pattern.
var warnedPatterns sync.Map

type goRegexp struct{ *regexp.Regexp }

func (r goRegexp) String() string { return r.Regexp.String() }

type anyString string

func (a anyString) MatchString(string) bool { return true }
func (a anyString) String() string          { return string(a) }

func lenientRegexp(s string) (jsonschema.Regexp, error) {
	re, err := regexp.Compile(s)
	if err == nil {
		return goRegexp{re}, nil
	}
	if _, dup := warnedPatterns.LoadOrStore(s, true); !dup {
		slog.Warn("iglu: schema pattern is not supported by Go regexp and will not be checked", "pattern", s, "err", err)
	}
	return anyString(s), nil
}

// DataReport is one validation failure, as in Snowplow's ValidationError.
type DataReport struct {
	Message string   `json:"message"`
	Path    string   `json:"path"`
	Keyword string   `json:"keyword"`
	Targets []string `json:"targets"`
}

// ValidationError lists why an instance did not match its schema.
type ValidationError struct {
	Key     SchemaKey
	Reports []DataReport
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Reports))
	for i, r := range e.Reports {
		msgs[i] = r.Message
	}
	return fmt.Sprintf("%s: %s", e.Key.URI(), strings.Join(msgs, "; "))
}

// Validate checks v (decoded with json.Number for numbers) against s and
// returns nil or a *ValidationError.
func (s *Schema) Validate(v any) error {
	err := s.sch.Validate(v)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return &ValidationError{Key: s.Key, Reports: []DataReport{{Message: err.Error(), Path: "$", Keyword: "unknown", Targets: []string{}}}}
	}
	var reports []DataReport
	collect(ve, v, &reports)
	if len(reports) == 0 {
		reports = append(reports, DataReport{Message: "$: " + ve.Error(), Path: "$", Keyword: "unknown", Targets: []string{}})
	}
	return &ValidationError{Key: s.Key, Reports: reports}
}

func collect(e *jsonschema.ValidationError, root any, out *[]DataReport) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collect(c, root, out)
		}
		return
	}
	*out = append(*out, report(e, root))
}

// valueAt follows an instance location into a decoded document.
func valueAt(v any, loc []string) any {
	for _, t := range loc {
		switch x := v.(type) {
		case map[string]any:
			v = x[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// typeName names a JSON value's type, telling integers from other numbers.
func typeName(v any, fallback string) string {
	if n, ok := v.(json.Number); ok {
		if _, err := n.Int64(); err == nil {
			return "integer"
		}
		return "number"
	}
	return fallback
}

// jsonPath renders an instance location as $.a.b[0].
func jsonPath(loc []string) string {
	var sb strings.Builder
	sb.WriteString("$")
	for _, t := range loc {
		if _, err := strconv.Atoi(t); err == nil {
			sb.WriteString("[" + t + "]")
		} else {
			sb.WriteString("." + t)
		}
	}
	return sb.String()
}

// report turns one leaf error into a DataReport whose message follows the
// wording Snowplow's validator uses for the common keywords.
func report(e *jsonschema.ValidationError, root any) DataReport {
	path := jsonPath(e.InstanceLocation)
	kw := "unknown"
	if kp := e.ErrorKind.KeywordPath(); len(kp) > 0 {
		kw = kp[0]
	}
	r := DataReport{Path: path, Keyword: kw, Targets: []string{}}
	switch k := e.ErrorKind.(type) {
	case *kind.Type:
		got := typeName(valueAt(root, e.InstanceLocation), k.Got)
		r.Message = fmt.Sprintf("%s: %s found, %s expected", path, got, strings.Join(k.Want, ", "))
		r.Targets = append([]string{got}, k.Want...)
	case *kind.Required:
		msgs := make([]string, len(k.Missing))
		for i, m := range k.Missing {
			msgs[i] = fmt.Sprintf("%s.%s: is missing but it is required", path, m)
		}
		r.Message = strings.Join(msgs, "; ")
		r.Targets = k.Missing
	case *kind.AdditionalProperties:
		props := append([]string(nil), k.Properties...)
		sort.Strings(props)
		msgs := make([]string, len(props))
		for i, p := range props {
			msgs[i] = fmt.Sprintf("%s.%s: is not defined in the schema and the schema does not allow additional properties", path, p)
		}
		r.Message = strings.Join(msgs, "; ")
		r.Targets = props
	case *kind.Enum:
		vals := make([]string, len(k.Want))
		for i, w := range k.Want {
			b, _ := json.Marshal(w)
			vals[i] = string(b)
		}
		r.Message = fmt.Sprintf("%s: does not have a value in the enumeration [%s]", path, strings.Join(vals, ", "))
		r.Targets = vals
	case *kind.MaxLength:
		r.Message = fmt.Sprintf("%s: must be at most %d characters long", path, k.Want)
		r.Targets = []string{strconv.Itoa(k.Want)}
	case *kind.MinLength:
		r.Message = fmt.Sprintf("%s: must be at least %d characters long", path, k.Want)
		r.Targets = []string{strconv.Itoa(k.Want)}
	case *kind.Pattern:
		r.Message = fmt.Sprintf("%s: does not match the regex pattern %s", path, k.Want)
		r.Targets = []string{k.Want}
	case *kind.Format:
		r.Message = fmt.Sprintf("%s: does not match the %s pattern", path, k.Want)
		r.Targets = []string{k.Want}
	case *kind.Minimum:
		r.Message = fmt.Sprintf("%s: must have a minimum value of %s", path, ratString(k.Want))
	case *kind.Maximum:
		r.Message = fmt.Sprintf("%s: must have a maximum value of %s", path, ratString(k.Want))
	case *kind.MinItems:
		r.Message = fmt.Sprintf("%s: there must be a minimum of %d items in the array", path, k.Want)
	case *kind.MaxItems:
		r.Message = fmt.Sprintf("%s: there must be a maximum of %d items in the array", path, k.Want)
	default:
		r.Message = path + ": " + e.ErrorKind.LocalizedString(printer)
	}
	return r
}
