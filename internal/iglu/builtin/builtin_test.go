package builtin_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/iglu/builtin"
)

// TestSchemasCompile checks that every built-in schema is where its self
// key says and compiles.
func TestSchemasCompile(t *testing.T) {
	n := 0
	err := fs.WalkDir(builtin.FS, "schemas", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		t.Run(path, func(t *testing.T) {
			key, err := iglu.ParseSchemaPath(strings.TrimPrefix(path, "schemas/"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := fs.ReadFile(builtin.FS, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := iglu.CompileSchema(key, raw, nil); err != nil {
				t.Fatal(err)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 17 {
		t.Fatalf("only %d schemas", n)
	}
}
