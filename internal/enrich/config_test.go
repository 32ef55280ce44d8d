package enrich_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/enrich"
	_ "github.com/furrow-io/furrow/internal/enrich/step/all"
	"github.com/furrow-io/furrow/internal/enrich/step/anonip"
	"github.com/furrow-io/furrow/internal/enrich/step/pii"
	"github.com/furrow-io/furrow/internal/iglu"
)

// builtinOnly resolves from the schemas built into furrow alone: loading
// enrichment configurations must not need the network.
func builtinOnly() *iglu.Resolver {
	return iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil)}})
}

const (
	anonIP = `{"schema":"iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1","data":{"name":"anon_ip","vendor":"com.snowplowanalytics.snowplow","enabled":%s,"parameters":{"anonOctets":%s}}}`
	piiCfg = `{"schema":"iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-1","data":{"vendor":"com.snowplowanalytics.snowplow.enrichments","name":"pii_enrichment_config","emitEvent":false,"enabled":true,"parameters":{"pii":[{"pojo":{"field":"user_id"}},{"json":{"field":"contexts","schemaCriterion":"iglu:com.acme/x/jsonschema/1-*-*","jsonPath":%q}}],"strategy":{"pseudonymize":{"hashFunction":"SHA-256"%s}}}}}`
)

func anon(enabled, octets string) string { return fmt.Sprintf(anonIP, enabled, octets) }
func piiJSON(path string, salt bool) string {
	s := ""
	if salt {
		s = `,"salt":"pepper123"`
	}
	return fmt.Sprintf(piiCfg, path, s)
}

func wrapper(items ...string) string {
	return `{"schema":"iglu:com.snowplowanalytics.snowplow/enrichments/jsonschema/1-0-0","data":[` + strings.Join(items, ",") + `]}`
}

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func configErrors(err error) []*enrich.ConfigError {
	if err == nil {
		return nil
	}
	var out []*enrich.ConfigError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, configErrors(e)...)
		}
		return out
	}
	var ce *enrich.ConfigError
	if errors.As(err, &ce) {
		out = append(out, ce)
	}
	return out
}

func kinds(steps []enrich.Step) string {
	var names []string
	for _, s := range steps {
		switch s.(type) {
		case *anonip.Step:
			names = append(names, "anon_ip")
		case *pii.Step:
			names = append(names, "pii")
		default:
			names = append(names, fmt.Sprintf("%T", s))
		}
	}
	return strings.Join(names, ",")
}

