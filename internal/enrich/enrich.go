// Package enrich turns raw collector payloads into enriched events or bad
// rows, following the Snowplow tracker protocol: adapters (tp1, tp2,
// redirect), parameter mapping, Iglu validation of entities, the built-in
// enrichments, configurable enrichment steps and atomic field checks.
package enrich

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/furrow-io/furrow/internal/badrows"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/jsonx"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/pseudo"
)

// Step is one configurable enrichment, run after the built-in ones in the
// order given. A Step returns nil, or an error to fail the event with an
// enrichment_failures bad row: a *StepError, or any other error (reported
// as an external failure).
type Step interface {
	ID() badrows.EnrichmentID
	Enrich(ctx context.Context, e *Event) error
}

// StepError is an enrichment rejecting its input.
type StepError struct {
	Field, Value, Expectation string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Expectation)
}

// Options configures an Enricher.
type Options struct {
	Resolver  *iglu.Resolver
	Processor badrows.Processor // artifact and version written in bad rows
	ETLName   string            // v_etl; default "<artifact>-<version>"
	Steps     []Step
	// MaxJSONDepth rejects deeper JSON in entities and bodies; default 40.
	MaxJSONDepth int
	// FieldLimits overrides maximum lengths of string columns by name.
	FieldLimits map[string]int
	// AcceptInvalid keeps events whose columns are too long instead of
	// failing them; the values are kept as they are.
	AcceptInvalid bool
	// Pseudonymize, when set, is applied to every good event (columns,
	// entities and raw event) as the last step, after validation, and to
	// every bad row: nothing the Enricher outputs holds a value its
	// allowlists do not keep. The pseudonymized event is not validated
	// again.
	Pseudonymize *pseudo.Policy
	// KeepRaw keeps the raw event of good events (Good.Event.Raw), which
	// Micro shows, pseudonymized when Pseudonymize is set; without it, a
	// pseudonymized event's raw event holds only its vendor and version.
	KeepRaw bool
	Now     func() time.Time
	NewUUID func() string
}

// Validate reports configuration errors.
func (o *Options) Validate() error {
	if o.Resolver == nil {
		return errors.New("enrich: a resolver is required")
	}
	if o.Processor.Artifact == "" || o.Processor.Version == "" {
		return errors.New("enrich: processor artifact and version are required")
	}
	for name, n := range o.FieldLimits {
		i, ok := ev.Index(name)
		if !ok || ev.Fields[i].Type != ev.String {
			return fmt.Errorf("enrich: field limit for %q: not a string column", name)
		}
		if n <= 0 {
			return fmt.Errorf("enrich: field limit for %q must be positive", name)
		}
	}
	return nil
}

// Enricher is safe for concurrent use.
type Enricher struct {
	opts     Options
	etl      string
	maxDepth int
	limits   [ev.NumFields]int
	now      func() time.Time
	newUUID  func() string
	adapters map[[2]string]Adapter
}

