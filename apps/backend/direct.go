package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/ratelog"
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
	cfg   Config
	lines *ratelog.Limiter
}

// NewDirect returns the direct-mode handler for cfg (a UNIX socket).
func NewDirect(cfg Config) (*HandOff, error) {
	cfg.setDefaults()
	if cfg.Network != "unix" {
		return nil, errors.New("mode: direct needs a UNIX socket")
	}
	return &HandOff{cfg: cfg, lines: ratelog.New(1, time.Minute)}, nil
}

var _ gateway.HandOff = (*HandOff)(nil)

// Connect checks, before the 101, that the producer's socket is there: a
// producer that is not running (no socket file) refuses the client with
// 503. It does not connect: see Pass.
func (d *HandOff) Connect(ctx context.Context, req *gateway.Request) (gateway.Transfer, error) {
	fi, err := os.Stat(d.cfg.Address)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		reason := "producer unreachable: no socket at " + d.cfg.Address
		if err == nil {
			reason = "producer unreachable: " + d.cfg.Address + " is not a socket"
		}
		return nil, &gateway.RefuseError{Status: http.StatusServiceUnavailable, Reason: reason, Cause: gateway.CauseBackendDown}
	}
	return &transfer{path: d.cfg.Address, timeout: d.cfg.OpenTimeout, lines: d.lines}, nil
}

// OnOpen is never called for a HandOff route; the methods make HandOff a
// Handler, which every route has.
func (d *HandOff) OnOpen(context.Context, *gateway.Conn) error {
	return errors.New("mode: direct hands connections off")
}
func (d *HandOff) OnMessage(*gateway.Conn, gateway.Message)     {}
func (d *HandOff) OnClose(*gateway.Conn, websocket.CloseStatus) {}

type transfer struct {
	path    string
	timeout time.Duration
	lines   *ratelog.Limiter
}

func (t *transfer) Cancel() {}

// Pass connects to the producer and hands it the client, after the 101.
//
// The producer's connection is made here, not in Connect, and the
// descriptor is sent in the system call right after connect(2) returns:
// ouistiti's direct servers read it with recvmsg(MSG_DONTWAIT) as soon as
// accept(2) returns, and count a read that finds nothing as no client. A
// connection made before the 101 (to refuse with 503 when nobody answers)
// left the whole 101 write between the two, and under load such a server
// lost about one hand-off in ten. The trade: a producer whose socket file
// exists but that does not answer is found after the 101, so its client
// gets the 101 and then a close frame with 1013 (try again later) instead
// of a 503.
func (t *transfer) Pass(nc net.Conn, buffered []byte) error {
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
	s, retried, err := handOff(t.path, addr, int(f.Fd()), t.timeout)
	if retried > 0 {
		if ok, suppressed := t.lines.Allow("retry", time.Now()); ok {
			slog.Info("direct mode: the producer closed a connection before its client's socket was in it (it reads without waiting after accept); handed off again",
				"socket", t.path, "retries", retried, "suppressed", suppressed)
		}
	}
	if err != nil {
		return &gateway.UnreachableError{Err: err}
	}
	defer syscall.Close(s)
	for len(buffered) > 0 {
		n, err := syscall.Write(s, buffered) // blocking, bounded by SO_SNDTIMEO
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		buffered = buffered[n:]
	}
	return nil
}

// handOff connects to the UNIX socket at path and sends the descriptor fd
// with addr as the message's bytes, and returns the connected socket
// (blocking, with timeout as its send timeout for the writes that follow).
//
// connect(2) and sendmsg(2) are raw system calls back to back, with no Go
// scheduler step between them: a blocking connect through syscall.Connect
// could lose its P to another goroutine and wait for one after the kernel
// had already woken the server, which then found the connection empty.
// The socket is non-blocking for the two, so neither can stall the thread
// (a full backlog is retried until timeout).
func handOff(path string, addr []byte, fd int, timeout time.Duration) (sock, retried int, err error) {
	s, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, 0, err
	}
	sa, err := unixSockaddr(path)
	if err != nil {
		syscall.Close(s)
		return -1, 0, err
	}
	rights := syscall.UnixRights(fd)
	msg := syscall.Msghdr{}
	iov := syscall.Iovec{Base: &addr[0]}
	iov.SetLen(len(addr))
	msg.Iov, msg.Iovlen = &iov, 1
	msg.Control = &rights[0]
	msg.SetControllen(len(rights))
	deadline := time.Now().Add(timeout)
	for tries := 1; ; tries++ {
		_, _, e := syscall.RawSyscall(syscall.SYS_CONNECT, uintptr(s), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
		if e == 0 {
			_, _, e = syscall.RawSyscall(syscall.SYS_SENDMSG, uintptr(s), uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
			if e == 0 {
				break
			}
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN && time.Now().Before(deadline):
			// The backlog is full: the server is behind. Nothing was sent.
			time.Sleep(time.Millisecond)
			continue
		case (e == syscall.EPIPE || e == syscall.ECONNRESET) && tries < handOffTries:
			// The server took the connection and closed it before the
			// descriptor was in it: a server that reads it with
			// MSG_DONTWAIT right after accept(2) (as ouistiti's runtime
			// does) and found nothing yet. No system call sequence
			// closes that race (connect(2) wakes the server before
			// sendmsg(2) can run, and a virtual CPU can be stopped
			// between the two), so the hand-off is made again on a new
			// connection: the descriptor was never delivered.
			retried++
			syscall.Close(s)
			if s, err = syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0); err != nil {
				return -1, retried, err
			}
			continue
		}
		syscall.Close(s)
		return -1, retried, e
	}
	runtime.KeepAlive(addr)
	runtime.KeepAlive(rights)
	if err := syscall.SetNonblock(s, false); err != nil {
		syscall.Close(s)
		return -1, retried, err
	}
	tv := syscall.NsecToTimeval(timeout.Nanoseconds())
	syscall.SetsockoptTimeval(s, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	return s, retried, nil
}

// handOffTries bounds the attempts at one hand-off whose connection the
// server closed before the descriptor was in it.
const handOffTries = 5

// unixSockaddr is the struct sockaddr_un for path.
func unixSockaddr(path string) (syscall.RawSockaddrUnix, error) {
	sa := syscall.RawSockaddrUnix{Family: syscall.AF_UNIX}
	if len(path) >= len(sa.Path) {
		return sa, fmt.Errorf("socket path too long: %s", path)
	}
	for i := range len(path) {
		sa.Path[i] = int8(path[i])
	}
	return sa, nil
}
