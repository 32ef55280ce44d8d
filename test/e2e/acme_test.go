package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/furrow-io/furrow/internal/auth"
	"github.com/furrow-io/furrow/internal/testutil"
)

// listeningTLS is the log line of a collector served over TLS.
var listeningTLS = regexp.MustCompile(`collector=https://([0-9.:]+)`)

// acmeHost is the name furrow gets certificates for; Pebble's DNS
// (pebble-challtestsrv) resolves every name to 127.0.0.1.
const (
	acmeHost  = "furrow.test"
	adminHost = "admin.furrow.test"
)

// TestACMEEndToEnd runs `furrow run` with its collector on TLS with a
// certificate from an ACME CA (a real Pebble, which validates tls-alpn-01
// on the collector's port): a Snowplow pixel over HTTPS reaches DuckDB, the
// short-lived certificate is renewed in the background while furrow runs,
// and a restart serves the cached certificate without a new order. The
// admin listener gets its own certificate the same way, from a second
// Pebble (one Pebble validates tls-alpn-01 on one port only).
func TestACMEEndToEnd(t *testing.T) {
	collectorPort, adminPort, adminHTTPPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	// Pebble's certificates live 45 s; with renew_before 12 s (under a
	// third of the lifetime, so it is the one that counts) furrow renews
	// each about 33 s after it was issued.
	const validity, renewBefore = 45 * time.Second, 12 * time.Second
	pb := testutil.Pebble(t, testutil.PebbleOptions{TLSPort: collectorPort, Validity: validity})
	// The admin listener's CA validates HTTP-01 only (its TLS-ALPN-01
	// port is closed): furrow answers on admin.tls.acme.http_listen.
	adminPB := testutil.Pebble(t, testutil.PebbleOptions{HTTPPort: adminHTTPPort, Validity: time.Hour})
	const token = "acme-e2e-admin-token"

	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
drain_timeout: 10s
tls:
  acme:
    hosts: [%s]
    email: ops@furrow.test
    directory_url: %q
    directory_ca_file: %q
    renew_before: %s
admin:
  listen: 127.0.0.1:%d
  tls:
    acme:
      hosts: [%s]
      directory_url: %q
      directory_ca_file: %q
      http_listen: 127.0.0.1:%d
  auth:
    token_hashes: [%q]
`, collectorPort, acmeHost, pb.DirectoryURL(), pb.DirectoryCAFile(), renewBefore,
		adminPort, adminHost, adminPB.DirectoryURL(), adminPB.DirectoryCAFile(), adminHTTPPort, auth.HashToken(token))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() *furrow {
		t.Helper()
		t0 := time.Now()
		f := startRoleUntil(t, "run", listeningTLS, "--data-dir", dataDir, "--config", cfg)
		t.Logf("furrow is running after %s", time.Since(t0).Round(time.Millisecond))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("furrow's log:\n%s", f.stderr.String())
			}
		})
		return f
	}
	f := run()
	collector := net.JoinHostPort("127.0.0.1", fmt.Sprint(collectorPort))
	if f.addr != collector {
		t.Fatalf("collector at %s, want %s", f.addr, collector)
	}

	// A pixel over HTTPS, trusting only Pebble's issuing root. The client
	// offers h2; the collector (fasthttp) must settle for HTTP/1.1. The
	// first handshake may wait for the first certificate.
	client := acmeClient(pb.RootPool(), acmeHost, collector)
	var eids []string
	pixel := func() string {
		eids = append(eids, uuid.NewString())
		return "https://" + acmeHost + "/i?e=pv&p=web&tv=t&aid=acme&eid=" + eids[len(eids)-1]
	}
	u := pixel()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pixel: %s", resp.Status)
	}
	if resp.Proto != "HTTP/1.1" || resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("protocol %s (ALPN %q), want HTTP/1.1 without h2", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	if len(resp.TLS.VerifiedChains) == 0 {
		t.Fatal("no verified chain")
	}
	first := resp.TLS.PeerCertificates[0]
	if err := first.VerifyHostname(acmeHost); err != nil {
		t.Fatal(err)
	}
	if got := first.NotAfter.Sub(first.NotBefore); got > validity {
		t.Errorf("certificate lifetime %s, want at most Pebble's %s", got, validity)
	}
	t.Logf("first certificate %x: %s to %s, served over %s (ALPN %q)", first.SerialNumber,
		first.NotBefore.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly), resp.Proto, resp.TLS.NegotiatedProtocol)
	if !strings.Contains(pb.Log(), fmt.Sprintf("Issued certificate serial %x", first.SerialNumber.Bytes())) {
		t.Errorf("Pebble did not log issuing %x", first.SerialNumber)
	}

	// Micro (on the collector's port: it is loopback) saw the event.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c counts
		if err := getJSONVia(client, "https://"+acmeHost+"/micro/all", &c); err == nil && c.Good >= 1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Micro over HTTPS: %+v, %v", c, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The admin listener, with its certificate from the second Pebble.
	checkAdmin(t, adminPB.RootPool(), net.JoinHostPort("127.0.0.1", fmt.Sprint(adminPort)), token)
	// The HTTP-01 listener sends everything but challenges to https.
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/health", adminHTTPPort)); err != nil {
		t.Errorf("admin.tls.acme.http_listen: %v", err)
	} else {
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "https://") {
			t.Errorf("admin.tls.acme.http_listen: %s to %q, want 302 to https", resp.Status, loc)
		}
	}

	// Renewal in the background: new handshakes, furrow untouched, until
	// the served serial changes, which must happen before the first
	// certificate expires and not before renew_before.
	renewDue := first.NotAfter.Add(-renewBefore)
	var second *x509.Certificate
	deadline = time.Now().Add(90 * time.Second)
	for {
		c, err := handshake(pb.RootPool(), acmeHost, collector)
		if err != nil {
			t.Fatalf("handshake while waiting for the renewal: %v", err)
		}
		if c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			second = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %x after 90 s", first.SerialNumber)
		}
		time.Sleep(250 * time.Millisecond)
	}
	seen := time.Now()
	t.Logf("renewed certificate %x: %s to %s, first served at %s (renewal due %s, first expiry %s)", second.SerialNumber,
		second.NotBefore.Format(time.TimeOnly), second.NotAfter.Format(time.TimeOnly), seen.Format(time.TimeOnly),
		renewDue.Format(time.TimeOnly), first.NotAfter.Format(time.TimeOnly))
	if !seen.Before(first.NotAfter) {
		t.Errorf("renewed certificate served at %s, after the first expired at %s", seen, first.NotAfter)
	}
	if second.NotBefore.Before(renewDue.Add(-time.Second)) { // Pebble's clock is ours; second-granular
		t.Errorf("renewed at %s, before renew_before made it due at %s", second.NotBefore, renewDue)
	}
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %s, not after %s", second.NotAfter, first.NotAfter)
	}
	if !logHas(f.stderr.String(), "obtained ACME certificate", "renewal=true", "serial="+second.SerialNumber.Text(16)) {
		t.Errorf("furrow did not log the renewal of %x", second.SerialNumber)
	}
	resp, err = acmeClient(pb.RootPool(), acmeHost, collector).Get(pixel())
	if err != nil {
		t.Fatalf("pixel after the renewal: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("pixel after the renewal: %s, serial %x", resp.Status, resp.TLS.PeerCertificates[0].SerialNumber)
	}

	// A restart on the same data dir serves the cached certificate at once:
	// no order to Pebble, which issues nothing meanwhile.
	f.stop()
	checkLoaded(t, dataDir, eids)
	issued := pb.Issued()
	if issued != 2 {
		t.Errorf("Pebble issued %d certificates for the collector, want 2", issued)
	}
	if time.Until(second.NotAfter.Add(-renewBefore)) < 5*time.Second {
		t.Fatalf("too late to check the restart: the renewed certificate is due again at %s", second.NotAfter.Add(-renewBefore))
	}
	t0 := time.Now()
	f = run()
	again, err := handshake(pb.RootPool(), acmeHost, collector)
	if err != nil {
		t.Fatalf("handshake after the restart: %v", err)
	}
	t.Logf("after the restart: serving %x %s after starting furrow", again.SerialNumber, time.Since(t0).Round(time.Millisecond))
	if again.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("after the restart, serial %x, want the cached %x", again.SerialNumber, second.SerialNumber)
	}
	resp, err = acmeClient(pb.RootPool(), acmeHost, collector).Get(pixel())
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pixel after the restart: %v %v", resp, err)
	}
	resp.Body.Close()
	time.Sleep(time.Second) // an order would have been started by now
	log := f.stderr.String()
	if !logHas(log, "loaded cached ACME certificate", "host="+acmeHost) {
		t.Error("furrow did not log loading the cached certificate")
	}
	if logHas(log, "ordering ACME certificate", "host="+acmeHost) {
		t.Error("furrow ordered a certificate for the collector after the restart")
	}
	if logHas(log, "ordering ACME certificate", "host="+adminHost) {
		t.Error("furrow ordered a certificate for the admin listener after the restart")
	}
	if n := pb.Issued(); n != issued {
		t.Errorf("Pebble issued %d certificates after the restart", n-issued)
	}
	f.stop()
	checkLoaded(t, dataDir, eids)
}

// checkLoaded checks that DuckDB holds each of the pixels eids once.
func checkLoaded(t *testing.T, dataDir string, eids []string) {
	t.Helper()
	loaded := loadedEvents(t, dataDir, "acme")
	for _, id := range eids {
		if loaded[id] != 1 {
			t.Errorf("event %s loaded %d times in DuckDB, want 1", id, loaded[id])
		}
	}
	if len(loaded) != len(eids) {
		t.Errorf("DuckDB holds %d events of app acme, want %d", len(loaded), len(eids))
	}
	t.Logf("DuckDB holds the %d pixels sent over HTTPS, once each", len(eids))
}

// acmeClient is an HTTPS client that reaches host at addr, trusting roots
// only and offering h2 and http/1.1.
func acmeClient(roots *x509.CertPool, host, addr string) *http.Client {
	return &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// handshake opens a new TLS connection to addr with SNI host and returns
// the leaf it verified against roots.
func handshake(roots *x509.CertPool, host, addr string) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func getJSONVia(c *http.Client, u string, v any) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// checkAdmin calls the admin listener at addr as adminHost: its
// certificate verifies against roots, and /v1/health wants the token.
func checkAdmin(t *testing.T, roots *x509.CertPool, addr, token string) {
	t.Helper()
	c := acmeClient(roots, adminHost, addr)
	defer c.CloseIdleConnections()
	do := func(tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "https://"+adminHost+"/v1/health", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("admin listener: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := do(""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin /v1/health without a token: %s, want 401", resp.Status)
	}
	resp := do(token)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("admin /v1/health with the token: %s", resp.Status)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if err := leaf.VerifyHostname(adminHost); err != nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Errorf("admin certificate: %v", err)
	}
	t.Logf("admin listener: certificate %x for %s, %s", leaf.SerialNumber, leaf.DNSNames, resp.Proto)
}
