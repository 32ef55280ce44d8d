package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/testutil"
)

// enriched runs collector payloads through the enricher, as furrow run
// does, and returns its good lines and bad rows.
func enriched(t *testing.T) (good, bad [][]byte) {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	central, err := iglu.NewDirRepo("Iglu Central (local copy)", "../../../testdata/iglu-central", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	e, err := enrich.New(enrich.Options{
		Resolver: iglu.NewResolver(iglu.ResolverOptions{
			Repositories: []iglu.Repository{iglu.Builtin("", 0, nil), central}, Now: func() time.Time { return now }}),
		Processor: proc,
		Now:       func() time.Time { return now },
		NewUUID:   func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n.Add(1)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	const webPage = `{"schema":"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0","data":{"id":"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"}}`
	const linkClick = `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1","data":{"targetUrl":"https://example.com/next","elementId":"cta"}}}`
	co := `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[` + webPage + `]}`
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` +
		`{"e":"pv","url":"https://shop.example.com/a?b=c","page":"Shop \"home\"","p":"web","tv":"js-3.24.0","aid":"shop","dtm":"1767323044000","tid":"42","cookie":"1","vp":"1200x800","cx":"` + b64(co) + `"},` +
		`{"e":"ue","p":"web","tv":"js-3.24.0","aid":"shop","ue_px":"` + b64(linkClick) + `"},` +
		`{"e":"pv","p":"web","tv":"js-3.24.0","co":"{\"schema\":\"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0\",\"data\":[{\"schema\":\"iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0\",\"data\":{\"id\":\"nope\"}}]}"}]}`
	p := &payload.CollectorPayload{
		Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000,
		Encoding: "UTF-8", Collector: "furrow-0.0.0-test", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
		Path: "/com.snowplowanalytics.snowplow/tp2", Body: body, Hostname: "collector.test",
		ContentType: "application/json; charset=utf-8", NetworkUserID: "6f1d3a52-6c43-4c4b-9b55-3c2a8f6c1d20",
	}
	var out enrich.Output
	e.Process(context.Background(), p.Marshal(), &out)
	for _, g := range out.Good {
		good = append(good, g.TSV)
	}
	return good, out.Bad
}

func TestLoadEnrichedEvents(t *testing.T) {
	good, bad := enriched(t)
	if len(good) != 2 || len(bad) != 1 {
		t.Fatalf("the enricher made %d good events and %d bad rows, want 2 and 1", len(good), len(bad))
	}
	pg := testutil.Postgres(t)
	l := open(t, pg.DSN())
	if err := l.Load(context.Background(), loader.Batch{Start: 0, End: 1, Good: good, Bad: bad}); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, query, want string }{
		{"events", `SELECT string_agg(event, ',' ORDER BY event) FROM atomic.events`, "page_view,unstruct"},
		{"no parsing errors", `SELECT string_agg(failure_type, ',') FROM atomic.bad_rows`, "schema_violations"},
		{"typed", `SELECT txn_id || ' ' || br_cookies || ' ' || br_viewwidth || ' ' || dvce_created_tstamp || ' ' || collector_tstamp FROM atomic.events WHERE event = 'page_view'`,
			"42 true 1200 2026-01-02 03:04:04 2026-01-02 03:04:05"},
		{"page title", `SELECT page_title FROM atomic.events WHERE event = 'page_view'`, `Shop "home"`},
		{"contexts", `SELECT jsonb_path_query_first(contexts, '$.data[*] ? (@.schema starts with "iglu:com.snowplowanalytics.snowplow/web_page/").data.id') #>> '{}' FROM atomic.events WHERE event = 'page_view'`,
			"0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"},
		{"unstruct", `SELECT unstruct_event #>> '{data,data,targetUrl}' FROM atomic.events WHERE event = 'unstruct'`, "https://example.com/next"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := pg.Psql("-c", c.query); got != c.want {
				t.Errorf("%s\n= %q, want %q", c.query, got, c.want)
			}
		})
	}
}
