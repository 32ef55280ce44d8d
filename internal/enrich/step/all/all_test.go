package all_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	analytics "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/enrich"
	_ "github.com/furrow-io/furrow/internal/enrich/step/all"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/pseudo"
)

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestEnricherWithSteps loads Enrich's example configurations (anon_ip,
// then PII with emitEvent) and enriches a tp2 POST as the collector writes
// it: the TSV columns carry the anonymized then hashed values, and the
// pii_transformation event follows the event.
func TestEnricherWithSteps(t *testing.T) {
	central, err := iglu.NewDirRepo("Iglu Central (local copy)", "../../../../testdata/iglu-central", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	resolver := iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil), central}})
	n := 0
	uuids := func() string { n++; return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
	steps, notices, err := enrich.Loader{Deps: enrich.Deps{Resolver: resolver, Now: func() time.Time { return fixedNow }, NewUUID: uuids}}.
		LoadDir(context.Background(), "../../testdata/enrichments")
	if err != nil || len(notices) != 0 || len(steps) != 2 {
		t.Fatalf("steps %v, notices %v, err %v", steps, notices, err)
	}
	e, err := enrich.New(enrich.Options{Resolver: resolver, Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0-test"},
		Steps: steps, Now: func() time.Time { return fixedNow }, NewUUID: uuids})
	if err != nil {
		t.Fatal(err)
	}

	webPage := `{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}`
	cx := base64.RawURLEncoding.EncodeToString([]byte(`{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[` + webPage + `]}`))
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` +
		`{"e":"pv","url":"https://example.com/","p":"web","tv":"js-3.24.0","aid":"shop","uid":"user@example.com","eid":"1f2e3d4c-5b6a-4789-8abc-def012345678","cx":"` + cx + `"},` +
		`{"e":"pv","url":"https://example.com/","p":"web","tv":"js-3.24.0","aid":"shop","ip":"2001:db8::7"}]}`
	cp := &payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000,
		Encoding: "UTF-8", Collector: "furrow-0.0.0-test", UserAgent: "Mozilla/5.0",
		Path: "/com.snowplowanalytics.snowplow/tp2", Body: body, Hostname: "collector.test",
		ContentType:   "application/json; charset=utf-8",
		NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20",
		Headers:       []string{"Host: collector.test", "Content-Type: application/json; charset=utf-8"},
	}
	var out enrich.Output
	e.Process(context.Background(), cp.Marshal(), &out)
	if len(out.Bad) != 0 {
		t.Fatalf("bad rows: %s", out.Bad)
	}
	if len(out.Good) != 4 {
		t.Fatalf("%d good events, want 2 and their 2 pii_transformation events", len(out.Good))
	}
	cols := func(g enrich.Good) []string {
		if _, err := analytics.ParseEvent(string(g.TSV)); err != nil {
			t.Fatalf("analytics SDK: %v", err)
		}
		f := strings.Split(string(g.TSV), "\t")
		if len(f) != ev.NumFields {
			t.Fatalf("%d fields", len(f))
		}
		return f
	}
	first, piiEv, second, piiEv2 := cols(out.Good[0]), cols(out.Good[1]), cols(out.Good[2]), cols(out.Good[3])

	ip := sha1Hex("203.0.113.x" + "pepper123")
	uid := sha1Hex("user@example.com" + "pepper123")
	pageID := sha1Hex("0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77" + "pepper123")
	for col, want := range map[int]string{
		ev.EventID: "1f2e3d4c-5b6a-4789-8abc-def012345678", ev.AppID: "shop",
		ev.UserIPAddress: ip, ev.UserID: uid, ev.NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20",
		ev.Contexts: `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"` + pageID + `"}}]}`,
	} {
		if first[col] != want {
			t.Errorf("event %s = %q, want %q", ev.Fields[col].Name, first[col], want)
		}
	}
	if got := second[ev.UserIPAddress]; got != sha1Hex("2001:db8:0:0:0:0:0:x"+"pepper123") {
		t.Errorf("second event user_ipaddress = %q", got)
	}
	wantPII := `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.snowplowanalytics.snowplow/pii_transformation/jsonschema/1-0-0","data":` +
		`{"pii":{"pojo":[{"fieldName":"user_ipaddress","originalValue":"203.0.113.x","modifiedValue":"` + ip + `"},{"fieldName":"user_id","originalValue":"user@example.com","modifiedValue":"` + uid + `"}],` +
		`"json":[{"fieldName":"contexts","originalValue":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77","modifiedValue":"` + pageID + `","jsonPath":"$.id","schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"}]},` +
		`"strategy":{"pseudonymize":{"hashFunction":"SHA-1"}}}}}`
	for col, want := range map[int]string{
		ev.AppID: "shop", ev.Platform: "srv", ev.EtlTstamp: "2026-01-02 03:04:05.678", ev.CollectorTstamp: "2026-01-02 03:04:05.000",
		ev.Event: "pii_transformation", ev.VEtl: "furrow-0.0.0-test", ev.VCollector: "furrow-0.0.0-test",
		ev.DerivedTstamp: "2026-01-02 03:04:05.678", ev.TrueTstamp: "2026-01-02 03:04:05.678",
		ev.EventVendor: "com.snowplowanalytics.snowplow", ev.EventName: "pii_transformation", ev.EventFormat: "jsonschema", ev.EventVersion: "1-0-0",
		ev.UnstructEvent: wantPII,
		ev.Contexts:      `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1","data":[{"schema":"iglu:com.snowplowanalytics.snowplow/parent_event/jsonschema/1-0-0","data":{"parentEventId":"1f2e3d4c-5b6a-4789-8abc-def012345678"}}]}`,
		ev.UserID:        "", ev.UserIPAddress: "", ev.NetworkUserID: "",
	} {
		if piiEv[col] != want {
			t.Errorf("pii event %s = %q, want %q", ev.Fields[col].Name, piiEv[col], want)
		}
	}
	if id := piiEv[ev.EventID]; id == first[ev.EventID] || !enrich.ValidUUID(id) {
		t.Errorf("pii event_id %q", id)
	}
	if !strings.Contains(piiEv2[ev.Contexts], `"parentEventId":"`+second[ev.EventID]+`"`) {
		t.Errorf("second pii event's parent: %s", piiEv2[ev.Contexts])
	}
}

