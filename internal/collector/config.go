// Package collector is furrow's HTTP collector: the Snowplow tracker
// protocol endpoints, network user id cookie, CORS, size limits and
// size_violation bad rows. Each accepted request becomes a Thrift
// CollectorPayload written to the good sink before the tracker gets its
// response.
package collector

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Config holds the collector settings. Start from DefaultConfig.
type Config struct {
	// Paths maps custom two-segment paths to the standard ones, e.g.
	// "/com.acme/track" -> "/com.snowplowanalytics.snowplow/tp2".
	Paths map[string]string `yaml:"paths"`

	Cookie           CookieConfig           `yaml:"cookie"`
	DoNotTrackCookie DoNotTrackCookieConfig `yaml:"do_not_track_cookie"`
	CookieBounce     CookieBounceConfig     `yaml:"cookie_bounce"`

	// EnableDefaultRedirect turns on /r/tp2 click redirects.
	EnableDefaultRedirect bool `yaml:"enable_default_redirect"`
	// RedirectDomains limits redirect targets to these hosts (and their
	// subdomains); empty allows any host.
	RedirectDomains []string `yaml:"redirect_domains"`

	RootResponse RootResponseConfig `yaml:"root_response"`
	CrossDomain  CrossDomainConfig  `yaml:"cross_domain"`
	// CORSMaxAge is sent as Access-Control-Max-Age on preflight responses.
	CORSMaxAge time.Duration `yaml:"cors_max_age"`

	// MaxPayloadSize: a serialized payload over this size is not split but
	// replaced by a size_violation bad row (still answered 200).
	MaxPayloadSize int `yaml:"max_payload_size"`
	// DropPayloadSize: request bodies over this size get 413 and are not
	// stored at all.
	DropPayloadSize int `yaml:"drop_payload_size"`
	// MaxRecordBytes is the largest record the good sink takes; POST
	// batches over it are split into several payloads.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// TrustForwardedFor takes the client IP from the first
	// X-Forwarded-For address, as Snowplow collectors do.
	TrustForwardedFor bool `yaml:"trust_forwarded_for"`
}

// CookieConfig configures the network user id cookie.
type CookieConfig struct {
	Enabled        bool          `yaml:"enabled"`
	Name           string        `yaml:"name"`
	Expiration     time.Duration `yaml:"expiration"`
	Domains        []string      `yaml:"domains"`
	FallbackDomain string        `yaml:"fallback_domain"`
	Secure         bool          `yaml:"secure"`
	HTTPOnly       bool          `yaml:"http_only"`
	SameSite       string        `yaml:"same_site"` // None, Lax or Strict
	// ClientCookieName, if set, also sends the id in a cookie scripts can
	// read (not HttpOnly).
	ClientCookieName string `yaml:"client_cookie_name"`
}

// DoNotTrackCookieConfig: requests carrying cookie Name with a value
// matching Value (a regular expression) are answered but not stored.
type DoNotTrackCookieConfig struct {
	Enabled bool   `yaml:"enabled"`
	Name    string `yaml:"name"`
	Value   string `yaml:"value"`
}

// CookieBounceConfig: a GET without a cookie is redirected once to the
// same URL plus Name=true, to find out whether the browser keeps cookies.
type CookieBounceConfig struct {
	Enabled                 bool   `yaml:"enabled"`
	Name                    string `yaml:"name"`
	FallbackNetworkUserID   string `yaml:"fallback_network_user_id"`
	ForwardedProtocolHeader string `yaml:"forwarded_protocol_header"`
}

// RootResponseConfig is what GET / answers when enabled.
type RootResponseConfig struct {
	Enabled    bool              `yaml:"enabled"`
	StatusCode int               `yaml:"status_code"`
	Headers    map[string]string `yaml:"headers"`
	Body       string            `yaml:"body"`
}

// CrossDomainConfig serves /crossdomain.xml when enabled.
type CrossDomainConfig struct {
	Enabled bool     `yaml:"enabled"`
	Domains []string `yaml:"domains"`
	Secure  bool     `yaml:"secure"`
}

// DefaultConfig returns the settings of a Snowplow collector out of the box.
func DefaultConfig() Config {
	return Config{
		Cookie: CookieConfig{
			Enabled: true, Name: "sp", Expiration: 365 * 24 * time.Hour,
			Secure: true, HTTPOnly: true, SameSite: "None",
		},
		DoNotTrackCookie: DoNotTrackCookieConfig{Name: "", Value: ""},
		CookieBounce: CookieBounceConfig{
			Name: "n3pc", FallbackNetworkUserID: "00000000-0000-4000-A000-000000000000",
		},
		RootResponse:      RootResponseConfig{StatusCode: http.StatusFound},
		CrossDomain:       CrossDomainConfig{Domains: []string{"*"}, Secure: true},
		CORSMaxAge:        time.Hour,
		MaxPayloadSize:    1 << 20,
		DropPayloadSize:   2 << 20,
		MaxRecordBytes:    1_000_000,
		TrustForwardedFor: true,
	}
}

var segment = regexp.MustCompile(`^/[^/]+/[^/]+$`)

// Validate reports configuration errors.
func (c *Config) Validate() error {
	var errs []error
	for from, to := range c.Paths {
		if !segment.MatchString(from) {
			errs = append(errs, fmt.Errorf("collector.paths: %q is not a /vendor/version path", from))
		}
		if !segment.MatchString(to) {
			errs = append(errs, fmt.Errorf("collector.paths: target %q is not a /vendor/version path", to))
		}
	}
	if c.Cookie.Enabled {
		if c.Cookie.Name == "" {
			errs = append(errs, errors.New("collector.cookie.name is required"))
		}
		switch strings.ToLower(c.Cookie.SameSite) {
		case "", "none", "lax", "strict":
		default:
			errs = append(errs, fmt.Errorf("collector.cookie.same_site: %q is not None, Lax or Strict", c.Cookie.SameSite))
		}
	}
	if c.DoNotTrackCookie.Enabled {
		if c.DoNotTrackCookie.Name == "" {
			errs = append(errs, errors.New("collector.do_not_track_cookie.name is required"))
		}
		if _, err := regexp.Compile(c.DoNotTrackCookie.Value); err != nil {
			errs = append(errs, fmt.Errorf("collector.do_not_track_cookie.value: %w", err))
		}
	}
	if c.CookieBounce.Enabled && c.CookieBounce.Name == "" {
		errs = append(errs, errors.New("collector.cookie_bounce.name is required"))
	}
	if c.MaxRecordBytes <= 0 || c.MaxPayloadSize <= 0 || c.DropPayloadSize <= 0 {
		errs = append(errs, errors.New("collector: max_record_bytes, max_payload_size and drop_payload_size must be positive"))
	}
	if c.RootResponse.Enabled && (c.RootResponse.StatusCode < 100 || c.RootResponse.StatusCode > 599) {
		errs = append(errs, fmt.Errorf("collector.root_response.status_code: %d", c.RootResponse.StatusCode))
	}
	return errors.Join(errs...)
}
