package pseudo

import (
	"strings"

	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
)

// Policy applies a Config under a key. It is safe for concurrent use.
type Policy struct {
	h     *Hasher
	keep  [ev.NumFields]bool
	url   [ev.NumFields]urlPart // keep_path: how each URL column is rewritten
	rules []rule
	keyID string
	// keyEntity is the io.furrow/pseudonymization entity's data.
	keyEntity []byte
	keyColumn string
	params    map[string]paramAction // by tracker parameter name
	// headers caches rewritten header lines (they repeat whole: the same
	// browser sends the same User-Agent and Host).
	headerCache *cache
}

type urlPart uint8

const (
	notURL urlPart = iota
	wholeURL
	queryPart
	fragmentPart
)

type rule struct {
	crit iglu.Criterion
	root *node
}

// New builds the policy of c (already valid) under key.
func New(c Config, key []byte) *Policy {
	entries := DefaultCacheEntries
	if c.CacheEntries != nil {
		entries = *c.CacheEntries
	}
	p := &Policy{h: NewHasher(key, entries)}
	if entries > 0 {
		p.headerCache = newCache(max(entries/8, 1))
	}
	allow := c.Allow
	if allow == nil {
		allow = DefaultAllow
	}
	for _, list := range [][]string{allow, c.AllowExtra} {
		for _, f := range list {
			if i, ok := ev.Index(f); ok {
				p.keep[i] = true
			}
		}
	}
	if c.URLs == URLsKeepPath {
		for _, i := range []int{ev.PageURLScheme, ev.PageURLHost, ev.PageURLPort, ev.PageURLPath,
			ev.RefrURLScheme, ev.RefrURLHost, ev.RefrURLPort, ev.RefrURLPath} {
			p.keep[i] = true
		}
		for _, i := range []int{ev.PageURL, ev.PageReferrer} {
			if !p.keep[i] {
				p.url[i] = wholeURL
			}
		}
		for _, i := range []int{ev.PageURLQuery, ev.RefrURLQuery} {
			if !p.keep[i] {
				p.url[i] = queryPart
			}
		}
		for _, i := range []int{ev.PageURLFragment, ev.RefrURLFragment} {
			if !p.keep[i] {
				p.url[i] = fragmentPart
			}
		}
	}
	for _, r := range append(append([]JSONRule(nil), DefaultJSON...), c.JSON...) {
		crit, err := iglu.ParseCriterion(r.Schema)
		if err != nil {
			continue // Validate reports it
		}
		var root *node
		for _, rr := range p.rules {
			if rr.crit == crit {
				root = rr.root
			}
		}
		if root == nil {
			root = &node{}
			p.rules = append(p.rules, rule{crit, root})
		}
		for _, path := range r.Allow {
			steps, err := parsePath(path)
			if err != nil {
				continue
			}
			for _, s := range steps {
				root.insert(s)
			}
		}
	}
	p.keyID = c.KeyID
	if p.keyID == "" {
		p.keyID = "k-" + p.h.String("furrow key id")[:12]
	}
	p.keyEntity = append(append([]byte(`{"keyId":"`), p.keyID...), `"}`...)
	p.keyColumn = `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"` + KeySchema + `","data":` + string(p.keyEntity) + `}]}`
	return p
}

// KeyColumn is derived_contexts when the key's entity is its only entity.
func (p *Policy) KeyColumn() string { return p.keyColumn }

// KeyID names the key.
func (p *Policy) KeyID() string { return p.keyID }

// KeyEntity is the entity recorded in derived_contexts of every event
// pseudonymized under this policy.
func (p *Policy) KeyEntity() iglu.SelfDescribing {
	return iglu.SelfDescribing{Key: keySchemaKey, Data: p.keyEntity}
}

var keySchemaKey = func() iglu.SchemaKey {
	k, err := iglu.ParseSchemaKey(KeySchema)
	if err != nil {
		panic(err)
	}
	return k
}()

// Pseudonym returns the pseudonym of v.
func (p *Policy) Pseudonym(v string) string { return p.h.String(v) }

// Keeps reports whether column i stays in clear.
func (p *Policy) Keeps(i int) bool { return p.keep[i] }

// Fields rewrites the non-JSON columns of an enriched event in place
// ("" is null and stays null): an allowed column is kept; a string
// column is replaced by its pseudonym (URLs by part under keep_path); a
// typed column (number, boolean, timestamp) that is not allowed becomes
// null, since its pseudonym could not be loaded into its typed column.
// The JSON columns are left to Entity.
func (p *Policy) Fields(f *[ev.NumFields]string) {
	for i := range f {
		if f[i] != "" && !p.keep[i] && ev.Fields[i].Type != ev.JSON {
			f[i] = p.field(i, f[i])
		}
	}
}

// Field returns column i's value v as Fields would write it.
func (p *Policy) Field(i int, v string) string {
	if v == "" || p.keep[i] || ev.Fields[i].Type == ev.JSON {
		return v
	}
	return p.field(i, v)
}

// field rewrites v, a value of column i that is not allowed.
func (p *Policy) field(i int, v string) string {
	if ev.Fields[i].Type != ev.String {
		return ""
	}
	switch p.url[i] {
	case wholeURL:
		return p.URL(v)
	case queryPart:
		return p.query(v)
	}
	return p.h.String(v)
}

// URL keeps scheme, host, port and path of u, and pseudonymizes any
// user:password@, each query value (names stay) and the fragment. The
// parts are rewritten as they are written, percent-encoding included.
func (p *Policy) URL(u string) string {
	rest := u
	var b strings.Builder
	b.Grow(len(u) + 64)
	if i := strings.Index(rest, "://"); i >= 0 {
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		auth := rest[:end]
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			b.WriteString(p.h.String(auth[:at]))
			b.WriteByte('@')
			auth = auth[at+1:]
		}
		b.WriteString(auth)
		rest = rest[end:]
	}
	frag, hasFrag := "", false
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		frag, hasFrag = rest[i+1:], true
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		b.WriteString(rest[:i+1])
		b.WriteString(p.query(rest[i+1:]))
	} else {
		b.WriteString(rest)
	}
	if hasFrag {
		b.WriteByte('#')
		if frag != "" {
			b.WriteString(p.h.String(frag))
		}
	}
	return b.String()
}

// query pseudonymizes each value of a query string; a parameter without
// = is all value.
func (p *Policy) query(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 64)
	for i, kv := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			b.WriteString(p.h.String(kv))
			continue
		}
		b.WriteString(k)
		b.WriteByte('=')
		if v != "" {
			b.WriteString(p.h.String(v))
		}
	}
	return b.String()
}

// Entity rewrites an entity's data: the leaves its schema's rules keep
// stay, every other leaf is pseudonymized (see appendJSON). An error
// means data is not JSON the rewriter can read; the caller must not
// store the entity.
func (p *Policy) Entity(sdj *iglu.SelfDescribing) error {
	var at []*node
	var buf [2]*node
	at = buf[:0]
	for _, r := range p.rules {
		if r.crit.Matches(sdj.Key) {
			at = append(at, r.root)
		}
	}
	out, err := p.h.appendJSON(make([]byte, 0, len(sdj.Data)+128), sdj.Data, at, 0)
	if err != nil {
		return err
	}
	sdj.Data = out
	return nil
}
