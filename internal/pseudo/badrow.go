package pseudo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	ev "github.com/furrow-io/furrow/internal/event"
)

// BadRow rewrites a Snowplow bad row (a self-describing JSON of the
// com.snowplowanalytics.snowplow.badrows vendor) by the policy:
//   - a payload that is a string (size_violation, generic_error,
//     collector_payload_format_violation, loader_parsing_error: raw bytes
//     or text no one can take apart reliably) is pseudonymized whole;
//   - a collector payload (adapter_failures, tracker_protocol_violations)
//     has its query string parameters, body, IP address, user agent,
//     referer, network user id and headers rewritten as the columns they
//     fill (see Param, Header, Body);
//   - an enrichment payload (schema_violations, enrichment_failures) has
//     its raw event rewritten the same way, and its enriched fields by
//     Fields and Entity;
//   - in the failure, each "value" is rewritten as the parameter or
//     column its "field" names (pseudonymized when that is unknown),
//     each "json" is pseudonymized whole, and atomic field messages,
//     which quote the value, are pseudonymized after "Field [name]: ".
//
// Structure, schema keys, timestamps, the processor and error texts
// without values stay. The result is compact JSON with sorted keys.
func (p *Policy) BadRow(row []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(row))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("bad row: %w", err)
	}
	data, ok := doc["data"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("bad row: no data object")
	}
	switch pl := data["payload"].(type) {
	case string:
		if pl != "" {
			data["payload"] = p.h.String(pl)
		}
	case map[string]any:
		if _, ok := pl["querystring"]; ok {
			p.collectorPayload(pl)
		}
		if raw, ok := pl["raw"].(map[string]any); ok {
			p.rawEvent(raw)
		}
		if enr, ok := pl["enriched"].(map[string]any); ok {
			p.enrichedObject(enr)
		}
	case nil:
	default:
		data["payload"] = p.h.String(fmt.Sprint(pl))
	}
	if f, ok := data["failure"]; ok {
		data["failure"] = p.failure(f)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func (p *Policy) str(m map[string]any, key string, fn func(string) string) {
	if s, ok := m[key].(string); ok && s != "" {
		m[key] = fn(s)
	}
}

func (p *Policy) headers(m map[string]any) {
	if hs, ok := m["headers"].([]any); ok {
		for i, h := range hs {
			if s, ok := h.(string); ok {
				hs[i] = p.Header(s)
			}
		}
	}
}

func (p *Policy) nameValues(list any) {
	items, _ := list.([]any)
	for _, it := range items {
		nv, ok := it.(map[string]any)
		if !ok {
			continue
		}
		name, _ := nv["name"].(string)
		if v, ok := nv["value"].(string); ok {
			nv["value"] = p.Param(name, v)
		}
	}
}

// collectorPayload rewrites the collector payload of adapter_failures
// and tracker_protocol_violations.
func (p *Policy) collectorPayload(m map[string]any) {
	p.nameValues(m["querystring"])
	p.str(m, "body", p.Body)
	p.request(m, "networkUserId")
}

// rawEvent rewrites the raw event of an enrichment payload.
func (p *Policy) rawEvent(m map[string]any) {
	p.nameValues(m["parameters"])
	p.request(m, "userId")
}

// request rewrites what both shapes hold of the request: IP address,
// user agent, referer, the network user id (under nuidKey) and headers.
func (p *Policy) request(m map[string]any, nuidKey string) {
	p.str(m, "ipAddress", p.IPAddress)
	p.str(m, "useragent", p.UserAgent)
	p.str(m, "refererUri", p.RefererURI)
	p.str(m, nuidKey, p.NetworkUserID)
	p.headers(m)
}

// enrichedObject rewrites the "enriched" object of an enrichment payload:
// the 131 fields by name, numbers and booleans included.
func (p *Policy) enrichedObject(m map[string]any) {
	for name, v := range m {
		i, ok := ev.Index(name)
		if !ok {
			if v != nil {
				m[name] = p.h.String(fmt.Sprint(v))
			}
			continue
		}
		if v == nil || p.keep[i] {
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			m[name] = nil // a typed column not allowed: null, as in the warehouse
			continue
		}
		if ev.Fields[i].Type == ev.JSON {
			if out, err := p.SelfDescribing([]byte(s)); err == nil {
				m[name] = string(out)
			} else {
				m[name] = p.h.String(s)
			}
			continue
		}
		if ev.Fields[i].Type != ev.String {
			m[name] = nil
			continue
		}
		m[name] = p.Field(i, s)
	}
}

// failure walks a bad row's failure.
func (p *Policy) failure(v any) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = p.failure(x[i])
		}
	case map[string]any:
		for k, val := range x {
			switch k {
			case "value":
				if s, ok := val.(string); ok && s != "" {
					field, _ := x["field"].(string)
					x[k] = p.valueOf(field, s)
				}
			case "json":
				if val != nil {
					b, _ := json.Marshal(val)
					x[k] = p.h.String(string(b))
				}
			case "message":
				if s, ok := val.(string); ok {
					if kw, _ := x["keyword"].(string); strings.HasPrefix(kw, "atomic_field") {
						x[k] = p.atomicMessage(s)
						continue
					}
				}
				x[k] = p.failure(val)
			default:
				x[k] = p.failure(val)
			}
		}
	}
	return v
}

// valueOf rewrites a failing value by the parameter or column field.
func (p *Policy) valueOf(field, v string) string {
	if i, ok := ev.Index(field); ok {
		if p.keep[i] {
			return v
		}
		return p.h.String(v)
	}
	return p.Param(field, v)
}

// atomicMessage pseudonymizes what follows "Field [name]: " in an atomic
// field error, which quotes the value.
func (p *Policy) atomicMessage(s string) string {
	if !strings.HasPrefix(s, "Field [") {
		return s // e.g. "Field is longer than maximum allowed size 2": no value
	}
	i := strings.Index(s, "]: ")
	if i < 0 {
		return p.h.String(s)
	}
	name := s[len("Field ["):i]
	if j, ok := ev.Index(name); ok && p.keep[j] {
		return s
	}
	if p.params[name] == paramKeep {
		return s
	}
	return s[:i+3] + p.h.String(s[i+3:])
}
