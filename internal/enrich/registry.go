package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/furrow-io/furrow/internal/iglu"
)

// StepConfig is one enrichment configuration, already validated against
// its Iglu schema, as a Constructor receives it.
type StepConfig struct {
	// Key is the configuration's schema, e.g.
	// iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1.
	Key iglu.SchemaKey
	// Data is the whole data object (vendor, name, enabled, parameters,
	// and whatever else the schema puts beside them, such as emitEvent).
	Data json.RawMessage
	// Parameters is data.parameters, nil when absent.
	Parameters json.RawMessage
	// Source names where the configuration came from (file, and index in
	// a wrapper), for messages.
	Source string
	Deps   Deps
}

// Deps is what a step may need beyond its configuration. Zero fields get
// defaults from LoadEnrichments: time.Now, random UUIDs.
type Deps struct {
	Resolver *iglu.Resolver
	Now      func() time.Time
	NewUUID  func() string
}

// A Constructor builds a Step from its configuration. It checks the
// version in c.Key (the registry matches vendor/name only) and returns an
// error naming the parameter that is wrong; the caller adds the source.
type Constructor func(ctx context.Context, c StepConfig) (Step, error)

// snowplowOrder is the order in which Snowplow Enrich runs its
// configurable enrichments (EnrichmentManager.accState), by Iglu
// vendor/name. Steps run in this order whatever the order of the files;
// anon_ip comes before the PII enrichment, so the PII enrichment hashes
// the anonymized address. Every registered enrichment has a place here.
var snowplowOrder = []string{
	"com.snowplowanalytics.snowplow.enrichments/iab_spiders_and_robots_enrichment",
	"com.snowplowanalytics.snowplow/user_agent_utils_config",
	"com.snowplowanalytics.snowplow/ua_parser_config",
	"com.snowplowanalytics.snowplow/currency_conversion_config",
	"com.snowplowanalytics.snowplow/referer_parser",
	"com.snowplowanalytics.snowplow/campaign_attribution",
	"com.snowplowanalytics.snowplow.enrichments/cross_navigation_config",
	"com.snowplowanalytics.snowplow/event_fingerprint_config",
	"com.snowplowanalytics.snowplow/cookie_extractor_config",
	"com.snowplowanalytics.snowplow.enrichments/http_header_extractor_config",
	"com.snowplowanalytics.snowplow.enrichments/weather_enrichment_config",
	"com.snowplowanalytics.snowplow.enrichments/yauaa_enrichment_config",
	"com.snowplowanalytics.snowplow/ip_lookups",
	"com.snowplowanalytics.snowplow.enrichments/asn_lookups",
	"com.snowplowanalytics.snowplow.enrichments/bot_detection_enrichment_config",
	"com.snowplowanalytics.snowplow/javascript_script_config",
	"com.snowplowanalytics.snowplow.enrichments/sql_query_enrichment_config",
	"com.snowplowanalytics.snowplow.enrichments/api_request_enrichment_config",
	"com.snowplowanalytics.snowplow/anon_ip",
	"com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config",
	"com.snowplowanalytics.snowplow.enrichments/event_spec_enrichment_config",
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Constructor{}
)

// Register makes an enrichment available to LoadEnrichments under its
// configuration schema's vendor/name, e.g.
// "com.snowplowanalytics.snowplow/anon_ip". Enrichment packages call it
// from init. It panics on a duplicate, or on a name that has no place in
// Snowplow's order (a programming error).
func Register(schemaName string, c Constructor) {
	if _, ok := orderOf(schemaName); !ok {
		panic(fmt.Sprintf("enrich: Register(%q): not in Snowplow's enrichment order", schemaName))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[schemaName]; dup {
		panic(fmt.Sprintf("enrich: Register(%q) called twice", schemaName))
	}
	registry[schemaName] = c
}

// Registered returns the vendor/names that have a Constructor, in the
// order their steps run.
func Registered() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, _ := orderOf(names[i])
		b, _ := orderOf(names[j])
		return a < b
	})
	return names
}

func lookupConstructor(schemaName string) (Constructor, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	c, ok := registry[schemaName]
	return c, ok
}

// orderOf returns a name's place in snowplowOrder.
func orderOf(schemaName string) (int, bool) {
	for i, n := range snowplowOrder {
		if n == schemaName {
			return i, true
		}
	}
	return 0, false
}

// StepNames returns the configuration schema of each step, for logs.
func StepNames(steps []Step) []string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.ID().SchemaKey
	}
	return names
}
