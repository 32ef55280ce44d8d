package micro

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
)

// igluCentral holds the Iglu Central schemas the tests use (see its README.md).
const igluCentral = "../../testdata/iglu-central"

func resolver(t *testing.T) *iglu.Resolver {
	t.Helper()
	central, err := iglu.NewDirRepo("Iglu Central (local copy)", igluCentral, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil), central}})
}

const (
	linkClick = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
	webPage   = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
)

// process enriches raw payloads as the pipeline would and records the
// results in a store.
func process(t *testing.T, r *iglu.Resolver, s *Store, raws ...[]byte) {
	t.Helper()
	e, err := enrich.New(enrich.Options{Resolver: r, Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0-test"}})
	if err != nil {
		t.Fatal(err)
	}
	var out enrich.Output
	for _, raw := range raws {
		e.Process(context.Background(), raw, &out)
	}
	s.Observe(out.Good, out.Bad)
}

func get(path, qs string) []byte {
	return (&payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000, Encoding: "UTF-8",
		Collector: "furrow-test", UserAgent: "Firefox/120.0", Path: path, Querystring: qs, Hostname: "collector.test",
		NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20", Headers: []string{"Host: collector.test"},
	}).Marshal()
}

func post(body string) []byte {
	return (&payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000, Encoding: "UTF-8",
		Collector: "furrow-test", Path: "/com.snowplowanalytics.snowplow/tp2", Body: body,
		ContentType: "application/json", Hostname: "collector.test",
	}).Marshal()
}

func pv(n int) []byte {
	co := `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"` + webPage + `","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}]}`
	return get("/i", fmt.Sprintf("e=pv&p=web&tv=js-3.24.0&aid=shop&page=Page%%20%d&url=https%%3A%%2F%%2Fshop.example.com%%2F&co=%s", n, urlEscape(co)))
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "=", "%3D", "+", "%2B", "#", "%23", " ", "%20")
	return r.Replace(s)
}

func click() []byte {
	ue := `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"` + linkClick + `","data":{"targetUrl":"https://example.com/next"}}}`
	b, _ := json.Marshal(ue)
	return post(`{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"ue","p":"web","tv":"js-3.24.0","ue_pr":` + string(b) + `}]}`)
}

func serve(t *testing.T, s *Store, r *iglu.Resolver) *httptest.Server {
	srv := httptest.NewServer(Handler(s, r))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

func TestAPI(t *testing.T) {
	r := resolver(t)
	s := NewStore(100)
	process(t, r, s, pv(1), click(), pv(2), []byte("not thrift"), post(`{"not":"payload_data"`))
	srv := serve(t, s, r)

	var all map[string]int
	if code := call(t, "GET", srv.URL+"/micro/all", "", &all); code != 200 || all["total"] != 5 || all["good"] != 3 || all["bad"] != 2 {
		t.Fatalf("/micro/all = %d %v, want 3 good and 2 bad", code, all)
	}

	tests := []struct {
		name, filter string
		want         []string // event types, newest first
	}{
		{"all, newest first", ``, []string{"page_view", "unstruct", "page_view"}},
		{"event type", `{"event_type":"page_view"}`, []string{"page_view", "page_view"}},
		{"schema", `{"schema":"` + linkClick + `"}`, []string{"unstruct"}},
		{"contexts", `{"contexts":["` + webPage + `"]}`, []string{"page_view", "page_view"}},
		{"limit", `{"event_type":"page_view","limit":1}`, []string{"page_view"}},
		{"no match", `{"schema":"iglu:com.acme/nothing/jsonschema/1-0-0"}`, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []GoodEvent
			method := "POST"
			if tt.filter == "" {
				method = "GET"
			}
			if code := call(t, method, srv.URL+"/micro/good", tt.filter, &got); code != 200 {
				t.Fatalf("status %d", code)
			}
			types := []string{}
			for _, g := range got {
				types = append(types, *g.EventType)
			}
			if strings.Join(types, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", types, tt.want)
			}
		})
	}

	var good []GoodEvent
	call(t, "GET", srv.URL+"/micro/good", "", &good)
	newest := good[0]
	if p := newest.RawEvent.Parameters["page"]; p == nil || *p != "Page 2" {
		t.Errorf("raw parameters of the newest event: %v", newest.RawEvent.Parameters)
	}
	if newest.RawEvent.API.Vendor != "com.snowplowanalytics.snowplow" || newest.RawEvent.API.Version != "tp1" {
		t.Errorf("api %+v", newest.RawEvent.API)
	}
	if u := newest.RawEvent.Context.UserID; u == nil || *u != "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20" {
		t.Errorf("context userId %v", u)
	}
	var ev map[string]any
	if err := json.Unmarshal(newest.Event, &ev); err != nil || ev["page_title"] != "Page 2" || ev["app_id"] != "shop" {
		t.Errorf("event JSON %s (%v)", newest.Event, err)
	}
	if !strings.Contains(newest.TSV, "\tPage 2\t") {
		t.Errorf("tsv %q", newest.TSV)
	}
	if s := good[1].Schema; s == nil || *s != linkClick {
		t.Errorf("schema of the link click: %v", s)
	}

	var bad []BadEvent
	call(t, "GET", srv.URL+"/micro/bad", "", &bad)
	if len(bad) != 2 || !strings.Contains(bad[0].Schema, "/tracker_protocol_violations/") || !strings.Contains(bad[1].Schema, "/collector_payload_format_violation/") {
		t.Fatalf("bad rows %+v", bad)
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(bad[0].Errors[0]), &row); err != nil || row["schema"] != bad[0].Schema {
		t.Errorf("errors[0] is not the bad row: %v %v", row, err)
	}
	call(t, "POST", srv.URL+"/micro/bad", `{"vendor":"com.snowplowanalytics.snowplow","version":"tp2"}`, &bad)
	if len(bad) != 1 || !strings.Contains(bad[0].Schema, "tracker_protocol_violations") {
		t.Errorf("vendor filter: %+v", bad)
	}

	if code := call(t, "POST", srv.URL+"/micro/good", `{"limit":`, nil); code != 400 {
		t.Errorf("malformed filter: status %d, want 400", code)
	}
	if code := call(t, "DELETE", srv.URL+"/micro/good", "", nil); code != 405 {
		t.Errorf("DELETE: status %d, want 405", code)
	}
	if code := call(t, "GET", srv.URL+"/micro/nothing", "", nil); code != 404 {
		t.Errorf("unknown endpoint: status %d, want 404", code)
	}

	if code := call(t, "GET", srv.URL+"/micro/reset", "", nil); code != 200 {
		t.Fatalf("reset: status %d", code)
	}
	call(t, "GET", srv.URL+"/micro/all", "", &all)
	call(t, "GET", srv.URL+"/micro/good", "", &good)
	if all["total"] != 0 || len(good) != 0 {
		t.Errorf("after reset: %v, %d good events", all, len(good))
	}
}

