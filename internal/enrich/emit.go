package enrich

// Emit adds x to the events a step produces beside e, such as the PII
// enrichment's pii_transformation event. They are output right after e,
// and only if e itself is good. They are taken as they are: not enriched,
// not validated, their JSON columns rendered from Contexts, Derived and
// Unstruct. An emitted event without Raw gets e's.
func (e *Event) Emit(x *Event) { e.emitted = append(e.emitted, x) }

// appendEmitted outputs the events steps emitted beside evt, which has
// been pseudonymized if that is on; so are they (a pii_transformation
// event holds the original values).
func (e *Enricher) appendEmitted(evt *Event, out *Output) {
	for _, x := range evt.emitted {
		if e.opts.Pseudonymize != nil {
			// evt's raw event, shared, is rewritten already.
			if err := e.pseudonymize(x); err != nil {
				x.Raw = evt.Raw
				e.pseudonymizeFailed(x, err, e.now(), out)
				continue
			}
			e.finishPseudonymized(x, out)
		} else {
			x.finishJSON()
		}
		if x.Raw == nil {
			x.Raw = evt.Raw
		}
		out.Good = append(out.Good, Good{TSV: x.AppendTSV(make([]byte, 0, x.tsvLen())), Event: x})
	}
}

// Emitted returns the events steps emitted beside e so far.
func (e *Event) Emitted() []*Event { return e.emitted }
