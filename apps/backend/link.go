package backend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/bufpool"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/websocket"
)

// link is one connection to a producer. A reader goroutine dispatches the
// producer's frames; what the gateway sends goes through a wire.Sender.
type link struct {
	id     uint64 // for the log
	b      *Backend
	nc     net.Conn
	mode   uint8
	log    *slog.Logger
	sender *wire.Sender

	mu     sync.Mutex
	closed bool
	err    error

	// Clients on this link and OPENs waiting for an answer.
	cmu     sync.Mutex
	clients map[uint64]*client
	pending map[uint64]*pendingOpen

	helloed  chan struct{} // closed when the producer's HELLO arrives
	done     chan struct{} // closed when the link is down
	load     atomic.Int64  // clients carried, for the pool's choice
	draining atomic.Bool   // the producer sent DRAIN: no new clients
	drainCh  chan struct{} // closed on DRAIN, for the pool
	born     time.Time     // when it was made
	// drainedAt is when DRAIN came; set before drainCh closes.
	drainedAt time.Time
}

// client is one WebSocket client of a framed route. It is carried by a
// link, or held (hold.go) while no link carries it; mu guards which.
type client struct {
	c *gateway.Conn

	mu   sync.Mutex
	link *link // the carrying link; nil while held
	held *held // non-nil while held, and while a resumed OPEN waits
	gone bool  // OnClose has run
}

type openReply struct {
	f   wire.Frame // ACCEPT or REFUSE; Type 0 if the link went down
	err error
	// rooms are the JOIN and LEAVE frames the producer sent before its
	// ACCEPT (a producer joins a client to its rooms while deciding to
	// accept it), applied in order once it is accepted.
	rooms []membership
}

type membership struct {
	join bool
	room string
}

// pendingOpen is an OPEN waiting for its answer. The client exists before
// OPEN is sent, so that the reader can make it live the moment ACCEPT
// arrives: SEND frames right behind the ACCEPT then find it.
type pendingOpen struct {
	ch     chan openReply
	cl     *client
	rooms  []membership // guarded by the link's cmu
	resume *batch       // a held client re-announced: nobody waits on ch
}

var linkIDs atomic.Uint64

// logID is the client's connection number for the log (0 for a client
// without a gateway connection, as in the benchmarks).
func (cl *client) logID() uint64 {
	if cl.c == nil {
		return 0
	}
	return cl.c.ID()
}

// name names a link in the log: "" for none.
func (l *link) name() string {
	if l == nil {
		return ""
	}
	return "#" + strconv.FormatUint(l.id, 10)
}

var (
	errLinkDown     = errors.New("producer connection lost")
	errDrainTimeout = errors.New("producer did not close a drained connection")
)

// dialLink connects, sends HELLO (and any frames in first, in the same
// write) and starts the reader.
func (b *Backend) dialLink(ctx context.Context, mode uint8, first []byte) (*link, error) {
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, b.cfg.Network, b.cfg.Address)
	if err != nil {
		return nil, err
	}
	l := &link{
		id: linkIDs.Add(1), b: b, nc: nc, mode: mode, log: b.log,
		clients: map[uint64]*client{}, pending: map[uint64]*pendingOpen{},
		helloed: make(chan struct{}), done: make(chan struct{}), drainCh: make(chan struct{}), born: time.Now(),
	}
	// A write error fails the link from a goroutine of its own: the write
	// that finds the producer gone may be a client's message, sent with
	// that client's lock held (OnMessage), and failing the link holds every
	// client, that one included: done there, it waited for its own lock
	// and the link never came back.
	l.sender = wire.NewSender(nc, b.cfg.QueueBytes, bufpool.Put, func(err error) {
		recovered.Go("producer link failure", func() { l.fail(err) })
	})
	l.sender.Waited = b.written.Observe
	buf := bufpool.Get(64 + len(first))
	*buf = append(wire.AppendHello(*buf, mode, b.route, b.software, uint32(b.maxFrame())), first...)
	l.enqueue(buf, false)
	bufSize := 4 << 10
	if mode == wire.ModeMux {
		bufSize = 64 << 10
	}
	go l.readLoop(wire.NewReader(nc, bufSize, b.maxFrame()))
	return l, nil
}

// enqueue sends a frame buffer, whose ownership passes to the link. With
// wait, it blocks while the queue is full (backpressure on the client
// whose reader is sending) and writes inline when the link is idle;
// without, it queues anyway (frames that must not be lost: OPEN, CLOSED)
// and never blocks.
func (l *link) enqueue(buf *[]byte, wait bool) error {
	if err := l.sender.Send(buf, wait); err != nil {
		return errLinkDown
	}
	return nil
}