func TestRetentionKeepsNewestButCountsAll(t *testing.T) {
	r := resolver(t)
	s := NewStore(3)
	for i := range 10 {
		process(t, r, s, pv(i))
	}
	process(t, r, s, pv(10), pv(11)) // a batch straddling the limit
	if g, b := s.Counts(); g != 12 || b != 0 {
		t.Fatalf("counts %d, %d", g, b)
	}
	got := s.Good(GoodFilter{})
	var pages []string
	for _, g := range got {
		pages = append(pages, *g.RawEvent.Parameters["page"])
	}
	if strings.Join(pages, ",") != "Page 11,Page 10,Page 9" {
		t.Errorf("kept %v", pages)
	}
}

func TestRing(t *testing.T) {
	r := ring[int]{max: 10}
	if got := r.snapshot(); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	r.add([]int{1, 2, 3})
	if got := fmt.Sprint(r.snapshot()); got != "[1 2 3]" {
		t.Fatalf("3 items: %s", got)
	}
	for i := range 1000 {
		r.add([]int{i})
		if len(r.buf) > 10 {
			t.Fatalf("grew to %d", len(r.buf))
		}
	}
	if got := fmt.Sprint(r.snapshot()); got != "[990 991 992 993 994 995 996 997 998 999]" {
		t.Errorf("after 1000: %s", got)
	}
	r.add([]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	if got := fmt.Sprint(r.snapshot()); got != "[3 4 5 6 7 8 9 10 11 12]" {
		t.Errorf("a batch larger than max: %s", got)
	}
}

func TestIgluLookup(t *testing.T) {
	srv := serve(t, NewStore(10), resolver(t))
	var schema map[string]any
	if code := call(t, "GET", srv.URL+"/micro/iglu/com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1", "", &schema); code != 200 {
		t.Fatalf("status %d", code)
	}
	if self, _ := schema["self"].(map[string]any); self["name"] != "link_click" {
		t.Errorf("schema %v", schema)
	}
	if code := call(t, "GET", srv.URL+"/micro/iglu/com.acme/missing/jsonschema/1-0-0", "", nil); code != 404 {
		t.Errorf("missing schema: status %d", code)
	}
	if code := call(t, "GET", srv.URL+"/micro/iglu/not-a-schema", "", nil); code != 404 {
		t.Errorf("malformed path: status %d", code)
	}
}

func TestGzip(t *testing.T) {
	srv := serve(t, NewStore(10), resolver(t))
	req, _ := http.NewRequest("GET", srv.URL+"/micro/all", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if strings.TrimSpace(string(b)) != `{"bad":0,"good":0,"total":0}` {
		t.Errorf("body %s", b)
	}
}
