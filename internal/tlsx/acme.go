package tlsx

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
)

// Timing of the ACME work; variables so that tests may shorten them.
var (
	orderTimeout  = 5 * time.Minute  // one order, all challenges included
	retryMin      = 5 * time.Second  // first retry after a failed order
	retryMax      = time.Hour        // backoff cap
	maxSleep      = time.Hour        // re-evaluate the schedule at least this often
	handshakeWait = 30 * time.Second // a handshake waits this long for a first certificate
)

const (
	challengeTLSALPN = "tls-alpn-01"
	challengeHTTP    = "http-01"
)

// acmeManager obtains, caches, serves and renews the certificates of the
// allowed hosts.
type acmeManager struct {
	p           *Provider
	hosts       []string // normalized, in configuration order
	allowed     map[string]bool
	email       string
	renewBefore time.Duration
	dir         string // cache directory of this CA
	client      *acme.Client

	http01 atomic.Bool // HTTPHandler was called

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	regMu      sync.Mutex
	registered bool
	lastType   atomic.Value // string: the challenge type that last worked

	mu    sync.RWMutex
	certs map[string]*tls.Certificate // in service, Leaf set
	ready map[string]chan struct{}    // closed when a host has a first certificate

	chalMu    sync.RWMutex
	alpnCerts map[string]*tls.Certificate // host -> tls-alpn-01 challenge certificate
	httpResp  map[string]string           // request path -> http-01 key authorization
}

func newACMEManager(p *Provider, o ACMEOptions) (*acmeManager, error) {
	m := &acmeManager{
		p:           p,
		allowed:     make(map[string]bool),
		email:       o.Email,
		renewBefore: o.RenewBefore,
		certs:       make(map[string]*tls.Certificate),
		ready:       make(map[string]chan struct{}),
		alpnCerts:   make(map[string]*tls.Certificate),
		httpResp:    make(map[string]string),
		done:        make(chan struct{}),
	}
	if m.renewBefore == 0 {
		m.renewBefore = DefaultRenewBefore
	}
	for _, h := range o.Hosts {
		h = normalizeHost(h)
		m.hosts = append(m.hosts, h)
		m.allowed[h] = true
		m.ready[h] = make(chan struct{})
	}
	dirURL := o.DirectoryURL
	if dirURL == "" {
		dirURL = DefaultACMEDirectory
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	if o.DirectoryCAFile != "" {
		pool, err := readCertPool(o.DirectoryCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.acme.directory_ca_file: %w", err)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}

	m.dir = filepath.Join(o.CacheDir, cacheNamespace(dirURL))
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls.acme.cache_dir: %w", err)
	}
	key, err := m.accountKey()
	if err != nil {
		return nil, fmt.Errorf("tls.acme.cache_dir: account key: %w", err)
	}
	m.client = &acme.Client{
		Key:          key,
		DirectoryURL: dirURL,
		HTTPClient:   &http.Client{Transport: transport, Timeout: time.Minute},
		UserAgent:    "furrow",
	}
	for _, h := range m.hosts {
		cert, err := m.loadCached(h)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			p.log.Warn("ignoring cached ACME certificate", "host", h, "error", err)
		default:
			m.install(h, cert)
			p.log.Info("loaded cached ACME certificate", "host", h, "not_after", cert.Leaf.NotAfter)
		}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// cacheNamespace turns a directory URL into a directory name, such as
// acme-v02.api.letsencrypt.org_directory.
func cacheNamespace(dirURL string) string {
	u, err := url.Parse(dirURL)
	s := dirURL
	if err == nil {
		s = u.Host + u.Path
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.TrimSuffix(s, "/"))
}

// start launches one renewal loop per host.
func (m *acmeManager) start() {
	var wg sync.WaitGroup
	for _, h := range m.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.loop(h)
		}()
	}
	go func() {
		wg.Wait()
		close(m.done)
	}()
}

// loop keeps host's certificate valid until the manager is closed: it orders
// one when there is none or when the one in service is due for renewal, and
// retries failures with an exponential backoff.
func (m *acmeManager) loop(host string) {
	log := m.p.log.With("host", host)
	failures := 0
	for {
		var wait time.Duration
		if failures > 0 {
			wait = min(retryMin<<min(failures-1, 20), retryMax)
		} else if cert := m.current(host); cert != nil {
			wait = time.Until(m.renewAt(cert.Leaf))
		}
		wait = min(max(wait, 0), maxSleep)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-m.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if failures == 0 {
				if cert := m.current(host); cert != nil && time.Now().Before(m.renewAt(cert.Leaf)) {
					continue // woke up to re-evaluate only
				}
			}
		}
		if m.ctx.Err() != nil {
			return
		}
		renewal := m.current(host) != nil
		log.Info("ordering ACME certificate", "renewal", renewal)
		ctx, cancel := context.WithTimeout(m.ctx, orderTimeout)
		cert, err := m.order(ctx, host)
		cancel()
		if err != nil {
			if m.ctx.Err() != nil {
				return
			}
			failures++
			m.p.metrics.renewals.WithLabelValues("failure").Inc()
			log.Error("ACME certificate order failed", "renewal", renewal, "failures", failures, "error", err)
			continue
		}
		failures = 0
		if err := m.storeCached(host, cert); err != nil {
			log.Error("caching ACME certificate failed", "error", err)
		}
		m.install(host, cert)
		m.p.metrics.renewals.WithLabelValues("success").Inc() // after install: a reader of the metric sees the new certificate served
		log.Info("obtained ACME certificate", "renewal", renewal, "serial", cert.Leaf.SerialNumber.Text(16),
			"not_before", cert.Leaf.NotBefore, "not_after", cert.Leaf.NotAfter, "renew_at", m.renewAt(cert.Leaf))
	}
}

