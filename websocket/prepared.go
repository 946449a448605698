package websocket

import "sync/atomic"

// PreparedMessage is a message encoded once and sent to many connections,
// as a broadcast does: every receiver queues a reference to the same frame
// bytes instead of a copy.
type PreparedMessage struct {
	typ   MessageType
	frame *[]byte
	refs  atomic.Int32
}

// NewPreparedMessage encodes p as one frame. The caller holds one reference
// and must call Release when it has sent the message to everyone.
func NewPreparedMessage(typ MessageType, p []byte) *PreparedMessage {
	buf := getBuf(frameSize(len(p)))
	var hdr [maxHeaderSize]byte
	n := putHeader(&hdr, true, 0, typ, len(p))
	*buf = append(append(*buf, hdr[:n]...), p...)
	pm := &PreparedMessage{typ: typ, frame: buf}
	pm.refs.Store(1)
	return pm
}

// Type returns the message type.
func (pm *PreparedMessage) Type() MessageType { return pm.typ }

// Release drops one reference; the frame's buffer goes back to the pool
// with the last one.
func (pm *PreparedMessage) Release() {
	if pm.refs.Add(-1) == 0 {
		putBuf(pm.frame)
		pm.frame = nil
	}
}

// SendPrepared queues a prepared message, under the same rules as Send.
func (c *Conn) SendPrepared(pm *PreparedMessage) error {
	frame := *pm.frame
	size := len(frame)
	c.mu.Lock()
	if c.sendClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	if !c.writing && c.nb != nil {
		c.writing = true
		c.mu.Unlock()
		c.iov2[0] = frame
		return c.writeInline(c.iov2[:1], size, pm)
	}
	if c.qBytes > 0 && c.qBytes+size > c.opts.MaxQueue {
		c.mu.Unlock()
		return c.queueFull(kindData)
	}
	pm.refs.Add(1)
	return c.enqueueLocked(outItem{b: frame, pm: pm}, size)
}
