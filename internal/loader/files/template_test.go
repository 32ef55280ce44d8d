package files

import (
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func TestParseTemplate(t *testing.T) {
	k := SchemaKey{Vendor: "com.acme", Name: "thing", Format: "jsonschema", Model: "2"}
	for _, tc := range []struct {
		tmpl   string
		schema bool
		want   string // rendered, or the error's text
		err    bool
	}{
		{"", false, "", false},
		{DefaultGoodPartition, false, "2026/03/04/05", false},
		{DefaultBadPartition, true, "com.acme.thing/model=2/2026/03/04/05", false},
		{"date={yyyy}-{MM}-{dd}/time={HH}{mm}{ss}", false, "date=2026-03-04/time=050607", false},
		{"{vendor}.{schema}/model={model}/{format}", true, "com.acme.thing/model=2/jsonschema", false},
		{"plain", false, "plain", false},
		{"{vendor}", false, "only be partitioned by date and time", true},
		{"{yyyy}/{model}", false, "only be partitioned by date and time", true},
		{"{YYYY}", false, "unknown placeholder {YYYY}", true},
		{"{week}", true, "unknown placeholder {week}", true},
		{"{}", true, "unknown placeholder {}", true},
		{"{yyyy", false, "{ without }", true},
		{"{yy{yy}", false, "{ without }", true},
		{"yyyy}", false, "} without {", true},
		{"/{yyyy}", false, "must not start or end with /", true},
		{"{yyyy}/", false, "must not start or end with /", true},
		{"{yyyy}//{MM}", false, "empty path segment", true},
		{"../{yyyy}", false, `".." not allowed`, true},
		{"a/./b", false, `"." not allowed`, true},
		{`a\b`, false, `not allowed`, true},
		{"a\nb", false, `not allowed`, true},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			p, err := ParseTemplate(tc.tmpl, tc.schema)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(p.Render(nil, at, k)); got != tc.want {
				t.Fatalf("rendered %q, want %q", got, tc.want)
			}
			if p.String() != tc.tmpl {
				t.Fatalf("String %q", p.String())
			}
		})
	}
}

func TestRenderUnsafeSchema(t *testing.T) {
	p, err := ParseTemplate(DefaultBadPartition, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{
		"iglu:../../etc/x/jsonschema/1-0-0",
		"iglu:a/b/c",
		"not a schema",
		"",
		"iglu:com.x/a b/jsonschema/1-0-0",
		"iglu:./../jsonschema/1-0-0",
	} {
		got := string(p.Render(nil, at, parseSchema(uri)))
		if strings.Contains(got, "..") || strings.Contains(got, " ") || strings.HasPrefix(got, "/") {
			t.Errorf("%q renders to %q", uri, got)
		}
	}
	if got := string(p.Render(nil, at, parseSchema("not a schema"))); got != "unknown.unknown/model=-1/2026/03/04/05" {
		t.Errorf("unparsable schema renders to %q", got)
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"", DefaultGoodPartition, DefaultBadPartition, "{", "}", "a/{b}/c", "{vendor}.{schema}/{ss}", "../x", "a//b"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, schema bool) {
		p, err := ParseTemplate(s, schema)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("String %q, want %q", p.String(), s)
		}
		for _, k := range []SchemaKey{{"com.acme", "x", "jsonschema", "1"}, {"..", "/", "", "a/b"}, {}} {
			r := string(p.Render(nil, at, k))
			if s == "" {
				if r != "" {
					t.Fatalf("empty template renders %q", r)
				}
				continue
			}
			if err := checkPath(r); err != nil || strings.HasPrefix(r, "/") || strings.HasSuffix(r, "/") || r == "" {
				t.Fatalf("%q renders to unsafe %q (%v)", s, r, err)
			}
			if err := checkKey(r + "/f.gz"); err != nil {
				t.Fatalf("%q renders to %q: %v", s, r, err)
			}
		}
	})
}
