// Package e2e runs the furrow binary as a user would and drives it with
// real Snowplow trackers over HTTP.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

var binary string

// igluCentral holds the Iglu Central schemas the tests use (see its README.md).
const igluCentral = "../../testdata/iglu-central"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "furrow-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "furrow")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/furrow")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building furrow:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// furrow is a running furrow process.
type furrow struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	dataDir string
	stdout  *safeBuffer
	stderr  *safeBuffer
	done    chan error
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`collector=https?://(\S+)`)

// start runs `furrow run` on a free port with dataDir and extra flags and
// waits until it listens.
func start(t *testing.T, dataDir string, args ...string) *furrow {
	t.Helper()
	return startRole(t, "run", dataDir, args...)
}

// startRole is start for another subcommand (collect, ...).
func startRole(t *testing.T, role, dataDir string, args ...string) *furrow {
	t.Helper()
	return startRoleUntil(t, role, listening, append([]string{"--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
}

// startRoleUntil starts the subcommand role with args and waits until a
// line of its log matches ready (its first group, if any, is the
// collector's address).
func startRoleUntil(t *testing.T, role string, ready *regexp.Regexp, args ...string) *furrow {
	t.Helper()
	all := append([]string{role}, args...)
	dataDir := ""
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
		}
	}
	cmd := exec.Command(binary, all...)
	f := &furrow{t: t, cmd: cmd, dataDir: dataDir, stdout: &safeBuffer{}, stderr: &safeBuffer{}, done: make(chan error, 1)}
	cmd.Stdout = f.stdout
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(f.stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- cmd.Wait(); pw.Close() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[len(m)-1]
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case f.addr = <-found:
	case err := <-f.done:
		t.Fatalf("furrow exited: %v\n%s", err, f.stderr.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("furrow did not start:\n%s", f.stderr.String())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

func (f *furrow) url(path string) string { return "http://" + f.addr + path }

// stop sends SIGTERM and waits for a clean exit.
func (f *furrow) stop() {
	f.t.Helper()
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-f.done:
		if err != nil {
			f.t.Fatalf("furrow exited with %v\n%s", err, f.stderr.String())
		}
	case <-time.After(60 * time.Second):
		f.cmd.Process.Kill()
		f.t.Fatalf("furrow did not stop\n%s", f.stderr.String())
	}
}

// kill sends SIGKILL: no chance to flush or clean up.
func (f *furrow) kill() {
	f.cmd.Process.Signal(syscall.SIGKILL)
	<-f.done
}

type counts struct{ Total, Good, Bad int }

func (f *furrow) counts() counts {
	f.t.Helper()
	var c counts
	f.getJSON("/micro/all", &c)
	return c
}

func (f *furrow) getJSON(path string, v any) {
	f.t.Helper()
	resp, err := http.Get(f.url(path))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		f.t.Fatal(err)
	}
}

func (f *furrow) postJSON(path string, body string, v any) {
	f.t.Helper()
	resp, err := http.Post(f.url(path), "application/json", strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		f.t.Fatal(err)
	}
}

// waitCounts waits until Micro has seen at least want good and bad events.
func (f *furrow) waitCounts(good, bad int) counts {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := f.counts()
		if c.Good >= good && c.Bad >= bad {
			return c
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %d good and %d bad events, have %+v\n%s", good, bad, c, f.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openDuckDB opens the warehouse of a stopped furrow read-only.
func openDuckDB(t *testing.T, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", filepath.Join(dataDir, "furrow.duckdb")+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// loadedEvents counts the rows of each event id in the warehouse of a
// stopped furrow, for the events of app id appID ("" for all).
func loadedEvents(t *testing.T, dataDir, appID string) map[string]int {
	t.Helper()
	db := openDuckDB(t, dataDir)
	defer db.Close()
	rows, err := db.Query(`SELECT event_id::VARCHAR FROM atomic.events WHERE $1 = '' OR app_id = $1`, appID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	loaded := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		loaded[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return loaded
}

// goodEvent is the part of Micro's good event the tests read.
type goodEvent struct {
	RawEvent struct {
		API        struct{ Vendor, Version string }
		Parameters map[string]*string
		Context    struct {
			IPAddress *string  `json:"ipAddress"`
			Headers   []string `json:"headers"`
			UserID    *string  `json:"userId"`
		} `json:"context"`
	} `json:"rawEvent"`
	EventType *string        `json:"eventType"`
	Schema    *string        `json:"schema"`
	Contexts  []string       `json:"contexts"`
	Event     map[string]any `json:"event"`
	TSV       string         `json:"tsv"`
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

var _ = runtime.GOOS
