package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPseudonymizeCommand(t *testing.T) {
	dir := t.TempDir()
	key := "0123456789abcdef0123456789abcdef"
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	cfgFile := filepath.Join(dir, "furrow.yaml")
	os.WriteFile(cfgFile, []byte("pseudonymize:\n  enabled: true\n  key_file: "+keyFile+"\n  key_id: test-1\n"), 0o600)
	want := func(v string) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(v))
		return hex.EncodeToString(m.Sum(nil))
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"pseudonymize", "--config", cfgFile, "alice@example.com", "203.0.113.9"}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if got := out.String(); got != want("alice@example.com")+"\n"+want("203.0.113.9")+"\n" {
		t.Fatalf("got %q", got)
	}
	if !strings.Contains(errOut.String(), "key_id: test-1") {
		t.Fatalf("stderr %q", errOut.String())
	}
	// Standard input, one value per line.
	out.Reset()
	if err := runPseudonymize([]string{"--config", cfgFile}, strings.NewReader("a\nb\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != want("a")+"\n"+want("b")+"\n" {
		t.Fatalf("stdin: %q", out.String())
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"off", "listen: 127.0.0.1:0\n", "pseudonymization is off"},
		{"short key", "pseudonymize:\n  enabled: true\n  key_env: FURROW_TEST_SHORT\n", "holds 3 bytes"},
		{"missing env", "pseudonymize:\n  enabled: true\n  key_env: FURROW_TEST_UNSET_VAR\n", "FURROW_TEST_UNSET_VAR is not set"},
		{"no key", "pseudonymize:\n  enabled: true\n", "key_file or key_env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FURROW_TEST_SHORT", "abc")
			f := filepath.Join(dir, tc.name+".yaml")
			os.WriteFile(f, []byte(tc.yaml), 0o600)
			err := run(context.Background(), []string{"pseudonymize", "--config", f, "x"}, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// furrow config --validate reports pseudonymization errors with the rest,
// all at once, the key's included.
func TestValidatePseudonymize(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("short\n"), 0o644)
	f := filepath.Join(dir, "f.yaml")
	os.WriteFile(f, []byte("duckdb:\n  nice: 25\npseudonymize:\n  enabled: true\n  key_file: "+key+
		"\n  allow_extra: [user_idx]\n  json:\n    - schema: iglu:com.acme/u/jsonschema/1-*-*\n      allow: [\"$..x\"]\n"), 0o600)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"config", "--validate", f}, &out, &errOut)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"duckdb.nice: 25", `pseudonymize.allow_extra: "user_idx"`, "recursive descent", "holds 5 bytes"} {
		if !strings.Contains(errOut.String()+err.Error(), want) {
			t.Errorf("missing %q in:\n%s%v", want, errOut.String(), err)
		}
	}
}

// --validate loads the enrichment configurations as furrow run does.
func TestValidateEnrichments(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "anon_ip.json"), []byte(`{"schema":"iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1","data":{"vendor":"com.snowplowanalytics.snowplow","name":"anon_ip","enabled":true,"parameters":{"anonOctets":9}}}`), 0o600)
	f := filepath.Join(dir, "f.yaml")
	os.WriteFile(f, []byte("enrich:\n  enrichments_dir: "+dir+"\n"), 0o600)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"config", "--validate", f}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String()+err.Error(), "anon_ip.json") || !strings.Contains(errOut.String()+err.Error(), "anonOctets: must have a maximum value of 4") {
		t.Fatalf("err %v, stderr %s", err, errOut.String())
	}
}

// furrow config prints where the key is, never the key.
func TestConfigNeverPrintsKey(t *testing.T) {
	dir := t.TempDir()
	key := "a key that must never be printed, 40 bytes"
	t.Setenv("FURROW_TEST_PSEUDO_KEY", key)
	f := filepath.Join(dir, "f.yaml")
	os.WriteFile(f, []byte("pseudonymize:\n  enabled: true\n  key_env: FURROW_TEST_PSEUDO_KEY\n"), 0o600)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"config", "--config", f}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), key) || !strings.Contains(out.String(), "key_env: FURROW_TEST_PSEUDO_KEY") {
		t.Fatalf("output:\n%s", out.String())
	}
}

// --validate warns about a key file others can read, and still passes.
func TestValidateWarnsReadableKey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte(strings.Repeat("k", 32)), 0o644)
	os.Chmod(key, 0o644)
	f := filepath.Join(dir, "f.yaml")
	os.WriteFile(f, []byte("pseudonymize:\n  enabled: true\n  key_file: "+key+"\n"), 0o600)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"config", "--validate", f}, &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "warning: pseudonymize.key_file: "+key+" has mode 0644: every user can read the key") || !strings.Contains(out.String(), ": ok") {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}
