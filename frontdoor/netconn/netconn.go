// Package netconn drives a websocket.Conn over a net.Conn: the standalone
// daemon's front door for TCP, TLS and UNIX-socket connections.
//
// For sockets with a file descriptor (TCP and UNIX) it reads through
// syscall.RawConn: the read buffer is taken from the pool inside the read
// callback and returned the moment the socket says EAGAIN, so a connection
// waiting for its peer holds no buffer, only its goroutine. Writes are
// attempted without blocking from the sending goroutine (writev of header
// and payload, no copy); the engine falls back to a writer goroutine when
// the socket is full.
//
// A connection that stays quiet for ParkAfter gives up its goroutine too:
// it is parked on a process-wide epoll instance and a new goroutine picks
// it up when bytes arrive (or when it is closed). An idle connection then
// costs its socket and the engine's state, no stack and no buffer. Active
// connections never park, so their reads stay on Go's own netpoller with
// no extra system call.
//
// TLS connections go through crypto/tls, which keeps its own record buffers;
// reads there hold a pooled buffer while blocked, and they never park.
package netconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/websocket"
)

// readSize is the read buffer taken per read. It is held only while bytes
// are parsed, so its size costs nothing on idle connections; being large
// lets a big frame arrive in one read and be delivered without copying
// (a 64 KiB echo took 3.3 reads per message with 32 KiB, 1.3 with this,
// counted with strace -c).
const readSize = 128 << 10

// maxIovec bounds one writev call; longer batches loop. The iovec array
// lives on the write callback's stack, not in the Transport, so an idle
// connection does not carry it.
const maxIovec = 16

// DefaultParkAfter is how long a connection must be quiet before its
// goroutine is released. Long enough that a connection exchanging
// messages never parks (parking costs an epoll_ctl and a new goroutine on
// wake-up), short enough that a server holding many idle connections sheds
// their stacks quickly.
const DefaultParkAfter = time.Second

// errParked ends a reading goroutine whose connection is parked.
var errParked = errors.New("netconn: parked")

const (
	stateRunning = iota
	stateParked
)

// Serve runs ws, already started on t, until the connection ends, then
// closes the socket and releases ws. buffered holds bytes already read from
// the socket after the handshake (a client may send frames before it sees
// the 101); they are parsed first. Serve recovers from panics: the
// connection is failed with 1011 and the rest of the process is unaffected.
func (d *Transport) Serve(ws *websocket.Conn, buffered []byte, log *slog.Logger) {
	d.attach(ws, buffered, log)
	d.serve()
}

// attach records what serving needs, so that any goroutine (this one, or
// a parked connection's next reader) can pick the connection up.
func (d *Transport) attach(ws *websocket.Conn, buffered []byte, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	d.ws, d.log, d.buffered = ws, log, buffered
}

// Go serves ws like Serve but returns at once. A connection with nothing
// buffered parks right away, before any goroutine is started for it: a
// burst of new connections that then wait (the usual pattern of clients
// that subscribe and listen) never has a goroutine each, and the runtime,
// which keeps the descriptor of every goroutine it ever ran at once, never
// grows to one per connection. The first bytes start the reader.
func (d *Transport) Go(ws *websocket.Conn, buffered []byte, log *slog.Logger) {
	d.attach(ws, buffered, log)
	if len(buffered) == 0 && d.parkAfter > 0 && d.park() {
		return
	}
	go d.serve()
}

// resume is a parked connection's new reading goroutine.
func (d *Transport) resume() { d.serve() }

// serve reads until the connection ends or parks; when it ends, it tears
// the connection down.
func (d *Transport) serve() {
	ws, log := d.ws, d.log
	defer func() {
		if v := recover(); v != nil {
			log.Error("websocket connection teardown panicked", "panic", v, "stack", string(debug.Stack()))
			d.Close()
		}
	}()
	err := d.run(ws, log)
	if err == errParked {
		return
	}
	opts := ws.Options()
	linger := ws.Stop(err)
	ws.WaitFlushed(opts.CloseTimeout)
	if linger {
		d.linger(opts.CloseTimeout)
	}
	d.Close()
	ws.Release()
}

