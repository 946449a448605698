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
	if req.SelfOrigin != "" && (!trusted || !hasForwarded(req)) {
		return req.SelfOrigin
	}
	if trusted {
		if fs, fh := forwarded(req); fs != "" || fh != "" {
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

// forwarded returns the scheme and host the client used, from the first
// element of Forwarded (RFC 7239), which the proxy closest to the client
// wrote, or else from X-Forwarded-Proto and X-Forwarded-Host.
func forwarded(req *Request) (scheme, host string) {
	if f := req.Header.Get("Forwarded"); f != "" {
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
	return first(req.Header.Get("X-Forwarded-Proto")), first(req.Header.Get("X-Forwarded-Host"))
}

func hasForwarded(req *Request) bool {
	h := req.Header
	return h.Get("Forwarded") != "" || h.Get("X-Forwarded-Proto") != "" || h.Get("X-Forwarded-Host") != ""
}
