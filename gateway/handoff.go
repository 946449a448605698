package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/websocket"
)

// CauseHandOffTLS refuses a TLS client on a route that hands connections
// off: the backend would get the TCP socket in the middle of a TLS
// session it cannot continue.
const CauseHandOffTLS = "handoff_tls"

// HandOff is an application that takes the client's connection itself
// once the 101 is written (ouistiti's direct mode): the backend gets the
// TCP socket and speaks RFC 6455 on it, and the gateway forgets the
// connection. The gateway runs its usual checks (RFC 6455, Origin,
// limits) first and counts the connection as handed off; it negotiates no
// extension, since the backend could not know of one.
type HandOff interface {
	Handler
	// Connect reaches the backend before the 101, so that a backend that
	// is not there refuses the client (a RefuseError, 503 for one that is
	// down) rather than after the upgrade.
	Connect(ctx context.Context, req *Request) (Transfer, error)
}

// UnreachableError is a Transfer's Pass failing because the backend could
// not be reached after the 101 was written: the client is closed with 1013
// (try again later) rather than the connection just dropped.
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return "backend unreachable: " + e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// Transfer is one hand-off between Connect and the 101.
type Transfer interface {
	// Pass gives the backend the client's connection and the bytes the
	// front door had read past the request head (frames the client sent
	// without waiting for the 101). The caller closes its own copy of
	// the connection afterwards.
	Pass(nc net.Conn, buffered []byte) error
	// Cancel ends a transfer whose 101 could not be written.
	Cancel()
}

// handOff completes Accept for a HandOff route, after the admission
// checks: the connection is released from the limits at once, since the
// gateway will not hold it.
func (g *Gateway) handOff(ctx context.Context, route *Route, req *Request, ho HandOff, hs *websocket.Handshake) (*Pending, *errRefusal) {
	defer g.connDone()
	defer g.limits.done(req.ClientIP)
	if req.TLS != nil {
		return nil, &errRefusal{http.StatusForbidden, CauseHandOffTLS, "direct mode cannot hand over a TLS connection"}
	}
	tr, err := ho.Connect(ctx, req)
	if err != nil {
		status, cause := refuseStatus(err)
		return nil, &errRefusal{status, cause, err.Error()}
	}
	h, err := hs.Header(http.Header{}, selectSubprotocol(route.Policy.Subprotocols, hs.Protocols))
	if err != nil {
		tr.Cancel()
		return nil, &errRefusal{http.StatusInternalServerError, CauseApplicationFail, err.Error()}
	}
	return &Pending{hs: hs, transfer: tr, header: h, route: route}, nil
}

type errRefusal struct {
	status        int
	cause, reason string
}

// Adopt takes a connection whose opening handshake another process
// completed and handed over (the receiving side of mode: direct) onto
// route: there is no HTTP request to check and no 101 to write. The
// route's OnOpen runs with req; if it refuses, Adopt returns the error and
// the caller closes the connection (the client already has its 101, so
// the refusal can only be a close frame). Otherwise the connection is in
// the route's hub and counted as accepted, and the caller serves it with
// Pending.Serve.
func (g *Gateway) Adopt(ctx context.Context, route *Route, req *Request) (*Pending, error) {
	if !g.admit() {
		return nil, errors.New("shutting down")
	}
	if req.ClientIP == "" {
		req.ClientIP = route.Policy.clientIP(req)
	}
	if cause, status, _ := g.limits.admit(req.ClientIP, time.Now()); cause != "" {
		g.connDone()
		route.stats.refuse(status, cause)
		return nil, RefuseFor(status, cause, "limit reached: "+cause)
	}
	hs := &websocket.Handshake{Version: 13}
	c := g.newConn(route, req, hs)
	if err := g.onOpen(ctx, c); err != nil {
		g.drop(c)
		status, cause := refuseStatus(err)
		route.stats.refuse(status, cause)
		return nil, err
	}
	g.opened(c)
	return &Pending{Conn: c, hs: hs}, nil
}