// renewAt is when a certificate is due for renewal: when its remaining
// lifetime falls below min(RenewBefore, lifetime/3).
func (m *acmeManager) renewAt(leaf *x509.Certificate) time.Time {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-min(m.renewBefore, lifetime/3))
}

func (m *acmeManager) current(host string) *tls.Certificate {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.certs[host]
}

func (m *acmeManager) install(host string, cert *tls.Certificate) {
	m.mu.Lock()
	first := m.certs[host] == nil
	m.certs[host] = cert
	m.mu.Unlock()
	if first {
		close(m.ready[host])
	}
	m.p.metrics.expiry.WithLabelValues(host).Set(float64(cert.Leaf.NotAfter.Unix()))
}

// getCertificate answers tls-alpn-01 challenges and serves the certificate of
// an allowed host. A handshake without SNI gets the first host's certificate.
// Before a host's first certificate exists, a handshake waits for it for a
// while.
func (m *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host := normalizeHost(hello.ServerName)
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		m.chalMu.RLock()
		cert := m.alpnCerts[host]
		m.chalMu.RUnlock()
		if cert == nil {
			return nil, fmt.Errorf("tls: no tls-alpn-01 challenge pending for %q", host)
		}
		return cert, nil
	}
	if host == "" {
		host = m.hosts[0]
	}
	if !m.allowed[host] {
		return nil, fmt.Errorf("tls: host %q is not in tls.acme.hosts", host)
	}
	if cert := m.current(host); cert != nil {
		return cert, nil
	}
	ctx, cancel := context.WithTimeout(hello.Context(), handshakeWait)
	defer cancel()
	select {
	case <-m.ready[host]:
		return m.current(host), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("tls: no certificate for %q yet", host)
	}
}

func (m *acmeManager) http01Response(path string) (string, bool) {
	m.chalMu.RLock()
	defer m.chalMu.RUnlock()
	resp, ok := m.httpResp[path]
	return resp, ok
}

// register creates the ACME account once per process (an existing account
// of the same key is fine).
func (m *acmeManager) register(ctx context.Context) error {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.registered {
		return nil
	}
	acct := &acme.Account{}
	if m.email != "" {
		acct.Contact = []string{"mailto:" + m.email}
	}
	if _, err := m.client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fmt.Errorf("registering ACME account: %w", err)
	}
	m.registered = true
	return nil
}

// challengeTypes lists the challenge types to try, the last successful first.
func (m *acmeManager) challengeTypes() []string {
	types := []string{challengeTLSALPN}
	if m.http01.Load() {
		types = append(types, challengeHTTP)
		if last, _ := m.lastType.Load().(string); last == challengeHTTP {
			types[0], types[1] = types[1], types[0]
		}
	}
	return types
}

