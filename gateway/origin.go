package gateway

import (
	"net"
	"net/netip"
	"strings"
)

// checkOrigin applies the route's Origin policy. A request without an
// Origin is allowed: it was not made by a browser on behalf of a page. It
// returns what the Origin was compared with, for the log.
func (p *Policy) checkOrigin(origin string, req *Request) (bool, string) {
	if origin == "" || p.OriginCheck == OriginOff {
		return true, ""
	}
	if p.OriginCheck == OriginTrusted {
		for _, t := range p.TrustedOrigins {
			if origin == t {
				return true, ""
			}
		}
		return false, "the trusted list"
	}
	want := p.requestOrigin(req)
	// An exact, case-sensitive comparison, as apache-websocket's strcmp.
	return origin == want, want
}

// requestOrigin is the origin the request was made to (RFC 6454
// serialization): scheme://host with the port unless it is the scheme's
// default. Behind a trusted proxy it comes from Forwarded or X-Forwarded-*.
func (p *Policy) requestOrigin(req *Request) string {
	if p.PublicOrigin != "" {
		return strings.TrimSuffix(p.PublicOrigin, "/")
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	host := req.Host
	trusted := p.trustedPeer(req.RemoteAddr)
	if req.SelfOrigin != "" && (!trusted || !p.hasForwarded(req)) {
		return req.SelfOrigin
	}
	if trusted {
		if fs, fh := p.forwarded(req); fs != "" || fh != "" {
			if fs != "" {
				scheme = strings.ToLower(fs)
			}
			if fh != "" {
				host = fh
			}
		}
	}
	return serializeOrigin(scheme, host)
}

func serializeOrigin(scheme, hostport string) string {
	host, port := hostport, ""
	if h, pt, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, pt
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}

// trustedPeer reports whether the immediate peer is a configured proxy.
// Connections on a UNIX socket listener have no IP address.
func (p *Policy) trustedPeer(remote string) bool {
	if len(p.TrustedProxies) == 0 && !p.TrustUnixPeers {
		return false
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return p.TrustUnixPeers && (remote == "" || remote == "@" || strings.HasPrefix(remote, "/"))
	}
	addr = addr.Unmap()
	for _, pfx := range p.TrustedProxies {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// The headers a trusted proxy can say who the client is with (Policy.ClientIPHeader).
const (
	ClientIPXForwardedFor = "x-forwarded-for"
	ClientIPForwarded     = "forwarded"
	ClientIPXRealIP       = "x-real-ip"
)

// forwarded returns the scheme and host the client used, from the headers
// of the policy's ClientIPHeader family: Forwarded's first element (RFC
// 7239), which the proxy closest to the client wrote, or
// X-Forwarded-Proto and X-Forwarded-Host.
func (p *Policy) forwarded(req *Request) (scheme, host string) {
	if p.ClientIPHeader == ClientIPForwarded {
		f := req.HeaderValue("Forwarded")
		first, _, _ := strings.Cut(f, ",")
		for _, pair := range strings.Split(first, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"`)
			switch strings.ToLower(k) {
			case "proto":
				scheme = v
			case "host":
				host = v
			}
		}
		return scheme, host
	}
	first := func(v string) string {
		v, _, _ = strings.Cut(v, ",")
		return strings.TrimSpace(v)
	}
	return first(req.HeaderValue("X-Forwarded-Proto")), first(req.HeaderValue("X-Forwarded-Host"))
}

func (p *Policy) hasForwarded(req *Request) bool {
	if p.ClientIPHeader == ClientIPForwarded {
		return req.HeaderValue("Forwarded") != ""
	}
	return req.HeaderValue("X-Forwarded-Proto") != "" || req.HeaderValue("X-Forwarded-Host") != ""
}

// clientIP is the address of the client itself: the peer, or, when the
// peer is a trusted proxy, what the policy's ClientIPHeader says. For
// X-Forwarded-For and Forwarded's for=, that is the nearest address that
// is not a trusted proxy, walking from the right: each proxy appends the
// address it got the request from, so only what trusted hops appended
// counts, and addresses a client wrote itself, to the left of the first
// untrusted one, are ignored. X-Real-IP is one address, which the proxy
// sets. It returns the peer's address (or "unix" for a UNIX socket) when
// nothing better is known.
func (p *Policy) clientIP(req *Request) string {
	peer := hostOf(req.RemoteAddr)
	if !p.trustedPeer(req.RemoteAddr) {
		return peer
	}
	if p.ClientIPHeader == ClientIPXRealIP {
		if h := hostOf(strings.TrimSpace(req.HeaderValue("X-Real-Ip"))); h != "" && h != "unix" {
			return h
		}
		return peer
	}
	hops := p.forwardedFor(req)
	for i := len(hops) - 1; i >= 0; i-- {
		h := hostOf(hops[i])
		if h == "" || h == "unix" {
			break
		}
		if !p.trustedPeer(h) {
			return h
		}
	}
	return peer
}

// forwardedFor lists the client addresses the policy's header recorded,
// nearest to the client first: Forwarded's for= parameters (RFC 7239), or
// X-Forwarded-For's list.
func (p *Policy) forwardedFor(req *Request) []string {
	var out []string
	if p.ClientIPHeader == ClientIPForwarded {
		for _, line := range req.HeaderValues("Forwarded") {
			for _, elem := range strings.Split(line, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						out = append(out, strings.Trim(v, `"`))
					}
				}
			}
		}
		return out
	}
	for _, line := range req.HeaderValues("X-Forwarded-For") {
		for _, v := range strings.Split(line, ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// hostOf returns the IP of "ip", "ip:port" or "[ip]:port", or "unix" for
// a UNIX socket peer; "" when it is none of these.
func hostOf(addr string) string {
	if addr == "" || addr == "@" || strings.HasPrefix(addr, "/") {
		return "unix"
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	// Most addresses are already canonical: keep the substring of addr,
	// which the request holds anyway, not a second string per connection.
	if s := a.Unmap().String(); s != host {
		return s
	}
	return host
}