// Serve wraps nc, starts ws on it and serves it: NewTransport, Start and
// Transport.Serve in one call, for front doors with nothing to do between.
func Serve(ws *websocket.Conn, nc net.Conn, buffered []byte, log *slog.Logger) {
	t := NewTransport(nc, ws.Options())
	t.Start(ws.Start)
	t.Serve(ws, buffered, log)
}

// Start hands the engine the transport to write through, by calling start
// (websocket.Conn.Start, or gateway.Pending.Start). A socket with a
// descriptor is offered as a websocket.NonblockingWriter; a TLS connection,
// which cannot write without blocking, is not.
func (d *Transport) Start(start func(websocket.Transport)) {
	if d.rc != nil {
		start(fdTransport{d})
		return
	}
	start(d)
}

// fdTransport adds non-blocking writes to a Transport with a descriptor.
type fdTransport struct{ *Transport }

// TryWriteBuffers implements websocket.NonblockingWriter.
func (f fdTransport) TryWriteBuffers(bufs [][]byte) (int, error) { return f.tryWriteBuffers(bufs) }

// run feeds ws until reading ends and returns the reason, or errParked.
func (d *Transport) run(ws *websocket.Conn, log *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("websocket connection panicked", "panic", v, "stack", string(debug.Stack()))
			ws.Close(websocket.StatusInternalError, "internal error")
			err = &websocket.ProtocolError{Code: websocket.StatusInternalError, Reason: fmt.Sprint(v)}
		}
	}()
	if b := d.buffered; len(b) > 0 {
		d.buffered = nil
		if err := ws.Feed(b); err != nil {
			return err
		}
	}
	for {
		if d.parkAfter > 0 {
			d.armDeadline()
		}
		err := d.readOnce(ws)
		if err == nil {
			continue
		}
		if d.parkAfter > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			// Quiet for parkAfter: release this goroutine.
			d.nc.SetReadDeadline(time.Time{})
			d.deadline = time.Time{}
			if d.park() {
				return errParked
			}
			continue
		}
		return err
	}
}

// armDeadline keeps a read deadline parkAfter ahead of the last read,
// moving it only when half of it has passed, so that a busy connection
// does not reset a timer on every read.
func (d *Transport) armDeadline() {
	now := time.Now()
	if d.deadline.IsZero() || d.deadline.Sub(now) < d.parkAfter/2 {
		d.deadline = now.Add(d.parkAfter)
		d.nc.SetReadDeadline(d.deadline)
	}
}

// Transport is a websocket.Transport over a net.Conn.
type Transport struct {
	nc           net.Conn
	rc           syscall.RawConn // nil when there is no descriptor (TLS)
	tls          bool
	writeTimeout time.Duration

	// Scratch for the RawConn callbacks, which are bound once in newDriver
	// so that no closure is allocated per read or write.
	rfn  func(fd uintptr) bool
	rbuf *[]byte
	rn   int
	rerr error

	wfn   func(fd uintptr) bool
	wbufs [][]byte
	wn    int
	werr  error

	// Serving state, kept here so that a parked connection can be resumed
	// by a new goroutine.
	ws        *websocket.Conn
	log       *slog.Logger
	buffered  []byte
	parkAfter time.Duration // 0: never park
	deadline  time.Time
	state     parkState
	pollID    uint64
	// registered: the socket is in the poller's interest list.
	registered bool
}

// NewTransport wraps nc for a connection with the given options.
func NewTransport(nc net.Conn, opts websocket.Options) *Transport {
	d := &Transport{nc: nc, writeTimeout: opts.WriteTimeout}
	if _, ok := nc.(*tls.Conn); ok {
		d.tls = true
	} else if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			d.rc = rc
			d.rfn = d.readFD
			d.wfn = d.writeFD
			if canPark {
				d.parkAfter = DefaultParkAfter
			}
		}
	}
	return d
}

// SetParkAfter changes how long the connection must be quiet before its
// goroutine is released; 0 or less never parks. Call it before Serve.
func (d *Transport) SetParkAfter(after time.Duration) {
	if d.rc == nil || !canPark || after < 0 {
		after = 0
	}
	d.parkAfter = after
}

