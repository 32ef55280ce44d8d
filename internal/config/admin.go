package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// AdminConfig is the admin surface: health, readiness, usage figures,
// the effective configuration, metrics and the status page. It is always
// served on the local socket without authentication (the socket is
// furrow's user's only); with Listen set, also on a network listener that
// requires TLS and authentication and never serves /v1/sql.
type AdminConfig struct {
	// Listen is the network listener's host:port; empty: none.
	Listen string     `yaml:"listen"`
	TLS    TLSConfig  `yaml:"tls"`
	Auth   AuthConfig `yaml:"auth"`
	// StaleAfter flags a destination whose last load is older (and
	// turns readiness off).
	StaleAfter time.Duration `yaml:"stale_after"`
	// StatsTop is how many keys of each dimension /v1/stats lists before
	// "other".
	StatsTop int `yaml:"stats_top"`
}

// DefaultAdminConfig is the admin section's default: the socket only.
func DefaultAdminConfig() AdminConfig {
	return AdminConfig{StaleAfter: time.Hour, StatsTop: 10}
}

// TLSConfig serves a listener over TLS: certificate and key files
// (reloaded when they change), or certificates from an ACME CA.
type TLSConfig struct {
	CertFile string      `yaml:"cert_file"`
	KeyFile  string      `yaml:"key_file"`
	ACME     *ACMEConfig `yaml:"acme"`
}

// Enabled tells whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.ACME != nil }

// ACMEConfig obtains and renews certificates from an ACME CA (Let's
// Encrypt by default), answering TLS-ALPN-01 on the listener itself or
// HTTP-01 on HTTPListen.
type ACMEConfig struct {
	Hosts        []string `yaml:"hosts"`
	Email        string   `yaml:"email"`
	DirectoryURL string   `yaml:"directory_url"`
	// DirectoryCAFile holds extra roots for the directory's HTTPS (a
	// private CA, or Pebble in tests).
	DirectoryCAFile string        `yaml:"directory_ca_file"`
	RenewBefore     time.Duration `yaml:"renew_before"`
	// HTTPListen, when set (":80"), answers HTTP-01 challenges there
	// and redirects everything else to https.
	HTTPListen string `yaml:"http_listen"`
}

// AuthConfig authenticates the admin listener: bearer JWTs verified
// against an OIDC issuer's keys or a JWKS URL, and/or static API tokens
// stored as hashes (furrow admin hash-token).
type AuthConfig struct {
	Issuer      string        `yaml:"issuer"`
	JWKSURL     string        `yaml:"jwks_url"`
	Audience    []string      `yaml:"audience"`
	TokenUse    string        `yaml:"token_use"`
	Owners      []string      `yaml:"owners"`
	TokenHashes []string      `yaml:"token_hashes"`
	Leeway      time.Duration `yaml:"leeway"`
}

// Enabled tells whether any way of authenticating is configured.
func (a AuthConfig) Enabled() bool {
	return a.Issuer != "" || a.JWKSURL != "" || len(a.TokenHashes) > 0
}

// Validate checks the admin section.
func (c *AdminConfig) Validate() error {
	var errs []error
	errs = append(errs, validateAddr("listen", c.Listen, true)...)
	if c.StaleAfter <= 0 {
		errs = append(errs, fmt.Errorf("stale_after: %s must be positive", c.StaleAfter))
	}
	if c.StatsTop < 1 || c.StatsTop > 1000 {
		errs = append(errs, fmt.Errorf("stats_top: %d is not between 1 and 1000", c.StatsTop))
	}
	errs = append(errs, within("tls", c.TLS.Validate())...)
	if c.Listen != "" {
		if !c.TLS.Enabled() {
			errs = append(errs, errors.New("tls: the admin listener (admin.listen) requires TLS: set admin.tls.cert_file and key_file, or admin.tls.acme"))
		}
		if !c.Auth.Enabled() {
			errs = append(errs, errors.New("auth: the admin listener (admin.listen) requires authentication: set admin.auth.issuer or jwks_url (JWTs), or token_hashes (from furrow admin hash-token)"))
		}
	}
	a := c.Auth
	if a.Issuer != "" && a.JWKSURL != "" {
		errs = append(errs, errors.New("auth: set issuer or jwks_url, not both (an issuer's keys come from its discovery document)"))
	}
	for name, u := range map[string]string{"auth.issuer": a.Issuer, "auth.jwks_url": a.JWKSURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Host == "" || (p.Scheme != "https" && !isLoopbackHost(p.Hostname())) {
			errs = append(errs, fmt.Errorf("%s: %q must be an https URL (http only on loopback)", name, u))
		}
	}
	if a.Leeway < 0 || a.Leeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("auth.leeway: %s is not between 0 and 5m", a.Leeway))
	}
	return errors.Join(errs...)
}

// Validate checks a tls section.
func (t TLSConfig) Validate() error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("cert_file and key_file go together"))
	}
	if t.ACME != nil {
		if t.CertFile != "" {
			errs = append(errs, errors.New("acme: set certificate files or acme, not both"))
		}
		if len(t.ACME.Hosts) == 0 {
			errs = append(errs, errors.New("acme.hosts: at least one host name is required (the names furrow may get certificates for)"))
		}
		for i, h := range t.ACME.Hosts {
			if h == "" || strings.ContainsAny(h, "/: ") || !strings.Contains(h, ".") {
				errs = append(errs, fmt.Errorf("acme.hosts[%d]: %q is not a DNS name with a dot", i, h))
			}
		}
		if u := t.ACME.DirectoryURL; u != "" {
			if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
				errs = append(errs, fmt.Errorf("acme.directory_url: %q must be an https URL", u))
			}
		}
		if t.ACME.RenewBefore < 0 {
			errs = append(errs, fmt.Errorf("acme.renew_before: %s is negative", t.ACME.RenewBefore))
		}
		errs = append(errs, validateAddr("acme.http_listen", t.ACME.HTTPListen, true)...)
	}
	return errors.Join(errs...)
}

func isLoopbackHost(h string) bool { return isLoopback(h + ":0") }
