package jsonx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func stdDecode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, ErrSyntax
	}
	return v, nil
}

var samples = []string{
	`{}`, `[]`, `""`, `0`, `-0.5e+10`, `true`, `false`, `null`,
	`{"a":[1,2,{"b":null}],"c":"\u00e9\n\"\\\/","d":-1.25E3}`,
	` { "schema" : "iglu:a/b/c/1-0-0" , "data" : [ ] } `,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\udc00\ud83d\ude00"`, "\"\xff\xfe\"",
	`01`, `1.`, `.5`, `-`, `1e`, `{"a"}`, `{"a":1,}`, `[1,]`, `[1 2]`, `"\x"`, "\"\x01\"", `tru`, `nul`, `{"a":1}}`, `"abc`,
}

func TestAgainstEncodingJSON(t *testing.T) {
	for _, s := range samples {
		compare(t, []byte(s))
	}
}

func compare(t *testing.T, b []byte) {
	t.Helper()
	if Valid(b) != json.Valid(b) {
		t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, Valid(b), json.Valid(b))
	}
	if !json.Valid(b) {
		if _, err := Decode(b); err == nil {
			t.Fatalf("Decode(%q) accepted invalid JSON", b)
		}
		return
	}
	want, err := stdDecode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(%q): %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q)\n got %#v\nwant %#v", b, got, want)
	}
	if s, ok := want.(string); ok {
		if q := Quote(nil, s); true {
			var back string
			if err := json.Unmarshal(q, &back); err != nil || back != s {
				t.Fatalf("Quote(%q) = %s", s, q)
			}
		}
	}
}

func TestObjectAndArray(t *testing.T) {
	b := []byte(`{"x": [1, "two", {"3": 3}], "y" : "z"}`)
	var keys, vals []string
	end, err := Object(b, 0, func(k, v []byte) bool {
		keys = append(keys, string(k))
		vals = append(vals, string(v))
		return true
	})
	if err != nil || end != len(b) {
		t.Fatal(err, end)
	}
	if !reflect.DeepEqual(keys, []string{`"x"`, `"y"`}) || !reflect.DeepEqual(vals, []string{`[1, "two", {"3": 3}]`, `"z"`}) {
		t.Fatalf("%q %q", keys, vals)
	}
	var elems []string
	Array([]byte(vals[0]), 0, func(e []byte) bool { elems = append(elems, string(e)); return true })
	if !reflect.DeepEqual(elems, []string{`1`, `"two"`, `{"3": 3}`}) {
		t.Fatalf("%q", elems)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, b) })
}

func FuzzQuote(f *testing.F) {
	f.Add("a\"b\\c\n\x00\u2028é\xff")
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(nil, s)
		var back string
		if err := json.Unmarshal(q, &back); err != nil {
			t.Fatalf("Quote(%q) = %s: %v", s, q, err)
		}
		std, _ := json.Marshal(s)
		var stdBack string
		json.Unmarshal(std, &stdBack)
		if back != stdBack {
			t.Fatalf("Quote(%q) round-trips to %q, encoding/json to %q", s, back, stdBack)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	doc := []byte(`[{"e":"pv","url":"https://example.com/a","page":"A","tv":"js-3.0.0","p":"web","eid":"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11","dtm":"1700000000000","aid":"site","res":"1920x1080"}]`)
	b.Run("jsonx", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Decode(doc)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			stdDecode(doc)
		}
	})
}
