package collector

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/stream"
)

// pixel is the 1x1 transparent GIF returned to GET requests.
var pixel, _ = base64.StdEncoding.DecodeString("R0lGODlhAQABAPAAAP///wAAACH5BAUAAAAALAAAAAABAAEAAAICRAEAOw==")

const (
	tp2Path       = "/com.snowplowanalytics.snowplow/tp2"
	redirectPath  = "/r/tp2"
	anonymousNUID = "00000000-0000-0000-0000-000000000000"
)

const robots = "User-agent: *\nDisallow: /\n\nUser-agent: Googlebot\nDisallow: /\n\nUser-agent: AdsBot-Google\nDisallow: /"

// Options wires a Collector.
type Options struct {
	Config Config
	Good   stream.Sink // raw CollectorPayloads
	Bad    stream.Sink // size_violation bad rows
	// Name is written in every payload's collector field, e.g.
	// "furrow-0.1.0-embedded" (at most 32 characters).
	Name      string
	Processor badrows.Processor
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
}

// Collector is an http.Handler for the tracker endpoints.
type Collector struct {
	cfg       Config
	good, bad stream.Sink
	name      string
	processor badrows.Processor
	log       *slog.Logger
	now       func() time.Time
	dnt       *regexp.Regexp
	sameSite  string
	m         metrics

	expires atomic.Pointer[expiresCache]
}

type metrics struct {
	requests   *prometheus.CounterVec
	byCode     map[int]prometheus.Counter // the usual codes, resolved once
	payloads   prometheus.Counter
	violations prometheus.Counter
	sinkErrors prometheus.Counter
}

type expiresCache struct {
	sec            int64
	future, expire string // Expires values for setting and clearing
}

// New returns a Collector. It validates the configuration.
func New(o Options) (*Collector, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Good == nil || o.Bad == nil {
		return nil, errors.New("collector: good and bad sinks are required")
	}
	if len(o.Name) > 32 {
		return nil, errors.New("collector: name must be at most 32 characters")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	c := &Collector{cfg: o.Config, good: o.Good, bad: o.Bad, name: o.Name, processor: o.Processor, log: o.Logger, now: o.Now}
	if o.Config.DoNotTrackCookie.Enabled {
		c.dnt = regexp.MustCompile("^(?:" + o.Config.DoNotTrackCookie.Value + ")$")
	}
	switch strings.ToLower(o.Config.Cookie.SameSite) {
	case "lax":
		c.sameSite = "Lax"
	case "strict":
		c.sameSite = "Strict"
	case "none":
		c.sameSite = "None"
	}
	c.m = metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "furrow_collector_requests_total", Help: "HTTP requests answered by the collector, by status code.",
		}, []string{"code"}),
		payloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "furrow_collector_payloads_total", Help: "Collector payloads written to the raw stream.",
		}),
		violations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "furrow_collector_size_violations_total", Help: "Payloads too large to store, written as size_violation bad rows.",
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "furrow_collector_sink_errors_total", Help: "Requests answered 503 because a sink write failed.",
		}),
	}
	c.m.byCode = map[int]prometheus.Counter{}
	for _, code := range []int{200, 302, 400, 404, 413, 503} {
		c.m.byCode[code] = c.m.requests.WithLabelValues(strconv.Itoa(code))
	}
	for _, col := range []prometheus.Collector{c.m.requests, c.m.payloads, c.m.violations, c.m.sinkErrors} {
		if err := o.Registry.Register(col); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Healthy reports whether both sinks accept writes (for /sink-health).
func (c *Collector) Healthy() bool {
	for _, s := range []stream.Sink{c.good, c.bad} {
		if h, ok := s.(stream.Healthy); ok && !h.Healthy() {
			return false
		}
	}
	return true
}

func (c *Collector) count(code int) {
	if ctr, ok := c.m.byCode[code]; ok {
		ctr.Inc()
		return
	}
	c.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := c.serve(w, r)
	c.count(code)
}

func text(w http.ResponseWriter, code int, body string) int {
	w.Header()["Content-Type"] = textType
	w.WriteHeader(code)
	io.WriteString(w, body)
	return code
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) int {
	path := r.URL.Path
	if r.Method == http.MethodOptions {
		return c.preflight(w, r)
	}
	switch path {
	case "/health":
		return text(w, http.StatusOK, "ok")
	case "/sink-health":
		if c.Healthy() {
			return text(w, http.StatusOK, "ok")
		}
		return text(w, http.StatusServiceUnavailable, "Service Unavailable")
	case "/robots.txt":
		return text(w, http.StatusOK, robots)
	case "/crossdomain.xml":
		if !c.cfg.CrossDomain.Enabled || r.Method != http.MethodGet {
			return text(w, http.StatusNotFound, "404 page not found")
		}
		return c.crossDomain(w)
	case "/":
		if !c.cfg.RootResponse.Enabled || r.Method != http.MethodGet {
			return text(w, http.StatusNotFound, "404 page not found")
		}
		for k, v := range c.cfg.RootResponse.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(c.cfg.RootResponse.StatusCode)
		io.WriteString(w, c.cfg.RootResponse.Body)
		return c.cfg.RootResponse.StatusCode
	}
	if strings.HasPrefix(path, "/r/") && !c.cfg.EnableDefaultRedirect {
		return text(w, http.StatusNotFound, "redirects disabled")
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if path == "/i" || path == "/ice.png" {
		if !get {
			return text(w, http.StatusNotFound, "404 page not found")
		}
		return c.track(w, r, path, true, false)
	}
	if !isTwoSegments(path) {
		return text(w, http.StatusNotFound, "404 page not found")
	}
	stored := path
	if to, ok := c.cfg.Paths[path]; ok {
		stored = to
	}
	redirect := stored == redirectPath
	switch {
	case redirect && get:
		return c.track(w, r, stored, true, true)
	case redirect:
		return text(w, http.StatusNotFound, "404 page not found")
	case get:
		return c.track(w, r, stored, true, false)
	case r.Method == http.MethodPost:
		return c.track(w, r, stored, false, false)
	}
	return text(w, http.StatusNotFound, "404 page not found")
}

func isTwoSegments(p string) bool {
	if len(p) < 4 || p[0] != '/' {
		return false
	}
	i := strings.IndexByte(p[1:], '/')
	return i > 0 && i+2 < len(p) && strings.IndexByte(p[i+2:], '/') < 0
}

func (c *Collector) preflight(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", allowOrigin(r))
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Headers", "Content-Type, SP-Anonymous")
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.cfg.CORSMaxAge/time.Second)))
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

