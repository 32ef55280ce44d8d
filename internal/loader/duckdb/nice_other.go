//go:build !linux

package duckdb

import "runtime"

// lockNiceThread pins the goroutine to its thread; priorities are only
// lowered on Linux.
func lockNiceThread(int) error {
	runtime.LockOSThread()
	return nil
}
