// Package stats keeps the aggregate usage figures of a furrow's agent
// API (/v1/stats): good events and bad rows per minute, and counts by
// event name, app_id, platform, tracker and bad row type. Only aggregates
// are kept, never an event's content, and the number of distinct keys of
// each dimension is bounded (MaxKeys per minute, the rest under Other).
//
// Counts are added once the outputs they describe are stored and
// acknowledged (the pipeline calls Add after its commit), so a batch read
// again after a crash is counted at its one commit. Minutes are kept for
// Retention and saved to a file (Save, Load) so that a restart keeps the
// window; counts added after the last save before a crash are lost,
// never doubled.
package stats

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/furrow-io/furrow/internal/enrich"
	ev "github.com/furrow-io/furrow/internal/event"
)

// Dimensions, as named in the API.
const (
	ByEvent    = "by_event"
	ByAppID    = "by_app_id"
	ByPlatform = "by_platform"
	ByTracker  = "by_tracker"
	BadByType  = "bad_by_type"
)

// Other is the key of what is beyond the top keys.
const Other = "other"

// MaxKeys bounds the distinct keys of a dimension in one minute.
const MaxKeys = 200

// Retention is how long minutes are kept: the longest window.
const Retention = 24 * time.Hour

// Counts are the figures of a batch, or of a minute.
type Counts struct {
	Good, Bad int64
	Dims      map[string]map[string]int64
}

func (c *Counts) add(dim, key string, n int64) {
	if c.Dims == nil {
		c.Dims = map[string]map[string]int64{}
	}
	m := c.Dims[dim]
	if m == nil {
		m = map[string]int64{}
		c.Dims[dim] = m
	}
	if _, ok := m[key]; !ok && len(m) >= MaxKeys {
		key = Other
	}
	m[key] += n
}

// merge adds o to c.
func (c *Counts) merge(o *Counts) {
	c.Good += o.Good
	c.Bad += o.Bad
	for dim, m := range o.Dims {
		for k, n := range m {
			c.add(dim, k, n)
		}
	}
}

// Summarize counts what one batch gave: its events and bad rows.
func Summarize(good []enrich.Good, bad [][]byte) *Counts {
	c := &Counts{Good: int64(len(good)), Bad: int64(len(bad))}
	// One lookup per event: a batch has few distinct combinations.
	combos := map[[4]string]int64{}
	for _, g := range good {
		if g.Event == nil {
			continue
		}
		f := &g.Event.F
		combos[[4]string{f[ev.EventName], f[ev.AppID], f[ev.Platform], f[ev.VTracker]}]++
	}
	for k, n := range combos {
		c.add(ByEvent, keyOf(k[0]), n)
		c.add(ByAppID, keyOf(k[1]), n)
		c.add(ByPlatform, keyOf(k[2]), n)
		c.add(ByTracker, keyOf(k[3]), n)
	}
	for _, b := range bad {
		c.add(BadByType, BadType(b), 1)
	}
	return c
}

// SummarizeBad counts bad rows only (the collector's size violations).
func SummarizeBad(bad [][]byte) *Counts { return Summarize(nil, bad) }

// keyOf bounds a key's length: keys are labels, not content.
func keyOf(s string) string {
	if s == "" {
		return "(none)"
	}
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

var badSchemaPrefix = []byte(`"schema":"iglu:com.snowplowanalytics.snowplow.badrows/`)

// BadType is the name of a bad row's schema (schema_violations,
// size_violation, ...), "unknown" if it has none.
func BadType(row []byte) string {
	i := bytes.Index(row, badSchemaPrefix)
	if i < 0 {
		return "unknown"
	}
	rest := row[i+len(badSchemaPrefix):]
	j := bytes.IndexByte(rest, '/')
	if j <= 0 || j > 64 {
		return "unknown"
	}
	return string(rest[:j])
}

// Recorder keeps minutes of counts. Safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	minutes map[int64]*Counts // by Unix minute
	now     func() time.Time
	dirty   bool
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{minutes: map[int64]*Counts{}, now: time.Now} }

// Add counts c in the current minute.
func (r *Recorder) Add(c *Counts) {
	if r == nil || c == nil || (c.Good == 0 && c.Bad == 0) {
		return
	}
	m := r.now().Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.minutes[m]
	if cur == nil {
		cur = &Counts{}
		r.minutes[m] = cur
		r.expire(m)
	}
	cur.merge(c)
	r.dirty = true
}

