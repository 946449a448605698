package backend

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/bufpool"
	"github.com/wsgate/wsgate/internal/ratelog"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/internal/version"
	"github.com/wsgate/wsgate/websocket"
)

// Backend is a gateway.Handler that serves a route's clients from a
// producer speaking the framed protocol.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	route    string
	rt       *gateway.Route
	software string
	maxMsg   int64
	pool     *pool

	conns sync.Map // uint64 -> *gateway.Conn, for BROADCAST and ROOM's except

	openTimeouts atomic.Uint64
	// Producer frames over the route's limit: SENDs whose client was
	// closed with 1009, and BROADCAST, ROOM and other frames dropped.
	oversizeClosed, oversizeDropped atomic.Uint64
	oversizeLog                     *ratelog.Limiter
	// written: how long clients' messages took to reach the producer's
	// socket (wire.Sender.Waited).
	written *gateway.Latency

	holding // clients held while their producer restarts (hold.go)
}

// Software is sent in HELLO: wsgate's release and commit.
var Software = version.Get().Short()

// New returns a backend for cfg. It connects to nothing until Start.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Raw != nil {
		return nil, errors.New("raw mode is served by NewRaw")
	}
	cfg.setDefaults()
	return &Backend{cfg: cfg, log: slog.Default(), software: Software, oversizeLog: ratelog.New(10, time.Second),
		written: gateway.NewLatency(gateway.HandshakeBuckets)}, nil
}

// Config returns the backend's configuration, with defaults applied.
func (b *Backend) Config() Config { return b.cfg }

// Provision learns the route and its limits; it connects to nothing.
// Broadcasts implements gateway.Broadcaster: a producer may send BROADCAST
// and ROOM frames, which reach every process of the route's bus.
func (b *Backend) Broadcasts() bool { return true }

func (b *Backend) Provision(ctx gateway.AppContext) error {
	b.rt, b.route, b.log = ctx.Route, ctx.Route.Path, ctx.Logger.With("producer", b.cfg.Address)
	b.maxMsg = ctx.Route.Policy.MaxMessageSize
	if b.maxMsg <= 0 {
		b.maxMsg = websocket.DefaultMaxMessageSize
	}
	if b.cfg.Mode == Mux {
		b.pool = newPool(b)
	}
	return nil
}

// Validate checks the configuration again, for a Backend built by hand.
func (b *Backend) Validate() error { return b.cfg.Validate() }

// Ready implements gateway.Readier: a producer marked required must have
// a link up (mux), or be listening (per-client, checked by dialling).
func (b *Backend) Ready() error {
	if !b.cfg.Required {
		return nil
	}
	if b.pool != nil {
		if b.pool.pick() == nil {
			return errors.New("producer " + b.cfg.Address + " is down")
		}
		return nil
	}
	c, err := net.DialTimeout(b.cfg.Network, b.cfg.Address, time.Second)
	if err != nil {
		return errors.New("producer " + b.cfg.Address + " is down")
	}
	c.Close()
	return nil
}

// Links implements gateway.LinkReporter.
func (b *Backend) Links() gateway.LinkStats {
	ls := gateway.LinkStats{Address: b.cfg.Address, Required: b.cfg.Required, OpenTimeouts: b.openTimeouts.Load(),
		Resumed: b.resumed.Load(), HoldExpired: b.expired.Load(), HeldDropped: b.dropped.Load(), Drains: b.drains.Load(),
		HeldBytes: b.bytes.Load(), OversizeClosed: b.oversizeClosed.Load(), OversizeDropped: b.oversizeDropped.Load(),
		WriteSeconds: b.written.Snapshot()}
	b.hmu.Lock()
	ls.Held = len(b.set)
	b.hmu.Unlock()
	if p := b.pool; p != nil {
		ls.Configured = len(p.links)
		ls.Reconnects = p.reconnects.Load()
		ls.ConnectFailures = p.connectFailures.Load()
		p.mu.Lock()
		for _, l := range p.links {
			if l != nil {
				ls.Up++
				ls.QueueBytes += int64(l.sender.Queued())
			}
		}
		p.mu.Unlock()
	}
	return ls
}

// Start connects the mux pool, in the background: the producer may come
// up later, and clients that arrive first wait up to open_timeout.
func (b *Backend) Start(context.Context) error {
	if b.pool != nil {
		b.pool.start()
	}
	return nil
}

// Stop stops the pool and closes its connections.
func (b *Backend) Stop(context.Context) error {
	if b.pool != nil {
		b.pool.stop()
	}
	return nil
}

func (b *Backend) hub() *gateway.Hub { return b.rt.Hub() }

// KeepsRequestHeaders implements gateway.KeepsRequestHeaders: a client
// held while its producer restarts is re-announced with the headers its
// first OPEN carried.
func (b *Backend) KeepsRequestHeaders() {}

func (b *Backend) maxFrame() int {
	if b.cfg.MaxFrame > 0 {
		return b.cfg.MaxFrame
	}
	return int(min(b.maxMsg+64<<10, 1<<31-1))
}

