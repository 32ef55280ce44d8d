package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDataDirIsPrivate runs furrow with umask 000 on a data directory
// whose files an older version left readable by everyone: everything in
// it ends up readable by furrow's user only.
func TestDataDirIsPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dataDir := filepath.Join(t.TempDir(), "data")
	for round := 0; round < 2; round++ {
		f := start(t, dataDir)
		for i := 0; i < 20; i++ {
			resp, err := http.Get(f.url("/i?e=pv&p=web&tv=e2e&aid=private&url=https%3A%2F%2Fexample.com%2F"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		f.waitCounts(20, 0)
		// The socket goes with the process: check it while furrow runs.
		if fi, err := os.Stat(filepath.Join(dataDir, "furrow.sock")); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("round %d: socket: %v, %v", round, fi.Mode(), err)
		}
		f.stop()
		n := 0
		filepath.Walk(dataDir, func(path string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("round %d: %s has mode %v: others can reach it", round, path, fi.Mode().Perm())
			}
			n++
			return nil
		})
		if n < 8 {
			t.Fatalf("only %d paths in the data directory", n)
		}
		// What an older furrow (or a careless copy) left: open to all.
		filepath.Walk(dataDir, func(path string, fi os.FileInfo, err error) error {
			if fi.IsDir() {
				os.Chmod(path, 0o777)
			} else {
				os.Chmod(path, 0o666)
			}
			return nil
		})
	}
}
