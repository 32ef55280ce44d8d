package anonip

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/enrich"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
)

var key101 = iglu.SchemaKey{Vendor: "com.snowplowanalytics.snowplow", Name: "anon_ip", Format: "jsonschema", Version: iglu.SchemaVer{Model: 1, Addition: 1}}

// TestEnrichSpec replays the table of Snowplow Enrich's AnonIpEnrichmentSpec
// (inputs and expected outputs are Enrich's published test facts).
func TestEnrichSpec(t *testing.T) {
	for _, tc := range []struct {
		ip               string
		octets, segments int
		want             string
	}{
		{"0.23.0.20", 1, 1, "0.23.0.x"},
		{"168.192.102.4", 2, 2, "168.192.x.x"},
		{"54.242.102.43", 3, 3, "54.x.x.x"},
		{"94.15.213.171", 4, 4, "x.x.x.x"},
		{"777.2", 1, 1, "777.2"},
		{"777.2.23", 4, 4, "x.x.x"},
		{"999.123.777.2", 3, 3, "999.x.x.x"},
		{"999.aaa.bbb.c", 3, 3, "999.x.x.x"},
		{"hello;goodbye", 3, 3, "hello;goodbye"},
		{":::::::::::::::", 3, 3, "x:x:x:x:x:x:x:x"},
		{"::1", 3, 3, "0:0:0:0:0:x:x:x"},
		{"4b0c:0:0:0:880c:99a8:4b0:4411", 1, 1, "4b0c:0:0:0:880c:99a8:4b0:x"},
		{"4b0c::880c:99a8:4b0:4411", 2, 2, "4b0c:0:0:0:880c:99a8:x:x"},
		{"2605:2700:0:3:0:0:4713:93e3", 3, 3, "2605:2700:0:3:0:x:x:x"},
		{"2605:2700:0:3::4713:93e3", 4, 4, "2605:2700:0:3:x:x:x:x"},
		{"2605:2700:0:3::4713:93e3", 4, 5, "2605:2700:0:x:x:x:x:x"},
		{"2605:2700:0:3::4713:93e3", 4, 6, "2605:2700:x:x:x:x:x:x"},
		{"2605:2700:0:3::4713:93e3", 4, 7, "2605:x:x:x:x:x:x:x"},
		{"2605:2700:0:3::4713:93e3", 4, 8, "x:x:x:x:x:x:x:x"},
		{"2605:2700::4713:93e3", 4, 8, "x:x:x:x:x:x:x:x"},
		{"2700::4713", 4, 8, "x:x:x:x:x:x:x:x"},
		{"2700:zzzz::gggg", 4, 6, "2700:zzzz:x:x:x:x:x:x"},
		{"f334::40cb:152.16.24.142", 4, 2, "f334:0:0:0:0:40cb:x:x"},
		{"f334::40cb:152.16.24.142", 4, 4, "f334:0:0:0:x:x:x:x"},
		{"::192.168.0.1", 4, 1, "0:0:0:0:0:0:c0a8:x"},
		{"::FFFF:152.16.24.123", 2, 4, "::FFFF:152.16.x.x"},
		{"::FFFF:152.16.24.123", 4, 4, "::FFFF:x.x.x.x"},
		{strings.Repeat("a", 1000000), 4, 6, strings.Repeat("a", 1000000)},
	} {
		name := tc.ip
		if len(name) > 40 {
			name = "oversized"
		}
		t.Run(fmt.Sprintf("%s_%d_%d", name, tc.octets, tc.segments), func(t *testing.T) {
			if got := NewStep(tc.octets, tc.segments, key101).Anonymize(tc.ip); got != tc.want {
				t.Errorf("Anonymize(%q) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
}

func TestIPv4EachOctetCount(t *testing.T) {
	want := []string{"", "203.0.113.x", "203.0.x.x", "203.x.x.x", "x.x.x.x"}
	for n := 1; n <= 4; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if got := NewStep(n, n, key101).Anonymize("203.0.113.9"); got != want[n] {
				t.Errorf("got %q, want %q", got, want[n])
			}
		})
	}
}

func TestIPv6EachSegmentCount(t *testing.T) {
	full := []string{"2001", "db8", "0", "0", "8", "800", "200c", "417a"}
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			parts := append([]string(nil), full[:8-n]...)
			for len(parts) < 8 {
				parts = append(parts, "x")
			}
			want := strings.Join(parts, ":")
			// Compressed, expanded with leading zeros and upper case all give the same.
			for _, in := range []string{"2001:db8::8:800:200c:417a", "2001:0DB8:0000:0000:0008:0800:200C:417A"} {
				if got := NewStep(1, n, key101).Anonymize(in); got != want {
					t.Errorf("Anonymize(%q) = %q, want %q", in, got, want)
				}
			}
		})
	}
}

