package gateway

import (
	"net/http"
	"net/netip"
	"testing"
)

// TestClientIP: behind trusted proxies the client is what the route's one
// header says, read from the right; what a client wrote itself (any
// other header, or entries left of the first untrusted hop) is ignored.
func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.1.0.0/16")}
	for _, tc := range []struct {
		name, header, remote string
		h                    http.Header
		want                 string
	}{
		{"no proxy: the peer", "", "192.0.2.9:1000", http.Header{"X-Forwarded-For": {"203.0.113.1"}}, "192.0.2.9"},
		{"xff: the proxy's entry", "", "127.0.0.1:1000", http.Header{"X-Forwarded-For": {"203.0.113.1"}}, "203.0.113.1"},
		{"xff: forged entries left of the client", "", "127.0.0.1:1000",
			http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7"}}, "198.51.100.7"},
		{"xff: through two trusted proxies", "", "127.0.0.1:1000",
			http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7, 10.1.2.3"}}, "198.51.100.7"},
		{"xff: split over lines", "", "127.0.0.1:1000",
			http.Header{"X-Forwarded-For": {"6.6.6.6", "198.51.100.7"}}, "198.51.100.7"},
		{"xff route: a forged Forwarded is ignored", "", "127.0.0.1:1000",
			http.Header{"X-Forwarded-For": {"198.51.100.7"}, "Forwarded": {"for=10.9.9.9"}}, "198.51.100.7"},
		{"xff route: Forwarded alone is ignored", "x-forwarded-for", "127.0.0.1:1000",
			http.Header{"Forwarded": {"for=10.9.9.9"}}, "127.0.0.1"},
		{"forwarded", "forwarded", "127.0.0.1:1000",
			http.Header{"Forwarded": {`for=6.6.6.6, for="[2001:db8::7]:4711";proto=https`}}, "2001:db8::7"},
		{"forwarded route: X-Forwarded-For ignored", "forwarded", "127.0.0.1:1000",
			http.Header{"X-Forwarded-For": {"6.6.6.6"}}, "127.0.0.1"},
		{"forwarded: an obfuscated hop stops the walk", "forwarded", "127.0.0.1:1000",
			http.Header{"Forwarded": {"for=6.6.6.6, for=_hidden"}}, "127.0.0.1"},
		{"x-real-ip", "x-real-ip", "127.0.0.1:1000", http.Header{"X-Real-Ip": {"198.51.100.7"}, "X-Forwarded-For": {"6.6.6.6"}}, "198.51.100.7"},
		{"x-real-ip from an untrusted peer", "x-real-ip", "192.0.2.9:1000", http.Header{"X-Real-Ip": {"198.51.100.7"}}, "192.0.2.9"},
		{"x-real-ip missing", "x-real-ip", "127.0.0.1:1000", http.Header{}, "127.0.0.1"},
	} {
		p := &Policy{TrustedProxies: proxies, ClientIPHeader: tc.header}
		req := &Request{RemoteAddr: tc.remote}
		req.SetHeader(tc.h)
		if got := p.clientIP(req); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		prefix int
		want   string
	}{
		{"192.0.2.1", 64, "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"},
		{"::ffff:192.0.2.1", 64, "192.0.2.1"},
		{"unix", 64, "unix"},
	} {
		if got := SourceKey(tc.ip, tc.prefix); got != tc.want {
			t.Errorf("SourceKey(%s, %d) = %s, want %s", tc.ip, tc.prefix, got, tc.want)
		}
	}
}
