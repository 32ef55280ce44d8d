package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFilesReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, a := selfSigned(t, "A")
	certB, keyB, b := selfSigned(t, "B")
	certC, keyC, c := selfSigned(t, "C")
	roots := x509.NewCertPool()
	roots.AddCert(a)
	roots.AddCert(b)
	roots.AddCert(c)

	certFile, keyFile := writePair(t, dir, certA, keyA)
	const interval = 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	p, err := New(context.Background(), Options{
		CertFile: certFile, KeyFile: keyFile, ReloadInterval: interval,
		Logger: testLogger(t), Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Proto))
	}))
	ts.EnableHTTP2 = true
	ts.TLS = p.TLSConfig()
	ts.StartTLS()
	defer ts.Close()
	addr := ts.Listener.Addr().String()

	if cfg := p.TLSConfig(); cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 2 ||
		cfg.NextProtos[0] != "h2" || cfg.NextProtos[1] != "http/1.1" {
		t.Errorf("TLSConfig: MinVersion %x, NextProtos %q", cfg.MinVersion, cfg.NextProtos)
	}
	same := func(x, y *x509.Certificate) bool { return x.SerialNumber.Cmp(y.SerialNumber) == 0 }
	if got := servedCert(t, addr, roots); !same(got, a) {
		t.Fatalf("served %q, want A", got.Subject.CommonName)
	}
	if got := metricValue(t, reg, "furrow_tls_certificate_expiry_timestamp_seconds", "name", testHost); got != float64(a.NotAfter.Unix()) {
		t.Errorf("expiry metric = %v, want %v", got, a.NotAfter.Unix())
	}

	// HTTP/2 with a client that attempts it.
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: testHost, RootCAs: roots},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("resp.Proto = %q, want HTTP/2.0", resp.Proto)
	}
	client.CloseIdleConnections()

	// Replace the pair with B: a new connection after the interval sees B.
	writePair(t, dir, certB, keyB)
	eventually(t, 5*time.Second, "cert B to be served", func() bool {
		return same(servedCert(t, addr, roots), b)
	})
	if got := metricValue(t, reg, "furrow_tls_certificate_expiry_timestamp_seconds", "name", testHost); got != float64(b.NotAfter.Unix()) {
		t.Errorf("expiry metric = %v, want B's %v", got, b.NotAfter.Unix())
	}
	if got := metricValue(t, reg, "furrow_tls_reload_errors_total"); got != 0 {
		t.Errorf("reload errors = %v, want 0", got)
	}

	// A broken pair (C's certificate with A's key) keeps B and is counted
	// once, not at every interval.
	writePair(t, dir, certC, keyA)
	for range 3 {
		time.Sleep(interval + 50*time.Millisecond)
		if got := servedCert(t, addr, roots); !same(got, b) {
			t.Fatalf("after a broken pair, served %q, want B", got.Subject.CommonName)
		}
	}
	if got := metricValue(t, reg, "furrow_tls_reload_errors_total"); got != 1 {
		t.Errorf("reload errors = %v, want 1", got)
	}

	// Garbage is counted too; then the matching key is written and C is
	// served.
	replaceFile(t, keyFile, []byte("not a key\n"))
	time.Sleep(interval + 50*time.Millisecond)
	if got := servedCert(t, addr, roots); !same(got, b) {
		t.Fatalf("after a garbage key, served %q, want B", got.Subject.CommonName)
	}
	if got := metricValue(t, reg, "furrow_tls_reload_errors_total"); got != 2 {
		t.Errorf("reload errors = %v, want 2", got)
	}
	replaceFile(t, keyFile, keyC)
	eventually(t, 5*time.Second, "cert C to be served", func() bool {
		return same(servedCert(t, addr, roots), c)
	})
}

// Handshakes racing with reloads, for the race detector.
func TestFilesConcurrentHandshakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, a := selfSigned(t, "A")
	certB, keyB, b := selfSigned(t, "B")
	roots := x509.NewCertPool()
	roots.AddCert(a)
	roots.AddCert(b)
	certFile, keyFile := writePair(t, dir, certA, keyA)
	p, err := New(context.Background(), Options{CertFile: certFile, KeyFile: keyFile, ReloadInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.TLSConfig()
	done := make(chan struct{})
	go func() { // no t.Fatal off the test goroutine
		defer close(done)
		for i := range 20 {
			c, k := certA, keyA
			if i%2 == 0 {
				c, k = certB, keyB
			}
			for f, data := range map[string][]byte{certFile: c, keyFile: k} {
				if err := os.WriteFile(f+".tmp", data, 0o600); err != nil {
					t.Error(err)
					return
				}
				if err := os.Rename(f+".tmp", f); err != nil {
					t.Error(err)
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: testHost})
		if err != nil || cert == nil || cert.Leaf == nil {
			t.Fatalf("GetCertificate: %v, %v", cert, err)
		}
	}
}