// order obtains a new certificate for host, trying each challenge type in
// turn (a failed challenge invalidates its order, so each try is a new
// order).
func (m *acmeManager) order(ctx context.Context, host string) (*tls.Certificate, error) {
	if err := m.register(ctx); err != nil {
		return nil, err
	}
	var errs []error
	for _, typ := range m.challengeTypes() {
		cert, err := m.orderWith(ctx, host, typ)
		if err == nil {
			m.lastType.Store(typ)
			return cert, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", typ, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (m *acmeManager) orderWith(ctx context.Context, host, typ string) (*tls.Certificate, error) {
	o, err := m.client.AuthorizeOrder(ctx, acme.DomainIDs(host))
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, zurl := range o.AuthzURLs {
		if err := m.authorize(ctx, zurl, host, typ); err != nil {
			return nil, err
		}
	}
	// The order as first returned keeps its URL and finalize URL (a polled
	// order need not repeat them).
	if _, err := m.client.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("waiting for order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{host}}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := m.client.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalizing order: %w", err)
	}
	return checkIssued(host, der, key)
}

// authorize satisfies one authorization with a challenge of type typ.
func (m *acmeManager) authorize(ctx context.Context, zurl, host, typ string) error {
	z, err := m.client.GetAuthorization(ctx, zurl)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	switch z.Status {
	case acme.StatusValid:
		return nil // reused by the CA
	case acme.StatusPending:
	default:
		return fmt.Errorf("authorization %s is %s", zurl, z.Status)
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == typ {
			chal = c
			break
		}
	}
	if chal == nil {
		return fmt.Errorf("the CA offers no %s challenge for %s", typ, host)
	}
	cleanup, err := m.prepare(chal, host)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := m.client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("accepting challenge: %w", err)
	}
	if _, err := m.client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	return nil
}

// prepare makes the listeners answer chal and returns the undo.
func (m *acmeManager) prepare(chal *acme.Challenge, host string) (func(), error) {
	m.chalMu.Lock()
	defer m.chalMu.Unlock()
	switch chal.Type {
	case challengeTLSALPN:
		cert, err := m.client.TLSALPN01ChallengeCert(chal.Token, host)
		if err != nil {
			return nil, err
		}
		m.alpnCerts[host] = &cert
		return func() {
			m.chalMu.Lock()
			delete(m.alpnCerts, host)
			m.chalMu.Unlock()
		}, nil
	case challengeHTTP:
		resp, err := m.client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		path := m.client.HTTP01ChallengePath(chal.Token)
		m.httpResp[path] = resp
		return func() {
			m.chalMu.Lock()
			delete(m.httpResp, path)
			m.chalMu.Unlock()
		}, nil
	}
	return nil, fmt.Errorf("unsupported challenge type %s", chal.Type)
}

// checkIssued builds the tls.Certificate of an issued chain and checks that
// it is for host, currently valid, and matches key.
func checkIssued(host string, der [][]byte, key crypto.Signer) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("parsing issued certificate: %w", err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("issued certificate expired at %s", leaf.NotAfter)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("issued certificate does not match the private key")
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// Cache files, in the CA's directory under CacheDir:
//
//	account.key   the account's ECDSA key, PEM "EC PRIVATE KEY"
//	<host>.pem    the certificate's key (PEM "PRIVATE KEY", PKCS #8) then its chain
func (m *acmeManager) accountKey() (crypto.Signer, error) {
	file := filepath.Join(m.dir, "account.key")
	data, err := os.ReadFile(file)
	if err == nil {
		b, _ := pem.Decode(data)
		if b == nil || b.Type != "EC PRIVATE KEY" {
			return nil, fmt.Errorf("%s: no EC PRIVATE KEY PEM block", file)
		}
		return x509.ParseECPrivateKey(b.Bytes)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return key, writeFileAtomic(file, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func (m *acmeManager) certFile(host string) string {
	return filepath.Join(m.dir, host+".pem")
}

func (m *acmeManager) loadCached(host string) (*tls.Certificate, error) {
	data, err := os.ReadFile(m.certFile(host))
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	var der [][]byte
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, errors.New("private key is not a signer")
			}
			key = s
		case "CERTIFICATE":
			der = append(der, b.Bytes)
		}
	}
	if key == nil {
		return nil, errors.New("no private key")
	}
	leaf, err := checkIssued(host, der, key)
	if err != nil {
		return nil, err
	}
	return leaf, nil
}

func (m *acmeManager) storeCached(host string, cert *tls.Certificate) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, c := range cert.Certificate {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return writeFileAtomic(m.certFile(host), buf.Bytes())
}

// writeFileAtomic writes a 0600 file by renaming a temporary file over it.
func writeFileAtomic(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), ".tmp-"+filepath.Base(file)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}
