package pseudo

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/testutil"
)

var testKey = []byte("furrow-test-key-0123456789abcdef")

// ref is HMAC-SHA256 computed by the standard library, to check against.
func ref(key []byte, v string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

func testPolicy(t testing.TB, mod func(*Config)) *Policy {
	t.Helper()
	c := Default()
	c.Enabled, c.KeyEnv = true, "X"
	if mod != nil {
		mod(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(c, testKey)
}

// RFC 4231 section 4: the HMAC-SHA-256 test vectors.
func TestRFC4231(t *testing.T) {
	rep := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	seq := make([]byte, 25)
	for i := range seq {
		seq[i] = byte(i + 1)
	}
	for _, tc := range []struct {
		name      string
		key, data []byte
		want      string
	}{
		{"1", rep(0x0b, 20), []byte("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{"2", []byte("Jefe"), []byte("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{"3", rep(0xaa, 20), rep(0xdd, 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
		{"4", seq, rep(0xcd, 50), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
		{"5 (first 128 bits)", rep(0x0c, 20), []byte("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b"},
		{"6", rep(0xaa, 131), []byte("Test Using Larger Than Block-Size Key - Hash Key First"), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
		{"7", rep(0xaa, 131), []byte("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, entries := range []int{0, 16} {
				h := NewHasher(tc.key, entries)
				got := h.String(string(tc.data))
				got2 := h.String(string(tc.data)) // from the cache, when on
				if !strings.HasPrefix(got, tc.want) || got2 != got || len(got) != Size {
					t.Fatalf("cache %d: got %s, want %s", entries, got, tc.want)
				}
			}
		})
	}
}

func TestHasherAgreesWithCryptoHMAC(t *testing.T) {
	h := NewHasher(testKey, 4) // a tiny cache: generations turn over
	for i := 0; i < 300; i++ {
		v := strings.Repeat(string(rune('a'+i%26)), i)
		if got := h.String(v); got != ref(testKey, v) {
			t.Fatalf("%d bytes: %s, want %s", i, got, ref(testKey, v))
		}
		if got := string(h.Append(nil, v)); got != ref(testKey, v) {
			t.Fatalf("Append, %d bytes", i)
		}
	}
}

func TestFields(t *testing.T) {
	ps := func(v string) string { return ref(testKey, v) }
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		field int
		in    string
		want  string
	}{
		{"user_id hashed", nil, ev.UserID, "alice@example.com", ps("alice@example.com")},
		{"ip hashed", nil, ev.UserIPAddress, "203.0.113.9", ps("203.0.113.9")},
		{"domain_userid hashed", nil, ev.DomainUserID, "4b5c6d", ps("4b5c6d")},
		{"useragent hashed", nil, ev.UserAgent, "Mozilla/5.0", ps("Mozilla/5.0")},
		{"page_url hashed whole", nil, ev.PageURL, "https://a.example/p?t=1", ps("https://a.example/p?t=1")},
		{"page_urlhost hashed", nil, ev.PageURLHost, "a.example", ps("a.example")},
		{"null stays null", nil, ev.UserID, "", ""},
		{"app_id kept", nil, ev.AppID, "shop", "shop"},
		{"event_id kept", nil, ev.EventID, "1f2e3d4c-5b6a-4789-8abc-def012345678", "1f2e3d4c-5b6a-4789-8abc-def012345678"},
		{"timestamp kept", nil, ev.CollectorTstamp, "2026-01-02 03:04:05.678", "2026-01-02 03:04:05.678"},
		{"viewport kept", nil, ev.BrViewwidth, "1200", "1200"},
		{"typed not allowed: null", nil, ev.GeoLatitude, "51.5", ""},
		{"allow_extra keeps", func(c *Config) { c.AllowExtra = []string{"user_id"} }, ev.UserID, "u1", "u1"},
		{"allow replaces", func(c *Config) { c.Allow = []string{"event_id"} }, ev.AppID, "shop", ps("shop")},
		{"allow replaces: typed column nulled", func(c *Config) { c.Allow = []string{"event_id"} }, ev.DvceScreenwidth, "1920", ""},
		{"keep_path: url", func(c *Config) { c.URLs = URLsKeepPath }, ev.PageURL,
			"https://a.example/p/q?email=a%40b.c&t=x#frag", "https://a.example/p/q?email=" + ps("a%40b.c") + "&t=" + ps("x") + "#" + ps("frag")},
		{"keep_path: host kept", func(c *Config) { c.URLs = URLsKeepPath }, ev.PageURLHost, "a.example", "a.example"},
		{"keep_path: path kept", func(c *Config) { c.URLs = URLsKeepPath }, ev.RefrURLPath, "/search", "/search"},
		{"keep_path: query", func(c *Config) { c.URLs = URLsKeepPath }, ev.PageURLQuery, "q=1&flag&e=", "q=" + ps("1") + "&" + ps("flag") + "&e="},
		{"keep_path: fragment", func(c *Config) { c.URLs = URLsKeepPath }, ev.RefrURLFragment, "top", ps("top")},
		{"keep_path: referrer", func(c *Config) { c.URLs = URLsKeepPath }, ev.PageReferrer, "http://s.example/?q=shoes", "http://s.example/?q=" + ps("shoes")},
		{"keep_path: userinfo", func(c *Config) { c.URLs = URLsKeepPath }, ev.PageURL, "https://bob:pw@a.example/", "https://" + ps("bob:pw") + "@a.example/"},
		{"keep_path: title still hashed", func(c *Config) { c.URLs = URLsKeepPath }, ev.PageTitle, "Bob's page", ps("Bob's page")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy(t, tc.mod)
			if got := p.Field(tc.field, tc.in); got != tc.want {
				t.Fatalf("%s %q: got %q, want %q", ev.Fields[tc.field].Name, tc.in, got, tc.want)
			}
		})
	}
}

// Every string column outside the allowlist is a 64-character lowercase
// hex pseudonym; every other is kept or null.
func TestFieldsEveryColumn(t *testing.T) {
	p := testPolicy(t, nil)
	var f [ev.NumFields]string
	for i := range f {
		f[i] = "v" + ev.Fields[i].Name
	}
	p.Fields(&f)
	for i, v := range f {
		name := ev.Fields[i].Name
		switch {
		case ev.Fields[i].Type == ev.JSON:
			if v != "v"+name {
				t.Errorf("%s: JSON column changed by Fields", name)
			}
		case p.Keeps(i):
			if v != "v"+name {
				t.Errorf("%s: allowed but changed", name)
			}
		case ev.Fields[i].Type != ev.String:
			if v != "" {
				t.Errorf("%s: typed column not allowed should be null, got %q", name, v)
			}
		case v != ref(testKey, "v"+name):
			t.Errorf("%s: got %q", name, v)
		}
	}
}

func entity(t *testing.T, p *Policy, schema, data string) string {
	t.Helper()
	k, err := iglu.ParseSchemaKey(schema)
	if err != nil {
		t.Fatal(err)
	}
	sdj := iglu.SelfDescribing{Key: k, Data: []byte(data)}
	if err := p.Entity(&sdj); err != nil {
		t.Fatal(err)
	}
	return string(sdj.Data)
}

func TestEntity(t *testing.T) {
	ps := func(v string) string { return `"` + ref(testKey, v) + `"` }
	const acme = "iglu:com.acme/user/jsonschema/1-0-2"
	rules := func(paths ...string) func(*Config) {
		return func(c *Config) { c.JSON = []JSONRule{{Schema: "iglu:com.acme/user/jsonschema/1-*-*", Allow: paths}} }
	}
	for _, tc := range []struct {
		name, schema, in, want string
		mod                    func(*Config)
	}{
		{"no rule: every leaf", acme, `{"email":"a@b.c","age":42,"vip":true,"x":null,"tags":["a","b"],"o":{"k":1.5}}`,
			`{"email":` + ps("a@b.c") + `,"age":` + ps("42") + `,"vip":` + ps("true") + `,"x":null,"tags":[` + ps("a") + `,` + ps("b") + `],"o":{"k":` + ps("1.5") + `}}`, nil},
		{"member kept", acme, `{"plan":"pro","email":"a@b.c"}`, `{"plan":"pro","email":` + ps("a@b.c") + `}`, rules("$.plan")},
		{"subtree kept", acme, `{"o":{"a":1,"b":[true]},"p":"x"}`, `{"o":{"a":1,"b":[true]},"p":` + ps("x") + `}`, rules("$.o")},
		{"bracket and union", acme, `{"a b":"1","c":"2","d":"3"}`, `{"a b":"1","c":"2","d":` + ps("3") + `}`, rules(`$['a b','c']`)},
		{"array wildcard", acme, `{"items":[{"sku":"s1","who":"w"},{"sku":"s2"}]}`,
			`{"items":[{"sku":"s1","who":` + ps("w") + `},{"sku":"s2"}]}`, rules("$.items[*].sku")},
		{"array index", acme, `{"l":["a","b"]}`, `{"l":["a",` + ps("b") + `]}`, rules("$.l[0]")},
		{"member wildcard", acme, `{"m":{"x":"1","y":"2"},"n":"3"}`, `{"m":{"x":"1","y":"2"},"n":` + ps("3") + `}`, rules("$.m.*")},
		{"whole entity", acme, `{"a":"1"}`, `{"a":"1"}`, rules("$")},
		{"other schema untouched by rule", "iglu:com.acme/order/jsonschema/1-0-0", `{"plan":"p"}`, `{"plan":` + ps("p") + `}`, rules("$.plan")},
		{"other major untouched by rule", "iglu:com.acme/user/jsonschema/2-0-0", `{"plan":"p"}`, `{"plan":` + ps("p") + `}`, rules("$.plan")},
		{"escaped string: unescaped text hashed", acme, `{"s":"a\"b\u00e9"}`, `{"s":` + ps("a\"bé") + `}`, nil},
		{"default rule: web_page id", "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0", `{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}`,
			`{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}`, nil},
		{"empty object and array", acme, `{"o":{},"a":[]}`, `{"o":{},"a":[]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy(t, tc.mod)
			if got := entity(t, p, tc.schema, tc.in); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestEntityBadJSON(t *testing.T) {
	p := testPolicy(t, nil)
	for _, in := range []string{``, `{`, `{"a":}`, `[1,]`, `"unterminated`, `nul`, strings.Repeat("[", 200) + strings.Repeat("]", 200)} {
		sdj := iglu.SelfDescribing{Key: iglu.SchemaKey{Vendor: "com.acme", Name: "x", Format: "jsonschema", Version: iglu.SchemaVer{Model: 1}}, Data: []byte(in)}
		if err := p.Entity(&sdj); err == nil {
			t.Errorf("%q: no error, got %s", in, sdj.Data)
		}
	}
}

func TestParsePathErrors(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"a.b", "starts with $"},
		{"$..a", "recursive descent"},
		{"$.", "empty member name"},
		{"$[?(@.a)]", "not supported"},
		{"$[1:2]", "not supported"},
		{"$[-1]", "not supported"},
		{"$['a'", "unclosed ["},
		{"$['a]", "unclosed"},
		{"$['']", "empty member name"},
		{"$.a b", "special characters"},
		{"$x", "unexpected"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, err := parsePath(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	neg := -1
	c := Config{Enabled: true, Allow: []string{"app_id", "user_idx", "contexts"}, AllowExtra: []string{"nope"},
		URLs: "strip", JSON: []JSONRule{{Schema: "iglu:com.acme/user/1-*-*", Allow: []string{"$..x"}}, {Schema: "iglu:com.acme/u/jsonschema/1-*-*"}},
		CacheEntries: &neg, KeyID: "a\"b"}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"pseudonymize.key_file or key_env: one is required",
		`pseudonymize.allow: "user_idx" is not one of the 131 enriched fields`,
		`pseudonymize.allow: "contexts" is a JSON field`,
		`pseudonymize.allow_extra: "nope"`,
		"pseudonymize.allow: event_id must stay in clear",
		`pseudonymize.urls: "strip"`,
		"pseudonymize.json[0].schema",
		"pseudonymize.json[0].allow: \"$..x\": recursive descent",
		"pseudonymize.json[1].allow: no paths",
		"pseudonymize.cache_entries",
		"pseudonymize.key_id",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	both := Config{Enabled: true, KeyFile: "f", KeyEnv: "E"}
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), "set one, not both") {
		t.Errorf("both: %v", err)
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("off: %v", err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	key32 := strings.Repeat("k", 32)
	t.Setenv("FURROW_TEST_KEY", key32+"\n")
	t.Setenv("FURROW_SHORT_KEY", "short")
	for _, tc := range []struct {
		name    string
		c       Config
		want    string // key, or error text
		err     bool
		warning string
	}{
		{"file, newline removed", Config{KeyFile: write("k1", key32+"\n", 0o600)}, key32, false, ""},
		{"file, only one newline removed", Config{KeyFile: write("k2", key32+"\n\n", 0o600)}, key32 + "\n", false, ""},
		{"file world-readable warns", Config{KeyFile: write("k3", key32, 0o644)}, key32, false, "every user can read the key"},
		{"file group-readable warns", Config{KeyFile: write("k4", key32, 0o640)}, key32, false, "group members"},
		{"file too short", Config{KeyFile: write("k5", "abc\n", 0o600)}, "holds 3 bytes; a key has at least 32", true, ""},
		{"file missing", Config{KeyFile: filepath.Join(dir, "none")}, "pseudonymize.key_file", true, ""},
		{"file is a directory", Config{KeyFile: dir}, "is a directory", true, ""},
		{"env: bytes as they are", Config{KeyEnv: "FURROW_TEST_KEY"}, key32 + "\n", false, ""},
		{"env missing", Config{KeyEnv: "FURROW_NO_SUCH_VAR"}, "FURROW_NO_SUCH_VAR is not set", true, ""},
		{"env too short", Config{KeyEnv: "FURROW_SHORT_KEY"}, "holds 5 bytes", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, warns, err := tc.c.LoadKey()
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || string(key) != tc.want {
				t.Fatalf("key %q err %v", key, err)
			}
			if tc.warning == "" && len(warns) > 0 || tc.warning != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warning)) {
				t.Fatalf("warnings %q, want %q", warns, tc.warning)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	p := testPolicy(t, nil)
	if want := "k-" + ref(testKey, "furrow key id")[:12]; p.KeyID() != want {
		t.Fatalf("default key id %s, want %s", p.KeyID(), want)
	}
	p = testPolicy(t, func(c *Config) { c.KeyID = "2026-12" })
	if p.KeyID() != "2026-12" || string(p.KeyEntity().Data) != `{"keyId":"2026-12"}` {
		t.Fatalf("%s %s", p.KeyID(), p.KeyEntity().Data)
	}
	var col struct {
		Data []struct {
			Schema string          `json:"schema"`
			Data   json.RawMessage `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(p.KeyColumn()), &col); err != nil || len(col.Data) != 1 || col.Data[0].Schema != KeySchema {
		t.Fatalf("key column %s: %v", p.KeyColumn(), err)
	}
}

func TestParamsAndHeaders(t *testing.T) {
	ps := func(v string) string { return ref(testKey, v) }
	p := testPolicy(t, nil)
	p.SetParams(map[string]int{"aid": ev.AppID, "uid": ev.UserID})
	for _, tc := range []struct{ name, in, want string }{
		{"aid", "shop", "shop"},
		{"uid", "alice@example.com", ps("alice@example.com")},
		{"unknown", "x", ps("x")},
		{"co", `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:com.acme/u/jsonschema/1-0-0","data":{"e":"a@b"}}]}`,
			`{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:com.acme/u/jsonschema/1-0-0","data":{"e":"` + ps("a@b") + `"}}]}`},
		{"co", "not json", ps("not json")},
	} {
		if got := p.Param(tc.name, tc.in); got != tc.want {
			t.Errorf("%s=%s: got %s, want %s", tc.name, tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"Cookie: sp=abc", "Cookie: " + ps("sp=abc")},
		{"X-Forwarded-For: 203.0.113.9", "X-Forwarded-For: " + ps("203.0.113.9")},
		{"Content-Type: application/json", "Content-Type: application/json"},
		{"accept-language: en", "accept-language: en"},
		{"garbage", ps("garbage")},
	} {
		if got := p.Header(tc.in); got != tc.want {
			t.Errorf("%s: got %s", tc.in, got)
		}
	}
}

// FuzzEntity: the rewriter either refuses its input or writes valid
// JSON in which no string leaf of the input survives (with no rule).
func FuzzEntity(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `[1,true,null,"x"]`, `{"a":{"b":[{"c":"\u00e9"}]}}`, `"s"`, `1e5`, `{}`, `[]`, `{"a":`} {
		f.Add(s)
	}
	p := NewHasher(testKey, 0)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := p.appendJSON(nil, []byte(in), nil, 0)
		if err != nil {
			return
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%q gave invalid JSON %q: %v", in, out, err)
		}
		var walk func(any)
		walk = func(x any) {
			switch y := x.(type) {
			case map[string]any:
				for _, e := range y {
					walk(e)
				}
			case []any:
				for _, e := range y {
					walk(e)
				}
			case string:
				if len(y) != Size {
					t.Fatalf("%q: leaf %q is not a pseudonym", in, y)
				}
			case nil:
			default:
				t.Fatalf("%q: leaf %v left in clear", in, y)
			}
		}
		walk(v)
	})
}

// FuzzParsePath: parsing never panics, and a parsed path inserts.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"$", "$.a", "$['a','b'].c[*]", "$[0]", "$..a", "$[?(@)]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		paths, err := parsePath(s)
		if err != nil {
			return
		}
		n := &node{}
		for _, p := range paths {
			n.insert(p)
		}
	})
}

// The key's entity validates against furrow's schema for it, which the
// built-in Iglu repository serves.
func TestKeyEntityValidates(t *testing.T) {
	r := iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil)}})
	for _, id := range []string{"", "2026-12", strings.Repeat("x", 64)} {
		p := testPolicy(t, func(c *Config) { c.KeyID = id })
		e := p.KeyEntity()
		s, err := r.Lookup(context.Background(), e.Key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := iglu.Decode(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); err != nil {
			t.Fatalf("%s: %v", e.Data, err)
		}
	}
}

// FuzzBadRow: rewriting any input as a bad row never panics, and what it
// accepts comes out as valid JSON.
func FuzzBadRow(f *testing.F) {
	for _, s := range []string{
		`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0","data":{"payload":"uid=a@b"}}`,
		`{"schema":"x","data":{"payload":{"querystring":[{"name":"uid","value":"a"}],"headers":["Cookie: x"],"body":"{}"},"failure":{"messages":[{"field":"uid","value":"a","json":{"x":1}}]}}}`,
		`{"data":{"payload":{"raw":{"parameters":[{"name":"co","value":"{\"schema\":\"iglu:a/b/jsonschema/1-0-0\",\"data\":{}}"}]},"enriched":{"user_id":"u","contexts":"x","geo_latitude":1.5}}}}`,
		`{"data":[]}`, `[]`, `{`,
	} {
		f.Add(s)
	}
	p := testPolicy(f, nil)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := p.BadRow([]byte(in))
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q gave invalid JSON %q", in, out)
		}
	})
}

