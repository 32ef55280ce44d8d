package stats

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/enrich"
	ev "github.com/furrow-io/furrow/internal/event"
)

func good(name, app, platform, tracker string) enrich.Good {
	e := &enrich.Event{}
	e.F[ev.EventName], e.F[ev.AppID], e.F[ev.Platform], e.F[ev.VTracker] = name, app, platform, tracker
	return enrich.Good{Event: e}
}

func TestBadType(t *testing.T) {
	for _, tt := range []struct{ row, want string }{
		{`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0","data":{}}`, "schema_violations"},
		{`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0"}`, "size_violation"},
		{`{"schema":"iglu:com.acme/x/jsonschema/1-0-0"}`, "unknown"},
		{`not json`, "unknown"},
		{`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/`, "unknown"},
	} {
		if got := BadType([]byte(tt.row)); got != tt.want {
			t.Errorf("BadType(%q) = %q, want %q", tt.row, got, tt.want)
		}
	}
}

func TestQuery(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 30, 20, 0, time.UTC)
	r := New()
	r.now = func() time.Time { return now }
	r.Add(Summarize([]enrich.Good{good("page_view", "shop", "web", "js-4.1.0"), good("page_view", "shop", "web", "js-4.1.0")},
		[][]byte{[]byte(`{"schema":"iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-0"}`)}))
	now = now.Add(-10 * time.Minute)
	r.Add(Summarize([]enrich.Good{good("link_click", "blog", "web", "js-4.1.0")}, nil))
	now = now.Add(-2 * time.Hour)
	r.Add(Summarize([]enrich.Good{good("old", "old", "srv", "py-1.0")}, nil))
	now = time.Date(2026, 12, 1, 22, 30, 20, 0, time.UTC)

	w := r.Query(time.Hour, 10)
	if w.Good != 3 || w.Bad != 1 || len(w.Series) != 60 {
		t.Fatalf("1h: good %d bad %d, %d points", w.Good, w.Bad, len(w.Series))
	}
	if last := w.Series[59]; last.Good != 2 || last.Bad != 1 || !last.T.Equal(time.Date(2026, 12, 1, 22, 30, 0, 0, time.UTC)) {
		t.Fatalf("last point %+v", last)
	}
	if fmt.Sprint(w.ByEvent) != "[{page_view 2} {link_click 1}]" || fmt.Sprint(w.BadByType) != "[{schema_violations 1}]" {
		t.Fatalf("by event %v, bad %v", w.ByEvent, w.BadByType)
	}
	if w := r.Query(5*time.Minute, 10); w.Good != 2 {
		t.Fatalf("5m: %d good", w.Good)
	}
	if w := r.Query(3*time.Hour, 1); w.Good != 4 || fmt.Sprint(w.ByEvent) != "[{page_view 2} {other 2}]" {
		t.Fatalf("3h top 1: %d good, %v", w.Good, w.ByEvent)
	}
}

func TestKeysBounded(t *testing.T) {
	r := New()
	var gs []enrich.Good
	for i := range 3 * MaxKeys {
		gs = append(gs, good(fmt.Sprintf("e%d", i), "a", "web", "t"))
	}
	r.Add(Summarize(gs, nil))
	r.Add(Summarize(gs, nil))
	if n := len(r.minutes[r.now().Unix()/60].Dims[ByEvent]); n > MaxKeys+1 {
		t.Fatalf("%d keys kept, want at most %d", n, MaxKeys+1)
	}
	w := r.Query(time.Minute, 5)
	var sum int64
	for _, kc := range w.ByEvent {
		sum += kc.Count
	}
	if len(w.ByEvent) != 6 || sum != int64(2*len(gs)) {
		t.Fatalf("top 5: %d keys, sum %d of %d", len(w.ByEvent), sum, 2*len(gs))
	}
}

func TestSaveLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stats.json")
	r := New()
	r.Add(Summarize([]enrich.Good{good("page_view", "shop", "web", "js")}, nil))
	if err := r.Save(p); err != nil {
		t.Fatal(err)
	}
	r2 := New()
	if err := r2.Load(p); err != nil {
		t.Fatal(err)
	}
	if w := r2.Query(time.Hour, 10); w.Good != 1 || w.ByAppID[0].Key != "shop" {
		t.Fatalf("loaded %+v", w)
	}
	if err := New().Load(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseWindow(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"", time.Hour, true}, {"15m", 15 * time.Minute, true}, {"24h", 24 * time.Hour, true}, {"25h", 0, false}, {"30s", 0, false}, {"90s", 0, false}, {"x", 0, false}} {
		d, err := ParseWindow(tt.in)
		if (err == nil) != tt.ok || d != tt.want {
			t.Errorf("ParseWindow(%q) = %v, %v", tt.in, d, err)
		}
	}
}

func BenchmarkSummarize(b *testing.B) {
	gs := make([]enrich.Good, 1000)
	for i := range gs {
		gs[i] = good("page_view", "shop", "web", "js-4.1.0")
	}
	b.ReportAllocs()
	for b.Loop() {
		Summarize(gs, nil)
	}
}