// With pseudonymization on, the pii_transformation events a PII step
// emits, which carry the original values, are pseudonymized too.
func TestEmittedEventsArePseudonymized(t *testing.T) {
	central, err := iglu.NewDirRepo("Iglu Central (local copy)", "../../../../testdata/iglu-central", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	resolver := iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil), central}})
	steps, _, err := enrich.Loader{Deps: enrich.Deps{Resolver: resolver, Now: func() time.Time { return fixedNow }, NewUUID: func() string { return "00000000-0000-4000-8000-000000000001" }}}.
		LoadDir(context.Background(), "../../testdata/enrichments")
	if err != nil {
		t.Fatal(err)
	}
	pc := pseudo.Default()
	pc.Enabled, pc.KeyEnv = true, "X"
	policy := pseudo.New(pc, []byte("an all_test pseudonymization key!"))
	policy.SetParams(enrich.ParamFields())
	e, err := enrich.New(enrich.Options{Resolver: resolver, Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0-test"},
		Steps: steps, Now: func() time.Time { return fixedNow }, Pseudonymize: policy, KeepRaw: true})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` +
		`{"e":"pv","url":"https://example.com/","p":"web","tv":"js-3.24.0","aid":"shop","uid":"user@example.com"}]}`
	cp := &payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000,
		Encoding: "UTF-8", Collector: "furrow-0.0.0-test", Path: "/com.snowplowanalytics.snowplow/tp2", Body: body,
		ContentType: "application/json; charset=utf-8",
	}
	var out enrich.Output
	e.Process(context.Background(), cp.Marshal(), &out)
	if len(out.Bad) != 0 || len(out.Good) != 2 {
		t.Fatalf("%d good, bad rows %s", len(out.Good), out.Bad)
	}
	for _, g := range out.Good {
		for _, clear := range []string{"user@example.com", "203.0.113", "example.com/"} {
			if strings.Contains(string(g.TSV), clear) {
				t.Errorf("%q in clear in %s", clear, g.TSV)
			}
		}
		if !strings.Contains(string(g.TSV), "io.furrow/pseudonymization") {
			t.Errorf("no key entity in %s", g.TSV)
		}
	}
	if !strings.Contains(string(out.Good[1].TSV), "pii_transformation") {
		t.Fatalf("second event is not the pii_transformation event: %s", out.Good[1].TSV)
	}
}
