package daemon

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/netconn"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Upgrader is the daemon's net/http handler: WebSocket upgrades on a
// route's path go to the gateway, the rest to the fallback (the demo page,
// static files, 426, 404).
type Upgrader struct{ s *Server }

func (u *Upgrader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := u.s
	cfg := s.cfg.Load()
	if s.lastRequest(r) || r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		// MaxRequestsPerConnection bounds what one connection pipelines.
		// HTTP/1.0 gets one request per connection: net/http ignores (and
		// removes) a Transfer-Encoding on a 1.0 request, which RFC 9112
		// §6.1 says to treat as faulty framing and close after.
		w.Header().Set("Connection", "close")
	}
	if cause, status, msg := s.checkHead(r, cfg); cause != "" {
		s.front.refuse(cause)
		s.refusalLine(cause, r.RemoteAddr)
		w.Header().Set("Connection", "close")
		http.Error(w, msg, status)
		return
	}
	route := s.gw.Route(r.URL.Path)
	if route == nil || !websocket.IsUpgrade(r.Header) {
		s.fallback(w, r)
		return
	}
	// What the request keeps for the connection's life does not keep
	// net/http's request line alive through substrings of it: the method
	// and the route's path are constants, the listener's address and the
	// Host shared by every connection that has the same.
	method, path := r.Method, r.URL.Path
	if method == http.MethodGet {
		method = http.MethodGet
	}
	if path == route.Path {
		path = route.Path
	}
	req := &gateway.Request{
		Method: method, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
		Path: path, RawQuery: r.URL.RawQuery, Host: s.strs.intern(r.Host),
		RemoteAddr: r.RemoteAddr, TLS: r.TLS,
	}
	req.SetHeader(r.Header)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		req.LocalAddr = s.strs.intern(la.String())
	}
	timeout := cfg.Server.HandshakeTimeout
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	p, herr := s.gw.Accept(ctx, route, req)
	cancel()
	if herr != nil {
		for k, vs := range herr.Header {
			w.Header()[websocket.HeaderName(k)] = vs // as written: net/http would canonicalize it
		}
		body := http.StatusText(herr.Status) + "\n"
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(herr.Status)
		if r.Method != http.MethodHead {
			w.Write([]byte(body))
		}
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.log.Error("cannot take over the connection for a WebSocket", "err", err)
		p.Abandon()
		http.Error(w, "upgrade not possible on this connection", http.StatusInternalServerError)
		return
	}
	// A client may send frames right behind its request, before it sees the
	// 101; whatever net/http has read ahead belongs to the engine.
	buffered := takeBuffered(brw.Reader)
	nc.SetDeadline(time.Time{})
	nc.SetWriteDeadline(time.Now().Add(timeout))
	resp := p.AppendResponse(make([]byte, 0, 256))
	if _, err := nc.Write(resp); err != nil {
		s.log.Debug("writing the 101 failed", "peer", r.RemoteAddr, "err", err)
		nc.Close()
		p.Abandon()
		return
	}
	nc.SetWriteDeadline(time.Time{})
	if p.HandsOff() {
		// mode: direct. The backend gets the socket (a duplicate of the
		// descriptor); this process's copy closes, and the connection
		// is no longer the gateway's.
		if err := p.HandOff(nc, buffered); err != nil {
			s.log.Warn("handing the connection to the backend failed", "route", route.Path, "peer", r.RemoteAddr, "err", err)
		}
		nc.Close()
		return
	}
	// Serve returns at once: netconn parks the connection, or moves it to
	// a fresh goroutine, so the stack net/http built up for this request
	// is freed when this handler returns.
	p.Serve(netconn.New(nc, p.Conn.Engine(), buffered))
}

// checkHead applies the limits on a request's head that net/http does not
// apply exactly, and the rule that the public listener takes no request
// body. It returns the refusal's cause, status and text, or "".
//
// A body: nothing served here takes one (WebSocket upgrades, the demo
// page, static files), and a request that has one, or both a
// Content-Length and a Transfer-Encoding (which net/http resolves by
// dropping the Content-Length), is how request smuggling starts
// (RFC 9112 §6.1, §11.2): it is answered 400 and the connection closed,
// so nothing hidden in the body is ever read as a request.
func (s *Server) checkHead(r *http.Request, cfg *config.Config) (cause string, status int, msg string) {
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return "request_body", http.StatusBadRequest, "requests here carry no body"
	}
	if max := cfg.Server.MaxHeaderBytes; max > 0 && headSize(r) > max {
		return "header_too_large", http.StatusRequestHeaderFieldsTooLarge, "request header too large"
	}
	if max := cfg.Server.MaxHeaderCount; max > 0 && headerCount(r.Header) > max {
		return "too_many_headers", http.StatusRequestHeaderFieldsTooLarge, "too many header fields"
	}
	return "", 0, ""
}

// headSize is a request head's size as it came on the wire, but for the
// optional whitespace around header values, which the parser drops: the
// request line, every field as "Name:value" with its CRLF, Host's
// included (net/http moves it out of the header), and the empty line.
// net/http reads a head of up to max_header_bytes plus its own slack (see
// New): past that, it refuses the request itself; below it, this makes
// max_header_bytes exact to within that whitespace, counted and logged.
func headSize(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host:") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 1 + len(v) + 2
		}
	}
	return n + 2
}

// headerCount counts a request's header fields, repeated ones included.
func headerCount(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}

func takeBuffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n)
	return append([]byte(nil), b...)
}
