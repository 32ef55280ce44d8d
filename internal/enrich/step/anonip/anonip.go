// Package anonip is Snowplow's IP anonymization enrichment
// (iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-*): it
// replaces the trailing parts of user_ipaddress with "x", producing what
// Snowplow Enrich produces for the same configuration and address.
//
// The rules, from Enrich's AnonIpEnrichment:
//   - anonOctets (1-4) trailing IPv4 octets are masked: 1.2.3.4 with 1 is
//     1.2.3.x. anonSegments (1-8, schema 1-0-1) trailing IPv6 segments are
//     masked; without it (always so under 1-0-0) IPv6 uses anonOctets.
//   - An IPv6 address is written out in full, lower case, without leading
//     zeros and without "::": 2605:2700:0:3::4713:93e3 with 4 is
//     2605:2700:0:3:x:x:x:x. A zone (%eth0) is dropped.
//   - An IPv4 address is masked as written, and so is an IPv4-mapped IPv6
//     address in dotted form: ::FFFF:152.16.24.123 with 2 is
//     ::FFFF:152.16.x.x (the upper-case prefix is kept apart, any other
//     spelling is split at its dots: ::ffff:1.2.3.4 with 4 is x.x.x.x).
//   - Anything else is masked the same way by splitting it at its dots, if
//     it has any, else at its colons, else left alone: 777.2.23 with 4 is
//     x.x.x, "unknown" stays "unknown". Splitting drops empty trailing
//     parts, as Java's String.split does.
//
// One deliberate difference: Enrich leaves an IPv4-mapped address written
// in hex (::ffff:9810:187b) unmasked for anonOctets 1-3, and turns it into
// "x" for 4; furrow masks its dotted form (::ffff:152.16.24.x). An empty
// user_ipaddress is null in furrow and stays empty (Enrich would write "x"
// for an empty, non-null address under anonOctets 4).
package anonip

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/enrich"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
)

// SchemaName is the vendor/name the enrichment is registered under.
const SchemaName = "com.snowplowanalytics.snowplow/anon_ip"

// Supported is the configuration schema criterion Enrich accepts.
var Supported = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-*")

func init() { enrich.Register(SchemaName, New) }

// Step anonymizes user_ipaddress. It is safe for concurrent use.
type Step struct {
	octets, segments int
	id               badrows.EnrichmentID
}

// New builds the step from an anon_ip configuration.
func New(_ context.Context, c enrich.StepConfig) (enrich.Step, error) {
	if !Supported.Matches(c.Key) {
		return nil, fmt.Errorf("anon_ip %s is not supported: furrow, like Snowplow Enrich, accepts %s", c.Key.Version, Supported)
	}
	var p struct {
		AnonOctets   *json.Number `json:"anonOctets"`
		AnonSegments *json.Number `json:"anonSegments"`
	}
	if len(c.Parameters) > 0 {
		if err := json.Unmarshal(c.Parameters, &p); err != nil {
			return nil, fmt.Errorf("parameters: %v", err)
		}
	}
	if p.AnonOctets == nil {
		return nil, fmt.Errorf("parameters.anonOctets is required (1 to 4)")
	}
	octets, ok := whole(*p.AnonOctets, 1, 4)
	if !ok {
		return nil, fmt.Errorf("parameters.anonOctets %s: must be 1, 2, 3 or 4", *p.AnonOctets)
	}
	segments := octets
	if p.AnonSegments != nil {
		if segments, ok = whole(*p.AnonSegments, 1, 8); !ok {
			return nil, fmt.Errorf("parameters.anonSegments %s: must be a whole number from 1 to 8", *p.AnonSegments)
		}
	}
	return NewStep(octets, segments, c.Key), nil
}

// NewStep returns a step masking octets IPv4 octets (1-4) and segments
// IPv6 segments (1-8); key is the configuration schema named in failures.
func NewStep(octets, segments int, key iglu.SchemaKey) *Step {
	return &Step{octets: octets, segments: segments, id: badrows.EnrichmentID{SchemaKey: key.URI(), Identifier: "anon_ip"}}
}

// whole parses n as an integer in [lo, hi]; 2.0 counts as 2.
func whole(n json.Number, lo, hi int) (int, bool) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, false
	}
	return int(f), true
}

func (s *Step) ID() badrows.EnrichmentID { return s.id }

// Enrich anonymizes user_ipaddress; it never fails.
func (s *Step) Enrich(_ context.Context, e *enrich.Event) error {
	if ip := e.F[ev.UserIPAddress]; ip != "" {
		e.F[ev.UserIPAddress] = s.Anonymize(ip)
	}
	return nil
}

// Anonymize masks one address as described in the package comment.
func (s *Step) Anonymize(ip string) string {
	if ip == "" {
		return ip
	}
	addr, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		switch {
		case strings.IndexByte(ip, '.') >= 0:
			return s.maskV4(ip)
		case strings.IndexByte(ip, ':') >= 0:
			return maskSplit(ip, ':', 8-s.segments, 8)
		}
		return ip
	case addr.Is4():
		return s.maskV4(ip)
	case addr.Is4In6():
		if strings.IndexByte(ip, '.') < 0 {
			return s.maskV4("::ffff:" + addr.Unmap().String())
		}
		return s.maskV4(ip)
	}
	return s.maskV6(addr)
}

// mappedPrefix is the one spelling of the IPv4-mapped prefix Enrich keeps
// apart from the address it masks.
const mappedPrefix = "::FFFF:"

func (s *Step) maskV4(ip string) string {
	if strings.HasPrefix(ip, mappedPrefix) {
		return mappedPrefix + maskSplit(strings.ReplaceAll(ip, mappedPrefix, ""), '.', 4-s.octets, -1)
	}
	return maskSplit(ip, '.', 4-s.octets, -1)
}

// maskV6 writes the address's eight segments, the trailing ones as "x".
func (s *Step) maskV6(addr netip.Addr) string {
	a := addr.As16()
	b := make([]byte, 0, 39)
	for i := 0; i < 8; i++ {
		if i > 0 {
			b = append(b, ':')
		}
		if i < 8-s.segments {
			b = strconv.AppendUint(b, uint64(a[2*i])<<8|uint64(a[2*i+1]), 16)
		} else {
			b = append(b, 'x')
		}
	}
	return string(b)
}

// maskSplit splits s at sep as Java's String.split does (trailing empty
// parts dropped; no separator gives s itself), keeps the first keep parts
// and replaces the rest with "x", padding with "x" up to total parts
// (total < 0: as many parts as s has).
func maskSplit(s string, sep byte, keep, total int) string {
	n := 1
	if strings.IndexByte(s, sep) >= 0 {
		t := strings.TrimRight(s, string(sep))
		if t == "" {
			n = 0
		} else {
			n = strings.Count(t, string(sep)) + 1
		}
	}
	if total < 0 {
		total = n
	}
	var b strings.Builder
	b.Grow(len(s) + 2*total)
	rest := s
	for i := 0; i < total; i++ {
		if i > 0 {
			b.WriteByte(sep)
		}
		var part string
		if i < n {
			if j := strings.IndexByte(rest, sep); j >= 0 {
				part, rest = rest[:j], rest[j+1:]
			} else {
				part, rest = rest, ""
			}
		}
		if i < keep && i < n {
			b.WriteString(part)
		} else {
			b.WriteByte('x')
		}
	}
	return b.String()
}
