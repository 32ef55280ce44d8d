package pseudo

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// cache keeps recent pseudonyms in a direct-mapped table: a value's hash
// picks one slot, which holds the last value stored there. Lookups take
// no lock (one atomic load and a string comparison); a new value simply
// replaces what its slot held. Values repeat (user agents, user and
// session ids, URLs), so most lookups find their value.
type cache struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[entry]
}

type entry struct{ v, p string }

func newCache(entries int) *cache {
	n := 1
	for n < entries {
		n <<= 1
	}
	return &cache{seed: maphash.MakeSeed(), mask: uint64(n - 1), slots: make([]atomic.Pointer[entry], n)}
}

func (c *cache) slot(v string) *atomic.Pointer[entry] {
	return &c.slots[maphash.String(c.seed, v)&c.mask]
}

func (c *cache) get(v string) (string, bool) {
	if e := c.slot(v).Load(); e != nil && e.v == v {
		return e.p, true
	}
	return "", false
}

func (c *cache) put(v, p string) {
	// The value may be part of a larger buffer: keep a copy only.
	c.slot(v).Store(&entry{v: strings.Clone(v), p: p})
}
