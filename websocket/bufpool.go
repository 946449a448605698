package websocket

import (
	"math/bits"
	"sync"
)

// Buffers are pooled in power-of-two size classes from 512 B to 64 MiB.
// Pools hold *[]byte so that putting a buffer back does not allocate.
const (
	minBufClass = 9
	maxBufClass = 26
)

var bufPools [maxBufClass + 1]sync.Pool

func bufClass(n int) int {
	if n <= 1<<minBufClass {
		return minBufClass
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns a buffer with length 0 and capacity at least n.
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if c > maxBufClass {
		b := make([]byte, 0, n)
		return &b
	}
	if v := bufPools[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 1<<c)
	return &b
}

// putBuf returns b to its pool. Buffers whose capacity is not a class size
// (grown by append, or oversized) are left to the garbage collector.
func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)
	if c < 1<<minBufClass || c&(c-1) != 0 {
		return
	}
	cl := bits.Len(uint(c)) - 1
	if cl > maxBufClass {
		return
	}
	*b = (*b)[:0]
	bufPools[cl].Put(b)
}

// GetBuffer and PutBuffer give transports access to the engine's pools, so
// a read buffer can be taken only while bytes are actually being read.
func GetBuffer(n int) *[]byte { return getBuf(n) }

// PutBuffer returns a buffer taken with GetBuffer.
func PutBuffer(b *[]byte) { putBuf(b) }
