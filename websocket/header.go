package websocket

import "encoding/binary"

// Frame layout limits (RFC 6455 §5.2).
const (
	// maxHeaderSize is 2 fixed bytes, 8 bytes of extended length and a
	// 4-byte masking key.
	maxHeaderSize = 14
	// maxControlPayload is the largest payload a control frame may carry
	// (RFC 6455 §5.5).
	maxControlPayload = 125
)

// Bits of the first two header bytes.
const (
	bitFIN  = 0x80
	bitRSV1 = 0x40
	bitRSV2 = 0x20
	bitRSV3 = 0x10
	bitMask = 0x80
)

// headerSize returns the size of a header whose first two bytes are b0 and
// b1, so the parser knows how many bytes to wait for before decoding.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&bitMask != 0 {
		n += 4
	}
	return n
}

// frameHeader is a decoded frame header.
type frameHeader struct {
	fin    bool
	rsv    byte // the three RSV bits, still in place (0x70 mask)
	op     opcode
	masked bool
	// length is the declared payload length. A 64-bit length with its most
	// significant bit set is reported as -1, which RFC 6455 §5.2 forbids.
	length int64
	key    uint32 // masking key, little-endian so mask() can use it directly
}

// decodeHeader decodes a complete header; b must hold exactly
// headerSize(b[1]) bytes.
func decodeHeader(b []byte) frameHeader {
	h := frameHeader{
		fin:    b[0]&bitFIN != 0,
		rsv:    b[0] & (bitRSV1 | bitRSV2 | bitRSV3),
		op:     opcode(b[0] & 0x0F),
		masked: b[1]&bitMask != 0,
	}
	i := 2
	switch l := b[1] & 0x7F; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		i = 4
	case 127:
		v := binary.BigEndian.Uint64(b[2:])
		if v>>63 != 0 {
			h.length = -1
		} else {
			h.length = int64(v)
		}
		i = 10
	default:
		h.length = int64(l)
	}
	if h.masked {
		h.key = binary.LittleEndian.Uint32(b[i:])
	}
	return h
}

// putHeader writes an unmasked server frame header for a payload of n bytes
// into b and returns its size. Servers never mask (RFC 6455 §5.1).
func putHeader(b *[maxHeaderSize]byte, fin bool, rsv byte, op opcode, n int) int {
	b0 := byte(op) | rsv
	if fin {
		b0 |= bitFIN
	}
	b[0] = b0
	switch {
	case n <= 125:
		b[1] = byte(n)
		return 2
	case n <= 0xFFFF:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		return 4
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
		return 10
	}
}

// frameSize is the wire size of an unmasked frame carrying n payload bytes.
func frameSize(n int) int {
	switch {
	case n <= 125:
		return 2 + n
	case n <= 0xFFFF:
		return 4 + n
	}
	return 10 + n
}
