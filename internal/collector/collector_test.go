package collector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/testutil"
)

type memSink struct {
	mu   sync.Mutex
	recs [][]byte
	err  error
}

func (m *memSink) Write(_ context.Context, recs ...[]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	for _, r := range recs {
		m.recs = append(m.recs, append([]byte(nil), r...))
	}
	return nil
}
func (m *memSink) Close(context.Context) error { return nil }
func (m *memSink) Healthy() bool               { return m.err == nil }

func (m *memSink) payloads(t *testing.T) []*payload.CollectorPayload {
	t.Helper()
	var out []*payload.CollectorPayload
	for _, r := range m.recs {
		p, err := payload.Unmarshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func newCollector(t testing.TB, mod func(*Config)) (*Collector, *memSink, *memSink) {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	good, bad := &memSink{}, &memSink{}
	c, err := New(Options{
		Config: cfg, Good: good, Bad: bad, Name: "furrow-0.0.0-test",
		Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0"},
		Registry:  prometheus.NewRegistry(), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, good, bad
}

// do sends one request to c over HTTP, on a new connection to the
// server NewServer builds (in memory, with client address
// 192.0.2.10:5555), and reads the whole response. The request is written
// by net/http and the response parsed by it; a write that fails because
// the server answered early (413) is not an error.
func do(c *Collector, method, target string, body string, hdr ...string) *http.Response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return doReader(c, method, target, rd, hdr...)
}

// doReader is do with the body from rd: one whose length net/http cannot
// tell is sent chunked.
func doReader(c *Collector, method, target string, rd io.Reader, hdr ...string) *http.Response {
	ln := listenerFor(c)
	conn, err := ln.DialWithLocalAddr(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5555})
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	r, err := http.NewRequest(method, "http://example.com"+target, rd)
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", "") // none rather than Go's default
	}
	go r.Write(conn)
	resp, err := http.ReadResponse(bufio.NewReader(conn), r)
	if err != nil {
		panic(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

var (
	serversMu sync.Mutex
	servers   = map[*Collector]*fasthttputil.InmemoryListener{}
)

// listenerFor starts c's server on an in-memory listener, once per
// collector.
func listenerFor(c *Collector) *fasthttputil.InmemoryListener {
	serversMu.Lock()
	defer serversMu.Unlock()
	if ln, ok := servers[c]; ok {
		return ln
	}
	ln := fasthttputil.NewInmemoryListener()
	go c.NewServer(c.Handle, DefaultServerOptions()).Serve(ln)
	servers[c] = ln
	return ln
}

func readBody(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }

func TestPixel(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	for _, path := range []string{"/i?e=pv&p=web", "/ice.png?e=pv", "/com.acme/v1?x=1", "/com.snowplowanalytics.snowplow/tp2?e=pv"} {
		resp := do(c, "GET", path, "", "User-Agent", "UA/1", "Referer", "https://ref.example/", "Origin", "https://site.example")
		body := readBody(resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || len(body) != 43 || body != string(pixel) {
			t.Fatalf("%s: %d %s %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if resp.Header.Get("Cache-Control") != "no-cache, no-store, must-revalidate" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://site.example" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("%s: headers %v", path, resp.Header)
		}
	}
	ps := good.payloads(t)
	if len(ps) != 4 {
		t.Fatalf("%d payloads", len(ps))
	}
	p := ps[0]
	if p.Schema != payload.SchemaURI || p.Path != "/i" || p.Querystring != "e=pv&p=web" || p.IPAddress != "192.0.2.10" ||
		p.Timestamp != now.UnixMilli() || p.Encoding != "UTF-8" || p.Collector != "furrow-0.0.0-test" ||
		p.UserAgent != "UA/1" || p.RefererURI != "https://ref.example/" || p.Hostname != "example.com" ||
		p.Body != "" || p.ContentType != "" || len(p.NetworkUserID) != 36 {
		t.Fatalf("payload %+v", p)
	}
	if ps[2].Path != "/com.acme/v1" || ps[1].Path != "/ice.png" {
		t.Fatalf("paths %s %s", ps[1].Path, ps[2].Path)
	}
	// HEAD answers the same headers without a body.
	resp := do(c, "HEAD", "/i?e=pv", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
}

func TestPost(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"t"}]}`
	resp := do(c, "POST", "/com.snowplowanalytics.snowplow/tp2?aid=x", body, "Content-Type", "Application/JSON; charset=UTF-8", "Cookie", "sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11; other=1")
	if resp.StatusCode != 200 || readBody(resp) != "ok" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	p := good.payloads(t)[0]
	if p.Body != body || p.ContentType != "application/json; charset=utf-8" || p.Querystring != "aid=x" ||
		p.NetworkUserID != "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11" {
		t.Fatalf("%+v", p)
	}
	want := []string{"Host: example.com", "Content-Length: " + strconv.Itoa(len(body)), "Content-Type: Application/JSON; charset=UTF-8", "Cookie: sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11;other=1", "application/json; charset=utf-8"}
	if strings.Join(p.Headers, "|") != strings.Join(want, "|") {
		t.Fatalf("headers %q", p.Headers)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11; Expires=Thu, 04 Mar 2027 05:06:07 GMT; Path=/; Secure; HttpOnly; SameSite=None") {
		t.Fatalf("Set-Cookie %q", sc)
	}
}

func TestNetworkUserIDPrecedence(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	do(c, "GET", "/i?nuid=11111111-1111-4111-8111-111111111111", "", "Cookie", "sp=22222222-2222-4222-8222-222222222222")
	do(c, "GET", "/i?e=pv", "", "Cookie", "sp=22222222-2222-4222-8222-222222222222")
	do(c, "GET", "/i?e=pv&nuid=11111111-1111-4111-8111-111111111111", "", "SP-Anonymous", "*", "Cookie", "sp=22222222-2222-4222-8222-222222222222")
	ps := good.payloads(t)
	if ps[0].NetworkUserID != "11111111-1111-4111-8111-111111111111" || ps[1].NetworkUserID != "22222222-2222-4222-8222-222222222222" || ps[2].NetworkUserID != anonymousNUID {
		t.Fatalf("%s %s %s", ps[0].NetworkUserID, ps[1].NetworkUserID, ps[2].NetworkUserID)
	}
}

func TestAnonymous(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	resp := do(c, "GET", "/i?e=pv", "", "SP-Anonymous", "*", "X-Forwarded-For", "198.51.100.1", "X-Real-Ip", "198.51.100.2", "Cookie", "sp=abc", "Accept", "*/*")
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "sp=; Expires=Tue, 04 Mar 2025 05:06:07 GMT;") {
		t.Fatalf("cookie not cleared: %q", sc)
	}
	resp = do(c, "GET", "/i?e=pv", "", "sp-anonymous", "1")
	if sc := resp.Header.Get("Set-Cookie"); sc != "" {
		t.Fatalf("cookie set for anonymous request without cookie: %q", sc)
	}
	p := good.payloads(t)[0]
	if p.IPAddress != "unknown" || p.NetworkUserID != anonymousNUID {
		t.Fatalf("%+v", p)
	}
	for _, h := range p.Headers {
		if strings.HasPrefix(h, "X-Forwarded-For") || strings.HasPrefix(h, "X-Real-Ip") || strings.HasPrefix(h, "Cookie") {
			t.Fatalf("identifying header kept: %q", p.Headers)
		}
	}
}

func TestForwardedFor(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	do(c, "GET", "/i?e=pv", "", "X-Forwarded-For", " 198.51.100.4 , 10.0.0.1")
	untrusting, good2, _ := newCollector(t, func(c *Config) { c.TrustForwardedFor = false })
	do(untrusting, "GET", "/i?e=pv", "", "X-Forwarded-For", "198.51.100.4")
	if ip := good.payloads(t)[0].IPAddress; ip != "198.51.100.4" {
		t.Fatal(ip)
	}
	if ip := good2.payloads(t)[0].IPAddress; ip != "192.0.2.10" {
		t.Fatal(ip)
	}
}

func TestCookieDomains(t *testing.T) {
	c, _, _ := newCollector(t, func(c *Config) {
		c.Cookie.Domains = []string{"acme.com", "acme.org"}
		c.Cookie.FallbackDomain = "fallback.net"
		c.Cookie.ClientCookieName = "sp_client"
		c.Cookie.SameSite = "lax"
	})
	for origin, domain := range map[string]string{
		"https://www.acme.org":                 "acme.org",
		"https://acme.com":                     "acme.com",
		"https://evil-acme.com":                "fallback.net",
		"https://x.other.net https://acme.com": "acme.com",
		"":                                     "fallback.net",
	} {
		resp := do(c, "GET", "/i?e=pv", "", "Origin", origin)
		cookies := resp.Header.Values("Set-Cookie")
		if len(cookies) != 2 || !strings.Contains(cookies[0], "; Domain="+domain+";") || !strings.HasSuffix(cookies[0], "HttpOnly; SameSite=Lax") {
			t.Fatalf("origin %q: %q", origin, cookies)
		}
		if !strings.HasPrefix(cookies[1], "sp_client=") || strings.Contains(cookies[1], "HttpOnly") {
			t.Fatalf("client cookie %q", cookies[1])
		}
	}
	off, _, _ := newCollector(t, func(c *Config) { c.Cookie.Enabled = false })
	if sc := do(off, "GET", "/i?e=pv", "").Header.Get("Set-Cookie"); sc != "" {
		t.Fatalf("cookie disabled but set: %q", sc)
	}
}

func TestPreflightAndStaticRoutes(t *testing.T) {
	c, good, _ := newCollector(t, func(c *Config) { c.CrossDomain.Enabled = true })
	resp := do(c, "OPTIONS", "/com.snowplowanalytics.snowplow/tp2", "", "Origin", "http://localhost:8000")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:8000" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "Content-Type, SP-Anonymous" ||
		resp.Header.Get("Access-Control-Max-Age") != "3600" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	for path, want := range map[string]string{
		"/health":          "ok",
		"/sink-health":     "ok",
		"/robots.txt":      robots,
		"/crossdomain.xml": "<?xml version=\"1.0\"?>\n<cross-domain-policy>\n<allow-access-from domain=\"*\" secure=\"true\" />\n</cross-domain-policy>",
	} {
		resp := do(c, "GET", path, "")
		if got := readBody(resp); resp.StatusCode != 200 || got != want {
			t.Errorf("%s: %d %q", path, resp.StatusCode, got)
		}
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/a/b/c"}, {"POST", "/i"}, {"GET", "/"}, {"GET", "/nope"}, {"PUT", "/com.acme/v1"}, {"GET", "/com.acme/"},
	} {
		if resp := do(c, tc.method, tc.path, ""); resp.StatusCode != 404 {
			t.Errorf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
		}
	}
	if len(good.recs) != 0 {
		t.Fatalf("non-tracking routes stored %d payloads", len(good.recs))
	}
	root, _, _ := newCollector(t, func(c *Config) {
		c.RootResponse = RootResponseConfig{Enabled: true, StatusCode: 302, Headers: map[string]string{"Location": "https://acme.com"}, Body: "moved"}
	})
	if resp := do(root, "GET", "/", ""); resp.StatusCode != 302 || resp.Header.Get("Location") != "https://acme.com" {
		t.Fatalf("root: %d", resp.StatusCode)
	}
}

func TestRedirects(t *testing.T) {
	c, good, _ := newCollector(t, func(c *Config) { c.Paths = map[string]string{"/com.acme/go": "/r/tp2"} })
	if resp := do(c, "GET", "/r/tp2?u=https%3A%2F%2Facme.com", ""); resp.StatusCode != 404 || readBody(resp) != "redirects disabled" {
		t.Fatalf("disabled: %d", resp.StatusCode)
	}
	// A custom path mapped to the redirect still redirects.
	resp := do(c, "GET", "/com.acme/go?u=https%3A%2F%2Facme.com%2Fx&aid=mail", "")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://acme.com/x" {
		t.Fatalf("custom path: %d %v", resp.StatusCode, resp.Header)
	}
	if p := good.payloads(t)[0]; p.Path != "/r/tp2" || p.Querystring != "u=https%3A%2F%2Facme.com%2Fx&aid=mail" {
		t.Fatalf("%+v", p)
	}

	on, good2, _ := newCollector(t, func(c *Config) { c.EnableDefaultRedirect = true; c.RedirectDomains = []string{"acme.com"} })
	for target, code := range map[string]int{
		"/r/tp2?u=https%3A%2F%2Fshop.acme.com%2F": 302,
		"/r/tp2?u=https%3A%2F%2Fevil.com%2F":      400,
		"/r/tp2?u=javascript%3Aalert(1)":          400,
		"/r/tp2?aid=x":                            400,
	} {
		if resp := do(on, "GET", target, ""); resp.StatusCode != code {
			t.Errorf("%s: %d want %d", target, resp.StatusCode, code)
		}
	}
	if len(good2.recs) != 1 {
		t.Fatalf("%d payloads stored for redirects", len(good2.recs))
	}
}

func TestDoNotTrackAndBounce(t *testing.T) {
	c, good, _ := newCollector(t, func(c *Config) {
		c.DoNotTrackCookie = DoNotTrackCookieConfig{Enabled: true, Name: "dnt", Value: "yes|1"}
	})
	for _, v := range []string{"yes", "1"} {
		resp := do(c, "GET", "/i?e=pv", "", "Cookie", "dnt="+v)
		if resp.StatusCode != 200 || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("dnt=%s: %d %q", v, resp.StatusCode, resp.Header.Get("Set-Cookie"))
		}
	}
	do(c, "GET", "/i?e=pv", "", "Cookie", "dnt=yesplease")
	if len(good.recs) != 1 {
		t.Fatalf("%d stored, want only the non-matching one", len(good.recs))
	}

	b, good2, _ := newCollector(t, func(c *Config) {
		c.CookieBounce.Enabled = true
		c.CookieBounce.ForwardedProtocolHeader = "X-Forwarded-Proto"
	})
	resp := do(b, "GET", "/i?e=pv", "", "X-Forwarded-Proto", "https")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://example.com/i?e=pv&n3pc=true" {
		t.Fatalf("bounce: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(good2.recs) != 0 {
		t.Fatal("first hop stored")
	}
	resp = do(b, "GET", "/i?e=pv&n3pc=true", "")
	if resp.StatusCode != 200 || good2.payloads(t)[0].NetworkUserID != "00000000-0000-4000-A000-000000000000" {
		t.Fatalf("second hop: %d", resp.StatusCode)
	}
}

func badRowValidator(t *testing.T) func([]byte) {
	return testutil.BadRowValidator(t, "../../testdata/iglu-central")
}

func TestSizeLimits(t *testing.T) {
	check := badRowValidator(t)
	c, good, bad := newCollector(t, nil)
	huge := strings.Repeat("x", 2<<20+1)
	if resp := do(c, "POST", "/com.snowplowanalytics.snowplow/tp2", huge, "Content-Type", "application/json"); resp.StatusCode != 413 {
		t.Fatalf("over drop size: %d", resp.StatusCode)
	}
	if len(good.recs)+len(bad.recs) != 0 {
		t.Fatal("dropped payload was stored")
	}
	big := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"t","page":"` + strings.Repeat("y", 1500_000) + `"}]}`
	if resp := do(c, "POST", "/com.snowplowanalytics.snowplow/tp2", big, "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("over max payload: %d", resp.StatusCode)
	}
	if len(good.recs) != 0 || len(bad.recs) != 1 {
		t.Fatalf("good %d bad %d", len(good.recs), len(bad.recs))
	}
	check(bad.recs[0])

	// Chunked bodies, whose length is known only once read.
	chunked := func(body string) io.Reader { return io.MultiReader(strings.NewReader(body)) }
	if resp := doReader(c, "POST", "/com.snowplowanalytics.snowplow/tp2", chunked(huge), "Content-Type", "application/json"); resp.StatusCode != 413 {
		t.Fatalf("chunked, over drop size: %d", resp.StatusCode)
	}
	small := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"t"}]}`
	if resp := doReader(c, "POST", "/com.snowplowanalytics.snowplow/tp2", chunked(small), "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("chunked: %d", resp.StatusCode)
	}
	if len(good.recs) != 1 || len(bad.recs) != 1 {
		t.Fatalf("after chunked posts: good %d bad %d", len(good.recs), len(bad.recs))
	}
	if p := good.payloads(t)[0]; p.Body != small {
		t.Fatalf("chunked body stored as %q", p.Body)
	}
	var row struct {
		Data struct {
			Failure struct {
				Max, Actual int
				Expectation string
			}
			Payload string
		}
	}
	json.Unmarshal(bad.recs[0], &row)
	if !strings.HasPrefix(row.Data.Failure.Expectation, "oversized collector payload: Payload exceeds max size of 1048576. Actual length: ") ||
		len(row.Data.Payload) != 104857 || !strings.HasPrefix(row.Data.Payload, "CollectorPayload(schema:iglu:") {
		t.Fatalf("%+v (payload %d chars)", row.Data.Failure, len(row.Data.Payload))
	}
}

// sendRaw writes a request exactly as given to c's server and returns
// the status code.
func sendRaw(t *testing.T, c *Collector, raw string) int {
	t.Helper()
	conn, err := listenerFor(c).DialWithLocalAddr(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5555})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Headers are stored as they arrived: in order, names as the client
// spelled them. Cookie headers become "Cookie: " and their valid pairs,
// joined by ';', as Snowplow's collector writes them.
func TestHeaderOrder(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	raw := "GET /i?e=pv HTTP/1.1\r\nx-b: 2\r\nHost: example.com\r\nCookie: sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11; bad name=1; q=\"quoted\"\r\n" +
		"Accept: */*\r\nX-Forwarded-For: 198.51.100.7\r\nx-a:1\r\ncookie: late=2\r\n\r\n"
	if code := sendRaw(t, c, raw); code != 200 {
		t.Fatal(code)
	}
	raw = strings.Replace(raw, "Accept:", "SP-Anonymous: *\r\nAccept:", 1)
	if code := sendRaw(t, c, raw); code != 200 {
		t.Fatal(code)
	}
	ps := good.payloads(t)
	want := []string{"x-b: 2", "Host: example.com", "Cookie: sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11;q=quoted", "Accept: */*", "X-Forwarded-For: 198.51.100.7", "x-a: 1", "Cookie: late=2"}
	if got := strings.Join(ps[0].Headers, "|"); got != strings.Join(want, "|") {
		t.Errorf("headers\n%s\nwant\n%s", got, strings.Join(want, "|"))
	}
	if ps[0].NetworkUserID != "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11" {
		t.Errorf("nuid %s", ps[0].NetworkUserID)
	}
	want = []string{"x-b: 2", "Host: example.com", "SP-Anonymous: *", "Accept: */*", "x-a: 1"}
	if got := strings.Join(ps[1].Headers, "|"); got != strings.Join(want, "|") {
		t.Errorf("anonymous headers\n%s\nwant\n%s", got, strings.Join(want, "|"))
	}
}

// Long tracker URLs fit; a request over MaxHeaderBytes gets 431.
func TestHeaderLimits(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	long := "/i?e=pv&cx=" + strings.Repeat("a", 40<<10)
	if resp := do(c, "GET", long, "", "Referer", "https://shop.example.com/"+strings.Repeat("r", 8<<10)); resp.StatusCode != 200 {
		t.Fatalf("48 KB request: %d", resp.StatusCode)
	}
	if p := good.payloads(t)[0]; p.Querystring != long[3:] {
		t.Fatalf("querystring of %d bytes stored as %d", len(long)-3, len(p.Querystring))
	}
	if resp := do(c, "GET", "/i?e=pv&cx="+strings.Repeat("a", 70<<10), ""); resp.StatusCode != 431 {
		t.Fatalf("70 KB request line: %d", resp.StatusCode)
	}

	// Over TCP, as a client writes a request whole and only then reads:
	// the answer arrives and then the end of the stream, never a reset
	// (on writing or on reading), whatever the size and the pace.
	addr := serveTCP(t, c)
	for _, size := range []int{64 << 10, 100 << 10, 1 << 20} {
		for _, chunk := range []int{0, 16 << 10} {
			for _, tc := range []struct{ name, raw string }{
				{"header", "GET /i?e=pv HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", size) + "\r\n\r\n"},
				{"request line", "GET /i?e=pv&cx=" + strings.Repeat("a", size) + " HTTP/1.1\r\nHost: x\r\n\r\n"},
				{"header and body", "POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\nX-Big: " +
					strings.Repeat("a", size) + "\r\n\r\n" + strings.Repeat("b", 64<<10)},
			} {
				if err := exchangeTCP(addr, tc.raw, chunk, 431); err != nil {
					t.Errorf("%s of %d KB, written in chunks of %d: %v", tc.name, size>>10, chunk, err)
				}
			}
		}
	}
	if err := exchangeTCP(addr, "NOT HTTP\r\n"+strings.Repeat("z", 200<<10), 0, 400); err != nil {
		t.Errorf("malformed request: %v", err)
	}
	// Pipelined after a good request, the refused one is answered after
	// it: the server has flushed the first answer when it refuses.
	pv := "GET /i?e=pv HTTP/1.1\r\nHost: x\r\n\r\n"
	if err := exchangeTCP(addr, pv+pv+"GET /i HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 100<<10)+"\r\n\r\n", 0, 200, 200, 431); err != nil {
		t.Errorf("pipelined: %v", err)
	}
}

// A refused client that keeps its connection open does not hold up the
// server's shutdown.
func TestRefusedConnShutdown(t *testing.T) {
	c, _, _ := newCollector(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := c.NewServer(c.Handle, DefaultServerOptions())
	go srv.Serve(ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /i HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 100<<10)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("%v %v", resp, err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.ShutdownWithContext(ctx); err != nil {
		t.Fatalf("shutdown after %v: %v", time.Since(start), err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}

// serveTCP starts c's server on a TCP listener on the loopback interface
// for the test's duration and returns its address.
func serveTCP(t *testing.T, c *Collector) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := c.NewServer(c.Handle, DefaultServerOptions())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// exchangeTCP writes raw to a new connection to addr, whole or in chunks
// of chunk bytes with a pause after each, then reads the answers: they
// must be responses with the statuses in want, the last one closing the
// connection, followed by the end of the stream.
func exchangeTCP(addr, raw string, chunk int, want ...int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for rest := raw; rest != ""; {
		n := len(rest)
		if chunk > 0 {
			n = min(n, chunk)
		}
		if _, err := io.WriteString(conn, rest[:n]); err != nil {
			return fmt.Errorf("writing, %d bytes left: %w", len(rest), err)
		}
		rest = rest[n:]
		if chunk > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	br := bufio.NewReader(conn)
	for i, code := range want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("reading response %d: %w", i+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("reading body %d: %w", i+1, err)
		}
		if last := i == len(want)-1; resp.StatusCode != code || resp.Close != last {
			return fmt.Errorf("response %d: got %d %q, Connection: close %v", i+1, resp.StatusCode, body, resp.Close)
		}
	}
	if b, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("after the response: byte %q, %v (want the end of the stream)", b, err)
	}
	return nil
}

func TestSplitting(t *testing.T) {
	check := badRowValidator(t)
	c, good, bad := newCollector(t, func(c *Config) { c.MaxRecordBytes = 2000 })
	var events []string
	for i := 0; i < 12; i++ {
		events = append(events, `{"e":"pv","p":"web","tv":"t","eid":"00000000-0000-4000-8000-`+strings.Repeat("0", 10)+string(rune('a'+i))+`0","page":"`+strings.Repeat("p", 200)+`"}`)
	}
	events = append(events, `{"e":"pv","p":"web","tv":"t","page":"`+strings.Repeat("z", 3000)+`"}`)
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` + strings.Join(events, ",") + `]}`
	if resp := do(c, "POST", "/com.snowplowanalytics.snowplow/tp2", body, "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	if len(good.recs) < 2 || len(bad.recs) != 1 {
		t.Fatalf("good %d bad %d", len(good.recs), len(bad.recs))
	}
	check(bad.recs[0])
	if !bytes.Contains(bad.recs[0], []byte("this POST request split is still too large")) {
		t.Fatalf("%s", bad.recs[0])
	}
	seen := 0
	for i, rec := range good.recs {
		if len(rec) >= 2000 {
			t.Fatalf("record %d is %d bytes", i, len(rec))
		}
		p, _ := payload.Unmarshal(rec)
		var pd struct {
			Schema string
			Data   []map[string]string
		}
		if err := json.Unmarshal([]byte(p.Body), &pd); err != nil {
			t.Fatal(err)
		}
		if pd.Schema != "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4" {
			t.Fatal(pd.Schema)
		}
		seen += len(pd.Data)
	}
	if seen != 12 {
		t.Fatalf("split payloads carry %d events, want 12", seen)
	}

	// GET requests cannot be split.
	do(c, "GET", "/i?e=pv&page="+strings.Repeat("g", 3000), "")
	if len(bad.recs) != 2 || !bytes.Contains(bad.recs[1], []byte("GET requests cannot be split")) {
		t.Fatalf("%d bad rows", len(bad.recs))
	}
	check(bad.recs[1])
	do(c, "POST", "/com.snowplowanalytics.snowplow/tp2", `{"not":"sdj"}`+strings.Repeat(" ", 3000), "Content-Type", "application/json")
	if !bytes.Contains(bad.recs[2], []byte("are not self-describing")) {
		t.Fatalf("%s", bad.recs[2])
	}
}

func TestSinkFailure(t *testing.T) {
	c, good, _ := newCollector(t, nil)
	good.err = errors.New("disk full")
	if resp := do(c, "GET", "/i?e=pv", ""); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != RetryAfter {
		t.Fatalf("%d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := do(c, "GET", "/sink-health", ""); resp.StatusCode != 503 {
		t.Fatalf("sink-health %d", resp.StatusCode)
	}
	if resp := do(c, "GET", "/health", ""); resp.StatusCode != 200 {
		t.Fatalf("health %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"bad path":    func(c *Config) { c.Paths = map[string]string{"/a": "/r/tp2"} },
		"bad target":  func(c *Config) { c.Paths = map[string]string{"/a/b": "/c"} },
		"no cookie":   func(c *Config) { c.Cookie.Name = "" },
		"same site":   func(c *Config) { c.Cookie.SameSite = "sometimes" },
		"dnt regex":   func(c *Config) { c.DoNotTrackCookie = DoNotTrackCookieConfig{Enabled: true, Name: "d", Value: "("} },
		"zero size":   func(c *Config) { c.MaxRecordBytes = 0 },
		"root status": func(c *Config) { c.RootResponse = RootResponseConfig{Enabled: true, StatusCode: 1000} },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if cfg.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

type discard struct{}

func (discard) Write(context.Context, ...[]byte) error { return nil }
func (discard) Close(context.Context) error            { return nil }

func BenchmarkCollector(b *testing.B) {
	c, err := New(Options{Config: DefaultConfig(), Good: discard{}, Bad: discard{}, Name: "furrow-bench", Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","url":"https://shop.example.com/a","page":"Shop","p":"web","tv":"js-3.24.0","aid":"shop","eid":"1f2e3d4c-5b6a-4789-8abc-def012345678","dtm":"1767323044000","stm":"1767323044900"}]}`
	for _, tc := range []struct{ name, method, target, body string }{
		{"get_pixel", "GET", "/i?e=pv&url=https%3A%2F%2Fshop.example.com%2Fa&page=Shop&p=web&tv=js-3.24.0&aid=shop&eid=1f2e3d4c-5b6a-4789-8abc-def012345678&dtm=1767323044000", ""},
		{"post_tp2", "POST", "/com.snowplowanalytics.snowplow/tp2", body},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			// Parsed from the wire format, as the server does: the
			// collector stores the raw headers.
			wire := tc.method + " " + tc.target + " HTTP/1.1\r\nHost: example.com\r\n" +
				"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\r\nCookie: sp=8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11\r\n"
			if tc.body != "" {
				wire += "Content-Type: application/json; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(tc.body)) + "\r\n"
			}
			wire += "\r\n" + tc.body
			var req fasthttp.Request
			if err := req.Read(bufio.NewReader(strings.NewReader(wire))); err != nil {
				b.Fatal(err)
			}
			addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5555}
			var ctx fasthttp.RequestCtx
			b.ResetTimer()
			for range b.N {
				ctx.Init(&req, addr, nil) // copies the request, as a server reads it
				c.Handle(&ctx)
				if code := ctx.Response.StatusCode(); code != 200 {
					b.Fatal(code)
				}
			}
		})
	}
}

// fasthttp's messages reach the log at debug level, except its warning
// about taking a streamed body whole, which every POST would log.
func TestServerLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, good, _ := newCollector(t, nil)
	c.log = log
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"js-3"}]}`
	for range 3 {
		if resp := do(c, "POST", "/com.snowplowanalytics.snowplow/tp2", body, "Content-Type", "application/json"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := len(good.payloads(t)); n != 3 {
		t.Fatalf("%d payloads stored", n)
	}
	if strings.Contains(buf.String(), "Request.Body()") {
		t.Errorf("logged:\n%s", buf.String())
	}
	fastLogger{log}.Printf("error when serving connection %q: %v", "192.0.2.10:5555", "timeout")
	if !strings.Contains(buf.String(), `msg="collector: http: error when serving connection \"192.0.2.10:5555\": timeout"`) {
		t.Errorf("logged:\n%s", buf.String())
	}
	buf.Reset()
	fastLogger{slog.New(slog.NewTextHandler(&buf, nil))}.Printf("error when serving connection")
	if buf.Len() != 0 {
		t.Errorf("logged at info level:\n%s", buf.String())
	}
}
