//go:build unix

package wal

import (
	"errors"
	"testing"
)

// One log per directory: a second Open fails while the first is open,
// and works once it is closed.
func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	if err := l.Append([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := l.Append([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, nil)
	defer l.Close()
	r, err := l.Reader("test")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 2 || string(got[0]) != "a" || string(got[1]) != "b" {
		t.Fatalf("after reopening: %q", got)
	}
}
