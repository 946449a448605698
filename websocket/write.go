package websocket

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"unsafe"
)

// The outbound path.
//
// Every frame goes through send. Under c.mu, send either takes the write
// token (c.writing) or appends the frame to c.q. Only the token holder
// writes to the transport, so frames reach the wire whole and in the order
// their send calls took the lock. How the token holder writes depends on
// the transport:
//
//   - NonblockingWriter: the sending goroutine writes the frame itself
//     without copying it. Only when the socket is full is the rest copied to
//     the queue and a writer goroutine started, which blocks until the queue
//     drains and then gives the token up.
//   - Waker: the frame is always queued and the owner thread is woken; it
//     calls Flush, which drains the queue. While the owner is inside Feed
//     it is not woken: it must call Flush after every Feed anyway, and an
//     echo answered from OnMessage then costs no wake-up at all.
//   - neither (TLS): the frame is queued and a writer goroutine drains it.
//
// The queue is bounded by Options.MaxQueue in bytes, counted until written.

// outItem is one queued frame: the bytes still to write, and what backs
// them (a pooled buffer, or a shared prepared message).
type outItem struct {
	b   []byte
	buf *[]byte
	pm  *PreparedMessage
}

func (it *outItem) release() {
	if it.buf != nil {
		putBuf(it.buf)
	}
	if it.pm != nil {
		it.pm.Release()
	}
	*it = outItem{}
}

type sendKind uint8

const (
	kindData    sendKind = iota // bounded by MaxQueue under the route's policy
	kindControl                 // ping or pong: dropped when the queue is full
	kindClose                   // always queued; nothing is sent after it
)

// Send sends one message as a single frame. It is safe from any goroutine
// and does not block on the network. When the queue is full the route's
// slow-consumer policy applies: ErrDropped, or ErrSlowConsumer with the
// connection closing with 1008. After the closing handshake has started it
// returns ErrClosed.
func (c *Conn) Send(typ MessageType, p []byte) error {
	if typ != TextMessage && typ != BinaryMessage {
		return errBadType
	}
	err := c.send(typ, p, kindData)
	if err == nil {
		c.stats.out(len(p))
	}
	return err
}

// SendText sends a text message without copying s first.
func (c *Conn) SendText(s string) error {
	err := c.send(opText, unsafe.Slice(unsafe.StringData(s), len(s)), kindData)
	if err == nil {
		c.stats.out(len(s))
	}
	return err
}

// Ping sends a ping; the payload must be at most 125 bytes.
func (c *Conn) Ping(p []byte) error {
	if len(p) > maxControlPayload {
		return ErrControlTooLong
	}
	return c.send(opPing, p, kindControl)
}

// Pong sends an unsolicited pong (RFC 6455 §5.5.3 allows it as a
// unidirectional heartbeat); the payload must be at most 125 bytes.
func (c *Conn) Pong(p []byte) error {
	if len(p) > maxControlPayload {
		return ErrControlTooLong
	}
	return c.send(opPong, p, kindControl)
}

var errBadType = errorString("websocket: message type must be text or binary")

type errorString string

func (e errorString) Error() string { return string(e) }

func (c *Conn) send(op opcode, p []byte, kind sendKind) error {
	if kind == kindData && c.z != nil && len(p) >= c.z.p.Threshold {
		return c.sendCompressed(op, p)
	}
	return c.sendPlain(op, p, kind)
}

// coalesceMax is the largest payload copied behind its header into one
// buffer before an inline write; larger ones go out as two segments of one
// writev, without the copy.
const coalesceMax = 2048

// sendPlain sends p uncompressed. p is the caller's: it is written in place
// or copied, never kept.
func (c *Conn) sendPlain(op opcode, p []byte, kind sendKind) error {
	if c.opts.client {
		buf := maskedFrame(true, 0, op, p)
		return c.queueFrame(kind, *buf, outItem{buf: buf})
	}
	size := frameSize(len(p))
	c.mu.Lock()
	if c.sendClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	if kind == kindClose {
		c.sendClosed = true
		c.closing.Store(true)
	}
	if !c.writing && c.nb != nil {
		c.writing = true
		c.mu.Unlock()
		n := putHeader(&c.whdr, true, 0, op, len(p))
		if len(p) <= coalesceMax {
			// One contiguous frame: the kernel copies one segment, and
			// what the socket does not take needs no second copy.
			buf := getBuf(size)
			*buf = append(append(*buf, c.whdr[:n]...), p...)
			c.iov2[0] = *buf
			return c.writeInline(c.iov2[:1], size, outItem{b: *buf, buf: buf})
		}
		c.iov2[0], c.iov2[1] = c.whdr[:n], p
		return c.writeInline(c.iov2[:], size, outItem{})
	}
	if kind != kindClose && c.qBytes > 0 && c.qBytes+size > c.opts.MaxQueue {
		c.mu.Unlock()
		return c.queueFull(kind)
	}
	// c.whdr belongs to the token holder; this goroutine does not hold it.
	var hdr [maxHeaderSize]byte
	buf := getBuf(size)
	n := putHeader(&hdr, true, 0, op, len(p))
	*buf = append(append(*buf, hdr[:n]...), p...)
	return c.enqueueLocked(outItem{b: *buf, buf: buf}, size)
}

