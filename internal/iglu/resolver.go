package iglu

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// RepoLookup is the lookup history of one repository for one schema, in
// the shape Snowplow bad rows use (ResolutionError.lookupHistory).
type RepoLookup struct {
	Repository  string
	Errors      []LookupFailure
	Attempts    int
	LastAttempt time.Time
}

// ResolutionError says a schema could not be found in any repository.
type ResolutionError struct {
	Key     SchemaKey
	History []RepoLookup
}

func (e *ResolutionError) Error() string {
	var parts []string
	for _, h := range e.History {
		for _, f := range h.Errors {
			parts = append(parts, h.Repository+": "+f.Error())
		}
	}
	return fmt.Sprintf("could not resolve %s (%s)", e.Key.URI(), strings.Join(parts, "; "))
}

// NotFoundEverywhere reports whether every repository answered NotFound,
// as opposed to a repository being unreachable.
func (e *ResolutionError) NotFoundEverywhere() bool {
	for _, h := range e.History {
		for _, f := range h.Errors {
			if f.Kind != FailNotFound {
				return false
			}
		}
	}
	return true
}

// ResolverOptions configures a Resolver.
type ResolverOptions struct {
	Repositories []Repository
	CacheSize    int           // schemas kept; default 500
	CacheTTL     time.Duration // 0 keeps found schemas until evicted
	// NegativeTTL bounds how long a failed lookup is remembered before the
	// repositories are asked again; default 10s.
	NegativeTTL time.Duration
	Now         func() time.Time
}

// Resolver finds schemas in its repositories, compiles them and caches the
// result. It is safe for concurrent use.
type Resolver struct {
	repos    []Repository
	size     int
	ttl, neg time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[SchemaKey]*list.Element
	lru   *list.List
}

type cacheEntry struct {
	key     SchemaKey
	ready   chan struct{}
	schema  *Schema
	err     error
	expires time.Time // zero: never
}

