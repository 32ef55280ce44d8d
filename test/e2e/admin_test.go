package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/furrow-io/furrow/internal/auth"
	"github.com/furrow-io/furrow/internal/testutil"
)

var adminListening = regexp.MustCompile(`msg="admin API listening" addr=https://([0-9.:]+)`)

// adminAddr waits for f's admin listener and returns its address.
func adminAddr(t *testing.T, f *furrow) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := adminListening.FindStringSubmatch(f.stderr.String()); m != nil {
			return m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no admin listener in the log:\n%s", f.stderr.String())
	return ""
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "furrow test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// issuer is a local JWKS issuer signing RS256 tokens.
type issuer struct {
	key *rsa.PrivateKey
	srv *httptest.Server
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, jwks)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// token signs claims with the issuer's key.
func (is *issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

// adminClient calls the admin listener over TLS trusting pool.
type adminClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (a adminClient) get(path, token string) (int, string, http.Header) {
	a.t.Helper()
	return a.do(http.MethodGet, path, token, "")
}

func (a adminClient) do(method, path, token, body string) (int, string, http.Header) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// socketClient is an HTTP client of furrow's local socket in dataDir.
func socketClient(dataDir string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(dataDir, "furrow.sock"))
		}}}
}

// TestAdminAPI: the admin listener over TLS behind JWTs and API tokens,
// Micro behind it, /v1/sql only on the socket, no secret in /v1/config,
// /v1/stats against DuckDB's counts, and the status page read in
// Chromium against /v1/stats.
func TestAdminAPI(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	is := newIssuer(t)
	apiToken := "furrow_e2e-admin-token"
	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	body := fmt.Sprintf(`admin:
  listen: 127.0.0.1:0
  tls: {cert_file: %q, key_file: %q}
  auth:
    jwks_url: %q
    audience: [furrow-admin]
    owners: [owner-1]
    token_hashes: [%q]
streams:
  kafka:
    sasl: {mechanism: PLAIN, username: u, password: supersecret-kafka-password}
`, certFile, keyFile, is.srv.URL, auth.HashToken(apiToken))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// The collector on every address: Micro moves to the admin listener.
	f := startRoleUntil(t, "run", listening, "--listen", "0.0.0.0:0", "--data-dir", dataDir, "--config", cfg, "--iglu-dir", igluCentral)
	defer f.stop()
	adm := adminClient{t, "https://" + adminAddr(t, f), &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}}

	now := time.Now()
	owner := is.token(t, map[string]any{"sub": "owner-1", "aud": "furrow-admin", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	stranger := is.token(t, map[string]any{"sub": "someone-else", "aud": "furrow-admin", "exp": now.Add(time.Hour).Unix()})
	expired := is.token(t, map[string]any{"sub": "owner-1", "aud": "furrow-admin", "exp": now.Add(-time.Hour).Unix()})
	for _, tt := range []struct {
		name, path, token string
		want              int
	}{
		{"healthz, no token", "/healthz", "", 200},
		{"readyz, no token", "/readyz", "", 200},
		{"health, no token", "/v1/health", "", 401},
		{"health, API token", "/v1/health", apiToken, 200},
		{"health, owner's JWT", "/v1/health", owner, 200},
		{"health, another user's JWT", "/v1/health", stranger, 403},
		{"health, expired JWT", "/v1/health", expired, 401},
		{"health, wrong API token", "/v1/health", "furrow_wrong", 401},
		{"stats", "/v1/stats?window=15m", owner, 200},
		{"stats, bad window", "/v1/stats?window=2s", owner, 400},
		{"config", "/v1/config", owner, 200},
		{"metrics", "/metrics", apiToken, 200},
		{"status page (no figures in it)", "/status", "", 200},
		{"Micro, no token", "/micro/all", "", 401},
		{"Micro, owner", "/micro/all", owner, 200},
		{"sql is not on the network", "/v1/sql", owner, 404},
	} {
		code, body, h := adm.get(tt.path, tt.token)
		if code != tt.want {
			t.Errorf("%s: GET %s: %d, want %d: %s", tt.name, tt.path, code, tt.want, body)
		}
		if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without a Bearer challenge: %q", tt.name, h.Get("WWW-Authenticate"))
		}
	}
	if code, body, _ := adm.do(http.MethodPost, "/v1/sql", owner, "SELECT 1"); code != 404 {
		t.Errorf("POST /v1/sql on the network listener: %d %s", code, body)
	}
	// Micro is not on the public collector port.
	if resp, err := http.Get(f.url("/micro/all")); err != nil || resp.StatusCode != 404 {
		t.Errorf("Micro on the collector's port: %v %v", resp, err)
	}
	_, conf, _ := adm.get("/v1/config", apiToken)
	if strings.Contains(conf, "supersecret-kafka-password") || strings.Contains(conf, auth.HashToken(apiToken)) || !strings.Contains(conf, `"listen"`) {
		t.Errorf("/v1/config shows a secret, or is not the configuration:\n%s", conf)
	}

	// Traffic: page views of two apps and events with a missing schema.
	sent := 0
	for i := range 120 {
		aid := "adm-a"
		if i%3 == 0 {
			aid = "adm-b"
		}
		if resp, err := http.Get(f.url(fmt.Sprintf("/i?e=pv&p=web&tv=js-4.1.0&aid=%s&eid=%s", aid, uuid.NewString()))); err == nil {
			resp.Body.Close()
			sent++
		}
	}
	ue := url.QueryEscape(`{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/missing/jsonschema/1-0-0","data":{}}}`)
	for range 7 {
		if resp, err := http.Get(f.url("/i?e=ue&p=web&tv=js-4.1.0&aid=adm-a&ue_pr=" + ue)); err == nil {
			resp.Body.Close()
		}
	}
	sock := socketClient(dataDir)
	query := func(q string) int {
		resp, err := sock.Post("http://furrow/v1/sql", "text/plain", strings.NewReader(q))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		n, err := strconv.Atoi(lines[len(lines)-1])
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("socket /v1/sql %q: %d %s", q, resp.StatusCode, b)
		}
		return n
	}
	var stats struct {
		Good, Bad int
		ByAppID   []struct {
			Key   string
			Count int
		} `json:"by_app_id"`
		BadByType []struct {
			Key   string
			Count int
		} `json:"bad_by_type"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, b, _ := adm.get("/v1/stats?window=1h", owner)
		json.Unmarshal([]byte(b), &stats)
		if stats.Good >= sent && stats.Bad >= 7 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	events, badRows := query("SELECT count(*) FROM atomic.events"), query("SELECT count(*) FROM atomic.bad_rows")
	t.Logf("sent %d page views and 7 bad events; /v1/stats good %d bad %d by app %v, bad by type %v; DuckDB %d events, %d bad rows",
		sent, stats.Good, stats.Bad, stats.ByAppID, stats.BadByType, events, badRows)
	if stats.Good != events || stats.Bad != badRows || events != sent {
		t.Errorf("/v1/stats counts good %d bad %d; DuckDB holds %d events and %d bad rows, for %d sent", stats.Good, stats.Bad, events, badRows, sent)
	}
	if len(stats.ByAppID) != 2 || stats.ByAppID[0].Key != "adm-a" || stats.ByAppID[0].Count != sent-40 || len(stats.BadByType) != 1 || stats.BadByType[0].Key != "schema_violations" {
		t.Errorf("/v1/stats dimensions: %v %v", stats.ByAppID, stats.BadByType)
	}
	_, health, _ := adm.get("/v1/health", owner)
	if !strings.Contains(health, `"status": "ok"`) || !strings.Contains(health, `"name": "duckdb"`) {
		t.Errorf("/v1/health:\n%s", health)
	}
	_, metrics, _ := adm.get("/metrics", owner)
	for _, want := range []string{`furrow_admin_auth_failures_total{reason="missing"}`, `furrow_admin_auth_failures_total{reason="forbidden"} 1`, `furrow_build_info{role="run"`, "furrow_tls_certificate_expiry_timestamp_seconds"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// The status page, in headless Chromium, shows /v1/stats' numbers.
	shown := statusPage(t, adm.base+"/status?refresh=1#token="+apiToken)
	_, b, _ := adm.get("/v1/stats?window=1h", owner)
	json.Unmarshal([]byte(b), &stats)
	for key, want := range map[string]int{"good-total": stats.Good, "bad-total": stats.Bad, "app:adm-a": sent - 40, "app:adm-b": 40, "bad-type:schema_violations": 7} {
		if shown[key] != strconv.Itoa(want) {
			t.Errorf("status page %s shows %q, want %d (all: %v)", key, shown[key], want, shown)
		}
	}
	if shown["status"] != "ok" {
		t.Errorf("status page status %q", shown["status"])
	}
}

// statusPage opens url in headless Chromium (test/e2e/status/shot.mjs,
// playwright-core), saves a screenshot under test/e2e/artifacts and
// returns the numbers the page shows, by data-stat name.
func statusPage(t *testing.T, url string) map[string]string {
	t.Helper()
	if _, err := os.Stat("status/node_modules/playwright-core"); err != nil {
		install := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		install.Dir = "status"
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in test/e2e/status: %v\n%s", err, out)
		}
	}
	os.MkdirAll("artifacts", 0o755)
	shot, _ := filepath.Abs(filepath.Join("artifacts", t.Name()+"-status.png"))
	cmd := exec.Command("node", "status/shot.mjs", url, shot)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status page in Chromium: %v\n%s", err, stderr.String())
	}
	shown := map[string]string{}
	if err := json.Unmarshal(out, &shown); err != nil {
		t.Fatalf("shot.mjs printed %q: %v", out, err)
	}
	t.Logf("status page screenshot: %s", shot)
	return shown
}

// TestAdminReadiness: /readyz turns 503 while a destination is down and
// while furrow drains, and 200 again in between.
func TestAdminReadiness(t *testing.T) {
	pg := testutil.Postgres(t)
	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "furrow.yaml")
	body := fmt.Sprintf("drain_timeout: 20s\ndestinations:\n  - name: duck\n    type: duckdb\n  - name: pg\n    type: postgres\n    dsn: %q\n", pg.DSN())
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f := start(t, dataDir, "--config", cfg, "--iglu-dir", igluCentral)
	sock := socketClient(dataDir)
	ready := func() (int, string) {
		resp, err := sock.Get("http://furrow/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	waitReady := func(code int, says string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var got int
		var why string
		for time.Now().Before(deadline) {
			if got, why = ready(); got == code && strings.Contains(why, says) {
				return why
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("/readyz: %d %q, want %d with %q", got, why, code, says)
		return ""
	}
	send := func() {
		if resp, err := http.Get(f.url("/i?e=pv&p=web&tv=t&aid=ready&eid=" + uuid.NewString())); err == nil {
			resp.Body.Close()
		}
	}
	waitReady(200, "ready")
	pg.Stop()
	send()
	why := waitReady(503, "destination/pg")
	t.Logf("Postgres stopped: /readyz 503 %q", why)
	pg.Start()
	send()
	waitReady(200, "ready")
	// A drain that lasts: Postgres down again with an event waiting.
	pg.Stop()
	send()
	waitReady(503, "destination/pg")
	// Asked without pause from before the signal until the socket goes.
	seen := make(chan string, 1)
	go func() {
		draining := ""
		deadline := time.Now().Add(30 * time.Second)
		for draining == "" && time.Now().Before(deadline) {
			code, why := ready()
			if code == 0 {
				if _, err := os.Stat(filepath.Join(dataDir, "furrow.sock")); err != nil {
					break // closed: furrow is gone
				}
				continue
			}
			if code == 503 && strings.Contains(why, "draining") {
				draining = why
			}
		}
		seen <- draining
	}()
	// A request still arriving holds the collector's graceful shutdown
	// (up to drain_timeout), as a load balancer's would.
	slow, err := net.Dial("tcp", strings.TrimPrefix(f.url(""), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(slow, "POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: furrow\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	time.Sleep(20 * time.Millisecond)
	f.cmd.Process.Signal(syscall.SIGTERM)
	why = <-seen
	slow.Close()
	if why == "" {
		t.Fatalf("/readyz never said draining between SIGTERM and the socket's close:\n%s", f.stderr.String())
	}
	t.Logf("after SIGTERM: /readyz 503 %q", why)
	pg.Start()
	f.stop()
}

// TestStatsAcrossKill: usage figures are counted at commit and kept in
// data_dir/stats.json, so after kill -9 and a restart /v1/stats holds no
// event twice (never more than DuckDB), keeps what was saved before the
// kill, and counts the replayed batches once.
func TestStatsAcrossKill(t *testing.T) {
	dataDir := t.TempDir()
	f := start(t, dataDir)
	sock := socketClient(dataDir)
	stats := func() int {
		resp, err := sock.Get("http://furrow/v1/stats?window=1h")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var w struct{ Good int }
		json.NewDecoder(resp.Body).Decode(&w)
		return w.Good
	}
	send := func(f *furrow, n int) {
		for range n {
			if resp, err := http.Get(f.url("/i?e=pv&p=web&tv=t&aid=stats&eid=" + uuid.NewString())); err == nil {
				resp.Body.Close()
			}
		}
	}
	send(f, 400)
	f.waitCounts(400, 0)
	time.Sleep(11 * time.Second) // a save of stats.json
	saved := stats()
	send(f, 300)
	f.kill()
	f = start(t, dataDir)
	send(f, 100)
	deadline := time.Now().Add(30 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		if got = stats(); got >= saved+100 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	got = stats()
	f.stop()
	events := len(loadedEvents(t, dataDir, "stats"))
	t.Logf("before the kill %d counted and saved; after the restart /v1/stats %d, DuckDB %d events (800 sent)", saved, got, events)
	if saved < 400 || got < saved+100 || got > events {
		t.Fatalf("stats: %d saved before kill -9, %d after; DuckDB holds %d: want saved >= 400, saved+100 <= after <= DuckDB", saved, got, events)
	}
}
