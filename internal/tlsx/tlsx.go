// Package tlsx provides the TLS certificates of furrow's HTTP listeners:
// either a certificate and key read from PEM files (and reloaded when the
// files change), or certificates obtained and renewed from an ACME CA such as
// Let's Encrypt.
//
// # Files
//
// With Options.CertFile and Options.KeyFile the pair is loaded by New (a
// missing, unreadable or mismatched pair is an error) and served to every
// client. On a handshake, at most once per ReloadInterval, the size and
// modification time of both files are compared with those of the pair last
// read; when they differ the pair is read again. A new pair that does not
// load (half written, mismatched, garbage) keeps the old certificate in
// service, logs an error and increments furrow_tls_reload_errors_total; the
// pair is tried again when the files change again. Writers should replace the
// files by renaming, but a non-atomic writer only costs a counted error.
//
// # ACME
//
// With Options.ACME the Provider obtains one certificate per allowed host
// itself, as soon as New returns, answering the CA's challenges:
//
//   - tls-alpn-01 on the TLS listener that uses TLSConfig (so the listener
//     must be reachable on port 443 of the host's address), and
//   - http-01 through HTTPHandler, once HTTPHandler has been called (so it
//     must serve port 80).
//
// The challenge type that worked last is tried first; when a challenge fails
// the next type is tried with a new order. Certificates and the account key
// are cached in ACMEOptions.CacheDir (created 0700), under a subdirectory
// named after the CA's directory URL, so a restart serves the cached
// certificate at once and a switch of CA never serves the other CA's
// certificate. A background goroutine per host renews the certificate when
// its remaining lifetime falls below min(RenewBefore, lifetime/3), whether or
// not any client connects; failures are logged, counted in
// furrow_acme_renewals_total{result="failure"} and retried with an
// exponential backoff (5 s doubling up to 1 h) while the old certificate stays
// in service.
//
// Implementation choice: the ACME protocol is spoken with
// golang.org/x/crypto/acme (RFC 8555 client), not with its autocert.Manager
// and not with lego. autocert only obtains a certificate lazily on the first
// handshake of a client, its renewal timers cannot be stopped (no Close), it
// applies RenewBefore without regard to the certificate's lifetime (a
// 30-day RenewBefore on a 6-day or 90-second certificate renews in a loop),
// and it offers no hook for renewal metrics. lego would bring a large module
// graph and its own challenge servers, which would have to be bridged to
// furrow's listeners anyway. The order/authorization/challenge flow on top of
// x/crypto/acme is short and is implemented in acme.go.
package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"
)

// DefaultACMEDirectory is Let's Encrypt's production directory, used when
// ACMEOptions.DirectoryURL is empty.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// Defaults for zero values in Options and ACMEOptions.
const (
	DefaultReloadInterval = 10 * time.Second
	DefaultRenewBefore    = 30 * 24 * time.Hour
)

// Options configures a Provider. Exactly one of CertFile+KeyFile or ACME is
// set.
type Options struct {
	// CertFile and KeyFile are PEM files: the certificate chain (leaf first)
	// and its private key. They are reloaded when they change.
	CertFile, KeyFile string
	// ReloadInterval bounds how often, on a handshake, the files are checked
	// for changes (size and modification time). Zero means 10 s.
	ReloadInterval time.Duration

	// ACME obtains the certificates from an ACME CA instead of files.
	ACME *ACMEOptions

	// Logger receives reloads, renewals and their errors; nil discards.
	Logger *slog.Logger
	// Registry, if not nil, receives the metrics:
	//   furrow_tls_certificate_expiry_timestamp_seconds{name}
	//   furrow_tls_reload_errors_total
	//   furrow_acme_renewals_total{result="success"|"failure"}
	Registry prometheus.Registerer
}

