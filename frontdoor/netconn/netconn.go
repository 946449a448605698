// Package netconn is the daemon's front door over a net.Conn (TCP, TLS,
// UNIX sockets): it implements websocket.Transport and decides how a
// connection waits for bytes, and the engine's Conn.Serve does the rest.
//
// For sockets with a file descriptor (TCP and UNIX) it reads through
// syscall.RawConn: the read buffer is taken from the pool inside the read
// callback and returned the moment the socket says EAGAIN, so a connection
// waiting for its peer holds no buffer, only its goroutine. What is read
// is parsed, and messages delivered, inside that callback, so that a read
// shorter than the buffer can be followed by a wait instead of another
// read (see readFD): one read per message, as nginx reads. Writes are
// attempted without blocking from the sending goroutine (write or writev of
// header and payload); the engine falls back to a writer goroutine when the
// socket is full.
//
// A connection that stays quiet for DefaultParkAfter gives up its
// goroutine too: it is parked on a process-wide epoll instance and a new
// goroutine picks it up when bytes arrive (or when it is closed). An idle
// connection then costs its socket and the engine's state, no stack and no
// buffer. Active connections never park, so their reads stay on Go's own
// netpoller with no extra system call.
//
// A TLS 1.3 connection accepted through tlsrec's listener (the daemon's)
// is taken over from crypto/tls once its 101 is written: its record layer
// runs here (tlsrec.Layer), over the bare socket, so it reads, writes,
// parks and detaches exactly like a plain socket, with records opened in
// the read buffer and sealed into the write buffer. An idle one keeps its
// two cipher states on top of what a plain one keeps.
//
// Other TLS connections (TLS 1.2, crypto/tls's own listener) go through
// crypto/tls, which keeps its own record buffers; a read there holds a
// pooled buffer while it waits. They park too, by the same deadline:
// crypto/tls asks its socket for bytes only when it holds no complete
// record, and a deadline error leaves its state usable (it is a temporary
// net.Error), so when the deadline passes nothing readable is hidden
// inside crypto/tls and the socket's readability says when to read again.
// What a parked one keeps is crypto/tls's own: its Conn, the two
// directions' cipher states, and the input buffer at the size its largest
// record made it.
package netconn

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/frontdoor/tlsrec"
	"github.com/wsgate/wsgate/internal/bufpool"
	"github.com/wsgate/wsgate/internal/monoclock"
	"github.com/wsgate/wsgate/websocket"
)

// readSize is the read buffer taken per read. It is held only while bytes
// are parsed, so its size costs nothing on idle connections; being large
// lets a big frame arrive in one read and be delivered without copying
// (a 64 KiB echo took 3.3 reads per message with 32 KiB, 1.3 with this,
// counted with strace -c).
const readSize = 128 << 10

// tlsReadSize is the buffer for a read through crypto/tls, which returns
// at most one record's plaintext (16 KiB, RFC 8446 §5.1) per Read.
const tlsReadSize = 16 << 10

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

const (
	stateRunning = iota
	stateParked
)

// armDeadline keeps a read deadline parkAfter ahead of the last read,
// moving it only when half of it has passed, so that a busy connection
// does not reset a timer on every read.
func (d *conn) armDeadline() {
	now := time.Now()
	at := monoclock.At(now)
	if d.deadline == 0 || d.deadline-at < d.parkAfter/2 {
		d.deadline = at + d.parkAfter
		d.nc.SetReadDeadline(now.Add(d.parkAfter))
	}
}

// stream is what a conn reads and writes: the net.Conn it was made with,
// or, for a plain socket resumed after parking, an *os.File on the same
// socket (see detach).
type stream interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// conn is a websocket.Transport over a net.Conn.
//
// A plain socket gives up its stream while parked: only its descriptor is
// kept (detach). nc and rc change then, and again when the
// connection resumes; only the reading goroutine changes them, and it
// reads them without a lock. mu guards them, rawFD and closed against
// the other goroutines: senders, Close.
type conn struct {
	nc stream // nil while detached
	// rc is the socket's descriptor: nil when there is none, or while
	// detached. Under crypto/tls (tls set) it is the socket under TLS,
	// which parking watches and nothing reads or writes.
	rc           syscall.RawConn
	writeTimeout time.Duration

	mu      sync.Mutex
	rawFD   int32 // the socket while detached; -1 otherwise
	writers int32 // blocking writes in progress on nc: it may not be detached under them

	tls        bool
	detachable bool // a plain socket, parked without its stream
	closed     bool // under mu
	handedOff  bool // the first ReadTo has moved off the caller's goroutine
	// registered: the socket is in the poller's interest list.
	registered bool

	// sl is set for a TLS connection whose record layer was taken over
	// (see tlsrec and sealed.go): a plain socket to everything above, with
	// records sealed on the way out and opened on the way in.
	sl *sealed

	// io is the scratch of the RawConn callbacks while the socket has a
	// stream; a detached socket gives it back (a parked connection keeps
	// none), and a write to one borrows one for the call.
	io *ioScratch

	// Serving state, kept here so that a parked connection can be resumed
	// by a new goroutine.
	ws        *websocket.Conn
	buffered  []byte
	parkAfter time.Duration // 0: never park
	deadline  time.Duration // monoclock; 0: none set
	state     parkState
	rflags    atomic.Uint32 // flagReading, flagCloseReq
	pollID    uint64
}

