package pii

// MD2 (RFC 1319), which the PII enrichment offers as a hash function and
// Go's standard library lacks. It is slow and broken as a cryptographic
// hash; it is here only so that configurations naming it produce the
// hashes Snowplow Enrich produces.

// md2Subst is the RFC's permutation of 0..255 built from the digits of pi.
var md2Subst = [256]byte{
	41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19,
	98, 167, 5, 243, 192, 199, 115, 140, 152, 147, 43, 217, 188, 76, 130, 202,
	30, 155, 87, 60, 253, 212, 224, 22, 103, 66, 111, 24, 138, 23, 229, 18,
	190, 78, 196, 214, 218, 158, 222, 73, 160, 251, 245, 142, 187, 47, 238, 122,
	169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16, 137, 11, 34, 95, 33,
	128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247, 151, 3,
	255, 25, 48, 179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198,
	79, 184, 56, 210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4, 241,
	69, 157, 112, 89, 100, 113, 135, 32, 134, 91, 207, 101, 230, 45, 168, 2,
	27, 96, 37, 173, 174, 176, 185, 246, 28, 70, 97, 105, 52, 64, 126, 15,
	85, 71, 163, 35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38,
	44, 83, 13, 110, 133, 40, 132, 9, 211, 223, 205, 244, 65, 129, 77, 82,
	106, 220, 55, 200, 108, 193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74,
	120, 136, 149, 139, 227, 99, 232, 109, 233, 203, 213, 254, 59, 0, 29, 57,
	242, 239, 183, 14, 102, 88, 208, 228, 166, 119, 114, 248, 235, 117, 75, 10,
	49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131, 20,
}

// md2State is the 48-byte buffer X and the running checksum C of RFC 1319
// section 3.
type md2State struct {
	x   [48]byte
	sum [16]byte
	l   byte // last checksum byte (the RFC's L)
}

// block processes one 16-byte block: it updates the checksum (step 2) and
// the digest buffer (step 4).
func (s *md2State) block(m []byte) {
	for j := 0; j < 16; j++ {
		s.sum[j] ^= md2Subst[m[j]^s.l]
		s.l = s.sum[j]
	}
	s.compress(m)
}

// compress is step 4 alone, also used for the final checksum block.
func (s *md2State) compress(m []byte) {
	for j := 0; j < 16; j++ {
		s.x[16+j] = m[j]
		s.x[32+j] = s.x[16+j] ^ s.x[j]
	}
	var t byte
	for j := 0; j < 18; j++ {
		for k := 0; k < 48; k++ {
			s.x[k] ^= md2Subst[t]
			t = s.x[k]
		}
		t += byte(j)
	}
}

// md2Sum returns the MD2 digest of data.
func md2Sum(data []byte) [16]byte {
	var s md2State
	for len(data) >= 16 {
		s.block(data[:16])
		data = data[16:]
	}
	// Step 1: pad with i bytes of value i, 1 <= i <= 16.
	var last [16]byte
	n := copy(last[:], data)
	pad := byte(16 - n)
	for i := n; i < 16; i++ {
		last[i] = pad
	}
	s.block(last[:])
	// Step 3: append the checksum.
	sum := s.sum
	s.compress(sum[:])
	var out [16]byte
	copy(out[:], s.x[:16])
	return out
}