// NewResolver builds a resolver over repos.
func NewResolver(o ResolverOptions) *Resolver {
	if o.CacheSize <= 0 {
		o.CacheSize = 500
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Resolver{
		repos: o.Repositories, size: o.CacheSize, ttl: o.CacheTTL, neg: o.NegativeTTL, now: o.Now,
		cache: map[SchemaKey]*list.Element{}, lru: list.New(),
	}
}

// Repositories returns the configured repositories.
func (r *Resolver) Repositories() []Repository { return r.repos }

// Lookup returns the compiled schema for key, or a *ResolutionError, or a
// *SchemaError when the schema was found but is not a usable JSON Schema.
func (r *Resolver) Lookup(ctx context.Context, key SchemaKey) (*Schema, error) {
	now := r.now()
	r.mu.Lock()
	if el, ok := r.cache[key]; ok {
		e := el.Value.(*cacheEntry)
		select {
		case <-e.ready:
			if e.expires.IsZero() || now.Before(e.expires) {
				r.lru.MoveToFront(el)
				r.mu.Unlock()
				return e.schema, e.err
			}
			r.lru.Remove(el)
			delete(r.cache, key)
		default:
			// Another goroutine is fetching it.
			r.mu.Unlock()
			select {
			case <-e.ready:
				return e.schema, e.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	e := &cacheEntry{key: key, ready: make(chan struct{})}
	r.cache[key] = r.lru.PushFront(e)
	for r.lru.Len() > r.size {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.cache, old.Value.(*cacheEntry).key)
	}
	r.mu.Unlock()

	e.schema, e.err = r.fetch(ctx, key)
	switch {
	case e.err != nil:
		e.expires = r.now().Add(r.neg)
		if r.ttl > 0 && r.ttl < r.neg {
			e.expires = r.now().Add(r.ttl)
		}
	case r.ttl > 0:
		e.expires = r.now().Add(r.ttl)
	}
	if ctx.Err() != nil && e.err != nil {
		// Do not remember a failure caused by our own cancellation.
		r.mu.Lock()
		if el, ok := r.cache[key]; ok && el.Value == e {
			r.lru.Remove(el)
			delete(r.cache, key)
		}
		r.mu.Unlock()
	}
	close(e.ready)
	return e.schema, e.err
}

// ordered returns the repositories to ask for key: those whose vendor
// prefix matches first, then local before HTTP, then by priority.
func (r *Resolver) ordered(key SchemaKey) []Repository {
	repos := append([]Repository(nil), r.repos...)
	matches := func(rp Repository) bool {
		for _, p := range rp.VendorPrefixes() {
			if strings.HasPrefix(key.Vendor, p) {
				return true
			}
		}
		return false
	}
	sort.SliceStable(repos, func(i, j int) bool {
		mi, mj := matches(repos[i]), matches(repos[j])
		if mi != mj {
			return mi
		}
		if repos[i].Class() != repos[j].Class() {
			return repos[i].Class() < repos[j].Class()
		}
		return repos[i].Priority() < repos[j].Priority()
	})
	return repos
}

// repoAttempts is how often a repository that fails (other than NotFound)
// is asked within one lookup.
const repoAttempts = 3

func (r *Resolver) fetch(ctx context.Context, key SchemaKey) (*Schema, error) {
	var history []RepoLookup
	for _, repo := range r.ordered(key) {
		h := RepoLookup{Repository: repo.Name()}
		for attempt := 0; attempt < repoAttempts; attempt++ {
			h.Attempts++
			h.LastAttempt = r.now()
			raw, err := repo.Lookup(ctx, key)
			if err == nil {
				return compile(key, raw, r.refLoader(ctx))
			}
			var lf *LookupFailure
			if !errors.As(err, &lf) {
				lf = &LookupFailure{FailRepo, err.Error()}
			}
			h.Errors = append(h.Errors, *lf)
			if lf.Kind == FailNotFound || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
			}
		}
		history = append(history, h)
	}
	return nil, &ResolutionError{Key: key, History: history}
}

// refLoader fetches schemas referenced by $ref from the same repositories,
// uncompiled and uncached (references are rare and compiled once into the
// referring schema, which is cached).
func (r *Resolver) refLoader(ctx context.Context) RefLoader {
	return func(key SchemaKey) ([]byte, error) {
		for _, repo := range r.ordered(key) {
			if raw, err := repo.Lookup(ctx, key); err == nil {
				return raw, nil
			}
		}
		return nil, fmt.Errorf("schema %s not found in any repository", key.URI())
	}
}

// Resolver configuration in Snowplow's resolver-config format.

// ResolverConfigSchema is the criterion a resolver config must match.
var ResolverConfigSchema = MustCriterion("iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-*")

type resolverConfig struct {
	Schema string `json:"schema"`
	Data   struct {
		CacheSize    *int `json:"cacheSize"`
		CacheTTL     *int `json:"cacheTtl"`
		Repositories []struct {
			Name           string   `json:"name"`
			Priority       int      `json:"priority"`
			VendorPrefixes []string `json:"vendorPrefixes"`
			Connection     struct {
				Embedded *struct {
					Path string `json:"path"`
				} `json:"embedded"`
				HTTP *struct {
					URI    string  `json:"uri"`
					APIKey *string `json:"apikey"`
				} `json:"http"`
			} `json:"connection"`
		} `json:"repositories"`
	} `json:"data"`
}

// ParseResolverConfig reads a resolver-config self-describing JSON. An
// "embedded" connection names a directory on disk holding schemas/; the
// path "/iglu-client-embedded" (Snowplow's classpath default) means the
// schemas built into furrow.
func ParseResolverConfig(b []byte, client *http.Client) (ResolverOptions, error) {
	var c resolverConfig
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return ResolverOptions{}, fmt.Errorf("resolver config: %w", err)
	}
	key, err := ParseSchemaKey(c.Schema)
	if err != nil || !ResolverConfigSchema.Matches(key) {
		return ResolverOptions{}, fmt.Errorf("resolver config: schema %q is not %s", c.Schema, ResolverConfigSchema)
	}
	var o ResolverOptions
	if c.Data.CacheSize == nil {
		return ResolverOptions{}, errors.New("resolver config: cacheSize is required")
	}
	o.CacheSize = *c.Data.CacheSize
	if c.Data.CacheTTL != nil {
		o.CacheTTL = time.Duration(*c.Data.CacheTTL) * time.Second
	}
	if c.Data.Repositories == nil {
		return ResolverOptions{}, errors.New("resolver config: repositories is required")
	}
	for i, rc := range c.Data.Repositories {
		if rc.Name == "" {
			return ResolverOptions{}, fmt.Errorf("resolver config: repository %d has no name", i)
		}
		switch {
		case rc.Connection.Embedded != nil && rc.Connection.HTTP == nil:
			p := rc.Connection.Embedded.Path
			if p == "/iglu-client-embedded" || p == "/iglu-client-embedded/" {
				o.Repositories = append(o.Repositories, Builtin(rc.Name, rc.Priority, rc.VendorPrefixes))
				continue
			}
			repo, err := NewDirRepo(rc.Name, p, rc.Priority, rc.VendorPrefixes)
			if err != nil {
				return ResolverOptions{}, err
			}
			o.Repositories = append(o.Repositories, repo)
		case rc.Connection.HTTP != nil && rc.Connection.Embedded == nil:
			if !strings.HasPrefix(rc.Connection.HTTP.URI, "http://") && !strings.HasPrefix(rc.Connection.HTTP.URI, "https://") {
				return ResolverOptions{}, fmt.Errorf("resolver config: repository %q: uri %q is not http(s)", rc.Name, rc.Connection.HTTP.URI)
			}
			key := ""
			if rc.Connection.HTTP.APIKey != nil {
				key = *rc.Connection.HTTP.APIKey
			}
			o.Repositories = append(o.Repositories, NewHTTPRepo(rc.Name, rc.Connection.HTTP.URI, key, rc.Priority, rc.VendorPrefixes, client))
		default:
			return ResolverOptions{}, fmt.Errorf("resolver config: repository %q needs exactly one of embedded or http", rc.Name)
		}
	}
	return o, nil
}
