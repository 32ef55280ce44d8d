package pii

import (
	"reflect"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/jsonx"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct{ in, canon string }{
		{"$.field", "$['field']"},
		{"$.a.b", "$['a']['b']"},
		{"$.data.emailAddress2", "$['data']['emailAddress2']"},
		{"$.['clientId', 'userId']", "$['clientId','userId']"},
		{"$['a','b']", "$['a','b']"},
		{`$["a b"]`, "$['a b']"},
		{`$['it\'s']`, `$['it\'s']`},
		{"$.arr[*].x", "$['arr'][*]['x']"},
		{"$.arr[ * ]", "$['arr'][*]"},
		{"$.*", "$[*]"},
		{"$.a[0]", "$['a'][0]"},
		{"$.a[-1, 2]", "$['a'][-1,2]"},
		{"$..x", "$..['x']"},
		{"$..['x'].y", "$..['x']['y']"},
		{"$.user-id", "$['user-id']"},
		{"$.a:b", "$['a:b']"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePath(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tc.canon {
				t.Errorf("String() = %s, want %s", got, tc.canon)
			}
		})
	}
}

func TestParsePathRejects(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "must start with $"},
		{"field", "must start with $"},
		{"$", "$ alone"},
		{"$.", "ends with '.'"},
		{"$..", "ends with '..'"},
		{"$a", "expected '.' or '['"},
		{"$.a[?(@.b == 'c')]", "filter expressions"},
		{"$.a[1:3]", "slices"},
		{"$.a[:3]", "slices"},
		{"$.a.length()", "functions"},
		{"$..*", "every node"},
		{"$..['a','b']", "one property name"},
		{"$..[0]", "one property name"},
		{"$.a b", "space"},
		{"$['a'", "expected ']'"},
		{"$['a", "unterminated"},
		{"$[", "unclosed"},
		{"$[x]", "unexpected 'x'"},
		{"$.a*", "'*' inside"},
		{"$[(@.length-1)]", "script"},
		{"$...a", "unexpected '.'"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParsePath(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.msg)
			}
			if !strings.Contains(err.Error(), "supported forms") {
				t.Errorf("error does not list the supported forms: %v", err)
			}
		})
	}
}

// selected returns the decoded strings p selects in doc, in order.
func selected(t *testing.T, path, doc string) []string {
	t.Helper()
	p, err := ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sp := range p.strings([]byte(doc), nil) {
		s, ok := jsonx.String([]byte(doc[sp.start:sp.end]))
		if !ok {
			t.Fatalf("span %v is not a string in %s", sp, doc)
		}
		out = append(out, s)
	}
	return out
}

func TestPathSelects(t *testing.T) {
	doc := `{"a":"1","b":{"c":"2","d":[{"e":"3"},{"e":4},{"f":"x"},"s"]},"arr":["4",5,"6",["7"],{"a":"8"}],"n":null,"o":{"a":{"a":"9"}},"esc\u0061ped":"10"}`
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"$.a", []string{"1"}},
		{"$.b.c", []string{"2"}},
		{"$.missing", nil},
		{"$.missing.deeper", nil},
		{"$.n", nil},
		{"$.b", nil},                          // an object is not hashed
		{"$.arr", []string{"4", "6"}},         // strings directly in a selected array
		{"$.arr[*]", []string{"4", "6", "7"}}, // each element; an element array's strings
		{"$.arr[0]", []string{"4"}},
		{"$.arr[-1].a", []string{"8"}},
		{"$.arr[9]", nil},
		{"$.arr[2,0]", []string{"6", "4"}},
		{"$.b.d[*].e", []string{"3"}},
		{"$['b','a']", []string{"1"}},      // b is an object
		{"$['a','a']", []string{"1", "1"}}, // selected twice
		{"$.['a','missing']", []string{"1"}},
		{"$.*", []string{"1", "4", "6", "10"}}, // arr is an array of strings
		{"$..a", []string{"1", "8", "9"}},      // depth first, own member first
		{"$..e", []string{"3"}},
		{"$..a.a", []string{"9"}},
		{"$.escaped", []string{"10"}},
		{"$.a.b", nil},   // property of a string
		{"$.b[0]", nil},  // index of an object
		{"$.arr.a", nil}, // property of an array
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := selected(t, tc.path, doc); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzParsePath checks that parsing never panics, that a parsed path
// renders to a form parsed back to the same path, and that applying it to
// any JSON document only selects string nodes.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"$.a", "$.['a', 'b']", "$.a[*].b", "$..x", "$[0,-1]", `$["q\"x"]`, "$.*", "$.a[?(@.x)]", "$.a[1:2]", "$..", "$['"} {
		f.Add(s, `{"a":["x",{"b":"y"}],"x":{"x":"z"}}`)
	}
	f.Fuzz(func(t *testing.T, path, doc string) {
		p, err := ParsePath(path)
		if err != nil {
			if _, ok := err.(*PathError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		again, err := ParsePath(p.String())
		if err != nil {
			t.Fatalf("%q renders as %q, which does not parse: %v", path, p.String(), err)
		}
		if !reflect.DeepEqual(p.toks, again.toks) {
			t.Fatalf("%q renders as %q, which parses differently", path, p.String())
		}
		b := []byte(doc)
		if !jsonx.Valid(b) {
			return
		}
		for _, sp := range p.strings(b, nil) {
			if sp.start < 0 || sp.end > len(b) || sp.start >= sp.end || b[sp.start] != '"' {
				t.Fatalf("span %v of %q in %q is not a string", sp, path, doc)
			}
			if _, ok := jsonx.String(b[sp.start:sp.end]); !ok {
				t.Fatalf("span %v of %q in %q is not a string", sp, path, doc)
			}
		}
	})
}
