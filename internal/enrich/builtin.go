package enrich

import (
	"context"
	"errors"

	"github.com/furrow-io/furrow/internal/badrows"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/payload"
)

// Schemas of the built-in event types.
var eventSchemas = map[string][4]string{
	"page_view":        {"com.snowplowanalytics.snowplow", "page_view", "jsonschema", "1-0-0"},
	"page_ping":        {"com.snowplowanalytics.snowplow", "page_ping", "jsonschema", "1-0-0"},
	"struct":           {"com.google.analytics", "event", "jsonschema", "1-0-0"},
	"transaction":      {"com.snowplowanalytics.snowplow", "transaction", "jsonschema", "1-0-0"},
	"transaction_item": {"com.snowplowanalytics.snowplow", "transaction_item", "jsonschema", "1-0-0"},
}

func enrichmentFailure(field, value, expectation string) badrows.EnrichmentMessage {
	return badrows.EnrichmentMessage{Message: inputData(field, value, expectation)}
}

// enrich runs the built-in enrichments, then the configured steps.
func (e *Enricher) enrich(ctx context.Context, evt *Event, cp *payload.CollectorPayload) []badrows.EnrichmentMessage {
	f := &evt.F
	var fails []badrows.EnrichmentMessage
	if f[ev.VCollector] == "" {
		fails = append(fails, enrichmentFailure("v_collector", "", "should be set"))
	}

	if f[ev.PageURL] == "" && cp.RefererURI != "" {
		f[ev.PageURL] = tsvSafe(cp.RefererURI)
	}
	if u := f[ev.PageURL]; u != "" {
		if p, ok := explodeURI(u); ok {
			f[ev.PageURLScheme], f[ev.PageURLHost], f[ev.PageURLPort] = p.scheme, p.host, p.port
			f[ev.PageURLPath], f[ev.PageURLQuery], f[ev.PageURLFragment] = p.path, p.query, p.fragment
		} else {
			fails = append(fails, enrichmentFailure("page_url", u, "a valid absolute URI"))
		}
	}
	if r := f[ev.PageReferrer]; r != "" {
		if p, ok := explodeURI(r); ok {
			f[ev.RefrURLScheme], f[ev.RefrURLHost], f[ev.RefrURLPort] = p.scheme, p.host, p.port
			f[ev.RefrURLPath], f[ev.RefrURLQuery], f[ev.RefrURLFragment] = p.path, p.query, p.fragment
		} else {
			fails = append(fails, enrichmentFailure("page_referrer", r, "a valid absolute URI"))
		}
	}

	f[ev.DerivedTstamp] = derivedTimestamp(f[ev.CollectorTstamp], f[ev.DvceCreatedTstamp], f[ev.DvceSentTstamp], f[ev.TrueTstamp])

	switch t := f[ev.Event]; {
	case t == "unstruct":
		if evt.Unstruct == nil {
			fails = append(fails, enrichmentFailure("unstruct_event", "", "an unstruct event needs a self-describing event in ue_pr or ue_px"))
		} else {
			k := evt.Unstruct.Key
			f[ev.EventVendor], f[ev.EventName], f[ev.EventFormat], f[ev.EventVersion] = k.Vendor, k.Name, k.Format, k.Version.String()
		}
	case t == "":
		fails = append(fails, enrichmentFailure("event", "", "the e parameter is required"))
	default:
		s, ok := eventSchemas[t]
		if !ok {
			fails = append(fails, enrichmentFailure("event", t, "one of page_view, page_ping, struct, transaction, transaction_item and unstruct"))
		} else {
			f[ev.EventVendor], f[ev.EventName], f[ev.EventFormat], f[ev.EventVersion] = s[0], s[1], s[2], s[3]
		}
	}
	if len(fails) > 0 {
		return fails
	}

	for _, step := range e.opts.Steps {
		if err := step.Enrich(ctx, evt); err != nil {
			id := step.ID()
			var se *StepError
			var msg badrows.Message = badrows.ExternalError{Error: err.Error()}
			if errors.As(err, &se) {
				msg = inputData(se.Field, se.Value, se.Expectation)
			}
			fails = append(fails, badrows.EnrichmentMessage{Enrichment: &id, Message: msg})
		}
	}
	return fails
}

// derivedTimestamp estimates when the event happened: the true timestamp
// if sent, else the collector time corrected by the device clock's skew,
// else the collector time. Arguments and result are TSV timestamps.
func derivedTimestamp(collector, created, sent, trueTs string) string {
	if trueTs != "" {
		return trueTs
	}
	if collector == "" || created == "" || sent == "" {
		return collector
	}
	c, err1 := ev.ParseTimestamp(collector)
	cr, err2 := ev.ParseTimestamp(created)
	s, err3 := ev.ParseTimestamp(sent)
	if err1 != nil || err2 != nil || err3 != nil || !cr.Before(s) {
		return collector
	}
	return formatTimestamp(c.Add(-s.Sub(cr)))
}
