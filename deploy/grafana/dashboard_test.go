// Package grafana holds furrow's Grafana dashboard and provisioning files.
// Its test checks the dashboard against the metrics the real binary exports.
package grafana

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

const dashboardFile = "dashboards/furrow.json"

// otherRoles lists the metric names the dashboard may query although the
// test's `furrow run` does not export them. Each must still be registered
// somewhere in furrow's Go source, and must not be exported by the test's
// run (then it belongs to the checked set, not here).
var otherRoles = map[string]string{
	// `furrow enrich` and `furrow load` with Kafka streams: the lag
	// collector asks the brokers at each scrape.
	"furrow_kafka_consumer_lag": "furrow enrich/load with Kafka",
	// A CounterVec{destination,class}: it has no series until a load or
	// open of a destination is retried.
	"furrow_destination_retries_total": "destinations: after a retried load",
	// CounterVecs{log,kind}: no series until a log is found damaged, cut or
	// missing.
	"furrow_log_damage_total":       "after log damage",
	"furrow_log_damage_bytes_total": "after log damage",
	// The network admin listener, only with admin.listen set: its bearer
	// token / JWT authentication (internal/auth) and its TLS certificates
	// (internal/tlsx; ACME with admin.tls.acme).
	"furrow_admin_auth_success_total":                 "admin.listen (internal/auth)",
	"furrow_admin_auth_failures_total":                "admin.listen (internal/auth)",
	"furrow_tls_certificate_expiry_timestamp_seconds": "admin.listen with admin.tls (internal/tlsx)",
	"furrow_tls_reload_errors_total":                  "admin.listen with admin.tls files (internal/tlsx)",
	"furrow_acme_renewals_total":                      "admin.listen with ACME (internal/tlsx)",
}

// The test's configuration: two destinations, so that the
// furrow_destination_* metrics (and furrow_duckdb_*, for the first duckdb
// destination) exist.
const runConfig = `destinations:
  - name: warehouse
    type: duckdb
  - name: local
    type: files
    path: %s
`

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Collapsed  bool        `json:"collapsed"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasource     `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
}

// queryString returns a variable's query, which Grafana stores either as a
// string or as {"query": "..."}.
func (v variable) queryString() (string, error) {
	if len(v.Query) == 0 {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %v", v.Name, err)
	}
	return o.Query, nil
}

// allPanels flattens the dashboard: top-level panels and those nested in
// collapsed rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	metricName = regexp.MustCompile(`\bfurrow_[a-z0-9_]+`)
)

// metricNames returns the furrow_ identifiers in a PromQL expression, leaving
// out string literals (label values) so they cannot pass for metrics.
func metricNames(expr string) []string {
	return metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// queriedMetrics maps each metric name the dashboard queries to where.
func queriedMetrics(t *testing.T, d dashboard) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			for _, n := range metricNames(tg.Expr) {
				used[n] = append(used[n], fmt.Sprintf("panel %q target %s", p.Title, tg.RefID))
			}
		}
	}
	for _, v := range d.Templating.List {
		q, err := v.queryString()
		if err != nil {
			t.Error(err)
		}
		for _, n := range metricNames(q + " " + v.Definition) {
			used[n] = append(used[n], fmt.Sprintf("variable %s", v.Name))
		}
	}
	return used
}

func TestDashboardStructure(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "furrow" {
		t.Errorf("uid = %q, want furrow", d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want a current one (>= 36)", d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		if _, dup := vars[v.Name]; dup {
			t.Errorf("variable %s defined twice", v.Name)
		}
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("want a datasource variable named datasource for prometheus, got %+v", v)
	}
	if v, ok := vars["instance"]; !ok {
		t.Error("no instance variable")
	} else {
		q, _ := v.queryString()
		if want := "label_values(furrow_collector_requests_total, instance)"; q != want {
			t.Errorf("instance variable query = %q, want %q", q, want)
		}
		checkDatasource(t, "variable instance", v.Datasource)
	}

	ids := map[int]string{}
	nTargets := 0
	for _, p := range allPanels(d.Panels) {
		if p.ID == 0 {
			t.Errorf("panel %q has no id", p.Title)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("row %q has targets", p.Title)
			}
			if !p.Collapsed && len(p.Panels) > 0 {
				t.Errorf("row %q is expanded but holds panels: Grafana expects them after it", p.Title)
			}
			continue
		}
		checkDatasource(t, fmt.Sprintf("panel %q", p.Title), p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			nTargets++
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
			}
			checkDatasource(t, fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Datasource)
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q target %s does not filter on $instance: %s", p.Title, tg.RefID, tg.Expr)
			}
			if strings.Contains(tg.Expr, "rate(") && !strings.Contains(tg.Expr, "[$__rate_interval]") && !strings.Contains(tg.Expr, "[$__range]") {
				t.Errorf("panel %q target %s: use [$__rate_interval] in rate()/increase(): %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	if nTargets == 0 {
		t.Error("the dashboard has no queries")
	}
}

func checkDatasource(t *testing.T, where string, ds *datasource) {
	t.Helper()
	if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
		t.Errorf("%s: datasource = %+v, want {prometheus ${datasource}}", where, ds)
	}
}