// ACMEOptions configures certificates obtained from an ACME CA.
type ACMEOptions struct {
	// Hosts is the allowlist of DNS names (with at least one dot, no
	// wildcards); one certificate is obtained per host. Required.
	Hosts []string
	// Email is the account's contact address, optional.
	Email string
	// DirectoryURL is the CA's directory (https); empty means Let's Encrypt
	// production (DefaultACMEDirectory).
	DirectoryURL string
	// CacheDir holds the account key and the certificates; created 0700.
	// Required.
	CacheDir string
	// DirectoryCAFile is a PEM file of extra roots trusted, besides the
	// system's, for the HTTPS connections to the directory (a test CA such
	// as Pebble). Optional.
	DirectoryCAFile string
	// RenewBefore: a certificate is renewed when its remaining lifetime is
	// less than min(RenewBefore, lifetime/3). Zero means 30 days.
	RenewBefore time.Duration
}

// Provider serves certificates to TLS listeners. It is safe for concurrent
// use.
type Provider struct {
	log     *slog.Logger
	metrics *metrics

	files *fileSource
	acme  *acmeManager

	closeOnce sync.Once
}

// New validates o and returns a Provider. With files, the pair is loaded
// before New returns. With ACME, the account key and cached certificates are
// loaded, and background goroutines start obtaining and renewing the
// certificates; they run until Close. ctx bounds New's own work only.
func New(ctx context.Context, o Options) (*Provider, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mt, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	p := &Provider{log: o.Logger, metrics: mt}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("component", "tls")
	if o.ACME != nil {
		m, err := newACMEManager(p, *o.ACME)
		if err != nil {
			return nil, err
		}
		p.acme = m
		m.start()
		return p, nil
	}
	interval := o.ReloadInterval
	if interval == 0 {
		interval = DefaultReloadInterval
	}
	fs, err := newFileSource(p, o.CertFile, o.KeyFile, interval)
	if err != nil {
		return nil, err
	}
	p.files = fs
	return p, nil
}

// TLSConfig returns a new tls.Config for a listener: TLS 1.2 at least, ALPN
// h2 and http/1.1 (and acme-tls/1 with ACME), certificates from the Provider.
func (p *Provider) TLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: p.getCertificate,
	}
	if p.acme != nil {
		c.NextProtos = append(c.NextProtos, acme.ALPNProto)
	}
	return c
}

// Missing names the hosts that have no certificate yet (ACME, before
// the first order completes); none with files.
func (p *Provider) Missing() []string {
	if p.acme == nil {
		return nil
	}
	var out []string
	for _, h := range p.acme.hosts {
		if p.acme.current(h) == nil {
			out = append(out, h)
		}
	}
	return out
}

func (p *Provider) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if p.acme != nil {
		return p.acme.getCertificate(hello)
	}
	return p.files.get(), nil
}

// HTTPHandler returns a handler for the plain-HTTP listener (port 80): with
// ACME it answers http-01 challenges (and calling it enables that challenge
// type); every other request goes to fallback, or, if fallback is nil, is
// redirected to the same host and path over https (302 for GET and HEAD, 307
// otherwise so the method and body are kept).
func (p *Provider) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.HandlerFunc(redirectHTTPS)
	}
	if p.acme == nil {
		return fallback
	}
	p.acme.http01.Store(true)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, http01Prefix) {
			fallback.ServeHTTP(w, r)
			return
		}
		resp, ok := p.acme.http01Response(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(resp))
	})
}

const http01Prefix = "/.well-known/acme-challenge/"

func redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		http.Error(w, "missing Host", http.StatusBadRequest)
		return
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	code := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusTemporaryRedirect
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
}

