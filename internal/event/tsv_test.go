package event

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	sdk "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"
)

func valid() []string {
	f := make([]string, NumFields)
	f[EventID] = "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11"
	f[VCollector] = "furrow-0.1.0"
	f[VEtl] = "furrow-0.1.0"
	f[CollectorTstamp] = "2026-01-02 03:04:05.678"
	return f
}

func TestFieldsTable(t *testing.T) {
	if len(Fields) != 131 || NumFields != 131 {
		t.Fatalf("%d fields", len(Fields))
	}
	// Spot checks against the enriched event's column order.
	for name, want := range map[string]int{
		"app_id": 0, "platform": 1, "event_id": 6, "v_collector": 10, "contexts": 52,
		"unstruct_event": 58, "useragent": 77, "derived_contexts": 122, "event_fingerprint": 129, "true_tstamp": 130,
	} {
		if i, ok := Index(name); !ok || i != want {
			t.Errorf("Index(%q) = %d, %v; want %d", name, i, ok, want)
		}
	}
	if _, ok := Index("nope"); ok {
		t.Error("unknown column found")
	}
	// Every column is where Snowplow's Go analytics SDK reads it.
	sample := map[Type]string{String: "s", Int: "1", Double: "1.5", Bool: "1", Timestamp: "2026-01-02 03:04:05.678",
		JSON: `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[]}`}
	for i, f := range Fields {
		cols := make([]string, NumFields)
		cols[i] = sample[f.Type]
		if f.Name == "unstruct_event" {
			cols[i] = `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{}}}`
		}
		name := f.Name
		if name == "refr_dvce_tstamp" {
			name = "refr_device_tstamp" // the Go SDK's own name for column 121
		}
		if _, err := sdk.ParsedEvent(cols).GetValue(name); err != nil {
			t.Errorf("column %d %s: the SDK does not find it there: %v", i, f.Name, err)
		}
	}
	seen := map[string]bool{}
	for _, f := range Fields {
		if seen[f.Name] {
			t.Errorf("duplicate column %s", f.Name)
		}
		seen[f.Name] = true
	}
}

