// Package direct is the producer side of wsgate's mode: direct (ouistiti's
// direct mode). The gateway checks a client's handshake, writes the 101
// and hands the client's TCP socket itself to the producer over its UNIX
// socket; Server receives those sockets and serves them with wsgate's own
// engine and the gateway's Handler API, so that the producer has full RFC
// 6455 behaviour and its messages no gateway hop.
//
//	ln, _ := direct.Listen("/run/wsgate/echo")
//	srv := &direct.Server{Handler: app}
//	srv.Serve(ln)
//
// The hand-off (docs/backend-protocol.md, "Direct mode"): one message
// carrying the descriptor (SCM_RIGHTS) whose bytes are the client's
// address as a struct sockaddr_in or sockaddr_in6, then the bytes the
// client had sent past its request head, to the end of the connection.
package direct

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/frontdoor/netconn"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/sdk/producer"
)

// Listen listens on a UNIX socket for the gateway's hand-offs, as
// producer.Listen does (mode 0777 unless given, bound under a temporary
// name and renamed into place).
func Listen(path string, mode ...os.FileMode) (net.Listener, error) {
	return producer.Listen(path, mode...)
}

// Server serves the clients the gateway hands over.
type Server struct {
	// Handler serves them, as a route's application does in the daemon:
	// OnOpen (its refusal closes the client with 1008, since the 101 is
	// already sent), OnMessage, OnClose, rooms and broadcast among the
	// clients of this process.
	Handler gateway.Handler
	// Policy is the route's: message size, timeouts, pings. The zero
	// value is the engine's defaults.
	Policy gateway.Policy
	// Log receives errors; nil means slog.Default().
	Log *slog.Logger

	mu    sync.Mutex
	g     *gateway.Gateway
	route *gateway.Route
	lns   []net.Listener
}

// MaxBuffered bounds the bytes read ahead that may follow a descriptor:
// the gateway's read buffer is 4 KiB.
const MaxBuffered = 64 << 10

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) start() (*gateway.Gateway, *gateway.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g != nil {
		return s.g, s.route, nil
	}
	route := &gateway.Route{Path: "/", Handler: s.Handler, Policy: s.Policy, App: "direct"}
	g, err := gateway.New(s.log(), route)
	if err != nil {
		return nil, nil, err
	}
	if err := g.Start(context.Background()); err != nil {
		return nil, nil, err
	}
	s.g, s.route = g, route
	return g, route, nil
}

// Serve accepts the gateway's connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	g, route, err := s.start()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			c.Close()
			continue
		}
		go s.receive(g, route, uc)
	}
}

// Shutdown stops accepting and closes every client with 1001, waiting for
// them up to ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	lns, g := s.lns, s.g
	s.lns = nil
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	if g == nil {
		return nil
	}
	return g.Shutdown(ctx)
}

// Handoff is what one hand-off carried.
type Handoff struct {
	Conn     net.Conn
	Remote   net.Addr
	Buffered []byte
}

// Receive reads one hand-off from a connection of the gateway and closes
// it: the client's socket, its address, and the bytes read ahead.
func Receive(uc *net.UnixConn) (*Handoff, error) {
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, errors.New("direct: no descriptor in the hand-off")
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, errors.New("direct: no descriptor in the hand-off")
	}
	for _, fd := range fds[1:] {
		syscall.Close(fd)
	}
	f := os.NewFile(uintptr(fds[0]), "client")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	remote, size := wire.ParseSockaddr(buf[:n])
	rest, err := io.ReadAll(io.LimitReader(uc, MaxBuffered))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Handoff{Conn: nc, Remote: remote, Buffered: append(buf[size:n:n], rest...)}, nil
}

func (s *Server) receive(g *gateway.Gateway, route *gateway.Route, uc *net.UnixConn) {
	defer func() {
		if v := recover(); v != nil {
			s.log().Error("direct: panic receiving a client", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	h, err := Receive(uc)
	if err != nil {
		s.log().Warn("direct: hand-off failed", "err", err)
		return
	}
	req := &gateway.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1, Path: "/",
		RemoteAddr: h.Remote.String(), LocalAddr: h.Conn.LocalAddr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	p, err := g.Adopt(ctx, route, req)
	cancel()
	if err != nil {
		// The client has its 101: a refusal is a close frame (1008).
		reason := err.Error()
		if len(reason) > 123 {
			reason = reason[:123]
		}
		frame := append([]byte{0x88, byte(2 + len(reason)), 0x03, 0xF0}, reason...)
		h.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		h.Conn.Write(frame)
		h.Conn.Close()
		s.log().Info("direct: client refused", "remote", h.Remote, "err", fmt.Sprint(err))
		return
	}
	p.Serve(netconn.New(h.Conn, p.Conn.Engine(), h.Buffered))
}
