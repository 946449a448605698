package websocket

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/monoclock"
)

// Handler receives what a connection delivers. Its methods are called from
// the goroutine that feeds the connection (OnMessage) or that ends it
// (OnClose), never concurrently with each other.
type Handler interface {
	// OnMessage receives one complete text or binary message. p is valid
	// only until OnMessage returns: it may point into the read buffer, which
	// is reused. Copy it to keep it. Ping, pong and close frames are handled
	// by the engine and never delivered here.
	OnMessage(c *Conn, typ MessageType, p []byte)
	// OnClose is called exactly once, after the transport is closed.
	OnClose(c *Conn, s CloseStatus)
}

// pongHandler is implemented by handlers that want to see pongs.
type pongHandler interface {
	OnPong(c *Conn, p []byte)
}

// protoError is a violation by the peer. The connection was failed with
// Code (RFC 6455 §7.1.7).
type protoError struct {
	Code   StatusCode
	Reason string
	// inflate: the inflation budget's, not the peer breaking RFC 6455.
	inflate bool
}

func (e *protoError) Error() string {
	return fmt.Sprintf("websocket: peer violated the protocol (%v): %s", e.Code, e.Reason)
}

// errPeerClosed is Feed's result once the peer's close frame has been
// handled: the closing handshake is complete from the reader's side.
var errPeerClosed = errors.New("websocket: peer sent close")

var errCloseTimeout = errors.New("websocket: peer did not complete the closing handshake")

// isPeerClose reports whether err, returned by Feed, means the peer closed
// the connection cleanly.
func isPeerClose(err error) bool { return err == errPeerClosed }

// Conn is the server side of one WebSocket connection. Handshake.NewConn
// creates it before the 101 is sent, so that the application can queue
// frames from its connect hook; Serve runs it once the 101 is on the wire.
// Send, Close and the other sending methods may be called from any
// goroutine at any time.
type Conn struct {
	h Handler
	// opts is shared by every connection made with the same options (see
	// internOptions); PingWithin gives a connection a copy of its own.
	opts *Options

	t  Transport
	nb NonblockingWriter
	wk Waker
	// feeding is set while a Waker transport's owner is inside Feed: a frame
	// sent meanwhile (by the handler Feed calls, or by another goroutine)
	// needs no Wake, because the owner calls Flush after Feed returns.
	feeding atomic.Bool

	// r is owned by the goroutine calling Feed; nil while the connection
	// is parked between frames (Quiet), taken from a pool on the next read.
	r *reader
	z *deflateState

	// closing is set once a close frame is queued; the reader stops
	// delivering messages then. It mirrors sendClosed for lock-free reads.
	closing atomic.Bool
	// activity counts Feed calls; the keepalive timer compares snapshots
	// instead of reading the clock per read.
	activity atomic.Uint64
	dropped  atomic.Uint64
	// held is what the connection buffers (budget.go), counted in
	// opts.Budget too.
	held  atomic.Int64
	stats connStats
	// msgState is the message being received, for the message timeout:
	// a sequence number shifted left, with bit 0 set while a data message
	// has started and not ended. The reader stores it; the timer reads it.
	msgState atomic.Uint64

	mu         sync.Mutex
	q          []outItem // frames waiting for the writer, in order
	spare      []outItem // the previous batch's slice, reused
	qBytes     int       // bytes queued or being written
	writing    bool      // the write token: someone is writing or will
	started    bool
	sendClosed bool // a close frame is queued; nothing may follow it
	closeRecvd bool
	aborted    bool
	released   bool
	stopped    bool
	// How the connection ended and the close frames each way; made when
	// the closing starts, so that an open connection does not carry three
	// CloseStatus (and stays within the 512-byte size class, whose objects
	// need no allocation header).
	ending *ending
	// Whether the slow-consumer policy closed the connection.
	slowConsumer bool
	// The timer wheel that counts the connection (0: none) and its visits
	// before this connection's tick is due (wheel.go); in the padding
	// after slowConsumer.
	wheel      uint8
	wrounds    uint32
	flushCh    chan struct{}
	closeTimer *time.Timer
	// wnext links the connection in its slot of a timer wheel.
	wnext *Conn

	// Owned by the write-token holder.
	iov2 [2][]byte
	whdr [maxHeaderSize]byte

	// Owned by the keepalive timer.
	seen uint64
	// Times on the monotonic clock (monoclock).
	lastActive time.Duration
	lastPing   time.Duration
	msgSeen    uint64        // msgState at the previous tick
	msgSince   time.Duration // when msgSeen was first seen
}

