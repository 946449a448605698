package daemon

import (
	"strings"
	"testing"
	"unsafe"
)

// TestStringTable: equal strings come back as one, and the table stops
// growing at its bounds.
func TestStringTable(t *testing.T) {
	var tab stringTable
	a := tab.intern(strings.Clone("127.0.0.1:8080"))
	b := tab.intern(strings.Clone("127.0.0.1:8080"))
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("equal strings were not shared")
	}
	long := strings.Repeat("h", maxInternLen+1)
	if tab.intern(long); len(tab.m) != 1 {
		t.Fatalf("a string over %d bytes was kept", maxInternLen)
	}
	for i := range 2 * maxInterned {
		tab.intern(strings.Repeat("x", i%200) + string(rune('a'+i%26)) + strings.Repeat("y", i/200))
	}
	if len(tab.m) > maxInterned {
		t.Fatalf("%d strings in the table, bound %d", len(tab.m), maxInterned)
	}
}
