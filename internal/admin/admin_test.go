package admin

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/health"
	"github.com/furrow-io/furrow/internal/stats"
)

// TestReadyz: starting, serving, a failing destination, a stale one and
// draining, as /readyz answers them on the socket and on the network.
func TestReadyz(t *testing.T) {
	reg := prometheus.NewRegistry()
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "furrow_destination_last_load_timestamp_seconds", Help: "h"}, []string{"destination"})
	reg.MustRegister(last)
	log := slog.New(slog.DiscardHandler)
	hr := health.New(log, 0)
	state := "starting"
	waiting := 0.0
	smp := NewSampler(reg)
	smp.started = time.Now().Add(-2 * time.Hour)
	o := Options{Role: "run", Health: hr, Gatherer: reg, Sampler: smp, Stats: stats.New(), StaleAfter: time.Hour, Logger: log,
		Ready: func() (bool, string) {
			if state != "serving" {
				return false, state
			}
			return true, ""
		},
		Destinations: []Destination{{Name: "pg", Type: "postgres", Waiting: func() float64 { return waiting }}}}
	local := httptest.NewServer(Handler(o))
	defer local.Close()
	o.Auth = func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	}
	network := httptest.NewServer(Handler(o))
	defer network.Close()
	get := func(base, path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	pg := hr.Component("destination/pg")
	for _, tt := range []struct {
		name  string
		setup func()
		code  int
		says  string
	}{
		{"starting", func() {}, 503, "starting"},
		{"serving, never loaded, nothing waiting", func() { state = "serving" }, 200, "ready"},
		{"destination failing", func() { pg.Fail(errors.New("connection refused")) }, 503, "destination/pg: connection refused"},
		{"recovered", func() { pg.OK() }, 200, "ready"},
		{"stale: loaded 2h ago, events waiting", func() {
			last.WithLabelValues("pg").Set(float64(time.Now().Add(-2 * time.Hour).Unix()))
			waiting = 10
			smp.Sample() // /readyz answers from the latest sample
		}, 503, "destination pg is stale: last load 2h0m0s ago"},
		{"stale but nothing waiting: idle", func() { waiting = 0 }, 200, "ready"},
		{"draining", func() { state = "draining: furrow is stopping" }, 503, "draining"},
	} {
		tt.setup()
		code, body := get(local.URL, "/readyz")
		if code != tt.code || !strings.Contains(body, tt.says) {
			t.Errorf("%s: socket /readyz %d %q, want %d with %q", tt.name, code, body, tt.code, tt.says)
		}
		ncode, nbody := get(network.URL, "/readyz")
		if ncode != tt.code || (tt.code == 503 && nbody != "not ready") {
			t.Errorf("%s: network /readyz %d %q: want %d, and no reasons", tt.name, ncode, nbody, tt.code)
		}
	}
	if code, _ := get(network.URL, "/v1/health"); code != 401 {
		t.Errorf("network /v1/health without the auth's consent: %d", code)
	}
	if code, _ := get(network.URL, "/healthz"); code != 200 {
		t.Errorf("network /healthz: %d", code)
	}
	if code, _ := get(network.URL, "/v1/sql"); code != 401 {
		t.Errorf("network /v1/sql: %d", code) // no route at all behind the auth
	}
	if code, _ := get(local.URL, "/v1/stats?window=10s"); code != 400 {
		t.Errorf("socket /v1/stats?window=10s: %d", code)
	}
}

func TestLatency(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Help: "h", Buckets: []float64{0.01, 0.1, 1}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	old := take(reg)
	for _, v := range []float64{0.005, 0.05, 0.05, 0.5} {
		h.Observe(v)
	}
	l := latency(take(reg).hist("x"), old.hist("x"))
	if l.Avg != 0.151 || l.Max != 1 {
		t.Fatalf("latency %+v, want avg 0.151 and max 1", l)
	}
	h.Observe(5)
	if l := latency(take(reg).hist("x"), old.hist("x")); l.Max != -1 {
		t.Fatalf("past the last bucket: max %v, want -1", l.Max)
	}
}
