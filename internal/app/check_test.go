package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/testutil"
)

const resolverConfig = `{"schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1",
 "data": {"cacheSize": 10, "repositories": [{"name": "local", "priority": 0, "connection": {"embedded": {"path": "%s"}}}]}}`

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, "schemas"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	resolver := filepath.Join(dir, "resolver.json")
	if err := os.WriteFile(resolver, []byte(strings.Replace(resolverConfig, "%s", repo, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	badResolver := filepath.Join(dir, "bad-resolver.json")
	if err := os.WriteFile(badResolver, []byte(strings.Replace(resolverConfig, "%s", filepath.Join(dir, "nowhere"), 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		set  func(c *config.Config)
		want []string // the errors, in order; none for a good configuration
	}{
		{"defaults in a new directory", func(c *config.Config) {}, nil},
		{"a data_dir several levels down", func(c *config.Config) { c.DataDir = filepath.Join(dir, "a", "b", "c") }, nil},
		{"an existing data_dir", func(c *config.Config) { c.DataDir = dir }, nil},
		{"a resolver", func(c *config.Config) { c.Enrich.Resolver = resolver }, nil},
		{"iglu_dirs", func(c *config.Config) { c.Enrich.IgluDirs = []string{repo, repo} }, nil},
		{"a duckdb.path elsewhere", func(c *config.Config) { c.DuckDB.Path = filepath.Join(dir, "w", "events.duckdb") }, nil},
		{"Validate's errors come first", func(c *config.Config) {
			c.DuckDB.Nice = 25
			c.Enrich.IgluDirs = []string{filepath.Join(dir, "nowhere")}
		}, []string{
			"duckdb.nice: 25 is not between 0 and 19",
			`enrich.iglu_dirs[0]: iglu repository "` + filepath.Join(dir, "nowhere") + `": ` + filepath.Join(dir, "nowhere") + " has no schemas/ directory",
		}},
		{"a missing resolver", func(c *config.Config) { c.Enrich.Resolver = filepath.Join(dir, "missing.json") }, []string{
			"enrich.resolver: open " + filepath.Join(dir, "missing.json") + ": no such file or directory",
		}},
		{"a resolver that is not JSON", func(c *config.Config) { c.Enrich.Resolver = file }, []string{
			"enrich.resolver: " + file + ": resolver config: EOF",
		}},
		{"a resolver whose repository is missing", func(c *config.Config) { c.Enrich.Resolver = badResolver }, []string{
			"enrich.resolver: " + badResolver + `: iglu repository "local": ` + filepath.Join(dir, "nowhere") + " has no schemas/ directory",
		}},
		{"every missing iglu_dir", func(c *config.Config) { c.Enrich.IgluDirs = []string{dir, repo, file} }, []string{
			`enrich.iglu_dirs[0]: iglu repository "` + dir + `": ` + dir + " has no schemas/ directory",
			`enrich.iglu_dirs[2]: iglu repository "` + file + `": ` + file + " has no schemas/ directory",
		}},
		{"a data_dir that is a file", func(c *config.Config) { c.DataDir = file }, []string{
			"data_dir: " + file + " is not a directory",
		}},
		{"a data_dir under a file", func(c *config.Config) { c.DataDir = filepath.Join(file, "data") }, []string{
			"data_dir: cannot create " + filepath.Join(file, "data") + ": " + file + " is not a directory",
		}},
		{"a duckdb.path that is a directory", func(c *config.Config) { c.DuckDB.Path = dir }, []string{
			"duckdb.path: " + dir + " is a directory, not a DuckDB file",
		}},
		{"a duckdb.path under a file", func(c *config.Config) { c.DuckDB.Path = filepath.Join(file, "x.duckdb") }, []string{
			"duckdb.path: " + file + " is not a directory",
		}},
		{"duckdb.path is not checked with DuckDB off", func(c *config.Config) { c.DuckDB.Path, c.DuckDB.Enabled = dir, false }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			c.DataDir = filepath.Join(t.TempDir(), "data")
			tt.set(&c)
			err := Check(c)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Check:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Check changes nothing: the data directory is not created.
func TestCheckCreatesNothing(t *testing.T) {
	c := config.Default()
	c.DataDir = filepath.Join(t.TempDir(), "a", "data")
	c.DuckDB.Path = filepath.Join(t.TempDir(), "w", "x.duckdb")
	if err := Check(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(c.DataDir), filepath.Dir(c.DuckDB.Path)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it not to exist", p, err)
		}
	}
}

// New stops at Check's errors, before it creates anything.
func TestNewChecksFirst(t *testing.T) {
	c := config.Default()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.Listen = "127.0.0.1:0"
	c.Enrich.Resolver = filepath.Join(t.TempDir(), "missing.json")
	_, err := New(context.Background(), c, slog.New(slog.DiscardHandler))
	if err == nil || err.Error() != Check(c).Error() {
		t.Errorf("New: %v, want Check's error %v", err, Check(c))
	}
	if _, err := os.Stat(c.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New created the data directory before it gave up: %v", err)
	}
}

// A directory furrow cannot write in: mode 0500, or for root, who may
// write in any directory, a read-only tmpfs.
func TestCheckUnwritable(t *testing.T) {
	ro := filepath.Join(t.TempDir(), "ro")
	if os.Geteuid() == 0 {
		ro = testutil.Tmpfs(t, 1<<20)
		if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
			t.Fatalf("remount read-only: %v: %s", err, out)
		}
	} else if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.DataDir = filepath.Join(ro, "data")
	if err := Check(c); err == nil || !strings.Contains(err.Error(), "data_dir: cannot create "+c.DataDir+": cannot write in "+ro) {
		t.Errorf("Check: %v", err)
	}
}

// A files destination whose path is a file is refused; one duckdb
// destination is loaded where it says.
func TestCheckDestinations(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f.yaml")
	os.WriteFile(filepath.Join(dir, "lake"), nil, 0o600)
	os.WriteFile(f, []byte("data_dir: "+dir+"/data\ndestinations:\n  - name: wh\n    type: duckdb\n    path: "+dir+"/wh.duckdb\n  - name: lake\n    type: files\n    path: "+dir+"/lake\n"), 0o600)
	c, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(c); err == nil || !strings.Contains(err.Error(), `destinations[1] (name "lake").path: `+dir+`/lake is not a directory`) {
		t.Fatalf("Check: %v", err)
	}
	os.WriteFile(f, []byte("data_dir: "+dir+"/data\nlisten: 127.0.0.1:0\ndestinations:\n  - name: wh\n    type: duckdb\n    path: "+dir+"/wh.duckdb\n"), 0o600)
	if c, err = config.Load(f); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.closeAll(context.Background())
	if _, err := os.Stat(filepath.Join(dir, "wh.duckdb")); err != nil {
		t.Fatalf("the duckdb destination's file: %v", err)
	}
}