func TestOtherInputs(t *testing.T) {
	for _, tc := range []struct {
		name, ip         string
		octets, segments int
		want             string
	}{
		{"empty is null", "", 4, 4, ""},
		{"collector anonymous", "unknown", 1, 1, "unknown"},
		{"word", "localhost", 2, 2, "localhost"},
		{"lowercase mapped", "::ffff:1.2.3.4", 1, 1, "::ffff:1.2.3.x"},
		{"lowercase mapped all", "::ffff:1.2.3.4", 4, 4, "x.x.x.x"},
		{"expanded mapped", "0:0:0:0:0:ffff:1.2.3.4", 2, 2, "0:0:0:0:0:ffff:1.2.x.x"},
		{"hex mapped (furrow masks)", "::ffff:9810:187b", 1, 1, "::ffff:152.16.24.x"},
		{"zone dropped", "fe80::1%eth0", 1, 1, "fe80:0:0:0:0:0:0:x"},
		{"brackets", "[::1]", 1, 1, "[::1]:x:x:x:x:x"},
		{"trailing dot", "1.2.3.", 2, 2, "1.2.x"},
		{"leading zero octet", "01.2.3.4", 1, 1, "01.2.3.x"},
		{"only dots", "...", 1, 1, ""},
		{"ipv4 port", "1.2.3.4:80", 1, 1, "1.2.3.x"},
		{"v4 with zone", "1.2.3.4%eth0", 1, 1, "1.2.3.x"},
		{"v6 segments unset under 1-0-0 use octets", "2001:db8::1", 2, 2, "2001:db8:0:0:0:0:x:x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewStep(tc.octets, tc.segments, key101).Anonymize(tc.ip); got != tc.want {
				t.Errorf("Anonymize(%q) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
}

// TestRandomAddresses checks Enrich's properties: N x's, and still an
// address once the x's are replaced.
func TestRandomAddresses(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		var a [16]byte
		r.Read(a[:])
		octets, segments := 1+r.Intn(4), 1+r.Intn(8)
		s := NewStep(octets, segments, key101)
		v4 := netip.AddrFrom4([4]byte(a[:4])).String()
		got := s.Anonymize(v4)
		if strings.Count(got, "x") != octets {
			t.Fatalf("%s with %d: %s", v4, octets, got)
		}
		if p, err := netip.ParseAddr(strings.ReplaceAll(got, "x", "1")); err != nil || !p.Is4() {
			t.Fatalf("%s with %d: %s is not IPv4", v4, octets, got)
		}
		a[0] = 0x20 // not mapped
		v6 := netip.AddrFrom16(a).String()
		got = s.Anonymize(v6)
		if strings.Count(got, "x") != segments || strings.Count(got, ":") != 7 {
			t.Fatalf("%s with %d: %s", v6, segments, got)
		}
		if p, err := netip.ParseAddr(strings.ReplaceAll(got, "x", "1")); err != nil || !p.Is6() {
			t.Fatalf("%s with %d: %s is not IPv6", v6, segments, got)
		}
	}
}

func TestNew(t *testing.T) {
	key100 := key101
	key100.Version.Addition = 0
	key200 := key101
	key200.Version = iglu.SchemaVer{Model: 2}
	for _, tc := range []struct {
		name, params     string
		key              iglu.SchemaKey
		octets, segments int
		err              string
	}{
		{"enrich example 1-0-1", `{"anonOctets":1,"anonSegments":1}`, key101, 1, 1, ""},
		{"1-0-0 segments default to octets", `{"anonOctets":2}`, key100, 2, 2, ""},
		{"1-0-1 separate", `{"anonOctets":3,"anonSegments":5}`, key101, 3, 5, ""},
		{"whole float", `{"anonOctets":2.0}`, key100, 2, 2, ""},
		{"fraction", `{"anonOctets":2.5}`, key100, 0, 0, "anonOctets 2.5"},
		{"too many octets", `{"anonOctets":5}`, key100, 0, 0, "must be 1, 2, 3 or 4"},
		{"too many segments", `{"anonOctets":1,"anonSegments":9}`, key101, 0, 0, "anonSegments 9"},
		{"missing", `{}`, key101, 0, 0, "anonOctets is required"},
		{"version 2", `{"anonOctets":1}`, key200, 0, 0, "anon_ip 2-0-0 is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, err := New(context.Background(), enrich.StepConfig{Key: tc.key, Parameters: json.RawMessage(tc.params)})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := step.(*Step)
			if s.octets != tc.octets || s.segments != tc.segments {
				t.Errorf("octets, segments = %d, %d, want %d, %d", s.octets, s.segments, tc.octets, tc.segments)
			}
			if s.ID().SchemaKey != tc.key.URI() {
				t.Errorf("ID %v", s.ID())
			}
		})
	}
}

func TestEnrichSetsColumn(t *testing.T) {
	s := NewStep(1, 1, key101)
	e := &enrich.Event{}
	e.F[ev.UserIPAddress] = "192.0.2.55"
	if err := s.Enrich(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if got := e.F[ev.UserIPAddress]; got != "192.0.2.x" {
		t.Errorf("user_ipaddress = %q", got)
	}
	e.F[ev.UserIPAddress] = ""
	if allocs := testing.AllocsPerRun(100, func() { s.Enrich(context.Background(), e) }); allocs != 0 {
		t.Errorf("%v allocations for a null address", allocs)
	}
}
