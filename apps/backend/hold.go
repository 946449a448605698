package backend

// Holding clients while their producer restarts.
//
// With the route option hold (or when a producer instance asks to drain
// a connection, for a planned handover), a link that goes down does not
// close its clients: they are held. A held client stays open to its
// WebSocket peer; what it sends waits, in order, in its queue. When a
// link is up again the gateway re-announces the client to the producer
// with a resumed OPEN (its request, and the rooms it is in) and, once the
// producer accepts it, sends what waited on that link before anything the
// client sends later. A hold that runs out closes the client with 1012
// (Service Restart), which tells it to reconnect.
//
// Invariants (client.mu guards the first two):
//   - a client is carried (link != nil) or held (held != nil), never both;
//     a held client may be waiting for its resumed OPEN's answer (held.on);
//   - a held client's messages are only ever sent after its resumed OPEN
//     was accepted, on the link that accepted it;
//   - a client is in holding.set exactly while cl.held != nil (the set
//     changes under cl.mu, nested: cl.mu, then holding.hmu), so that a
//     link coming up finds every held client and the held count is true.

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/bufpool"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/websocket"
)

// DrainHold is how long clients moved off a draining producer instance
// wait for the new one when the route's hold is shorter.
const DrainHold = 30 * time.Second

// held is a held client's state.
type held struct {
	queue []*[]byte // MESSAGE frames, in the client's order
	bytes int
	timer *time.Timer // ends the hold
	on    *link       // the link a resumed OPEN went out on, if any
	after *link       // a draining link to wait for before resuming
	// accepted: the producer on link on accepted the client, whose
	// messages wait for the rest of its batch.
	accepted bool
}

// holding is a Backend's held clients and their counters.
type holding struct {
	waves sync.Mutex // one resumption batch is formed at a time
	hmu   sync.Mutex
	set   map[*client]struct{}
	bytes atomic.Int64 // queued by every held client together

	resumed, expired, dropped, drains atomic.Uint64
}

// hold makes cl held for up to d (a hold already running keeps its end),
// waiting for after to end first when it is not nil.
func (b *Backend) hold(cl *client, d time.Duration, after *link) {
	cl.mu.Lock()
	if cl.gone {
		cl.mu.Unlock()
		return
	}
	cl.link = nil
	h := cl.holdState()
	if h.timer == nil {
		h.timer = time.AfterFunc(d, func() { b.expire(cl) })
	}
	h.on, h.after, h.accepted = nil, after, false
	// Joined under cl.mu, as unhold leaves under it: a resumption that
	// attaches the client between this unlock and a later insertion
	// would otherwise leave it in the set, carried, forever counted held.
	b.hmu.Lock()
	if b.set == nil {
		b.set = map[*client]struct{}{}
	}
	b.set[cl] = struct{}{}
	b.hmu.Unlock()
	cl.mu.Unlock()
	b.log.Debug("client held", "conn", cl.logID(), "after", after.name())
}

// queueHeld keeps a held client's message for its resumption; cl.mu is
// held. The queue of every held client together is bounded by the
// route's producer queue; past it the route's slow-consumer policy
// applies, and what is dropped is counted.
func (b *Backend) queueHeld(cl *client, buf *[]byte) {
	// The client may not be held yet: when the link failed under a send,
	// its failure holds the client next.
	h := cl.holdState()
	n := len(*buf)
	if b.bytes.Load()+int64(n) > int64(b.cfg.QueueBytes) {
		bufpool.Put(buf)
		b.dropped.Add(1)
		cl.c.Engine().CountDropped()
		if b.rt.Policy.SlowConsumer == websocket.SlowConsumerClose {
			c := cl.c
			recovered.Go("held client close", func() {
				c.CloseFor(gateway.CauseHoldOverflow, websocket.StatusPolicyViolation, "too much sent while the producer restarts")
			})
		}
		return
	}
	if cap(*buf) > 2*n {
		// A pool buffer is at least 512 bytes: a held queue of small
		// messages would hold many times what it counts.
		small := append(make([]byte, 0, n), *buf...)
		bufpool.Put(buf)
		buf = &small
	}
	h.queue = append(h.queue, buf)
	h.bytes += n
	b.bytes.Add(int64(n))
}

