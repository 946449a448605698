package websocket

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"
)

// reader is the parsing state of one connection. Only the goroutine calling
// Feed touches it. Between frames it holds no buffer: a partial header lives
// in hdr, a control payload in ctrl, and a data message only while one is
// being reassembled.
type reader struct {
	hdr    [maxHeaderSize]byte
	hdrLen int

	// The frame being read.
	inFrame   bool
	fin       bool
	op        opcode
	frameLen  int64
	remaining int64
	key       uint32
	maskPos   int

	// The data message being reassembled; msgOp is 0 between messages.
	// seq numbers messages, for the message timeout (Conn.msgState).
	msgOp      opcode
	seq        uint64
	compressed bool // RSV1 on its first frame: permessage-deflate
	msgLen     int64
	msg        *[]byte
	direct     []byte // a whole single-frame message still in the read buffer
	utf8       utf8Validator

	// ctrl holds a control frame's payload while it arrives. It comes from
	// a pool for that frame only, so an idle connection does not carry
	// 125 bytes it almost never uses.
	ctrl    *[maxControlPayload]byte
	ctrlLen int

	done bool
	err  error
}

// readerPool holds the parsing state of connections that are between
// frames and parked (Conn.Quiet): 176 bytes an idle connection does not
// keep.
var readerPool = sync.Pool{New: func() any { return new(reader) }}

// rd returns the connection's parsing state, taking one from the pool if
// Quiet gave it back; the message counter lives on in msgState.
func (c *Conn) rd() *reader {
	if c.r == nil {
		r := readerPool.Get().(*reader)
		r.seq = c.msgState.Load() >> 1
		c.r = r
	}
	return c.r
}

// Quiet is called by a transport that is about to wait for input with no
// goroutine of its own (it parks the connection): if the parser is
// between frames, with no message half received, its state goes back to
// a pool, so that an idle connection keeps none. It must be called on the
// goroutine that reads (inside ReadTo), before the wait is armed: the next
// read may start on another goroutine as soon as it is.
func (c *Conn) Quiet() {
	r := c.r
	if r == nil || r.done || r.inFrame || r.hdrLen > 0 || r.msgOp != 0 || r.msg != nil || r.ctrl != nil || r.direct != nil {
		return
	}
	c.r = nil
	*r = reader{}
	readerPool.Put(r)
}

// TakePong lets a parking transport hand over a pong frame it read
// whole while the connection was parked (after Quiet, with nothing else
// waiting), without waking the reader: it counts as the activity a pong
// the reader parsed counts as, so a client that answers keepalive pings
// keeps its connection and the connection stays parked. It reports false
// when the engine needs the frame read the ordinary way (it is not quiet,
// it is closing, or its handler takes pongs itself); the transport then
// delivers the bytes as read input.
func (c *Conn) TakePong() bool {
	if c.r != nil || c.closing.Load() {
		return false
	}
	if _, ok := c.h.(pongHandler); ok {
		return false
	}
	c.activity.Add(1)
	return true
}

func (r *reader) release(c *Conn) {
	// A message left unfinished when the connection ends goes to the
	// garbage collector, not to the pool: a flood of connections shed
	// while each held a large part of a message would fill the pool with
	// buffers nobody asked for, which count as live memory until two
	// collections pass (and push the live heap past memory_limit's
	// refusal mark while the budget holds).
	if r.msg != nil {
		c.hold(-int64(cap(*r.msg)))
		r.msg = nil
	}
	r.direct = nil
	r.putCtrl()
}

var ctrlPool = sync.Pool{New: func() any { return new([maxControlPayload]byte) }}

func (r *reader) putCtrl() {
	if r.ctrl != nil {
		ctrlPool.Put(r.ctrl)
		r.ctrl = nil
	}
}