// ending is what a connection records once its closing starts. Under mu.
type ending struct {
	statusSet           bool
	status              CloseStatus
	closeSent, closeGot CloseStatus
	// cause is why this side closed, when it closed first (see cause.go).
	cause string
}

// end returns the connection's ending record, made on first use; under mu.
func (c *Conn) end() *ending {
	if c.ending == nil {
		c.ending = new(ending)
	}
	return c.ending
}

// newConn returns a connection that queues what is sent to it until Start.
func newConn(h Handler, opts Options) *Conn {
	opts.setDefaults()
	c := &Conn{h: h, writing: true}
	if opts.deflate != nil {
		c.z = newDeflateState(*opts.deflate)
	}
	c.opts = internOptions(opts)
	return c
}

// interned holds one *Options per distinct value connections were made
// with: a route's connections share one, instead of 88 bytes each. The
// negotiated deflate parameters, the one per-connection part, are left
// out (c.z holds them), so the values are as many as the routes (and
// their versions, across reloads) and the map stays small.
var interned sync.Map // Options -> *Options

// Options must stay comparable to be a map key: this stops the build if a
// field (a slice, a map, a func) ever makes it not.
var _ map[Options]struct{}

func internOptions(o Options) *Options {
	o.deflate = nil
	if p, ok := interned.Load(o); ok {
		return p.(*Options)
	}
	p, _ := interned.LoadOrStore(o, &o)
	return p.(*Options)
}

// Options returns the connection's options with defaults applied.
func (c *Conn) Options() Options { return *c.opts }

// PingWithin makes the connection send keepalive pings at most d apart
// (and close a peer silent for twice that, unless an idle timeout is
// set), when its options ask for less. For a front door that learns after
// the handshake how long its server lets a quiet connection live: httpd's
// event MPM closes a connection it waits for after Timeout, and a pong
// counts as activity there. It has effect only before Serve first runs.
func (c *Conn) PingWithin(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	o := *c.opts // shared: change a copy
	if k := o.KeepaliveInterval; k <= 0 || k > d {
		o.KeepaliveInterval = d
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * o.KeepaliveInterval
	}
	c.opts = internOptions(o)
}

// Start attaches the transport, after the front door has written the 101,
// and flushes anything queued since newConn.
func (c *Conn) start(t Transport) {
	c.mu.Lock()
	c.t = t
	c.wk, _ = t.(Waker)
	if c.wk == nil {
		c.nb, _ = t.(NonblockingWriter)
	}
	c.started = true
	pending := len(c.q) > 0
	if !pending {
		c.writing = false
	}
	if every := c.tickInterval(); every > 0 && !c.stopped {
		c.lastActive = monoclock.Now()
		schedule(c, every)
	}
	c.mu.Unlock()
	if pending {
		c.kick()
	}
}

// Closing reports whether the closing handshake has started.
func (c *Conn) Closing() bool { return c.closing.Load() }

// Dropped returns how many messages the drop policy has discarded.
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// CountDropped records a message from the peer that the application
// dropped (a bounded queue of its own was full), so that it shows in Stats
// and the dropped-messages metric with those the engine dropped.
func (c *Conn) CountDropped() { c.dropped.Add(1) }

// Status returns how the connection ended, once it has.
func (c *Conn) Status() CloseStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked()
}

// statusLocked is Status under mu: zero until the closing starts.
func (c *Conn) statusLocked() CloseStatus {
	if c.ending == nil {
		return CloseStatus{}
	}
	return c.ending.status
}

// setStatus records how the connection ends; the first call wins.
// Callers hold c.mu.
func (c *Conn) setStatus(s CloseStatus) {
	if e := c.end(); !e.statusSet {
		e.status, e.statusSet = s, true
	}
}

