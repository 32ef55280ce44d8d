package enrich

import (
	"bytes"
	"context"
	"github.com/furrow-io/furrow/internal/pseudo"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
)

func TestParseQuery(t *testing.T) {
	got := ParseQuery("e=pv&url=http%3A%2F%2Fa.b%2F%3Fx%3D1&page=a+b&bad=%zz%4&flag&=x&&dup=1&dup=2&utf=%E2%82%AC&latin=%E9")
	want := []Param{
		{Name: "e", Value: "pv"},
		{Name: "url", Value: "http://a.b/?x=1"},
		{Name: "page", Value: "a b"},
		{Name: "bad", Value: "%zz%4"},
		{Name: "flag", Null: true},
		{Name: "dup", Value: "2"},
		{Name: "utf", Value: "€"},
		{Name: "latin", Value: "\uFFFD"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if ParseQuery("") != nil {
		t.Fatal("empty querystring gave params")
	}
}

func TestParseAPI(t *testing.T) {
	for path, want := range map[string]string{
		"/i": "com.snowplowanalytics.snowplow/tp1", "/ice.png": "com.snowplowanalytics.snowplow/tp1",
		"/com.snowplowanalytics.snowplow/tp2": "com.snowplowanalytics.snowplow/tp2",
		"/com.acme/v1/":                       "com.acme/v1", "/r/tp2": "r/tp2",
		"/a/b/c": "", "/": "", "/only": "", "//x": "",
	} {
		v, ver, ok := ParseAPI(path)
		got := ""
		if ok {
			got = v + "/" + ver
		}
		if got != want {
			t.Errorf("%s: got %q want %q", path, got, want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	want := `{"a":"?>~"}`
	for _, enc := range []string{
		"eyJhIjoiPz5+In0=",   // standard, padded
		"eyJhIjoiPz5-In0",    // URL-safe, unpadded
		"eyJhIjoiPz5+In0",    // standard, unpadded
		"eyJh\nIjoiPz5-In0=", // with a newline
	} {
		got, err := decodeBase64(enc)
		if err != nil || string(got) != want {
			t.Errorf("%q: %q %v", enc, got, err)
		}
	}
	if _, err := decodeBase64("!!!"); err == nil {
		t.Error("garbage decoded")
	}
}

func TestExplodeURI(t *testing.T) {
	for raw, want := range map[string]string{
		"https://a.example/p?q=1#f":          "https|a.example|443|/p|q=1|f",
		"http://a.example":                   "http|a.example|80|||",
		"HTTP://A.example:8080/x%20y":        "http|A.example|8080|/x%20y||",
		"https://a.example/s p?q=a b|c#x y":  "https|a.example|443|/s%20p|q=a%20b%7Cc|x%20y",
		"android-app://com.example.app/path": "android-app|com.example.app|80|/path||",
		"ftp://[2001:db8::1]:21/":            "ftp|2001:db8::1|21|/||",
	} {
		p, ok := explodeURI(raw)
		got := strings.Join([]string{p.scheme, p.host, p.port, p.path, p.query, p.fragment}, "|")
		if !ok || got != want {
			t.Errorf("%s: got %q (ok=%v) want %q", raw, got, ok, want)
		}
	}
	for _, bad := range []string{"", "notaurl", "/relative/path", "http://a.example:99999/"} {
		if _, ok := explodeURI(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// explodePlainURI must give what net/url does, for every URL it takes.
func FuzzExplodeURI(f *testing.F) {
	for _, s := range []string{
		"https://a.example/p?q=1#f", "http://a.example", "http://A.Example:8080/x%20y?", "https://a.example/a%2Fb/%41?x=%ZZ#",
		"https://shop.example.com/products/shoes?color=red&size=%5B42%5D#top", "http://a.example:0080/", "http://a.example:65536/",
		"http://a.example?x?y#z#w", "http://a.example:/p", "http://a.example/p%", "http://a.example/p%4", "http://u@a.example/",
		"http://a_b.example/", "http://a.example/(x)", "http://[::1]:80/", "https://a.example/s p", "http://a.example#f%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := explodePlainURI(s)
		if !ok {
			return
		}
		slow, ok := parseURI(s)
		if !ok || fast != slow {
			t.Fatalf("%q: plain %+v, net/url %+v (ok=%v)", s, fast, slow, ok)
		}
	})
}

func TestExplodePlainURI(t *testing.T) {
	for s, want := range map[string]bool{
		"https://shop.example.com/products/shoes?color=red": true,
		"http://a.example:8080/a%2Fb?q=%E2%82%AC#top":       true,
		"http://a.example":                   true,
		"HTTP://a.example/":                  false, // scheme case: net/url
		"http://a.example/s p":               false, // encoded first: net/url
		"http://u@a.example/":                false,
		"http://[::1]/":                      false,
		"http://a.example:99999/":            false,
		"http://a.example/%zz":               false,
		"android-app://com.example.app/path": false,
	} {
		if _, ok := explodePlainURI(s); ok != want {
			t.Errorf("%q: plain %v, want %v", s, ok, want)
		}
	}
}

func TestNormalizeDecimal(t *testing.T) {
	for in, want := range map[string]string{"19.990": "19.990", "+3": "3", "-0.5": "-0.5", "1e3": "1000", "2.5E-2": "0.025", " 7 ": "7"} {
		if got, ok := normalizeDecimal(in); !ok || got != want {
			t.Errorf("%q: got %q %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "abc", "1,5", "NaN", "Infinity", "1.2.3", "1e999", "."} {
		if _, ok := normalizeDecimal(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDerivedTimestamp(t *testing.T) {
	c, cr, s := "2026-01-02 03:04:05.000", "2026-01-02 03:00:00.000", "2026-01-02 03:00:02.500"
	for _, tc := range []struct{ collector, created, sent, trueTs, want string }{
		{c, cr, s, "", "2026-01-02 03:04:02.500"},
		{c, cr, s, "2020-01-01 00:00:00.000", "2020-01-01 00:00:00.000"},
		{c, s, cr, "", c}, // sent before created: clock went backwards
		{c, "", s, "", c},
		{c, cr, "", "", c},
	} {
		if got := derivedTimestamp(tc.collector, tc.created, tc.sent, tc.trueTs); got != tc.want {
			t.Errorf("%+v: got %s", tc, got)
		}
	}
}

func TestMsToTimestamp(t *testing.T) {
	for in, want := range map[string]string{"0": "1970-01-01 00:00:00.000", "1767323045123": "2026-01-02 03:04:05.123", "-1000": "1969-12-31 23:59:59.000"} {
		if got, ok := msToTimestamp(in); !ok || got != want {
			t.Errorf("%s: %s %v", in, got, ok)
		}
	}
	for _, bad := range []string{"253402300800000", "-62167219200001", "1.5", "x"} {
		if _, ok := msToTimestamp(bad); ok {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestStepsRunAndFail(t *testing.T) {
	e := testEnricher(t, func(o *Options) {
		o.Steps = []Step{stepFunc{id: "upper", fn: func(e *Event) error {
			e.F[0] = strings.ToUpper(e.F[0])
			if e.F[0] == "FAIL" {
				return &StepError{Field: "app_id", Value: e.F[0], Expectation: "not FAIL"}
			}
			return nil
		}}}
	})
	var out Output
	e.Process(context.Background(), cp("/i", "e=pv&p=web&tv=t&aid=shop", "").Marshal(), &out)
	e.Process(context.Background(), cp("/i", "e=pv&p=web&tv=t&aid=fail", "").Marshal(), &out)
	if len(out.Good) != 1 || !strings.HasPrefix(string(out.Good[0].TSV), "SHOP\t") {
		t.Fatalf("good: %d", len(out.Good))
	}
	if len(out.Bad) != 1 || !strings.Contains(string(out.Bad[0]), `"enrichment":{"schemaKey":"iglu:com.acme/upper/jsonschema/1-0-0","identifier":"upper"}`) {
		t.Fatalf("bad: %s", out.Bad)
	}
}

type stepFunc struct {
	id string
	fn func(*Event) error
}

func (s stepFunc) ID() badrowsEnrichmentID {
	return badrowsEnrichmentID{SchemaKey: "iglu:com.acme/" + s.id + "/jsonschema/1-0-0", Identifier: s.id}
}
func (s stepFunc) Enrich(_ context.Context, e *Event) error { return s.fn(e) }

func TestOptionsValidate(t *testing.T) {
	r := testResolver(t)
	for name, o := range map[string]Options{
		"no resolver":  {},
		"no processor": {Resolver: r},
		"bad limit":    {Resolver: r, Processor: testProcessor, FieldLimits: map[string]int{"nope": 3}},
		"int limit":    {Resolver: r, Processor: testProcessor, FieldLimits: map[string]int{"txn_id": 3}},
		"zero limit":   {Resolver: r, Processor: testProcessor, FieldLimits: map[string]int{"app_id": 0}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("e=pv&url=http%3A%2F%2Fa&x&=y&%zz=%")
	f.Fuzz(func(t *testing.T, qs string) {
		got := ParseQuery(qs)
		for _, p := range got {
			if p.Name == "" {
				t.Fatal("empty name")
			}
			if !utf8.ValidString(p.Name) || !utf8.ValidString(p.Value) {
				t.Fatalf("invalid UTF-8 in %+v", p)
			}
		}
		if want := parseQueryReference(qs); !slices.Equal(got, want) {
			t.Fatalf("ParseQuery(%q)\n got %+v\nwant %+v", qs, got, want)
		}
	})
}

// parseQueryReference is ParseQuery written plainly: each part decoded on
// its own, a repeated name found by scanning everything kept so far.
func parseQueryReference(qs string) []Param {
	var params []Param
	for _, part := range strings.Split(qs, "&") {
		if part == "" {
			continue
		}
		name, value, hasEq := strings.Cut(part, "=")
		name = unescape(name)
		if name == "" {
			continue
		}
		p := Param{Name: name, Value: unescape(value), Null: !hasEq}
		if i := slices.IndexFunc(params, func(q Param) bool { return q.Name == name }); i >= 0 {
			params[i] = p
		} else {
			params = append(params, p)
		}
	}
	return params
}

// FuzzProcess feeds arbitrary querystrings and bodies through the whole
// enricher: every input must give exactly good events or bad rows, and
// every good event must be a well-formed 131-column line.
func FuzzProcess(f *testing.F) {
	e := testEnricher(f, nil)
	f.Add("/i", "e=pv&p=web&tv=t&url=http%3A%2F%2Fa.b%2F", "")
	f.Add("/com.snowplowanalytics.snowplow/tp2", "", postBody(`{"e":"ue","p":"web","tv":"t","ue_pr":"{}"}`))
	f.Add("/r/tp2", "u=http%3A%2F%2Fx", "")
	f.Fuzz(func(t *testing.T, path, qs, body string) {
		var out Output
		e.Process(context.Background(), cp(path, qs, body).Marshal(), &out)
		if len(out.Good)+len(out.Bad) == 0 {
			t.Fatal("no output")
		}
		for _, g := range out.Good {
			if n := strings.Count(string(g.TSV), "\t"); n != 130 {
				t.Fatalf("%d tabs", n)
			}
			if strings.ContainsAny(string(g.TSV), "\n\r") {
				t.Fatal("newline in TSV")
			}
			// The loader rejects lines whose columns do not fit their
			// types; the enricher must never produce one.
			if err := event.Check(g.TSV); err != nil {
				t.Fatalf("enriched line fails the loader's check: %v\n%s", err, g.TSV)
			}
		}
	})
}

// BenchmarkProcess enriches a GET page view and a POST self-describing
// event with a context, with pseudonymization off and on (with its cache,
// with Micro's raw event, and with the cache off: every value new). Each
// variant's enricher is built in its own sub-benchmark, so that one
// variant's memory (a policy's cache) is not scanned by the GC of another.
func BenchmarkProcess(b *testing.B) {
	zero := 0
	enrichers := []struct {
		name string
		mod  func(*Options)
	}{
		{"pseudo=off", nil},
		{"pseudo=on", func(o *Options) { o.Pseudonymize = testPolicy(nil) }},
		{"pseudo=on_micro", func(o *Options) { o.Pseudonymize, o.KeepRaw = testPolicy(nil), true }},
		{"pseudo=on_nocache", func(o *Options) {
			o.Pseudonymize = testPolicy(func(c *pseudo.Config) { c.CacheEntries = &zero })
		}},
	}
	for name, p := range map[string]string{
		"get_page_view": string(cp("/i", "e=pv&url=https%3A%2F%2Fshop.example.com%2Fa%2Fb%3Fq%3D1&page=Shop&refr=http%3A%2F%2Fsearch.example.org%2F%3Fq%3Dshoes&aid=shop&p=web&tv=js-3.24.0&tna=sp1&eid=1f2e3d4c-5b6a-4789-8abc-def012345678&dtm=1767323044000&stm=1767323044900&tz=Europe%2FLondon&lang=en-GB&cs=UTF-8&res=1920x1080&vp=1200x800&ds=1180x4000&cd=24&cookie=1&duid=4b5c6d&vid=3&sid=0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77", "").Marshal()),
		"post_ue_with_context": string(cp("/com.snowplowanalytics.snowplow/tp2", "", postBody(
			`{"e":"ue","p":"web","tv":"js-3.24.0","aid":"shop","url":"https://shop.example.com/a","dtm":"1767323044000","stm":"1767323044900","eid":"1f2e3d4c-5b6a-4789-8abc-def012345678","ue_px":"`+b64(ue(linkClick))+`","cx":"`+b64(co(webPage))+`"}`)).Marshal()),
	} {
		rec := []byte(p)
		for _, en := range enrichers {
			b.Run(name+"/"+en.name, func(b *testing.B) {
				e := testEnricher(b, en.mod)
				runtime.GC()
				b.ResetTimer()
				var out Output
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					out.Reset()
					e.Process(context.Background(), rec, &out)
					if len(out.Good) != 1 {
						b.Fatalf("bad: %s", out.Bad)
					}
				}
			})
		}
	}
}

type badrowsEnrichmentID = badrows.EnrichmentID

var testProcessor = badrows.Processor{Artifact: "furrow", Version: "0.0.0"}

// BenchmarkParseQuery decodes the querystring of a browser page view.
func BenchmarkParseQuery(b *testing.B) {
	qs := "e=pv&p=web&tv=js-3.24.0&tna=sp&aid=loadtest&eid=6ec62173-a7e7-46ec-8564-000000000002" +
		"&url=https%3A%2F%2Fshop.example.com%2Fproducts%2Fshoes%3Fcolor%3Dred&page=Red%20shoes" +
		"&refr=https%3A%2F%2Fsearch.example.org%2F%3Fq%3Dshoes&res=1920x1080&vp=1200x800&cd=24" +
		"&tz=Europe%2FLondon&lang=en-GB&cs=UTF-8&cookie=1&duid=4b5c6d7e&vid=3" +
		"&sid=0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77&dtm=1767323044000&stm=1767323044100"
	b.ReportAllocs()
	for b.Loop() {
		if len(ParseQuery(qs)) != 21 {
			b.Fatal("wrong parameter count")
		}
	}
}

// tsvClean agrees with a byte-by-byte check for every byte value at
// every position of strings up to 17 bytes, on clean backgrounds of
// ASCII and of high bytes.
func TestTSVClean(t *testing.T) {
	slow := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				return false
			}
		}
		return true
	}
	for _, bg := range []byte{'a', 0x20, 0x7e, 0x80, 0xff} {
		for n := 0; n <= 17; n++ {
			for pos := 0; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					b := bytes.Repeat([]byte{bg}, n)
					b[pos] = byte(c)
					if got, want := tsvClean(string(b)), slow(string(b)); got != want {
						t.Fatalf("tsvClean(%q) = %v, want %v", b, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkTSVClean(b *testing.B) {
	s := "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
	b.SetBytes(int64(len(s)))
	for range b.N {
		if !tsvClean(s) {
			b.Fatal("not clean")
		}
	}
}

// event_id is the tracker's eid when it is a valid UUID; otherwise, and
// only then, a new one is generated.
func TestEventID(t *testing.T) {
	var generated int
	e := testEnricher(t, func(o *Options) {
		o.NewUUID = func() string { generated++; return "00000000-0000-4000-8000-00000000000a" }
	})
	for _, tc := range []struct {
		qs, want string
		bad      bool
		calls    int
	}{
		{"e=pv&p=web&tv=t&eid=1F2E3D4C-5B6A-4789-8ABC-DEF012345678", "1f2e3d4c-5b6a-4789-8abc-def012345678", false, 0},
		{"e=pv&p=web&tv=t", "00000000-0000-4000-8000-00000000000a", false, 1},
		{"e=pv&p=web&tv=t&eid=nope", "00000000-0000-4000-8000-00000000000a", true, 1},
	} {
		generated = 0
		var out Output
		e.Process(context.Background(), cp("/i", tc.qs, "").Marshal(), &out)
		if tc.bad {
			if len(out.Good) != 0 || len(out.Bad) != 1 || !strings.Contains(string(out.Bad[0]), `"event_id":"`+tc.want+`"`) {
				t.Errorf("%s: good %d, bad %q", tc.qs, len(out.Good), out.Bad)
			}
		} else if len(out.Good) != 1 || out.Good[0].Event.F[event.EventID] != tc.want {
			t.Errorf("%s: %d good, bad %q", tc.qs, len(out.Good), out.Bad)
		}
		if generated != tc.calls {
			t.Errorf("%s: %d ids generated, want %d", tc.qs, generated, tc.calls)
		}
	}
}