// feed parses bytes received from the peer, in order, and delivers complete
// messages to the handler before it returns. It unmasks p in place, so p
// belongs to the engine for the duration of the call.
//
// A non-nil error means the reader is done: the peer's close frame was
// handled (errPeerClosed), or the peer broke the protocol (*protoError)
// and a close frame with the right code is queued. Either way Serve stops
// reading.
func (c *Conn) feed(p []byte) error {
	r := c.rd()
	if r.done || len(p) == 0 {
		return r.err
	}
	c.activity.Add(1)
	if c.wk != nil {
		c.feeding.Store(true)
		defer c.feeding.Store(false)
	}
	for len(p) > 0 {
		if !r.inFrame {
			h, rest, ok := r.takeHeader(p)
			p = rest
			if !ok {
				// A header still missing its masking key is checked as
				// soon as its length is in, as apache-websocket does: a
				// declared length over the limit is refused now, not
				// when the peer chooses to send 4 more bytes.
				if h, ok := r.partialHeader(); ok {
					if err := c.checkFrame(&h); err != nil {
						return c.fail(err)
					}
				}
				break
			}
			if err := c.beginFrame(&h); err != nil {
				return c.fail(err)
			}
			if r.remaining == 0 {
				if err := c.endFrame(); err != nil {
					return err
				}
			}
			continue
		}
		n := len(p)
		if int64(n) > r.remaining {
			n = int(r.remaining)
		}
		chunk := p[:n]
		p = p[n:]
		whole := int64(n) == r.frameLen
		r.maskPos = mask(r.key, r.maskPos, chunk)
		r.remaining -= int64(n)
		if err := c.payload(chunk, whole); err != nil {
			return c.fail(err)
		}
		if r.remaining == 0 {
			if err := c.endFrame(); err != nil {
				return err
			}
		}
	}
	return nil
}

// takeHeader returns the next frame header, decoding it straight from p
// when p holds all of it and collecting it in r.hdr across calls otherwise.
func (r *reader) takeHeader(p []byte) (frameHeader, []byte, bool) {
	if r.hdrLen == 0 && len(p) >= 2 {
		if n := headerSize(p[1]); len(p) >= n {
			return decodeHeader(p[:n]), p[n:], true
		}
	}
	need := 2
	for {
		if r.hdrLen >= 2 {
			need = headerSize(r.hdr[1])
		}
		k := copy(r.hdr[r.hdrLen:need], p)
		r.hdrLen += k
		p = p[k:]
		if r.hdrLen < need {
			return frameHeader{}, p, false
		}
		if need == headerSize(r.hdr[1]) {
			break
		}
	}
	r.hdrLen = 0
	return decodeHeader(r.hdr[:need]), p, true
}

// partialHeader decodes the header collected so far in r.hdr when all of
// it but the masking key has arrived: enough for every check checkFrame
// makes.
func (r *reader) partialHeader() (frameHeader, bool) {
	if r.hdrLen < 2 {
		return frameHeader{}, false
	}
	full := headerSize(r.hdr[1])
	if r.hdr[1]&bitMask == 0 || r.hdrLen < full-4 {
		// Unmasked headers are complete or short of their length.
		return frameHeader{}, false
	}
	var b [maxHeaderSize]byte
	copy(b[:], r.hdr[:r.hdrLen])
	h := decodeHeader(b[:full]) // the key's missing bytes are zeros: unused
	return h, true
}

func protocolError(reason string) *protoError {
	return &protoError{Code: StatusProtocolError, Reason: reason}
}

// beginFrame applies every rule that can be decided from a header, before
// any payload byte is read or any memory is committed to it.
func (c *Conn) beginFrame(h *frameHeader) *protoError {
	if err := c.checkFrame(h); err != nil {
		return err
	}
	r := c.rd()
	if h.op.isControl() {
		r.ctrlLen = 0
		if h.length > 0 && r.ctrl == nil {
			r.ctrl = ctrlPool.Get().(*[maxControlPayload]byte)
		}
	} else {
		if h.op != opContinuation {
			r.msgOp = h.op
			r.compressed = h.rsv == bitRSV1
			r.utf8.reset()
			r.seq++
			c.msgState.Store(r.seq<<1 | 1)
		}
		r.msgLen += h.length
	}
	r.inFrame = true
	r.fin = h.fin
	r.op = h.op
	r.frameLen = h.length
	r.remaining = h.length
	r.key = h.key
	r.maskPos = 0
	return nil
}