var (
	trueValue   = []string{"true"}[:1:1]
	starValue   = []string{"*"}[:1:1]
	gifType     = []string{"image/gif"}[:1:1]
	noCache     = []string{"no-cache, no-store, must-revalidate"}[:1:1]
	pixelLength = []string{"43"}[:1:1]
	textType    = []string{"text/plain; charset=utf-8"}[:1:1]
)

// allowOriginValue is allowOrigin as a header value, shared when it is *.
func allowOriginValue(r *http.Request) []string {
	if o := allowOrigin(r); o != "*" {
		return []string{o}
	}
	return starValue
}

// allowOrigin echoes the first Origin, or * without one.
func allowOrigin(r *http.Request) string {
	o := r.Header.Get("Origin")
	if o == "" {
		return "*"
	}
	if i := strings.IndexByte(o, ' '); i > 0 {
		o = o[:i]
	}
	return o
}

func (c *Collector) crossDomain(w http.ResponseWriter) int {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<cross-domain-policy>\n")
	for _, d := range c.cfg.CrossDomain.Domains {
		b.WriteString(`<allow-access-from domain="` + d + `" secure="` + strconv.FormatBool(c.cfg.CrossDomain.Secure) + "\" />\n")
	}
	b.WriteString("</cross-domain-policy>")
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, b.String())
	return http.StatusOK
}

// queryValue finds the first value of name in a raw querystring.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k == name {
			if u, err := url.QueryUnescape(v); err == nil {
				return u, true
			}
			return v, true
		}
	}
	return "", false
}

// track handles every request that carries an event.
func (c *Collector) track(w http.ResponseWriter, r *http.Request, path string, pixelExpected, redirect bool) int {
	var body string
	if r.Method == http.MethodPost {
		if r.ContentLength > int64(c.cfg.DropPayloadSize) {
			return text(w, http.StatusRequestEntityTooLarge, "Payload Too Large")
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, int64(c.cfg.DropPayloadSize)+1))
		if err != nil {
			return text(w, http.StatusBadRequest, "could not read request body")
		}
		if len(b) > c.cfg.DropPayloadSize {
			return text(w, http.StatusRequestEntityTooLarge, "Payload Too Large")
		}
		body = string(b)
	}

	anonymous := r.Header.Get("SP-Anonymous") != ""
	var requestCookie *http.Cookie
	if c.cfg.Cookie.Name != "" {
		requestCookie, _ = r.Cookie(c.cfg.Cookie.Name)
	}
	rawQuery := r.URL.RawQuery

	// Do-not-track: answer normally, store nothing, set no cookie.
	if c.dnt != nil {
		if dc, err := r.Cookie(c.cfg.DoNotTrackCookie.Name); err == nil && c.dnt.MatchString(dc.Value) {
			return c.respond(w, r, pixelExpected, redirect, "", false, nil)
		}
	}

	nuid := ""
	queryNUID, hasQueryNUID := queryValue(rawQuery, "nuid")
	bouncing := false
	if c.cfg.CookieBounce.Enabled {
		_, bouncing = queryValue(rawQuery, c.cfg.CookieBounce.Name)
	}
	switch {
	case anonymous:
		nuid = anonymousNUID
	case hasQueryNUID && queryNUID != "":
		nuid = queryNUID
	case requestCookie != nil && requestCookie.Value != "":
		nuid = requestCookie.Value
	case bouncing:
		nuid = c.cfg.CookieBounce.FallbackNetworkUserID
	default:
		if c.cfg.CookieBounce.Enabled && pixelExpected && !redirect && r.Method == http.MethodGet {
			return c.bounce(w, r)
		}
		nuid = uuid.NewString()
	}

	if redirect {
		target, ok := c.redirectTarget(rawQuery)
		if !ok {
			return text(w, http.StatusBadRequest, "invalid or missing redirect target")
		}
		if code := c.store(r, path, body, rawQuery, nuid, anonymous); code != 0 {
			return text(w, code, "Service Unavailable")
		}
		c.setCookie(w, r, nuid, anonymous, requestCookie != nil)
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusFound)
		return http.StatusFound
	}
	if code := c.store(r, path, body, rawQuery, nuid, anonymous); code != 0 {
		return text(w, code, "Service Unavailable")
	}
	return c.respond(w, r, pixelExpected, false, nuid, anonymous, requestCookie)
}