// Close stops the background renewals and waits for them, or for ctx. The
// Provider keeps serving the certificates it has. Close may be called more
// than once.
func (p *Provider) Close(ctx context.Context) error {
	if p.acme == nil {
		return nil
	}
	p.closeOnce.Do(p.acme.cancel)
	select {
	case <-p.acme.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validate checks o and returns every problem at once, each naming its
// configuration field.
func (o *Options) validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	files := o.CertFile != "" || o.KeyFile != ""
	switch {
	case files && o.ACME != nil:
		add("tls.acme", "cannot be combined with tls.cert_file and tls.key_file")
	case !files && o.ACME == nil:
		add("tls", "set tls.cert_file and tls.key_file, or tls.acme")
	}
	if files {
		if o.CertFile == "" {
			add("tls.cert_file", "required with tls.key_file")
		}
		if o.KeyFile == "" {
			add("tls.key_file", "required with tls.cert_file")
		}
	}
	if o.ReloadInterval < 0 {
		add("tls.reload_interval", "must not be negative, got %s", o.ReloadInterval)
	}
	if a := o.ACME; a != nil {
		if len(a.Hosts) == 0 {
			add("tls.acme.hosts", "required: at least one DNS name")
		}
		seen := make(map[string]bool)
		for i, h := range a.Hosts {
			field := fmt.Sprintf("tls.acme.hosts[%d]", i)
			n := normalizeHost(h)
			if err := checkHost(n); err != nil {
				add(field, "%q: %v", h, err)
				continue
			}
			if seen[n] {
				add(field, "%q: duplicate", h)
			}
			seen[n] = true
		}
		if a.Email != "" {
			if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email {
				add("tls.acme.email", "%q is not a plain e-mail address", a.Email)
			}
		}
		if a.DirectoryURL != "" {
			u, err := url.Parse(a.DirectoryURL)
			switch {
			case err != nil:
				add("tls.acme.directory_url", "%v", err)
			case u.Scheme != "https" || u.Host == "":
				add("tls.acme.directory_url", "%q is not an https URL", a.DirectoryURL)
			}
		}
		if a.CacheDir == "" {
			add("tls.acme.cache_dir", "required")
		}
		if a.DirectoryCAFile != "" {
			if _, err := readCertPool(a.DirectoryCAFile); err != nil {
				add("tls.acme.directory_ca_file", "%v", err)
			}
		}
		if a.RenewBefore < 0 {
			add("tls.acme.renew_before", "must not be negative, got %s", a.RenewBefore)
		}
	}
	return errors.Join(errs...)
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// checkHost accepts a DNS name with at least two labels, as public CAs
// require; wildcards (dns-01 only) and IP addresses are refused.
func checkHost(h string) error {
	switch {
	case h == "":
		return errors.New("empty")
	case strings.HasPrefix(h, "*."):
		return errors.New("wildcards need the dns-01 challenge, which is not supported")
	case net.ParseIP(h) != nil:
		return errors.New("IP addresses are not supported")
	case len(h) > 253:
		return errors.New("longer than 253 characters")
	case !strings.Contains(h, "."):
		return errors.New("needs at least one dot (a fully qualified name)")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q must have 1 to 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("label %q has a character other than a-z, 0-9 and '-'", label)
			}
		}
	}
	return nil
}

// readCertPool returns the system roots plus the certificates of a PEM file.
func readCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

// metrics are the Provider's Prometheus collectors.
type metrics struct {
	expiry       *prometheus.GaugeVec
	reloadErrors prometheus.Counter
	renewals     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "furrow_tls_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the certificate in service, as a Unix timestamp, by certificate name.",
		}, []string{"name"}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "furrow_tls_reload_errors_total",
			Help: "Changed certificate/key files that could not be loaded; the previous certificate stayed in service.",
		}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "furrow_acme_renewals_total",
			Help: "ACME certificate orders (first issue and renewals), by result.",
		}, []string{"result"}),
	}
	if reg != nil {
		var errs [3]error
		m.expiry, errs[0] = register(reg, m.expiry)
		m.reloadErrors, errs[1] = register(reg, m.reloadErrors)
		m.renewals, errs[2] = register(reg, m.renewals)
		if err := errors.Join(errs[:]...); err != nil {
			return nil, fmt.Errorf("tls: registering metrics: %w", err)
		}
	}
	m.renewals.WithLabelValues("success")
	m.renewals.WithLabelValues("failure")
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same name (a second Provider on the same registry shares it).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// certName is the name label of a certificate loaded from files: its first
// DNS name, else its common name, else the file name.
func certName(leaf *x509.Certificate, file string) string {
	if leaf != nil {
		if len(leaf.DNSNames) > 0 {
			return leaf.DNSNames[0]
		}
		if leaf.Subject.CommonName != "" {
			return leaf.Subject.CommonName
		}
	}
	return file
}
