package pseudo

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
)

// Config is the pseudonymize: section of furrow's configuration.
type Config struct {
	// Enabled turns pseudonymization on: the last step of enrichment,
	// before any output sees an event or a bad row.
	Enabled bool `yaml:"enabled"`
	// KeyFile holds the key: its bytes, with one trailing newline removed.
	KeyFile string `yaml:"key_file,omitempty"`
	// KeyEnv names an environment variable holding the key (its bytes).
	// Exactly one of KeyFile and KeyEnv is set. The key itself is never
	// in the configuration text.
	KeyEnv string `yaml:"key_env,omitempty"`
	// KeyID names the key in every pseudonymized event (the
	// io.furrow/pseudonymization entity in derived_contexts), so a key
	// rotation can be traced. Default: "k-" and the first 12 hex digits
	// of the key's pseudonym of "furrow key id", which tells keys apart
	// and reveals nothing of them.
	KeyID string `yaml:"key_id,omitempty"`
	// Allow replaces DefaultAllow: the enriched fields kept in clear.
	Allow []string `yaml:"allow,omitempty"`
	// AllowExtra adds fields to the allowlist.
	AllowExtra []string `yaml:"allow_extra,omitempty"`
	// URLs is how page_url and page_referrer are treated: "hash" (the
	// default: the URL and all its parts are pseudonymized unless
	// allowed) or "keep_path" (scheme, host, port and path stay in
	// clear in the URL and its parts; each query value, the fragment and
	// any user:password@ are pseudonymized; query parameter names stay).
	URLs string `yaml:"urls,omitempty"`
	// JSON lists, per schema, the JSON paths kept in clear in contexts,
	// derived_contexts and unstruct_event; every other leaf is
	// pseudonymized. They add to DefaultJSON.
	JSON []JSONRule `yaml:"json,omitempty"`
	// CacheEntries bounds the in-memory cache of recent pseudonyms
	// (default 16384; 0 turns it off).
	CacheEntries *int `yaml:"cache_entries,omitempty"`
}

// JSONRule keeps paths of the entities whose schema matches Schema, an
// Iglu criterion such as iglu:com.acme/user/jsonschema/1-*-*.
type JSONRule struct {
	Schema string   `yaml:"schema"`
	Allow  []string `yaml:"allow"`
}

// URL modes.
const (
	URLsHash     = "hash"
	URLsKeepPath = "keep_path"
)

// DefaultCacheEntries is the size of the pseudonym cache.
const DefaultCacheEntries = 1 << 14

// DefaultAllow is the fields kept in clear unless pseudonymize.allow
// replaces it: fields that identify no one (times, versions, event
// types, the application and platform, tracker, browser, OS and device
// families, screen and viewport sizes, page ping offsets, coarse place:
// country, region and time zone, campaign names, struct event category
// and action, product and currency fields, amounts). Everything else,
// notably user and device ids, IP addresses, user agents, URLs and
// titles, search terms, city, zip code, free-text labels, order ids and
// event fingerprints, is pseudonymized.
var DefaultAllow = []string{
	"app_id", "platform", "etl_tstamp", "collector_tstamp", "dvce_created_tstamp",
	"event", "event_id", "txn_id", "name_tracker", "v_tracker", "v_collector", "v_etl",
	"domain_sessionidx", "geo_country", "geo_region", "geo_region_name", "geo_timezone", "ip_netspeed",
	"page_urlscheme", "page_urlport", "refr_urlscheme", "refr_urlport",
	"refr_medium", "refr_source", "mkt_medium", "mkt_source", "mkt_campaign", "mkt_network",
	"se_category", "se_action", "se_value",
	"tr_affiliation", "tr_total", "tr_tax", "tr_shipping", "tr_country", "tr_currency",
	"tr_total_base", "tr_tax_base", "tr_shipping_base",
	"ti_sku", "ti_name", "ti_category", "ti_price", "ti_quantity", "ti_currency", "ti_price_base", "base_currency",
	"pp_xoffset_min", "pp_xoffset_max", "pp_yoffset_min", "pp_yoffset_max",
	"br_name", "br_family", "br_version", "br_type", "br_renderengine", "br_lang",
	"br_features_pdf", "br_features_flash", "br_features_java", "br_features_director",
	"br_features_quicktime", "br_features_realplayer", "br_features_windowsmedia",
	"br_features_gears", "br_features_silverlight", "br_cookies", "br_colordepth",
	"br_viewwidth", "br_viewheight", "os_name", "os_family", "os_manufacturer", "os_timezone",
	"dvce_type", "dvce_ismobile", "dvce_screenwidth", "dvce_screenheight",
	"doc_charset", "doc_width", "doc_height", "etl_tags",
	"dvce_sent_tstamp", "refr_dvce_tstamp", "derived_tstamp", "true_tstamp",
	"event_vendor", "event_name", "event_format", "event_version",
}

