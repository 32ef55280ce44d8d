package duckdb

import (
	"runtime"
	"syscall"
)

// lockNiceThread pins the calling goroutine to its OS thread and lowers
// that thread's scheduling priority. DuckDB runs queries on the calling
// thread (with one DuckDB thread), so loading then yields the CPU to the
// collector and the enricher under load; the durable log holds what waits.
func lockNiceThread(nice int) error {
	runtime.LockOSThread()
	if nice == 0 {
		return nil
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