// requeueUnsent gives the messages a failed link took and never wrote
// whole back to their clients: the producer never saw them, so they wait
// for the client's resumption like what it sends while held, before it
// (they are older). The link's other frames (OPEN, CLOSED, ...) concern
// only it and are dropped. Without hold the clients are being closed with
// 1012 (counted with the cause backend_gone), and their messages with them.
func (b *Backend) requeueUnsent(frames []*[]byte, clients map[uint64]*client, hold bool) {
	by := map[*client][]*[]byte{} // each client's, oldest first
	for _, buf := range frames {
		id, ok := wire.MessageConn(*buf)
		if cl := clients[id]; ok && cl != nil && hold {
			by[cl] = append(by[cl], buf)
		} else {
			bufpool.Put(buf) // the link's own frame, or no hold: see above
		}
	}
	for cl, bufs := range by {
		cl.mu.Lock()
		if cl.gone {
			cl.mu.Unlock()
			for _, buf := range bufs {
				bufpool.Put(buf)
			}
			continue
		}
		h := cl.holdState()
		for _, buf := range bufs {
			h.bytes += len(*buf)
			b.bytes.Add(int64(len(*buf)))
		}
		h.queue = append(bufs, h.queue...)
		cl.mu.Unlock()
		b.log.Debug("messages the producer connection did not write wait for the client's resumption", "conn", cl.logID(), "messages", len(bufs))
	}
}

// holdState is cl's hold, made if it has none; cl.mu is held.
func (cl *client) holdState() *held {
	if cl.held == nil {
		cl.held = &held{}
	}
	return cl.held
}

// unhold forgets a hold that ended (cl.held no longer points at h; the
// caller does not hold cl.mu): its timer, its queue and its place in the
// set, unless the client was held again meanwhile (a drain or a failing
// link can hold it the moment it was resumed), whose hold keeps it there.
func (b *Backend) unhold(cl *client, h *held) {
	if h.timer != nil {
		h.timer.Stop()
	}
	for _, buf := range h.queue {
		bufpool.Put(buf)
	}
	h.queue = nil
	b.bytes.Add(-int64(h.bytes))
	cl.mu.Lock()
	if cl.held == nil {
		b.hmu.Lock()
		delete(b.set, cl)
		b.hmu.Unlock()
	}
	cl.mu.Unlock()
}

// expire ends a hold that ran out: 1012 tells the client to reconnect.
func (b *Backend) expire(cl *client) {
	cl.mu.Lock()
	h := cl.held
	if h == nil || cl.gone {
		cl.mu.Unlock()
		return
	}
	cl.held = nil
	cl.mu.Unlock()
	b.unhold(cl, h)
	h.on.cancelResume(cl.c.ID(), websocket.StatusServiceRestart, "hold expired")
	b.expired.Add(1)
	cl.c.CloseFor(gateway.CauseHoldExpired, websocket.StatusServiceRestart, "producer did not come back in time")
}

// resumeHeld re-announces every held client that waits for a link, on
// the up links of the pool. The clients re-announced together form a
// batch: what they sent while held is let through once the producer has
// answered every OPEN of the batch (or open_timeout has passed), so that
// it has rebuilt its state (a chat's names, say) from all of them before
// the first message that may refer to another. One batch is formed at a
// time.
func (b *Backend) resumeHeld() {
	if b.pool == nil {
		return
	}
	b.waves.Lock()
	defer b.waves.Unlock()
	b.hmu.Lock()
	list := make([]*client, 0, len(b.set))
	for cl := range b.set {
		list = append(list, cl)
	}
	b.hmu.Unlock()
	bt := &batch{b: b, left: 1} // one for this loop, released below
	bt.timer = time.AfterFunc(b.cfg.OpenTimeout, bt.flush)
	for _, cl := range list {
		l := b.pool.pick()
		if l == nil {
			break // the next link to come up resumes the rest
		}
		l.resume(cl, bt)
	}
	bt.done(nil)
}

// batch is the resumed OPENs sent together.
type batch struct {
	b     *Backend
	timer *time.Timer

	mu       sync.Mutex
	left     int       // OPENs not answered yet
	accepted []*client // answered with ACCEPT, waiting for the batch
	sent     []sentOpen
	flushed  bool
}

