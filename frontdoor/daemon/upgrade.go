package daemon

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/frontdoor/netconn"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Upgrader is the net/http front door of a gateway. Requests that are not
// WebSocket upgrades on a route's path go to Fallback.
type Upgrader struct {
	Gateway  *gateway.Gateway
	Fallback http.Handler
	Log      *slog.Logger
	// HandshakeTimeout bounds writing the 101.
	HandshakeTimeout time.Duration
}

func (u *Upgrader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := u.Gateway.Route(r.URL.Path)
	if route == nil || !websocket.IsUpgrade(r.Header) {
		u.Fallback.ServeHTTP(w, r)
		return
	}
	req := &gateway.Request{
		Method: r.Method, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header,
		RemoteAddr: r.RemoteAddr, TLS: r.TLS,
	}
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if u.HandshakeTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, u.HandshakeTimeout)
	}
	p, herr := u.Gateway.Accept(ctx, route, req)
	cancel()
	if herr != nil {
		for k, vs := range herr.Header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(http.StatusText(herr.Status))+1))
		w.WriteHeader(herr.Status)
		if r.Method != http.MethodHead {
			w.Write([]byte(http.StatusText(herr.Status) + "\n"))
		}
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		u.Log.Error("cannot take over the connection for a WebSocket", "err", err)
		p.Abandon()
		http.Error(w, "upgrade not possible on this connection", http.StatusInternalServerError)
		return
	}
	// A client may send frames right behind its request, before it sees the
	// 101; whatever net/http has read ahead belongs to the engine.
	buffered := takeBuffered(brw.Reader)
	nc.SetDeadline(time.Time{})
	if u.HandshakeTimeout > 0 {
		nc.SetWriteDeadline(time.Now().Add(u.HandshakeTimeout))
	}
	resp := p.AppendResponse(make([]byte, 0, 256))
	if _, err := nc.Write(resp); err != nil {
		u.Log.Debug("writing the 101 failed", "peer", r.RemoteAddr, "err", err)
		nc.Close()
		p.Abandon()
		return
	}
	nc.SetWriteDeadline(time.Time{})
	// Serve returns at once: netconn parks the connection, or moves it to
	// a fresh goroutine, so the stack net/http built up for this request
	// is freed when this handler returns.
	p.Serve(netconn.New(nc, p.Conn.Engine(), buffered))
}

func takeBuffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n)
	return append([]byte(nil), b...)
}
