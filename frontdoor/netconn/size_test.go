package netconn

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps the transport of an idle connection in the 144-byte
// size class: every parked connection keeps one. The callbacks' scratch
// (ioScratch) is borrowed while the socket has a stream, not kept.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 144 {
		t.Fatalf("conn is %d bytes, over 144", n)
	}
}