// sentOpen is a resumed OPEN of a batch: the client, and the link it went
// out on.
type sentOpen struct {
	cl *client
	l  *link
}

// done counts an answer (cl is nil for a refusal or a lost OPEN).
func (bt *batch) done(cl *client) {
	bt.mu.Lock()
	if cl != nil && !bt.flushed {
		bt.accepted = append(bt.accepted, cl)
	}
	bt.left--
	last := bt.left == 0
	bt.mu.Unlock()
	if cl != nil && bt.flushedAlready() {
		bt.b.attach(cl) // answered after the batch's timeout
	}
	if last {
		bt.flush()
	}
}

func (bt *batch) flushedAlready() bool {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.flushed
}

// flush lets the accepted clients' messages through. Run by the batch's
// timer (open_timeout), it also takes back the resumed OPENs still not
// answered: a producer that never answers one (it crashed mid-handover,
// or lost it) must not keep that client held until its hold runs out
// while links are up; it is re-announced, on whichever link is up next.
func (bt *batch) flush() {
	bt.mu.Lock()
	if bt.flushed {
		bt.mu.Unlock()
		return
	}
	bt.flushed = true
	list := bt.accepted
	bt.accepted = nil
	sent := bt.sent
	bt.sent = nil
	bt.mu.Unlock()
	if bt.timer != nil {
		bt.timer.Stop()
	}
	for _, cl := range list {
		bt.b.attach(cl)
	}
	retry := false
	for _, s := range sent {
		s.cl.mu.Lock()
		h := s.cl.held
		stuck := h != nil && !s.cl.gone && h.on == s.l && !h.accepted
		if stuck {
			h.on = nil
		}
		s.cl.mu.Unlock()
		if stuck {
			retry = true
			s.l.forget(s.cl.c.ID())
			s.l.enqueue(s.l.closedFrame(s.cl.c.ID(), websocket.StatusAbnormalClosure, "resumed OPEN not answered in time"), false)
		}
	}
	if retry {
		bt.b.log.Warn("producer did not answer resumed OPENs in time: announcing those clients again", "route", bt.b.route)
		recovered.Go("producer resume", bt.b.resumeHeld)
	}
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// resume sends a resumed OPEN for cl on l, as part of bt, unless cl is
// not waiting for one.
func (l *link) resume(cl *client, bt *batch) {
	id := cl.c.ID()
	cl.mu.Lock()
	h := cl.held
	if h == nil || cl.gone || h.on != nil || (h.after != nil && !closed(h.after.done)) {
		cl.mu.Unlock()
		return
	}
	h.on, h.accepted = l, false
	cl.mu.Unlock()
	l.b.log.Debug("resumed OPEN", "conn", id, "link", l.name())
	bt.mu.Lock()
	bt.left++
	bt.sent = append(bt.sent, sentOpen{cl, l})
	bt.mu.Unlock()
	l.cmu.Lock()
	l.pending[id] = &pendingOpen{cl: cl, resume: bt}
	l.cmu.Unlock()
	if err := l.enqueue(l.b.openFrame(cl.c, true), false); err != nil {
		cl.mu.Lock()
		if cl.held == h && h.on == l {
			h.on = nil
		}
		cl.mu.Unlock()
		if p := l.forget(id); p != nil {
			bt.done(nil)
		}
	}
}

// cancelResume tells the producer on l (if not nil) that a client whose
// resumed OPEN it has, or had, is gone. Whoever takes the pending OPEN
// answers its batch: here, or the reader that took the answer.
func (l *link) cancelResume(id uint64, code websocket.StatusCode, reason string) {
	if l == nil {
		return
	}
	if p := l.forget(id); p != nil && p.resume != nil {
		p.resume.done(nil)
	}
	l.enqueue(l.closedFrame(id, code, reason), false)
}

// resumed handles the producer's answer to a resumed OPEN, on l's reader.
// An ACCEPT has already made cl live in l.clients (what the producer
// sends it goes through at once); what it sent while held waits for its
// batch.
func (l *link) resumed(cl *client, f *wire.Frame, rooms []membership, bt *batch) {
	b := l.b
	for _, m := range rooms {
		if m.join {
			cl.c.Join(m.room)
		} else {
			cl.c.Leave(m.room)
		}
	}
	if f.Type == wire.TypeRefuse {
		cl.mu.Lock()
		h, gone := cl.held, cl.gone
		cl.held = nil
		cl.mu.Unlock()
		if h != nil {
			b.unhold(cl, h)
		}
		if !gone {
			code := websocket.StatusPolicyViolation
			switch f.Status {
			case http.StatusServiceUnavailable, http.StatusTooManyRequests:
				code = websocket.StatusTryAgainLater
			case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
				code = websocket.StatusInternalError
			}
			recovered.Go("refused client close", func() { cl.c.Close(code, "producer refused the resumed client") })
		}
		bt.done(nil)
		return
	}
	cl.mu.Lock()
	h := cl.held
	ok := h != nil && !cl.gone && h.on == l
	if ok {
		h.accepted = true
	}
	cl.mu.Unlock()
	if !ok {
		// Closed or expired meanwhile; the producer has been told.
		l.forget(cl.c.ID())
		bt.done(nil)
		return
	}
	bt.done(cl)
}

// attach makes an accepted resumed client carried by the link that
// accepted it: what it sent while held goes first, on that link, then
// what it sends next. A link that has started draining meanwhile takes
// nothing more: the client waits for it to end, and resumes on the next.
func (b *Backend) attach(cl *client) {
	cl.mu.Lock()
	h := cl.held
	if h == nil || cl.gone || h.on == nil || !h.accepted {
		cl.mu.Unlock()
		return
	}
	l := h.on
	if l.draining.Load() {
		h.on, h.after, h.accepted = nil, l, false
		cl.mu.Unlock()
		b.log.Debug("client accepted by a draining link: waits for it to end", "conn", cl.logID(), "link", l.name())
		return
	}
	for _, buf := range h.queue {
		l.enqueue(buf, false) // ownership passes; bounded by the hold's queue
	}
	h.queue = nil
	cl.held, cl.link = nil, l
	cl.mu.Unlock()
	b.unhold(cl, h)
	l.load.Add(1)
	b.resumed.Add(1)
	b.log.Debug("client resumed", "conn", cl.logID(), "link", l.name())
}

// forget drops a client from the link's maps, and returns its pending
// OPEN if it had one.
func (l *link) forget(id uint64) *pendingOpen {
	l.cmu.Lock()
	p := l.pending[id]
	delete(l.pending, id)
	delete(l.clients, id)
	l.cmu.Unlock()
	return p
}

// drain serves the producer's DRAIN: this instance is going away. The
// link takes no new clients; its clients are held, to be resumed on a new
// link once this one has ended, so that what the old instance still
// sends them arrives first. DRAINED, queued behind every message already
// sent on the link, tells the producer that nothing more follows; it then
// closes the connection. One that does not within open_timeout is closed.
func (l *link) drain() {
	b := l.b
	if b.pool == nil {
		// A per-client connection has nowhere to move its client: it ends
		// with it (1012), as soon as the producer closes it.
		buf := bufpool.Get(8)
		*buf = wire.AppendEmpty(*buf, wire.TypeDrained)
		l.enqueue(buf, false)
		return
	}
	if l.draining.Swap(true) {
		return
	}
	l.drainedAt = time.Now()
	close(l.drainCh)
	b.drains.Add(1)
	l.cmu.Lock()
	clients := make([]*client, 0, len(l.clients))
	for _, c := range l.clients {
		clients = append(clients, c)
	}
	l.cmu.Unlock()
	l.log.Info("producer is draining a connection: its clients move to a new one", "clients", len(clients))
	hold := max(b.cfg.Hold, DrainHold)
	for _, cl := range clients {
		b.hold(cl, hold, l)
	}
	buf := bufpool.Get(8)
	*buf = wire.AppendEmpty(*buf, wire.TypeDrained)
	l.enqueue(buf, false)
	t := time.NewTimer(b.cfg.OpenTimeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		l.log.Warn("producer did not close a drained connection in time: closing it")
		l.fail(errDrainTimeout)
	}
}