// checkFrame applies RFC 6455 §5's rules and the size limit to a header,
// changing nothing: it needs no masking key, so it runs on a header whose
// key has not arrived yet too.
func (c *Conn) checkFrame(h *frameHeader) *protoError {
	r := c.rd()
	switch {
	case h.rsv != 0 && (h.rsv != bitRSV1 || c.z == nil):
		return protocolError("reserved bits set without a negotiated extension")
	case h.rsv != 0 && h.op.isControl():
		return protocolError("RSV1 on a control frame")
	case h.rsv != 0 && h.op == opContinuation:
		// RFC 7692 §6.1: only the first frame of a message says whether it
		// is compressed.
		return protocolError("RSV1 on a continuation frame")
	case !h.op.known():
		return protocolError("reserved opcode " + h.op.String())
	case h.op.isControl() && !h.fin:
		return protocolError("fragmented control frame")
	case h.op.isControl() && h.length > maxControlPayload:
		return protocolError("control frame payload over 125 bytes")
	case h.op == opClose && h.length == 1:
		return protocolError("close frame with a 1-byte payload")
	case !h.masked && !c.opts.client:
		return protocolError("unmasked client frame")
	case h.masked && c.opts.client:
		// RFC 6455 §5.1: a client closes on a masked frame from the
		// server.
		return protocolError("masked server frame")
	case h.length < 0:
		return protocolError("payload length with the most significant bit set")
	case h.op == opContinuation && r.msgOp == 0:
		return protocolError("continuation frame with no message started")
	case h.op == opText || h.op == opBinary:
		if r.msgOp != 0 {
			return protocolError("new data frame inside a fragmented message")
		}
	}
	limit := c.opts.MaxMessageSize
	switch {
	case h.op.isControl() && h.length > limit:
		return &protoError{Code: c.opts.tooBigCode(), Reason: "control frame over the message size limit"}
	case !h.op.isControl() && h.length > limit-r.msgLen:
		return &protoError{Code: c.opts.tooBigCode(), Reason: "message over the size limit"}
	}
	return nil
}

// payload consumes an unmasked chunk of the current frame. whole is true
// when the chunk is the entire frame.
func (c *Conn) payload(chunk []byte, whole bool) *protoError {
	r := c.rd()
	if r.op.isControl() {
		r.ctrlLen += copy(r.ctrl[r.ctrlLen:], chunk)
		return nil
	}
	if r.msgOp == opText && !r.compressed && !r.utf8.write(chunk) {
		return &protoError{Code: StatusInvalidPayload, Reason: "invalid UTF-8 in text message"}
	}
	if whole && r.fin && r.op != opContinuation {
		// A whole single-frame message in one read: deliver it from the read
		// buffer without copying.
		r.direct = chunk
		return nil
	}
	r.appendMsg(c, chunk)
	return nil
}

// appendMsg copies a fragment into the reassembly buffer, growing it by
// doubling as bytes actually arrive rather than by what headers declare.
// The buffer counts against the connection's budget while it is held.
func (r *reader) appendMsg(c *Conn, b []byte) {
	if r.msg == nil {
		hint := int(min(r.frameLen, 64<<10))
		r.msg = getBuf(max(hint, len(b)))
		c.hold(int64(cap(*r.msg)))
	}
	if need := len(*r.msg) + len(b); need > cap(*r.msg) {
		nb := getBuf(max(need, 2*cap(*r.msg)))
		*nb = append(*nb, *r.msg...)
		c.hold(int64(cap(*nb) - cap(*r.msg)))
		putBuf(r.msg)
		r.msg = nb
	}
	*r.msg = append(*r.msg, b...)
}

// putMsg gives the reassembly buffer back.
func (r *reader) putMsg(c *Conn) {
	if r.msg == nil {
		return
	}
	c.hold(-int64(cap(*r.msg)))
	putBuf(r.msg)
	r.msg = nil
}

// endFrame finishes the current frame: it runs control frames and delivers
// a message whose final fragment this was.
func (c *Conn) endFrame() error {
	r := c.rd()
	r.inFrame = false
	if r.op.isControl() {
		return c.control()
	}
	if !r.fin {
		return nil
	}
	if r.compressed {
		return c.endCompressed()
	}
	if r.msgOp == opText && !r.utf8.complete() {
		return c.fail(&protoError{Code: StatusInvalidPayload, Reason: "text message ends inside a UTF-8 sequence"})
	}
	typ := r.msgOp
	data := r.direct
	if data == nil && r.msg != nil {
		data = *r.msg
	}
	r.msgOp, r.msgLen, r.direct = 0, 0, nil
	c.msgState.Store(r.seq << 1)
	if !c.closing.Load() {
		c.stats.in(len(data))
		c.h.OnMessage(c, typ, data)
	}
	r.putMsg(c)
	return nil
}

