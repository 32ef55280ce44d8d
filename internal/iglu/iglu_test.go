package iglu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// igluCentral holds the Iglu Central schemas the tests use (see its README.md).
const igluCentral = "../../testdata/iglu-central"

// fullIgluCentral names a complete copy of Iglu Central (a directory
// holding schemas/), for the tests that cover the whole registry. .ci/run
// sets it when the copy is there; without it those tests cover igluCentral.
const fullIgluCentral = "FURROW_IGLU_CENTRAL"

func TestParseSchemaKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // URI or error code
	}{
		{"iglu:com.acme/event/jsonschema/1-0-0", "iglu:com.acme/event/jsonschema/1-0-0"},
		{"iglu:com.acme-x_y/ev_ent-2/jsonschema/12-3-40", "iglu:com.acme-x_y/ev_ent-2/jsonschema/12-3-40"},
		{"iglu:com.acme/event/jsonschema/0-1-0", "INVALID_SCHEMAVER"},
		{"iglu:com.acme/event/jsonschema/1-01-0", "INVALID_SCHEMAVER"},
		{"iglu:com.acme/event/jsonschema/1-0", "INVALID_IGLUURI"},
		{"iglu:com.acme/event/jsonschema/a-b-c", "INVALID_IGLUURI"},
		{"iglu:com.acme/ev.ent/jsonschema/1-0-0", "INVALID_IGLUURI"},
		{"com.acme/event/jsonschema/1-0-0", "INVALID_IGLUURI"},
		{"iglu:com.acme/event/1-0-0", "INVALID_IGLUURI"},
		{"iglu:/event/jsonschema/1-0-0", "INVALID_IGLUURI"},
	} {
		k, err := ParseSchemaKey(tc.in)
		got := ""
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%s: %T", tc.in, err)
			}
			got = pe.Code
		} else {
			got = k.URI()
		}
		if got != tc.want {
			t.Errorf("%s: got %s want %s", tc.in, got, tc.want)
		}
	}
}

