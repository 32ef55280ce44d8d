package collector

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/logx"
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
	// Health, if set, is asked by /sink-health too: furrow answers 503
	// while it returns an error (a stage of the pipeline failing), not
	// only while the sinks cannot be written.
	Health func() error
	// Degraded, if set, names what is failing without stopping
	// collection (a destination that is down): /sink-health still
	// answers 200, with the errors after "ok". A load balancer keeps
	// sending traffic, which the log holds until the destination is
	// back; a person or a check reading the body sees which one.
	Degraded func() error
}

// Collector answers the tracker endpoints; see Handle and NewServer.
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
	health    func() error
	degraded  func() error
	failures  *logx.Limiter

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
	c := &Collector{cfg: o.Config, good: o.Good, bad: o.Bad, name: o.Name, processor: o.Processor, log: o.Logger, now: o.Now,
		health: o.Health, degraded: o.Degraded, failures: logx.NewLimiter(o.Logger, 0)}
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

// Healthy reports whether both sinks accept writes and Options.Health
// reports no error (for /sink-health).
func (c *Collector) Healthy() bool {
	for _, s := range []stream.Sink{c.good, c.bad} {
		if h, ok := s.(stream.Healthy); ok && !h.Healthy() {
			return false
		}
	}
	return c.health == nil || c.health() == nil
}

func (c *Collector) count(code int) {
	if ctr, ok := c.m.byCode[code]; ok {
		ctr.Inc()
		return
	}
	c.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// Handle answers one request on the collector's routes.
func (c *Collector) Handle(ctx *fasthttp.RequestCtx) {
	c.count(c.serve(ctx))
}

func text(ctx *fasthttp.RequestCtx, code int, body string) int {
	ctx.Response.Header.SetContentType(textType)
	ctx.SetStatusCode(code)
	ctx.SetBodyString(body)
	return code
}

func (c *Collector) serve(ctx *fasthttp.RequestCtx) int {
	if ctx.IsOptions() {
		return c.preflight(ctx)
	}
	path := string(ctx.Path())
	switch path {
	case "/health":
		return text(ctx, fasthttp.StatusOK, "ok")
	case "/sink-health":
		if c.Healthy() {
			if c.degraded != nil {
				if err := c.degraded(); err != nil {
					return text(ctx, fasthttp.StatusOK, "ok; degraded: "+strings.ReplaceAll(err.Error(), "\n", "; "))
				}
			}
			return text(ctx, fasthttp.StatusOK, "ok")
		}
		return text(ctx, fasthttp.StatusServiceUnavailable, "Service Unavailable")
	case "/robots.txt":
		return text(ctx, fasthttp.StatusOK, robots)
	case "/crossdomain.xml":
		if !c.cfg.CrossDomain.Enabled || !ctx.IsGet() {
			return text(ctx, fasthttp.StatusNotFound, "404 page not found")
		}
		return c.crossDomain(ctx)
	case "/":
		if !c.cfg.RootResponse.Enabled || !ctx.IsGet() {
			return text(ctx, fasthttp.StatusNotFound, "404 page not found")
		}
		for k, v := range c.cfg.RootResponse.Headers {
			ctx.Response.Header.Set(k, v)
		}
		ctx.SetStatusCode(c.cfg.RootResponse.StatusCode)
		ctx.SetBodyString(c.cfg.RootResponse.Body)
		return c.cfg.RootResponse.StatusCode
	}
	if strings.HasPrefix(path, "/r/") && !c.cfg.EnableDefaultRedirect {
		return text(ctx, fasthttp.StatusNotFound, "redirects disabled")
	}
	get := ctx.IsGet() || ctx.IsHead()
	if path == "/i" || path == "/ice.png" {
		if !get {
			return text(ctx, fasthttp.StatusNotFound, "404 page not found")
		}
		return c.track(ctx, path, true, false)
	}
	if !isTwoSegments(path) {
		return text(ctx, fasthttp.StatusNotFound, "404 page not found")
	}
	stored := path
	if to, ok := c.cfg.Paths[path]; ok {
		stored = to
	}
	redirect := stored == redirectPath
	switch {
	case redirect && get:
		return c.track(ctx, stored, true, true)
	case redirect:
		return text(ctx, fasthttp.StatusNotFound, "404 page not found")
	case get:
		return c.track(ctx, stored, true, false)
	case ctx.IsPost():
		return c.track(ctx, stored, false, false)
	}
	return text(ctx, fasthttp.StatusNotFound, "404 page not found")
}

func isTwoSegments(p string) bool {
	if len(p) < 4 || p[0] != '/' {
		return false
	}
	i := strings.IndexByte(p[1:], '/')
	return i > 0 && i+2 < len(p) && strings.IndexByte(p[i+2:], '/') < 0
}

func (c *Collector) preflight(ctx *fasthttp.RequestCtx) int {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", allowOrigin(ctx))
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Headers", "Content-Type, SP-Anonymous")
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.cfg.CORSMaxAge/time.Second)))
	ctx.SetStatusCode(fasthttp.StatusOK)
	return fasthttp.StatusOK
}

