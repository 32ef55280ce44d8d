// Package pii is Snowplow's PII pseudonymization enrichment
// (iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-*):
// it replaces configured columns and entity fields with salted hashes,
// producing what Snowplow Enrich produces for the same configuration and
// event.
//
// The rules, from Enrich's PiiPseudonymizerEnrichment:
//   - A value v becomes lowercase hex of HASH(UTF-8(v + salt)): the salt is
//     appended, this is not an HMAC. Hash functions: MD2, MD5, SHA-1,
//     SHA-256, SHA-384, SHA-512.
//   - pojo fields name one of 18 columns; a null (empty) column stays null.
//   - json fields name contexts, derived_contexts or unstruct_event, an
//     Iglu schema criterion, and a JsonPath (see Path for the supported
//     subset). In every entity whose schema matches, the strings the path
//     selects are hashed, and so are the strings directly inside a selected
//     array; numbers, booleans, nulls and objects are left as they are.
//     Nothing else in the entity changes. Locators apply in the order
//     configured; one that selects an already hashed string hashes it again.
//   - Order: pojo fields, then the unstruct event, then contexts, then
//     derived contexts (those added by enrichments that ran before).
//   - anonymousOnly: hash only when a request header's name starts with
//     SP-Anonymous (any case).
//   - emitEvent: when something was hashed, a pii_transformation event is
//     emitted beside the event, as Enrich 3.x wrote it to its pii stream
//     (Enrich 6 ignores emitEvent): see Step.Enrich.
//
// Version 1-0-0 of the configuration (no salt) is refused, as Enrich does.
package pii

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/enrich"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// SchemaName is the vendor/name the enrichment is registered under.
const SchemaName = "com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config"

// Supported is the configuration schema criterion Enrich accepts.
var Supported = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-*")

func init() { enrich.Register(SchemaName, New) }

// Schemas of the emitted event.
var (
	TransformationKey = iglu.SchemaKey{Vendor: "com.snowplowanalytics.snowplow", Name: "pii_transformation", Format: "jsonschema", Version: iglu.SchemaVer{Model: 1}}
	ParentEventKey    = iglu.SchemaKey{Vendor: "com.snowplowanalytics.snowplow", Name: "parent_event", Format: "jsonschema", Version: iglu.SchemaVer{Model: 1}}
)

// PojoFields are the columns a pojo field may name (the enum of the
// configuration schema); each is the enriched column of the same name.
var PojoFields = []string{
	"user_id", "user_ipaddress", "user_fingerprint", "domain_userid", "network_userid",
	"ip_organization", "ip_domain", "tr_orderid", "ti_orderid", "mkt_term", "mkt_content",
	"se_category", "se_action", "se_label", "se_property", "mkt_clickid",
	"refr_domain_userid", "domain_sessionid",
}

// pojoColumn returns the column a pojo field names.
func pojoColumn(name string) (int, bool) {
	for _, f := range PojoFields {
		if f == name {
			return ev.Index(name)
		}
	}
	return 0, false
}

// Hash is a hash function the strategy may name.
type Hash uint8

const (
	MD2 Hash = iota
	MD5
	SHA1
	SHA256
	SHA384
	SHA512
)

var hashNames = []string{"MD2", "MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"}

func (h Hash) String() string { return hashNames[h] }

// ParseHash reads a hashFunction name.
func ParseHash(s string) (Hash, bool) {
	for i, n := range hashNames {
		if n == s {
			return Hash(i), true
		}
	}
	return 0, false
}

// Scrambler hashes values with a salt.
type Scrambler struct {
	Hash Hash
	Salt string
}

// Scramble returns lowercase hex of HASH(v + salt).
func (s Scrambler) Scramble(v string) string {
	var in [256]byte
	data := in[:0]
	if n := len(v) + len(s.Salt); n > len(in) {
		data = make([]byte, 0, n)
	}
	data = append(append(data, v...), s.Salt...)
	var sum [64]byte
	var n int
	switch s.Hash {
	case MD2:
		d := md2Sum(data)
		n = copy(sum[:], d[:])
	case MD5:
		d := md5.Sum(data)
		n = copy(sum[:], d[:])
	case SHA1:
		d := sha1.Sum(data)
		n = copy(sum[:], d[:])
	case SHA256:
		d := sha256.Sum256(data)
		n = copy(sum[:], d[:])
	case SHA384:
		d := sha512.Sum384(data)
		n = copy(sum[:], d[:])
	default:
		d := sha512.Sum512(data)
		n = copy(sum[:], d[:])
	}
	var out [128]byte
	hex.Encode(out[:], sum[:n])
	return string(out[:2*n])
}

