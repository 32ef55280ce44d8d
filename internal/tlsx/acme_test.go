package tlsx

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"

	"github.com/furrow-io/furrow/internal/testutil"
)

// TestACMETLSALPN obtains a certificate from Pebble by answering tls-alpn-01
// on the TLS listener, serves it, and renews it in the background before it
// expires, with no client connecting meanwhile.
func TestACMETLSALPN(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const validity = 60 // seconds; renewal due after 40 s (lifetime/3 left)
	pb := testutil.Pebble(t, testutil.PebbleOptions{
		TLSPort:  ln.Addr().(*net.TCPAddr).Port,
		Validity: validity * time.Second,
	})
	roots := pb.RootPool()

	cacheDir := filepath.Join(t.TempDir(), "acme")
	reg := prometheus.NewRegistry()
	opts := Options{
		ACME: &ACMEOptions{
			Hosts:           []string{testHost},
			Email:           "ops@furrow.test",
			DirectoryURL:    pb.DirectoryURL(),
			CacheDir:        cacheDir,
			DirectoryCAFile: pb.DirectoryCAFile(),
		},
		Logger:   testLogger(t),
		Registry: reg,
	}
	p, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeProvider(t, p)
	cfg := p.TLSConfig()
	if cfg.NextProtos[len(cfg.NextProtos)-1] != acme.ALPNProto {
		t.Errorf("NextProtos = %q, want acme-tls/1 last", cfg.NextProtos)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto)
		}),
		TLSConfig: cfg,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	addr := ln.Addr().String()

	successes := func() float64 {
		return metricValue(t, reg, "furrow_acme_renewals_total", "result", "success")
	}
	eventually(t, 30*time.Second, "the first certificate", func() bool { return successes() >= 1 })
	first := servedCert(t, addr, roots) // verifies the chain to Pebble's root
	if err := first.VerifyHostname(testHost); err != nil {
		t.Fatal(err)
	}
	if got := first.NotAfter.Sub(first.NotBefore); got > validity*time.Second {
		t.Fatalf("certificate lifetime %s, want the profile's %ds", got, validity)
	}
	t.Logf("first certificate %x, %s to %s", first.SerialNumber, first.NotBefore, first.NotAfter)

	// HTTP/2 over the ACME certificate.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: testHost, RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	resp, err := client.Get("https://" + testHost + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("resp.Proto = %q, want HTTP/2.0", resp.Proto)
	}

	// The cache: created 0700, holding the account key and the certificate.
	if fi, err := os.Stat(cacheDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
	ns := filepath.Join(cacheDir, cacheNamespace(pb.DirectoryURL()))
	for _, f := range []string{"account.key", testHost + ".pem"} {
		if _, err := os.Stat(filepath.Join(ns, f)); err != nil {
			t.Errorf("cache: %v", err)
		}
	}

	// Renewal in the background: nobody connects until the success counter
	// shows a second certificate, which must come before the first expires.
	eventually(t, time.Until(first.NotAfter), "a background renewal before expiry", func() bool { return successes() >= 2 })
	renewedAt := time.Now()
	if !renewedAt.Before(first.NotAfter) {
		t.Fatalf("renewed at %s, after the first certificate's expiry %s", renewedAt, first.NotAfter)
	}
	second := servedCert(t, addr, roots)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("still serving serial %x after the renewal", first.SerialNumber)
	}
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %s, not after the first's %s", second.NotAfter, first.NotAfter)
	}
	if due := first.NotAfter.Add(-first.NotAfter.Sub(first.NotBefore) / 3); renewedAt.Before(due) {
		t.Errorf("renewed at %s, before it was due at %s", renewedAt, due)
	}
	t.Logf("renewed certificate %x at %s (%s before the first's expiry)", second.SerialNumber, renewedAt.Format(time.RFC3339), first.NotAfter.Sub(renewedAt).Round(time.Second))
	if got := metricValue(t, reg, "furrow_tls_certificate_expiry_timestamp_seconds", "name", testHost); got != float64(second.NotAfter.Unix()) {
		t.Errorf("expiry metric = %v, want %v", got, second.NotAfter.Unix())
	}
	if got := metricValue(t, reg, "furrow_acme_renewals_total", "result", "failure"); got != 0 {
		t.Errorf("renewal failures = %v, want 0", got)
	}

	// A restart serves the cached certificate at once, without an order.
	closeProvider(t, p)
	reg2 := prometheus.NewRegistry()
	opts.Registry = reg2
	p2, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p2.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: testHost})
	closeProvider(t, p2)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("after restart, serial %x, want the cached %x", cert.Leaf.SerialNumber, second.SerialNumber)
	}
}

// TestACMEHTTP01 obtains a certificate through HTTPHandler: Pebble's
// tls-alpn-01 check goes to a closed port and fails, so the provider falls
// back to http-01 within the same attempt.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pb := testutil.Pebble(t, testutil.PebbleOptions{
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port,
		TLSPort:  closedPort(t),
		Validity: time.Hour,
	})
	reg := prometheus.NewRegistry()
	p, err := New(context.Background(), Options{
		ACME: &ACMEOptions{
			Hosts:           []string{testHost},
			DirectoryURL:    pb.DirectoryURL(),
			CacheDir:        filepath.Join(t.TempDir(), "acme"),
			DirectoryCAFile: pb.DirectoryCAFile(),
		},
		Logger:   testLogger(t),
		Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeProvider(t, p)
	plain := &http.Server{Handler: p.HTTPHandler(nil)}
	go func() { _ = plain.Serve(httpLn) }()
	defer plain.Close()
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: p.TLSConfig()}
	go func() { _ = srv.ServeTLS(tlsLn, "", "") }()
	defer srv.Close()

	eventually(t, 30*time.Second, "a certificate through http-01", func() bool {
		return metricValue(t, reg, "furrow_acme_renewals_total", "result", "success") >= 1
	})
	cert := servedCert(t, tlsLn.Addr().String(), pb.RootPool())
	if err := cert.VerifyHostname(testHost); err != nil {
		t.Fatal(err)
	}
	if last, _ := p.acme.lastType.Load().(string); last != challengeHTTP {
		t.Errorf("last challenge type %q, want http-01", last)
	}

	// Other requests on the plain listener are redirected to https; an
	// unknown token is a 404.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + httpLn.Addr().String()
	req, _ := http.NewRequest(http.MethodGet, base+"/i?e=pv", nil)
	req.Host = testHost + ":80"
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://furrow.test/i?e=pv" {
		t.Errorf("redirect: %d %q", resp.StatusCode, loc)
	}
	resp, err = noRedirect.Get(base + "/.well-known/acme-challenge/unknown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404", resp.StatusCode)
	}
}