// ioScratch is where the RawConn callbacks leave their results. Its
// callbacks are bound to it once, when it is made, so that no closure is
// allocated per read or write, or per resumption; scratches are pooled.
type ioScratch struct {
	rfn   func(fd uintptr) bool
	owner *conn     // the connection reading, for the read callback
	rw    io.Writer // where the read callback feeds what it reads
	rerr  error     // why the read callback stopped

	wfn   func(fd uintptr) bool
	wbufs [][]byte
	wn    int
	werr  error
}

var scratches = sync.Pool{New: func() any {
	s := &ioScratch{}
	s.rfn, s.wfn = s.readFD, s.writeFD
	return s
}}

func getScratch() *ioScratch { return scratches.Get().(*ioScratch) }

func putScratch(s *ioScratch) {
	s.owner, s.rw, s.rerr, s.wbufs, s.werr = nil, nil, nil, nil, nil
	scratches.Put(s)
}

// New wraps nc, on which ws was accepted, as ws's transport: serve ws
// with ws.Serve(New(nc, ws, buffered)) once the 101 is written. buffered
// holds bytes already read from nc after the handshake (a client may send
// frames before it sees the 101); they are parsed first.
//
// Serve's first read never happens on the calling goroutine, which in the
// daemon is net/http's handler with the stack the request grew: the
// connection is parked at once when nothing is buffered (a burst of new
// connections that then wait, the usual pattern of clients that subscribe
// and listen, never has a goroutine each), or handed to a fresh goroutine.
// Serve returns at once either way.
func New(nc net.Conn, ws *websocket.Conn, buffered []byte) websocket.Transport {
	var rec *tlsrec.Layer
	if tc, ok := nc.(*tls.Conn); ok {
		l, raw, extra, err := tlsrec.Take(tc)
		countTakeover(err)
		if len(extra) > 0 {
			buffered = append(buffered, extra...)
		}
		if err == nil {
			nc, rec = raw, l
		}
	}
	d := &conn{nc: nc, ws: ws, buffered: buffered, writeTimeout: ws.Options().WriteTimeout, rawFD: -1}
	if rec != nil {
		d.sl = &sealed{rec: rec}
	}
	if tc, ok := nc.(*tls.Conn); ok {
		d.tls = true
		if sc, ok := tc.NetConn().(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil && canPark {
				d.rc = rc
				d.parkAfter = DefaultParkAfter
			}
		}
	} else if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			d.rc = rc
			d.io = getScratch()
			if canPark {
				d.parkAfter = DefaultParkAfter
				d.detachable = true
			}
			return fdConn{d}
		}
	}
	return d
}

// SetParkAfter changes how long t, returned by New, must be quiet before
// its goroutine is released; 0 or less never parks. Call it before Serve.
func SetParkAfter(t websocket.Transport, after time.Duration) {
	var d *conn
	switch t := t.(type) {
	case fdConn:
		d = t.conn
	case *conn:
		d = t
	default:
		return
	}
	if !canPark || after < 0 || (!d.detachable && (!d.tls || d.rc == nil)) {
		after = 0
	}
	d.parkAfter = after
}

// fdConn adds non-blocking writes to a conn with a descriptor. It is one
// pointer, so storing it in an interface allocates nothing.
type fdConn struct{ *conn }

// TryWriteBuffers implements websocket.NonblockingWriter.
func (f fdConn) TryWriteBuffers(bufs [][]byte) (int, error) { return f.tryWriteBuffers(bufs) }

// transport is the websocket.Transport a parked connection is resumed with.
func (d *conn) transport() websocket.Transport {
	if !d.tls && (d.detachable || d.rc != nil) {
		return fdConn{d}
	}
	return d
}

// resume serves a parked connection, or one handed off, on the calling
// goroutine. A detached socket is attached first; if that fails, nc stays
// nil and the first read reports the connection closed.
func (d *conn) resume() {
	if d.detachable {
		d.attach()
	}
	d.ws.Serve(d.transport())
}

