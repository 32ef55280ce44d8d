package tlsx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	acmeOK := func() *ACMEOptions {
		return &ACMEOptions{Hosts: []string{"furrow.test", "Collector.Example.COM."}, CacheDir: "/var/lib/furrow/acme"}
	}
	withACME := func(f func(*ACMEOptions)) Options {
		a := acmeOK()
		f(a)
		return Options{ACME: a}
	}
	tests := []struct {
		name string
		o    Options
		want []string // substrings of the error; none: valid
	}{
		{"files", Options{CertFile: "c.pem", KeyFile: "k.pem"}, nil},
		{"acme", Options{ACME: acmeOK()}, nil},
		{"acme full", withACME(func(a *ACMEOptions) {
			a.Email = "ops@example.com"
			a.DirectoryURL = "https://acme-staging-v02.api.letsencrypt.org/directory"
			a.DirectoryCAFile = "" // optional
			a.RenewBefore = 24 * time.Hour
		}), nil},
		{"nothing", Options{}, []string{"tls: set tls.cert_file and tls.key_file, or tls.acme"}},
		{"cert without key", Options{CertFile: "c.pem"}, []string{"tls.key_file: required with tls.cert_file"}},
		{"key without cert", Options{KeyFile: "k.pem"}, []string{"tls.cert_file: required with tls.key_file"}},
		{"files and acme", Options{CertFile: "c.pem", KeyFile: "k.pem", ACME: acmeOK()},
			[]string{"tls.acme: cannot be combined with tls.cert_file and tls.key_file"}},
		{"negative reload interval", Options{CertFile: "c.pem", KeyFile: "k.pem", ReloadInterval: -time.Second},
			[]string{"tls.reload_interval: must not be negative"}},
		{"empty acme: every problem at once", Options{ACME: &ACMEOptions{}},
			[]string{"tls.acme.hosts: required", "tls.acme.cache_dir: required"}},
		{"bad hosts", withACME(func(a *ACMEOptions) {
			a.Hosts = []string{"localhost", "*.furrow.test", "127.0.0.1", "bad_name.test", "-x.test", "a..test", "", "furrow.test", "FURROW.test"}
		}), []string{
			`tls.acme.hosts[0]: "localhost": needs at least one dot`,
			`tls.acme.hosts[1]: "*.furrow.test": wildcards`,
			`tls.acme.hosts[2]: "127.0.0.1": IP addresses`,
			`tls.acme.hosts[3]: "bad_name.test": label "bad_name"`,
			`tls.acme.hosts[4]: "-x.test": label "-x" starts or ends with a hyphen`,
			`tls.acme.hosts[5]: "a..test": label ""`,
			`tls.acme.hosts[6]: "": empty`,
			`tls.acme.hosts[8]: "FURROW.test": duplicate`,
		}},
		{"bad email", withACME(func(a *ACMEOptions) { a.Email = "Ops <ops@example.com>" }),
			[]string{`tls.acme.email: "Ops <ops@example.com>" is not a plain e-mail address`}},
		{"http directory", withACME(func(a *ACMEOptions) { a.DirectoryURL = "http://localhost:14000/dir" }),
			[]string{`tls.acme.directory_url: "http://localhost:14000/dir" is not an https URL`}},
		{"directory url garbage", withACME(func(a *ACMEOptions) { a.DirectoryURL = "https://[::1" }),
			[]string{"tls.acme.directory_url: "}},
		{"missing directory CA file", withACME(func(a *ACMEOptions) { a.DirectoryCAFile = "testdata/missing.pem" }),
			[]string{"tls.acme.directory_ca_file: open testdata/missing.pem: no such file"}},
		{"directory CA file without PEM", withACME(func(a *ACMEOptions) { a.DirectoryCAFile = "testdata/no-pem.txt" }),
			[]string{"tls.acme.directory_ca_file: testdata/no-pem.txt: no PEM certificate found"}},
		{"negative renew_before", withACME(func(a *ACMEOptions) { a.RenewBefore = -time.Hour }),
			[]string{"tls.acme.renew_before: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.want) {
				t.Errorf("%d errors, want %d: %v", n, len(tt.want), err)
			}
			// New reports the same, before touching any file or network.
			if _, nerr := New(context.Background(), tt.o); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New: %v, want %v", nerr, err)
			}
		})
	}
}

