// Package upstream is the reverse proxy to WebSocket servers people
// already run (backend: {upstream: [ws://...]}): wsgate takes the
// client's handshake, dials an upstream before answering it, and relays
// messages both ways, each one complete and checked by the engine on the
// side it arrived from. nginx, HAProxy and httpd's tunnel copy bytes after
// the 101; here a broken or hostile upstream cannot reach a client with a
// bad frame, nor a client an upstream, and each side negotiates its own
// extensions.
//
// What is relayed: every text and binary message, with its type, whole
// (fragmentation is re-chosen: a message goes out as one frame);
// pings are answered on each side by the engine and not relayed; a close
// frame's code and reason are carried through. A side that breaks the
// protocol is closed by the engine with 1002, 1007 or 1009; then the
// other side gets 1001 (a client gone) or 1014 "bad gateway" (an upstream
// gone or broken).
package upstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Proxy is the handler of a route with upstreams.
type Proxy struct {
	cfg   Config
	route string
	log   *slog.Logger
	ups   []*server
	next  atomic.Uint64 // round robin
	stop  context.CancelFunc
	stats *Stats
}

// server is one upstream URL and its state.
type server struct {
	u       *url.URL
	name    string
	active  atomic.Int64 // pairs open through it
	downTil atomic.Int64 // unix nanoseconds: passed over until then
	healthy atomic.Bool  // by the health check (true without one)
	fails   atomic.Int32 // consecutive failed health checks
}

func (s *server) up(now time.Time) bool {
	return s.healthy.Load() && now.UnixNano() >= s.downTil.Load()
}

// New returns the proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("upstream: no URL")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.FailTimeout <= 0 {
		cfg.FailTimeout = DefaultFailTimeout
	}
	p := &Proxy{cfg: cfg, log: slog.Default()}
	for _, u := range cfg.URLs {
		s := &server{u: u, name: u.String()}
		s.healthy.Store(true)
		p.ups = append(p.ups, s)
	}
	return p, nil
}

var (
	_ gateway.Handler             = (*Proxy)(nil)
	_ gateway.Provisioner         = (*Proxy)(nil)
	_ gateway.Starter             = (*Proxy)(nil)
	_ gateway.Stopper             = (*Proxy)(nil)
	_ gateway.KeepsRequestHeaders = (*Proxy)(nil)
)

// Provision learns the route.
func (p *Proxy) Provision(ctx gateway.AppContext) error {
	p.route = ctx.Route.Path
	if ctx.Logger != nil {
		p.log = ctx.Logger
	}
	p.stats = statsFor(p.route, p.ups)
	return nil
}

// KeepsRequestHeaders: the request's headers are read in OnOpen only, but
// the proxy keeps none of them after (it says so to keep the request
// whole until its dial is done; the gateway drops it after OnOpen).
func (p *Proxy) KeepsRequestHeaders() {}

// Start begins the health checks, if configured.
func (p *Proxy) Start(context.Context) error {
	if p.cfg.HealthInterval <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	for _, s := range p.ups {
		go p.check(ctx, s)
	}
	return nil
}

// Stop ends the health checks.
func (p *Proxy) Stop(context.Context) error {
	if p.stop != nil {
		p.stop()
	}
	return nil
}

// check runs s's health check every interval: a WebSocket handshake to
// HealthPath (or the URL's own path), closed with 1000 at once. Two
// failures in a row take s out; one success puts it back.
func (p *Proxy) check(ctx context.Context, s *server) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("upstream health check panicked", "upstream", s.name, "panic", v)
		}
	}()
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		u := *s.u
		if p.cfg.HealthPath != "" {
			u.Path, u.RawQuery = p.cfg.HealthPath, ""
		}
		cctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
		c, _, err := websocket.Dial(cctx, u.String(), discard{}, websocket.Options{}, &websocket.DialOptions{TLSConfig: p.cfg.TLS})
		cancel()
		if err == nil {
			c.Close(websocket.StatusNormalClosure, "health check")
			if !s.healthy.Swap(true) {
				p.log.Info("upstream healthy again", "route", p.route, "upstream", s.name)
			}
			s.fails.Store(0)
		} else if ctx.Err() == nil && s.fails.Add(1) >= 2 && s.healthy.Swap(false) {
			p.log.Warn("upstream failed its health check twice: taken out", "route", p.route, "upstream", s.name, "err", err)
		}
		p.stats.setHealthy(s)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type discard struct{}

