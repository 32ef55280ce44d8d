package testutil

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestTmpfsFillAndFree(t *testing.T) {
	dir := Tmpfs(t, 1<<20)
	fill := Fill(t, dir)
	err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 8192), 0o600)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full tmpfs: %v, want ENOSPC", err)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), make([]byte, 8192), 0o600); err != nil {
		t.Fatalf("write after freeing space: %v", err)
	}
}