// New builds an Enricher.
func New(o Options) (*Enricher, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	e := &Enricher{opts: o, etl: o.ETLName, maxDepth: o.MaxJSONDepth, now: o.Now, newUUID: o.NewUUID}
	if e.etl == "" {
		e.etl = o.Processor.Artifact + "-" + o.Processor.Version
	}
	if e.maxDepth <= 0 {
		e.maxDepth = 40
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.newUUID == nil {
		e.newUUID = func() string { return uuid.NewString() }
	}
	for i, f := range ev.Fields {
		e.limits[i] = f.MaxLen
	}
	for name, n := range o.FieldLimits {
		i, _ := ev.Index(name)
		e.limits[i] = n
	}
	e.adapters = map[[2]string]Adapter{
		{VendorSnowplow, VersionTP1}: AdapterFunc(e.adaptTP1),
		{VendorSnowplow, VersionTP2}: AdapterFunc(e.adaptTP2),
		{VendorRedirect, VersionTP2}: AdapterFunc(e.adaptRedirect),
	}
	return e, nil
}

// Good is an enriched event.
type Good struct {
	TSV   []byte // one line, no newline
	Event *Event
}

// Output collects what one payload produced.
type Output struct {
	Good []Good
	Bad  [][]byte

	// The collector payload last rewritten for a raw event, and its
	// rewrite: the events of one payload share it (see pseudoRaw).
	rawSrc, rawDst *payload.CollectorPayload
}

// Reset empties o for reuse.
func (o *Output) Reset() {
	o.Good = o.Good[:0]
	o.Bad = o.Bad[:0]
	o.rawSrc, o.rawDst = nil, nil
}

// Process enriches one raw record (a Thrift CollectorPayload) and appends
// the results to out. Every input ends up as good events or bad rows.
func (e *Enricher) Process(ctx context.Context, rec []byte, out *Output) {
	if e.opts.Pseudonymize != nil {
		defer e.pseudonymizeBad(out, len(out.Bad))
	}
	now := e.now()
	cp, err := payload.Unmarshal(rec)
	if err != nil {
		out.Bad = append(out.Bad, badrows.CPFormatViolation(e.opts.Processor, now,
			badrows.CPFormatMessage{Error: "error deserializing raw event: " + err.Error()},
			base64.StdEncoding.EncodeToString(rec)))
		return
	}
	if msg, ok := checkPayload(cp); !ok {
		out.Bad = append(out.Bad, badrows.CPFormatViolation(e.opts.Processor, now, msg, base64.StdEncoding.EncodeToString(rec)))
		return
	}
	e.processPayload(ctx, cp, now, out)
}

var collectorPayloadCriterion = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-*-*")

func checkPayload(cp *payload.CollectorPayload) (badrows.CPFormatMessage, bool) {
	// The schema every furrow collector writes matches without parsing.
	if cp.Schema != payload.SchemaURI {
		if k, err := iglu.ParseSchemaKey(cp.Schema); err != nil || !collectorPayloadCriterion.Matches(k) {
			return badrows.CPFormatMessage{PayloadField: "schema", Value: badrows.Str(cp.Schema), Expectation: "does not match " + collectorPayloadCriterion.String()}, false
		}
	}
	if cp.Path == "" {
		return badrows.CPFormatMessage{PayloadField: "path", Expectation: "path is required"}, false
	}
	if cp.NetworkUserID != "" && !ValidUUID(cp.NetworkUserID) {
		return badrows.CPFormatMessage{PayloadField: "networkUserId", Value: badrows.Str(cp.NetworkUserID), Expectation: "a valid UUID"}, false
	}
	return badrows.CPFormatMessage{}, true
}

// ProcessPayload enriches a decoded collector payload.
func (e *Enricher) ProcessPayload(ctx context.Context, cp *payload.CollectorPayload, now time.Time, out *Output) {
	if e.opts.Pseudonymize != nil {
		defer e.pseudonymizeBad(out, len(out.Bad))
	}
	e.processPayload(ctx, cp, now, out)
}

func (e *Enricher) processPayload(ctx context.Context, cp *payload.CollectorPayload, now time.Time, out *Output) {
	vendor, version, ok := ParseAPI(cp.Path)
	qs := ParseQuery(cp.Querystring)
	if !ok {
		out.Bad = append(out.Bad, badrows.CPFormatViolation(e.opts.Processor, now,
			badrows.CPFormatMessage{PayloadField: "path", Value: badrows.Str(cp.Path), Expectation: "does not match (/)vendor/version(/) nor is a legacy /i(ce.png) request"},
			base64.StdEncoding.EncodeToString(cp.Marshal())))
		return
	}
	adapter, ok := e.adapters[[2]string{vendor, version}]
	if !ok {
		out.Bad = append(out.Bad, badrows.AdapterFailures(e.opts.Processor, now,
			[]badrows.Message{inputData("vendor/version", vendor+"/"+version, "vendor/version combination is not supported")},
			payloadJSON(vendor, version, cp, qs)))
		return
	}
	raws, err := adapter.Adapt(ctx, cp, qs)
	if err != nil {
		var ae *adapterError
		msgs := []badrows.Message{badrows.ExternalError{Error: err.Error()}}
		if errors.As(err, &ae) {
			msgs = ae.msgs
		}
		build := badrows.AdapterFailures
		if version == VersionTP2 && (vendor == VendorSnowplow || vendor == VendorRedirect) {
			build = badrows.TrackerProtocolViolations
		}
		out.Bad = append(out.Bad, build(e.opts.Processor, now, msgs, payloadJSON(vendor, version, cp, qs)))
		return
	}
	for i := range raws {
		e.enrichOne(ctx, &raws[i], now, out)
	}
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func payloadJSON(vendor, version string, cp *payload.CollectorPayload, qs []Param) badrows.CollectorPayload {
	p := badrows.CollectorPayload{
		Vendor: vendor, Version: version, Querystring: nameValues(qs),
		ContentType: badrows.Str(cp.ContentType), Body: badrows.Str(cp.Body),
		Collector: cp.Collector, Encoding: cp.Encoding, Hostname: badrows.Str(cp.Hostname),
		IPAddress: badrows.Str(cp.IPAddress), Useragent: badrows.Str(cp.UserAgent),
		RefererURI: badrows.Str(cp.RefererURI), Headers: cp.Headers, NetworkUserID: badrows.Str(cp.NetworkUserID),
	}
	if p.Querystring == nil {
		p.Querystring = []badrows.NameValue{}
	}
	if cp.Timestamp != 0 {
		p.Timestamp = badrows.Str(badrows.Timestamp(msTime(cp.Timestamp)))
	}
	return p
}

func rawJSON(r *RawEvent) badrows.RawEvent {
	cp := r.Payload
	out := badrows.RawEvent{
		Vendor: r.Vendor, Version: r.Version, Parameters: nameValues(r.Params),
		ContentType: badrows.Str(r.ContentType), LoaderName: cp.Collector, Encoding: cp.Encoding,
		Hostname: badrows.Str(cp.Hostname), IPAddress: badrows.Str(cp.IPAddress),
		Useragent: badrows.Str(cp.UserAgent), RefererURI: badrows.Str(cp.RefererURI),
		Headers: cp.Headers, UserID: badrows.Str(cp.NetworkUserID),
	}
	if cp.Timestamp != 0 {
		out.Timestamp = badrows.Str(badrows.Timestamp(msTime(cp.Timestamp)))
	}
	return out
}

// enrichOne runs the three phases on one event: map and validate the
// input, enrich, validate the result. The first phase that fails decides
// the bad row.
func (e *Enricher) enrichOne(ctx context.Context, raw *RawEvent, now time.Time, out *Output) {
	evt := &Event{Raw: raw}
	cp := raw.Payload
	f := &evt.F

	// Phase 1: columns from the collector, then from the tracker.
	f[ev.VCollector] = tsvSafe(cp.Collector)
	f[ev.VEtl] = e.etl
	f[ev.EtlTstamp] = formatTimestamp(now)
	f[ev.NetworkUserID] = cp.NetworkUserID
	f[ev.UserIPAddress] = firstIP(clientIP(cp))
	f[ev.UserAgent] = tsvSafe(cp.UserAgent)
	var msgs []badrows.Message
	collector := msTime(cp.Timestamp)
	if collector.Before(minTime) || collector.After(maxTime) {
		msgs = append(msgs, atomicViolation([]AtomicError{{Field: "collector_tstamp", Value: fmt.Sprint(cp.Timestamp), Message: "Field [collector_tstamp]: year is outside 0 to 9999", Keyword: kwParse}}))
	} else {
		f[ev.CollectorTstamp] = formatTimestamp(collector)
	}
	ents, atomicErrs := transform(evt, raw.Params)
	if f[ev.EventID] == "" { // no valid eid from the tracker
		f[ev.EventID] = e.newUUID()
	}
	if len(atomicErrs) > 0 {
		msgs = append(msgs, atomicViolation(atomicErrs))
	}
	if ents.hasUE {
		msgs = append(msgs, e.parseUnstruct(ctx, evt, ents)...)
	}
	if ents.hasCO {
		msgs = append(msgs, e.parseContexts(ctx, evt, ents)...)
	}
	if len(msgs) > 0 {
		evt.finishJSON()
		out.Bad = append(out.Bad, badrows.SchemaViolations(e.opts.Processor, now, msgs, e.enrichmentPayload(evt)))
		return
	}

	// Phase 2: enrichments.
	if fails := e.enrich(ctx, evt, cp); len(fails) > 0 {
		evt.finishJSON()
		out.Bad = append(out.Bad, badrows.EnrichmentFailures(e.opts.Processor, now, fails, e.enrichmentPayload(evt)))
		return
	}

	// Phase 3: entities added by enrichments, and column lengths.
	for _, d := range evt.Derived {
		if _, msg := e.validate(ctx, d); msg != nil {
			msgs = append(msgs, msg)
		}
	}
	// The JSON columns have no length limit: checkLengths skips them.
	if lenErrs := e.checkLengths(evt); len(lenErrs) > 0 && !e.opts.AcceptInvalid {
		msgs = append(msgs, atomicViolation(lenErrs))
	}
	if len(msgs) > 0 {
		evt.finishJSON()
		out.Bad = append(out.Bad, badrows.SchemaViolations(e.opts.Processor, now, msgs, e.enrichmentPayload(evt)))
		return
	}
	// Last: pseudonymization, on the validated event.
	if e.opts.Pseudonymize != nil {
		if err := e.pseudonymize(evt); err != nil {
			e.pseudonymizeFailed(evt, err, now, out)
			return
		}
		e.finishPseudonymized(evt, out)
	} else {
		evt.finishJSON()
	}
	out.Good = append(out.Good, Good{TSV: evt.AppendTSV(make([]byte, 0, evt.tsvLen())), Event: evt})
	e.appendEmitted(evt, out)
}

func (e *Enricher) enrichmentPayload(evt *Event) badrows.EnrichmentPayload {
	return badrows.EnrichmentPayload{Raw: rawJSON(evt.Raw), Enriched: evt.enrichedJSON()}
}

// atomicSchema is the schema key atomic column errors are reported under.
const atomicSchema = "iglu:com.snowplowanalytics.snowplow/atomic/jsonschema/1-0-0"

func atomicViolation(errs []AtomicError) badrows.IgluError {
	reports := make([]badrows.DataReport, len(errs))
	for i, a := range errs {
		reports[i] = badrows.DataReport{Message: a.Message, Path: a.Field, Keyword: a.Keyword, Targets: []string{}}
	}
	return badrows.IgluError{SchemaKey: atomicSchema, Error: badrows.ValidationError{Error: "ValidationError", DataReports: reports}}
}

// clientIP finds the client address: X-Forwarded-For, then Forwarded,
// then what the collector saw.
func clientIP(cp *payload.CollectorPayload) string {
	fwd := ""
	for _, h := range cp.Headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		switch {
		case strings.EqualFold(name, "x-forwarded-for"):
			return strings.TrimSpace(value)
		case fwd == "" && strings.EqualFold(name, "forwarded"):
			fwd = forwardedFor(value)
		}
	}
	if fwd != "" {
		return fwd
	}
	return cp.IPAddress
}

// forwardedFor extracts the first for= address of an RFC 7239 header.
func forwardedFor(v string) string {
	lower := strings.ToLower(v)
	i := strings.Index(lower, "for=")
	if i < 0 {
		return ""
	}
	s := v[i+4:]
	if j := strings.IndexAny(s, ";,"); j >= 0 {
		s = s[:j]
	}
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if strings.HasPrefix(s, "[") {
		if j := strings.IndexByte(s, ']'); j > 0 {
			return s[1:j]
		}
	}
	if strings.Count(s, ":") == 1 {
		s, _, _ = strings.Cut(s, ":")
	}
	return s
}

func (e *Enricher) checkLengths(evt *Event) []AtomicError {
	var errs []AtomicError
	for i, limit := range e.limits {
		v := evt.F[i]
		if limit == 0 || len(v) <= limit {
			continue
		}
		if n := utf8.RuneCountInString(v); n > limit {
			errs = append(errs, AtomicError{
				Field: ev.Fields[i].Name, Value: v, Keyword: kwLength,
				Message: fmt.Sprintf("Field is longer than maximum allowed size %d", limit),
			})
		}
	}
	return errs
}

var (
	unstructCriterion = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-*")
	contextsCriterion = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-*")
)

// readEntityJSON decodes a ue_pr/ue_px/co/cx value and parses it as a
// self-describing JSON of acceptable depth.
func (e *Enricher) readEntityJSON(param, value string, b64 bool) (iglu.SelfDescribing, badrows.Message) {
	raw := []byte(value)
	if b64 {
		dec, err := decodeBase64(value)
		if err != nil {
			return iglu.SelfDescribing{}, badrows.NotJSON{Field: param, Value: badrows.Str(value), Error: "invalid base64: " + err.Error()}
		}
		raw = dec
	}
	return e.parseSDJ(param, raw)
}

// parseSDJ parses raw as a self-describing JSON, telling apart input that
// is not JSON, too deep, or JSON of the wrong shape.
func (e *Enricher) parseSDJ(field string, raw []byte) (iglu.SelfDescribing, badrows.Message) {
	sdj, err := iglu.ParseSelfDescribing(raw)
	if err != nil {
		if !jsonx.Valid(raw) {
			var v any
			jerr := json.Unmarshal(raw, &v)
			return sdj, badrows.NotJSON{Field: field, Value: badrows.Str(string(raw)), Error: jerr.Error()}
		}
		return sdj, notIglu(raw, err)
	}
	if iglu.Depth(raw) > e.maxDepth {
		return sdj, badrows.NotJSON{Field: field, Value: badrows.Str(string(raw)), Error: fmt.Sprintf("JSON is nested more than %d levels deep", e.maxDepth)}
	}
	return sdj, nil
}

func (e *Enricher) parseUnstruct(ctx context.Context, evt *Event, p entityParams) []badrows.Message {
	wrapper, msg := e.readEntityJSON(p.ueParam, p.ue, p.ueB64)
	if msg != nil {
		return []badrows.Message{msg}
	}
	if !unstructCriterion.Matches(wrapper.Key) {
		return []badrows.Message{badrows.CriterionMismatch{SchemaKey: wrapper.Key.URI(), SchemaCriterion: unstructCriterion.String()}}
	}
	inner, err := iglu.ParseSelfDescribing(wrapper.Data)
	if err != nil || !isKnownWrapper(wrapper.Key) {
		// Let the wrapper's schema explain what is wrong, if it can.
		if _, msg := e.validate(ctx, wrapper); msg != nil {
			return []badrows.Message{msg}
		}
	}
	if err != nil {
		return []badrows.Message{notIglu(wrapper.Data, err)}
	}
	if _, msg := e.validate(ctx, inner); msg != nil {
		return []badrows.Message{msg}
	}
	evt.Unstruct = &inner
	return nil
}

func (e *Enricher) parseContexts(ctx context.Context, evt *Event, p entityParams) []badrows.Message {
	wrapper, msg := e.readEntityJSON(p.coParam, p.co, p.coB64)
	if msg != nil {
		return []badrows.Message{msg}
	}
	if !contextsCriterion.Matches(wrapper.Key) {
		return []badrows.Message{badrows.CriterionMismatch{SchemaKey: wrapper.Key.URI(), SchemaCriterion: contextsCriterion.String()}}
	}
	var items []iglu.SelfDescribing
	var itemErr error
	isArray := len(wrapper.Data) > 0 && wrapper.Data[0] == '['
	if isArray {
		jsonx.Array(wrapper.Data, 0, func(item []byte) bool {
			sdj, err := iglu.ParseSelfDescribing(item)
			if err != nil {
				itemErr = notIgluError{notIglu(item, err)}
				return false
			}
			items = append(items, sdj)
			return true
		})
	}
	fast := isArray && itemErr == nil && isKnownWrapper(wrapper.Key) &&
		(len(items) > 0 || wrapper.Key.Version.Addition > 0)
	if !fast {
		if _, msg := e.validate(ctx, wrapper); msg != nil {
			return []badrows.Message{msg}
		}
		if ni, ok := itemErr.(notIgluError); ok {
			return []badrows.Message{ni.msg}
		}
	}
	var msgs []badrows.Message
	for _, sdj := range items {
		if _, msg := e.validate(ctx, sdj); msg != nil {
			msgs = append(msgs, msg)
			continue
		}
		evt.Contexts = append(evt.Contexts, sdj)
	}
	return msgs
}

type notIgluError struct{ msg badrows.NotIglu }

func (notIgluError) Error() string { return "not a self-describing JSON" }

// validate resolves sdj's schema and checks its data, returning the
// decoded data, or a bad row message.
func (e *Enricher) validate(ctx context.Context, sdj iglu.SelfDescribing) (any, badrows.Message) {
	schema, err := e.opts.Resolver.Lookup(ctx, sdj.Key)
	if err != nil {
		return nil, badrows.IgluError{SchemaKey: sdj.Key.URI(), Error: igluErrorJSON(err)}
	}
	data, err := iglu.Decode(sdj.Data)
	if err != nil {
		return nil, badrows.NotJSON{Field: "data", Value: badrows.Str(string(sdj.Data)), Error: err.Error()}
	}
	if err := schema.Validate(data); err != nil {
		return nil, badrows.IgluError{SchemaKey: sdj.Key.URI(), Error: igluErrorJSON(err)}
	}
	return data, nil
}

func igluErrorJSON(err error) any {
	var re *iglu.ResolutionError
	var ve *iglu.ValidationError
	var se *iglu.SchemaError
	switch {
	case errors.As(err, &re):
		out := badrows.ResolutionError{Error: "ResolutionError"}
		for _, h := range re.History {
			rh := badrows.RepoHistory{Repository: h.Repository, Attempts: h.Attempts, LastAttempt: badrows.Timestamp(h.LastAttempt)}
			for _, f := range h.Errors {
				msg := f.Message
				if len(msg) > 256 {
					msg = msg[:256]
				}
				rh.Errors = append(rh.Errors, badrows.RepoError{Error: f.Kind, Message: msg})
			}
			out.LookupHistory = append(out.LookupHistory, rh)
		}
		if len(out.LookupHistory) == 0 {
			out.LookupHistory = []badrows.RepoHistory{{Repository: "none", Errors: []badrows.RepoError{{Error: iglu.FailNotFound}}, LastAttempt: badrows.Timestamp(time.Now())}}
		}
		return out
	case errors.As(err, &ve):
		reports := make([]badrows.DataReport, len(ve.Reports))
		for i, r := range ve.Reports {
			reports[i] = badrows.DataReport(r)
		}
		return badrows.ValidationError{Error: "ValidationError", DataReports: reports}
	case errors.As(err, &se):
		return badrows.ValidationError{Error: "ValidationError", SchemaIssues: []badrows.SchemaIssue{{Path: "$", Message: se.Err.Error()}}}
	default:
		return badrows.ValidationError{Error: "ValidationError", SchemaIssues: []badrows.SchemaIssue{{Path: "$", Message: err.Error()}}}
	}
}
