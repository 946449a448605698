package websocket

import (
	"sync"
	"sync/atomic"
)

// PreparedMessage is a message encoded once and sent to many connections,
// as a broadcast does: every receiver queues a reference to the same frame
// bytes instead of a copy. For receivers that compress without context
// takeover it is also compressed once per window size; receivers with
// context takeover compress it themselves, as their own stream requires.
type PreparedMessage struct {
	typ    MessageType
	frame  *[]byte
	hdrLen int
	refs   atomic.Int32

	mu sync.Mutex
	// compressed frames by the receiver's window bits; done marks the ones
	// computed (a nil frame then means compression does not pay).
	zbuf  [16]*[]byte
	zfr   [16][]byte
	zdone [16]bool
}

// NewPreparedMessage encodes p as one frame. The caller holds one reference
// and must call Release when it has sent the message to everyone.
func NewPreparedMessage(typ MessageType, p []byte) *PreparedMessage {
	buf := getBuf(frameSize(len(p)))
	var hdr [maxHeaderSize]byte
	n := putHeader(&hdr, true, 0, typ, len(p))
	*buf = append(append(*buf, hdr[:n]...), p...)
	pm := &PreparedMessage{typ: typ, frame: buf, hdrLen: n}
	pm.refs.Store(1)
	return pm
}

// Type returns the message type.
func (pm *PreparedMessage) Type() MessageType { return pm.typ }

func (pm *PreparedMessage) payload() []byte { return (*pm.frame)[pm.hdrLen:] }

// Release drops one reference; the buffers go back to the pool with the
// last one.
func (pm *PreparedMessage) Release() {
	if pm.refs.Add(-1) == 0 {
		putBuf(pm.frame)
		pm.frame = nil
		for i := range pm.zbuf {
			putBuf(pm.zbuf[i])
			pm.zbuf[i] = nil
		}
	}
}

// compressed returns the frame compressed for a receiver with the given
// window, computing it on first use, or nil if it does not pay.
func (pm *PreparedMessage) compressed(bits, level int) []byte {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if !pm.zdone[bits] {
		pm.zdone[bits] = true
		pm.zbuf[bits], pm.zfr[bits] = compressOnce(pm.typ, pm.payload(), bits, level)
	}
	return pm.zfr[bits]
}

// SendPrepared queues a prepared message, under the same rules as Send.
func (c *Conn) SendPrepared(pm *PreparedMessage) error {
	err := c.sendPrepared(pm)
	if err == nil {
		c.stats.out(len(pm.payload()))
	}
	return err
}

func (c *Conn) sendPrepared(pm *PreparedMessage) error {
	if z := c.z; z != nil && len(pm.payload()) >= z.p.Threshold {
		if !z.p.ServerNoContextTakeover {
			return c.sendCompressed(pm.typ, pm.payload())
		}
		if frame := pm.compressed(z.p.ServerWindowBits, z.p.Level); frame != nil {
			pm.refs.Add(1)
			return c.countDeflated(len(frame), len(pm.payload()), c.sendFrame(frame, outItem{pm: pm}))
		}
	}
	pm.refs.Add(1)
	return c.sendFrame(*pm.frame, outItem{pm: pm})
}
