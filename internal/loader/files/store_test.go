package files

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDir(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"a/b/c.gz", "one"}, {"a/b/c.gz", "two"}, {"a/d", "x"}, {"e", "y"}} {
		if err := d.Put(ctx, kv[0], strings.NewReader(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := d.Get(ctx, "a/b/c.gz"); err != nil || string(b) != "two" {
		t.Fatalf("get %q, %v: Put does not replace", b, err)
	}
	if st, err := os.Stat(filepath.Join(root, "a/b/c.gz")); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	if _, err := d.Get(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing object: %v", err)
	}
	if keys, err := d.List(ctx, "a/"); err != nil || !slices.Equal(keys, []string{"a/b/c.gz", "a/d"}) {
		t.Fatalf("list %q, %v", keys, err)
	}
	if err := d.Delete(ctx, "a/d"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "a/d"); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
	if keys, _ := d.List(ctx, ""); !slices.Equal(keys, []string{"a/b/c.gz", "e"}) {
		t.Fatalf("list %q", keys)
	}
	for _, k := range []string{"", "/abs", "a/", "a//b", "../x", "a/../../x", "./a", `a\b`, "a/" + tmpPrefix + "1"} {
		if err := d.Put(ctx, k, strings.NewReader("z")); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if _, err := OpenDir(""); err == nil {
		t.Fatal("empty path accepted")
	}
}
