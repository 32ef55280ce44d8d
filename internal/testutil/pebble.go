package testutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Pebble runs a real ACME CA for tests: Pebble (github.com/letsencrypt/pebble)
// with pebble-challtestsrv as its DNS server, which answers 127.0.0.1 for
// every name, so Pebble's validation authority connects to 127.0.0.1 on
// PebbleOptions.TLSPort (tls-alpn-01) and HTTPPort (http-01). Challenges are
// really checked (PEBBLE_VA_ALWAYS_VALID is unset), authorizations are never
// reused, and nonces are never rejected at random.
//
// test/acme/install.sh installs both binaries; without them (in PATH,
// GOBIN or GOPATH/bin) or without Pebble's test certificates in the module
// cache, the test fails rather than skips.

// PebbleVersion is the Pebble module test/acme/install.sh installs; its test
// certificates (the HTTPS listener's and their minica root) are read from
// the module cache.
const PebbleVersion = "v2.10.3"

const pebbleModule = "github.com/letsencrypt/pebble/v2"

// PebbleOptions configures Pebble.
type PebbleOptions struct {
	// TLSPort and HTTPPort are the ports of 127.0.0.1 Pebble's validation
	// authority connects to for tls-alpn-01 and http-01 challenges (where
	// the server under test listens). Zero: a port where nothing listens,
	// so that challenge type fails.
	TLSPort, HTTPPort int
	// Validity is the lifetime of the certificates of Pebble's default
	// profile, in whole seconds (a short one makes renewal tests fast).
	// Zero: 24 hours.
	Validity time.Duration
}

// PebbleServer is a running Pebble and pebble-challtestsrv, stopped when
// the test ends.
type PebbleServer struct {
	dirURL  string
	mgmtURL string
	caFile  string
	rootPEM []byte
	roots   *x509.CertPool
	log     *syncBuffer
}

// Pebble starts pebble-challtestsrv and Pebble with a generated
// configuration and waits until the ACME directory answers.
func Pebble(t testing.TB, o PebbleOptions) *PebbleServer {
	t.Helper()
	pebbleBin := pebbleBinary(t, "pebble")
	challBin := pebbleBinary(t, "pebble-challtestsrv")
	certs := filepath.Join(goEnv(t, "GOMODCACHE"), filepath.FromSlash(pebbleModule+"@"+PebbleVersion), "test", "certs")
	caFile := filepath.Join(certs, "pebble.minica.pem")
	if _, err := os.Stat(caFile); err != nil {
		t.Fatalf("Pebble's test certificates are missing from the module cache (%v): run %s", err, PebbleInstall)
	}
	if o.TLSPort == 0 {
		o.TLSPort = freeTCPUDPPort(t)
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = freeTCPUDPPort(t)
	}
	validity := uint64(o.Validity / time.Second)
	if validity == 0 {
		validity = 24 * 3600
	}

	s := &PebbleServer{caFile: caFile, log: &syncBuffer{}}
	dnsPort := freeTCPUDPPort(t)
	startLogged(t, s.log, "pebble-challtestsrv", nil, challBin,
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-management", fmt.Sprintf("127.0.0.1:%d", freeTCPUDPPort(t)),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")

	listen, mgmt := freeTCPUDPPort(t), freeTCPUDPPort(t)
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod uint64 `json:"validityPeriod"`
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":                    filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":                     filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                       o.HTTPPort,
		"tlsPort":                        o.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]profile{
			"default": {Description: "furrow test profile", ValidityPeriod: validity},
		},
	}}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	startLogged(t, s.log, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		pebbleBin, "-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	s.dirURL = fmt.Sprintf("https://127.0.0.1:%d/dir", listen)
	s.mgmtURL = fmt.Sprintf("https://127.0.0.1:%d", mgmt)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	minica := x509.NewCertPool()
	if !minica.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", caFile)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: minica},
	}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := httpGet(client, s.dirURL)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pebble's directory %s did not answer: %v\n%s", s.dirURL, err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.rootPEM, err = httpGet(client, s.mgmtURL+"/roots/0"); err != nil {
		t.Fatal(err)
	}
	s.roots = x509.NewCertPool()
	if !s.roots.AppendCertsFromPEM(s.rootPEM) {
		t.Fatalf("no certificate in Pebble's /roots/0: %q", s.rootPEM)
	}
	return s
}

// DirectoryURL is the ACME directory, over HTTPS signed by DirectoryCAFile.
func (s *PebbleServer) DirectoryURL() string { return s.dirURL }

// DirectoryCAFile is the PEM file of the root (Pebble's minica) that signed
// the certificate of the directory's HTTPS listener: what an ACME client
// must trust to talk to Pebble.
func (s *PebbleServer) DirectoryCAFile() string { return s.caFile }

// ManagementURL is the base URL of Pebble's management API (same TLS root
// as the directory).
func (s *PebbleServer) ManagementURL() string { return s.mgmtURL }

// RootPEM is the root that issues Pebble's certificates (/roots/0 of the
// management API; Pebble makes a new one at every start).
func (s *PebbleServer) RootPEM() []byte { return bytes.Clone(s.rootPEM) }

// RootPool holds RootPEM only: what a client of a server with a Pebble
// certificate trusts.
func (s *PebbleServer) RootPool() *x509.CertPool { return s.roots.Clone() }

// Log is the output of Pebble and pebble-challtestsrv so far.
func (s *PebbleServer) Log() string { return s.log.String() }

// Issued counts the certificates Pebble has issued so far, from its log.
func (s *PebbleServer) Issued() int {
	return strings.Count(s.log.String(), "Issued certificate serial ")
}

func httpGet(client *http.Client, u string) ([]byte, error) {
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return body, err
}

// PebbleInstall is the command that installs Pebble's binaries.
const PebbleInstall = "test/acme/install.sh"

// pebbleBinary finds name (see pebbleBin) or fails the test.
func pebbleBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := pebbleBin(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pebbleBin finds name in PATH, then in GOBIN or GOPATH/bin.
func pebbleBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := goEnvVar("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(goEnvVar("GOPATH")) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s: run %s (installs Pebble %s)",
		name, strings.Join(dirs, ", "), PebbleInstall, PebbleVersion)
}

// goEnvVar is `go env key`, or the environment variable (GOPATH defaulting
// to ~/go) when the go command is not at hand.
func goEnvVar(key string) string {
	if out, err := exec.Command("go", "env", key).Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	v := os.Getenv(key)
	if v == "" && key == "GOPATH" {
		if home, err := os.UserHomeDir(); err == nil {
			v = filepath.Join(home, "go")
		}
	}
	return v
}

func goEnv(t testing.TB, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

// freeTCPUDPPort returns a port of 127.0.0.1 free for both TCP and UDP (a
// DNS server listens on both).
func freeTCPUDPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// startLogged runs a command until the test ends, its output prefixed with
// label in log, which is shown if the test fails.
func startLogged(t testing.TB, log *syncBuffer, label string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &prefixWriter{prefix: label + ": ", w: log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", label, w.own())
		}
	})
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// prefixWriter writes complete lines, each prefixed, to w, and keeps its
// own copy. exec.Cmd serializes writes when Stdout and Stderr are the same
// writer.
type prefixWriter struct {
	prefix  string
	w       io.Writer
	mu      sync.Mutex
	partial []byte
	mine    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mine.Write(b)
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(p.prefix), p.partial[:i+1]...)
		p.partial = p.partial[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (p *prefixWriter) own() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mine.String()
}
