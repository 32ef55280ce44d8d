package enrich

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/furrow-io/furrow/internal/badrows"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/pseudo"
)

// ParamFields is every tracker parameter's column (res, vp and ds fill
// two: the first is given), for
// pseudo.Policy.SetParams; the map is shared: do not change it.
func ParamFields() map[string]int { return paramFields }

var paramFields = func() map[string]int {
	m := map[string]int{"e": ev.Event, "p": ev.Platform, "ip": ev.UserIPAddress, "eid": ev.EventID,
		"sid": ev.DomainSessionID, "tnuid": ev.NetworkUserID}
	for _, src := range []map[string]int{stringParams, intParams, decimalParams, boolParams, timestampParams} {
		for k, v := range src {
			m[k] = v
		}
	}
	for k, d := range dimensionParams {
		m[k] = d[0]
	}
	return m
}()

// pseudonymize applies the policy to a good event, as the last step
// before it is written: columns, entities, and the raw event Micro shows.
// The key's entity is added to derived_contexts.
func (e *Enricher) pseudonymize(evt *Event) error {
	p := e.opts.Pseudonymize
	p.Fields(&evt.F)
	for _, list := range [][]iglu.SelfDescribing{evt.Contexts, evt.Derived} {
		for i := range list {
			if err := p.Entity(&list[i]); err != nil {
				return fmt.Errorf("%s: %w", list[i].Key.URI(), err)
			}
		}
	}
	if evt.Unstruct != nil {
		if err := p.Entity(evt.Unstruct); err != nil {
			return fmt.Errorf("%s: %w", evt.Unstruct.Key.URI(), err)
		}
	}
	return nil
}

// pseudonymizeFailed outputs an event that could not be pseudonymized as
// an enrichment_failures bad row (which pseudonymizeBad rewrites).
func (e *Enricher) pseudonymizeFailed(evt *Event, err error, now time.Time, out *Output) {
	evt.finishJSON()
	id := badrows.EnrichmentID{SchemaKey: pseudo.KeySchema, Identifier: "pseudonymization"}
	out.Bad = append(out.Bad, badrows.EnrichmentFailures(e.opts.Processor, now,
		[]badrows.EnrichmentMessage{{Enrichment: &id, Message: badrows.ExternalError{Error: "cannot pseudonymize " + err.Error()}}},
		e.enrichmentPayload(evt)))
}

// finishPseudonymized renders the JSON columns of a pseudonymized event,
// with the key's entity last in derived_contexts: a column rendered once
// when it is the only derived entity.
func (e *Enricher) finishPseudonymized(evt *Event, out *Output) {
	p := e.opts.Pseudonymize
	if len(evt.Derived) > 0 {
		evt.Derived = append(evt.Derived, p.KeyEntity())
		evt.finishJSON()
	} else {
		evt.finishJSON()
		evt.F[ev.DerivedContexts] = p.KeyColumn()
	}
	if evt.Raw != nil {
		evt.Raw = pseudoRaw(p, evt, e.opts.KeepRaw, out)
	}
}

// emptyPayload stands for the collector payload of a pseudonymized event
// whose raw event is not kept; it is never written.
var emptyPayload payload.CollectorPayload

// pseudoRaw returns a rewritten copy of a raw event (with keep): its
// parameters, and the collector payload's IP address, user agent,
// referer, network user id and headers, without the query string and
// body; or, without keep, r holding nothing but its vendor and version.
//
// The entity parameters (ue_pr, ue_px, co, cx) are given the event's
// rewritten entity columns (base64url for ue_px and cx), which hold the
// same entities: the event is good, so they all parsed and validated.
func pseudoRaw(p *pseudo.Policy, evt *Event, keep bool, memo *Output) *RawEvent {
	r := evt.Raw
	if !keep {
		r.Params, r.Payload = nil, &emptyPayload
		return r
	}
	out := &RawEvent{Vendor: r.Vendor, Version: r.Version, ContentType: r.ContentType}
	out.Params = make([]Param, len(r.Params))
	for i, prm := range r.Params {
		v := prm.Value
		switch prm.Name {
		case "ue_pr":
			v = evt.F[ev.UnstructEvent]
		case "ue_px":
			v = base64.RawURLEncoding.EncodeToString([]byte(evt.F[ev.UnstructEvent]))
		case "co":
			v = evt.F[ev.Contexts]
		case "cx":
			v = base64.RawURLEncoding.EncodeToString([]byte(evt.F[ev.Contexts]))
		default:
			v = p.Param(prm.Name, v)
		}
		out.Params[i] = Param{Name: prm.Name, Value: v, Null: prm.Null}
	}
	if memo.rawSrc == r.Payload {
		out.Payload = memo.rawDst
		return out
	}
	cp := *r.Payload
	cp.IPAddress = p.IPAddress(cp.IPAddress)
	cp.UserAgent = p.UserAgent(cp.UserAgent)
	cp.RefererURI = p.RefererURI(cp.RefererURI)
	cp.NetworkUserID = p.NetworkUserID(cp.NetworkUserID)
	cp.Headers = p.Headers(cp.Headers)
	// The event's parameters are in out.Params, rewritten; the request's
	// query string and body (every event of a batch) are not kept.
	cp.Querystring, cp.Body = "", ""
	out.Payload = &cp
	memo.rawSrc, memo.rawDst = r.Payload, &cp
	return out
}

// pseudonymizeBad rewrites the bad rows out.Bad[from:] by the policy. A
// row the policy cannot read (which furrow never writes) is replaced by
// a generic_error row holding its pseudonym.
func (e *Enricher) pseudonymizeBad(out *Output, from int) {
	p := e.opts.Pseudonymize
	for i := from; i < len(out.Bad); i++ {
		row, err := p.BadRow(out.Bad[i])
		if err != nil {
			row = badrows.GenericError(e.opts.Processor, e.now(), []string{"could not pseudonymize a bad row: " + err.Error()}, p.Pseudonym(string(out.Bad[i])))
		}
		out.Bad[i] = row
	}
}