func TestMetricNames(t *testing.T) {
	cases := map[string][]string{
		`sum by (code) (rate(furrow_collector_requests_total{instance=~"$instance"}[$__rate_interval]))`: {"furrow_collector_requests_total"},
		`histogram_quantile(0.5, sum by (le) (rate(furrow_enrich_batch_seconds_bucket[5m])))`:            {"furrow_enrich_batch_seconds_bucket"},
		`furrow_component_healthy{component="furrow_not_a_metric"} == 0`:                                 {"furrow_component_healthy"},
		`time() - max(furrow_a_seconds) / furrow_b`:                                                      {"furrow_a_seconds", "furrow_b"},
		`up`: nil,
	}
	for expr, want := range cases {
		got := metricNames(expr)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestDashboardMetricsExported builds furrow, runs it, scrapes its metrics
// and checks that every metric the dashboard queries is one furrow exports.
func TestDashboardMetricsExported(t *testing.T) {
	used := queriedMetrics(t, loadDashboard(t))
	if len(used) == 0 {
		t.Fatal("the dashboard queries no furrow_ metric")
	}
	root := moduleRoot(t)

	// Which names need the run: all but the allowlisted ones. Names with a
	// histogram suffix are resolved once the types are known.
	waitFor := map[string]bool{}
	for n := range used {
		if _, ok := otherRoles[n]; !ok {
			waitFor[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")] = true
		}
	}
	types := scrapeRunningFurrow(t, root, waitFor)

	for _, n := range sortedKeys(used) {
		if reason, ok := otherRoles[n]; ok {
			t.Logf("%s: not exported by this run, allowed (%s)", n, reason)
			continue
		}
		if _, ok := types[n]; ok {
			continue
		}
		if base, ok := histogramBase(n, types); ok {
			t.Logf("%s: series of histogram %s", n, base)
			continue
		}
		t.Errorf("the dashboard queries %s (%s), which furrow does not export", n, strings.Join(used[n], ", "))
	}

	// The allowlist stays honest: each name is used, is not exported by the
	// run (else it needs no excuse), and is registered in the Go source.
	src := goSource(t, root)
	for _, n := range sortedKeys(otherRoles) {
		if _, ok := used[n]; !ok {
			t.Errorf("allowlisted %s is not queried by the dashboard: remove it from otherRoles", n)
		}
		if _, ok := types[n]; ok {
			t.Errorf("allowlisted %s is exported by `furrow run`: remove it from otherRoles", n)
		}
		if !bytes.Contains(src, []byte(`"`+n+`"`)) {
			t.Errorf("allowlisted %s (%s) is not a quoted string in furrow's Go source: a typo?", n, otherRoles[n])
		}
	}
}

// histogramBase reports whether n is a _bucket, _sum or _count series of a
// histogram (or the _sum or _count of a summary) in types.
func histogramBase(n string, types map[string]string) (string, bool) {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(n, suf)
		if !ok {
			continue
		}
		switch types[base] {
		case "histogram":
			return base, true
		case "summary":
			return base, suf != "_bucket"
		}
	}
	return "", false
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside a Go module")
	}
	return filepath.Dir(gomod)
}

// goSource returns the non-test .go files of the repository, concatenated.
func goSource(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "vendor", "testdata", ".venv":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// scrapeRunningFurrow builds and starts `furrow run`, sends pixel requests,
// and scrapes the socket's /metrics until every name in waitFor has a TYPE
// line (or a deadline passes). It returns metric family name -> type.
func scrapeRunningFurrow(t *testing.T, root string, waitFor map[string]bool) map[string]string {
	t.Helper()
	// A short directory: the socket path must fit in sun_path.
	tmp, err := os.MkdirTemp("", "fgr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })

	bin := filepath.Join(tmp, "furrow")
	start := time.Now()
	build := exec.Command("go", "build", "-o", bin, "./cmd/furrow")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/furrow: %v\n%s", err, out)
	}
	t.Logf("built furrow in %v", time.Since(start).Round(time.Millisecond))

	dataDir := filepath.Join(tmp, "d")
	cfg := filepath.Join(tmp, "furrow.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(runConfig, filepath.Join(tmp, "objects"))), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "run", "--config", cfg, "--data-dir", dataDir, "--listen", addr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		if err := <-exited; err != nil && ctx.Err() == nil {
			t.Logf("furrow exited: %v", err)
		}
		if t.Failed() {
			t.Logf("furrow's output:\n%s", logs.String())
		}
	}()

	sock := filepath.Join(dataDir, "furrow.sock")
	unix := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	web := &http.Client{Timeout: 5 * time.Second}

	// Wait for the collector, then send a few page views.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := web.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("furrow exited before listening: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("furrow did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		u := fmt.Sprintf("http://%s/i?e=pv&p=web&tv=furrow-grafana-test&aid=grafana&url=%s&eid=%s", addr, "https%3A%2F%2Fexample.com%2F", uuid(t))
		resp, err := web.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", u, resp.Status)
		}
	}

	// Destinations load within a second or two; give them ten.
	deadline = time.Now().Add(10 * time.Second)
	var types map[string]string
	for {
		types, err = scrape(unix)
		missing := 0
		for n := range waitFor {
			if _, ok := types[n]; !ok {
				missing++
			}
		}
		if err == nil && missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("scraping %s: %v", sock, err)
			}
			break // the caller reports what is missing
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("furrow exports %d metric families", len(types))
	return types
}

// scrape returns the metric families of /metrics on the socket, from the
// "# TYPE name type" lines of the text format.
func scrape(c *http.Client) (map[string]string, error) {
	resp, err := c.Get("http://furrow/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	types := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("/metrics has no TYPE lines")
	}
	return types, nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func uuid(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