const (
	gifType  = "image/gif"
	noCache  = "no-cache, no-store, must-revalidate"
	textType = "text/plain; charset=utf-8"
)

// header returns the first value of a request header.
func header(ctx *fasthttp.RequestCtx, name string) string {
	return string(ctx.Request.Header.Peek(name))
}

// allowOrigin echoes the first Origin, or * without one.
func allowOrigin(ctx *fasthttp.RequestCtx) string {
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 {
		return "*"
	}
	if i := bytes.IndexByte(o, ' '); i > 0 {
		o = o[:i]
	}
	return string(o)
}

func (c *Collector) crossDomain(ctx *fasthttp.RequestCtx) int {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<cross-domain-policy>\n")
	for _, d := range c.cfg.CrossDomain.Domains {
		b.WriteString(`<allow-access-from domain="` + d + `" secure="` + strconv.FormatBool(c.cfg.CrossDomain.Secure) + "\" />\n")
	}
	b.WriteString("</cross-domain-policy>")
	ctx.Response.Header.SetContentType("text/xml; charset=utf-8")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString(b.String())
	return fasthttp.StatusOK
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
func (c *Collector) track(ctx *fasthttp.RequestCtx, path string, pixelExpected, redirect bool) int {
	var body string
	if ctx.IsPost() {
		b, tooLarge, err := c.readBody(ctx)
		switch {
		case tooLarge:
			return text(ctx, fasthttp.StatusRequestEntityTooLarge, "Payload Too Large")
		case err != nil:
			return text(ctx, fasthttp.StatusBadRequest, "could not read request body")
		}
		body = string(b)
	}

	anonymous := len(ctx.Request.Header.Peek("SP-Anonymous")) > 0
	requestCookie, hadCookie := "", false
	if c.cfg.Cookie.Name != "" {
		requestCookie, hadCookie = cookie(ctx, c.cfg.Cookie.Name)
	}
	rawQuery := string(ctx.URI().QueryString())

	// Do-not-track: answer normally, store nothing, set no cookie.
	if c.dnt != nil {
		if v, ok := cookie(ctx, c.cfg.DoNotTrackCookie.Name); ok && c.dnt.MatchString(v) {
			return c.respond(ctx, time.Time{}, pixelExpected, "", false, false)
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
	case requestCookie != "":
		nuid = requestCookie
	case bouncing:
		nuid = c.cfg.CookieBounce.FallbackNetworkUserID
	default:
		if c.cfg.CookieBounce.Enabled && pixelExpected && !redirect && ctx.IsGet() {
			return c.bounce(ctx, path, rawQuery)
		}
		nuid = uuid.NewString()
	}

	if redirect {
		target, ok := c.redirectTarget(rawQuery)
		if !ok {
			return text(ctx, fasthttp.StatusBadRequest, "invalid or missing redirect target")
		}
		now := c.now()
		if code := c.store(ctx, now, path, body, rawQuery, nuid, anonymous); code != 0 {
			return unavailable(ctx, code)
		}
		c.setCookie(ctx, now, nuid, anonymous, hadCookie)
		ctx.Response.Header.Set("Location", target)
		ctx.SetStatusCode(fasthttp.StatusFound)
		return fasthttp.StatusFound
	}
	now := c.now()
	if code := c.store(ctx, now, path, body, rawQuery, nuid, anonymous); code != 0 {
		return unavailable(ctx, code)
	}
	return c.respond(ctx, now, pixelExpected, nuid, anonymous, hadCookie)
}

// maxDrain bounds how much of a refused body the collector reads and
// discards. The server alone would discard at most 256 KB and then close
// the connection with the rest unread, which resets it: most clients
// then report the reset, not the 413.
const maxDrain = 32 << 20

// readBody reads a POST body of at most DropPayloadSize bytes. The server
// reads bodies of a known length up to that size before the handler
// runs; a longer or chunked one arrives as a stream. A body over the
// limit is read on and discarded (up to maxDrain), so that the client
// gets its 413.
func (c *Collector) readBody(ctx *fasthttp.RequestCtx) (b []byte, tooLarge bool, err error) {
	limit := c.cfg.DropPayloadSize
	n := ctx.Request.Header.ContentLength()
	if n >= 0 && n <= limit {
		return ctx.PostBody(), false, nil
	}
	s := ctx.RequestBodyStream()
	if s == nil {
		return nil, n > limit, nil
	}
	if n < 0 { // chunked
		if b, err = io.ReadAll(io.LimitReader(s, int64(limit)+1)); err != nil || len(b) <= limit {
			return b, false, err
		}
	}
	io.Copy(io.Discard, io.LimitReader(s, maxDrain))
	return nil, true, nil
}

// respond answers a tracking request; now is when it was stored, and
// dates the cookie (none is set without a nuid).
func (c *Collector) respond(ctx *fasthttp.RequestCtx, now time.Time, pixelExpected bool, nuid string, anonymous, hadCookie bool) int {
	if nuid != "" {
		c.setCookie(ctx, now, nuid, anonymous, hadCookie)
	}
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", allowOrigin(ctx))
	h.Set("Access-Control-Allow-Credentials", "true")
	if pixelExpected {
		h.SetContentType(gifType)
		h.Set("Cache-Control", noCache)
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBody(pixel)
		return fasthttp.StatusOK
	}
	return text(ctx, fasthttp.StatusOK, "ok")
}

// bounce redirects a cookie-less GET to itself with the bounce parameter.
func (c *Collector) bounce(ctx *fasthttp.RequestCtx, path, rawQuery string) int {
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	if h := c.cfg.CookieBounce.ForwardedProtocolHeader; h != "" {
		if v := header(ctx, h); v != "" {
			scheme = v
		}
	}
	q := rawQuery
	if q != "" {
		q += "&"
	}
	q += c.cfg.CookieBounce.Name + "=true"
	ctx.Response.Header.Set("Location", scheme+"://"+string(ctx.Host())+path+"?"+q)
	ctx.SetStatusCode(fasthttp.StatusFound)
	return fasthttp.StatusFound
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
func (c *Collector) setCookie(ctx *fasthttp.RequestCtx, now time.Time, nuid string, anonymous, hadCookie bool) {
	cc := c.cfg.Cookie
	if !cc.Enabled {
		return
	}
	if anonymous && !hadCookie {
		return
	}
	exp := c.expiry(now)
	expires, value := exp.future, nuid
	if anonymous {
		expires, value = exp.expire, ""
	}
	domain := c.cookieDomain(ctx)
	ctx.Response.Header.Add("Set-Cookie", c.cookieString(cc.Name, value, expires, domain, cc.HTTPOnly))
	if cc.ClientCookieName != "" {
		ctx.Response.Header.Add("Set-Cookie", c.cookieString(cc.ClientCookieName, value, expires, domain, false))
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
func (c *Collector) expiry(now time.Time) *expiresCache {
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
func (c *Collector) cookieDomain(ctx *fasthttp.RequestCtx) string {
	cc := c.cfg.Cookie
	if len(cc.Domains) > 0 {
		for _, origin := range strings.Fields(header(ctx, "Origin")) {
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
func (c *Collector) clientAddr(ctx *fasthttp.RequestCtx) string {
	if c.cfg.TrustForwardedFor {
		if xff := ctx.Request.Header.Peek("X-Forwarded-For"); len(xff) > 0 {
			first, _, _ := bytes.Cut(xff, []byte(","))
			if first = bytes.TrimSpace(first); len(first) > 0 {
				return string(first)
			}
		}
	}
	var ip net.IP
	switch a := ctx.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	if len(ip) == 0 {
		return "unknown"
	}
	return ip.String()
}

// cookie finds the first valid cookie called name, as net/http's
// Request.Cookie does: whether it was sent, and its value unquoted.
func cookie(ctx *fasthttp.RequestCtx, name string) (value string, ok bool) {
	forEachCookie(ctx.Request.Header.RawHeaders(), func(k, v []byte) bool {
		if string(k) == name {
			value, ok = string(v), true
		}
		return !ok
	})
	return value, ok
}

// forEachCookie calls f with each valid cookie of the Cookie headers in
// raw, in order, until f returns false.
func forEachCookie(raw []byte, f func(name, value []byte) bool) {
	forEachHeader(raw, func(k, v []byte) bool {
		return !bytes.EqualFold(k, []byte("Cookie")) || forEachCookiePair(v, f)
	})
}

// forEachCookiePair calls f with each valid name=value pair of one Cookie
// header value, until f returns false, and reports whether it never did.
// Pairs that RFC 6265 rejects (a name that is not a token, a value with
// forbidden bytes) are skipped, as net/http skips them; quotes around a
// value are dropped.
func forEachCookiePair(v []byte, f func(name, value []byte) bool) bool {
	for len(v) > 0 {
		var pair []byte
		pair, v, _ = bytes.Cut(v, []byte(";"))
		name, val, _ := bytes.Cut(bytes.TrimSpace(pair), []byte("="))
		val, ok := cookieValue(val)
		if !ok || !validCookieName(name) {
			continue
		}
		if !f(name, val) {
			return false
		}
	}
	return true
}

// cookieValue checks a cookie value against RFC 6265 and drops the
// quotes around it, if any.
func cookieValue(v []byte) ([]byte, bool) {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	for _, b := range v {
		if b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return nil, false
		}
	}
	return v, true
}

// validCookieName reports whether name is an RFC 7230 token.
func validCookieName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, b := range name {
		if b <= ' ' || b >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", b) >= 0 {
			return false
		}
	}
	return true
}

// forEachHeader calls f with the name and value of each header line of
// raw (the request's headers as they arrived, names as the client sent them),
// in order, until f returns false.
func forEachHeader(raw []byte, f func(name, value []byte) bool) {
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 {
			continue
		}
		if !f(name, bytes.TrimSpace(value)) {
			return
		}
	}
}

// headerList renders the request headers as "Name: value" strings, in
// the order they arrived. Cookie headers are rewritten as name=value
// pairs joined by ';', without the ones RFC 6265 rejects. Anonymous
// requests lose the headers that identify the client. The content type
// is appended bare, as Snowplow collectors do.
func headerList(ctx *fasthttp.RequestCtx, anonymous bool, contentType string) []string {
	raw := ctx.Request.Header.RawHeaders()
	// Every line goes into one buffer; the strings returned share it.
	buf := make([]byte, 0, len(raw)+len(contentType))
	var endsBuf [32]int
	ends := endsBuf[:0]
	forEachHeader(raw, func(k, v []byte) bool {
		cookies := bytes.EqualFold(k, []byte("Cookie"))
		if anonymous && (cookies || bytes.EqualFold(k, []byte("X-Forwarded-For")) || bytes.EqualFold(k, []byte("X-Real-Ip"))) {
			return true
		}
		if !cookies {
			buf = append(append(append(buf, k...), ": "...), v...)
			ends = append(ends, len(buf))
			return true
		}
		start := len(buf)
		buf = append(buf, "Cookie: "...)
		n := 0
		forEachCookiePair(v, func(name, value []byte) bool {
			if n > 0 {
				buf = append(buf, ';')
			}
			buf = append(append(append(buf, name...), '='), value...)
			n++
			return true
		})
		if n == 0 {
			buf = buf[:start] // no valid cookie: no Cookie line
		} else {
			ends = append(ends, len(buf))
		}
		return true
	})
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
func (c *Collector) store(ctx *fasthttp.RequestCtx, now time.Time, path, body, rawQuery, nuid string, anonymous bool) int {
	ct := ""
	if ctx.IsPost() {
		ct = strings.ToLower(string(ctx.Request.Header.ContentType()))
	}
	ip := "unknown"
	if !anonymous {
		ip = c.clientAddr(ctx)
	}
	host := string(ctx.Host())
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	cp := &payload.CollectorPayload{
		Schema:        payload.SchemaURI,
		IPAddress:     ip,
		Timestamp:     now.UnixMilli(),
		Encoding:      "UTF-8",
		Collector:     c.name,
		UserAgent:     string(ctx.UserAgent()),
		RefererURI:    string(ctx.Referer()),
		Path:          path,
		Querystring:   rawQuery,
		Body:          body,
		Headers:       headerList(ctx, anonymous, ct),
		ContentType:   ct,
		Hostname:      host,
		NetworkUserID: nuid,
	}
	good, bad := c.split(cp)
	// The writes are not tied to the connection: a request whose payload
	// is being stored finishes storing it, even during shutdown.
	wctx := context.Background()
	// Bad rows first: a request is only acknowledged when everything it
	// produced is stored.
	if len(bad) > 0 {
		if err := c.bad.Write(wctx, bad...); err != nil {
			return c.sinkFailed(err)
		}
		c.m.violations.Add(float64(len(bad)))
	}
	if len(good) > 0 {
		if err := c.good.Write(wctx, good...); err != nil {
			return c.sinkFailed(err)
		}
		c.m.payloads.Add(float64(len(good)))
	}
	return 0
}

// RetryAfter is the Retry-After of a 503 for a payload the log could not
// take (a full disk): trackers that honour it retry then.
const RetryAfter = "5"

// unavailable answers code (503) with Retry-After: the tracker keeps the
// event and sends it again.
func unavailable(ctx *fasthttp.RequestCtx, code int) int {
	ctx.Response.Header.Set("Retry-After", RetryAfter)
	return text(ctx, code, "Service Unavailable")
}

func (c *Collector) sinkFailed(err error) int {
	c.m.sinkErrors.Inc()
	if !errors.Is(err, context.Canceled) {
		// Every request fails the same way while the disk is full: one
		// line per error and interval, with a count.
		c.failures.Log(slog.LevelError, "collector: sink write failed; answering 503", err)
	}
	return fasthttp.StatusServiceUnavailable
}
