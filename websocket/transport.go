package websocket

// Transport is the byte stream under a connection, provided by a front door.
//
// The engine calls WriteBuffers only from the goroutine that holds the
// connection's write token, so a transport never sees two writes at once.
type Transport interface {
	// WriteBuffers writes every byte of bufs, in order, blocking as long as
	// it must (within its own write timeout). An error is final.
	WriteBuffers(bufs [][]byte) error
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
// sending goroutine; it queues the frame and calls Wake, and the owner calls
// Conn.Flush. The owner must also call Flush after each Feed returns: frames
// sent while it is inside Feed do not call Wake.
type Waker interface {
	// Wake asks the owner to call Flush soon. It must not block.
	Wake()
}
