package websocket

import (
	"io"
	"time"
)

// Transport is the byte stream under a connection, provided by a front
// door and driven by Conn.Serve. The engine has no sockets and no
// goroutines of its own for reading: whoever implements Transport decides
// how to wait for bytes (a goroutine on Go's netpoller, an epoll loop, an
// httpd worker polling Apache's filters) and the engine decides what they
// mean.
//
// ReadTo is only called by Serve, one call at a time. WriteBuffers is only
// called by the holder of the connection's write token (see write.go), so
// a transport never sees two writes at once, though reads and writes may
// run concurrently unless the transport is a Waker.
type Transport interface {
	// ReadTo waits until the peer has sent bytes and writes them to w, in
	// order, in as many Write calls as it likes, then returns nil to be
	// called again. When a Write returns an error, the connection's reading
	// is over: ReadTo returns that error at once. It returns the stream's
	// own error when the stream fails or ends (io.EOF when the peer closed
	// it), and ErrSuspended when it has parked the connection: Serve then
	// returns without ending it, and the transport calls Serve again, on
	// any goroutine, once the peer has sent more.
	//
	// A Waker transport may write an empty slice to w: the engine then
	// writes what other goroutines queued, on the calling goroutine.
	ReadTo(w io.Writer) error
	// WriteBuffers writes every byte of bufs, in order, blocking as long as
	// it must (within its own write timeout). An error is final.
	WriteBuffers(bufs [][]byte) error
	// Linger half-closes the stream and discards what the peer still sends
	// until it closes its side or d has passed. Serve calls it after this
	// side failed the connection: closing a socket with unread input resets
	// it, and a reset can destroy the close frame just sent before the peer
	// reads it.
	Linger(d time.Duration)
	// Close ends the stream and unblocks any read or write in progress. It
	// may be called more than once and from any goroutine.
	Close() error
}

// NonblockingWriter is implemented by transports that can attempt a write
// without blocking (a socket in non-blocking mode). The engine then writes
// a frame straight from the sending goroutine when nothing is queued, and
// falls back to a writer goroutine only when the socket is full.
type NonblockingWriter interface {
	// TryWriteBuffers writes what the socket accepts now and returns the
	// number of bytes written; 0 with a nil error means it would block.
	TryWriteBuffers(bufs [][]byte) (int, error)
}

// Waker is implemented by transports whose I/O must stay on one owner
// thread, such as an httpd worker whose filters and mod_ssl state may not be
// touched concurrently, or an event loop. The engine never writes from a
// sending goroutine; it queues the frame and calls Wake, and the owner,
// inside ReadTo, writes an empty slice to its io.Writer, on which the
// engine writes the queue through WriteBuffers. Frames sent while the
// owner is inside a Write (an echo sent from OnMessage) need no Wake: the
// engine writes them before that Write returns.
type Waker interface {
	// Wake asks the owner to come back soon. It must not block.
	Wake()
}
