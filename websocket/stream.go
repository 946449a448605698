package websocket

import (
	"io"
	"net"
	"sync"
	"time"
)

// streamTransport is the simplest Transport: a goroutine reading a
// net.Conn (TCP, TLS, a pipe), for a client made by Dial in a program of
// its own. It holds a read buffer while it waits, which a server with
// thousands of idle connections would not want; the daemon's front door
// has a transport that parks them (frontdoor/netconn), and passes it to
// Dial as DialOptions.Transport.
type streamTransport struct {
	nc       net.Conn
	buffered []byte
	wto      time.Duration
	once     sync.Once
}

// streamReadSize is the read buffer, taken from the pool for each read.
const streamReadSize = 32 << 10

// NewStreamTransport returns a Transport over nc that first delivers
// buffered (bytes read past the handshake).
func NewStreamTransport(nc net.Conn, buffered []byte) Transport {
	return &streamTransport{nc: nc, buffered: buffered, wto: DefaultWriteTimeout}
}

func (t *streamTransport) ReadTo(w io.Writer) error {
	if len(t.buffered) > 0 {
		b := t.buffered
		t.buffered = nil
		_, err := w.Write(b)
		return err
	}
	buf := getBuf(streamReadSize)
	defer putBuf(buf)
	p := (*buf)[:streamReadSize]
	n, err := t.nc.Read(p)
	if n > 0 {
		if _, werr := w.Write(p[:n]); werr != nil {
			return werr
		}
	}
	return err
}

func (t *streamTransport) WriteBuffers(bufs [][]byte) error {
	if t.wto > 0 {
		t.nc.SetWriteDeadline(time.Now().Add(t.wto))
	}
	nb := net.Buffers(append([][]byte(nil), bufs...))
	_, err := nb.WriteTo(t.nc)
	return err
}

func (t *streamTransport) Linger(d time.Duration) {
	if cw, ok := t.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	t.nc.SetReadDeadline(time.Now().Add(d))
	var b [512]byte
	for {
		if _, err := t.nc.Read(b[:]); err != nil {
			return
		}
	}
}

func (t *streamTransport) Close() error {
	var err error
	t.once.Do(func() { err = t.nc.Close() })
	return err
}