func (b *Backend) connByID(id uint64) *gateway.Conn {
	if id == 0 {
		return nil
	}
	if c, ok := b.conns.Load(id); ok {
		return c.(*gateway.Conn)
	}
	return nil
}

// notForwarded: the subprotocols go in OPEN's own field.
var notForwarded = map[string]bool{"Sec-Websocket-Protocol": true}

// openFrame encodes c's OPEN; resumed re-announces a held client, with
// its rooms.
func (b *Backend) openFrame(c *gateway.Conn, resumed bool) *[]byte {
	r := c.Request()
	o := wire.Open{Conn: c.ID(), Path: r.Path, Query: r.RawQuery, Host: r.Host, Remote: r.RemoteAddr, TLS: r.TLS != nil, Protocols: r.Protocols}
	if resumed {
		o.Resumed, o.Rooms = true, c.Rooms()
	}
	r.ForwardHeaders(b.cfg.Headers, notForwarded, func(k string, vs []string) {
		for _, v := range vs {
			o.Headers = append(o.Headers, wire.Header{Name: k, Value: v})
		}
	})
	buf := bufpool.Get(256)
	*buf = wire.AppendOpen(*buf, &o)
	return buf
}

// OnOpen asks the producer, before the 101, whether to accept. It waits
// at most open_timeout, and no longer than ctx.
func (b *Backend) OnOpen(ctx context.Context, c *gateway.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.OpenTimeout)
	defer cancel()
	var l *link
	if b.cfg.Mode == Mux {
		if l = b.pool.pick(); l == nil && b.pool.starting() {
			// The gateway has just started and the pool has not connected
			// yet: give it open_timeout rather than refusing at once.
			l = b.pool.waitUp(ctx)
		}
		if l == nil {
			return gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseBackendDown, "producer unavailable")
		}
	} else {
		var err error
		l, err = b.dialLink(ctx, wire.ModePerClient, nil)
		if err != nil {
			b.log.Debug("cannot connect to producer", "err", err)
			return gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseBackendDown, "producer unavailable")
		}
	}
	if err := l.open(ctx, c); err != nil {
		if b.cfg.Mode == PerClient {
			l.fail(err)
		}
		return err
	}
	b.conns.Store(c.ID(), c)
	return nil
}

// OnMessage relays a client's message. When the producer connection's
// queue is full this waits, which stops reading from this client. While
// the client is held the message waits for the producer's return.
//
// The client's lock is held across the send: a DRAIN that moves the
// client (hold.go) then sees every message either sent on the old link
// before its DRAINED, or queued for the new one, never one after.
func (b *Backend) OnMessage(c *gateway.Conn, m gateway.Message) {
	cl, ok := c.State().(*client)
	if !ok {
		return
	}
	kind := wire.KindText
	if m.Type == websocket.BinaryMessage {
		kind = wire.KindBinary
	}
	buf := bufpool.Get(wire.MessageHeaderSize + len(m.Data))
	*buf = wire.AppendMessage(*buf, wire.TypeMessage, c.ID(), kind, m.Data)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if l := cl.link; l != nil && !l.draining.Load() {
		err := l.sender.Offer(buf)
		if !errors.Is(err, wire.ErrNotSent) {
			return
		}
		if b.cfg.Hold <= 0 {
			bufpool.Put(buf) // the client is being closed with 1012
			return
		}
		// The link went down under this send: the message waits with the
		// client, which the link's failure is about to hold.
	}
	// Held, or carried by a draining link (which takes nothing after its
	// DRAINED, and which holds the client when it ends).
	b.queueHeld(cl, buf)
}

// OnClose tells the producer the client has gone.
func (b *Backend) OnClose(c *gateway.Conn, s websocket.CloseStatus) {
	cl, ok := c.State().(*client)
	if !ok {
		return
	}
	b.conns.Delete(c.ID())
	cl.mu.Lock()
	cl.gone = true
	l, h := cl.link, cl.held
	cl.held = nil
	cl.mu.Unlock()
	if h != nil {
		b.unhold(cl, h)
		// A resumed OPEN is out: its producer hears of the close.
		h.on.cancelResume(c.ID(), s.Code, s.Reason)
	}
	if l == nil {
		return
	}
	l.remove(c.ID())
	l.enqueue(l.closedFrame(c.ID(), s.Code, s.Reason), false)
	if b.cfg.Mode == PerClient {
		recovered.Go("producer connection close", l.closeGracefully)
	}
}

// pool keeps Connections links to the producer up, reconnecting with
// backoff, and logs when the producer becomes available or unavailable,
// not every attempt.
type pool struct {
	b      *Backend
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	links     []*link            // nil where a slot is down
	state     int                // 0 unknown, 1 up, -1 down
	ever      []bool             // the slot has been up before: a new link is a reconnect
	retired   map[*link]struct{} // draining links, until they end
	lastDrain time.Time          // when the last DRAIN came

	reconnects atomic.Uint64
	// connectFailures counts attempts to connect that failed (nobody
	// listens, or no HELLO answer): the outage is logged once, and this
	// shows the attempts go on.
	connectFailures atomic.Uint64
}