func TestSplit(t *testing.T) {
	line := []byte(strings.Join(valid(), "\t"))
	var cols [NumFields][]byte
	if err := Split(line, &cols); err != nil {
		t.Fatal(err)
	}
	if string(cols[EventID]) != "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11" || len(cols[NumFields-1]) != 0 {
		t.Errorf("columns %q", cols[:12])
	}
	for _, n := range []int{1, 2, NumFields - 1, NumFields + 1, 2 * NumFields} {
		err := Split([]byte(strings.Repeat("x\t", n-1)+"x"), &cols)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.FieldCount != n {
			t.Errorf("%d fields: %v", n, err)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		field, value string
		ok           bool
	}{
		{"event_id", "", false},
		{"event_id", "not-a-uuid", false},
		{"event_id", "8C3C4F36-8B3E-4C0C-9B0F-3A0D6C6A2A11", true},
		{"v_etl", "", false},
		{"collector_tstamp", "", false},
		{"collector_tstamp", "2026-01-02T03:04:05Z", false},
		{"dvce_created_tstamp", "2026-13-02 03:04:05.000", false},
		{"dvce_created_tstamp", "2026-01-02 03:04:05.000", true},
		{"txn_id", "12", true},
		{"txn_id", "1.5", false},
		{"txn_id", "99999999999", false}, // beyond 32 bits
		{"geo_latitude", "-33.86", true},
		{"geo_latitude", "north", false},
		{"br_cookies", "1", true},
		{"br_cookies", "true", false},
		{"contexts", `{"schema":"iglu:x/y/jsonschema/1-0-0","data":[]}`, true},
		{"contexts", `{"schema":`, false},
		{"app_id", "anything \u00e9 goes", true},
	}
	for _, tt := range tests {
		f := valid()
		i, ok := Index(tt.field)
		if !ok {
			t.Fatal(tt.field)
		}
		f[i] = tt.value
		err := Check([]byte(strings.Join(f, "\t")))
		if (err == nil) != tt.ok {
			t.Errorf("%s=%q: Check = %v, want ok=%v", tt.field, tt.value, err, tt.ok)
		}
		var pe *ParseError
		if err != nil && (!errors.As(err, &pe) || pe.Invalid[0].Field != tt.field) {
			t.Errorf("%s=%q: error %v does not name the column", tt.field, tt.value, err)
		}
	}
	// Every problem is reported, not just the first.
	f := valid()
	f[EventID], f[TxnID] = "x", "y"
	var pe *ParseError
	if err := Check([]byte(strings.Join(f, "\t"))); !errors.As(err, &pe) || len(pe.Invalid) != 2 {
		t.Errorf("got %v, want two invalid values", err)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte(strings.Join(valid(), "\t")))
	f.Add([]byte("a\tb"))
	f.Fuzz(func(t *testing.T, line []byte) {
		var cols [NumFields][]byte
		if err := Split(line, &cols); err != nil {
			if bytes.Count(line, []byte{'\t'}) == NumFields-1 {
				t.Fatalf("rejected a line with %d fields: %v", NumFields, err)
			}
			return
		}
		if !bytes.Equal(bytes.Join(cols[:], []byte{'\t'}), line) {
			t.Fatal("columns do not join back to the line")
		}
		Check(line) // must not panic
	})
}

func TestAppendTimestamp(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 678_999_999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 6, 1, 12, 0, 0, 5_000_000, time.FixedZone("x", 5*3600+1800)),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(400e9)-100e9, r.Int64N(1e9)))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), TimestampLayout)
		if got := AppendTimestamp([]byte("x"), tm); !bytes.Equal(got, want) {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkAppendTimestamp(b *testing.B) {
	tm := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	buf := make([]byte, 0, 32)
	b.Run("AppendTimestamp", func(b *testing.B) {
		for range b.N {
			buf = AppendTimestamp(buf[:0], tm)
		}
	})
	b.Run("time.AppendFormat", func(b *testing.B) {
		for range b.N {
			buf = tm.UTC().AppendFormat(buf[:0], TimestampLayout)
		}
	})
}

func TestParseTimestamp(t *testing.T) {
	values := []string{
		"2026-01-02 03:04:05.678", "2024-02-29 00:00:00.000", "2023-02-29 00:00:00.000", "2026-04-31 00:00:00.000",
		"2026-13-01 00:00:00.000", "2026-00-01 00:00:00.000", "2026-01-00 00:00:00.000", "2026-01-01 24:00:00.000",
		"2026-01-01 23:60:00.000", "2026-01-01 23:59:60.000", "0000-01-01 00:00:00.000", "9999-12-31 23:59:59.999",
		"2026-01-02 03:04:05", "2026-01-02 03:04:05.6", "2026-01-02 3:04:05,678", "2026-01-02T03:04:05.678",
		"2026-01-0a 03:04:05.678", "", "x",
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		values = append(values, string(AppendTimestamp(nil, time.Unix(r.Int64N(300e9), r.Int64N(1e9)))))
	}
	for _, v := range values {
		want, wantErr := time.Parse(TimestampLayout, v)
		got, err := ParseTimestamp(v)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Errorf("%q: got %v, %v; want %v, %v", v, got, err, want, wantErr)
		}
	}
}

// BenchmarkCheck checks a page view line as the loader does for every
// enriched event.
func BenchmarkCheck(b *testing.B) {
	f := valid()
	f[AppID], f[Platform], f[Event], f[PageURL] = "shop", "web", "page_view", "https://shop.example.com/products/shoes?color=red"
	f[DvceCreatedTstamp], f[DerivedTstamp], f[EtlTstamp] = "2026-01-02 03:04:04.000", "2026-01-02 03:04:04.000", "2026-01-02 03:04:06.000"
	f[BrViewwidth], f[BrViewheight], f[DvceScreenwidth], f[DvceScreenheight], f[BrCookies] = "1200", "800", "1920", "1080", "1"
	f[Contexts] = `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}]}`
	line := []byte(strings.Join(f, "\t"))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(line); err != nil {
			b.Fatal(err)
		}
	}
}
