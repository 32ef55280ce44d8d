package files

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdk "github.com/snowplow/snowplow-golang-analytics-sdk/analytics"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
)

// enricherOutput reads the good lines and bad rows furrow's enricher
// produced for its golden tests (internal/enrich/testdata).
func enricherOutput(t testing.TB) (good, bad [][]byte) {
	t.Helper()
	files, err := filepath.Glob("../../enrich/testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no enricher golden files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range strings.Split("\n"+string(b), "\nGOOD\n")[1:] {
			block, _, _ = strings.Cut(block, "\nBAD\n")
			cols := make([]string, event.NumFields)
			for _, l := range strings.Split(block, "\n") {
				name, v, ok := strings.Cut(strings.TrimPrefix(l, "  "), " = ")
				if !ok {
					continue
				}
				i, ok := event.Index(name)
				if !ok {
					t.Fatalf("%s: column %q", f, name)
				}
				cols[i] = v
			}
			ln := []byte(strings.Join(cols, "\t"))
			if err := event.Check(ln); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			good = append(good, ln)
		}
		for _, block := range strings.Split("\n"+string(b), "\nBAD\n")[1:] {
			block, _, _ = strings.Cut(block, "\nGOOD\n")
			var c bytes.Buffer
			if err := json.Compact(&c, []byte(block)); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			bad = append(bad, c.Bytes())
		}
	}
	return good, bad
}

func TestEnricherOutput(t *testing.T) {
	good, bad := enricherOutput(t)
	if len(good) < 10 || len(bad) < 10 {
		t.Fatalf("%d good, %d bad from the golden files", len(good), len(bad))
	}
	validate := testutil.BadRowValidator(t, "../../../testdata/iglu-central")
	for _, format := range []string{FormatTSV, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			l := open(t, dir, Options{Format: format})
			if err := l.Load(ctx, loader.Batch{Start: 7, End: 42, Good: good, Bad: bad}); err != nil {
				t.Fatal(err)
			}
			nGood, nBad := 0, 0
			for _, k := range objects(t, dir) {
				if k == StateKey {
					continue
				}
				rows := lines(gunzip(t, filepath.Join(dir, k)))
				switch {
				case strings.HasPrefix(k, "good/"):
					for i, r := range rows {
						if format == FormatTSV {
							if !bytes.Equal(r, good[nGood+i]) {
								t.Fatalf("line %d changed", nGood+i)
							}
							if _, err := sdk.ParseEvent(string(r)); err != nil {
								t.Fatalf("SDK: %v", err)
							}
						} else {
							var m map[string]any
							if err := json.Unmarshal(r, &m); err != nil || len(m) != event.NumFields {
								t.Fatalf("JSON line %d: %v", i, err)
							}
						}
					}
					nGood += len(rows)
				case strings.HasPrefix(k, "bad/"):
					for _, r := range rows {
						validate(r)
						var sdj struct{ Schema string }
						json.Unmarshal(r, &sdj)
						if !strings.Contains(k, "."+badrows.Name(sdj.Schema)+"/") {
							t.Errorf("%s holds a %s", k, sdj.Schema)
						}
					}
					nBad += len(rows)
				default:
					t.Errorf("object %s", k)
				}
			}
			if nGood != len(good) || nBad != len(bad) {
				t.Fatalf("%d good, %d bad read back, want %d, %d", nGood, nBad, len(good), len(bad))
			}

			q := fmt.Sprintf(`SELECT count(*) FROM read_json_auto('%s')`, filepath.Join(dir, "good/*/*/*/*/*.json.gz"))
			if format == FormatTSV {
				q = fmt.Sprintf(`SELECT count(*) FROM read_csv('%s', delim='\t', header=false, quote='', escape='', columns={%s})`,
					filepath.Join(dir, "good/*/*/*/*/*.tsv.gz"), duckColumns())
			}
			var n int
			if err := duck(t).QueryRow(q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != len(good) {
				t.Fatalf("DuckDB reads %d events, want %d", n, len(good))
			}
		})
	}
}

func duckColumns() string {
	cols := make([]string, event.NumFields)
	for i, f := range event.Fields {
		cols[i] = fmt.Sprintf("'%s': 'VARCHAR'", f.Name)
	}
	return strings.Join(cols, ", ")
}
