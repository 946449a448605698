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

	"golang.org/x/sys/unix"

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
//
// connect(2) wakes the server before sendmsg(2) can run, so such a server
// can still read nothing and close the connection with the descriptor
// unread. Pass then finds the connection reset (see settled) and hands
// the client off again on a new one, up to handOffTries times in all and
// until the open timeout.
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
	// shares; that copy is closed after Pass.)
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		return err
	}
	// Only a hand-off that is the descriptor's message alone, of the
	// size ouistiti sends (a struct sockaddr_in), is watched and made
	// again: a reset connection then means the message was not read at
	// all. With more behind it (the client's early bytes), or a longer
	// address that a server written for ouistiti reads only in part, a
	// reset could follow a read that took the descriptor, and a second
	// hand-off would give the server the client twice.
	watch := len(buffered) == 0 && len(addr) == wire.SockaddrInLen
	deadline := time.Now().Add(t.timeout)
	retried := 0
	defer func() {
		if retried > 0 {
			if ok, suppressed := t.lines.Allow("retry", time.Now()); ok {
				slog.Info("direct mode: the producer closed a connection without reading its client's socket (it reads without waiting after accept); handed off again",
					"socket", t.path, "retries", retried, "suppressed", suppressed)
			}
		}
	}()
	for {
		s, r, err := handOff(t.path, addr, int(f.Fd()), deadline, handOffTries-retried)
		retried += r
		if err != nil {
			return &gateway.UnreachableError{Err: err}
		}
		if !watch {
			err := writeRest(s, buffered, deadline)
			syscall.Close(s)
			return err
		}
		taken := settled(s, deadline)
		if taken {
			return nil
		}
		if retried++; retried >= handOffTries || !time.Now().Before(deadline) {
			return &gateway.UnreachableError{Err: fmt.Errorf("the producer closed %d connections without reading the client's socket", retried)}
		}
	}
}

// writeRest writes the client's early bytes after the descriptor's
// message, blocking until deadline, for a producer that reads its
// connection to the end.
func writeRest(s int, rest []byte, deadline time.Time) error {
	if len(rest) == 0 {
		return nil
	}
	if err := syscall.SetNonblock(s, false); err != nil {
		return err
	}
	tv := syscall.NsecToTimeval(max(time.Until(deadline), time.Millisecond).Nanoseconds())
	syscall.SetsockoptTimeval(s, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	for len(rest) > 0 {
		n, err := syscall.Write(s, rest)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// settled waits, until deadline, to learn whether the producer took the
// descriptor's message sent on s (non-blocking), and closes s. It was
// taken once nothing of it is left unread in the producer's end
// (SIOCOUTQ counts what the peer has not consumed), or once the producer
// closed its end after reading it (end of file). It was not when the
// producer closed its end with the message unread: Linux then resets the
// connection (ECONNRESET), and the descriptor in the message is closed
// with it. Anything else, including the deadline (a producer still
// busy with others), counts as taken, since a second hand-off of a
// descriptor the producer does hold would be worse than none.
func settled(s int, deadline time.Time) bool {
	syscall.Shutdown(s, syscall.SHUT_WR) // a producer reading to the end stops here
	f := os.NewFile(uintptr(s), "producer")
	defer f.Close()
	var b [1]byte
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 50*time.Millisecond) {
		// The order matters: a server that closes with the message
		// unread sets the reset on this end before it frees the message,
		// so an empty queue read first and no error read after is a
		// message read, never one thrown away.
		unread, err := unix.IoctlGetInt(s, unix.SIOCOUTQ)
		if e, _ := syscall.GetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_ERROR); e == int(syscall.ECONNRESET) {
			return false
		}
		if err == nil && unread == 0 {
			return true
		}
		if until := time.Now().Add(wait); until.Before(deadline) {
			f.SetReadDeadline(until)
		} else {
			f.SetReadDeadline(deadline)
		}
		_, err = f.Read(b[:])
		switch {
		case errors.Is(err, syscall.ECONNRESET):
			return false
		case errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline):
			continue
		}
		return true
	}
}

// handOff connects to the UNIX socket at path and sends the descriptor fd
// with addr as the message's bytes, and returns the connected socket
// (non-blocking).
//
// connect(2) and sendmsg(2) are raw system calls back to back, with no Go
// scheduler step between them: a blocking connect through syscall.Connect
// could lose its P to another goroutine and wait for one after the kernel
// had already woken the server, which then found the connection empty.
// The socket is non-blocking for the two, so neither can stall the thread
// (a full backlog is retried until timeout).
func handOff(path string, addr []byte, fd int, deadline time.Time, tries int) (sock, retried int, err error) {
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
	for {
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
		case (e == syscall.EPIPE || e == syscall.ECONNRESET) && retried+1 < tries && time.Now().Before(deadline):
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
	return s, retried, nil
}

// handOffTries bounds the attempts at one hand-off whose connection the
// server closed without reading the descriptor. Under load one client can
// meet the race several times in a row (the server, woken by connect(2),
// takes the CPU from the gateway's thread each time); 32 is far past
// what was seen (see TestHandOffsToDontwaitServer) and still bounds a
// server that never reads.
const handOffTries = 32

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