// Close starts the closing handshake with code and reason. Code 0 sends a
// close frame with no body (the peer sees 1005), which is what
// apache-websocket's plugin close() does. The peer has CloseTimeout to
// answer; after that the transport is closed. Closing a closing connection
// does nothing.
func (c *Conn) Close(code StatusCode, reason string) error {
	return c.CloseFor(CauseApplication, code, reason)
}

// CloseFor is Close with the cause that metrics and logs give for it, one
// of a small fixed set (see cause.go): a gateway closing clients because
// their producer went away says so, instead of counting as "application".
func (c *Conn) CloseFor(cause string, code StatusCode, reason string) error {
	var buf [maxControlPayload]byte
	payload, err := closePayload(buf[:], code, reason)
	if err != nil {
		return err
	}
	if code == 0 {
		code = StatusNoStatusReceived
	}
	return c.sendClose(payload, CloseStatus{Code: code, Reason: reason}, cause, true)
}

// SendCloseFrame starts the closing handshake with a close frame whose body
// is given as it goes on the wire (a code and a reason, or nothing), as
// apache-websocket's send(MESSAGE_TYPE_CLOSE, ...) does. The body must be
// empty or a valid code followed by UTF-8 of at most 123 bytes.
func (c *Conn) SendCloseFrame(body []byte) error {
	switch {
	case len(body) == 0:
		return c.Close(0, "")
	case len(body) == 1:
		return fmt.Errorf("%w: a 1-byte close body", ErrInvalidCloseCode)
	}
	return c.Close(StatusCode(body[0])<<8|StatusCode(body[1]), string(body[2:]))
}

// sendClose queues a close frame unless one was already queued. wait arms
// the close timer: the connection is aborted if the peer has not answered
// within CloseTimeout.
func (c *Conn) sendClose(payload []byte, s CloseStatus, cause string, wait bool) error {
	c.mu.Lock()
	if c.sendClosed {
		c.mu.Unlock()
		return nil
	}
	c.setStatus(s)
	e := c.end()
	if !c.closeRecvd && e.cause == "" {
		e.cause = cause
	}
	e.closeSent = CloseStatus{Code: StatusNoStatusReceived}
	if len(payload) >= 2 {
		e.closeSent = CloseStatus{Code: StatusCode(payload[0])<<8 | StatusCode(payload[1]), Reason: string(payload[2:])}
	}
	if wait && !c.stopped && c.closeTimer == nil {
		c.closeTimer = time.AfterFunc(c.opts.CloseTimeout, func() {
			defer c.recoverTimer()
			c.abort(errCloseTimeout)
		})
	}
	c.mu.Unlock()
	return c.send(opClose, payload, kindClose)
}

// abort closes the transport at once: the close timer fired, a write
// failed, or the owner is shutting down hard. The reader sees its read fail
// and ends the connection.
func (c *Conn) abort(err error) {
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		return
	}
	c.aborted = true
	c.sendClosed = true
	c.closing.Store(true)
	c.setStatus(CloseStatus{Code: StatusAbnormalClosure, Reason: err.Error()})
	if e := c.end(); e.cause == "" && !c.closeRecvd {
		e.cause = abortCause(err)
	}
	t := c.t
	c.mu.Unlock()
	if t != nil {
		t.Close()
	}
}

// Abort closes the transport without a closing handshake. Serve then
// ends the connection as if the peer had gone away (1006).
func (c *Conn) Abort() { c.abort(errors.New("websocket: aborted")) }

// Discard ends a connection that will never be served: its 101 could not
// be written, or the application refused it after accepting it. What was
// queued is dropped, and the handler's OnClose runs with 1006.
func (c *Conn) Discard() {
	c.abort(errors.New("websocket: discarded before it was served"))
	c.release()
}

