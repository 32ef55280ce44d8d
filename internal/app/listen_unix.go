//go:build unix

package app

import (
	"net"
	"syscall"
)

// listenPrivate creates a Unix socket only its owner can connect to. The
// umask is changed for the moment of creation, so that the socket is never
// open to others; New runs before furrow creates files concurrently.
func listenPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
