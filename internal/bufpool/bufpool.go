// Package bufpool is the byte-buffer pool shared by the engine, the front
// doors and the back doors. One pool for all of them means a buffer a
// front door read into can be handed to the engine, and one the engine
// queued can be released by whoever wrote it, without copying.
//
// Buffers come in power-of-two size classes from 512 B to 64 MiB. The
// pools hold *[]byte so that putting a buffer back does not allocate.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minClass = 9
	maxClass = 26
)

var pools [maxClass + 1]sync.Pool

func class(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

// Get returns a buffer with length 0 and capacity at least n. Buffers over
// the largest class are allocated and never pooled.
func Get(n int) *[]byte {
	c := class(n)
	if c > maxClass {
		b := make([]byte, 0, n)
		return &b
	}
	if v := pools[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 1<<c)
	return &b
}

// Put returns b to its pool. Buffers whose capacity is not a class size
// (grown by append, or oversized) are left to the garbage collector, so
// putting back any buffer is safe. b may be nil.
func Put(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)
	if c < 1<<minClass || c&(c-1) != 0 {
		return
	}
	cl := bits.Len(uint(c)) - 1
	if cl > maxClass {
		return
	}
	*b = (*b)[:0]
	pools[cl].Put(b)
}
