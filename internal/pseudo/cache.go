package pseudo

import (
	"hash/maphash"
	"strings"
	"sync"
)

// cache keeps recent pseudonyms, in shards with a lock each. A shard holds
// two generations: lookups that hit the old one move the entry to the
// new; when the new one is full it becomes the old one and the oldest
// entries go, so what is used stays.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]shard
}

const cacheShards = 32

type shard struct {
	mu        sync.Mutex
	cur, prev map[string]string
	max       int
}

func newCache(entries int) *cache {
	c := &cache{seed: maphash.MakeSeed()}
	per := max(entries/cacheShards/2, 1)
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].cur = make(map[string]string, per)
	}
	return c
}

func (c *cache) shard(v string) *shard {
	return &c.shards[maphash.String(c.seed, v)%cacheShards]
}

func (c *cache) get(v string) (string, bool) {
	s := c.shard(v)
	s.mu.Lock()
	p, ok := s.cur[v]
	if !ok {
		if p, ok = s.prev[v]; ok {
			s.add(v, p)
		}
	}
	s.mu.Unlock()
	return p, ok
}

func (c *cache) put(v, p string) {
	s := c.shard(v)
	s.mu.Lock()
	// The value may be part of a larger buffer: keep a copy only.
	s.add(strings.Clone(v), p)
	s.mu.Unlock()
}

func (s *shard) add(v, p string) {
	if len(s.cur) >= s.max {
		s.prev = s.cur
		s.cur = make(map[string]string, s.max)
	}
	s.cur[v] = p
}