func (discard) OnMessage(*websocket.Conn, websocket.MessageType, []byte) {}
func (discard) OnClose(*websocket.Conn, websocket.CloseStatus)           {}

// pick chooses the upstreams to try, in order: by the balance, among those
// up; then, if none is, none (the client gets 502).
func (p *Proxy) pick(req *gateway.Request) []*server {
	now := time.Now()
	var live []*server
	for _, s := range p.ups {
		if s.up(now) {
			live = append(live, s)
		}
	}
	if len(live) <= 1 {
		return live
	}
	switch p.cfg.Balance {
	case "least_conn":
		best := 0
		for i, s := range live {
			if s.active.Load() < live[best].active.Load() {
				best = i
			}
		}
		return append([]*server{live[best]}, without(live, best)...)
	case "hash":
		// Rendezvous hashing: each key keeps its upstream while that one
		// is up, whatever happens to the others.
		key := hashKey(req, p.cfg.HashOn)
		best, bestW := 0, uint64(0)
		for i, s := range live {
			h := fnv.New64a()
			h.Write([]byte(key))
			h.Write([]byte{0})
			h.Write([]byte(s.name))
			if w := h.Sum64(); w >= bestW {
				best, bestW = i, w
			}
		}
		return append([]*server{live[best]}, without(live, best)...)
	}
	i := int(p.next.Add(1)-1) % len(live)
	return append(append([]*server(nil), live[i:]...), live[:i]...)
}

func without(l []*server, i int) []*server {
	out := make([]*server, 0, len(l)-1)
	out = append(out, l[:i]...)
	return append(out, l[i+1:]...)
}

// hashKey is what hash(...) hashes for req.
func hashKey(req *gateway.Request, on string) string {
	switch {
	case on == "client_ip":
		return req.ClientIP
	case strings.HasPrefix(on, "cookie:"):
		return req.Cookie(on[7:])
	case strings.HasPrefix(on, "header:"):
		return req.HeaderValue(on[7:])
	}
	return ""
}

// pair is one client and its upstream.
type pair struct {
	p      *Proxy
	s      *server
	c      *gateway.Conn
	up     *websocket.Conn
	closed atomic.Bool // the client's side has ended
	// What each side may have waiting before a message for it waits.
	upRoom, clientRoom room
}