func TestLoadEnrichments(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		steps   string   // kinds, in order
		errs    []string // each a substring of one error, in order
		notices []string // each a substring of one notice, in order
	}{
		{
			name:  "Enrich's published examples",
			files: map[string]string{"anon_ip.json": read(t, "testdata/enrichments/anon_ip.json"), "pii.json": read(t, "testdata/enrichments/pii_enrichment_config.json"), "README.txt": "not a config"},
			steps: "anon_ip,pii",
		},
		{
			name:  "Snowplow's order, not the files'",
			files: map[string]string{"a.json": piiJSON("$.e", true), "b.json": anon("true", "2")},
			steps: "anon_ip,pii",
		},
		{
			name:  "wrapper file",
			files: map[string]string{"enrichments.json": wrapper(piiJSON("$.e", true), anon("true", "3"))},
			steps: "anon_ip,pii",
		},
		{
			name:  "bad JSON",
			files: map[string]string{"anon.json": "{\n  \"schema\": \"iglu:x\",\n  \"data\": {,}\n}", "pii.json": piiJSON("$.e", true)},
			errs:  []string{"anon.json: not valid JSON: line 3, column 12: invalid character ','"},
		},
		{
			name:  "not self-describing",
			files: map[string]string{"x.json": `{"anonOctets":1}`},
			errs:  []string{"x.json: not a self-describing JSON: no schema field"},
		},
		{
			name: "schema violations, all reported",
			files: map[string]string{
				"anon.json": anon("true", "5"),
				"pii.json":  piiJSON("$.e", false),
			},
			errs: []string{
				"anon.json: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1: does not match its schema: $.parameters.anonOctets: must have a maximum value of 4",
				"pii.json: iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-1: does not match its schema: $.parameters.strategy.pseudonymize.salt: is missing but it is required",
			},
		},
		{
			name:  "unsupported JsonPath, at startup",
			files: map[string]string{"pii.json": piiJSON("$.list[?(@.type == 'email')].value", true)},
			errs:  []string{"pii.json: iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-1: parameters.pii[1].json.jsonPath: jsonPath \"$.list[?(@.type == 'email')].value\": filter expressions"},
		},
		{
			name: "pii 1-0-0 unsupported",
			files: map[string]string{"pii.json": `{"schema":"iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/1-0-0","data":{"vendor":"com.snowplowanalytics.snowplow.enrichments","name":"pii_enrichment_config","enabled":true,
				"parameters":{"pii":[{"pojo":{"field":"user_id"}}],"strategy":{"pseudonymize":{"hashFunction":"SHA-256"}}}}}`},
			errs: []string{"pii_enrichment_config 1-0-0 is not supported: it has no salt"},
		},
		{
			name: "unknown enrichments are warnings",
			files: map[string]string{
				"acme.json":       `{"schema":"iglu:com.acme/thing/jsonschema/1-0-0","data":{"enabled":true}}`,
				"ip_lookups.json": `{"schema":"iglu:com.snowplowanalytics.snowplow/ip_lookups/jsonschema/2-0-0","data":{"name":"ip_lookups","vendor":"com.snowplowanalytics.snowplow","enabled":true,"parameters":{}}}`,
				"anon.json":       anon("true", "1"),
			},
			steps:   "anon_ip",
			notices: []string{"acme.json: iglu:com.acme/thing/jsonschema/1-0-0: unknown enrichment com.acme/thing: ignored", "ip_lookups.json: iglu:com.snowplowanalytics.snowplow/ip_lookups/jsonschema/2-0-0: this Snowplow enrichment is not implemented by furrow"},
		},
		{
			name:    "disabled",
			files:   map[string]string{"anon.json": anon("false", "1"), "pii.json": piiJSON("$.e", true)},
			steps:   "pii",
			notices: []string{"anon.json: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1: disabled, skipped"},
		},
		{
			name:  "disabled but invalid is still an error",
			files: map[string]string{"anon.json": anon("false", "0")},
			errs:  []string{"anon.json: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1: does not match its schema: $.parameters.anonOctets: must have a minimum value of 1"},
		},
		{
			name:  "wrapper item errors name the item",
			files: map[string]string{"all.json": wrapper(anon("true", "1"), anon("true", `"two"`), `{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{},"extra":1}`)},
			errs: []string{
				"all.json: iglu:com.snowplowanalytics.snowplow/enrichments/jsonschema/1-0-0: does not match its schema: $[2].extra: is not defined in the schema",
			},
		},
		{
			name:  "wrapper item invalid against its own schema",
			files: map[string]string{"all.json": wrapper(anon("true", "1"), anon("true", `"two"`))},
			errs:  []string{"all.json[1]: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1: does not match its schema: $.parameters.anonOctets: string found, number expected"},
		},
		{
			name:  "configured twice",
			files: map[string]string{"a.json": anon("true", "1"), "b.json": wrapper(anon("true", "2"))},
			errs:  []string{"b.json[0]: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1: com.snowplowanalytics.snowplow/anon_ip is configured twice (also in "},
		},
		{
			name:  "schema not found",
			files: map[string]string{"anon.json": strings.Replace(anon("true", "1"), "1-0-1", "1-0-9", 1)},
			errs:  []string{"anon.json: iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-9: cannot check the configuration: could not resolve"},
		},
		{
			name:    "no configurations",
			files:   map[string]string{"notes.md": "x"},
			notices: []string{"no enrichment configurations (*.json) in this directory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDir(t, tc.files)
			steps, notices, err := enrich.LoadEnrichments(context.Background(), dir, builtinOnly())
			errs := configErrors(err)
			if err != nil && len(errs) == 0 {
				t.Fatalf("error of another type: %v", err)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("errors: %v, want %d", err, len(tc.errs))
			}
			for i, want := range tc.errs {
				if !strings.Contains(errs[i].Error(), want) {
					t.Errorf("error %d = %q\nwant it to contain %q", i, errs[i], want)
				}
				if !strings.HasPrefix(errs[i].Source, dir) {
					t.Errorf("error %d does not name the file: %q", i, errs[i].Source)
				}
			}
			if err != nil && steps != nil {
				t.Error("steps returned with errors")
			}
			if got := kinds(steps); got != tc.steps {
				t.Errorf("steps = %s, want %s", got, tc.steps)
			}
			if len(notices) != len(tc.notices) {
				t.Fatalf("notices: %v, want %d", notices, len(tc.notices))
			}
			for i, want := range tc.notices {
				if !strings.Contains(notices[i].String(), want) {
					t.Errorf("notice %d = %q\nwant it to contain %q", i, notices[i], want)
				}
			}
		})
	}
}

func TestNoticeLevels(t *testing.T) {
	dir := writeDir(t, map[string]string{"a.json": anon("false", "1"), "b.json": `{"schema":"iglu:com.acme/thing/jsonschema/1-0-0","data":{}}`})
	_, notices, err := enrich.LoadEnrichments(context.Background(), dir, builtinOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(notices) != 2 || notices[0].Level != slog.LevelInfo || notices[1].Level != slog.LevelWarn {
		t.Errorf("notices %+v", notices)
	}
}

func TestLoadEnrichmentsMissingDir(t *testing.T) {
	_, _, err := enrich.LoadEnrichments(context.Background(), filepath.Join(t.TempDir(), "nope"), builtinOnly())
	if err == nil || !strings.Contains(err.Error(), "cannot read the enrichments directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestRegistered(t *testing.T) {
	if got := strings.Join(enrich.Registered(), " "); got != anonip.SchemaName+" "+pii.SchemaName {
		t.Errorf("Registered() = %s", got)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// LoadFile takes one file's contents, for furrow config --validate.
func TestLoadFile(t *testing.T) {
	steps, _, err := enrich.Loader{Deps: enrich.Deps{Resolver: builtinOnly()}}.LoadFile(context.Background(), "enrichments.json", []byte(wrapper(anon("true", "4"), piiJSON("$..email", true))))
	if err != nil || kinds(steps) != "anon_ip,pii" {
		t.Fatalf("steps %s, err %v", kinds(steps), err)
	}
	_, _, err = enrich.Loader{Deps: enrich.Deps{Resolver: builtinOnly()}}.LoadFile(context.Background(), "x.json", []byte(`[`))
	if err == nil || !strings.Contains(err.Error(), "enrichment config x.json: not valid JSON") {
		t.Fatalf("err = %v", err)
	}
}
