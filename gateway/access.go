package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/monoclock"
	"github.com/wsgate/wsgate/internal/ratelog"
	"github.com/wsgate/wsgate/websocket"
)

// The access log: a line at info for every WebSocket when it ends, and
// for every refused upgrade, so that an operator sees each client and
// each refusal without debug logging. Refusals come in floods (a producer
// outage refuses every client; an attack refuses thousands a second), so
// their lines are limited per cause: refusalBurst lines, then one per
// refusalEvery, and the next line says how many were left out. The
// metrics count every one.

const (
	refusalBurst = 10
	refusalEvery = time.Second
)

type accessLog struct {
	log     *slog.Logger
	enabled atomic.Bool
	lines   *ratelog.Limiter // refusal lines, and closes without the access log
}

func (a *accessLog) init(log *slog.Logger) {
	a.log = log.With("log", "access")
	a.enabled.Store(true)
	a.lines = ratelog.New(refusalBurst, refusalEvery)
}

// allow says whether a refusal line for cause may be written now, and how
// many were suppressed since the last one.
func (a *accessLog) allow(cause string, now time.Time) (bool, int) { return a.lines.Allow(cause, now) }

// refused counts a refused upgrade and logs it.
func (g *Gateway) refused(route *Route, req *Request, herr *websocket.HandshakeError, cause string) {
	route.stats.refuse(herr.Status, cause)
	a := &g.access
	if !a.enabled.Load() {
		return
	}
	ok, suppressed := a.allow(cause, time.Now())
	if !ok {
		return
	}
	client := req.ClientIP
	if client == "" {
		client = route.Policy.clientIP(req)
	}
	attrs := []any{"route", route.Path, "client", client, "peer", req.RemoteAddr, "status", herr.Status,
		"cause", cause, "reason", herr.Reason}
	if o := req.HeaderValue("Origin"); o != "" {
		attrs = append(attrs, "origin", o)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	a.log.Info("websocket refused", attrs...)
}

// opened logs, at debug, a WebSocket about to get its 101: its end is
// the access log's line, its start is for following one connection.
func (a *accessLog) opened(c *Conn) {
	if !a.enabled.Load() || !a.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	a.log.Debug("websocket opened", "route", c.route.Path, "conn", c.id, "client", c.clientIP(),
		"peer", c.peerAddr(), "subprotocol", c.proto, "extensions", c.ext)
}

// ended logs a WebSocket that has ended. Without the access log, a
// connection the server closed for a cause other than the application's
// own choice (a slow consumer, a producer gone, a timeout) is still
// logged, limited per cause as refusals are: an operator sees every
// client the gateway closed without debug logging.
func (a *accessLog) ended(c *Conn, st websocket.Stats, s websocket.CloseStatus) {
	if !a.enabled.Load() {
		if st.CloseCause == "" || st.CloseCause == websocket.CauseApplication || st.CloseCause == CauseShutdown {
			return
		}
		ok, suppressed := a.allow("close "+st.CloseCause, time.Now())
		if !ok {
			return
		}
		attrs := []any{"route", c.route.Path, "conn", c.id, "client", c.clientIP(), "user", c.Identity().UserName(), "cause", st.CloseCause,
			"close_sent", uint16(st.CloseSent.Code), "close_sent_reason", st.CloseSent.Reason}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
		a.log.Warn("websocket closed by the server", attrs...)
		return
	}
	a.log.Info("websocket closed",
		"route", c.route.Path, "conn", c.id, "client", c.clientIP(), "peer", c.peerAddr(),
		"subprotocol", c.proto, "extensions", c.ext, "duration", (monoclock.Now() - c.start).Round(time.Millisecond),
		"msgs_in", st.MessagesIn, "bytes_in", st.BytesIn, "msgs_out", st.MessagesOut, "bytes_out", st.BytesOut,
		"close_sent", uint16(st.CloseSent.Code), "close_sent_reason", st.CloseSent.Reason,
		"close_received", uint16(st.CloseReceived.Code), "close_received_reason", st.CloseReceived.Reason,
		"closed_by", closedBy(st, s), "cause", st.CloseCause, "dropped", st.Dropped, "user", c.Identity().UserName())
}

// closedBy says who ended a connection: the client (its close frame came
// first), the server (it sent the first close frame), or neither, when the
// connection was lost or cut without a closing handshake.
func closedBy(st websocket.Stats, s websocket.CloseStatus) string {
	switch {
	case s.Remote && st.CloseReceived.Code != 0:
		return "client"
	case !s.Remote && st.CloseSent.Code != 0:
		return "server"
	case s.Code == websocket.StatusAbnormalClosure && s.Remote:
		return "lost"
	}
	return "aborted"
}

// SetAccessLog turns the access log on (the default) or off.
func (g *Gateway) SetAccessLog(on bool) { g.access.enabled.Store(on) }

// SetLimits sets the admission limits; a reload may change them while
// connections are open (those open stay open).
func (g *Gateway) SetLimits(l Limits) { g.limits.set(l) }
