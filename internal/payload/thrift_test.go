package payload

import (
	"bytes"
	"context"
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
)

func sample() *CollectorPayload {
	return &CollectorPayload{
		Schema:        SchemaURI,
		IPAddress:     "192.0.2.4",
		Timestamp:     1700000000123,
		Encoding:      "UTF-8",
		Collector:     "furrow-0.1.0-log",
		UserAgent:     "Mozilla/5.0",
		RefererURI:    "https://example.com/page",
		Path:          "/com.snowplowanalytics.snowplow/tp2",
		Querystring:   "a=1&b=%20",
		Body:          `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[]}`,
		Headers:       []string{"Host: localhost", "Cookie: sp=abc", "application/json"},
		ContentType:   "application/json",
		Hostname:      "localhost",
		NetworkUserID: "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11",
	}
}

// readWithApache decodes b with the Apache Thrift binary protocol, reading
// fields generically by id, as a Java or Scala consumer of the real IDL would.
func readWithApache(t *testing.T, b []byte) map[int16]any {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	buf.Write(b)
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	if _, err := p.ReadStructBegin(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[int16]any{}
	for {
		_, typ, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ == thrift.STOP {
			break
		}
		switch typ {
		case thrift.STRING:
			s, err := p.ReadString(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = s
		case thrift.I64:
			v, err := p.ReadI64(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = v
		case thrift.LIST:
			et, n, err := p.ReadListBegin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if et != thrift.STRING {
				t.Fatalf("list element type %v", et)
			}
			var l []string
			for i := 0; i < n; i++ {
				s, _ := p.ReadString(ctx)
				l = append(l, s)
			}
			p.ReadListEnd(ctx)
			out[id] = l
		default:
			t.Fatalf("unexpected type %v for field %d", typ, id)
		}
		p.ReadFieldEnd(ctx)
	}
	return out
}

func TestMarshalReadableByApacheThrift(t *testing.T) {
	cp := sample()
	b := cp.Marshal()
	if len(b) != cp.Size() {
		t.Fatalf("Size()=%d, Marshal produced %d bytes", cp.Size(), len(b))
	}
	got := readWithApache(t, b)
	want := map[int16]any{
		31337: cp.Schema, 100: cp.IPAddress, 200: cp.Timestamp, 210: cp.Encoding,
		220: cp.Collector, 300: cp.UserAgent, 310: cp.RefererURI, 320: cp.Path,
		330: cp.Querystring, 340: cp.Body, 350: cp.Headers, 360: cp.ContentType,
		400: cp.Hostname, 410: cp.NetworkUserID,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("apache thrift read\n got %#v\nwant %#v", got, want)
	}
}

func TestOptionalFieldsOmitted(t *testing.T) {
	cp := &CollectorPayload{Schema: SchemaURI, IPAddress: "unknown", Timestamp: 1, Encoding: "UTF-8", Collector: "c", Path: "/i"}
	got := readWithApache(t, cp.Marshal())
	for _, id := range []int16{300, 310, 330, 340, 350, 360, 400, 410} {
		if _, ok := got[id]; ok {
			t.Errorf("field %d written although empty", id)
		}
	}
	if got[320] != "/i" {
		t.Errorf("path = %v", got[320])
	}
}

// writeWithApache encodes cp with the Apache library, in a different field
// order and with an extra unknown struct field, to check that our reader
// skips what it does not know.
func writeWithApache(t *testing.T, cp *CollectorPayload) []byte {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	str := func(id int16, s string) {
		p.WriteFieldBegin(ctx, "", thrift.STRING, id)
		p.WriteString(ctx, s)
		p.WriteFieldEnd(ctx)
	}
	p.WriteStructBegin(ctx, "CollectorPayload")
	str(410, cp.NetworkUserID)
	str(100, cp.IPAddress)
	p.WriteFieldBegin(ctx, "", thrift.I64, 200)
	p.WriteI64(ctx, cp.Timestamp)
	// unknown field 999: a struct holding a map and a double
	p.WriteFieldBegin(ctx, "", thrift.STRUCT, 999)
	p.WriteStructBegin(ctx, "x")
	p.WriteFieldBegin(ctx, "", thrift.MAP, 1)
	p.WriteMapBegin(ctx, thrift.STRING, thrift.I32, 1)
	p.WriteString(ctx, "k")
	p.WriteI32(ctx, 7)
	p.WriteFieldBegin(ctx, "", thrift.DOUBLE, 2)
	p.WriteDouble(ctx, 1.5)
	p.WriteFieldStop(ctx)
	str(31337, cp.Schema)
	str(210, cp.Encoding)
	str(220, cp.Collector)
	str(300, cp.UserAgent)
	str(310, cp.RefererURI)
	str(320, cp.Path)
	str(330, cp.Querystring)
	str(340, cp.Body)
	p.WriteFieldBegin(ctx, "", thrift.LIST, 350)
	p.WriteListBegin(ctx, thrift.STRING, len(cp.Headers))
	for _, h := range cp.Headers {
		p.WriteString(ctx, h)
	}
	str(360, cp.ContentType)
	str(400, cp.Hostname)
	p.WriteFieldStop(ctx)
	p.Flush(ctx)
	return buf.Bytes()
}

func TestUnmarshalApacheEncoded(t *testing.T) {
	cp := sample()
	got, err := Unmarshal(writeWithApache(t, cp))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cp) {
		t.Fatalf("got %#v\nwant %#v", got, cp)
	}
}

func TestRoundTrip(t *testing.T) {
	cp := sample()
	got, err := Unmarshal(cp.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cp) {
		t.Fatalf("got %#v\nwant %#v", got, cp)
	}
}

// TestGoldenBytes pins the exact encoding of a small payload, written out
// by hand from the binary protocol rules, so a change in field order or
// ids cannot slip through both encoder and decoder at once.
func TestGoldenBytes(t *testing.T) {
	cp := &CollectorPayload{Schema: "s", IPAddress: "i", Timestamp: 2, Encoding: "e", Collector: "c", Path: "/p", Headers: []string{"h"}}
	want := []byte{
		11, 0x7a, 0x69, 0, 0, 0, 1, 's', // 31337 = 0x7a69
		11, 0, 100, 0, 0, 0, 1, 'i',
		10, 0, 200, 0, 0, 0, 0, 0, 0, 0, 2,
		11, 0, 210, 0, 0, 0, 1, 'e',
		11, 0, 220, 0, 0, 0, 1, 'c',
		11, 0x01, 0x40, 0, 0, 0, 2, '/', 'p', // 320
		15, 0x01, 0x5e, 11, 0, 0, 0, 1, 0, 0, 0, 1, 'h', // 350
		0,
	}
	if got := cp.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	good := sample().Marshal()
	cases := map[string][]byte{
		"empty":          {},
		"truncated":      good[:len(good)/2],
		"no stop":        good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"negative len":   {11, 0, 100, 0xff, 0xff, 0xff, 0xff},
		"huge list":      {15, 1, 0x5e, 11, 0x7f, 0xff, 0xff, 0xff},
		"unknown type":   {99, 0, 1, 0},
		"base64 garbage": []byte(base64.StdEncoding.EncodeToString(good)),
	}
	for name, b := range cases {
		if _, err := Unmarshal(b); err == nil {
			t.Errorf("%s: expected an error", name)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(sample().Marshal())
	f.Add(writeWithApache(&testing.T{}, sample()))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same value.
		again, err := Unmarshal(p.Marshal())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(p)) {
			t.Fatalf("round trip changed payload\n%#v\n%#v", p, again)
		}
	})
}

// normalize maps an empty header list to nil: both encode the same way.
func normalize(p *CollectorPayload) *CollectorPayload {
	c := *p
	if len(c.Headers) == 0 {
		c.Headers = nil
	}
	return &c
}

func BenchmarkMarshal(b *testing.B) {
	cp := sample()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = cp.AppendMarshal(buf[:0])
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	data := sample().Marshal()
	var p CollectorPayload
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if err := p.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