func (c *Collector) respond(w http.ResponseWriter, r *http.Request, pixelExpected, redirect bool, nuid string, anonymous bool, requestCookie *http.Cookie) int {
	if nuid != "" {
		c.setCookie(w, r, nuid, anonymous, requestCookie != nil)
	}
	h := w.Header()
	h["Access-Control-Allow-Origin"] = allowOriginValue(r)
	h["Access-Control-Allow-Credentials"] = trueValue
	if pixelExpected {
		// Shared values, capacity equal to length: an Add elsewhere
		// copies instead of writing into them.
		h["Content-Type"] = gifType
		h["Cache-Control"] = noCache
		h["Content-Length"] = pixelLength
		w.WriteHeader(http.StatusOK)
		w.Write(pixel)
		return http.StatusOK
	}
	return text(w, http.StatusOK, "ok")
}

// bounce redirects a cookie-less GET to itself with the bounce parameter.
func (c *Collector) bounce(w http.ResponseWriter, r *http.Request) int {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if h := c.cfg.CookieBounce.ForwardedProtocolHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			scheme = v
		}
	}
	q := r.URL.RawQuery
	if q != "" {
		q += "&"
	}
	q += c.cfg.CookieBounce.Name + "=true"
	w.Header().Set("Location", scheme+"://"+r.Host+r.URL.Path+"?"+q)
	w.WriteHeader(http.StatusFound)
	return http.StatusFound
}

func (c *Collector) redirectTarget(rawQuery string) (string, bool) {
	u, ok := queryValue(rawQuery, "u")
	if !ok || u == "" {
		return "", false
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
		return "", false
	}
	if len(c.cfg.RedirectDomains) == 0 {
		return u, true
	}
	host := parsed.Hostname()
	for _, d := range c.cfg.RedirectDomains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return u, true
		}
	}
	return "", false
}

// setCookie writes the network user id cookie (and the client cookie),
// or clears it for anonymous requests that sent one.
func (c *Collector) setCookie(w http.ResponseWriter, r *http.Request, nuid string, anonymous, hadCookie bool) {
	cc := c.cfg.Cookie
	if !cc.Enabled {
		return
	}
	if anonymous && !hadCookie {
		return
	}
	exp := c.expiry()
	expires, value := exp.future, nuid
	if anonymous {
		expires, value = exp.expire, ""
	}
	domain := c.cookieDomain(r)
	w.Header().Add("Set-Cookie", c.cookieString(cc.Name, value, expires, domain, cc.HTTPOnly))
	if cc.ClientCookieName != "" {
		w.Header().Add("Set-Cookie", c.cookieString(cc.ClientCookieName, value, expires, domain, false))
	}
}

func (c *Collector) cookieString(name, value, expires, domain string, httpOnly bool) string {
	var b strings.Builder
	b.Grow(160)
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Expires=")
	b.WriteString(expires)
	b.WriteString("; Path=/")
	if domain != "" {
		b.WriteString("; Domain=")
		b.WriteString(domain)
	}
	if c.cfg.Cookie.Secure {
		b.WriteString("; Secure")
	}
	if httpOnly {
		b.WriteString("; HttpOnly")
	}
	if c.sameSite != "" {
		b.WriteString("; SameSite=")
		b.WriteString(c.sameSite)
	}
	return b.String()
}