// fail takes the link down. Its clients are held for the producer's
// return (route option hold, or after DRAIN) or closed with 1012; a
// pending OPEN is answered with an error, a pending resumption waits for
// the next link.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.err = err
	l.mu.Unlock()
	l.log.Debug("producer connection ended", "link", l.name(), "err", err)
	// Closing the connection ends a write in progress, which TakeUnsent
	// waits for: every frame is then written or handed back.
	l.nc.Close()
	unsent := l.sender.TakeUnsent()
	l.cmu.Lock()
	clients := l.clients
	pending := l.pending
	l.clients, l.pending = map[uint64]*client{}, map[uint64]*pendingOpen{}
	l.cmu.Unlock()
	b := l.b
	hold := b.cfg.Hold
	if l.draining.Load() && b.pool != nil {
		hold = max(hold, DrainHold)
	}
	// Before any client is held (and may be resumed on another link):
	// what the link never wrote goes before what each sent since.
	b.requeueUnsent(unsent, clients, hold > 0)
	held := 0
	for _, p := range pending {
		if p.resume != nil {
			b.hold(p.cl, hold, nil)
			held++
			p.resume.done(nil)
			continue
		}
		p.ch <- openReply{err: errLinkDown}
	}
	for _, c := range clients {
		if hold > 0 {
			b.hold(c, hold, nil)
			held++
		} else {
			c.c.CloseFor(gateway.CauseBackendGone, websocket.StatusServiceRestart, "producer went away")
		}
	}
	close(l.done)
	if held > 0 {
		// Another link of the pool may be up already.
		recovered.Go("producer resume", b.resumeHeld)
	}
}

// closeGracefully closes a per-client link once its queue is written.
func (l *link) closeGracefully() {
	deadline := time.Now().Add(l.b.cfg.OpenTimeout)
	for !l.sender.Idle() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if cw, ok := l.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	l.fail(io.EOF)
}

func (l *link) recoverLink(where string) {
	if v := recover(); v != nil {
		l.log.Error("producer link panicked", "in", where, "panic", v, "stack", string(debug.Stack()))
		l.fail(errors.New("internal error"))
	}
}

// readLoop dispatches the producer's frames until the link fails.
func (l *link) readLoop(r *wire.Reader) {
	defer l.recoverLink("reader")
	helloDone := false
	for {
		f, err := r.Next()
		var oe *wire.OversizeError
		if errors.As(err, &oe) && helloDone {
			l.oversize(oe)
			continue
		}
		if err != nil {
			l.fail(err)
			return
		}
		if !helloDone {
			if f.Type != wire.TypeHelloReply || f.Version != wire.Version {
				l.log.Warn("producer does not speak protocol version 1", "got", f.Type.String(), "version", f.Version)
				l.fail(errors.New("protocol version mismatch"))
				return
			}
			helloDone = true
			close(l.helloed)
			continue
		}
		l.dispatch(&f)
	}
}

// oversize answers a frame over the route's limit, which the reader
// skipped: one producer message must not close the other clients of the
// link. A SEND closes its client with 1009, as a client's own message over
// the limit would be; an ACCEPT refuses its client (502); a BROADCAST or
// ROOM, and anything else, is dropped. Each is counted and logged.
func (l *link) oversize(e *wire.OversizeError) {
	b := l.b
	outcome := "dropped"
	switch e.Type {
	case wire.TypeSend:
		outcome = "client closed with 1009"
		b.oversizeClosed.Add(1)
		if c := l.clientOf(e.Conn); c != nil {
			c.c.CloseFor(gateway.CauseBackendOversize, websocket.StatusMessageTooBig, "message from the application over the size limit")
		}
	case wire.TypeAccept:
		outcome = "client refused with 502"
		b.oversizeDropped.Add(1)
		l.dispatch(&wire.Frame{Type: wire.TypeRefuse, Conn: e.Conn, Status: http.StatusBadGateway, Reason: "ACCEPT over the size limit"})
	default:
		b.oversizeDropped.Add(1)
	}
	if ok, suppressed := b.oversizeLog.Allow(e.Type.String(), time.Now()); ok {
		attrs := []any{"route", b.route, "frame", e.Type.String(), "size", e.Size, "limit", e.Limit, "outcome", outcome}
		if e.Type == wire.TypeRoom {
			attrs = append(attrs, "room", e.Room)
		}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
		l.log.Warn("producer sent a frame over the route's size limit; skipped it, the connection stays", attrs...)
	}
}

