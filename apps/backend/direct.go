package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// HandOff is ouistiti's direct mode: after the 101 the client's TCP socket
// itself goes to the producer, which then speaks RFC 6455 on it; the
// gateway forgets the connection (counted as handed off).
//
// The hand-off, on a new connection to the producer's UNIX socket:
//
//  1. one message carrying the client's descriptor (SCM_RIGHTS), whose
//     bytes are the client's address as getpeername(2) gives it: a
//     struct sockaddr_in (16 bytes) for IPv4, as ouistiti sends it, or a
//     struct sockaddr_in6 (28 bytes) for IPv6, the family first (host
//     byte order) so a receiver knows which;
//  2. then the bytes the client sent after its request head that the
//     gateway had already read (frames sent without waiting for the
//     101), as they are, up to the end of the connection, which the
//     gateway closes. A producer written for ouistiti never reads them;
//     one that reads its UNIX connection to the end gets them, and the
//     Go SDK's direct listener does.
type HandOff struct {
	cfg Config
}

// NewDirect returns the direct-mode handler for cfg (a UNIX socket).
func NewDirect(cfg Config) (*HandOff, error) {
	cfg.setDefaults()
	if cfg.Network != "unix" {
		return nil, errors.New("mode: direct needs a UNIX socket")
	}
	return &HandOff{cfg: cfg}, nil
}

var _ gateway.HandOff = (*HandOff)(nil)

// Connect reaches the producer before the 101: one that is not listening
// refuses the client with 503.
func (d *HandOff) Connect(ctx context.Context, req *gateway.Request) (gateway.Transfer, error) {
	dl := net.Dialer{Timeout: d.cfg.OpenTimeout}
	c, err := dl.DialContext(ctx, "unix", d.cfg.Address)
	if err != nil {
		return nil, &gateway.RefuseError{Status: http.StatusServiceUnavailable, Reason: "producer unreachable: " + err.Error(), Cause: gateway.CauseBackendDown}
	}
	return &transfer{uc: c.(*net.UnixConn), timeout: d.cfg.OpenTimeout}, nil
}

// OnOpen is never called for a HandOff route; the methods make HandOff a
// Handler, which every route has.
func (d *HandOff) OnOpen(context.Context, *gateway.Conn) error {
	return errors.New("mode: direct hands connections off")
}
func (d *HandOff) OnMessage(*gateway.Conn, gateway.Message)     {}
func (d *HandOff) OnClose(*gateway.Conn, websocket.CloseStatus) {}

type transfer struct {
	uc      *net.UnixConn
	timeout time.Duration
}

func (t *transfer) Cancel() { t.uc.Close() }

func (t *transfer) Pass(nc net.Conn, buffered []byte) error {
	defer t.uc.Close()
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("direct mode hands over TCP connections only, not %T", nc)
	}
	addr := wire.AppendSockaddr(nil, tc.RemoteAddr().(*net.TCPAddr))
	f, err := tc.File() // a duplicate descriptor, for the producer
	if err != nil {
		return err
	}
	defer f.Close()
	// The producer gets the socket as accept(2) would give it: blocking.
	// (O_NONBLOCK belongs to the open file, which the gateway's copy
	// shares; that copy is closed next.)
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		return err
	}
	t.uc.SetWriteDeadline(time.Now().Add(t.timeout))
	if _, _, err := t.uc.WriteMsgUnix(addr, syscall.UnixRights(int(f.Fd())), nil); err != nil {
		return err
	}
	if len(buffered) > 0 {
		if _, err := t.uc.Write(buffered); err != nil {
			return err
		}
	}
	return nil
}
