package websocket

import (
	"encoding/binary"
	"math/bits"
)

// mask XORs b in place with the masking key (RFC 6455 §5.3), starting at
// byte pos of the key, and returns the key position for the byte after b.
//
// key holds the four key bytes in little-endian order, so that after
// rotating by pos its low byte is the key byte for b[0] and a little-endian
// 64-bit load of b lines up with two copies of the key. The loop works eight
// bytes at a time (32 in the unrolled part), never byte by byte except for
// the tail.
func mask(key uint32, pos int, b []byte) int {
	if key == 0 || len(b) == 0 {
		// An all-zero key masks nothing; apache-websocket skips it too.
		return (pos + len(b)) & 3
	}
	k := bits.RotateLeft32(key, -8*(pos&3))
	k64 := uint64(k) | uint64(k)<<32
	n := len(b)
	for len(b) >= 32 {
		_ = b[31]
		binary.LittleEndian.PutUint64(b[0:], binary.LittleEndian.Uint64(b[0:])^k64)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^k64)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])^k64)
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(b[24:])^k64)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= byte(k)
		k = bits.RotateLeft32(k, -8)
	}
	return (pos + n) & 3
}
