// Package admin is furrow's admin surface: one http.Handler with
//
//	/healthz     200 while the process is up
//	/readyz      200 when ready; 503 while starting, draining, or while a
//	             stage or destination is unhealthy or stale
//	/v1/health   each stage's status (JSON)
//	/v1/stats    usage aggregates over a window (JSON; see package stats)
//	/v1/config   the effective configuration, secrets redacted (JSON)
//	/metrics     Prometheus
//	/status      the status page (HTML and JavaScript, embedded)
//	/v1/sql      queries, on the local socket only (Options.SQL)
//	/micro/      Micro's API, when Options.Micro is set
//
// The same handler serves the local socket (no authentication: the
// socket is furrow's user's only) and the network listener, where
// Options.Auth wraps every route but /healthz and /readyz (for load
// balancers; they say ready or not, no more) and /status (a page with
// no figures in it: its script asks the API with the token the page was
// opened with, #token=...), and SQL is never set: no network endpoint
// exposes event rows.
//
// Health figures are derived from furrow's own Prometheus metrics, so
// /v1/health, /metrics and the Grafana dashboard agree: a Sampler takes
// a snapshot every SampleEvery and rates are over the last minute.
package admin

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/stats"
)

//go:embed static/status.html
var statusPage []byte

// Options configure the handler.
type Options struct {
	Role, Version string
	Health        *health.Registry
	Gatherer      prometheus.Gatherer
	Sampler       *Sampler
	Stats         *stats.Recorder // nil: /v1/stats answers 404
	StatsTop      int
	StaleAfter    time.Duration
	// Ready tells whether the process serves (false while starting and
	// draining), with the reason when not.
	Ready func() (bool, string)
	// Config returns the effective configuration, secrets redacted.
	Config func() (any, error)
	// Destinations names the configured destinations and their types.
	Destinations []Destination
	SQL          http.Handler                    // /v1/sql and /sql: the socket's only
	Micro        http.Handler                    // /micro/, optional
	Auth         func(http.Handler) http.Handler // nil: no authentication (the socket)
	Logger       *slog.Logger
}

// Destination is a configured destination.
type Destination struct {
	Name, Type string
	// Waiting returns what the destination has not loaded yet (bytes or
	// records), for the stale flag: a destination with nothing waiting is
	// idle, not stale. Nil: ask the metrics.
	Waiting func() float64
}

// Handler returns the admin surface.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.StatsTop <= 0 {
		o.StatsTop = 10
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = time.Hour
	}
	h := &handler{o: o}
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	open.HandleFunc("GET /readyz", h.readyz)
	priv := http.NewServeMux()
	priv.HandleFunc("GET /v1/health", h.health)
	priv.HandleFunc("GET /v1/stats", h.stats)
	priv.HandleFunc("GET /v1/config", h.config)
	priv.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}))
	// The page holds no figures: it asks /v1/stats and /v1/health, with
	// the token it was opened with, so it is served without one.
	open.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Write(statusPage)
	})
	priv.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/status", http.StatusFound) })
	if o.SQL != nil {
		priv.Handle("/v1/sql", o.SQL)
		priv.Handle("/sql", o.SQL) // furrow sql
	}
	if o.Micro != nil {
		priv.Handle("/micro/", o.Micro)
	}
	var rest http.Handler = priv
	if o.Auth != nil {
		rest = o.Auth(priv)
	}
	open.Handle("/", rest)
	return open
}

type handler struct {
	o Options
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ready, why := h.ready()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		if h.o.Auth != nil {
			why = "not ready" // the reasons are for /v1/health
		}
		fmt.Fprintln(w, why)
		return
	}
	fmt.Fprintln(w, "ready")
}

