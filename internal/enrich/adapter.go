package enrich

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
)

// Vendors and versions of the tracker protocol endpoints.
const (
	VendorSnowplow = "com.snowplowanalytics.snowplow"
	VendorRedirect = "r"
	VersionTP1     = "tp1"
	VersionTP2     = "tp2"
)

// ParseAPI extracts (vendor, version) from a collector path:
// /vendor/version (trailing slash allowed), or /i and /ice.png for tp1.
func ParseAPI(path string) (vendor, version string, ok bool) {
	if path == "/i" || strings.HasPrefix(path, "/ice.png") || strings.HasPrefix(path, "/i?") {
		return VendorSnowplow, VersionTP1, true
	}
	p := strings.TrimPrefix(path, "/")
	p = strings.TrimSuffix(p, "/")
	vendor, version, ok = strings.Cut(p, "/")
	if !ok || vendor == "" || version == "" || strings.Contains(version, "/") {
		return "", "", false
	}
	return vendor, version, true
}

// adapterError is an adapter's rejection of a whole payload.
type adapterError struct {
	msgs []badrows.Message
}

func (e *adapterError) Error() string { return "adapter failure" }

func inputData(field, value, expectation string) badrows.InputData {
	return badrows.InputData{Field: field, Value: badrows.Str(value), Expectation: expectation}
}

// Adapter turns one collector payload into raw events.
type Adapter interface {
	Adapt(ctx context.Context, cp *payload.CollectorPayload, qs []Param) ([]RawEvent, error)
}

// AdapterFunc adapts a function to Adapter.
type AdapterFunc func(ctx context.Context, cp *payload.CollectorPayload, qs []Param) ([]RawEvent, error)

// Adapt calls f.
func (f AdapterFunc) Adapt(ctx context.Context, cp *payload.CollectorPayload, qs []Param) ([]RawEvent, error) {
	return f(ctx, cp, qs)
}

func rawEvent(vendor, version string, cp *payload.CollectorPayload, params []Param) RawEvent {
	return RawEvent{Vendor: vendor, Version: version, Params: params, ContentType: cp.ContentType, Payload: cp}
}

// tp1: every parameter in the querystring of GET /i.
func (e *Enricher) adaptTP1(_ context.Context, cp *payload.CollectorPayload, qs []Param) ([]RawEvent, error) {
	if len(qs) == 0 {
		return nil, &adapterError{[]badrows.Message{inputData("querystring", "", "empty querystring: no event to process")}}
	}
	return []RawEvent{rawEvent(VendorSnowplow, VersionTP1, cp, qs)}, nil
}

// Content types accepted for tp2 POST bodies, exactly.
var tp2ContentTypes = []string{"application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8"}

var payloadDataCriterion = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-*")

// tp2: GET with a querystring, or POST with a payload_data body whose
// events each take the querystring parameters on top.
func (e *Enricher) adaptTP2(ctx context.Context, cp *payload.CollectorPayload, qs []Param) ([]RawEvent, error) {
	if cp.Body == "" {
		if len(qs) == 0 {
			return nil, &adapterError{[]badrows.Message{
				inputData("body", "", "empty body: not a valid tracker protocol event"),
				inputData("querystring", "", "empty querystring: not a valid tracker protocol event"),
			}}
		}
		return []RawEvent{rawEvent(VendorSnowplow, VersionTP2, cp, qs)}, nil
	}
	ctOK := false
	for _, ct := range tp2ContentTypes {
		if cp.ContentType == ct {
			ctOK = true
		}
	}
	if !ctOK {
		return nil, &adapterError{[]badrows.Message{inputData("contentType", cp.ContentType, "expected one of "+strings.Join(tp2ContentTypes, ", "))}}
	}
	items, err := e.parsePayloadData(ctx, cp.Body)
	if err != nil {
		return nil, err
	}
	events := make([]RawEvent, 0, len(items))
	for _, item := range items {
		events = append(events, rawEvent(VendorSnowplow, VersionTP2, cp, mergeParams(item, qs)))
	}
	return events, nil
}

