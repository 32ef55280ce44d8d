// Package testutil holds helpers for furrow's tests that need real
// operating system resources.
package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// SkipTmpfsEnv names the environment variable that, set to 1, lets tests
// that need a tmpfs skip where none can be mounted (not root, no mount
// namespace). Unset, such a test fails: CI must run it.
const SkipTmpfsEnv = "FURROW_SKIP_TMPFS_TESTS"

// Tmpfs mounts a tmpfs of size bytes on a new temporary directory and
// unmounts it when the test ends: a small disk that a test can fill to
// see what furrow does when writes fail with ENOSPC. Mounting needs
// root (CI runs as root); elsewhere the test fails with a message saying
// so, unless SkipTmpfsEnv is set to 1.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "furrow-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		os.Remove(dir)
		if os.Getenv(SkipTmpfsEnv) == "1" {
			t.Skipf("cannot mount a tmpfs (%v: %s) and %s=1", err, out, SkipTmpfsEnv)
		}
		t.Fatalf("this test mounts a tmpfs and needs root: mount: %v: %s (set %s=1 to skip it)", err, out, SkipTmpfsEnv)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		os.Remove(dir)
	})
	return dir
}

// Fill writes a file in dir until the file system refuses with an error
// (ENOSPC on a full tmpfs) and returns the file's path, for the test to
// remove when it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "fill-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			break
		}
	}
	// The last partial block may have left a few bytes; take them too.
	for {
		if _, err := f.Write(block[:512]); err != nil {
			break
		}
	}
	return f.Name()
}