func TestCriterion(t *testing.T) {
	k, _ := ParseSchemaKey("iglu:com.acme/e/jsonschema/1-2-3")
	for c, want := range map[string]bool{
		"iglu:com.acme/e/jsonschema/1-*-*": true,
		"iglu:com.acme/e/jsonschema/1-2-*": true,
		"iglu:com.acme/e/jsonschema/1-2-3": true,
		"iglu:com.acme/e/jsonschema/*-*-*": true,
		"iglu:com.acme/e/jsonschema/2-*-*": false,
		"iglu:com.acme/e/jsonschema/1-0-*": false,
		"iglu:com.acme/f/jsonschema/1-*-*": false,
		"iglu:com.acm/e/jsonschema/1-*-*":  false,
	} {
		cr, err := ParseCriterion(c)
		if err != nil {
			t.Fatal(err)
		}
		if cr.Matches(k) != want {
			t.Errorf("%s matches %s = %v", c, k, !want)
		}
		if cr.String() != c {
			t.Errorf("String() = %s", cr.String())
		}
	}
	for _, bad := range []string{"iglu:a/b/c/1-*", "a/b/c/1-*-*", "iglu:a/b/c/x-*-*"} {
		if _, err := ParseCriterion(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// The built-in protocol schemas were written for furrow; they must accept
// and reject exactly what the published Iglu Central versions do.
// furrow's own (vendor io.furrow) are checked where they are used.
func TestBuiltinSchemasMatchIgluCentral(t *testing.T) {
	repo := Builtin("", 0, nil)
	err := fs.WalkDir(repo.fsys, "schemas", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(p, "schemas/io.furrow/") {
			return nil // furrow's own schemas are in no other registry
		}
		key, err := ParseSchemaPath(strings.TrimPrefix(p, "schemas/"))
		if err != nil {
			return err
		}
		ours, _ := fs.ReadFile(repo.fsys, p)
		theirs, err := os.ReadFile(filepath.Join(igluCentral, p))
		if err != nil {
			return err
		}
		var a, b map[string]any
		json.Unmarshal(ours, &a)
		json.Unmarshal(theirs, &b)
		for _, m := range []map[string]any{a, b} {
			delete(m, "description")
			if items, ok := m["items"].(map[string]any); ok {
				delete(items, "description")
			}
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s differs from Iglu Central", key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every schema in Iglu Central must compile: all of the registry when
// $FURROW_IGLU_CENTRAL names a full copy, the schemas under testdata otherwise.
func TestAllIgluCentralSchemasCompile(t *testing.T) {
	dir, atLeast := igluCentral, 1
	if full := os.Getenv(fullIgluCentral); full != "" {
		dir, atLeast = full, 500
	}
	n := 0
	root := filepath.Join(dir, "schemas")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		key, err := ParseSchemaPath(filepath.ToSlash(rel))
		if err != nil || key.Format != "jsonschema" {
			return nil
		}
		raw, _ := os.ReadFile(p)
		refs := func(k SchemaKey) ([]byte, error) { return os.ReadFile(filepath.Join(root, k.Path())) }
		if _, err := CompileSchema(key, raw, refs); err != nil {
			t.Errorf("%v", err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < atLeast {
		t.Fatalf("only %d schemas found under %s", n, root)
	}
	t.Logf("compiled %d schemas", n)
}

func mustSchema(t *testing.T, doc string) *Schema {
	t.Helper()
	k, _ := ParseSchemaKey("iglu:com.acme/test/jsonschema/1-0-0")
	s, err := CompileSchema(k, []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidationReports(t *testing.T) {
	s := mustSchema(t, `{
		"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
		"self": {"vendor":"com.acme","name":"test","format":"jsonschema","version":"1-0-0"},
		"type":"object",
		"properties":{
			"quantity":{"type":"integer","minimum":1,"maximum":9},
			"name":{"type":"string","maxLength":3},
			"color":{"enum":["red","blue"]},
			"id":{"type":"string","format":"uuid"},
			"code":{"type":"string","pattern":"^[A-Z]+$"},
			"items":{"type":"array","items":{"type":"string"}}
		},
		"required":["name"],
		"additionalProperties":false}`)
	for _, tc := range []struct {
		doc     string
		keyword string
		path    string
		message string
	}{
		{`{"name":"a","quantity":"2"}`, "type", "$.quantity", "$.quantity: string found, integer expected"},
		{`{}`, "required", "$", "$.name: is missing but it is required"},
		{`{"name":"a","x":1}`, "additionalProperties", "$", "$.x: is not defined in the schema and the schema does not allow additional properties"},
		{`{"name":"abcd"}`, "maxLength", "$.name", "$.name: must be at most 3 characters long"},
		{`{"name":"a","color":"green"}`, "enum", "$.color", `$.color: does not have a value in the enumeration ["red", "blue"]`},
		{`{"name":"a","id":"nope"}`, "format", "$.id", "$.id: does not match the uuid pattern"},
		{`{"name":"a","code":"abc"}`, "pattern", "$.code", "$.code: does not match the regex pattern ^[A-Z]+$"},
		{`{"name":"a","quantity":0}`, "minimum", "$.quantity", "$.quantity: must have a minimum value of 1"},
		{`{"name":"a","quantity":10}`, "maximum", "$.quantity", "$.quantity: must have a maximum value of 9"},
		{`{"name":"a","items":["x",2]}`, "type", "$.items[1]", "$.items[1]: integer found, string expected"},
	} {
		v, err := Decode([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Validate(v)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Reports) != 1 {
			t.Errorf("%s: got %v", tc.doc, err)
			continue
		}
		r := ve.Reports[0]
		if r.Keyword != tc.keyword || r.Path != tc.path || r.Message != tc.message {
			t.Errorf("%s:\n got %+v\nwant keyword=%s path=%s message=%s", tc.doc, r, tc.keyword, tc.path, tc.message)
		}
	}
	v, _ := Decode([]byte(`{"name":"abc","quantity":3,"color":"red","id":"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11","code":"AB","items":[]}`))
	if err := s.Validate(v); err != nil {
		t.Fatalf("valid document rejected: %v", err)
	}
}

func TestJavaOnlyPatternIsNotFatal(t *testing.T) {
	s := mustSchema(t, `{"type":"string","pattern":"^(?!x).*$"}`)
	if err := s.Validate("anything"); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaSelfMismatch(t *testing.T) {
	k, _ := ParseSchemaKey("iglu:com.acme/test/jsonschema/1-0-0")
	_, err := CompileSchema(k, []byte(`{"self":{"vendor":"com.acme","name":"other","format":"jsonschema","version":"1-0-0"},"type":"object"}`), nil)
	var se *SchemaError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	if _, err := CompileSchema(k, []byte(`[1]`), nil); err == nil {
		t.Fatal("array accepted as a schema")
	}
}

func TestParseSelfDescribing(t *testing.T) {
	sdj, err := ParseSelfDescribing([]byte(` { "schema" : "iglu:com.acme/e/jsonschema/1-0-0", "data" : { "a" : [1, 2] , "b":"x y" } } `))
	if err != nil {
		t.Fatal(err)
	}
	if sdj.Key.Name != "e" || string(sdj.Data) != `{"a":[1,2],"b":"x y"}` {
		t.Fatalf("got %+v %s", sdj.Key, sdj.Data)
	}
	for doc, code := range map[string]string{
		`[]`:                                           "",
		`{"schema":"iglu:a/b/c/1-0-0"}`:                "",
		`{"data":{}}`:                                  "",
		`{"schema":1,"data":{}}`:                       "",
		`{"schema":"iglu:a/b/c/0-0-0","data":1}`:       "INVALID_SCHEMAVER",
		`{"schema":"nope","data":1}`:                   "INVALID_IGLUURI",
		`{"schema":"iglu:a/b/c/1-0-0","data":1,"x":2}`: "",
	} {
		_, err := ParseSelfDescribing([]byte(doc))
		var ni *NotIgluError
		if !errors.As(err, &ni) || ni.Code != code {
			t.Errorf("%s: err = %v", doc, err)
		}
	}
}

func TestDepth(t *testing.T) {
	for doc, want := range map[string]int{`1`: 0, `{}`: 1, `{"a":[{"b":"[[[["}]}`: 3, `[[[]],[]]`: 3} {
		if got := Depth([]byte(doc)); got != want {
			t.Errorf("Depth(%s) = %d want %d", doc, got, want)
		}
	}
}

// fakeRepo records lookups and answers from a map.
type fakeRepo struct {
	repoMeta
	class   int
	schemas map[string]string
	fail    bool
	calls   atomic.Int32
}

func (f *fakeRepo) Class() int { return f.class }
func (f *fakeRepo) Lookup(_ context.Context, k SchemaKey) ([]byte, error) {
	f.calls.Add(1)
	if f.fail {
		return nil, &LookupFailure{FailRepo, "boom"}
	}
	if s, ok := f.schemas[k.Path()]; ok {
		return []byte(s), nil
	}
	return nil, ErrNotFound
}

func TestResolverOrder(t *testing.T) {
	k, _ := ParseSchemaKey("iglu:com.acme/e/jsonschema/1-0-0")
	mk := func(name string, class, prio int, prefixes ...string) *fakeRepo {
		return &fakeRepo{repoMeta: repoMeta{name, prio, prefixes}, class: class}
	}
	repos := []Repository{
		mk("http-low", 1, 0),
		mk("local-high", 0, 5),
		mk("http-prefix", 1, 9, "com.acme"),
		mk("local-low", 0, 1),
		mk("local-other-prefix", 0, 0, "org.other"),
	}
	r := NewResolver(ResolverOptions{Repositories: repos})
	var got []string
	for _, rp := range r.ordered(k) {
		got = append(got, rp.Name())
	}
	want := []string{"http-prefix", "local-other-prefix", "local-low", "local-high", "http-low"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v want %v", got, want)
	}
}

const tinySchema = `{"self":{"vendor":"com.acme","name":"e","format":"jsonschema","version":"1-0-0"},"type":"object"}`

func TestResolverHTTPCacheAndHistory(t *testing.T) {
	var hits atomic.Int32
	var gotKey atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotKey.Store(r.Header.Get("apikey"))
		switch r.URL.Path {
		case "/api/schemas/com.acme/e/jsonschema/1-0-0":
			fmt.Fprint(w, tinySchema)
		case "/api/schemas/com.acme/broken/jsonschema/1-0-0":
			w.WriteHeader(500)
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	r := NewResolver(ResolverOptions{
		Repositories: []Repository{NewHTTPRepo("server", srv.URL+"/api/", "k-123", 0, nil, srv.Client())},
		CacheTTL:     time.Minute, NegativeTTL: 5 * time.Second, Now: clock,
	})
	ctx := context.Background()
	good, _ := ParseSchemaKey("iglu:com.acme/e/jsonschema/1-0-0")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Lookup(ctx, good); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if hits.Load() != 1 {
		t.Fatalf("%d requests for one schema", hits.Load())
	}
	if gotKey.Load() != "k-123" {
		t.Fatalf("apikey header %v", gotKey.Load())
	}
	advance(2 * time.Minute)
	r.Lookup(ctx, good)
	if hits.Load() != 2 {
		t.Fatalf("TTL expiry did not refetch: %d", hits.Load())
	}

	missing, _ := ParseSchemaKey("iglu:com.acme/missing/jsonschema/1-0-0")
	_, err := r.Lookup(ctx, missing)
	var re *ResolutionError
	if !errors.As(err, &re) || !re.NotFoundEverywhere() || re.History[0].Attempts != 1 {
		t.Fatalf("err = %#v", err)
	}
	r.Lookup(ctx, missing)
	if hits.Load() != 3 {
		t.Fatalf("not-found was not cached: %d", hits.Load())
	}
	advance(6 * time.Second)
	r.Lookup(ctx, missing)
	if hits.Load() != 4 {
		t.Fatalf("not-found cached past NegativeTTL: %d", hits.Load())
	}

	broken, _ := ParseSchemaKey("iglu:com.acme/broken/jsonschema/1-0-0")
	_, err = r.Lookup(ctx, broken)
	if !errors.As(err, &re) || re.NotFoundEverywhere() || re.History[0].Attempts != repoAttempts || re.History[0].Errors[0].Kind != FailRepo {
		t.Fatalf("err = %#v", err)
	}
}

func TestResolverLRU(t *testing.T) {
	repo := &fakeRepo{class: 0, schemas: map[string]string{}}
	for i := 0; i < 3; i++ {
		repo.schemas[fmt.Sprintf("com.acme/e%d/jsonschema/1-0-0", i)] = fmt.Sprintf(`{"type":"object","description":"%d"}`, i)
	}
	r := NewResolver(ResolverOptions{Repositories: []Repository{repo}, CacheSize: 2})
	key := func(i int) SchemaKey {
		k, _ := ParseSchemaKey(fmt.Sprintf("iglu:com.acme/e%d/jsonschema/1-0-0", i))
		return k
	}
	ctx := context.Background()
	r.Lookup(ctx, key(0))
	r.Lookup(ctx, key(1))
	r.Lookup(ctx, key(0)) // 0 is now most recent
	r.Lookup(ctx, key(2)) // evicts 1
	r.Lookup(ctx, key(0))
	if repo.calls.Load() != 3 {
		t.Fatalf("calls = %d", repo.calls.Load())
	}
	r.Lookup(ctx, key(1))
	if repo.calls.Load() != 4 {
		t.Fatalf("evicted schema served from cache: calls = %d", repo.calls.Load())
	}
}

func TestParseResolverConfig(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "schemas"), 0o755)
	cfg := fmt.Sprintf(`{"schema":"iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
	 "data":{"cacheSize":100,"cacheTtl":600,"repositories":[
	  {"name":"Iglu Central","priority":0,"vendorPrefixes":["com.snowplowanalytics"],"connection":{"http":{"uri":"http://iglucentral.com"}}},
	  {"name":"Private","priority":1,"vendorPrefixes":["com.acme"],"connection":{"http":{"uri":"https://iglu.acme.test/api","apikey":"k"}}},
	  {"name":"Local","priority":0,"vendorPrefixes":[],"connection":{"embedded":{"path":%q}}},
	  {"name":"Built in","priority":0,"vendorPrefixes":[],"connection":{"embedded":{"path":"/iglu-client-embedded"}}}]}}`, dir)
	o, err := ParseResolverConfig([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.CacheSize != 100 || o.CacheTTL != 10*time.Minute || len(o.Repositories) != 4 {
		t.Fatalf("%+v", o)
	}
	if h := o.Repositories[1].(*HTTPRepo); h.apiKey != "k" || h.base != "https://iglu.acme.test/api" {
		t.Fatalf("%+v", h)
	}
	for name, bad := range map[string]string{
		"wrong schema": `{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"cacheSize":1,"repositories":[]}}`,
		"no cacheSize": `{"schema":"iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1","data":{"repositories":[]}}`,
		"unknown key":  `{"schema":"iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1","data":{"cacheSize":1,"repositories":[],"x":1}}`,
		"missing dir":  `{"schema":"iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1","data":{"cacheSize":1,"repositories":[{"name":"a","priority":0,"vendorPrefixes":[],"connection":{"embedded":{"path":"/nonexistent"}}}]}}`,
		"both":         `{"schema":"iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1","data":{"cacheSize":1,"repositories":[{"name":"a","priority":0,"vendorPrefixes":[],"connection":{"embedded":{"path":"/"},"http":{"uri":"http://x"}}}]}}`,
	} {
		if _, err := ParseResolverConfig([]byte(bad), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDirRepoWithIgluCentral(t *testing.T) {
	repo, err := NewDirRepo("central", igluCentral, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(ResolverOptions{Repositories: []Repository{repo}})
	k, _ := ParseSchemaKey("iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0")
	s, err := r.Lookup(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := Decode([]byte(`{"id":"not-a-uuid"}`))
	var ve *ValidationError
	if err := s.Validate(v); !errors.As(err, &ve) || ve.Reports[0].Keyword != "pattern" {
		t.Fatalf("err = %v", err)
	}
	v, _ = Decode([]byte(`{"id":"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11"}`))
	if err := s.Validate(v); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDirRepo("x", t.TempDir(), 0, nil); err == nil {
		t.Fatal("directory without schemas/ accepted")
	}
}

func FuzzParseSchemaKey(f *testing.F) {
	for _, s := range []string{"iglu:com.acme/e/jsonschema/1-0-0", "iglu:a/b/c/0-1-2", "iglu:a/b/c/1-*-*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSchemaKey(s)
		if err != nil {
			return
		}
		if k.URI() != s {
			t.Fatalf("%q parsed to %q", s, k.URI())
		}
	})
}

func FuzzParseSelfDescribing(f *testing.F) {
	f.Add([]byte(`{"schema":"iglu:com.acme/e/jsonschema/1-0-0","data":{"a":1}}`))
	f.Add([]byte(`{"schema":"iglu:com.acme/e/jsonschema/1-0-0","data":[ 1 , "\" " ]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sdj, err := ParseSelfDescribing(b)
		if err != nil {
			return
		}
		if !json.Valid(sdj.Data) {
			t.Fatalf("data not valid JSON: %q", sdj.Data)
		}
		if needsCompact(sdj.Data) {
			t.Fatalf("data not compact: %q", sdj.Data)
		}
	})
}

func BenchmarkValidatePayloadData(b *testing.B) {
	r := NewResolver(ResolverOptions{Repositories: []Repository{Builtin("", 0, nil)}})
	k, _ := ParseSchemaKey("iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4")
	s, err := r.Lookup(context.Background(), k)
	if err != nil {
		b.Fatal(err)
	}
	doc := []byte(`[{"e":"pv","url":"https://example.com/a","page":"A","tv":"js-3.0.0","p":"web","eid":"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11","dtm":"1700000000000","stm":"1700000000100","tz":"Europe/London","lang":"en-GB","res":"1920x1080","vp":"1200x800","cs":"UTF-8","cookie":"1","aid":"site","duid":"a1b2","sid":"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a12","vid":"3"}]`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		v, _ := Decode(doc)
		if err := s.Validate(v); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = sort.Strings