// Entity kinds a json field may name, in the order they are processed.
const (
	Unstruct = iota
	Contexts
	DerivedContexts
)

var entityFields = []string{"unstruct_event", "contexts", "derived_contexts"}

// Locator selects fields of entities: those of one kind whose schema
// matches Criterion, at Path.
type Locator struct {
	Entity    int // Unstruct, Contexts or DerivedContexts
	Criterion iglu.Criterion
	Path      *Path
	JSONPath  string // as configured, reported in the emitted event
}

// Step is the PII enrichment. It is safe for concurrent use.
type Step struct {
	id            badrows.EnrichmentID
	scrambler     Scrambler
	pojo          []int // column indexes
	locators      [3][]Locator
	emitEvent     bool
	anonymousOnly bool
	now           func() time.Time
	newUUID       func() string
}

type config struct {
	EmitEvent     bool `json:"emitEvent"`
	AnonymousOnly bool `json:"anonymousOnly"`
	Parameters    struct {
		PII []struct {
			Pojo *struct {
				Field string `json:"field"`
			} `json:"pojo"`
			JSON *struct {
				Field           string `json:"field"`
				SchemaCriterion string `json:"schemaCriterion"`
				JSONPath        string `json:"jsonPath"`
			} `json:"json"`
		} `json:"pii"`
		Strategy struct {
			Pseudonymize *struct {
				HashFunction string  `json:"hashFunction"`
				Salt         *string `json:"salt"`
			} `json:"pseudonymize"`
		} `json:"strategy"`
	} `json:"parameters"`
}

