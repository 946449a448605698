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
// TLS connections go through crypto/tls, which keeps its own record buffers;
// reads there hold a pooled buffer while blocked.
package netconn

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/websocket"
)

// readSize is the read buffer taken per read. It is held only while bytes
// are parsed, so its size costs nothing on idle connections.
const readSize = 32 << 10

// maxIovec bounds one writev call; longer batches loop. The iovec array
// lives on the write callback's stack, not in the Transport, so an idle
// connection does not carry it.
const maxIovec = 16

// Serve runs ws, already started on t, until the connection ends, then
// closes the socket and releases ws. buffered holds bytes already read from
// the socket after the handshake (a client may send frames before it sees
// the 101); they are parsed first. Serve recovers from panics: the
// connection is failed with 1011 and the rest of the process is unaffected.
func (d *Transport) Serve(ws *websocket.Conn, buffered []byte, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	defer func() {
		if v := recover(); v != nil {
			log.Error("websocket connection teardown panicked", "panic", v, "stack", string(debug.Stack()))
			d.Close()
		}
	}()
	err := d.run(ws, buffered, log)
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

// run feeds ws until reading ends and returns the reason.
func (d *Transport) run(ws *websocket.Conn, buffered []byte, log *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("websocket connection panicked", "panic", v, "stack", string(debug.Stack()))
			ws.Close(websocket.StatusInternalError, "internal error")
			err = &websocket.ProtocolError{Code: websocket.StatusInternalError, Reason: fmt.Sprint(v)}
		}
	}()
	if len(buffered) > 0 {
		if err := ws.Feed(buffered); err != nil {
			return err
		}
	}
	for {
		if err := d.readOnce(ws); err != nil {
			return err
		}
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
		}
	}
	return d
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

// writeFD is the RawConn write callback: one writev, never waiting.
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
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
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

// Close implements websocket.Transport.
func (d *Transport) Close() error { return d.nc.Close() }

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