// parsePayloadData validates a payload_data document and returns each
// event's parameters, sorted by name.
func (e *Enricher) parsePayloadData(ctx context.Context, body string) ([][]Param, error) {
	fail := func(m badrows.Message) error { return &adapterError{[]badrows.Message{m}} }
	sdj, msg := e.parseSDJ("body", []byte(body))
	if msg != nil {
		return nil, fail(msg)
	}
	if !payloadDataCriterion.Matches(sdj.Key) {
		return nil, fail(badrows.CriterionMismatch{SchemaKey: sdj.Key.URI(), SchemaCriterion: payloadDataCriterion.String()})
	}
	if items, ok := fastPayloadData(sdj.Key.Version, sdj.Data); ok {
		return items, nil
	}
	data, msg := e.validate(ctx, sdj)
	if msg != nil {
		return nil, fail(msg)
	}
	arr, ok := data.([]any)
	if !ok || len(arr) == 0 {
		return nil, fail(inputData("data", string(sdj.Data), "empty list of events"))
	}
	out := make([][]Param, 0, len(arr))
	var msgs []badrows.Message
	for _, item := range arr {
		obj, ok := item.(map[string]any)
		if !ok {
			msgs = append(msgs, inputData("data", "", "event is not a JSON object"))
			continue
		}
		params := make([]Param, 0, len(obj))
		for k, v := range obj {
			switch s := v.(type) {
			case string:
				params = append(params, Param{Name: k, Value: s})
			case nil:
				msgs = append(msgs, inputData(k, "", "value cannot be null"))
			default:
				b, _ := json.Marshal(s)
				msgs = append(msgs, inputData(k, string(b), "value is not a string"))
			}
		}
		sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
		out = append(out, params)
	}
	if len(msgs) > 0 {
		return nil, &adapterError{msgs}
	}
	return out, nil
}

func notIglu(raw []byte, err error) badrows.NotIglu {
	var ni *iglu.NotIgluError
	code := "INVALID_DATA_PAYLOAD"
	if errors.As(err, &ni) && ni.Code != "" {
		code = ni.Code
	}
	if !json.Valid(raw) {
		b, _ := json.Marshal(string(raw))
		raw = b
	}
	return badrows.NotIglu{JSON: raw, Error: code}
}

const uriRedirectSchema = "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0"

// redirect: GET /r/tp2?u=<target>&... as sent by click-tracking links.
// The target becomes a uri_redirect entity: the event itself when e is
// absent, a context otherwise.
func (e *Enricher) adaptRedirect(_ context.Context, cp *payload.CollectorPayload, qs []Param) ([]RawEvent, error) {
	ev := rawEvent(VendorRedirect, VersionTP2, cp, append([]Param(nil), qs...))
	if len(qs) == 0 {
		return nil, &adapterError{[]badrows.Message{inputData("querystring", "", "empty querystring: not a valid URI redirect")}}
	}
	u, ok := ev.Get("u")
	if !ok || u == "" {
		return nil, &adapterError{[]badrows.Message{inputData("querystring", cp.Querystring, "missing `u` parameter: not a valid URI redirect")}}
	}
	uJSON, _ := json.Marshal(u)
	entity := `{"schema":"` + uriRedirectSchema + `","data":{"uri":` + string(uJSON) + `}}`
	ev.del("u")
	if _, hasE := ev.Get("e"); hasE {
		var existing []json.RawMessage
		if co, ok := ev.Get("co"); ok {
			if sdj, err := iglu.ParseSelfDescribing([]byte(co)); err == nil {
				json.Unmarshal(sdj.Data, &existing)
			}
		} else if cx, ok := ev.Get("cx"); ok {
			if dec, err := decodeBase64(cx); err == nil {
				if sdj, err := iglu.ParseSelfDescribing(dec); err == nil {
					json.Unmarshal(sdj.Data, &existing)
				}
			}
		}
		existing = append(existing, json.RawMessage(entity))
		arr, _ := json.Marshal(existing)
		ev.del("cx")
		ev.set("co", `{"schema":"`+contextsSchemaOut+`","data":`+string(arr)+`}`)
	} else {
		ev.set("e", "ue")
		ev.set("ue_pr", `{"schema":"`+unstructSchemaOut+`","data":`+entity+`}`)
	}
	ev.set("tv", "r-tp2")
	if _, ok := ev.Get("p"); !ok {
		ev.set("p", "web")
	}
	return []RawEvent{ev}, nil
}

// decodeBase64 accepts the standard and URL-safe alphabets (even mixed),
// with or without padding, and ignores whitespace, as trackers and the
// decoders they were tested against do.
func decodeBase64(s string) ([]byte, error) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-':
			b = append(b, '+')
		case '_':
			b = append(b, '/')
		case '=', ' ', '\t', '\n', '\r':
		default:
			b = append(b, c)
		}
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(b)))
	n, err := base64.RawStdEncoding.Decode(out, b)
	return out[:n], err
}