// New builds the step from a pii_enrichment_config configuration. Every
// jsonPath is parsed now: an unsupported one is an error naming it.
func New(_ context.Context, c enrich.StepConfig) (enrich.Step, error) {
	if !Supported.Matches(c.Key) {
		if c.Key.Version.Model == 1 {
			return nil, fmt.Errorf("pii_enrichment_config %s is not supported: it has no salt; furrow, like Snowplow Enrich, accepts %s (add strategy.pseudonymize.salt and emitEvent)", c.Key.Version, Supported)
		}
		return nil, fmt.Errorf("pii_enrichment_config %s is not supported: furrow, like Snowplow Enrich, accepts %s", c.Key.Version, Supported)
	}
	var cfg config
	if err := json.Unmarshal(c.Data, &cfg); err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	ps := cfg.Parameters.Strategy.Pseudonymize
	if ps == nil || ps.Salt == nil {
		return nil, fmt.Errorf("parameters.strategy.pseudonymize needs hashFunction and salt")
	}
	h, ok := ParseHash(ps.HashFunction)
	if !ok {
		return nil, fmt.Errorf("parameters.strategy.pseudonymize.hashFunction %q: not one of %v", ps.HashFunction, hashNames)
	}
	s := &Step{
		id:        badrows.EnrichmentID{SchemaKey: c.Key.URI(), Identifier: "pii_enrichment_config"},
		scrambler: Scrambler{Hash: h, Salt: *ps.Salt},
		emitEvent: cfg.EmitEvent, anonymousOnly: cfg.AnonymousOnly,
		now: c.Deps.Now, newUUID: c.Deps.NewUUID,
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i, item := range cfg.Parameters.PII {
		where := fmt.Sprintf("parameters.pii[%d]", i)
		switch {
		case item.Pojo != nil && item.JSON == nil:
			col, ok := pojoColumn(item.Pojo.Field)
			if !ok {
				return nil, fmt.Errorf("%s.pojo.field %q: not a field the PII enrichment can hash", where, item.Pojo.Field)
			}
			s.pojo = append(s.pojo, col)
		case item.JSON != nil && item.Pojo == nil:
			j := item.JSON
			l := Locator{Entity: -1, JSONPath: j.JSONPath}
			for k, f := range entityFields {
				if f == j.Field {
					l.Entity = k
				}
			}
			if l.Entity < 0 {
				return nil, fmt.Errorf("%s.json.field %q: must be contexts, derived_contexts or unstruct_event", where, j.Field)
			}
			var err error
			if l.Criterion, err = iglu.ParseCriterion(j.SchemaCriterion); err != nil {
				return nil, fmt.Errorf("%s.json.schemaCriterion: %v", where, err)
			}
			if l.Path, err = ParsePath(j.JSONPath); err != nil {
				return nil, fmt.Errorf("%s.json.jsonPath: %v", where, err)
			}
			s.locators[l.Entity] = append(s.locators[l.Entity], l)
		default:
			return nil, fmt.Errorf("%s: needs exactly one of pojo and json", where)
		}
	}
	if s.emitEvent && s.newUUID == nil {
		return nil, fmt.Errorf("emitEvent needs a UUID generator")
	}
	return s, nil
}

func (s *Step) ID() badrows.EnrichmentID { return s.id }

// Change is one value the step replaced, as reported in the emitted
// pii_transformation event.
type Change struct {
	Field    string // column, or contexts/derived_contexts/unstruct_event
	Original string
	Modified string
	JSONPath string // json fields: the configured path
	Schema   string // json fields: the entity's schema URI
}

// Enrich hashes the configured fields of e; it never fails. With
// emitEvent, if anything changed, it emits (see enrich.Event.Emit) a
// pii_transformation event as Enrich 3.x did: event pii_transformation,
// platform srv, a new event_id, app_id, etl_tstamp, collector_tstamp,
// v_etl and v_collector copied from e, derived_tstamp and true_tstamp now,
// event_vendor/name/format/version of pii_transformation 1-0-0, the
// changes as unstruct_event and a parent_event context naming e's
// event_id. (Enrich 3.x left v_collector empty; furrow copies it because
// loaders require it.)
func (s *Step) Enrich(_ context.Context, e *enrich.Event) error {
	if s.anonymousOnly && !anonymous(e) {
		return nil
	}
	var changes []Change
	track := s.emitEvent
	for _, col := range s.pojo {
		v := e.F[col]
		if v == "" {
			continue
		}
		h := s.scrambler.Scramble(v)
		e.F[col] = h
		if track {
			changes = append(changes, Change{Field: ev.Fields[col].Name, Original: v, Modified: h})
		}
	}
	var rec *[]Change
	if track {
		rec = &changes
	}
	if l := s.locators[Unstruct]; len(l) > 0 && e.Unstruct != nil {
		e.Unstruct.Data = s.entity(l, *e.Unstruct, rec)
	}
	if l := s.locators[Contexts]; len(l) > 0 {
		for i := range e.Contexts {
			e.Contexts[i].Data = s.entity(l, e.Contexts[i], rec)
		}
	}
	if l := s.locators[DerivedContexts]; len(l) > 0 {
		for i := range e.Derived {
			e.Derived[i].Data = s.entity(l, e.Derived[i], rec)
		}
	}
	if len(changes) > 0 {
		e.Emit(s.transformationEvent(e, changes))
	}
	return nil
}

// anonymous reports whether a request header's name starts with
// sp-anonymous, in any case.
func anonymous(e *enrich.Event) bool {
	if e.Raw == nil || e.Raw.Payload == nil {
		return false
	}
	const name = "sp-anonymous"
	for _, h := range e.Raw.Payload.Headers {
		if len(h) < len(name) {
			continue
		}
		match := true
		for i := 0; i < len(name); i++ {
			c := h[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != name[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// entity applies the locators matching sdj's schema, in order, and
// returns its new data (sdj.Data itself when nothing matched).
func (s *Step) entity(locators []Locator, sdj iglu.SelfDescribing, rec *[]Change) json.RawMessage {
	data := sdj.Data
	for i := range locators {
		l := &locators[i]
		if !l.Criterion.Matches(sdj.Key) {
			continue
		}
		data = s.apply(l, data, sdj.Key, rec)
	}
	return data
}

// apply hashes the strings l selects in data, returning new data when
// any.
func (s *Step) apply(l *Locator, data []byte, key iglu.SchemaKey, rec *[]Change) []byte {
	spans := l.Path.strings(data, nil)
	if len(spans) == 0 {
		return data
	}
	// A string selected twice is hashed twice, as Jayway maps it twice.
	type repl struct {
		span
		value string
	}
	done := make([]repl, 0, len(spans))
	schema := ""
	for _, sp := range spans {
		k := -1
		for j := range done {
			if done[j].start == sp.start {
				k = j
				break
			}
		}
		var orig string
		if k >= 0 {
			orig = done[k].value
		} else {
			orig, _ = jsonx.String(data[sp.start:sp.end])
		}
		h := s.scrambler.Scramble(orig)
		if k >= 0 {
			done[k].value = h
		} else {
			done = append(done, repl{sp, h})
		}
		if rec != nil {
			if schema == "" {
				schema = key.URI()
			}
			*rec = append(*rec, Change{Field: entityFields[l.Entity], Original: orig, Modified: h, JSONPath: l.JSONPath, Schema: schema})
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].start < done[j].start })
	size := len(data)
	for _, r := range done {
		size += len(r.value) + 2 - (r.end - r.start)
	}
	out := make([]byte, 0, size)
	prev := 0
	for _, r := range done {
		out = append(out, data[prev:r.start]...)
		out = append(out, '"')
		out = append(out, r.value...)
		out = append(out, '"')
		prev = r.end
	}
	return append(out, data[prev:]...)
}

// transformationEvent builds the event reporting changes made to e.
func (s *Step) transformationEvent(e *enrich.Event, changes []Change) *enrich.Event {
	x := &enrich.Event{}
	f := &x.F
	f[ev.AppID] = e.F[ev.AppID]
	f[ev.Platform] = "srv"
	f[ev.EtlTstamp] = e.F[ev.EtlTstamp]
	f[ev.CollectorTstamp] = e.F[ev.CollectorTstamp]
	f[ev.Event] = "pii_transformation"
	f[ev.EventID] = s.newUUID()
	f[ev.VEtl] = e.F[ev.VEtl]
	f[ev.VCollector] = e.F[ev.VCollector]
	now := string(ev.AppendTimestamp(nil, s.now().UTC()))
	f[ev.DerivedTstamp], f[ev.TrueTstamp] = now, now
	k := TransformationKey
	f[ev.EventVendor], f[ev.EventName], f[ev.EventFormat], f[ev.EventVersion] = k.Vendor, k.Name, k.Format, k.Version.String()
	x.Unstruct = &iglu.SelfDescribing{Key: k, Data: TransformationJSON(changes, s.scrambler.Hash)}
	parent := append(jsonx.Quote([]byte(`{"parentEventId":`), e.F[ev.EventID]), '}')
	x.Contexts = []iglu.SelfDescribing{{Key: ParentEventKey, Data: parent}}
	return x
}

// TransformationJSON renders the data of a pii_transformation 1-0-0
// entity as Enrich writes it: {"pii":{"pojo":[...],"json":[...]},
// "strategy":{"pseudonymize":{"hashFunction":...}}}, each list in the
// reverse of the order the changes were made (Enrich prepends), json
// items flat ({fieldName, originalValue, modifiedValue, jsonPath,
// schema}), a list absent when empty, and no salt.
func TransformationJSON(changes []Change, h Hash) json.RawMessage {
	b := []byte(`{"pii":{`)
	first := true
	for _, isJSON := range []bool{false, true} {
		n := 0
		for i := len(changes) - 1; i >= 0; i-- {
			c := &changes[i]
			if (c.Schema != "") != isJSON {
				continue
			}
			if n == 0 {
				if !first {
					b = append(b, ',')
				}
				first = false
				if isJSON {
					b = append(b, `"json":[`...)
				} else {
					b = append(b, `"pojo":[`...)
				}
			} else {
				b = append(b, ',')
			}
			n++
			b = append(b, `{"fieldName":`...)
			b = jsonx.Quote(b, c.Field)
			b = append(b, `,"originalValue":`...)
			b = jsonx.Quote(b, c.Original)
			b = append(b, `,"modifiedValue":`...)
			b = jsonx.Quote(b, c.Modified)
			if isJSON {
				b = append(b, `,"jsonPath":`...)
				b = jsonx.Quote(b, c.JSONPath)
				b = append(b, `,"schema":`...)
				b = jsonx.Quote(b, c.Schema)
			}
			b = append(b, '}')
		}
		if n > 0 {
			b = append(b, ']')
		}
	}
	b = append(b, `},"strategy":{"pseudonymize":{"hashFunction":`...)
	b = jsonx.Quote(b, h.String())
	return append(b, "}}}"...)
}