// sendFrame sends a complete data frame backed by own (a pooled buffer or
// a prepared message), whose reference passes to the connection. A client
// sends a masked copy (see client.go) and lets own go.
func (c *Conn) sendFrame(frame []byte, own outItem) error {
	if c.opts.client {
		buf := remask(frame)
		own.release()
		frame, own = *buf, outItem{buf: buf}
	}
	return c.queueFrame(kindData, frame, own)
}

// queueFrame writes or queues a complete frame backed by own, whose
// reference passes to the connection (released if the frame is not sent).
func (c *Conn) queueFrame(kind sendKind, frame []byte, own outItem) error {
	size := len(frame)
	c.mu.Lock()
	if c.sendClosed {
		c.mu.Unlock()
		own.release()
		return ErrClosed
	}
	if kind == kindClose {
		c.sendClosed = true
		c.closing.Store(true)
	}
	if !c.writing && c.nb != nil {
		c.writing = true
		c.mu.Unlock()
		c.iov2[0] = frame
		return c.writeInline(c.iov2[:1], size, own)
	}
	if kind != kindClose && c.qBytes > 0 && c.qBytes+size > c.opts.MaxQueue {
		c.mu.Unlock()
		own.release()
		return c.queueFull(kind)
	}
	own.b = frame
	return c.enqueueLocked(own, size)
}

// sendCompressed compresses and sends a data message. With context
// takeover the compressor's lock is held until the frame is queued, so
// frames reach the wire in the order they were compressed; a message that
// is compressed and then not sent resets the context, since the peer never
// saw what the compressor now remembers.
func (c *Conn) sendCompressed(op opcode, p []byte) error {
	z := c.z
	if z.p.ServerNoContextTakeover {
		buf, frame := z.compressedFrame(op, p)
		if buf == nil {
			return c.sendPlain(op, p, kindData)
		}
		return c.countDeflated(len(frame), len(p), c.sendFrame(frame, outItem{buf: buf}))
	}
	z.zmu.Lock()
	defer z.zmu.Unlock()
	if z.closed || c.Closing() {
		return ErrClosed
	}
	buf, frame := z.compressedFrame(op, p)
	n := len(frame)
	err := c.sendFrame(frame, outItem{buf: buf})
	if err != nil {
		z.resetContext()
	}
	return c.countDeflated(n, len(p), err)
}

// countDeflated counts a compressed message that was sent: frame bytes on
// the wire, p bytes before compression.
func (c *Conn) countDeflated(frame, p int, err error) error {
	if err == nil {
		c.z.stats.out.Add(uint64(frame))
		c.z.stats.rawOut.Add(uint64(p))
	}
	return err
}

// enqueueLocked appends an item and makes sure someone will write it.
// Called with c.mu held; it releases it.
func (c *Conn) enqueueLocked(it outItem, size int) error {
	c.q = append(c.q, it)
	c.qBytes += size
	c.hold(int64(size))
	start := !c.writing && c.started
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		c.kick()
	}
	return nil
}

// queueFull applies the slow-consumer policy to a send that does not fit.
func (c *Conn) queueFull(kind sendKind) error {
	if kind == kindControl {
		return ErrDropped // a pong: RFC 6455 §5.5.3 lets it go
	}
	if c.opts.SlowConsumer == SlowConsumerDrop {
		c.dropped.Add(1)
		return ErrDropped
	}
	c.mu.Lock()
	c.slowConsumer = true
	c.mu.Unlock()
	c.CloseFor(CauseSlowConsumer, StatusPolicyViolation, "slow consumer")
	return ErrSlowConsumer
}

// writeInline writes bufs from the calling goroutine, which holds the write
// token, without blocking. What the socket does not take goes to the head
// of the queue for a writer goroutine: as a reference into own's buffer
// when the frame is backed by one (own.buf or own.pm set), as a copy
// otherwise, since bufs then belong to the caller.
func (c *Conn) writeInline(bufs [][]byte, size int, own outItem) error {
	n, err := c.nb.TryWriteBuffers(bufs)
	if err != nil || n == size {
		c.iov2 = [2][]byte{}
		own.release()
		if err != nil {
			c.abort(err)
			c.releaseToken()
			return ErrClosed
		}
		c.releaseToken()
		return nil
	}
	var it outItem
	if own.buf != nil || own.pm != nil {
		it = own
		it.b = bufs[0][n:]
	} else {
		buf := getBuf(size - n)
		for _, b := range bufs {
			if n >= len(b) {
				n -= len(b)
				continue
			}
			*buf = append(*buf, b[n:]...)
			n = 0
		}
		it = outItem{b: *buf, buf: buf}
	}
	c.iov2 = [2][]byte{}
	c.mu.Lock()
	c.q = append(c.q, outItem{})
	copy(c.q[1:], c.q)
	c.q[0] = it
	c.qBytes += len(it.b)
	c.hold(int64(len(it.b)))
	c.mu.Unlock()
	c.spawnWriter()
	return nil
}

