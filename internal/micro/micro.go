// Package micro serves a Snowplow Micro compatible testing API over the
// events furrow has processed: /micro/all, /micro/good, /micro/bad,
// /micro/reset and /micro/iglu. Tests send events with real trackers, then
// assert on what came out. Events are kept in memory, newest first, up to
// a configured number; the counts cover everything since the last reset.
package micro

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/furrow-io/furrow/internal/analytics"
	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
)

// GoodEvent is one enriched event, as Micro reports it.
type GoodEvent struct {
	RawEvent  RawEvent        `json:"rawEvent"`
	EventType *string         `json:"eventType"`
	Schema    *string         `json:"schema"`
	Contexts  []string        `json:"contexts"`
	Event     json.RawMessage `json:"event"`
	TSV       string          `json:"tsv"` // furrow addition: the enriched line
}

// RawEvent is the tracker event before enrichment.
type RawEvent struct {
	API struct {
		Vendor  string `json:"vendor"`
		Version string `json:"version"`
	} `json:"api"`
	Parameters  map[string]*string `json:"parameters"`
	ContentType *string            `json:"contentType"`
	Source      struct {
		Name     string  `json:"name"`
		Encoding string  `json:"encoding"`
		Hostname *string `json:"hostname"`
	} `json:"source"`
	Context struct {
		Timestamp  *string  `json:"timestamp"`
		IPAddress  *string  `json:"ipAddress"`
		Useragent  *string  `json:"useragent"`
		RefererURI *string  `json:"refererUri"`
		Headers    []string `json:"headers"`
		UserID     *string  `json:"userId"`
	} `json:"context"`
}

// BadEvent is one bad row.
type BadEvent struct {
	Schema string `json:"schema"` // furrow addition: the bad row's schema
	// Errors holds the bad row as a JSON string, as Micro does.
	Errors []string `json:"errors"`
	vendor string
	ver    string
}

// Store keeps processed events for the API. It is safe for concurrent use.
type Store struct {
	max int

	mu    sync.Mutex
	good  ring[enrich.Good]
	bad   ring[[]byte]
	goodN int
	badN  int
}

