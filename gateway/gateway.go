package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/websocket"
)

// Gateway holds the routes and every open connection.
type Gateway struct {
	log     *slog.Logger
	routes  []*Route // in configuration order
	byMatch []*Route // longest path first
	nextID  atomic.Uint64

	// stopping is cancelled when Shutdown begins: it cancels the context
	// of every OnOpen still running.
	stopping context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex
	extra    []*Route // started by StartRoute
	conns    map[*Conn]struct{}
	draining bool
	idle     chan struct{} // closed when draining and no connection is left
	live     int
}

// New checks the routes and provisions and validates each one's
// application (see lifecycle.go). It performs no I/O: nothing is dialled,
// listened on or started until Start. If any route fails, every route
// already provisioned is stopped and all the errors are returned.
//
// A route without a Handler is allowed here, as a misconfigured location
// is in Apache, but every upgrade on it is answered 500; the daemon's
// configuration refuses such routes before they get this far.
func New(log *slog.Logger, routes ...*Route) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{log: log, conns: make(map[*Conn]struct{})}
	g.stopping, g.cancel = context.WithCancel(context.Background())
	seen := map[string]bool{}
	var errs []error
	for _, r := range routes {
		if r.provisioned {
			errs = append(errs, fmt.Errorf("route %s belongs to another gateway", r.Path))
			continue
		}
		if seen[r.Path] {
			errs = append(errs, fmt.Errorf("route %s is defined twice", r.Path))
		}
		seen[r.Path] = true
		g.routes = append(g.routes, r)
		if err := r.provision(log); err != nil {
			errs = append(errs, &RouteError{Route: r, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		g.Stop(context.Background())
		return nil, err
	}
	g.byMatch = append([]*Route(nil), g.routes...)
	sort.SliceStable(g.byMatch, func(i, j int) bool { return len(g.byMatch[i].Path) > len(g.byMatch[j].Path) })
	return g, nil
}

// Routes returns the routes in configuration order.
func (g *Gateway) Routes() []*Route { return g.routes }

// Route returns the route serving path, or nil.
func (g *Gateway) Route(path string) *Route {
	for _, r := range g.byMatch {
		if r.matches(path) {
			return r
		}
	}
	return nil
}

// Len returns the number of open connections.
func (g *Gateway) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Pending is an accepted handshake whose 101 has not been sent yet. The
// front door writes the 101 (AppendResponse, or Header for a server that
// writes responses itself) and then calls Serve, or Abandon if it could
// not write it.
type Pending struct {
	Conn   *Conn
	hs     *websocket.Handshake
	header http.Header
}

// AppendResponse appends the 101 response to dst.
func (p *Pending) AppendResponse(dst []byte) []byte { return p.hs.AppendResponse(dst, p.header) }

// Header is the complete header of the 101: Upgrade, Connection,
// Sec-WebSocket-Accept, the selected subprotocol, the negotiated
// extensions and what the application set.
func (p *Pending) Header() http.Header { return p.header }

// Serve runs the connection over t until it ends (see websocket.Conn.Serve).
func (p *Pending) Serve(t websocket.Transport) {
	c := p.Conn
	c.gw.log.Debug("websocket open", c.logAttrs()...)
	c.ws.Serve(t)
}

// Abandon ends a connection whose 101 could not be written. The
// application, which accepted it in OnOpen, gets OnClose with 1006.
func (p *Pending) Abandon() { p.Conn.ws.Discard() }

// Accept runs the opening handshake for a request on route: the RFC 6455
// checks, the Origin policy, then the application's OnOpen, which gets a
// context derived from ctx (the front door's, bounded by its handshake
// timeout) that is also cancelled when the gateway shuts down. On success
// the front door writes the 101 and calls p.Serve.
func (g *Gateway) Accept(ctx context.Context, route *Route, req *Request) (p *Pending, herr *websocket.HandshakeError) {
	hs, err := websocket.CheckUpgrade(&http.Request{Method: req.Method, ProtoMajor: req.ProtoMajor, ProtoMinor: req.ProtoMinor, Host: req.Host, Header: req.Header})
	if err != nil {
		herr = err.(*websocket.HandshakeError)
		g.log.Info("websocket handshake refused", "route", route.Path, "peer", req.RemoteAddr, "status", herr.Status, "reason", herr.Reason)
		return nil, herr
	}
	if route.Handler == nil {
		g.log.Error("no application is assigned to this route", "route", route.Path)
		return nil, &websocket.HandshakeError{Status: http.StatusInternalServerError, Reason: "no application for route " + route.Path}
	}
	req.Version, req.Protocols, req.Origin = hs.Version, hs.Protocols, hs.Origin
	if dp := route.Policy.Deflate; dp != nil {
		if err := hs.NegotiateDeflate(req.Header, *dp); err != nil {
			herr = err.(*websocket.HandshakeError)
			g.log.Info("websocket handshake refused", "route", route.Path, "peer", req.RemoteAddr, "status", herr.Status, "reason", herr.Reason)
			return nil, herr
		}
	}
	if ok, want := route.Policy.checkOrigin(hs.Origin, req); !ok {
		g.log.Info("websocket origin refused", "route", route.Path, "peer", req.RemoteAddr, "origin", hs.Origin, "expected", want)
		return nil, &websocket.HandshakeError{Status: http.StatusForbidden, Reason: "origin " + hs.Origin + " not allowed"}
	}
	if !g.admit() {
		return nil, &websocket.HandshakeError{Status: http.StatusServiceUnavailable, Reason: "shutting down"}
	}
	c := &Conn{id: g.nextID.Add(1), req: req, route: route, gw: g, header: http.Header{}}
	c.proto = selectSubprotocol(route.Policy.Subprotocols, hs.Protocols)
	c.ws = hs.NewConn((*connHandler)(c), route.Policy.engineOptions())
	g.register(c)

	accepted := false
	refuse := func(status int, reason string) (*Pending, *websocket.HandshakeError) {
		if accepted {
			// The application accepted the connection and may hold resources
			// for it: it gets its OnClose, which also unregisters.
			c.ws.Discard()
		} else {
			c.ws.Abort()
			g.unregister(c)
			g.connDone()
		}
		return nil, &websocket.HandshakeError{Status: status, Reason: reason}
	}
	if err := g.onOpen(ctx, c); err != nil {
		var pe panicError
		if errors.As(err, &pe) {
			return refuse(http.StatusInternalServerError, "application panicked")
		}
		g.log.Info("application refused the connection", "route", route.Path, "peer", req.RemoteAddr, "reason", err.Error())
		return refuse(refuseStatus(err), err.Error())
	}
	accepted = true
	header, err := hs.Header(c.header, c.proto)
	if err != nil {
		g.log.Error("application chose a response the handshake cannot send", "route", route.Path, "err", err)
		return refuse(http.StatusInternalServerError, err.Error())
	}
	// In the route's hub from now on, before the 101 is written: a client
	// that has its 101 must get every broadcast sent after it. What is sent
	// to the connection before Serve is held and follows the 101.
	route.hub.add(c)
	return &Pending{Conn: c, hs: hs, header: header}, nil
}

type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprint("panic: ", p.v) }

func (g *Gateway) onOpen(ctx context.Context, c *Conn) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.stopping, cancel)()
	defer func() {
		if v := recover(); v != nil {
			g.log.Error("application panicked", "route", c.route.Path, "in", "OnOpen", "panic", v, "stack", string(debug.Stack()))
			err = panicError{v}
		}
	}()
	return c.route.Handler.OnOpen(ctx, c)
}

