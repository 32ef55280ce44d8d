package enrich

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"

	"github.com/furrow-io/furrow/internal/pseudo"
)

// testKey is a 32-byte pseudonymization key for tests.
var testKey = []byte("furrow-test-key-0123456789abcdef")

// testPolicy is the default policy under testKey, changed by mod.
func testPolicy(mod func(*pseudo.Config)) *pseudo.Policy {
	c := pseudo.Default()
	c.Enabled = true
	c.KeyEnv = "UNUSED"
	if mod != nil {
		mod(&c)
	}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	p := pseudo.New(c, testKey)
	p.SetParams(ParamFields())
	return p
}

// clearValues are identifying values in cases(): none may leave the
// enricher when pseudonymization is on, in any spelling the inputs use.
var clearValues = []string{
	"user+1@example.com", "user%2B1%40example.com", "4b5c6d", "203.0.113.9", "198.51.100.7", "192.0.2.1", "192.0.2.60",
	"2001:db8::1", "search.example.org", "shop.example.com", "Shop home",
	"11111111-1111-4111-8111", "22222222-2222-4222", "6f1d3a52-6c43", "blog.example.com", "red shoes", "red%20shoes",
	"size=9", "size%3D9", "Firefox/120.0", "example.com/next", "example.com/landing", "collector.test/",
}

// TestGoldenPseudonymized runs every golden case with pseudonymization
// on: good events, the raw event Micro shows, and bad rows, which must
// still validate against their Iglu Central schemas and hold none of
// clearValues.
func TestGoldenPseudonymized(t *testing.T) {
	badSchemas := badRowSchemas(t)
	policy := testPolicy(nil)
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			e := testEnricher(t, func(o *Options) {
				if tc.mod != nil {
					tc.mod(o)
				}
				o.Pseudonymize, o.KeepRaw = policy, true
			})
			rec := tc.record
			if rec == nil {
				rec = tc.p.Marshal()
			}
			var out Output
			e.Process(context.Background(), rec, &out)
			var b bytes.Buffer
			b.Write(render(&out))
			for _, g := range out.Good {
				checkTSV(t, g.TSV)
				b.WriteString("RAW\n")
				for _, prm := range g.Event.Raw.Params {
					fmt.Fprintf(&b, "  %s = %s\n", prm.Name, prm.Value)
				}
				rp := g.Event.Raw.Payload
				fmt.Fprintf(&b, "  ip %s\n  ua %s\n  nuid %s\n  headers %q\n", rp.IPAddress, rp.UserAgent, rp.NetworkUserID, rp.Headers)
			}
			for _, bad := range out.Bad {
				checkBadRow(t, badSchemas, bad)
			}
			got := b.Bytes()
			for _, v := range clearValues {
				if bytes.Contains(bytes.ToLower(got), bytes.ToLower([]byte(v))) {
					t.Errorf("clear value %q in the output:\n%s", v, got)
				}
			}
			checkGolden(t, filepath.Join("testdata", "pseudonymized", tc.name+".golden"), got)
		})
	}
}

// An entity the policy cannot rewrite fails the event: it becomes an
// enrichment_failures bad row, pseudonymized like any other, never a
// clear value in a good event.
func TestUnrewritableEntityIsABadRow(t *testing.T) {
	badSchemas := badRowSchemas(t)
	e := testEnricher(t, func(o *Options) { o.Pseudonymize = testPolicy(nil) })
	// Nested deeper than the rewriter goes, and past the enricher's own
	// limit, which the test lifts.
	e.maxDepth = 1000
	deep := strings.Repeat(`{"a":`, 130) + `"secret@example.com"` + strings.Repeat("}", 130)
	evt := &Event{Raw: &RawEvent{Vendor: VendorSnowplow, Version: VersionTP2, Payload: cp("/i", "", "")}}
	evt.F[ev.Event], evt.F[ev.UserID] = "page_view", "secret@example.com"
	k, _ := iglu.ParseSchemaKey("iglu:com.acme/deep/jsonschema/1-0-0")
	evt.Contexts = []iglu.SelfDescribing{{Key: k, Data: []byte(deep)}}
	err := e.pseudonymize(evt)
	if err == nil {
		t.Fatal("no error")
	}
	var out Output
	e.pseudonymizeFailed(evt, err, fixedNow, &out)
	e.pseudonymizeBad(&out, 0)
	if len(out.Bad) != 1 || len(out.Good) != 0 {
		t.Fatalf("%d good, %d bad", len(out.Good), len(out.Bad))
	}
	checkBadRow(t, badSchemas, out.Bad[0])
	if bytes.Contains(out.Bad[0], []byte("secret@example.com")) {
		t.Fatalf("clear value in %s", out.Bad[0])
	}
	if !bytes.Contains(out.Bad[0], []byte("enrichment_failures")) || !bytes.Contains(out.Bad[0], []byte("cannot pseudonymize")) {
		t.Fatalf("not the expected bad row: %s", out.Bad[0])
	}
}

// One policy serves every worker: run it from several goroutines (under
// -race in make test) and check they all agree.
func TestPseudonymizeConcurrently(t *testing.T) {
	small := 8 // a small cache, so that slots are replaced under contention
	e := testEnricher(t, func(o *Options) {
		o.Pseudonymize = testPolicy(func(c *pseudo.Config) { c.CacheEntries = &small })
		o.KeepRaw = true
		o.NewUUID = func() string { return "00000000-0000-4000-8000-000000000001" }
	})
	var recs [][]byte
	for _, tc := range cases() {
		if tc.record != nil {
			recs = append(recs, tc.record)
		} else {
			recs = append(recs, tc.p.Marshal())
		}
	}
	want := make([]string, len(recs))
	for i, r := range recs {
		var out Output
		e.Process(context.Background(), r, &out)
		want[i] = string(render(&out))
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20; n++ {
				for i, r := range recs {
					var out Output
					e.Process(context.Background(), r, &out)
					if got := string(render(&out)); got != want[i] {
						t.Errorf("record %d differs when run concurrently", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
