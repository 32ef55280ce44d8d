//go:build unix

package app

import "syscall"

// writable tells whether this process may create entries in dir
// (access(2) with W_OK|X_OK; POSIX fixes the values). It creates
// nothing.
func writable(dir string) error {
	const wOK, xOK = 0x2, 0x1
	return syscall.Access(dir, wOK|xOK)
}