func selectSubprotocol(supported, offered []string) string {
	for _, o := range offered {
		if slices.Contains(supported, o) {
			return o
		}
	}
	return ""
}

// admit counts a new connection unless the gateway is draining.
func (g *Gateway) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.live++
	return true
}

func (g *Gateway) register(c *Conn) {
	g.mu.Lock()
	g.conns[c] = struct{}{}
	g.mu.Unlock()
}

func (g *Gateway) unregister(c *Conn) {
	c.route.hub.remove(c)
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// connDone is the end of a connection admitted by admit.
func (g *Gateway) connDone() {
	g.mu.Lock()
	g.live--
	if g.draining && g.live == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// Shutdown refuses new connections, closes every open one with 1001 and
// waits until they have all ended or ctx is done; then it aborts whatever
// is left and returns ctx's error. It does not stop the applications: call
// Stop once it returns.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.cancel()
	g.mu.Lock()
	g.draining = true
	var idle chan struct{}
	if g.live > 0 {
		if g.idle == nil {
			g.idle = make(chan struct{})
		}
		idle = g.idle
	}
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.ws.Close(websocket.StatusGoingAway, "server shutting down")
	}
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		left := make([]*Conn, 0, len(g.conns))
		for c := range g.conns {
			left = append(left, c)
		}
		g.mu.Unlock()
		g.log.Warn("shutdown timed out; aborting connections", "left", len(left))
		for _, c := range left {
			c.ws.Abort()
		}
		// Give the aborted readers a moment to run OnClose.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-idle:
		case <-t.C:
		}
		return ctx.Err()
	}
}