// New loads the pair at start: missing, unreadable, garbage or mismatched
// files are clear errors.
func TestNewFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, _ := selfSigned(t, "A")
	_, keyB, _ := selfSigned(t, "B")
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	cert := write("a.crt", certA)
	key := write("a.key", keyA)
	otherKey := write("b.key", keyB)
	unreadable := write("unreadable.key", keyA)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, want string
	}{
		{"missing cert", filepath.Join(dir, "none.crt"), key, "tls.cert_file: stat " + filepath.Join(dir, "none.crt") + ": no such file or directory"},
		{"missing key", cert, filepath.Join(dir, "none.key"), "tls.key_file: stat " + filepath.Join(dir, "none.key") + ": no such file or directory"},
		{"garbage cert", "testdata/not-a-cert.pem", key, "tls.cert_file testdata/not-a-cert.pem and tls.key_file " + key + ": "},
		{"mismatched pair", cert, otherKey, "private key does not match public key"},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct{ name, cert, key, want string }{"unreadable key", cert, unreadable, "tls.key_file: open " + unreadable + ": permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), Options{CertFile: tt.cert, KeyFile: tt.key})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want %q", err, tt.want)
			}
		})
	}
	p, err := New(context.Background(), Options{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPHandlerWithFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, _ := selfSigned(t, "A")
	certFile, keyFile := writePair(t, dir, certA, keyA)
	p, err := New(context.Background(), Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	h := p.HTTPHandler(nil)
	for _, tc := range []struct {
		method, host, target string
		code                 int
		loc                  string
	}{
		{http.MethodGet, "furrow.test", "/i?e=pv", http.StatusFound, "https://furrow.test/i?e=pv"},
		{http.MethodHead, "furrow.test:8080", "/", http.StatusFound, "https://furrow.test/"},
		{http.MethodPost, "furrow.test", "/com.snowplowanalytics.snowplow/tp2", http.StatusTemporaryRedirect, "https://furrow.test/com.snowplowanalytics.snowplow/tp2"},
		{http.MethodGet, "[::1]:80", "/x", http.StatusFound, "https://[::1]/x"},
		// No challenges without ACME: the path is redirected like any other.
		{http.MethodGet, "furrow.test", "/.well-known/acme-challenge/t", http.StatusFound, "https://furrow.test/.well-known/acme-challenge/t"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code || w.Header().Get("Location") != tc.loc {
			t.Errorf("%s %s%s: %d %q, want %d %q", tc.method, tc.host, tc.target, w.Code, w.Header().Get("Location"), tc.code, tc.loc)
		}
	}
	fallback := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	w := httptest.NewRecorder()
	p.HTTPHandler(fallback).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusTeapot {
		t.Errorf("fallback: %d", w.Code)
	}
}

// Two providers on one registry share the collectors instead of failing.
func TestMetricsSharedRegistry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA, _ := selfSigned(t, "A")
	certFile, keyFile := writePair(t, dir, certA, keyA)
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(context.Background(), Options{CertFile: certFile, KeyFile: keyFile, Registry: reg}); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "furrow_tls_reload_errors_total"); got != 0 {
		t.Errorf("reload errors = %v", got)
	}
}

func TestRenewAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &acmeManager{renewBefore: DefaultRenewBefore}
	for _, tc := range []struct {
		lifetime, left time.Duration
	}{
		{90 * 24 * time.Hour, 30 * 24 * time.Hour}, // Let's Encrypt classic: RenewBefore
		{6 * 24 * time.Hour, 2 * 24 * time.Hour},   // short-lived profile: lifetime/3
		{60 * time.Second, 20 * time.Second},
	} {
		leaf := certWithLifetime(now, tc.lifetime)
		if got := leaf.NotAfter.Sub(m.renewAt(leaf)); got != tc.left {
			t.Errorf("lifetime %s: renews with %s left, want %s", tc.lifetime, got, tc.left)
		}
	}
}
