package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snowplow/snowplow-golang-tracker/v3/pkg/storage/memory"
	sp "github.com/snowplow/snowplow-golang-tracker/v3/tracker"
)

// Identifying values the privacy test sends; none may be stored.
const (
	privUser   = "alice.privacy@example.com"
	privIP     = "198.51.100.77"
	privDUID   = "duid-privacy-4711"
	privToken  = "tok-s3cr3t-9981"
	privPage   = "https://shop.example.com/account?token=" + privToken + "&ref=mail"
	privAppID  = "privacy"
	privKeyStr = "an e2e pseudonymization key of 40 bytes!"
)

func pseudonym(v string) string {
	m := hmac.New(sha256.New, []byte(privKeyStr))
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// privacyConfig writes a key file and a configuration with
// pseudonymization on (URLs keep_path) and a short log segment age.
func privacyConfig(t *testing.T, dir string) string {
	keyFile := filepath.Join(dir, "pseudo.key")
	if err := os.WriteFile(keyFile, []byte(privKeyStr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "furrow.yaml")
	yaml := "pseudonymize:\n  enabled: true\n  key_file: " + keyFile + "\n  key_id: e2e-key-1\n  urls: keep_path\n" +
		"log:\n  max_segment_age: 1s\ncollector:\n  max_record_bytes: 65536\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// sendPrivate sends the identifying values with the Go tracker (GET and
// POST), the Node.js tracker, a request the enricher rejects and one over
// the collector's size limit; it returns how many good and bad events.
func sendPrivate(t *testing.T, f *furrow) (good, bad int) {
	t.Helper()
	for _, method := range []string{"GET", "POST"} {
		em := sp.InitEmitter(sp.RequireCollectorUri(f.addr), sp.RequireStorage(*memory.Init()),
			sp.OptionRequestType(method), sp.OptionProtocol("http"),
			sp.OptionHttpClient(&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}))
		subject := sp.InitSubject()
		subject.SetUserId(privUser)
		subject.SetIpAddress(privIP)
		subject.SetDomainUserId(privDUID)
		tr := sp.InitTracker(sp.RequireEmitter(em), sp.OptionSubject(subject), sp.OptionAppId(privAppID),
			sp.OptionPlatform("web"), sp.OptionBase64Encode(method == "GET"))
		tr.TrackPageView(sp.PageViewEvent{PageUrl: str(privPage), PageTitle: str("Account")})
		// A context of a schema that does not exist: a bad row that carries
		// every parameter.
		tr.TrackSelfDescribingEvent(sp.SelfDescribingEvent{Event: sp.InitSelfDescribingJson(
			"iglu:com.acme/missing/jsonschema/1-0-0", map[string]any{"email": privUser})})
		tr.BlockingFlush(5, 200)
		good++
		bad++
	}
	nodeDeps(t)
	out, err := exec.Command("node", "node/privacy.mjs", "http://"+f.addr, privUser, privDUID, privPage).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var res struct {
		Sent     int
		Failures []any
	}
	if err := json.Unmarshal(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:], &res); err != nil || len(res.Failures) > 0 {
		t.Fatalf("node output %s: %v", out, err)
	}
	good += res.Sent
	// An unknown event type: a schema_violations bad row with the raw
	// parameters (uid, ip, url) in it.
	q := url.Values{"e": {"zz"}, "p": {"web"}, "tv": {"raw-1"}, "aid": {privAppID}, "uid": {privUser}, "ip": {privIP}, "url": {privPage}}
	resp, err := http.Get(f.url("/i?" + q.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bad++
	// Over max_record_bytes: a size_violation bad row from the collector.
	big := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","p":"web","tv":"raw-1","uid":"` +
		privUser + `","url":"` + privPage + `","pad":"` + strings.Repeat("x", 70000) + `"}]}`
	resp, err = http.Post(f.url("/com.snowplowanalytics.snowplow/tp2"), "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	bad++
	return good, bad
}

// clearForms are the spellings in which a clear value could be stored.
func clearForms() []string {
	var out []string
	for _, v := range []string{privUser, privIP, privDUID, privToken} {
		out = append(out, v, url.QueryEscape(v))
	}
	return out
}

// filesHolding lists the files under dir whose bytes contain any form.
func filesHolding(t *testing.T, dir string, forms []string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil // a file removed while walking
		}
		for _, v := range forms {
			if bytes.Contains(b, []byte(v)) {
				rel, _ := filepath.Rel(dir, p)
				found = append(found, rel+" holds "+v)
			}
		}
		return nil
	})
	return found
}

// TestPseudonymizationEndToEnd sends known identifying values through
// real trackers with pseudonymization on and checks that, once the raw
// log is pruned, none is anywhere under the data directory (the files'
// bytes, and the warehouse by SQL), that Micro shows none, and that their
// pseudonyms are there, the same after a restart.
func TestPseudonymizationEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := privacyConfig(t, dir)
	f := start(t, dataDir, "--config", cfg, "--iglu-dir", igluCentral)
	good, bad := sendPrivate(t, f)
	c := f.waitCounts(good, bad)
	if c.Good != good || c.Bad != bad {
		t.Fatalf("counts %+v, want %d good and %d bad", c, good, bad)
	}
	forms := clearForms()
	// Micro's API obeys the same policy.
	for _, path := range []string{"/micro/good", "/micro/bad"} {
		resp, err := http.Get(f.url(path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, v := range forms {
			if bytes.Contains(body, []byte(v)) {
				t.Errorf("%s shows %q in clear", path, v)
			}
		}
		if path == "/micro/good" && !bytes.Contains(body, []byte(pseudonym(privUser))) {
			t.Errorf("%s lacks the user id's pseudonym", path)
		}
	}
	// The raw log holds clear payloads until processed and pruned: within
	// max_segment_age (1s) plus a check, with no more traffic.
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := filesHolding(t, dataDir, forms)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clear values still on disk:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.stop()
	if left := filesHolding(t, dataDir, forms); len(left) > 0 {
		t.Fatalf("clear values on disk after stop:\n%s", strings.Join(left, "\n"))
	}

	db := openDuckDB(t, dataDir)
	for _, table := range []string{"atomic.events", "atomic.bad_rows"} {
		for _, v := range forms {
			var n int
			if err := db.QueryRow("SELECT count(*) FROM "+table+" t WHERE t::VARCHAR ILIKE '%' || ? || '%'", v).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				t.Errorf("%s: %d rows hold %q", table, n, v)
			}
		}
	}
	var users, ips, duids, urls, keyIDs int
	err := db.QueryRow(`SELECT count(*) FILTER (user_id = $1), count(*) FILTER (user_ipaddress = $2), count(*) FILTER (domain_userid = $3),
		count(*) FILTER (page_url = $4), count(*) FILTER (derived_contexts::VARCHAR LIKE '%"keyId":"e2e-key-1"%') FROM atomic.events`,
		pseudonym(privUser), pseudonym(privIP), pseudonym(privDUID),
		"https://shop.example.com/account?token="+pseudonym(privToken)+"&ref="+pseudonym("mail")).Scan(&users, &ips, &duids, &urls, &keyIDs)
	if err != nil {
		t.Fatal(err)
	}
	// Page views: two from each tracker (struct events have no URL).
	if users != good || ips != 2 || duids != good || urls != 4 || keyIDs != good {
		t.Errorf("pseudonyms: user_id %d, ip %d, domain_userid %d, page_url %d, key id %d rows; want %d, 2, %d, 4, %d",
			users, ips, duids, urls, keyIDs, good, good, good)
	}
	var badWithPseudonym int
	if err := db.QueryRow("SELECT count(*) FROM atomic.bad_rows WHERE payload::VARCHAR LIKE '%' || ? || '%'", pseudonym(privUser)).Scan(&badWithPseudonym); err != nil {
		t.Fatal(err)
	}
	if badWithPseudonym < 3 { // two from the Go tracker, the unknown event type
		t.Errorf("%d bad rows carry the user id's pseudonym, want at least 3", badWithPseudonym)
	}
	// Rewritten bad rows of every kind still validate against their schemas.
	validate := badRowValidator(t)
	rows, err := db.Query("SELECT failure_type, payload::VARCHAR FROM atomic.bad_rows")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for rows.Next() {
		var kind, payload string
		if err := rows.Scan(&kind, &payload); err != nil {
			t.Fatal(err)
		}
		kinds[kind]++
		validate([]byte(payload))
	}
	rows.Close()
	if kinds["size_violation"] != 1 || kinds["schema_violations"] != 3 {
		t.Errorf("bad rows by kind: %v, want 1 size_violation and 3 schema_violations", kinds)
	}
	db.Close()

	// Same key, same pseudonyms, after a restart.
	f = start(t, dataDir, "--config", cfg, "--iglu-dir", igluCentral)
	q := url.Values{"e": {"pv"}, "p": {"web"}, "tv": {"raw-1"}, "aid": {"privacy-restart"}, "uid": {privUser}, "url": {privPage}}
	resp, err := http.Get(f.url("/i?" + q.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	f.waitCounts(1, 0)
	f.stop()
	db = openDuckDB(t, dataDir)
	var uid string
	if err := db.QueryRow("SELECT user_id FROM atomic.events WHERE app_id = 'privacy-restart'").Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if uid != pseudonym(privUser) {
		t.Errorf("after restart user_id is %s, want %s", uid, pseudonym(privUser))
	}
	// And furrow pseudonymize prints the same.
	out, err := exec.Command(binary, "pseudonymize", "--config", cfg, privUser).Output()
	if err != nil || strings.TrimSpace(string(out)) != pseudonym(privUser) {
		t.Errorf("furrow pseudonymize: %q %v", out, err)
	}
}

// A bad key stops furrow run before it starts, naming the setting.
func TestPseudonymizationBadKey(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("too short\n"), 0o600)
	for _, tc := range []struct{ name, yaml, want string }{
		{"short key file", "pseudonymize:\n  enabled: true\n  key_file: " + short + "\n", "pseudonymize.key_file: " + short + " holds 9 bytes"},
		{"missing key file", "pseudonymize:\n  enabled: true\n  key_file: " + filepath.Join(dir, "none") + "\n", "pseudonymize.key_file"},
		{"unset variable", "pseudonymize:\n  enabled: true\n  key_env: FURROW_E2E_UNSET\n", "FURROW_E2E_UNSET is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfg, []byte(tc.yaml), 0o600)
			out, err := exec.Command(binary, "run", "--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "d")).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("err %v, output %s; want %q", err, out, tc.want)
			}
		})
	}
}