// ReadTo implements websocket.Transport.
func (d *conn) ReadTo(w io.Writer) error {
	if !d.handedOff {
		d.handedOff = true
		// A TLS connection is not parked before its first read: crypto/tls
		// may already hold records the handshake's reads brought in.
		if len(d.buffered) == 0 && d.parkAfter > 0 && !d.tls && d.park() {
			return websocket.ErrSuspended
		}
		go d.resume()
		return websocket.ErrSuspended
	}
	if b := d.buffered; len(b) > 0 {
		d.buffered = nil
		_, err := w.Write(b)
		return err
	}
	if d.nc == nil {
		return net.ErrClosed
	}
	if d.parkAfter > 0 {
		d.armDeadline()
	}
	err := d.readOnce(w)
	if err == nil {
		return nil
	}
	if d.parkAfter > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		// Quiet for parkAfter: release this goroutine.
		d.nc.SetReadDeadline(time.Time{})
		d.deadline = 0
		if d.park() {
			return websocket.ErrSuspended
		}
		return nil
	}
	return err
}

// readOnce waits for input, reads what is there and writes it to w.
func (d *conn) readOnce(w io.Writer) error {
	if d.tls || d.rc == nil {
		size := readSize
		if d.tls {
			size = tlsReadSize
		}
		b := bufpool.Get(size)
		n, err := d.nc.Read((*b)[:cap(*b)])
		var ferr error
		if n > 0 {
			_, ferr = w.Write((*b)[:n])
		}
		bufpool.Put(b)
		if ferr != nil {
			return ferr
		}
		return err
	}
	return d.readFD(w)
}

// The flags of rflags: the reading goroutine is inside the socket's read
// (and the handlers it feeds run there); a Close came meanwhile and left
// closing the stream to it.
const (
	flagReading uint32 = 1 << iota
	flagCloseReq
)

// readFD reads the socket and feeds what it reads to w, inside one
// RawConn read, until the socket fails, ends or is closed, or w returns
// an error. A read that fills less than the buffer emptied the socket,
// so the callback then waits for the poller instead of reading again to
// see EAGAIN, which saves a system call per message (as nginx does
// after a short read). That is safe only inside one RawConn read: its
// start resets the poller's readiness, so an edge that came between two
// reads would be lost, and the wait would last until the peer sent more
// or the park deadline passed. Within one read, the readiness an edge
// leaves while w runs is kept, and the wait returns at once.
//
// Handlers run inside the read, holding the descriptor: a stream's Close
// would wait for them, and a handler may close its own connection, or
// two handlers each other's. So Close, while a read is in progress,
// leaves the stream to this goroutine (flagCloseReq) and wakes the wait
// with a deadline in the past.
func (d *conn) readFD(w io.Writer) (err error) {
	sc := d.io
	sc.owner, sc.rw = d, w
	if d.rflags.Or(flagReading)&flagCloseReq != 0 {
		d.rflags.And(^flagReading)
		return net.ErrClosed
	}
	defer func() {
		sc.owner, sc.rw = nil, nil
		if d.rflags.And(^flagReading)&flagCloseReq != 0 {
			// Close came while reading and left the stream to us.
			d.nc.Close()
			err = net.ErrClosed
		}
	}()
	err = d.rc.Read(sc.rfn)
	if err == nil {
		err, sc.rerr = sc.rerr, nil
	}
	return err
}

// readFD is the RawConn read callback of conn.readFD. It takes a buffer
// only while a read finds data: on EAGAIN it holds none.
func (s *ioScratch) readFD(fd uintptr) bool {
	d, w := s.owner, s.rw
	for {
		if d.rflags.Load()&flagCloseReq != 0 {
			s.rerr = net.ErrClosed
			return true
		}
		b := bufpool.Get(readSize)
		n, err := syscall.Read(int(fd), (*b)[:cap(*b)])
		if n <= 0 {
			bufpool.Put(b)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			case nil:
				s.rerr = io.EOF
			default:
				s.rerr = err
			}
			return true
		}
		var ferr error
		if d.sl != nil {
			ferr = d.sl.rec.Open((*b)[:n], w)
		} else {
			_, ferr = w.Write((*b)[:n])
		}
		bufpool.Put(b)
		if ferr != nil {
			s.rerr = ferr
			return true
		}
		if n < readSize {
			if d.parkAfter > 0 {
				d.armDeadline()
			}
			return false
		}
	}
}

// tryWriteBuffers writes what the socket takes without waiting. It holds
// mu, so the socket is not detached or attached under it; parked, it
// writes to the bare descriptor.
func (d *conn) tryWriteBuffers(bufs [][]byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, net.ErrClosed
	}
	if d.sl != nil {
		return d.trySealed(bufs)
	}
	return d.tryWriteLocked(bufs)
}