// OnOpen dials an upstream before the client gets its 101: an upstream
// that cannot be reached gives the client 502 (504 past
// connect_timeout), one that refuses passes its status on.
func (p *Proxy) OnOpen(ctx context.Context, c *gateway.Conn) error {
	req := c.Request()
	cands := p.pick(req)
	if len(cands) == 0 {
		p.stats.dial("none_up")
		return gateway.RefuseFor(http.StatusBadGateway, gateway.CauseBackendDown, "no upstream is up")
	}
	hdr := p.requestHeader(req)
	// Both rooms are known before the dial: the upstream side may deliver
	// a message before Dial returns.
	opts := p.engineOptions(c)
	upRoom, clientRoom := roomOf(opts), roomOf(c.Engine().Options())
	var lastErr error
	for i, s := range cands {
		if i == 2 {
			break // the first choice and one more, as nginx's proxy_next_upstream tries
		}
		pr := &pair{p: p, s: s, c: c, upRoom: upRoom, clientRoom: clientRoom}
		dctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
		u := *s.u
		// The client's path below the route's is kept, with its query.
		if rest := strings.TrimPrefix(req.Path, strings.TrimSuffix(c.Route().Path, "/")); rest != "" && rest != req.Path && strings.HasSuffix(c.Route().Path, "/") {
			u.Path = strings.TrimSuffix(u.Path, "/") + rest
		}
		if req.RawQuery != "" {
			u.RawQuery = req.RawQuery
		}
		up, resp, err := websocket.Dial(dctx, u.String(), (*upHandler)(pr), opts, &websocket.DialOptions{
			Header: hdr, Subprotocols: req.Protocols, Deflate: p.cfg.Deflate, TLSConfig: p.cfg.TLS,
			Transport: gateway.DialTransport,
		})
		// The socket's deadline (set from dctx) can fire before dctx
		// says it is done.
		var ne net.Error
		timedOut := dctx.Err() == context.DeadlineExceeded || (errors.As(err, &ne) && ne.Timeout())
		cancel()
		if err == nil {
			pr.up = up
			s.active.Add(1)
			p.stats.dial("ok")
			c.SetState(pr)
			c.SetSubprotocol(resp.Header.Get("Sec-WebSocket-Protocol"))
			return nil
		}
		lastErr = err
		var de *websocket.DialError
		if errors.As(err, &de) && de.Response != nil && de.Response.StatusCode != http.StatusSwitchingProtocols {
			// The upstream answered: its refusal is the client's.
			p.stats.dial("refused")
			st := de.Response.StatusCode
			if st < 400 || st > 599 {
				st = http.StatusBadGateway
			}
			return gateway.RefuseFor(st, gateway.CauseApplication, fmt.Sprintf("upstream %s answered %s", s.name, de.Response.Status))
		}
		if errors.As(err, &de) {
			p.stats.dial("bad_handshake")
			p.log.Warn("upstream broke the opening handshake", "route", p.route, "upstream", s.name, "err", err)
			return gateway.RefuseFor(http.StatusBadGateway, gateway.CauseBackendError, "upstream "+s.name+": "+de.Reason)
		}
		if ctx.Err() != nil {
			p.stats.dial("timeout")
			return gateway.RefuseFor(http.StatusGatewayTimeout, gateway.CauseBackendTimeout, "the handshake ran out of time dialling "+s.name)
		}
		s.downTil.Store(time.Now().Add(p.cfg.FailTimeout).UnixNano())
		if timedOut {
			p.stats.dial("timeout")
		} else {
			p.stats.dial("error")
		}
		p.log.Warn("upstream unreachable: passed over for fail_timeout", "route", p.route, "upstream", s.name, "err", err, "fail_timeout", p.cfg.FailTimeout)
		if timedOut && i == len(cands)-1 {
			return gateway.RefuseFor(http.StatusGatewayTimeout, gateway.CauseBackendTimeout, "upstream "+s.name+" did not answer within connect_timeout")
		}
	}
	if ne, ok := lastErr.(net.Error); ok && ne.Timeout() {
		return gateway.RefuseFor(http.StatusGatewayTimeout, gateway.CauseBackendTimeout, "upstream did not answer within connect_timeout")
	}
	return gateway.RefuseFor(http.StatusBadGateway, gateway.CauseBackendDown, fmt.Sprintf("upstream unreachable: %v", lastErr))
}

// engineOptions are the upstream side's: the route's limits, with no
// keepalive of its own (the client's side keeps the pair alive, and an
// upstream ping is answered by the engine).
func (p *Proxy) engineOptions(c *gateway.Conn) websocket.Options {
	o := c.Engine().Options()
	return websocket.Options{MaxMessageSize: o.MaxMessageSize, MaxQueue: o.MaxQueue, SlowConsumer: o.SlowConsumer,
		CloseTimeout: o.CloseTimeout, WriteTimeout: o.WriteTimeout, AllowReservedStatusCodes: true, Budget: o.Budget}
}

// requestHeader is what the upstream's handshake carries: Origin and the
// forwarded headers of the client, the identity the route's auth found
// (Meta-User...), the configured headers, and X-Forwarded-For,
// X-Forwarded-Proto, X-Forwarded-Host and Forwarded (RFC 7239) naming the
// client as the route's trusted_proxies let the gateway see it.
func (p *Proxy) requestHeader(req *gateway.Request) http.Header {
	h := http.Header{}
	req.ForwardHeaders(p.cfg.ForwardHeaders, nil, func(k string, vs []string) {
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Host":
			return
		}
		h[k] = append([]string(nil), vs...)
	})
	for k, v := range p.cfg.Headers {
		h.Set(k, v)
	}
	proto := "http"
	if req.TLS != nil {
		proto = "https"
	}
	ip := req.ClientIP
	h.Set("X-Forwarded-For", ip)
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", req.Host)
	node := ip
	if strings.Contains(ip, ":") {
		node = `"[` + ip + `]"`
	}
	h.Set("Forwarded", fmt.Sprintf("for=%s;host=%q;proto=%s", node, req.Host, proto))
	return h
}