func kindType(k uint8) websocket.MessageType {
	if k == wire.KindBinary {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

func (l *link) clientOf(conn uint64) *client {
	l.cmu.Lock()
	c := l.clients[conn]
	l.cmu.Unlock()
	return c
}

func (l *link) dispatch(f *wire.Frame) {
	switch f.Type {
	case wire.TypeAccept, wire.TypeRefuse:
		l.cmu.Lock()
		p := l.pending[f.Conn]
		delete(l.pending, f.Conn)
		var rooms []membership
		if p != nil && f.Type == wire.TypeAccept {
			// Live before OnOpen returns, so SEND frames that follow the
			// ACCEPT reach the client (they queue until the 101 is out).
			l.clients[f.Conn] = p.cl
			rooms = p.rooms
		}
		l.cmu.Unlock()
		if p == nil {
			if f.Type == wire.TypeAccept {
				// The client is gone (the answer came after open_timeout).
				l.enqueue(l.closedFrame(f.Conn, websocket.StatusAbnormalClosure, "open timed out"), false)
			}
			return
		}
		if p.resume != nil {
			l.resumed(p.cl, f, rooms, p.resume)
			return
		}
		p.ch <- openReply{f: *f, rooms: rooms}
	case wire.TypeSend:
		if c := l.clientOf(f.Conn); c != nil {
			c.c.Send(kindType(f.Kind), f.Payload)
		}
	case wire.TypeBroadcast:
		l.b.hub().Broadcast(kindType(f.Kind), f.Payload, l.b.connByID(f.Except))
	case wire.TypeRoom:
		l.b.hub().SendRoom(f.Room, kindType(f.Kind), f.Payload, l.b.connByID(f.Except))
	case wire.TypeJoin, wire.TypeLeave:
		join := f.Type == wire.TypeJoin
		l.cmu.Lock()
		c := l.clients[f.Conn]
		if p := l.pending[f.Conn]; c == nil && p != nil {
			p.rooms = append(p.rooms, membership{join: join, room: f.Room})
		}
		l.cmu.Unlock()
		switch {
		case c == nil:
		case join:
			c.c.Join(f.Room)
		default:
			c.c.Leave(f.Room)
		}
	case wire.TypeCount:
		// Counting may wait for the other nodes (gateway.CountTimeout): not
		// on the link's reader.
		id, room := f.ID, f.Room
		recovered.Go("producer COUNT", func() {
			count, nodes := l.b.hub().ClusterLen(context.Background(), room)
			buf := bufpool.Get(32 + len(room))
			*buf = wire.AppendCounted(*buf, id, room, uint64(count), uint16(min(nodes, 0xFFFF)))
			l.enqueue(buf, false)
		})
	case wire.TypeDrain:
		recovered.Go("producer drain", l.drain)
	case wire.TypeClose:
		if c := l.clientOf(f.Conn); c != nil {
			if err := c.c.Close(websocket.StatusCode(f.Code), f.Reason); err != nil {
				// A code the gateway may not send: close with 1011 instead.
				c.c.CloseFor(gateway.CauseBackendError, websocket.StatusInternalError, "")
			}
		}
	}
	// Unknown frame types, and frames about clients already gone, are
	// ignored (docs/backend-protocol.md).
}

func (l *link) closedFrame(conn uint64, code websocket.StatusCode, reason string) *[]byte {
	buf := bufpool.Get(32 + len(reason))
	*buf = wire.AppendClosed(*buf, wire.TypeClosed, conn, uint16(code), reason)
	return buf
}

// open sends OPEN for c and waits for the answer.
func (l *link) open(ctx context.Context, c *gateway.Conn) error {
	p := &pendingOpen{ch: make(chan openReply, 1), cl: &client{c: c, link: l}}
	c.SetState(p.cl)
	l.cmu.Lock()
	l.pending[c.ID()] = p
	l.cmu.Unlock()
	if err := l.enqueue(l.b.openFrame(c, false), false); err != nil {
		return gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseBackendDown, "producer unavailable")
	}
	select {
	case r := <-p.ch:
		if r.err != nil {
			return gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseBackendDown, r.err.Error())
		}
		if r.f.Type == wire.TypeRefuse {
			return gateway.Refuse(int(r.f.Status), "producer refused: "+r.f.Reason)
		}
		l.load.Add(1)
		if r.f.Subprotocol != "" {
			c.SetSubprotocol(r.f.Subprotocol)
		}
		for _, h := range r.f.Headers {
			c.ResponseHeader().Add(h.Name, h.Value)
		}
		for _, m := range r.rooms {
			if m.join {
				c.Join(m.room)
			} else {
				c.Leave(m.room)
			}
		}
		return nil
	case <-ctx.Done():
		l.cmu.Lock()
		_, answered := l.clients[c.ID()]
		delete(l.pending, c.ID())
		delete(l.clients, c.ID())
		l.cmu.Unlock()
		if answered {
			// ACCEPT raced the timer: tell the producer the client is gone.
			l.enqueue(l.closedFrame(c.ID(), websocket.StatusAbnormalClosure, "open timed out"), false)
		}
		l.b.openTimeouts.Add(1)
		return gateway.RefuseFor(http.StatusGatewayTimeout, gateway.CauseBackendTimeout, "producer did not answer OPEN in time")
	}
}

// remove forgets a client that has ended.
func (l *link) remove(id uint64) {
	l.cmu.Lock()
	_, ok := l.clients[id]
	delete(l.clients, id)
	l.cmu.Unlock()
	if ok {
		l.load.Add(-1)
	}
}