// tryWriteLocked writes bufs to the socket without waiting; under mu.
func (d *conn) tryWriteLocked(bufs [][]byte) (int, error) {
	sc := d.io
	if sc == nil {
		// Detached: a scratch for this call only.
		sc = getScratch()
		defer putScratch(sc)
	}
	total := 0
	for len(bufs) > 0 {
		k := min(len(bufs), maxIovec)
		sc.wbufs = bufs[:k]
		var err error
		if d.rawFD >= 0 {
			sc.writeFD(uintptr(d.rawFD))
		} else {
			err = d.rc.Write(sc.wfn)
		}
		sc.wbufs = nil
		if err != nil {
			return total, err
		}
		if sc.werr != nil {
			err, sc.werr = sc.werr, nil
			return total, err
		}
		total += sc.wn
		want := 0
		for _, b := range bufs[:k] {
			want += len(b)
		}
		if sc.wn < want {
			return total, nil
		}
		bufs = bufs[k:]
	}
	return total, nil
}

// writeFD is the RawConn write callback: one write or writev, never waiting.
func (s *ioScratch) writeFD(fd uintptr) bool {
	var iov [maxIovec]syscall.Iovec
	cnt := 0
	for _, b := range s.wbufs {
		if len(b) == 0 {
			continue
		}
		iov[cnt].Base = &b[0]
		iov[cnt].SetLen(len(b))
		cnt++
	}
	s.wn, s.werr = 0, nil
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
				s.werr = e
			} else if e == 0 {
				s.wn = int(r)
			}
			break
		}
	}
	return true
}

// WriteBuffers implements websocket.Transport: a blocking vectored write,
// bounded by the write timeout.
func (d *conn) WriteBuffers(bufs [][]byte) error {
	nc, err := d.holdStream()
	if err != nil {
		return err
	}
	defer d.releaseStream()
	if d.writeTimeout > 0 {
		nc.SetWriteDeadline(time.Now().Add(d.writeTimeout))
	}
	if d.sl != nil {
		return d.writeSealed(nc, bufs)
	}
	if d.tls {
		// One Write per batch, so crypto/tls builds full records instead of
		// one record per frame.
		total := 0
		for _, b := range bufs {
			total += len(b)
		}
		buf := bufpool.Get(total)
		for _, b := range bufs {
			*buf = append(*buf, b...)
		}
		_, err := nc.Write(*buf)
		bufpool.Put(buf)
		return err
	}
	nb := net.Buffers(bufs)
	_, err = nb.WriteTo(nc)
	return err
}

// holdStream returns the stream for a blocking write, keeping it from
// being detached until releaseStream. A parked connection is woken for
// it: its new reader attaches the stream, and the writer waits for that
// (a blocking write means the socket is full, so the wait is not what
// delays it).
func (d *conn) holdStream() (stream, error) {
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, net.ErrClosed
		}
		if nc := d.nc; nc != nil {
			d.writers++
			d.mu.Unlock()
			return nc, nil
		}
		d.mu.Unlock()
		d.unpark()
		time.Sleep(100 * time.Microsecond)
	}
}

func (d *conn) releaseStream() {
	d.mu.Lock()
	d.writers--
	d.mu.Unlock()
}

// Close implements websocket.Transport. A parked connection has no reader
// to notice, so Close resumes it: the new reader finds the socket closed
// and Serve tears the connection down.
func (d *conn) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return net.ErrClosed
	}
	d.closed = true
	d.sendAlertLocked()
	var err error
	if d.nc != nil {
		if d.rflags.Or(flagCloseReq)&flagReading != 0 {
			// The reader holds the descriptor, maybe on this very
			// goroutine (see readFD): it closes the stream as it
			// leaves, and the past deadline makes that at once.
			d.nc.SetReadDeadline(time.Unix(1, 0))
		} else {
			err = d.nc.Close()
		}
	} else {
		err = d.closeDetached()
	}
	d.mu.Unlock()
	d.unpark()
	released()
	return err
}

// Linger implements websocket.Transport: half-close, then discard input
// until the peer closes or the timeout passes, so that the close frame
// already sent is not lost to a reset.
func (d *conn) Linger(timeout time.Duration) {
	d.mu.Lock()
	d.sendAlertLocked()
	d.mu.Unlock()
	if d.nc == nil {
		// Parked: half-close the bare socket and let the kernel do the rest.
		d.mu.Lock()
		if d.rawFD >= 0 {
			syscall.Shutdown(int(d.rawFD), syscall.SHUT_WR)
		}
		d.mu.Unlock()
		return
	}
	if cw, ok := d.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else if d.rc != nil {
		d.rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_WR) })
	}
	d.nc.SetReadDeadline(time.Now().Add(timeout))
	var scratch [512]byte
	for {
		if _, err := d.nc.Read(scratch[:]); err != nil {
			return
		}
	}
}
