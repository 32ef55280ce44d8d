//go:build !unix

package app

import (
	"net"
	"os"
)

// listenPrivate creates a Unix socket and restricts it to its owner.
func listenPrivate(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
