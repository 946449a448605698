package gateway

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps what the gateway holds for an idle connection small:
// its Conn in the 128-byte size class, and, for an application that does
// not keep its request, 88 bytes of the request (96 with the allocator's
// rounding) instead of 256.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 128 {
		t.Errorf("Conn is %d bytes, over 128", n)
	}
	if n := unsafe.Sizeof(keptRequest{}); n > 88 {
		t.Errorf("keptRequest is %d bytes, over 88", n)
	}
}