// newPool allocates a pool; start connects it.
func newPool(b *Backend) *pool {
	p := &pool{b: b, links: make([]*link, b.cfg.Connections), ever: make([]bool, b.cfg.Connections)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

func (p *pool) start() {
	for i := range p.links {
		p.wg.Add(1)
		recovered.Go("producer pool", func() { p.keep(i) })
	}
}

const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 10 * time.Second
	// backoffHeld caps the backoff while clients are held: they wait for
	// the producer, and a connection attempt to it costs next to nothing.
	backoffHeld = 100 * time.Millisecond
)

func (p *pool) backoffCap() time.Duration {
	p.b.hmu.Lock()
	held := len(p.b.set)
	p.b.hmu.Unlock()
	if held > 0 {
		return backoffHeld
	}
	return backoffMax
}

// keep maintains one slot of the pool.
func (p *pool) keep(slot int) {
	defer p.wg.Done()
	backoff := backoffMin
	for p.ctx.Err() == nil {
		l, err := p.connect()
		if err == nil {
			backoff = backoffMin
			p.set(slot, l, nil)
			select {
			case <-l.done:
				p.set(slot, nil, l.err)
			case <-l.drainCh:
				// A planned handover: the slot gets a new link (from the
				// new instance) at once; the old one ends on its own.
				p.retire(l)
				p.set(slot, nil, nil)
				continue
			case <-p.ctx.Done():
				l.fail(errors.New("gateway stopping"))
				p.set(slot, nil, nil)
				return
			}
		} else {
			p.connectFailures.Add(1)
			p.set(slot, nil, err)
		}
		select {
		case <-time.After(backoff):
		case <-p.ctx.Done():
			return
		}
		backoff = min(2*backoff, p.backoffCap())
	}
}

func (p *pool) connect() (*link, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.b.cfg.OpenTimeout)
	defer cancel()
	l, err := p.b.dialLink(ctx, wire.ModeMux, nil)
	if err != nil {
		return nil, err
	}
	select {
	case <-l.helloed:
		return l, nil
	case <-l.done:
		return nil, l.err
	case <-ctx.Done():
		l.fail(ctx.Err())
		return nil, errors.New("producer did not answer HELLO")
	}
}

// set records a slot's link and logs a change of availability.
func (p *pool) set(slot int, l *link, err error) {
	p.mu.Lock()
	if l != nil {
		if p.ever[slot] {
			p.reconnects.Add(1)
		}
		p.ever[slot] = true
	}
	p.links[slot] = l
	if l != nil {
		recovered.Go("producer resume", p.b.resumeHeld)
	}
	up := 0
	for _, x := range p.links {
		if x != nil {
			up++
		}
	}
	old := p.state
	switch {
	case up > 0:
		p.state = 1
	case err != nil:
		p.state = -1
	}
	now := p.state
	p.mu.Unlock()
	if now != old {
		if now == 1 {
			p.b.log.Info("producer up", "connections", up)
		} else if now == -1 {
			p.b.log.Warn("producer down: new clients get 503 until it is back", "err", err)
		}
	}
}

// pick returns the up link carrying the fewest clients, or nil.
//
// After a DRAIN, links made since are preferred: the links made before
// it most likely reach the instance that is going away (it drains them
// one by one), and a client sent there would only have to move again.
func (p *pool) pick() *link {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best, newest *link
	for _, l := range p.links {
		if l == nil || l.draining.Load() {
			continue
		}
		if best == nil || l.load.Load() < best.load.Load() {
			best = l
		}
		if l.born.After(p.lastDrain) && (newest == nil || l.load.Load() < newest.load.Load()) {
			newest = l
		}
	}
	if newest != nil {
		return newest
	}
	return best
}

// starting reports whether the pool has never been up or down yet.
func (p *pool) starting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == 0
}

// waitUp waits until a link is up or ctx is done, for routes whose pool
// has just started.
func (p *pool) waitUp(ctx context.Context) *link {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if l := p.pick(); l != nil {
			return l
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// retire keeps a draining link until it ends, so that stop can end it.
func (p *pool) retire(l *link) {
	p.mu.Lock()
	p.lastDrain = l.drainedAt
	if p.retired == nil {
		p.retired = map[*link]struct{}{}
	}
	p.retired[l] = struct{}{}
	p.mu.Unlock()
	recovered.Go("producer retired link", func() {
		<-l.done
		p.mu.Lock()
		delete(p.retired, l)
		p.mu.Unlock()
	})
}

func (p *pool) stop() {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	retired := make([]*link, 0, len(p.retired))
	for l := range p.retired {
		retired = append(retired, l)
	}
	p.mu.Unlock()
	for _, l := range retired {
		l.fail(errors.New("gateway stopping"))
	}
}
