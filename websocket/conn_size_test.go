package websocket

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps Conn within 512 bytes: every idle connection keeps
// one, and an object with pointers above 512 bytes carries an 8-byte
// allocation header, which put the 768-byte Conn in the 896-byte size
// class. Move what an idle connection does not need behind a pointer
// (see Conn.ending, Conn.r) rather than raise this.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 512 {
		t.Fatalf("Conn is %d bytes, over 512", n)
	}
}
