//go:build unix

package loader

import "syscall"

// offHeap returns an empty buffer of capacity n in memory mapped outside
// the Go heap. A batch held for seconds in the heap would count towards
// the GC's pacing, and make every cycle come sooner; its bytes hold no
// pointers, so the GC has no need to see them. Free it with freeOffHeap.
func offHeap(n int) []byte {
	if n <= 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, n)
	}
	return b[:0]
}

// freeOffHeap releases a buffer from offHeap; nothing may use it after.
func freeOffHeap(b []byte) {
	if cap(b) == 0 {
		return
	}
	// A buffer from make (Mmap failed) is not a mapping: Munmap refuses it.
	_ = syscall.Munmap(b[:cap(b)])
}
