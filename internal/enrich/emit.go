package enrich

// Emit adds x to the events a step produces beside e, such as the PII
// enrichment's pii_transformation event. They are output right after e,
// and only if e itself is good. They are taken as they are: not enriched,
// not validated, their JSON columns rendered from Contexts, Derived and
// Unstruct. An emitted event without Raw gets e's.
func (e *Event) Emit(x *Event) { e.emitted = append(e.emitted, x) }

// appendEmitted outputs the events steps emitted beside evt.
func appendEmitted(evt *Event, out *Output) {
	for _, x := range evt.emitted {
		if x.Raw == nil {
			x.Raw = evt.Raw
		}
		x.finishJSON()
		out.Good = append(out.Good, Good{TSV: x.AppendTSV(make([]byte, 0, 1024)), Event: x})
	}
}

// Emitted returns the events steps emitted beside e so far.
func (e *Event) Emitted() []*Event { return e.emitted }