// NewStore keeps at most max good and max bad events.
func NewStore(max int) *Store {
	if max <= 0 {
		max = 10000
	}
	return &Store{max: max, good: ring[enrich.Good]{max: max}, bad: ring[[]byte]{max: max}}
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Observe records the results of processing once they are written to the
// outputs (a buffering warehouse may commit them a moment later). It
// only keeps references: the API's JSON is built when it is asked for, so
// observing costs next to nothing under load.
func (s *Store) Observe(good []enrich.Good, bad [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goodN += len(good)
	s.badN += len(bad)
	s.good.add(good)
	s.bad.add(bad)
}

// ring keeps the last max items added, in a buffer of at most max: what
// Micro keeps is what the GC scans while furrow runs, so it keeps no
// more than it serves.
type ring[T any] struct {
	buf  []T
	next int // where the next item goes once buf is full: the oldest
	max  int
}

func (r *ring[T]) add(items []T) {
	if len(items) > r.max {
		items = items[len(items)-r.max:]
	}
	for _, it := range items {
		if len(r.buf) < r.max {
			r.buf = append(r.buf, it)
			continue
		}
		r.buf[r.next] = it
		r.next = (r.next + 1) % r.max
	}
}

// snapshot returns the items, oldest first, in a slice of their own.
func (r *ring[T]) snapshot() []T {
	out := make([]T, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

func goodEvent(g enrich.Good) GoodEvent {
	ev := g.Event
	out := GoodEvent{TSV: string(g.TSV), Contexts: []string{}}
	raw := ev.Raw
	out.RawEvent.API.Vendor, out.RawEvent.API.Version = raw.Vendor, raw.Version
	out.RawEvent.Parameters = make(map[string]*string, len(raw.Params))
	for _, p := range raw.Params {
		if p.Null {
			out.RawEvent.Parameters[p.Name] = nil
		} else {
			v := p.Value
			out.RawEvent.Parameters[p.Name] = &v
		}
	}
	cp := raw.Payload
	out.RawEvent.ContentType = strPtr(raw.ContentType)
	out.RawEvent.Source.Name, out.RawEvent.Source.Encoding, out.RawEvent.Source.Hostname = cp.Collector, cp.Encoding, strPtr(cp.Hostname)
	c := &out.RawEvent.Context
	c.Timestamp = strPtr(time.UnixMilli(cp.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z"))
	c.IPAddress, c.Useragent, c.RefererURI = strPtr(cp.IPAddress), strPtr(cp.UserAgent), strPtr(cp.RefererURI)
	c.Headers, c.UserID = cp.Headers, strPtr(cp.NetworkUserID)
	if c.Headers == nil {
		c.Headers = []string{}
	}
	out.EventType = strPtr(ev.F[event.Event])
	if ev.Unstruct != nil {
		out.Schema = strPtr(ev.Unstruct.Key.URI())
	}
	for _, list := range [][]iglu.SelfDescribing{ev.Contexts, ev.Derived} {
		for _, e := range list {
			out.Contexts = append(out.Contexts, e.Key.URI())
		}
	}
	js, err := analytics.AppendEventJSON(nil, g.TSV)
	if err == nil {
		out.Event = js
	}
	return out
}

func badEvent(row []byte) BadEvent {
	var head struct {
		Schema string `json:"schema"`
		Data   struct {
			Payload json.RawMessage `json:"payload"`
		} `json:"data"`
	}
	json.Unmarshal(row, &head)
	b := BadEvent{Schema: head.Schema, Errors: []string{string(row)}}
	// adapter and enrichment bad rows name the tracker protocol version.
	var api struct {
		Vendor  string `json:"vendor"`
		Version string `json:"version"`
		Raw     struct {
			Vendor  string `json:"vendor"`
			Version string `json:"version"`
		} `json:"raw"`
	}
	if json.Unmarshal(head.Data.Payload, &api) == nil {
		b.vendor, b.ver = api.Vendor, api.Version
		if api.Raw.Vendor != "" {
			b.vendor, b.ver = api.Raw.Vendor, api.Raw.Version
		}
	}
	return b
}

// Reset forgets everything.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.good, s.bad = ring[enrich.Good]{max: s.max}, ring[[]byte]{max: s.max}
	s.goodN, s.badN = 0, 0
}

// Counts returns the number of good and bad events since the last reset.
func (s *Store) Counts() (good, bad int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goodN, s.badN
}

// GoodFilter selects good events (POST /micro/good).
type GoodFilter struct {
	EventType string   `json:"event_type"`
	Schema    string   `json:"schema"`
	Contexts  []string `json:"contexts"`
	Limit     int      `json:"limit"`
}

// Good returns matching events, newest first.
func (s *Store) Good(f GoodFilter) []GoodEvent {
	s.mu.Lock()
	all := s.good.snapshot()
	s.mu.Unlock()
	out := []GoodEvent{}
	for i := len(all) - 1; i >= 0; i-- {
		g := goodEvent(all[i])
		if f.EventType != "" && (g.EventType == nil || *g.EventType != f.EventType) {
			continue
		}
		if f.Schema != "" && (g.Schema == nil || *g.Schema != f.Schema || g.EventType == nil || *g.EventType != "unstruct") {
			continue
		}
		if !containsAll(g.Contexts, f.Contexts) {
			continue
		}
		out = append(out, g)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// BadFilter selects bad events (POST /micro/bad).
type BadFilter struct {
	Vendor  string `json:"vendor"`
	Version string `json:"version"`
	Limit   int    `json:"limit"`
}

// Bad returns matching bad rows, newest first.
func (s *Store) Bad(f BadFilter) []BadEvent {
	s.mu.Lock()
	all := s.bad.snapshot()
	s.mu.Unlock()
	out := []BadEvent{}
	for i := len(all) - 1; i >= 0; i-- {
		b := badEvent(all[i])
		if (f.Vendor != "" && b.vendor != f.Vendor) || (f.Version != "" && b.ver != f.Version) {
			continue
		}
		out = append(out, b)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// Handler serves the /micro/ API. resolver answers /micro/iglu lookups.
func Handler(s *Store, resolver *iglu.Resolver) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/micro/all", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		g, b := s.Counts()
		writeJSON(w, http.StatusOK, map[string]int{"total": g + b, "good": g, "bad": b})
	})
	mux.HandleFunc("/micro/good", func(w http.ResponseWriter, r *http.Request) {
		var f GoodFilter
		if !readFilter(w, r, &f) {
			return
		}
		writeJSON(w, http.StatusOK, s.Good(f))
	})
	mux.HandleFunc("/micro/bad", func(w http.ResponseWriter, r *http.Request) {
		var f BadFilter
		if !readFilter(w, r, &f) {
			return
		}
		writeJSON(w, http.StatusOK, s.Bad(f))
	})
	mux.HandleFunc("/micro/reset", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.Reset()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Reset completed"))
	})
	mux.HandleFunc("/micro/iglu/", func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/micro/iglu/")
		key, err := iglu.ParseSchemaPath(path)
		if err != nil || key.Format != "jsonschema" {
			http.Error(w, "Schema lookup should be in format iglu/{vendor}/{schemaName}/jsonschema/{model}-{revision}-{addition}", http.StatusNotFound)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		schema, err := resolver.Lookup(ctx, key)
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"value": lookupHistory(err)})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(schema.Raw)
	})
	mux.HandleFunc("/micro/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Supported endpoints: /micro/all, /micro/good, /micro/bad, /micro/reset, /micro/iglu/{vendor}/{name}/jsonschema/{version}", http.StatusNotFound)
	})
	return gzipped(mux)
}

func lookupHistory(err error) map[string]any {
	out := map[string]any{}
	var re *iglu.ResolutionError
	if !errors.As(err, &re) {
		out["error"] = err.Error()
		return out
	}
	for _, h := range re.History {
		errs := []map[string]string{}
		for _, f := range h.Errors {
			e := map[string]string{"error": f.Kind}
			if f.Message != "" {
				e["message"] = f.Message
			}
			errs = append(errs, e)
		}
		out[h.Repository] = map[string]any{"errors": errs, "attempts": h.Attempts, "lastAttempt": badrows.Timestamp(h.LastAttempt)}
	}
	return out
}

func readFilter(w http.ResponseWriter, r *http.Request, f any) bool {
	switch r.Method {
	case http.MethodGet:
		return true
	case http.MethodPost:
		body := http.MaxBytesReader(w, r.Body, 1<<20)
		dec := json.NewDecoder(body)
		if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, "invalid filter: "+err.Error(), http.StatusBadRequest)
			return false
		}
		return true
	}
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

type gzipWriter struct {
	http.ResponseWriter
	zw *gzip.Writer
}

func (g gzipWriter) Write(b []byte) (int, error) { return g.zw.Write(b) }

// gzipped compresses responses for clients that accept it, as Micro does.
func gzipped(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		zw := gzip.NewWriter(w)
		defer zw.Close()
		h.ServeHTTP(gzipWriter{w, zw}, r)
	})
}
