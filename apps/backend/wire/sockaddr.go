package wire

import (
	"encoding/binary"
	"net"
	"syscall"
)

// The address bytes of a direct-mode hand-off (docs/backend-protocol.md,
// "Direct mode"): the client's address as getpeername(2) gives it on
// Linux, a struct sockaddr_in (16 bytes) as ouistiti sends it, or a
// struct sockaddr_in6 (28 bytes); the family in host byte order
// (little-endian on every platform wsgate builds for), the port in network
// byte order.

// SockaddrInLen is the size of a struct sockaddr_in, the address bytes
// for an IPv4 client and all that ouistiti sends.
const SockaddrInLen = 16

// AppendSockaddr appends a's struct sockaddr_in or sockaddr_in6 to dst.
func AppendSockaddr(dst []byte, a *net.TCPAddr) []byte {
	if ip4 := a.IP.To4(); ip4 != nil {
		dst = binary.LittleEndian.AppendUint16(dst, syscall.AF_INET)
		dst = binary.BigEndian.AppendUint16(dst, uint16(a.Port))
		dst = append(dst, ip4...)
		return append(dst, make([]byte, 8)...) // sin_zero
	}
	dst = binary.LittleEndian.AppendUint16(dst, syscall.AF_INET6)
	dst = binary.BigEndian.AppendUint16(dst, uint16(a.Port))
	dst = append(dst, 0, 0, 0, 0) // sin6_flowinfo
	dst = append(dst, a.IP.To16()...)
	return append(dst, 0, 0, 0, 0) // sin6_scope_id
}

// ParseSockaddr reads what AppendSockaddr wrote at the start of b and
// says how many bytes it took; an address it does not know takes all of b.
func ParseSockaddr(b []byte) (*net.TCPAddr, int) {
	if len(b) < 2 {
		return &net.TCPAddr{}, len(b)
	}
	switch binary.LittleEndian.Uint16(b) {
	case syscall.AF_INET:
		if len(b) >= 16 {
			return &net.TCPAddr{IP: net.IP(append([]byte(nil), b[4:8]...)), Port: int(binary.BigEndian.Uint16(b[2:]))}, 16
		}
	case syscall.AF_INET6:
		if len(b) >= 28 {
			return &net.TCPAddr{IP: net.IP(append([]byte(nil), b[8:24]...)), Port: int(binary.BigEndian.Uint16(b[2:]))}, 28
		}
	}
	return &net.TCPAddr{}, len(b)
}
