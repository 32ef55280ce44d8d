// Package health keeps track of whether furrow's components are doing
// their work, so that a stage that stopped or keeps failing is visible
// at once: in the log, in /sink-health and in a metric.
//
// A component reports each outcome: Fail with the error when an attempt
// failed (it will retry), OK when one succeeded, Stop when it gave up for
// good. The first failure is logged at once with its cause; the same
// error repeating is logged at a bounded rate with a count (logx.Limiter);
// recovery is logged with how long the failure lasted. Checks are
// functions polled when health is asked for (a log's disk probe).
package health

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/logx"
)

// Registry holds the components of one furrow. It is safe for
// concurrent use.
type Registry struct {
	log     *slog.Logger
	limit   *logx.Limiter
	mu      sync.Mutex
	comps   map[string]*Component
	checks  map[string]func() error
	failing map[string]bool // checks last seen failing, to log changes
}

// New returns a Registry logging to log; repeated failures are logged at
// most once per every (default 10 s).
func New(log *slog.Logger, every time.Duration) *Registry {
	if log == nil {
		log = slog.Default()
	}
	return &Registry{log: log, limit: logx.NewLimiter(log, every), comps: map[string]*Component{},
		checks: map[string]func() error{}, failing: map[string]bool{}}
}

// Component returns the component named name, creating it healthy.
func (r *Registry) Component(name string) *Component {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.comps[name]; ok {
		return c
	}
	c := &Component{r: r, name: name}
	r.comps[name] = c
	return c
}

// Check adds a health check, polled by Err and Status: f returns nil
// when healthy.
func (r *Registry) Check(name string, f func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = f
}

// Status is one component's state.
type Status struct {
	Name    string
	Err     error     // nil when healthy
	Stopped bool      // gave up: furrow stops
	Since   time.Time // when the current failure started
	Fails   int       // failed attempts since then
}

// Status returns every component and check, sorted by name.
func (r *Registry) Status() []Status {
	r.mu.Lock()
	comps := make([]*Component, 0, len(r.comps))
	for _, c := range r.comps {
		comps = append(comps, c)
	}
	checks := make(map[string]func() error, len(r.checks))
	for n, f := range r.checks {
		checks[n] = f
	}
	r.mu.Unlock()
	var out []Status
	for _, c := range comps {
		out = append(out, c.status())
	}
	for n, f := range checks {
		err := f()
		r.noteCheck(n, err)
		out = append(out, Status{Name: n, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// noteCheck logs a check turning unhealthy or healthy.
func (r *Registry) noteCheck(name string, err error) {
	r.mu.Lock()
	was := r.failing[name]
	r.failing[name] = err != nil
	r.mu.Unlock()
	switch {
	case err != nil && !was:
		r.log.Error("health: "+name+" is unhealthy", "err", err)
	case err == nil && was:
		r.log.Info("health: " + name + " is healthy again")
	}
}

// Err returns nil when every component and check is healthy, else their
// errors, each prefixed with its name.
func (r *Registry) Err() error { return r.ErrOf(func(string) bool { return true }) }

// ErrOf is Err for the components and checks whose name match
// accepts.
func (r *Registry) ErrOf(match func(name string) bool) error {
	var errs []error
	for _, s := range r.Status() {
		if s.Err != nil && match(s.Name) {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, s.Err))
		}
	}
	return errors.Join(errs...)
}

// Healthy reports whether Err is nil.
func (r *Registry) Healthy() bool { return r.Err() == nil }

// Register adds the gauge furrow_component_healthy{component} to reg.
func (r *Registry) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{r})
}

var healthyDesc = prometheus.NewDesc("furrow_component_healthy",
	"1 if the component is doing its work, 0 if it is failing (and retrying) or has stopped.", []string{"component"}, nil)

type collector struct{ r *Registry }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- healthyDesc }
func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.r.Status() {
		v := 1.0
		if s.Err != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, v, s.Name)
	}
}

// Component is one stage's health.
type Component struct {
	r    *Registry
	name string

	mu      sync.Mutex
	err     error
	stopped bool
	since   time.Time
	fails   int
}

// Fail records a failed attempt that will be retried.
func (c *Component) Fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.since = time.Now()
	}
	c.err = err
	c.fails++
	c.mu.Unlock()
	c.r.limit.Log(slog.LevelError, c.name+": failing; retrying", err)
}

// OK records a successful attempt, ending a failure.
func (c *Component) OK() {
	c.mu.Lock()
	if c.err == nil || c.stopped {
		c.mu.Unlock()
		return
	}
	since, fails := c.since, c.fails
	c.err, c.fails = nil, 0
	c.mu.Unlock()
	c.r.limit.Reset(c.name + ": failing; retrying")
	c.r.log.Info(c.name+": working again", "failed_attempts", fails, "after", time.Since(since).Round(time.Millisecond).String())
}

// Stop records that the component gave up with err: it stays unhealthy.
func (c *Component) Stop(err error) {
	if err == nil {
		err = errors.New("stopped")
	}
	c.mu.Lock()
	if c.err == nil {
		c.since = time.Now()
	}
	c.err, c.stopped = err, true
	c.mu.Unlock()
	c.r.log.Error(c.name+": stopped", "err", err)
}

// Err returns the component's current error, nil when healthy.
func (c *Component) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Component) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Name: c.name, Err: c.err, Stopped: c.stopped, Since: c.since, Fails: c.fails}
}
