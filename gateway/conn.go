package gateway

import (
	"context"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/monoclock"
	"github.com/wsgate/wsgate/websocket"
)

// Conn is one client connection as an application sees it.
type Conn struct {
	ws *websocket.Conn
	id uint64
	// req is the request until OnOpen has accepted the connection, and
	// for its life for an application that keeps its request headers;
	// other applications keep only kept (see Request). Atomic: a
	// goroutine the application started in OnOpen may ask for it while
	// it is dropped.
	req    atomic.Pointer[Request]
	kept   *keptRequest
	route  *Route
	gw     *Gateway
	proto  string
	header http.Header
	state  atomic.Pointer[any]
	ctx    atomic.Pointer[connContext] // made by Context, on first use
	ended  atomic.Bool
	// refused: OnOpen accepted it but the handshake failed after; its
	// end is logged as the refusal, not as a connection.
	refused bool
	gone    bool // removed from the hub; guarded by route.hub.mu
	// start is when it was accepted, for the access log (monoclock).
	start time.Duration
	ext   string              // negotiated extensions, for the access log
	rooms map[string]struct{} // guarded by route.hub.mu
}

type connContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// Context returns a context that is cancelled when the connection ends,
// for work an application does on the connection's behalf (a call to
// another service, a subscription) that should stop when the client goes.
// It is made on first use, so connections that never ask for it do not
// pay for it.
func (c *Conn) Context() context.Context {
	if cc := c.ctx.Load(); cc != nil {
		return cc.ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !c.ctx.CompareAndSwap(nil, &connContext{ctx, cancel}) {
		cancel()
		return c.ctx.Load().ctx
	}
	if c.ended.Load() {
		cancel()
	}
	return ctx
}

// ID is unique among the gateway's connections for the life of the process.
func (c *Conn) ID() uint64 { return c.id }

// Request returns the request the connection was opened with. After
// OnOpen has accepted the connection, an application that does not
// implement KeepsRequestHeaders gets a request with only the path, query,
// host, the peer's and client's addresses and what the front door put in
// Extra: the rest of the request, its header fields included, is dropped
// then, and the request is made again on each call. An application that
// needs more copies it in OnOpen.
func (c *Conn) Request() *Request {
	if r := c.req.Load(); r != nil {
		return r
	}
	k := c.kept
	return &Request{Path: k.path, RawQuery: k.query, Host: k.host, RemoteAddr: k.remote, ClientIP: k.client, Extra: k.extra, Version: 13, Identity: c.Identity()}
}

// keptRequest is what a connection keeps of its request after OnOpen when
// its application does not keep the request: a Request's 256 bytes were a
// quarter of what an idle connection cost.
type keptRequest struct {
	path, query, host, remote, client string
	extra                             map[string]any
}

// slim drops the request for what keptRequest holds; after OnOpen.
func (c *Conn) slim() {
	r := c.req.Load()
	c.kept = &keptRequest{path: r.Path, query: r.RawQuery, host: r.Host, remote: r.RemoteAddr, client: r.ClientIP, extra: r.Extra}
	c.req.Store(nil) // after kept: a Load that finds nil finds kept set
}

// clientIP is the client's address, for the limits and the log.
func (c *Conn) clientIP() string {
	if r := c.req.Load(); r != nil {
		return r.ClientIP
	}
	return c.kept.client
}

// peerAddr is the peer's address, for the log.
func (c *Conn) peerAddr() string {
	if r := c.req.Load(); r != nil {
		return r.RemoteAddr
	}
	return c.kept.remote
}

// Route returns the route serving the connection.
func (c *Conn) Route() *Route { return c.route }

// Subprotocol returns the selected subprotocol, "" if none.
func (c *Conn) Subprotocol() string { return c.proto }

// SetSubprotocol selects one of the offered subprotocols. Only meaningful in
// OnOpen; selecting one the client did not offer refuses the connection
// with 500, because the client would fail the handshake anyway.
func (c *Conn) SetSubprotocol(p string) { c.proto = p }

// ResponseHeader is the header of the 101 response, for OnOpen to add to.
// It is made on first use and dropped once the 101 is built, so that a
// connection whose application sets none keeps no map.
func (c *Conn) ResponseHeader() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

// SetState attaches application state to the connection.
func (c *Conn) SetState(v any) { c.state.Store(&v) }

// State returns what SetState attached, or nil.
func (c *Conn) State() any {
	if p := c.state.Load(); p != nil {
		return *p
	}
	return nil
}

// Send sends a text or binary message. It is safe from any goroutine and
// never blocks on the network; see websocket.Conn.Send for its errors.
func (c *Conn) Send(typ websocket.MessageType, data []byte) error { return c.ws.Send(typ, data) }

// SendText sends a text message.
func (c *Conn) SendText(s string) error { return c.ws.SendText(s) }

// Ping sends a ping with up to 125 bytes of payload.
func (c *Conn) Ping(data []byte) error { return c.ws.Ping(data) }

// Pong sends an unsolicited pong with up to 125 bytes of payload.
func (c *Conn) Pong(data []byte) error { return c.ws.Pong(data) }

// Close starts the closing handshake. Code 0 sends an empty close frame.
func (c *Conn) Close(code websocket.StatusCode, reason string) error {
	return c.ws.Close(code, reason)
}

// CloseFor is Close with the cause that the metrics
// (wsgate_server_closes_total) and the logs give for it: one of the
// engine's (websocket.Cause*) or the gateway's (Cause* in limits.go),
// never a string built from input.
func (c *Conn) CloseFor(cause string, code websocket.StatusCode, reason string) error {
	return c.ws.CloseFor(cause, code, reason)
}

// Engine returns the underlying engine connection, for front doors (which
// hand it to their transport) and for adapters that need what the handler
// API does not offer, such as a C plugin's raw close frame.
func (c *Conn) Engine() *websocket.Conn { return c.ws }

// Hub returns the registry of the route's connections.
func (c *Conn) Hub() *Hub { return c.route.hub }

// Join adds the connection to a room of its route, and says whether it
// is in it: a route's room_claims can refuse (counted, and logged).
func (c *Conn) Join(room string) bool {
	if !c.mayJoin(room) {
		return false
	}
	c.route.hub.join(c, room)
	return true
}

// Leave removes the connection from a room.
func (c *Conn) Leave(room string) { c.route.hub.leave(c, room) }

// Rooms returns the rooms the connection is in.
func (c *Conn) Rooms() []string { return c.route.hub.roomsOf(c) }

// connHandler adapts Conn to the engine's Handler without a second
// allocation per connection.
type connHandler Conn

func (h *connHandler) OnMessage(_ *websocket.Conn, typ websocket.MessageType, p []byte) {
	c := (*Conn)(h)
	defer c.recoverApp("OnMessage")
	c.route.Handler.OnMessage(c, Message{Type: typ, Data: p})
}

func (h *connHandler) OnClose(_ *websocket.Conn, s websocket.CloseStatus) {
	c := (*Conn)(h)
	c.ended.Store(true)
	if cc := c.ctx.Load(); cc != nil {
		cc.cancel()
	}
	st := c.ws.Stats()
	if l := c.route.stats.lifetime; l != nil && !c.refused {
		l.observe(monoclock.Now() - c.start)
	}
	c.route.hub.remove(c, func() { c.route.stats.end(st, s) })
	c.gw.mu.Lock()
	delete(c.gw.conns, c)
	c.gw.mu.Unlock()
	if !c.refused {
		c.gw.access.ended(c, st, s)
	}
	func() {
		defer c.recoverApp("OnClose")
		c.route.Handler.OnClose(c, s)
	}()
	c.gw.limits.done(c.clientIP())
	if u, ok := c.userLimited(); ok {
		c.route.users.done(u)
	}
	c.gw.forgetIdentity(c) // last: the access log and the count above read it
	if c.route.live.Add(-1) == 0 && c.route.retired.Load() {
		c.gw.retireWhenIdle(c.route)
	}
	c.gw.connDone()
}

// recoverApp turns a panic in application code into a log entry and a 1011
// close for this connection only.
func (c *Conn) recoverApp(where string) {
	if v := recover(); v != nil {
		c.gw.log.Error("application panicked", "route", c.route.Path, "conn", c.id, "in", where,
			"panic", v, "stack", string(debug.Stack()))
		c.ws.CloseFor(websocket.CauseInternalError, websocket.StatusInternalError, "internal error")
	}
}
