//go:build !unix

package wal

import (
	"os"
	"path/filepath"
)

// lockDir opens the lock file without locking it: on this platform
// nothing stops a second log from opening dir.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
}
