package app

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/furrow-io/furrow/internal/config"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nonLoopbackIP returns one of the machine's addresses that is not
// loopback (nor link-local, which needs a zone), or "" if it has none.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// Micro's API answers on the collector's port only where this machine
// alone reaches it, unless micro.enabled says true, and furrow says
// which at startup.
func TestMicroOnlyOnLoopback(t *testing.T) {
	type test struct {
		name, listen string
		enabled      config.Switch
		dial         string // host to send requests to
		served       bool
		logged       string // a line the log must have
	}
	tests := []test{
		{"loopback, auto", "127.0.0.1:0", config.Auto, "127.0.0.1", true, "level=INFO msg=\"furrow is running\""},
		{"all addresses, auto", "0.0.0.0:0", config.Auto, "127.0.0.1", false, "level=INFO msg=\"Micro's API is off: the listen address is not loopback"},
		{"all addresses, true", "0.0.0.0:0", config.On, "127.0.0.1", false, "level=WARN msg=\"Micro's API is not served: the listen address is not loopback"},
		{"loopback, false", "127.0.0.1:0", config.Off, "127.0.0.1", false, "micro=false"},
	}
	if ip := nonLoopbackIP(t); ip != "" {
		tests = append(tests, test{"the machine's address " + ip + ", auto", net.JoinHostPort(ip, "0"), config.Auto, ip, false, "Micro's API is off"})
	} else {
		t.Log("this machine has no IPv4 address other than loopback: listening on 0.0.0.0 stands for it")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir, cfg.Listen, cfg.Micro.Enabled = t.TempDir(), tt.listen, tt.enabled
			cfg.DuckDB.Enabled = false
			var logs lockedBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			_, port, _ := net.SplitHostPort(a.Addr())
			base := "http://" + net.JoinHostPort(tt.dial, port)

			get := func(path string) int {
				t.Helper()
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := get("/i?e=pv&p=web"); code != 200 {
				t.Errorf("tracker request: %d", code)
			}
			want := 404
			if tt.served {
				want = 200
			}
			for _, path := range []string{"/micro/all", "/micro/good", "/micro/reset"} {
				if code := get(path); code != want {
					t.Errorf("GET %s: %d, want %d", path, code, want)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if !strings.Contains(out, tt.logged) {
				t.Errorf("the log has no %q:\n%s", tt.logged, out)
			}
			if running := "micro=" + map[bool]string{true: "true", false: "false"}[tt.served]; !strings.Contains(out, running) {
				t.Errorf("the startup line does not say %s:\n%s", running, out)
			}
			if quiet := tt.listen == "127.0.0.1:0"; quiet && strings.Contains(out, "Micro's API") {
				t.Errorf("on loopback, the log mentions it:\n%s", out)
			}
		})
	}
}