// ready tells whether the process is ready, and why not.
func (h *handler) ready() (bool, string) {
	if h.o.Ready != nil {
		if ok, why := h.o.Ready(); !ok {
			return false, why
		}
	}
	if err := h.o.Health.Err(); err != nil {
		return false, "unhealthy: " + strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	for _, d := range h.destinations(h.o.Sampler.latest()) {
		if d.Stale {
			return false, fmt.Sprintf("destination %s is stale: last load %s ago, past admin.stale_after (%s), with events waiting", d.Name, fmtAge(d.AgeSeconds), h.o.StaleAfter)
		}
	}
	return true, ""
}

func fmtAge(s *float64) string {
	if s == nil {
		return "never"
	}
	return (time.Duration(*s) * time.Second).String()
}

// Health is /v1/health's answer.
type Health struct {
	Status       string              `json:"status"` // ok, degraded, down
	Ready        bool                `json:"ready"`
	Reason       string              `json:"reason,omitempty"`
	Role         string              `json:"role"`
	Version      string              `json:"version"`
	Components   []Component         `json:"components"`
	Collector    *CollectorHealth    `json:"collector,omitempty"`
	Enrich       *EnrichHealth       `json:"enrich,omitempty"`
	Backlogs     []Backlog           `json:"backlogs"`
	Destinations []DestinationHealth `json:"destinations"`
}

// Component is one stage's state.
type Component struct {
	Name    string     `json:"name"`
	Healthy bool       `json:"healthy"`
	Stopped bool       `json:"stopped,omitempty"`
	Error   string     `json:"error"`
	Since   *time.Time `json:"since,omitempty"`
}

// CollectorHealth is the collector's figures over the last minute.
type CollectorHealth struct {
	Status            string  `json:"status"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	ErrorRate         float64 `json:"error_rate"` // 5xx over all answers
	WindowSeconds     float64 `json:"window_seconds"`
}

// EnrichHealth is the enricher's batch latency over the last minute.
type EnrichHealth struct {
	Status          string  `json:"status"`
	EventsPerSecond float64 `json:"events_per_second"`
	Latency         Latency `json:"latency_seconds"`
}

// Latency of a batch: the average, and the bucket bound the slowest
// batch was under.
type Latency struct {
	Avg float64 `json:"avg"`
	Max float64 `json:"max"`
}

// Backlog is what waits in a log or a consumer group.
type Backlog struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"` // bytes or records
	Value float64 `json:"value"`
}

// DestinationHealth is a destination's freshness.
type DestinationHealth struct {
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Healthy    bool       `json:"healthy"`
	Error      string     `json:"error,omitempty"`
	LastLoad   *time.Time `json:"last_load"`
	AgeSeconds *float64   `json:"age_seconds"`
	Waiting    float64    `json:"waiting"`
	Stale      bool       `json:"stale"`
}

// EnrichLatencyLimit flags the enricher degraded, as Snowplow's console
// does past a second on average.
const EnrichLatencyLimit = time.Second

// CollectorErrorLimit flags the collector degraded past 1% of 5xx.
const CollectorErrorLimit = 0.01

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.Health())
}

