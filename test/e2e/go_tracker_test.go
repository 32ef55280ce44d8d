package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	analytics "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"
	"github.com/snowplow/snowplow-golang-tracker/v3/pkg/storage/memory"
	sp "github.com/snowplow/snowplow-golang-tracker/v3/tracker"
)

func str(s string) *string   { return &s }
func num(f float64) *float64 { return &f }
func i64(n int64) *int64     { return &n }

// TestGoTracker sends every event type of Snowplow's Go tracker, by GET and
// by POST, and checks what comes out of Micro's API, the enriched TSV (read
// with Snowplow's Go Analytics SDK) and the DuckDB warehouse.
func TestGoTracker(t *testing.T) {
	dataDir := t.TempDir()
	f := start(t, dataDir, "--iglu-dir", igluCentral, "--output-tsv")

	results := make(chan int, 64)
	for _, method := range []string{"GET", "POST"} {
		emitter := sp.InitEmitter(
			sp.RequireCollectorUri(f.addr),
			sp.RequireStorage(*memory.Init()),
			sp.OptionRequestType(method),
			sp.OptionProtocol("http"),
			// The tracker's default client copies http.DefaultTransport by
			// value, which shares its connection maps with DefaultTransport
			// and trips the race detector; give it its own transport.
			sp.OptionHttpClient(&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}),
			sp.OptionCallback(func(ok, failed []sp.CallbackResult) {
				for _, r := range ok {
					results <- r.Status
				}
				for _, r := range failed {
					results <- r.Status
				}
			}),
		)
		subject := sp.InitSubject()
		subject.SetUserId("user-" + method)
		subject.SetScreenResolution(1920, 1080)
		subject.SetViewPort(1200, 800)
		subject.SetColorDepth(24)
		subject.SetTimeZone("Europe/Paris")
		subject.SetLanguage("fr")
		subject.SetIpAddress("198.51.100.23")
		subject.SetUseragent("go-e2e/1.0")
		subject.SetDomainUserId("duid-" + method)
		subject.SetNetworkUserId("11111111-1111-4111-8111-111111111111")
		tr := sp.InitTracker(
			sp.RequireEmitter(emitter),
			sp.OptionSubject(subject),
			sp.OptionNamespace("e2e"),
			sp.OptionAppId("go-"+strings.ToLower(method)),
			sp.OptionPlatform("srv"),
			sp.OptionBase64Encode(method == "GET"),
		)
		webPage := *sp.InitSelfDescribingJson("iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
			map[string]any{"id": "0b7d1c6e-4e2b-4d36-9d45-2d5f0e1b8a77"})
		tr.TrackPageView(sp.PageViewEvent{PageUrl: str("https://shop.example.com/p?q=1"), PageTitle: str("Product"), Referrer: str("https://search.example.org/?q=shoes"), Contexts: []sp.SelfDescribingJson{webPage}})
		tr.TrackStructEvent(sp.StructuredEvent{Category: str("shop"), Action: str("add"), Label: str("red shoes"), Property: str("size=9"), Value: num(19.99)})
		tr.TrackSelfDescribingEvent(sp.SelfDescribingEvent{Event: sp.InitSelfDescribingJson(
			"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
			map[string]any{"targetUrl": "https://example.com/next", "elementId": "cta"})})
		tr.TrackScreenView(sp.ScreenViewEvent{Name: str("home"), Id: str("screen-1")})
		tr.TrackTiming(sp.TimingEvent{Category: str("load"), Variable: str("dom"), Timing: i64(123)})
		tr.TrackEcommerceTransaction(sp.EcommerceTransactionEvent{
			OrderId: str("order-" + method), TotalValue: num(45.5), TaxValue: num(2.5), Shipping: num(3), Currency: str("EUR"),
			Items: []sp.EcommerceTransactionItemEvent{{Sku: str("sku-1"), Price: num(20), Quantity: i64(2), Name: str("Shoe")}},
		})
		// A custom event against a schema that does not exist: a bad row.
		tr.TrackSelfDescribingEvent(sp.SelfDescribingEvent{Event: sp.InitSelfDescribingJson(
			"iglu:com.acme/missing/jsonschema/1-0-0", map[string]any{"x": 1})})
		tr.BlockingFlush(5, 200)
	}
	// 7 good events (6 calls, the transaction has one item) and 1 bad per method.
	c := f.waitCounts(14, 2)
	if c.Good != 14 || c.Bad != 2 {
		t.Fatalf("counts %+v", c)
	}
	close(results)
	for status := range results {
		if status != http.StatusOK {
			t.Fatalf("tracker got HTTP %d", status)
		}
	}

	// Micro API filters.
	var links []goodEvent
	f.postJSON("/micro/good", `{"schema":"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"}`, &links)
	if len(links) != 2 {
		t.Fatalf("%d link clicks", len(links))
	}
	var pageViews []goodEvent
	f.postJSON("/micro/good", `{"event_type":"page_view","contexts":["iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"],"limit":1}`, &pageViews)
	if len(pageViews) != 1 {
		t.Fatalf("%d page views", len(pageViews))
	}
	pv := pageViews[0]
	if pv.Event["page_urlhost"] != "shop.example.com" || pv.Event["user_ipaddress"] != "198.51.100.23" ||
		pv.Event["network_userid"] != "11111111-1111-4111-8111-111111111111" || pv.Event["br_lang"] != "fr" ||
		pv.Event["dvce_screenwidth"] != 1920.0 || pv.Event["useragent"] != "go-e2e/1.0" {
		t.Fatalf("page view event %v", pv.Event)
	}
	var bad []struct {
		Schema string
		Errors []string
	}
	f.getJSON("/micro/bad", &bad)
	if len(bad) != 2 || !strings.Contains(bad[0].Schema, "schema_violations") || !strings.Contains(bad[0].Errors[0], "iglu:com.acme/missing/jsonschema/1-0-0") {
		t.Fatalf("bad rows %+v", bad)
	}

	f.stop()

	// Enriched TSV printed by --output-tsv, read with Snowplow's Go SDK.
	lines := strings.Split(strings.TrimRight(f.stdout.String(), "\n"), "\n")
	if len(lines) != 14 {
		t.Fatalf("%d TSV lines on stdout", len(lines))
	}
	byEvent := map[string]int{}
	for _, line := range lines {
		ev, err := analytics.ParseEvent(line)
		if err != nil {
			t.Fatalf("analytics SDK: %v\n%s", err, line)
		}
		name, _ := ev.GetValue("event_name")
		byEvent[name.(string)]++
		appID, _ := ev.GetValue("app_id")
		if appID != "go-get" && appID != "go-post" {
			t.Fatalf("app_id %v", appID)
		}
		switch name {
		case "event":
			if v, _ := ev.GetValue("se_label"); v != "red shoes" {
				t.Fatalf("se_label %v", v)
			}
			if v, _ := ev.GetValue("se_value"); v != "19.99" {
				t.Fatalf("se_value %v", v)
			}
		case "link_click":
			target, err := ev.GetUnstructEventValue("targetUrl")
			if err != nil || target != "https://example.com/next" {
				t.Fatalf("targetUrl %v %v", target, err)
			}
		case "transaction":
			if v, _ := ev.GetValue("tr_total"); v != 45.5 {
				t.Fatalf("tr_total %v", v)
			}
		case "transaction_item":
			if v, _ := ev.GetValue("ti_quantity"); v != 2 {
				t.Fatalf("ti_quantity %v", v)
			}
		case "page_view":
			ids, err := ev.GetContextValue("contexts_com_snowplowanalytics_snowplow_web_page_1", "id")
			if err != nil || len(ids.([]any)) != 1 {
				t.Fatalf("web_page context %v %v", ids, err)
			}
			if v, _ := ev.GetValue("dvce_created_tstamp"); v.(time.Time).IsZero() {
				t.Fatal("no dvce_created_tstamp")
			}
		}
	}
	for _, name := range []string{"page_view", "event", "link_click", "screen_view", "timing", "transaction", "transaction_item"} {
		if byEvent[name] != 2 {
			t.Errorf("%d %s events, want 2 (%v)", byEvent[name], name, byEvent)
		}
	}

	// The warehouse holds the same events, typed.
	db := openDuckDB(t, dataDir)
	var n, items int
	var total float64
	if err := db.QueryRow(`SELECT count(*), sum(tr_total) FILTER (WHERE event = 'transaction'),
		count(*) FILTER (WHERE event = 'transaction_item' AND ti_quantity = 2) FROM atomic.events`).Scan(&n, &total, &items); err != nil {
		t.Fatal(err)
	}
	if n != 14 || total != 91 || items != 2 {
		t.Fatalf("events %d, transaction total %v, items %d", n, total, items)
	}
	var target string
	if err := db.QueryRow(`SELECT unstruct_event->'$.data.data'->>'targetUrl' FROM atomic.events WHERE event_name = 'link_click' LIMIT 1`).Scan(&target); err != nil || target != "https://example.com/next" {
		t.Fatalf("targetUrl %q %v", target, err)
	}
	var badRows int
	db.QueryRow(`SELECT count(*) FROM atomic.bad_rows WHERE failure_type = 'schema_violations'`).Scan(&badRows)
	if badRows != 2 {
		t.Fatalf("%d bad rows in DuckDB", badRows)
	}
}
