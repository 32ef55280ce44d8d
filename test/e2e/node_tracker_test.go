package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeDeps installs the Node.js tracker from package-lock.json once.
func nodeDeps(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is required for this test (see .ci/run)")
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "@snowplow", "node-tracker")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = "node"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
}

// TestNodeTracker drives furrow with Snowplow's Node.js tracker
// (@snowplow/node-tracker), by POST and by GET with base64 encoding, and
// with server anonymisation.
func TestNodeTracker(t *testing.T) {
	nodeDeps(t)
	f := start(t, t.TempDir(), "--iglu-dir", igluCentral)
	cmd := exec.Command("node", "send.mjs", "http://"+f.addr)
	cmd.Dir = "node"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var res struct {
		Sent     int
		Failures []any
	}
	if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if len(res.Failures) > 0 {
		t.Fatalf("tracker request failures: %v", res.Failures)
	}
	c := f.waitCounts(res.Sent, 0)
	if c.Good != res.Sent || c.Bad != 0 {
		var bad any
		f.getJSON("/micro/bad", &bad)
		t.Fatalf("counts %+v, want %d good; bad: %v", c, res.Sent, bad)
	}

	var all []goodEvent
	f.getJSON("/micro/good", &all)
	seen := map[string]map[string]bool{}
	for _, g := range all {
		app := g.Event["app_id"].(string)
		if seen[app] == nil {
			seen[app] = map[string]bool{}
		}
		seen[app][g.Event["event_name"].(string)] = true
		if g.Event["v_tracker"] == nil || !strings.HasPrefix(g.Event["v_tracker"].(string), "node-") {
			t.Fatalf("v_tracker %v", g.Event["v_tracker"])
		}
		switch app {
		case "node-post", "node-get":
			if g.Event["user_id"] != "user-42" || g.Event["domain_userid"] != "4b5c6d" {
				t.Fatalf("%s: ids %v %v", app, g.Event["user_id"], g.Event["domain_userid"])
			}
			// The Node tracker POSTs to tp2 and GETs the legacy /i pixel (tp1).
			want := map[string]string{"node-post": "tp2", "node-get": "tp1"}[app]
			if g.RawEvent.API.Version != want {
				t.Fatalf("%s: api %+v", app, g.RawEvent.API)
			}
		case "node-anon":
			if g.Event["network_userid"] != "00000000-0000-0000-0000-000000000000" || g.RawEvent.Context.IPAddress == nil || *g.RawEvent.Context.IPAddress != "unknown" {
				t.Fatalf("anonymous event kept identifiers: %v %v", g.Event["network_userid"], g.RawEvent.Context.IPAddress)
			}
		}
	}
	for _, app := range []string{"node-post", "node-get"} {
		for _, name := range []string{"page_view", "event", "link_click", "screen_view", "transaction", "transaction_item"} {
			if !seen[app][name] {
				t.Errorf("%s: no %s event (saw %v)", app, name, seen[app])
			}
		}
	}
	var sv []goodEvent
	f.postJSON("/micro/good", `{"schema":"iglu:com.snowplowanalytics.snowplow/screen_view/jsonschema/1-0-0"}`, &sv)
	if len(sv) != 2 {
		t.Fatalf("%d screen views", len(sv))
	}
}