// Health computes /v1/health.
func (h *handler) Health() Health {
	now, old := h.o.Sampler.window()
	out := Health{Role: h.o.Role, Version: h.o.Version, Components: []Component{}, Backlogs: []Backlog{}}
	failing := map[string]string{}
	for _, s := range h.o.Health.Status() {
		c := Component{Name: s.Name, Healthy: s.Err == nil, Stopped: s.Stopped}
		if s.Err != nil {
			c.Error = s.Err.Error()
			failing[s.Name] = c.Error
			if !s.Since.IsZero() {
				since := s.Since.UTC()
				c.Since = &since
			}
		}
		out.Components = append(out.Components, c)
	}
	if now.has("furrow_collector_requests_total") {
		all := now.sum("furrow_collector_requests_total", nil) - old.sum("furrow_collector_requests_total", nil)
		errs := now.sum("furrow_collector_requests_total", is5xx) - old.sum("furrow_collector_requests_total", is5xx)
		secs := now.at.Sub(old.at).Seconds()
		c := &CollectorHealth{Status: "ok", WindowSeconds: math.Round(secs*10) / 10}
		if secs > 0 {
			c.RequestsPerSecond = round(all / secs)
		}
		if all > 0 {
			c.ErrorRate = round(errs / all)
		}
		if c.ErrorRate > CollectorErrorLimit {
			c.Status = "degraded"
		}
		out.Collector = c
	}
	if now.has("furrow_enrich_good_total") || now.has("furrow_enrich_batch_seconds") {
		e := &EnrichHealth{Status: "ok"}
		if secs := now.at.Sub(old.at).Seconds(); secs > 0 {
			e.EventsPerSecond = round((now.sum("furrow_enrich_good_total", nil) - old.sum("furrow_enrich_good_total", nil)) / secs)
		}
		e.Latency = latency(now.hist("furrow_enrich_batch_seconds"), old.hist("furrow_enrich_batch_seconds"))
		if _, bad := failing["enrich"]; bad || e.Latency.Avg > EnrichLatencyLimit.Seconds() {
			e.Status = "degraded"
		}
		out.Enrich = e
	}
	out.Backlogs = backlogs(now)
	out.Destinations = h.destinations(now)
	out.Ready, out.Reason = h.ready()
	out.Status = "ok"
	if len(failing) > 0 || !out.Ready || (out.Collector != nil && out.Collector.Status != "ok") || (out.Enrich != nil && out.Enrich.Status != "ok") {
		out.Status = "degraded"
	}
	for _, c := range out.Components {
		if c.Stopped {
			out.Status = "down"
		}
	}
	return out
}

func round(f float64) float64 { return math.Round(f*1000) / 1000 }

func is5xx(labels map[string]string) bool { return strings.HasPrefix(labels["code"], "5") }

// latency is the average and the slowest bucket's bound between two
// snapshots of a histogram.
func latency(now, old *dto.Histogram) Latency {
	var l Latency
	if now == nil {
		return l
	}
	n := float64(now.GetSampleCount())
	s := now.GetSampleSum()
	if old != nil {
		n -= float64(old.GetSampleCount())
		s -= old.GetSampleSum()
	}
	if n <= 0 {
		return l
	}
	l.Avg = round(s / n)
	prev := 0.0
	for i, b := range now.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if old != nil && i < len(old.GetBucket()) {
			c -= float64(old.GetBucket()[i].GetCumulativeCount())
		}
		if c > prev {
			l.Max = b.GetUpperBound()
		}
		prev = c
	}
	if prev < n { // past the last bound
		l.Max = math.Inf(1)
	}
	if math.IsInf(l.Max, 1) {
		l.Max = -1 // JSON has no infinity: past the largest bucket
	}
	return l
}

