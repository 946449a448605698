package websocket

import (
	"sync/atomic"
	"time"
)

// Budget bounds what a set of connections buffers together: the parts of
// messages still arriving (a client holding half of a 1 MiB message holds
// 1 MiB) and the frames queued for peers that do not read. Each limit of
// one connection (MaxMessageSize, MaxQueue) is small; thousands of
// connections each at its limit are not, and no per-connection limit says
// what they may hold together. A Budget does: every connection made with
// it counts what it holds in Used, and when Used passes the limit, Over
// is signalled, for its owner to shed the connections holding the most
// (Conn.Shed). The engine never blocks or refuses on its own account.
type Budget struct {
	limit atomic.Int64
	used  atomic.Int64
	over  chan struct{}
}

// NewBudget returns a budget of limit bytes (0: unlimited, counted).
func NewBudget(limit int64) *Budget {
	b := &Budget{over: make(chan struct{}, 1)}
	b.limit.Store(limit)
	return b
}

// SetLimit changes the limit (a reload); 0 removes it.
func (b *Budget) SetLimit(n int64) { b.limit.Store(n) }

// Limit is the budget's limit in bytes, 0 when there is none.
func (b *Budget) Limit() int64 { return b.limit.Load() }

// Used is what the budget's connections hold now, in bytes.
func (b *Budget) Used() int64 { return b.used.Load() }

// Over is signalled (once, until received) when Used passes the limit.
func (b *Budget) Over() <-chan struct{} { return b.over }

func (b *Budget) add(n int64) {
	if b == nil || n == 0 {
		return
	}
	u := b.used.Add(n)
	if lim := b.limit.Load(); n > 0 && lim > 0 && u > lim {
		select {
		case b.over <- struct{}{}:
		default:
		}
	}
}

// hold counts n more bytes (or fewer, negative) that c holds.
func (c *Conn) hold(n int64) {
	if n == 0 {
		return
	}
	c.held.Add(n)
	c.opts.Budget.add(n)
}

// Queued is what the connection has queued for its peer and not yet
// written, in bytes.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qBytes
}

// Held is what the connection buffers now: the part of a message still
// arriving and the frames queued for its peer, in bytes.
func (c *Conn) Held() int64 { return c.held.Load() }

// shedGrace is how long a shed connection has for its close frame before
// it is cut, which frees what it held.
const shedGrace = time.Second

var errShed = errorString("websocket: shed to free memory")

// Shed closes the connection to free what it buffers, for an owner whose
// Budget is over: the frames queued for the peer are dropped, a close
// frame with code and reason goes in their place, and the connection is
// cut if the peer has not completed the closing handshake within
// shedGrace (a part of a message still arriving is freed then, by the
// reader, which the cut wakes).
func (c *Conn) Shed(cause string, code StatusCode, reason string) {
	c.mu.Lock()
	q := c.q
	c.q = nil
	c.unqueue(q)
	c.mu.Unlock()
	for i := range q {
		q[i].release()
	}
	c.CloseFor(cause, code, reason)
	time.AfterFunc(shedGrace, func() {
		defer c.recoverTimer()
		c.abort(errShed)
	})
}
