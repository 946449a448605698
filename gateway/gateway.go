package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/monoclock"
	"github.com/wsgate/wsgate/websocket"
)

// Gateway holds the routes and every open connection.
type Gateway struct {
	log    *slog.Logger
	set    atomic.Pointer[routeSet] // what serves new connections
	nextID atomic.Uint64

	// stopping is cancelled when Shutdown begins: it cancels the context
	// of every OnOpen still running.
	stopping context.Context
	cancel   context.CancelFunc

	limits limiter
	access accessLog

	mu       sync.Mutex
	cluster  *cluster                  // the bus, when UseBus gave one
	extra    []*Route                  // started by StartRoute
	retired  []*Route                  // replaced by a reload, serving their last connections
	past     map[string]*RouteSnapshot // counters of stopped routes, by path
	conns    map[*Conn]struct{}
	draining bool
	idle     chan struct{} // closed when draining and no connection is left
	live     int
	budget   *websocket.Budget // SetBudget's
	authed   sync.Map          // *Conn → *connAuth, for authenticated connections
}

// routeSet is one configuration's routes. It never changes once made: a
// reload makes a new one and swaps it in.
type routeSet struct {
	routes  []*Route // in configuration order
	byMatch []*Route // longest path first
}

func newRouteSet(routes []*Route) *routeSet {
	s := &routeSet{routes: routes, byMatch: append([]*Route(nil), routes...)}
	sort.SliceStable(s.byMatch, func(i, j int) bool { return len(s.byMatch[i].Path) > len(s.byMatch[j].Path) })
	return s
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
	g := &Gateway{log: log, conns: make(map[*Conn]struct{}), past: map[string]*RouteSnapshot{}}
	g.limits.set(Limits{})
	g.access.init(log)
	g.stopping, g.cancel = context.WithCancel(context.Background())
	if err := provisionAll(log, routes, nil); err != nil {
		return nil, err
	}
	g.set.Store(newRouteSet(routes))
	return g, nil
}

