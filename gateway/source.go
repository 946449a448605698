package gateway

import (
	"net/netip"
	"strings"
)

// DefaultIPv6Prefix is how many leading bits of an IPv6 address name one
// source for the per-address limits: a /64 is what one subscriber or one
// host is given, and a single host can take any address in it.
const DefaultIPv6Prefix = 64

// SourceKey is the key the per-address limits count a client address
// under: an IPv4 address as it is, an IPv6 address by its leading prefix
// bits ("2001:db8:1:2::/64"), and anything else ("unix") as it is. The
// front door, which counts connections before a request, and the
// gateway, which counts WebSockets, use the same key.
func SourceKey(ip string, ipv6Prefix int) string {
	if !strings.Contains(ip, ":") {
		return ip
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	if ipv6Prefix <= 0 || ipv6Prefix >= 128 {
		return a.String()
	}
	p, err := a.Prefix(ipv6Prefix)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// ConnsFrom is how many WebSockets the source key (SourceKey) holds.
func (g *Gateway) ConnsFrom(key string) int {
	l := &g.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.byIP[key]; st != nil {
		return st.conns
	}
	return 0
}

// TrustedPeer reports whether addr (ip:port, an IP, or a UNIX socket's
// peer) is a trusted proxy of any route: a peer that carries many clients'
// connections, which the per-address limits at accept do not count as one
// source (the gateway counts its clients by the address it forwards).
func (g *Gateway) TrustedPeer(addr string) bool {
	for _, r := range g.Routes() {
		if r.Policy.trustedPeer(addr) {
			return true
		}
	}
	return false
}