// expire drops minutes past Retention. Under mu.
func (r *Recorder) expire(now int64) {
	oldest := now - int64(Retention/time.Minute)
	for m := range r.minutes {
		if m <= oldest {
			delete(r.minutes, m)
		}
	}
}

// Point is one minute of a window.
type Point struct {
	T    time.Time `json:"t"`
	Good int64     `json:"good"`
	Bad  int64     `json:"bad"`
}

// KeyCount is one key of a dimension.
type KeyCount struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// Window is the API's answer for a window.
type Window struct {
	Window      string     `json:"window"`
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	StepSeconds int        `json:"step_seconds"`
	Good        int64      `json:"good"`
	Bad         int64      `json:"bad"`
	Series      []Point    `json:"series"`
	ByEvent     []KeyCount `json:"by_event"`
	ByAppID     []KeyCount `json:"by_app_id"`
	ByPlatform  []KeyCount `json:"by_platform"`
	ByTracker   []KeyCount `json:"by_tracker"`
	BadByType   []KeyCount `json:"bad_by_type"`
}

// ParseWindow reads a window such as 1h or 15m: whole minutes, 1m to
// Retention.
func ParseWindow(s string) (time.Duration, error) {
	if s == "" {
		return time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("window %q: %v (use a duration such as 15m, 1h or 24h)", s, err)
	}
	if d < time.Minute || d > Retention || d%time.Minute != 0 {
		return 0, fmt.Errorf("window %q: must be whole minutes from 1m to %s", s, Retention)
	}
	return d, nil
}

// Query returns the last d (whole minutes, the current one included)
// with the top keys of each dimension, the rest summed under Other.
func (r *Recorder) Query(d time.Duration, top int) Window {
	n := int64(d / time.Minute)
	now := r.now().UTC()
	cur := now.Unix() / 60
	w := Window{Window: d.String(), From: time.Unix((cur-n+1)*60, 0).UTC(), To: now, StepSeconds: 60}
	total := &Counts{}
	r.mu.Lock()
	for m := cur - n + 1; m <= cur; m++ {
		p := Point{T: time.Unix(m*60, 0).UTC()}
		if c := r.minutes[m]; c != nil {
			p.Good, p.Bad = c.Good, c.Bad
			total.Good += c.Good
			total.Bad += c.Bad
			for dim, keys := range c.Dims {
				if total.Dims == nil {
					total.Dims = map[string]map[string]int64{}
				}
				if total.Dims[dim] == nil {
					total.Dims[dim] = map[string]int64{}
				}
				for k, v := range keys {
					total.Dims[dim][k] += v // unbounded here: cut to top below
				}
			}
		}
		w.Series = append(w.Series, p)
	}
	r.mu.Unlock()
	w.Good, w.Bad = total.Good, total.Bad
	w.ByEvent = topOf(total.Dims[ByEvent], top)
	w.ByAppID = topOf(total.Dims[ByAppID], top)
	w.ByPlatform = topOf(total.Dims[ByPlatform], top)
	w.ByTracker = topOf(total.Dims[ByTracker], top)
	w.BadByType = topOf(total.Dims[BadByType], top)
	return w
}

// topOf sorts keys by count (then name) and sums those past top under
// Other.
func topOf(m map[string]int64, top int) []KeyCount {
	out := make([]KeyCount, 0, len(m))
	var other int64
	for k, v := range m {
		if k == Other {
			other += v
			continue
		}
		out = append(out, KeyCount{k, v})
	}
	slices.SortFunc(out, func(a, b KeyCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if top > 0 && len(out) > top {
		for _, kc := range out[top:] {
			other += kc.Count
		}
		out = out[:top]
	}
	if other > 0 {
		out = append(out, KeyCount{Other, other})
	}
	return out
}

// file is what Save writes.
type file struct {
	Version int               `json:"version"`
	Minutes map[int64]*Counts `json:"minutes"`
}

// Save writes the minutes to path (atomically, mode 0600) if anything
// was added since the last Save.
func (r *Recorder) Save(path string) error {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(file{Version: 1, Minutes: r.minutes})
	r.dirty = false
	r.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load reads what Save wrote; a missing file is no error, a damaged one
// is reported and ignored by the caller.
func (r *Recorder) Load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if f.Version != 1 {
		return fmt.Errorf("%s: version %d, want 1", path, f.Version)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for m, c := range f.Minutes {
		if c != nil {
			r.minutes[m] = c
		}
	}
	r.expire(r.now().Unix() / 60)
	return nil
}