// provisionAll provisions and validates routes, except those in keep
// (already serving). On failure it stops the ones it provisioned.
func provisionAll(log *slog.Logger, routes []*Route, keep map[*Route]bool) error {
	seen := map[string]bool{}
	var errs []error
	var done []*Route
	for _, r := range routes {
		if seen[r.Path] {
			errs = append(errs, fmt.Errorf("route %s is defined twice", r.Path))
		}
		seen[r.Path] = true
		if keep[r] {
			continue
		}
		if r.provisioned {
			errs = append(errs, fmt.Errorf("route %s belongs to another gateway", r.Path))
			continue
		}
		done = append(done, r)
		if err := r.provision(log); err != nil {
			errs = append(errs, &RouteError{Route: r, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		for i := len(done) - 1; i >= 0; i-- {
			done[i].stop(context.Background())
		}
		return err
	}
	return nil
}

// Routes returns the routes serving new connections, in configuration
// order.
func (g *Gateway) Routes() []*Route { return g.set.Load().routes }

// Route returns the route serving path, or nil.
func (g *Gateway) Route(path string) *Route {
	for _, r := range g.set.Load().byMatch {
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
	// transfer is set, and Conn nil, for a route that hands connections
	// off (HandOff): the front door writes the 101 and calls HandOff.
	transfer Transfer
	route    *Route // with transfer
}

// AppendResponse appends the 101 response to dst.
func (p *Pending) AppendResponse(dst []byte) []byte { return p.hs.AppendResponse(dst, p.header) }

// HandsOff says whether the connection goes to the backend itself
// (HandOff) rather than to Serve.
func (p *Pending) HandsOff() bool { return p.transfer != nil }

// HandOff passes the connection, after the 101, to the backend; the
// caller closes its own copy of nc afterwards. A backend that cannot be
// reached (UnreachableError) has its client closed with 1013 here; the
// error is returned for the front door's log either way.
func (p *Pending) HandOff(nc net.Conn, buffered []byte) error {
	err := p.transfer.Pass(nc, buffered)
	if err == nil {
		// Counted apart from accepted: the gateway never holds the
		// connection, so it never ends here either.
		p.route.stats.handedOff.Add(1)
		return nil
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(closeFrame(websocket.StatusTryAgainLater, "backend unavailable"))
		p.route.stats.serverClose(CauseBackendDown, websocket.StatusTryAgainLater)
	} else {
		p.route.stats.serverClose(CauseBackendError, websocket.StatusAbnormalClosure)
	}
	return err
}

// closeFrame is an unmasked close frame with code and a short reason.
func closeFrame(code websocket.StatusCode, reason string) []byte {
	b := []byte{0x88, byte(2 + len(reason)), byte(code >> 8), byte(code)}
	return append(b, reason...)
}

// Header is the complete header of the 101: Upgrade, Connection,
// Sec-WebSocket-Accept, the selected subprotocol, the negotiated
// extensions and what the application set.
func (p *Pending) Header() http.Header { return p.header }

// Serve runs the connection over t until it ends (see websocket.Conn.Serve).
func (p *Pending) Serve(t websocket.Transport) { p.Conn.ws.Serve(t) }

// Abandon ends a connection whose 101 could not be written. The
// application, which accepted it in OnOpen, gets OnClose with 1006.
func (p *Pending) Abandon() {
	if p.transfer != nil {
		p.transfer.Cancel()
		return
	}
	p.Conn.ws.Discard()
}

// Accept runs the opening handshake for a request on route: the RFC 6455
// checks, the Origin policy, the admission limits, then the application's
// OnOpen, which gets a context derived from ctx (the front door's, bounded
// by its handshake timeout) that is also cancelled when the gateway shuts
// down. On success the front door writes the 101 and calls p.Serve. Every
// refusal is counted by cause and written to the access log.
func (g *Gateway) Accept(ctx context.Context, route *Route, req *Request) (p *Pending, herr *websocket.HandshakeError) {
	if s := &route.stats; s.hsAccepted != nil {
		started := monoclock.Now()
		defer func() {
			if p != nil {
				s.hsAccepted.observe(monoclock.Now() - started)
			} else if herr != nil {
				s.hsRefused.observe(monoclock.Now() - started)
			}
		}()
	}
	refuse := func(status int, cause, reason string, retry time.Duration) (*Pending, *websocket.HandshakeError) {
		herr := &websocket.HandshakeError{Status: status, Reason: reason}
		if retry > 0 {
			herr.Header = http.Header{"Retry-After": {retryAfter(retry)}}
		}
		g.refused(route, req, herr, cause)
		return nil, herr
	}
	hs, err := websocket.CheckUpgrade(&http.Request{Method: req.Method, ProtoMajor: req.ProtoMajor, ProtoMinor: req.ProtoMinor,
		Host: req.Host, Header: req.Header(), ContentLength: req.ContentLength, TransferEncoding: req.TransferEncoding})
	if err != nil {
		herr = err.(*websocket.HandshakeError)
		g.refused(route, req, herr, upgradeCause(herr))
		return nil, herr
	}
	if route.Handler == nil {
		// Once per request, naming the path asked for and the client, in
		// apache-websocket's words: only an httpd section without a
		// WebSocketHandler (or WebSocketApp) builds such a route.
		g.log.Error("no WebSocket plugin is assigned for location "+req.Path+" (did you forget to define a WebSocketHandler?)",
			"client", req.RemoteAddr, "route", route.Path)
		return refuse(http.StatusInternalServerError, CauseNoApplication, "no application for route "+route.Path, 0)
	}
	req.Version, req.Protocols, req.Origin = hs.Version, hs.Protocols, hs.Origin
	if req.ClientIP == "" {
		req.ClientIP = route.Policy.clientIP(req)
	}
	if retry, ok := g.limits.rate(req.ClientIP, time.Now()); !ok {
		return refuse(http.StatusTooManyRequests, CauseRatePerIP, "handshake rate over the limit", retry)
	}
	ho, handsOff := route.Handler.(HandOff)
	if dp := route.Policy.Deflate; dp != nil && !handsOff {
		if err := hs.NegotiateDeflate(req.Header(), *dp); err != nil {
			herr = err.(*websocket.HandshakeError)
			g.refused(route, req, herr, upgradeCause(herr))
			return nil, herr
		}
	}
	if ok, want := route.Policy.checkOrigin(hs.Origin, req); !ok {
		return refuse(http.StatusForbidden, CauseOrigin, "origin "+hs.Origin+" not allowed, expected "+want, 0)
	}
	if a := route.Policy.Auth; a != nil {
		id, err := a.Authenticate(ctx, req)
		if err != nil {
			ae, ok := err.(*AuthError)
			if !ok {
				ae = &AuthError{Status: http.StatusServiceUnavailable, Cause: CauseAuthUnavailable, Reason: err.Error()}
			}
			herr := &websocket.HandshakeError{Status: ae.Status, Reason: ae.Reason, Header: ae.Header}
			g.refused(route, req, herr, ae.Cause)
			return nil, herr
		}
		req.Identity = id
		// A token carried as a subprotocol was taken out of the offer.
		hs.Protocols = req.Protocols
		if id != nil && !id.Expires.IsZero() && !id.Expires.After(time.Now()) {
			return refuse(http.StatusUnauthorized, CauseAuthExpired, "credentials expired", 0)
		}
	}
	if g.limits.isHeavy(req.ClientIP) {
		return refuse(http.StatusServiceUnavailable, CauseMemoryPerIP, "this address holds more than its share of the memory budget", 10*time.Second)
	}
	if g.limits.overloaded() {
		return refuse(http.StatusServiceUnavailable, CauseOverloaded, "the server is over its memory limit", 5*time.Second)
	}
	if m := route.Policy.MaxConnections; m > 0 && route.live.Load() >= int64(m) {
		return refuse(http.StatusServiceUnavailable, CauseRouteMax, "the route has max_connections open", 5*time.Second)
	}
	if !g.admit() {
		return refuse(http.StatusServiceUnavailable, CauseShuttingDown, "shutting down", 0)
	}
	if cause, status, retry := g.limits.admit(req.ClientIP, time.Now()); cause != "" {
		g.connDone()
		return refuse(status, cause, "limit reached: "+cause, retry)
	}
	if m := route.Policy.MaxConnectionsPerUser; m > 0 && !handsOff && req.Identity != nil && req.Identity.User != "" {
		if !route.users.take(req.Identity.User, m) {
			g.connDone()
			g.limits.done(req.ClientIP)
			return refuse(http.StatusTooManyRequests, CauseMaxPerUser, "the user has max_connections_per_user open", 5*time.Second)
		}
	}
	if handsOff {
		p, r := g.handOff(ctx, route, req, ho, hs)
		if r != nil {
			return refuse(r.status, r.cause, r.reason, 0)
		}
		return p, nil
	}
	keepHandshake, keepRest := keepsHeaders(route.Handler)
	if !keepHandshake {
		req.dropHandshakeHeaders()
	}
	c := g.newConn(route, req, hs)
	c.ext = hs.Extensions()
	c.proto = selectSubprotocol(route.Policy.Subprotocols, hs.Protocols)

	accepted := false
	fail := func(status int, cause, reason string) (*Pending, *websocket.HandshakeError) {
		if accepted {
			// The application accepted the connection and may hold resources
			// for it: it gets its OnClose, which also unregisters.
			c.refused = true
			c.ws.Discard()
		} else {
			g.drop(c)
		}
		return refuse(status, cause, reason, 0)
	}
	if err := g.onOpen(ctx, c); err != nil {
		var pe panicError
		if errors.As(err, &pe) {
			return fail(http.StatusInternalServerError, CauseApplicationFail, "application panicked")
		}
		status, cause := refuseStatus(err)
		return fail(status, cause, err.Error())
	}
	accepted = true
	if !keepRest {
		req.dropHeaders()
		c.slim()
	}
	header, err := hs.Header(c.header, c.proto)
	c.header = nil
	if err != nil {
		g.log.Error("application chose a response the handshake cannot send", "route", route.Path, "err", err)
		return fail(http.StatusInternalServerError, CauseApplicationFail, err.Error())
	}
	g.opened(c)
	return &Pending{Conn: c, hs: hs, header: header}, nil
}

// newConn makes the connection for an admitted request (counted by
// admit and limits.admit) and registers it.
func (g *Gateway) newConn(route *Route, req *Request, hs *websocket.Handshake) *Conn {
	route.live.Add(1)
	c := &Conn{id: g.nextID.Add(1), route: route, gw: g, start: monoclock.Now()}
	c.req.Store(req)
	opts := route.Policy.engineOptions()
	opts.Budget = g.Budget()
	c.ws = hs.NewConn((*connHandler)(c), opts)
	if req.Identity != nil {
		g.rememberIdentity(c, req.Identity)
	}
	g.register(c)
	return c
}

// drop undoes newConn and the admission for a connection its application
// refused in OnOpen: it gets no OnClose.
func (g *Gateway) drop(c *Conn) {
	c.ws.Abort()
	// Rooms it joined while OnOpen ran, before refusing.
	c.route.hub.remove(c, nil)
	g.unregister(c)
	g.connDone()
	g.limits.done(c.clientIP())
	if u, ok := c.userLimited(); ok {
		c.route.users.done(u)
	}
	g.forgetIdentity(c)
	c.route.live.Add(-1)
}

// opened counts an accepted connection and puts it in its route's hub:
// from now on, before the 101 is written, since a client that has its 101
// must get every broadcast sent after it. What is sent to the connection
// before Serve is held and follows the 101.
func (g *Gateway) opened(c *Conn) {
	c.route.stats.accepted.Add(1)
	g.access.opened(c)
	c.route.hub.add(c)
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
	c.route.hub.remove(c, nil)
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
		c.ws.CloseFor(CauseShutdown, websocket.StatusGoingAway, "server shutting down")
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
