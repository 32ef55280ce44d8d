// Package pseudo pseudonymizes enriched events, bad rows and raw
// payloads: every value that is not on an allowlist is replaced by the
// lowercase hex HMAC-SHA256 of the value under a secret key (64
// characters). The same value under the same key always gives the same
// pseudonym, in whatever field it appears, so pseudonymized events still
// join and count by user; without the key, a pseudonym cannot be turned
// back into its value, nor checked against guesses.
package pseudo

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"hash"
	"sync"
)

// MinKeyBytes is the shortest key accepted: a key shorter than SHA-256's
// output would be the weakest part of the scheme.
const MinKeyBytes = 32

// Size is the length of a pseudonym.
const Size = 2 * sha256.Size

// Hasher computes pseudonyms. It is safe for concurrent use.
//
// HMAC-SHA256 (RFC 2104) hashes the key padded with 0x36 (inner) and with
// 0x5c (outer) before the message; those two blocks depend on the key
// only, so their states are computed once and restored for each value.
type Hasher struct {
	inner, outer []byte // marshalled SHA-256 states after the padded key
	pool         sync.Pool
	cache        *cache
}

type hstate struct {
	in, out hash.Hash
	sum     [sha256.Size]byte
}

// NewHasher returns a Hasher for key. cacheEntries bounds a cache of
// recent pseudonyms (values repeat: user agents, user ids, URLs); 0
// disables it. The cache holds clear values in memory, never on disk.
func NewHasher(key []byte, cacheEntries int) *Hasher {
	var ipad, opad [sha256.BlockSize]byte
	k := key
	if len(k) > sha256.BlockSize {
		s := sha256.Sum256(k)
		k = s[:]
	}
	copy(ipad[:], k)
	copy(opad[:], k)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	h := &Hasher{}
	h.inner = marshalAfter(ipad[:])
	h.outer = marshalAfter(opad[:])
	h.pool.New = func() any { return &hstate{in: sha256.New(), out: sha256.New()} }
	if cacheEntries > 0 {
		h.cache = newCache(cacheEntries)
	}
	return h
}

func marshalAfter(block []byte) []byte {
	d := sha256.New()
	d.Write(block)
	b, err := d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // crypto/sha256 always marshals
	}
	return b
}

// Append appends the pseudonym of v to dst, without the cache.
func (h *Hasher) Append(dst []byte, v string) []byte {
	s := h.pool.Get().(*hstate)
	dst = h.append(s, dst, v)
	h.pool.Put(s)
	return dst
}

func (h *Hasher) append(s *hstate, dst []byte, v string) []byte {
	s.in.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.inner)
	s.in.Write(stringBytes(v))
	sum := s.in.Sum(s.sum[:0])
	s.out.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.outer)
	s.out.Write(sum)
	sum = s.out.Sum(s.sum[:0])
	n := len(dst)
	dst = append(dst, make([]byte, Size)...)
	hex.Encode(dst[n:], sum)
	return dst
}

// String returns the pseudonym of v.
func (h *Hasher) String(v string) string {
	if h.cache != nil {
		if p, ok := h.cache.get(v); ok {
			return p
		}
	}
	var buf [Size]byte
	p := string(h.Append(buf[:0], v))
	if h.cache != nil {
		h.cache.put(v, p)
	}
	return p
}