// DefaultJSON keeps the parts of Snowplow's own entities that identify
// no one. A user's rules add to these.
var DefaultJSON = []JSONRule{
	{Schema: "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-*-*", Allow: []string{"$.id"}},
	{Schema: "iglu:com.snowplowanalytics.snowplow/client_session/jsonschema/1-*-*",
		Allow: []string{"$.sessionIndex", "$.eventIndex", "$.storageMechanism", "$.firstEventTimestamp"}},
	{Schema: "iglu:com.snowplowanalytics.snowplow/mobile_context/jsonschema/1-*-*",
		Allow: []string{"$.osType", "$.osVersion", "$.deviceManufacturer", "$.deviceModel", "$.carrier", "$.networkType"}},
	{Schema: "iglu:com.snowplowanalytics.snowplow/application/jsonschema/1-*-*", Allow: []string{"$.version", "$.build"}},
	{Schema: "iglu:com.snowplowanalytics.snowplow/ua_parser_context/jsonschema/1-*-*", Allow: []string{"$"}},
	{Schema: "iglu:nl.basjes/yauaa_context/jsonschema/1-*-*", Allow: []string{"$"}},
	{Schema: "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-*-*", Allow: []string{"$.elementId", "$.elementClasses", "$.elementTarget"}},
	{Schema: "iglu:io.furrow/pseudonymization/jsonschema/1-*-*", Allow: []string{"$"}},
}

// KeySchema is the entity added to derived_contexts of each
// pseudonymized event: {"keyId": "..."}.
const KeySchema = "iglu:io.furrow/pseudonymization/jsonschema/1-0-0"

// Default returns the section with pseudonymization off.
func Default() Config { return Config{URLs: URLsHash} }

// Validate reports every error in c at once, each naming its setting.
// It does not read the key: see LoadKey.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("pseudonymize."+format, a...)) }
	if c.Enabled {
		switch {
		case c.KeyFile == "" && c.KeyEnv == "":
			bad("key_file or key_env: one is required when pseudonymize.enabled is true (the key is never written in the configuration)")
		case c.KeyFile != "" && c.KeyEnv != "":
			bad("key_file and key_env: set one, not both")
		}
	}
	if c.KeyID != "" && (len(c.KeyID) > 64 || strings.ContainsAny(c.KeyID, "\"\\\t\n\r")) {
		bad("key_id: %q must be at most 64 characters, without quotes, backslashes or control characters", c.KeyID)
	}
	for _, l := range []struct {
		name   string
		fields []string
	}{{"allow", c.Allow}, {"allow_extra", c.AllowExtra}} {
		for _, f := range l.fields {
			i, ok := ev.Index(f)
			switch {
			case !ok:
				bad("%s: %q is not one of the 131 enriched fields", l.name, f)
			case ev.Fields[i].Type == ev.JSON:
				bad("%s: %q is a JSON field: list what stays clear inside it under pseudonymize.json", l.name, f)
			}
		}
	}
	if c.Allow != nil && !slices.Contains(c.Allow, "event_id") && !slices.Contains(c.AllowExtra, "event_id") {
		bad("allow: event_id must stay in clear: it is a random id per event, and the warehouse loads each event once by it")
	}
	switch c.URLs {
	case "", URLsHash, URLsKeepPath:
	default:
		bad("urls: %q is not hash or keep_path", c.URLs)
	}
	for i, r := range c.JSON {
		if _, err := iglu.ParseCriterion(r.Schema); err != nil {
			bad("json[%d].schema: %q is not an Iglu criterion such as iglu:com.acme/user/jsonschema/1-*-*: %v", i, r.Schema, err)
		}
		if len(r.Allow) == 0 {
			bad("json[%d].allow: no paths for %s", i, r.Schema)
		}
		for _, p := range r.Allow {
			if _, err := parsePath(p); err != nil {
				bad("json[%d].allow: %v", i, err)
			}
		}
	}
	if c.CacheEntries != nil && *c.CacheEntries < 0 {
		bad("cache_entries: %d is negative (0 turns the cache off)", *c.CacheEntries)
	}
	return errors.Join(errs...)
}

// LoadKey reads the key c names. warnings are for the startup log (a
// key file others may read).
func (c *Config) LoadKey() (key []byte, warnings []string, err error) {
	switch {
	case c.KeyFile != "":
		st, err := os.Stat(c.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("pseudonymize.key_file: %w", err)
		}
		if st.IsDir() {
			return nil, nil, fmt.Errorf("pseudonymize.key_file: %s is a directory", c.KeyFile)
		}
		if st.Mode().Perm()&0o077 != 0 {
			who := "group members"
			if st.Mode().Perm()&0o004 != 0 {
				who = "every user"
			}
			warnings = append(warnings, fmt.Sprintf("pseudonymize.key_file: %s has mode %04o: %s can read the key (chmod 600 %s)",
				c.KeyFile, st.Mode().Perm(), who, c.KeyFile))
		}
		key, err = os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, warnings, fmt.Errorf("pseudonymize.key_file: %w", err)
		}
		if n := len(key); n > 0 && key[n-1] == '\n' {
			key = key[:n-1]
		}
		if len(key) < MinKeyBytes {
			return nil, warnings, fmt.Errorf("pseudonymize.key_file: %s holds %d bytes; a key has at least %d (for example: head -c 32 /dev/urandom | base64 > %s)",
				c.KeyFile, len(key), MinKeyBytes, c.KeyFile)
		}
	case c.KeyEnv != "":
		v, ok := os.LookupEnv(c.KeyEnv)
		if !ok {
			return nil, nil, fmt.Errorf("pseudonymize.key_env: the environment variable %s is not set", c.KeyEnv)
		}
		if len(v) < MinKeyBytes {
			return nil, nil, fmt.Errorf("pseudonymize.key_env: %s holds %d bytes; a key has at least %d", c.KeyEnv, len(v), MinKeyBytes)
		}
		key = []byte(v)
	default:
		return nil, nil, errors.New("pseudonymize: no key_file or key_env")
	}
	return key, warnings, nil
}