// unqueue takes frames out of the queue's count, which never go out:
// the connection is ending. The caller holds c.mu and releases them.
func (c *Conn) unqueue(q []outItem) {
	n := 0
	for i := range q {
		n += len(q[i].b)
	}
	c.qBytes -= n
	c.hold(-int64(n))
}

var iovPool = sync.Pool{New: func() any { return new([][]byte) }}

// releaseToken gives up the write token after an inline write, unless
// frames were queued meanwhile, in which case a writer goroutine takes over.
func (c *Conn) releaseToken() {
	c.mu.Lock()
	if len(c.q) == 0 || c.aborted {
		c.writing = false
		c.notifyFlushed()
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.spawnWriter()
}

// kick hands the token, already taken, to whoever drains the queue.
func (c *Conn) kick() {
	if c.wk != nil {
		// The frame was queued before this load; if the owner is still
		// feeding, its Flush after Feed comes later and finds the frame.
		if !c.feeding.Load() {
			c.wk.Wake()
		}
		return
	}
	c.spawnWriter()
}

func (c *Conn) spawnWriter() {
	go func() {
		defer func() {
			if v := recover(); v != nil {
				slog.Error("websocket: panic in writer", "panic", v, "stack", string(debug.Stack()))
				c.abort(errorString("websocket: writer panicked"))
				c.mu.Lock()
				c.writing = false
				c.notifyFlushed()
				c.mu.Unlock()
			}
		}()
		c.drain()
	}()
}

// Flush writes everything queued, blocking. A Waker transport's owner calls
// it after Wake; it returns once the queue is empty or the write failed.
func (c *Conn) flush() error {
	return c.drain()
}

// drain writes queued frames in batches (one vectored write per batch) until
// the queue is empty, then gives up the write token. The caller holds it.
func (c *Conn) drain() error {
	// The batch's iovec comes from a pool for the length of the drain, not
	// from Conn, which every idle connection keeps.
	iovp := iovPool.Get().(*[][]byte)
	defer iovPool.Put(iovp)
	for {
		c.mu.Lock()
		if len(c.q) == 0 || c.aborted {
			// Frames left behind by an abort are released here, outside
			// the lock; c.aborted may only be read under it.
			var dropped []outItem
			if c.aborted {
				dropped, c.q = c.q, nil
				c.unqueue(dropped)
			}
			c.writing = false
			c.notifyFlushed()
			c.mu.Unlock()
			for i := range dropped {
				dropped[i].release()
			}
			return nil
		}
		batch := c.q
		c.q, c.spare = c.spare[:0], nil
		c.mu.Unlock()

		err := c.writeBatch(batch, iovp)
		for i := range batch {
			batch[i].release()
		}
		c.mu.Lock()
		c.spare = batch[:0]
		c.mu.Unlock()
		if err != nil {
			c.abort(err)
		}
	}
}

// writeChunk bounds one WriteBuffers call of the drain. The queue counts a
// frame's bytes until the transport has taken them, and a blocking write
// reports nothing until it returns: a 16 MiB message written in one call
// would count whole until its last byte left, and every send meanwhile,
// however small, would find the queue full and close a client that reads
// as fast as it can (issue 23). Written a chunk at a time, the queue holds
// what is not yet written plus at most one chunk.
const writeChunk = 256 << 10

// writeBatch writes batch's bytes in calls of at most writeChunk bytes,
// taking each call's bytes off the queue's count as soon as it returns.
func (c *Conn) writeBatch(batch []outItem, iovp *[][]byte) error {
	iov := (*iovp)[:0]
	defer func() {
		clear(iov)
		*iovp = iov[:0]
	}()
	for i := 0; i < len(batch); {
		iov = iov[:0]
		size := 0
		for ; i < len(batch) && size < writeChunk; i++ {
			b := batch[i].b
			if room := writeChunk - size; len(b) > room {
				// The rest of this frame goes in the next call.
				iov = append(iov, b[:room])
				batch[i].b = b[room:]
				size = writeChunk
				break
			}
			iov = append(iov, b)
			size += len(b)
		}
		err := c.t.WriteBuffers(iov)
		c.mu.Lock()
		c.qBytes -= size
		c.hold(-int64(size))
		c.mu.Unlock()
		if err != nil {
			// What is left of the batch is no longer queued either.
			left := 0
			for ; i < len(batch); i++ {
				left += len(batch[i].b)
			}
			c.mu.Lock()
			c.qBytes -= left
			c.hold(-int64(left))
			c.mu.Unlock()
			return err
		}
	}
	return nil
}