// backlogs lists the logs' and consumer groups' backlogs.
func backlogs(s *snapshot) []Backlog {
	out := []Backlog{}
	for _, m := range s.series("furrow_log_backlog_bytes") {
		out = append(out, Backlog{"log/" + m.labels["log"], "bytes", m.value})
	}
	for _, m := range s.series("furrow_destination_backlog_bytes") {
		out = append(out, Backlog{"destination/" + m.labels["destination"], "bytes", m.value})
	}
	groups := map[string]float64{}
	for _, m := range s.series("furrow_kafka_consumer_lag") {
		groups[m.labels["group"]] += m.value
	}
	for g, v := range groups {
		out = append(out, Backlog{"kafka/" + g, "records", v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// destinations computes each destination's freshness.
func (h *handler) destinations(s *snapshot) []DestinationHealth {
	out := []DestinationHealth{}
	last := map[string]float64{}
	for _, m := range s.series("furrow_destination_last_load_timestamp_seconds") {
		last[m.labels["destination"]] = m.value
	}
	duck := s.series("furrow_duckdb_last_load_timestamp_seconds")
	status := map[string]health.Status{}
	for _, st := range h.o.Health.Status() {
		status[st.Name] = st
	}
	for _, d := range h.o.Destinations {
		dh := DestinationHealth{Name: d.Name, Type: d.Type, Healthy: true}
		ts, ok := last[d.Name]
		if !ok && d.Type == "duckdb" && len(duck) == 1 && len(h.o.Destinations) == 1 {
			ts, ok = duck[0].value, true
		}
		if ok && ts > 0 {
			t := time.Unix(0, int64(ts*1e9)).UTC()
			age := math.Round(s.at.Sub(t).Seconds()*10) / 10
			dh.LastLoad, dh.AgeSeconds = &t, &age
		}
		if st, ok := status["destination/"+d.Name]; ok && st.Err != nil {
			dh.Healthy, dh.Error = false, st.Err.Error()
		}
		if d.Waiting != nil {
			dh.Waiting = d.Waiting()
		}
		old := dh.AgeSeconds == nil || *dh.AgeSeconds > h.o.StaleAfter.Seconds()
		dh.Stale = old && dh.Waiting > 0 && s.at.Sub(h.o.Sampler.started) > h.o.StaleAfter
		out = append(out, dh)
	}
	return out
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	if h.o.Stats == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this role counts no events (furrow collect, furrow load): ask furrow enrich or furrow run"})
		return
	}
	d, err := stats.ParseWindow(r.URL.Query().Get("window"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, h.o.Stats.Query(d, h.o.StatsTop))
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	if h.o.Config == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no configuration"})
		return
	}
	c, err := h.o.Config()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// SampleEvery is how often the Sampler snapshots the metrics.
const SampleEvery = 5 * time.Second

// sampleWindow is how far back rates look.
const sampleWindow = time.Minute

// Sampler keeps recent snapshots of the metrics.
type Sampler struct {
	g       prometheus.Gatherer
	started time.Time

	mu    sync.Mutex
	snaps []*snapshot // oldest first, within sampleWindow
}

// NewSampler snapshots g once; Sample adds snapshots.
func NewSampler(g prometheus.Gatherer) *Sampler {
	s := &Sampler{g: g, started: time.Now()}
	s.Sample()
	return s
}

// Sample takes a snapshot now (the caller runs it every SampleEvery).
func (s *Sampler) Sample() {
	snap := take(s.g)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps = append(s.snaps, snap)
	for len(s.snaps) > 2 && snap.at.Sub(s.snaps[1].at) >= sampleWindow {
		s.snaps = s.snaps[1:]
	}
}

// window returns a fresh snapshot and the oldest one kept.
func (s *Sampler) window() (now, old *snapshot) {
	now = take(s.g)
	s.mu.Lock()
	defer s.mu.Unlock()
	old = now
	if len(s.snaps) > 0 {
		old = s.snaps[0]
	}
	return now, old
}

// latest is the newest snapshot taken by Sample: /readyz answers from
// it, so that a probe costs no gathering (which asks the brokers for the
// consumer lag).
func (s *Sampler) latest() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snaps[len(s.snaps)-1]
}

// Lag is the records consumer group group has not committed, summed
// over its partitions, as of the latest sample.
func (s *Sampler) Lag(group string) float64 {
	return s.latest().sum("furrow_kafka_consumer_lag", func(l map[string]string) bool { return l["group"] == group })
}

// snapshot is one gathering of the metrics.
type snapshot struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

type sample struct {
	labels map[string]string
	value  float64
}

func take(g prometheus.Gatherer) *snapshot {
	s := &snapshot{at: time.Now(), families: map[string]*dto.MetricFamily{}}
	mfs, _ := g.Gather() // a failed collector leaves its families out
	for _, mf := range mfs {
		s.families[mf.GetName()] = mf
	}
	return s
}

func (s *snapshot) has(name string) bool { return s.families[name] != nil }

func (s *snapshot) series(name string) []sample {
	mf := s.families[name]
	if mf == nil {
		return nil
	}
	var out []sample
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		out = append(out, sample{l, v})
	}
	return out
}

func (s *snapshot) sum(name string, match func(map[string]string) bool) float64 {
	t := 0.0
	for _, m := range s.series(name) {
		if match == nil || match(m.labels) {
			t += m.value
		}
	}
	return t
}

func (s *snapshot) hist(name string) *dto.Histogram {
	mf := s.families[name]
	if mf == nil || len(mf.GetMetric()) == 0 {
		return nil
	}
	return mf.GetMetric()[0].GetHistogram()
}
