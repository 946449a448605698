package wire

import (
	"net"
	"testing"
)

func TestSockaddrRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		addr string
		size int
		raw  []byte // the start of the bytes, as the kernel lays them out
	}{
		{"127.0.0.1:8080", 16, []byte{2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"[::1]:443", 28, []byte{10, 0, 0x01, 0xbb, 0, 0, 0, 0}},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		b := AppendSockaddr(nil, a)
		if len(b) != tc.size || string(b[:len(tc.raw)]) != string(tc.raw) {
			t.Errorf("%s: % x", tc.addr, b)
		}
		got, n := ParseSockaddr(append(b, "rest"...))
		if n != tc.size || got.String() != a.String() {
			t.Errorf("%s: parsed %v, %d bytes", tc.addr, got, n)
		}
	}
}

func FuzzParseSockaddr(f *testing.F) {
	f.Add(AppendSockaddr(nil, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}))
	f.Add(AppendSockaddr(nil, &net.TCPAddr{IP: net.IPv6loopback, Port: 2}))
	f.Add([]byte{2, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n := ParseSockaddr(b)
		if n < 0 || n > len(b) || a == nil {
			t.Fatalf("%d of %d bytes, %v", n, len(b), a)
		}
	})
}
