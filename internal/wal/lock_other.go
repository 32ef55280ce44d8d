//go:build !unix

package wal

import "os"

// lockFile does nothing: on this platform nothing stops a second log
// from opening the directory.
func lockFile(*os.File) error { return nil }