// The bad rows the collector and the log write (size violations, damage
// reports) and undecodable payloads carry raw text: it is pseudonymized
// whole, and the rows still validate against Iglu Central's schemas.
func TestBadRowOpaquePayloads(t *testing.T) {
	validate := testutil.BadRowValidator(t, "../../testdata/iglu-central")
	p := testPolicy(t, nil)
	proc := badrows.Processor{Artifact: "furrow", Version: "0.0.0-test"}
	raw := "GET /i?uid=alice%40example.com&ip=203.0.113.9 HTTP/1.1"
	for _, row := range [][]byte{
		badrows.SizeViolation(proc, time.Now(), 1000, 2000, "too big", raw),
		badrows.GenericError(proc, time.Now(), []string{"log damage at offset 4096"}, base64.StdEncoding.EncodeToString([]byte(raw))),
		badrows.CPFormatViolation(proc, time.Now(), badrows.CPFormatMessage{Error: "not thrift"}, base64.StdEncoding.EncodeToString([]byte(raw))),
	} {
		out, err := p.BadRow(row)
		if err != nil {
			t.Fatal(err)
		}
		validate(out)
		if bytes.Contains(out, []byte("alice")) || bytes.Contains(out, []byte(base64.StdEncoding.EncodeToString([]byte(raw))[:20])) {
			t.Errorf("clear payload in %s", out)
		}
		var doc struct {
			Data struct {
				Payload string `json:"payload"`
			} `json:"data"`
		}
		if err := json.Unmarshal(out, &doc); err != nil || len(doc.Data.Payload) != Size {
			t.Errorf("payload %q is not a pseudonym (%v)", doc.Data.Payload, err)
		}
	}
}
