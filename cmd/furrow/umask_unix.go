//go:build unix

package main

import "syscall"

// privateUmask makes every file furrow creates, DuckDB's included,
// readable by furrow's user only, whatever umask it was started with.
func privateUmask() { syscall.Umask(0o077) }