// readOnce waits for input, reads what is there and feeds it.
func (d *Transport) readOnce(ws *websocket.Conn) error {
	if d.rc == nil {
		b := websocket.GetBuffer(readSize)
		n, err := d.nc.Read((*b)[:cap(*b)])
		var ferr error
		if n > 0 {
			ferr = ws.Feed((*b)[:n])
		}
		websocket.PutBuffer(b)
		if ferr != nil {
			return ferr
		}
		return err
	}
	err := d.rc.Read(d.rfn)
	b, n, rerr := d.rbuf, d.rn, d.rerr
	d.rbuf, d.rerr = nil, nil
	if err != nil {
		websocket.PutBuffer(b)
		return err
	}
	if n > 0 {
		ferr := ws.Feed((*b)[:n])
		websocket.PutBuffer(b)
		if ferr != nil {
			return ferr
		}
		return nil
	}
	websocket.PutBuffer(b)
	if rerr != nil {
		return rerr
	}
	return io.EOF
}

// readFD is the RawConn read callback. It takes a buffer only for the
// duration of a read that finds data; on EAGAIN it gives it back and asks
// the poller to wait.
func (d *Transport) readFD(fd uintptr) bool {
	b := websocket.GetBuffer(readSize)
	for {
		n, err := syscall.Read(int(fd), (*b)[:cap(*b)])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			websocket.PutBuffer(b)
			return false
		}
		if n < 0 {
			n = 0
		}
		d.rbuf, d.rn, d.rerr = b, n, err
		return true
	}
}

// tryWriteBuffers writes what the socket takes without waiting.
func (d *Transport) tryWriteBuffers(bufs [][]byte) (int, error) {
	total := 0
	for len(bufs) > 0 {
		k := min(len(bufs), maxIovec)
		d.wbufs = bufs[:k]
		err := d.rc.Write(d.wfn)
		d.wbufs = nil
		if err != nil {
			return total, err
		}
		if d.werr != nil {
			err, d.werr = d.werr, nil
			return total, err
		}
		total += d.wn
		want := 0
		for _, b := range bufs[:k] {
			want += len(b)
		}
		if d.wn < want {
			return total, nil
		}
		bufs = bufs[k:]
	}
	return total, nil
}

// writeFD is the RawConn write callback: one write or writev, never waiting.
func (d *Transport) writeFD(fd uintptr) bool {
	var iov [maxIovec]syscall.Iovec
	cnt := 0
	for _, b := range d.wbufs {
		if len(b) == 0 {
			continue
		}
		iov[cnt].Base = &b[0]
		iov[cnt].SetLen(len(b))
		cnt++
	}
	d.wn, d.werr = 0, nil
	if cnt > 0 {
		for {
			var r uintptr
			var e syscall.Errno
			if cnt == 1 {
				// write(2) spares the kernel the iovec import.
				r, _, e = syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
			} else {
				r, _, e = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
			}
			if e == syscall.EINTR {
				continue
			}
			if e != 0 && e != syscall.EAGAIN {
				d.werr = e
			} else if e == 0 {
				d.wn = int(r)
			}
			break
		}
	}
	return true
}

// WriteBuffers implements websocket.Transport: a blocking vectored write,
// bounded by the write timeout.
func (d *Transport) WriteBuffers(bufs [][]byte) error {
	if d.writeTimeout > 0 {
		d.nc.SetWriteDeadline(time.Now().Add(d.writeTimeout))
	}
	if d.tls {
		// One Write per batch, so crypto/tls builds full records instead of
		// one record per frame.
		total := 0
		for _, b := range bufs {
			total += len(b)
		}
		buf := websocket.GetBuffer(total)
		for _, b := range bufs {
			*buf = append(*buf, b...)
		}
		_, err := d.nc.Write(*buf)
		websocket.PutBuffer(buf)
		return err
	}
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(d.nc)
	return err
}

// Close implements websocket.Transport. A parked connection has no reader
// to notice, so Close resumes it: the new reader finds the socket closed
// and tears the connection down.
func (d *Transport) Close() error {
	err := d.nc.Close()
	d.unpark()
	return err
}

// linger half-closes the connection and discards input until the peer
// closes or the timeout passes, so the close frame already sent is not lost
// to a reset.
func (d *Transport) linger(timeout time.Duration) {
	if cw, ok := d.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	d.nc.SetReadDeadline(time.Now().Add(timeout))
	var scratch [512]byte
	for {
		if _, err := d.nc.Read(scratch[:]); err != nil {
			return
		}
	}
}