// expiry caches the two Expires values, recomputed once a second.
func (c *Collector) expiry() *expiresCache {
	now := c.now()
	sec := now.Unix()
	if e := c.expires.Load(); e != nil && e.sec == sec {
		return e
	}
	e := &expiresCache{
		sec:    sec,
		future: now.Add(c.cfg.Cookie.Expiration).UTC().Format(http.TimeFormat),
		expire: now.Add(-c.cfg.Cookie.Expiration).UTC().Format(http.TimeFormat),
	}
	c.expires.Store(e)
	return e
}

// cookieDomain picks the first configured domain that one of the Origin
// hosts belongs to, else the fallback domain, else none.
func (c *Collector) cookieDomain(r *http.Request) string {
	cc := c.cfg.Cookie
	if len(cc.Domains) > 0 {
		for _, origin := range strings.Fields(r.Header.Get("Origin")) {
			host := origin
			if u, err := url.Parse(origin); err == nil && u.Host != "" {
				host = u.Hostname()
			}
			for _, d := range cc.Domains {
				if host == d || strings.HasSuffix(host, "."+d) {
					return d
				}
			}
		}
	}
	return cc.FallbackDomain
}

// clientAddr returns the IP the collector records for the request.
func (c *Collector) clientAddr(r *http.Request) string {
	if c.cfg.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if first = strings.TrimSpace(first); first != "" {
				return first
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || host == "" {
		return "unknown"
	}
	return host
}

// headerList renders the request headers as "Name: value" strings, sorted
// by name, Host first. Anonymous requests lose the headers that identify
// the client. The content type is appended bare, as Snowplow collectors do.
func headerList(r *http.Request, anonymous bool, contentType string) []string {
	names := make([]string, 0, len(r.Header))
	size := len("Host: ") + len(r.Host) + len(contentType)
	for k, vs := range r.Header {
		if anonymous && (k == "X-Forwarded-For" || k == "X-Real-Ip" || k == "Cookie") {
			continue
		}
		names = append(names, k)
		for _, v := range vs {
			size += len(k) + 2 + len(v)
		}
	}
	sort.Strings(names)
	// Every line goes into one buffer; the strings returned share it.
	buf := make([]byte, 0, size)
	var endsBuf [32]int
	ends := endsBuf[:0]
	if r.Host != "" {
		buf = append(append(buf, "Host: "...), r.Host...)
		ends = append(ends, len(buf))
	}
	for _, k := range names {
		if k == "Cookie" {
			buf = append(buf, "Cookie: "...)
			for i, ck := range r.Cookies() {
				if i > 0 {
					buf = append(buf, ';')
				}
				buf = append(append(append(buf, ck.Name...), '='), ck.Value...)
			}
			ends = append(ends, len(buf))
			continue
		}
		for _, v := range r.Header[k] {
			buf = append(append(append(buf, k...), ": "...), v...)
			ends = append(ends, len(buf))
		}
	}
	if contentType != "" {
		buf = append(buf, contentType...)
		ends = append(ends, len(buf))
	}
	all := unsafe.String(unsafe.SliceData(buf), len(buf)) // buf is not written again
	out := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		out[i] = all[start:end]
		start = end
	}
	return out
}

// store builds the CollectorPayload and writes it (or its size_violation)
// to the sinks. It returns 0, or the HTTP status to answer on failure.
func (c *Collector) store(r *http.Request, path, body, rawQuery, nuid string, anonymous bool) int {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost {
		ct = ""
	}
	ip := "unknown"
	if !anonymous {
		ip = c.clientAddr(r)
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	cp := &payload.CollectorPayload{
		Schema:        payload.SchemaURI,
		IPAddress:     ip,
		Timestamp:     c.now().UnixMilli(),
		Encoding:      "UTF-8",
		Collector:     c.name,
		UserAgent:     r.UserAgent(),
		RefererURI:    r.Referer(),
		Path:          path,
		Querystring:   rawQuery,
		Body:          body,
		Headers:       headerList(r, anonymous, ct),
		ContentType:   ct,
		Hostname:      host,
		NetworkUserID: nuid,
	}
	good, bad := c.split(cp)
	ctx := r.Context()
	// Bad rows first: a request is only acknowledged when everything it
	// produced is stored.
	if len(bad) > 0 {
		if err := c.bad.Write(ctx, bad...); err != nil {
			return c.sinkFailed(err)
		}
		c.m.violations.Add(float64(len(bad)))
	}
	if len(good) > 0 {
		if err := c.good.Write(ctx, good...); err != nil {
			return c.sinkFailed(err)
		}
		c.m.payloads.Add(float64(len(good)))
	}
	return 0
}

func (c *Collector) sinkFailed(err error) int {
	c.m.sinkErrors.Inc()
	if !errors.Is(err, context.Canceled) {
		c.log.Error("collector: sink write failed", "err", err)
	}
	return http.StatusServiceUnavailable
}
