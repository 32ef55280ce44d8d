package analytics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"

	"github.com/furrow-io/furrow/internal/event"
)

// sample is an enriched line with a value of every type.
func sample() []string {
	f := make([]string, event.NumFields)
	set := func(name, v string) {
		i, ok := event.Index(name)
		if !ok {
			panic(name)
		}
		f[i] = v
	}
	set("app_id", "shop")
	set("platform", "web")
	set("etl_tstamp", "2026-01-02 03:04:06.120")
	set("collector_tstamp", "2026-01-02 03:04:05.678")
	set("event", "unstruct")
	set("event_id", "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11")
	set("v_collector", "furrow-0.1.0")
	set("v_etl", "furrow-0.1.0")
	set("domain_sessionidx", "3")
	set("geo_latitude", "51.5")
	set("page_url", "https://shop.example.com/a?b=\"c\"\\d")
	set("page_title", "Shoes — \u00e9t\u00e9 \U0001F45F")
	set("page_urlport", "443")
	set("se_value", "-1.25e3")
	set("br_cookies", "1")
	set("br_features_pdf", "0")
	set("br_viewwidth", "1200")
	set("unstruct_event", `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1","data":{"targetUrl":"https://example.com"}}}`)
	return f
}

func TestAppendEventJSON(t *testing.T) {
	f := sample()
	line := []byte(strings.Join(f, "\t"))
	if err := event.Check(line); err != nil {
		t.Fatal(err)
	}
	out, err := AppendEventJSON([]byte("prefix:"), line)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("prefix:")) {
		t.Fatal("did not append")
	}
	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(out[len("prefix:"):]))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, out)
	}
	if len(got) != event.NumFields {
		t.Fatalf("%d keys, want %d", len(got), event.NumFields)
	}

	// Every column agrees with Snowplow's Go analytics SDK.
	parsed, err := sdk.ParseEvent(string(line))
	if err != nil {
		t.Fatal(err)
	}
	for i, fl := range event.Fields {
		v := got[fl.Name]
		if f[i] == "" {
			want := any(nil)
			if i == event.Contexts || i == event.DerivedContexts {
				want = map[string]any{}
			}
			if fmt.Sprint(v) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", fl.Name, v, want)
			}
			continue
		}
		sv, err := parsed.GetValue(fl.Name)
		if err != nil {
			t.Fatalf("SDK %s: %v", fl.Name, err)
		}
		switch fl.Type {
		case event.Timestamp:
			ts, err := time.Parse(time.RFC3339Nano, v.(string))
			if err != nil || !ts.Equal(sv.(time.Time)) {
				t.Errorf("%s = %v, SDK %v", fl.Name, v, sv)
			}
		case event.Int:
			n, _ := v.(json.Number).Int64()
			if int(n) != sv.(int) {
				t.Errorf("%s = %v, SDK %v", fl.Name, v, sv)
			}
		case event.Double:
			x, _ := v.(json.Number).Float64()
			want, ok := sv.(float64)
			if s, isString := sv.(string); isString { // the Go SDK reads se_value as a string
				want, _ = strconv.ParseFloat(s, 64)
				ok = true
			}
			if !ok || x != want {
				t.Errorf("%s = %v, SDK %v", fl.Name, v, sv)
			}
		case event.Bool:
			if v != sv {
				t.Errorf("%s = %v, SDK %v", fl.Name, v, sv)
			}
		case event.JSON:
			// furrow keeps the self-describing JSON, as the Scala SDK and
			// Micro do; the Go SDK shreds it. Compare the inner data.
			data := v.(map[string]any)["data"].(map[string]any)
			if data["schema"] != "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1" {
				t.Errorf("%s = %v", fl.Name, v)
			}
			inner := sv.(map[string]any)["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"].(map[string]any)
			if inner["targetUrl"] != data["data"].(map[string]any)["targetUrl"] {
				t.Errorf("%s: SDK %v", fl.Name, sv)
			}
		default:
			if v != sv {
				t.Errorf("%s = %q, SDK %q", fl.Name, v, sv)
			}
		}
	}
	if got["etl_tstamp"] != "2026-01-02T03:04:06.120Z" {
		t.Errorf("etl_tstamp = %v", got["etl_tstamp"])
	}
}

func TestAppendEventJSONRejectsWrongFieldCount(t *testing.T) {
	for _, n := range []int{1, event.NumFields - 1, event.NumFields + 1} {
		line := strings.Repeat("\t", n-1)
		if _, err := AppendEventJSON(nil, []byte(line)); err == nil {
			t.Errorf("%d fields: no error", n)
		}
	}
}

// FuzzAppendEventJSON: any line that passes event.Check becomes valid JSON
// with one key per column.
func FuzzAppendEventJSON(f *testing.F) {
	f.Add(strings.Join(sample(), "\t"))
	s := sample()
	s[event.Contexts] = `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[]}`
	f.Add(strings.Join(s, "\t"))
	f.Fuzz(func(t *testing.T, line string) {
		if event.Check([]byte(line)) != nil {
			return
		}
		out, err := AppendEventJSON(nil, []byte(line))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("invalid JSON %v: %s", err, out)
		}
		if len(m) != event.NumFields {
			t.Fatalf("%d keys", len(m))
		}
	})
}

// Values event.Check accepts but that are not JSON as written.
func TestAppendEventJSONNormalizes(t *testing.T) {
	tests := []struct{ field, value, want string }{
		{"geo_latitude", "00", "0"},
		{"geo_latitude", "+1.5", "1.5"},
		{"geo_latitude", ".5", "0.5"},
		{"geo_latitude", "NaN", "null"},
		{"geo_latitude", "-Inf", "null"},
		{"geo_latitude", "0x1p-2", "0.25"},
		{"geo_latitude", "1e3", "1e3"},
		{"page_urlport", "0443", "443"},
		{"page_urlport", "+80", "80"},
		{"collector_tstamp", "2026-01-02 03:04:05.678", `"2026-01-02T03:04:05.678Z"`},
		{"collector_tstamp", "2026-01-02 3:04:05,678", `"2026-01-02T03:04:05.678Z"`},
	}
	for _, tt := range tests {
		f := sample()
		i, _ := event.Index(tt.field)
		f[i] = tt.value
		line := []byte(strings.Join(f, "\t"))
		if err := event.Check(line); err != nil {
			t.Errorf("%s=%q: Check: %v", tt.field, tt.value, err)
			continue
		}
		out, _ := AppendEventJSON(nil, line)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Errorf("%s=%q: invalid JSON: %v", tt.field, tt.value, err)
			continue
		}
		if string(m[tt.field]) != tt.want {
			t.Errorf("%s=%q: got %s, want %s", tt.field, tt.value, m[tt.field], tt.want)
		}
	}
}
