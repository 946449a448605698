package daemon

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/wsgate/wsgate/frontdoor/tlsrec"
	"github.com/wsgate/wsgate/gateway"
)

// The front door's record of the connections net/http holds, each with
// its source: the client address, by gateway.SourceKey (an IPv6 client
// counts by its /64). One source at its limits must not keep others out,
// so every limit that a single host could fill alone is counted per
// source too, at accept, before a byte of a request is read:
//
//   - pending handshakes: connections that have not sent a whole request
//     (MaxPendingHandshakesPerIP of the global MaxPendingHandshakes);
//   - open connections: plain HTTP ones here, plus the source's
//     WebSockets, which the gateway counts (MaxConnectionsPerIP);
//   - idle keep-alive connections (MaxIdleHTTPPerIP): past it, the one
//     going idle is closed.
//
// A trusted proxy of any route is not one source: it carries many
// clients, which the gateway counts by the address it forwards. A UNIX
// socket's peers are local programs (a reverse proxy), and not counted
// per source either.
type frontConns struct {
	mu       sync.Mutex
	byAddr   map[connAddrs]*frontConn
	bySource map[string]*sourceCount
	open     int // connections net/http holds (not hijacked)
	pending  int // of those, the ones that have not sent a whole request
}

// connAddrs names a connection by its two addresses: what the guard
// accepts and what net/http reports states for (a *tls.Conn around it
// for TLS) are not the same value, but have the same addresses.
type connAddrs struct{ local, remote string }

func addrsOf(c net.Conn) connAddrs {
	return connAddrs{c.LocalAddr().String(), c.RemoteAddr().String()}
}

// frontConn is one connection's state; under frontConns.mu, but requests,
// which only its own serving goroutine touches.
type frontConn struct {
	src      *sourceCount // nil: not counted per source
	pending  bool
	idle     bool
	active   bool // it has sent bytes of a request
	requests int  // handled: the handler was called
}

type sourceCount struct {
	key                 string
	open, pending, idle int
}

func (f *frontConns) init() {
	f.byAddr = map[connAddrs]*frontConn{}
	f.bySource = map[string]*sourceCount{}
}

// admit decides, at accept, whether c may be served, and records it. It
// returns the refusal's cause, or "".
func (s *Server) admitConn(c net.Conn, lim *limitsState) string {
	f := &s.conns
	key := ""
	if !s.gw.TrustedPeer(c.RemoteAddr().String()) {
		if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
			key = gateway.SourceKey(host, lim.ipv6Prefix)
		}
	}
	ws := 0
	if key != "" && lim.maxPerIP > 0 {
		ws = s.gw.ConnsFrom(key) // outside f.mu: the gateway has its own lock
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	src := f.bySource[key]
	switch {
	case lim.maxConns > 0 && f.open+s.gw.Len() >= lim.maxConns:
		return "max_connections"
	case lim.maxPending > 0 && f.pending >= lim.maxPending:
		return "max_pending_handshakes"
	case key == "":
	case src != nil && lim.maxPendingPerIP > 0 && src.pending >= lim.maxPendingPerIP:
		return "pending_per_ip"
	case lim.maxPerIP > 0 && ws+sourceOpen(src) >= lim.maxPerIP:
		return "max_per_ip"
	}
	fc := &frontConn{pending: true}
	if key != "" {
		if src == nil {
			src = &sourceCount{key: key}
			f.bySource[key] = src
		}
		src.open++
		src.pending++
		fc.src = src
	}
	f.byAddr[addrsOf(c)] = fc
	f.open++
	f.pending++
	return ""
}

func sourceOpen(src *sourceCount) int {
	if src == nil {
		return 0
	}
	return src.open
}

// connState follows net/http's states of a connection the guard
// admitted. One that goes idle with its source at MaxIdleHTTPPerIP is
// closed.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	f := &s.conns
	closeIt, rejected := false, false
	f.mu.Lock()
	fc := f.byAddr[addrsOf(c)]
	if fc == nil {
		f.mu.Unlock()
		return
	}
	switch st {
	case http.StateActive:
		fc.active = true
		f.notPending(fc)
		if fc.idle {
			fc.idle = false
			if fc.src != nil {
				fc.src.idle--
			}
		}
	case http.StateIdle:
		// A keep-alive connection between requests: its TLS records are not
		// followed any further (a WebSocket on it stays with crypto/tls).
		tlsrec.Forget(c)
		f.notPending(fc)
		fc.idle = true
		if src := fc.src; src != nil {
			src.idle++
			lim := s.limits.Load()
			closeIt = lim.maxIdlePerIP > 0 && src.idle > lim.maxIdlePerIP
		}
	case http.StateHijacked, http.StateClosed:
		// Bytes of a request came and no request reached the handler:
		// net/http refused the head (malformed, far over max_header_bytes,
		// an unsupported Transfer-Encoding) or the client gave up on it
		// (handshake_timeout). Counted and logged like every refusal.
		rejected = st == http.StateClosed && fc.active && fc.requests == 0
		f.notPending(fc)
		if fc.idle && fc.src != nil {
			fc.src.idle--
		}
		if src := fc.src; src != nil {
			src.open--
			if src.open == 0 {
				delete(f.bySource, src.key)
			}
		}
		delete(f.byAddr, addrsOf(c))
		f.open--
	}
	f.mu.Unlock()
	if rejected {
		s.front.refuse("bad_request_head")
		s.refusalLine("bad_request_head", c.RemoteAddr().String())
	}
	if closeIt {
		s.front.refuse("idle_per_ip")
		s.refusalLine("idle_per_ip", c.RemoteAddr().String())
		c.Close()
	}
}

// notPending ends a connection's pending handshake; under f.mu.
func (f *frontConns) notPending(fc *frontConn) {
	if !fc.pending {
		return
	}
	fc.pending = false
	f.pending--
	if fc.src != nil {
		fc.src.pending--
	}
}

type frontConnKey struct{}

// connContext gives each request's context its connection's record, for
// the handler's per-connection request count.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	s.conns.mu.Lock()
	fc := s.conns.byAddr[addrsOf(c)]
	s.conns.mu.Unlock()
	if fc == nil {
		return ctx
	}
	return context.WithValue(ctx, frontConnKey{}, fc)
}

// lastRequest counts a request on its connection and reports whether the
// connection must close after answering it (MaxRequestsPerConnection).
func (s *Server) lastRequest(r *http.Request) bool {
	fc, _ := r.Context().Value(frontConnKey{}).(*frontConn)
	if fc == nil {
		return false
	}
	fc.requests++ // only this connection's serving goroutine
	max := s.limits.Load().maxRequestsPerConn
	return max > 0 && fc.requests >= max
}
