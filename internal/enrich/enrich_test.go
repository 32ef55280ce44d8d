package enrich

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	analytics "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"

	"github.com/furrow-io/furrow/internal/badrows"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
)

var update = flag.Bool("update", false, "rewrite golden files")

// igluCentral holds the Iglu Central schemas the tests use (see its README.md).
const igluCentral = "../../testdata/iglu-central"

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

func testResolver(t testing.TB) *iglu.Resolver {
	t.Helper()
	central, err := iglu.NewDirRepo("Iglu Central (local copy)", igluCentral, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return iglu.NewResolver(iglu.ResolverOptions{
		Repositories: []iglu.Repository{iglu.Builtin("", 0, nil), central},
		Now:          func() time.Time { return fixedNow },
	})
}

func testEnricher(t testing.TB, mod func(*Options)) *Enricher {
	t.Helper()
	var n atomic.Int64
	o := Options{
		Resolver:  testResolver(t),
		Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0-test"},
		Now:       func() time.Time { return fixedNow },
		NewUUID:   func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n.Add(1)) },
	}
	if mod != nil {
		mod(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// cp builds a collector payload as furrow's collector would.
func cp(path, qs, body string) *payload.CollectorPayload {
	p := &payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000, // 2026-01-02 03:04:05.000
		Encoding: "UTF-8", Collector: "furrow-0.0.0-test", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
		Path: path, Querystring: qs, Body: body, Hostname: "collector.test",
		NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20",
		Headers:       []string{"Host: collector.test", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},
	}
	if body != "" {
		p.ContentType = "application/json; charset=utf-8"
		p.Headers = append(p.Headers, "Content-Type: application/json; charset=utf-8", p.ContentType)
	}
	return p
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func postBody(events ...string) string {
	return `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` + strings.Join(events, ",") + `]}`
}

const (
	webPage   = `{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}`
	linkClick = `{"schema":"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1","data":{"targetUrl":"https://example.com/next","elementId":"cta"}}`
)

func ue(inner string) string {
	return `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":` + inner + `}`
}

func co(items ...string) string {
	return `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[` + strings.Join(items, ",") + `]}`
}

type testCase struct {
	name   string
	record []byte // raw record; built from payload when nil
	p      *payload.CollectorPayload
	mod    func(*Options)
}

func cases() []testCase {
	withHeaders := func(p *payload.CollectorPayload, h ...string) *payload.CollectorPayload {
		p.Headers = append(p.Headers, h...)
		return p
	}
	noNUID := func(p *payload.CollectorPayload) *payload.CollectorPayload { p.NetworkUserID = ""; return p }
	deep := strings.Repeat(`{"a":`, 41) + "1" + strings.Repeat("}", 41)
	return []testCase{
		{name: "tp1_page_view", p: cp("/i", "e=pv&url=https%3A%2F%2Fshop.example.com%3A8443%2Fa%2Fb%3Fq%3D1%23top&page=Shop%20home&refr=http%3A%2F%2Fsearch.example.org%2F%3Fq%3Dshoes&aid=shop&p=web&tv=js-3.24.0&tna=sp1&eid=1F2E3D4C-5B6A-4789-8abc-def012345678&dtm=1767323044000&stm=1767323044900&tz=Europe%2FLondon&lang=en-GB&cs=UTF-8&res=1920x1080&vp=1200x800&ds=1180x4000&cd=24&cookie=1&f_pdf=1&f_fla=0&uid=user%2B1%40example.com&duid=4b5c6d&vid=3&sid=0B7D1C6E-4E2B-4D36-9D45-2D5F0E1B8A77&fp=123456&tid=42", "")},
		{name: "tp2_get_struct", p: cp("/com.snowplowanalytics.snowplow/tp2", "e=se&se_ca=shop&se_ac=add-to-basket&se_la=red%20shoes&se_pr=size%3D9&se_va=19.990&p=mob&tv=andr-2.0.0&aid=app", "")},
		{name: "tp2_post_batch", p: cp("/com.snowplowanalytics.snowplow/tp2", "aid=from-querystring", postBody(
			`{"e":"pv","url":"https://example.com/","p":"web","tv":"js-3.24.0","aid":"body","cx":"`+b64(co(webPage))+`"}`,
			`{"e":"ue","p":"web","tv":"js-3.24.0","ue_px":"`+b64(ue(linkClick))+`","co":`+jsonString(co(webPage))+`}`,
		))},
		{name: "tp2_post_bad_content_type", p: func() *payload.CollectorPayload {
			p := cp("/com.snowplowanalytics.snowplow/tp2", "", postBody(`{"e":"pv","p":"web","tv":"t"}`))
			p.ContentType = "application/json;charset=utf-8"
			return p
		}()},
		{name: "tp2_post_unknown_param", p: cp("/com.snowplowanalytics.snowplow/tp2", "", postBody(`{"e":"pv","p":"web","tv":"t","cv":"x"}`))},
		{name: "tp2_post_not_json", p: cp("/com.snowplowanalytics.snowplow/tp2", "", `{"schema":`)},
		{name: "tp2_post_not_payload_data", p: cp("/com.snowplowanalytics.snowplow/tp2", "", `{"schema":"iglu:com.acme/other/jsonschema/1-0-0","data":[]}`)},
		{name: "tp2_empty", p: cp("/com.snowplowanalytics.snowplow/tp2", "", "")},
		{name: "unstruct_invalid", p: cp("/i", "e=ue&p=web&tv=t&ue_pr="+urlq(ue(`{"schema":"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1","data":{"elementId":3}}`)), "")},
		{name: "unstruct_unknown_schema", p: cp("/i", "e=ue&p=web&tv=t&ue_pr="+urlq(ue(`{"schema":"iglu:com.acme/missing/jsonschema/1-0-0","data":{}}`)), "")},
		{name: "unstruct_not_json", p: cp("/i", "e=ue&p=web&tv=t&ue_px=bm90IGpzb24", "")},
		{name: "context_too_deep", p: cp("/i", "e=pv&p=web&tv=t&co="+urlq(co(`{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":`+deep+`}`)), "")},
		{name: "context_one_invalid", p: cp("/i", "e=pv&p=web&tv=t&co="+urlq(co(webPage, `{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"nope"}}`)), "")},
		{name: "atomic_parse_errors", p: cp("/i", "e=pv&p=phone&tv=t&dtm=yesterday&sid=abc&vid=x&f_pdf=yes&res=big&tr_tt=1%2C5&eid=not-a-uuid", "")},
		{name: "bad_event_type", p: cp("/i", "e=zz&p=web&tv=t", "")},
		{name: "ad_impression", p: cp("/i", "e=ad&p=web&tv=t&ad_ba=1", "")},
		{name: "bad_page_url", p: cp("/i", "e=pv&p=web&tv=t&url=notaurl", "")},
		{name: "field_too_long", p: cp("/i", "e=pv&p=web&tv=t&aid="+strings.Repeat("a", 256), "")},
		{name: "field_limit_override", p: cp("/i", "e=pv&p=web&tv=t&aid="+strings.Repeat("a", 256), ""), mod: func(o *Options) { o.FieldLimits = map[string]int{"app_id": 300} }},
		{name: "unknown_vendor", p: cp("/com.acme/v9", "a=1", "")},
		{name: "tp1_empty", p: cp("/i", "", "")},
		{name: "redirect", p: cp("/r/tp2", "u=https%3A%2F%2Fexample.com%2Flanding%3Fx%3D1&aid=mail", "")},
		{name: "redirect_with_event", p: cp("/r/tp2", "u=https%3A%2F%2Fexample.com%2F&e=se&se_ca=c&se_ac=a&tv=t&co="+urlq(co(webPage)), "")},
		{name: "redirect_no_u", p: cp("/r/tp2", "aid=x", "")},
		{name: "not_thrift", record: []byte("GET /i HTTP/1.1")},
		{name: "wrong_schema", p: func() *payload.CollectorPayload {
			p := cp("/i", "e=pv", "")
			p.Schema = "iglu:com.acme/x/thrift/1-0-0"
			return p
		}()},
		{name: "bad_nuid", p: func() *payload.CollectorPayload { p := cp("/i", "e=pv", ""); p.NetworkUserID = "zzz"; return p }()},
		{name: "bad_path", p: cp("/a/b/c", "e=pv", "")},
		{name: "user_ids_and_ip", p: withHeaders(cp("/i", "e=pv&p=web&tv=t&nuid=11111111-1111-4111-8111-111111111111&tnuid=22222222-2222-4222-8222-222222222222", ""), "X-Forwarded-For: 198.51.100.7, 10.0.0.1")},
		{name: "ip_param_and_forwarded", p: withHeaders(noNUID(cp("/i", "e=pv&p=web&tv=t&ip=192.0.2.1%7C10.0.0.1", "")), "Forwarded: for=\"[2001:db8::1]:4711\"")},
		{name: "forwarded_header", p: withHeaders(noNUID(cp("/i", "e=pv&p=web&tv=t", "")), "Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43")},
		{name: "true_tstamp", p: cp("/i", "e=pv&p=web&tv=t&ttm=1767000000000&dtm=1767323040000&stm=1767323041000", "")},
		{name: "page_url_from_referer", p: func() *payload.CollectorPayload {
			p := cp("/i", "e=pv&p=web&tv=t", "")
			p.RefererURI = "https://blog.example.com/post/1?utm_source=x"
			return p
		}()},
		{name: "tabs_and_newlines", p: cp("/i", "e=pv&p=web&tv=t&page=a%09b%0Ac&aid=x%0D", "")},
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func urlq(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// render writes the output in a reviewable form: good events as their
// non-empty columns, bad rows as indented JSON.
func render(out *Output) []byte {
	var b bytes.Buffer
	for _, g := range out.Good {
		b.WriteString("GOOD\n")
		fields := strings.Split(string(g.TSV), "\t")
		for i, v := range fields {
			if v != "" {
				fmt.Fprintf(&b, "  %s = %s\n", ev.Fields[i].Name, v)
			}
		}
	}
	for _, bad := range out.Bad {
		b.WriteString("BAD\n")
		var ind bytes.Buffer
		json.Indent(&ind, bad, "  ", "  ")
		b.WriteString("  ")
		b.Write(ind.Bytes())
		b.WriteString("\n")
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	badSchemas := badRowSchemas(t)
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			e := testEnricher(t, tc.mod)
			rec := tc.record
			if rec == nil {
				rec = tc.p.Marshal()
			}
			var out Output
			e.Process(context.Background(), rec, &out)
			if len(out.Good)+len(out.Bad) == 0 {
				t.Fatal("no output")
			}
			for _, g := range out.Good {
				checkTSV(t, g.TSV)
			}
			for _, bad := range out.Bad {
				checkBadRow(t, badSchemas, bad)
			}
			checkGolden(t, filepath.Join("testdata", tc.name+".golden"), render(&out))
		})
	}
}

// checkGolden compares got with the golden file, or rewrites it with
// -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, diff(string(want), string(got)))
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d\n- %s\n+ %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// checkTSV parses an enriched line with Snowplow's Go Analytics SDK.
func checkTSV(t *testing.T, tsv []byte) {
	t.Helper()
	if n := bytes.Count(tsv, []byte("\t")) + 1; n != ev.NumFields {
		t.Fatalf("%d fields", n)
	}
	if bytes.ContainsAny(tsv, "\n\r") {
		t.Fatal("newline in TSV")
	}
	parsed, err := analytics.ParseEvent(string(tsv))
	if err != nil {
		t.Fatalf("analytics SDK: %v", err)
	}
	if _, err := parsed.ToJson(); err != nil {
		t.Fatalf("analytics SDK ToJson: %v", err)
	}
	id, err := parsed.GetValue("event_id")
	if err != nil || !ValidUUID(id.(string)) {
		t.Fatalf("event_id %v %v", id, err)
	}
}

func badRowSchemas(t *testing.T) *iglu.Resolver {
	repo, err := iglu.NewDirRepo("central", igluCentral, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{repo}})
}

// checkBadRow validates a bad row against its schema in Iglu Central.
func checkBadRow(t *testing.T, r *iglu.Resolver, row []byte) {
	t.Helper()
	sdj, err := iglu.ParseSelfDescribing(row)
	if err != nil {
		t.Fatalf("bad row is not self-describing: %v", err)
	}
	schema, err := r.Lookup(context.Background(), sdj.Key)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := iglu.Decode(sdj.Data)
	if err := schema.Validate(v); err != nil {
		t.Fatalf("bad row does not validate against %s: %v\n%s", sdj.Key, err, row)
	}
}
