package pseudo

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// SetParams tells the policy how tracker parameters map to columns (the
// enricher's mapping, name to column); without it, every parameter value
// is pseudonymized. Call it before the policy is used.
func (p *Policy) SetParams(fields map[string]int) {
	p.params = make(map[string]paramAction, len(fields))
	for name, i := range fields {
		switch {
		case p.keep[i]:
			p.params[name] = paramKeep
		case p.url[i] == wholeURL:
			p.params[name] = paramURL
		default:
			p.params[name] = paramHash
		}
	}
}

type paramAction uint8

const (
	paramHash paramAction = iota
	paramKeep
	paramURL
)

// Param rewrites the value of tracker parameter name as the column it
// fills is rewritten: kept if that column is allowed, its pseudonym
// otherwise (a typed column's too: a raw parameter is text). The JSON
// parameters (ue_pr, co, and base64 ue_px, cx) keep their shape, with the
// entities' rules applied; one that cannot be read is pseudonymized
// whole, as is any parameter that fills no column.
func (p *Policy) Param(name, value string) string {
	if value == "" {
		return value
	}
	switch name {
	case "ue_pr", "co":
		if out, err := p.SelfDescribing([]byte(value)); err == nil {
			return string(out)
		}
		return p.h.String(value)
	case "ue_px", "cx":
		enc := base64.URLEncoding
		if strings.ContainsAny(value, "+/") {
			enc = base64.StdEncoding
		}
		raw, err := enc.WithPadding(base64.NoPadding).DecodeString(strings.TrimRight(value, "="))
		if err == nil {
			if out, err := p.SelfDescribing(raw); err == nil {
				return enc.EncodeToString(out)
			}
		}
		return p.h.String(value)
	}
	switch p.params[name] {
	case paramKeep:
		return value
	case paramURL:
		return p.URL(value)
	}
	return p.h.String(value)
}

// safeHeaders are request headers whose values identify no one.
var safeHeaders = map[string]bool{
	"accept": true, "accept-encoding": true, "accept-language": true, "cache-control": true,
	"connection": true, "content-length": true, "content-type": true, "pragma": true,
	"sec-fetch-dest": true, "sec-fetch-mode": true, "sec-fetch-site": true, "te": true,
	"upgrade-insecure-requests": true, "timeout-access": true,
}

// isSafeHeader looks name up in safeHeaders, case-insensitively, without
// allocating.
func isSafeHeader(name string) bool {
	var buf [32]byte
	if len(name) > len(buf) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return safeHeaders[string(buf[:len(name)])]
}

// Header rewrites one "Name: value" request header: the value of a
// header outside a short list of harmless ones (Accept*, Content-Type,
// Content-Length, Cache-Control, Connection, Pragma, Sec-Fetch-*) is
// pseudonymized whole. Cookie, Authorization, X-Forwarded-For, Forwarded,
// User-Agent, Referer, Origin, Host and any custom header are.
func (p *Policy) Header(h string) string {
	if p.headerCache != nil {
		if out, ok := p.headerCache.get(h); ok {
			return out
		}
		out := p.header(h)
		p.headerCache.put(h, out)
		return out
	}
	return p.header(h)
}

func (p *Policy) header(h string) string {
	name, value, ok := strings.Cut(h, ":")
	if !ok {
		return p.h.String(h)
	}
	if isSafeHeader(strings.TrimSpace(name)) {
		return h
	}
	value = strings.TrimSpace(value)
	if value == "" {
		return name + ": "
	}
	return name + ": " + p.h.String(value)
}

// Headers rewrites a list of headers into a new list.
func (p *Policy) Headers(hs []string) []string {
	if hs == nil {
		return nil
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = p.Header(h)
	}
	return out
}

// SelfDescribing rewrites a self-describing JSON: the schema stays; the
// unstruct_event and contexts wrappers are walked into; every other
// entity's data is rewritten by its schema's rules (Entity).
func (p *Policy) SelfDescribing(raw []byte) ([]byte, error) {
	sdj, err := iglu.ParseSelfDescribing(raw)
	if err != nil {
		return nil, err
	}
	k := sdj.Key
	if k.Vendor == "com.snowplowanalytics.snowplow" && (k.Name == "unstruct_event" || k.Name == "contexts") {
		var data []byte
		if len(sdj.Data) > 0 && sdj.Data[0] == '[' {
			data = append(data, '[')
			first := true
			var ierr error
			_, e := jsonx.Array(sdj.Data, 0, func(item []byte) bool {
				out, err := p.SelfDescribing(item)
				if err != nil {
					ierr = err
					return false
				}
				if !first {
					data = append(data, ',')
				}
				first = false
				data = append(data, out...)
				return true
			})
			if ierr != nil {
				return nil, ierr
			}
			if e != nil {
				return nil, ErrJSON
			}
			data = append(data, ']')
		} else if data, err = p.SelfDescribing(sdj.Data); err != nil {
			return nil, err
		}
		sdj.Data = data
	} else if err := p.Entity(&sdj); err != nil {
		return nil, err
	}
	b := append([]byte(`{"schema":`), jsonx.Quote(nil, k.URI())...)
	b = append(b, `,"data":`...)
	b = append(b, sdj.Data...)
	return append(b, '}'), nil
}

// Body rewrites a POST body: a tracker's payload_data (every parameter
// of every event by Param); anything else is pseudonymized whole.
func (p *Policy) Body(body string) string {
	if body == "" {
		return body
	}
	var doc struct {
		Schema string                       `json:"schema"`
		Data   []map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Schema == "" {
		return p.h.String(body)
	}
	for _, evt := range doc.Data {
		for k, v := range evt {
			var s string
			if json.Unmarshal(v, &s) != nil {
				evt[k] = json.RawMessage(jsonx.Quote(nil, p.h.String(string(v))))
				continue
			}
			evt[k] = json.RawMessage(jsonx.Quote(nil, p.Param(k, s)))
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return p.h.String(body)
	}
	return string(out)
}

// Raw parts of a collector payload, rewritten as the columns they fill.
func (p *Policy) IPAddress(v string) string  { return p.Field(ev.UserIPAddress, v) }
func (p *Policy) UserAgent(v string) string  { return p.Field(ev.UserAgent, v) }
func (p *Policy) RefererURI(v string) string { return p.Field(ev.PageURL, v) }

// NetworkUserID rewrites a collector payload's network user id. Bad-row
// schemas require a UUID there, so a pseudonymized one is written in UUID
// form: the first 32 hex digits of its pseudonym, as 8-4-4-4-12 (the
// network_userid column gets the whole pseudonym, which starts with the
// same digits).
func (p *Policy) NetworkUserID(v string) string {
	if v == "" || p.keep[ev.NetworkUserID] {
		return v
	}
	h := p.h.String(v)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