// endCompressed inflates a complete compressed message and delivers it.
// The size limit applies to the inflated bytes; text is validated after
// inflation.
func (c *Conn) endCompressed() error {
	r := c.rd()
	src := r.direct
	if src == nil && r.msg != nil {
		src = *r.msg
	}
	typ := r.msgOp
	out, perr := c.z.inflate(src, c.opts.MaxMessageSize, c.opts.tooBigCode())
	r.msgOp, r.msgLen, r.direct, r.compressed = 0, 0, nil, false
	c.msgState.Store(r.seq << 1)
	wire := len(src)
	r.putMsg(c)
	if perr != nil {
		return c.fail(perr)
	}
	defer putBuf(out)
	if perr := c.chargeInflate(len(*out)); perr != nil {
		return c.fail(perr)
	}
	if typ == opText && !utf8.Valid(*out) {
		return c.fail(&protoError{Code: StatusInvalidPayload, Reason: "invalid UTF-8 in text message"})
	}
	if !c.closing.Load() {
		c.stats.in(len(*out))
		c.z.stats.in.Add(uint64(wire))
		c.z.stats.rawIn.Add(uint64(len(*out)))
		c.h.OnMessage(c, typ, *out)
	}
	return nil
}

// control handles a complete control frame.
func (c *Conn) control() error {
	r := c.rd()
	var p []byte
	if r.ctrl != nil {
		p = r.ctrl[:r.ctrlLen]
		// Everything below copies what it keeps of p (send copies or
		// writes it before returning).
		defer r.putCtrl()
	}
	switch r.op {
	case opPing:
		// RFC 6455 §5.5.3: answer with the same payload. Under a full queue
		// the pong is dropped, which §5.5.3 allows when a later ping will be
		// answered anyway; a ping flood cannot grow the queue.
		c.send(opPong, p, kindControl)
	case opPong:
		if ph, ok := c.h.(pongHandler); ok {
			ph.OnPong(c, p)
		}
	case opClose:
		code, reason := StatusNoStatusReceived, ""
		if len(p) >= 2 {
			code = StatusCode(binary.BigEndian.Uint16(p))
			if !validPeerCode(code, c.opts.AllowReservedStatusCodes) {
				return c.fail(protocolError("invalid close code " + code.String()))
			}
			if !utf8.Valid(p[2:]) {
				return c.fail(&protoError{Code: StatusInvalidPayload, Reason: "invalid UTF-8 in close reason"})
			}
			reason = string(p[2:])
		}
		r.done, r.err = true, errPeerClosed
		c.mu.Lock()
		c.closeRecvd = true
		c.end().closeGot = CloseStatus{Code: code, Reason: reason}
		if c.closeTimer != nil {
			c.closeTimer.Stop()
		}
		c.mu.Unlock()
		// apache-websocket answers every valid close with 1000 rather than
		// echoing the peer's code; RFC 6455 §5.5.1 allows either.
		c.sendClose([]byte{0x03, 0xE8}, CloseStatus{Code: code, Reason: reason, Remote: true}, "", false)
		return errPeerClosed
	}
	return nil
}

// fail fails the connection (RFC 6455 §7.1.7): it queues a close frame
// with the violation's code and stops the reader.
//
// The close frame carries the code and a short reason ("invalid UTF-8 in
// text message"), so that a client's logs say what it did wrong.
func (c *Conn) fail(e *protoError) error {
	r := c.rd()
	r.done, r.err = true, e
	var buf [maxControlPayload]byte
	payload := append(buf[:0], byte(e.Code>>8), byte(e.Code))
	reason := e.Reason
	for len(reason) > maxControlPayload-2 || !utf8.ValidString(reason) {
		reason = reason[:len(reason)-1]
	}
	payload = append(payload, reason...)
	c.sendClose(payload, CloseStatus{Code: e.Code, Reason: e.Reason}, e.cause(), false)
	return e
}