// stop is called once reading has ended, with the error that ended it:
// feed's error or the transport's. It reports whether to linger: half-close its side and
// drain the peer's input until EOF or CloseTimeout, because this side sent a
// close the peer has not answered, and closing a socket with unread input
// resets it and can destroy that close frame at the peer.
func (c *Conn) stop(readErr error) (linger bool) {
	if r := c.rd(); !r.done {
		r.done, r.err = true, readErr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	unschedule(c)
	c.setStatus(CloseStatus{Code: StatusAbnormalClosure, Remote: true})
	var pe *protoError
	linger = !c.aborted && !c.closeRecvd && errors.As(readErr, &pe)
	c.sendClosed = true
	c.closing.Store(true)
	return linger
}

// waitFlushed waits up to d for everything queued to be written and
// reports whether it was.
func (c *Conn) waitFlushed(d time.Duration) bool {
	c.mu.Lock()
	if (!c.writing && len(c.q) == 0) || c.aborted || !c.started {
		c.mu.Unlock()
		return !c.aborted
	}
	if c.flushCh == nil {
		c.flushCh = make(chan struct{})
	}
	ch := c.flushCh
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// notifyFlushed wakes waitFlushed. Callers hold c.mu.
func (c *Conn) notifyFlushed() {
	if c.flushCh != nil {
		close(c.flushCh)
		c.flushCh = nil
	}
}

// release is the last step of a connection, after its transport is
// closed: it returns every buffer and calls the handler's OnClose.
func (c *Conn) release() {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	c.sendClosed = true
	c.closing.Store(true)
	c.setStatus(CloseStatus{Code: StatusAbnormalClosure, Remote: true})
	q := c.q
	c.q = nil
	c.unqueue(q)
	c.notifyFlushed()
	s := c.statusLocked()
	c.mu.Unlock()
	for i := range q {
		q[i].release()
	}
	if c.r != nil {
		c.r.release(c)
	}
	if c.z != nil {
		c.z.release()
	}
	c.h.OnClose(c, s)
}

// tickInterval is how often the keepalive timer looks at activity: a
// quarter of the shortest timeout, so a timeout fires at most 25% late.
// Callers hold c.mu.
func (c *Conn) tickInterval() time.Duration {
	d := c.opts.IdleTimeout
	if k := c.opts.KeepaliveInterval; k > 0 && (d == 0 || k < d) {
		d = k
	}
	if m := c.opts.MessageTimeout; m > 0 && (d == 0 || m < d) {
		d = m
	}
	if d <= 0 {
		return 0
	}
	return max(d/4, 5*time.Millisecond)
}

// tick runs on a timer wheel's goroutine (wheel.go), so it never blocks:
// it closes an idle connection and sends keepalive pings, then schedules
// the next tick.
func (c *Conn) tick() {
	defer c.recoverTimer()
	now := monoclock.Now()
	if n := c.activity.Load(); n != c.seen {
		c.seen, c.lastActive = n, now
	}
	idle := now - c.lastActive
	if c.opts.IdleTimeout > 0 && idle >= c.opts.IdleTimeout {
		c.CloseFor(CauseIdleTimeout, StatusGoingAway, "idle timeout")
		return
	}
	if m := c.opts.MessageTimeout; m > 0 {
		// A message that has been arriving for longer than the timeout: the
		// same message (sequence number) still open since msgSince.
		st := c.msgState.Load()
		if st != c.msgSeen {
			c.msgSeen, c.msgSince = st, now
		} else if st&1 != 0 && now-c.msgSince >= m {
			c.CloseFor(CauseMessageTimeout, StatusPolicyViolation, "message not completed in time")
			return
		}
	}
	if k := c.opts.KeepaliveInterval; k > 0 && idle >= k && (c.lastPing == 0 || now-c.lastPing >= k) {
		c.lastPing = now
		c.send(opPing, nil, kindControl)
	}
	c.mu.Lock()
	if !c.stopped && !c.sendClosed {
		schedule(c, c.tickInterval())
	}
	c.mu.Unlock()
}

// recoverTimer keeps a panic on a timer goroutine from taking the process
// down: it is logged and the connection is aborted.
func (c *Conn) recoverTimer() {
	if v := recover(); v != nil {
		slog.Error("websocket: panic in a connection timer", "panic", v, "stack", string(debug.Stack()))
		c.abort(errorString("websocket: timer panicked"))
	}
}
