package websocket

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Every connection with a keepalive, idle or message timeout looks at its
// activity a few times per timeout (Conn.tick). A runtime timer each
// (time.AfterFunc) cost an idle connection a timer and a closure, and a
// goroutine each time it fired. Instead, a timing wheel drives every
// connection's tick from one goroutine: a connection waits in a slot of a
// ring, linked through Conn.wnext, and costs its link there.
//
// Invariants:
//   - A connection is linked in at most one slot of one wheel. Conn.wheel
//     says which wheel counts it as live (0: none); start puts it in, and
//     only its own tick, run when its slot comes round, puts it in again.
//   - stop takes it out of the count at once (unschedule) and leaves the
//     link for its slot to drop when it comes round; once no live
//     connection is left, the wheel drops every link and its goroutine
//     ends, so an empty wheel holds no connection and costs nothing.
//   - Lock order: a connection's mu, then the wheel's. Conn.wheel,
//     wnext and wrounds are the wheel's, under its mu; schedule is called
//     under the connection's mu (start, and tick when it goes on), so
//     that stop, under the same mu, never races a connection back in.
//   - tick runs on the wheel's goroutine, so it must not block: it sends
//     a ping or a close (neither waits for the network) and schedules the
//     next tick.

// The wheels: fine for intervals under a second (tests and aggressive
// settings, 5 ms slots), coarse for the rest (100 ms slots: a tick
// interval of at least a second is never more than a tenth late).
var (
	fineWheel   = &timerWheel{id: 1, res: 5 * time.Millisecond}
	coarseWheel = &timerWheel{id: 2, res: 100 * time.Millisecond}
	// coarseFrom is the shortest interval the coarse wheel takes.
	coarseFrom = time.Second
)

const wheelSlots = 1024

type timerWheel struct {
	id  uint8
	res time.Duration

	mu    sync.Mutex
	slots [wheelSlots]*Conn
	ticks uint64 // ticks since the wheel was made
	live  int    // connections counted (Conn.wheel == id)
	quit  chan struct{}
}

// schedule puts c in a wheel for d from now. c must not be in one.
func schedule(c *Conn, d time.Duration) {
	w := coarseWheel
	if d < coarseFrom {
		w = fineWheel
	}
	w.add(c, d)
}

// unschedule takes a stopped c out of its wheel's count. Under c.mu.
// c.wheel is the wheels' (under their mu), so each is asked.
func unschedule(c *Conn) {
	fineWheel.remove(c)
	coarseWheel.remove(c)
}

func (w *timerWheel) add(c *Conn, d time.Duration) {
	t := uint64(max(1, (d+w.res-1)/w.res))
	w.mu.Lock()
	defer w.mu.Unlock()
	slot := (w.ticks + t) % wheelSlots
	// Visited first at the next tick with that residue, then once every
	// wheelSlots ticks: rounds is how many visits pass before the one
	// that is due.
	c.wrounds = uint32((t - 1) / wheelSlots)
	c.wnext = w.slots[slot]
	w.slots[slot] = c
	c.wheel = w.id
	w.live++
	if w.quit == nil {
		w.quit = make(chan struct{})
		go w.run(w.quit)
	}
}

func (w *timerWheel) remove(c *Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.wheel != w.id {
		return
	}
	c.wheel = 0
	w.live--
	if w.live == 0 {
		w.emptyLocked()
	}
}

// emptyLocked drops every link and ends the goroutine. Under mu, with no
// live connection left.
func (w *timerWheel) emptyLocked() {
	for i := range w.slots {
		for c := w.slots[i]; c != nil; {
			next := c.wnext
			c.wnext = nil
			c = next
		}
		w.slots[i] = nil
	}
	if w.quit != nil {
		close(w.quit)
		w.quit = nil
	}
}

func (w *timerWheel) run(quit chan struct{}) {
	// tick recovers its own panics (recoverTimer); this is for the wheel's
	// own code, which must not leave its connections without a goroutine.
	defer func() {
		if v := recover(); v != nil {
			slog.Error("websocket: the timer wheel panicked", "panic", v, "stack", string(debug.Stack()))
			go w.run(quit)
		}
	}()
	t := time.NewTicker(w.res)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		for c := w.advance(quit); c != nil; {
			next := c.wnext
			c.wnext = nil
			c.fire()
			c = next
		}
		// The due connections that did not come back (they closed) may
		// have been the last.
		w.mu.Lock()
		if w.quit == quit && w.live == 0 {
			w.emptyLocked()
		}
		w.mu.Unlock()
	}
}

// advance moves the wheel one tick and returns the connections due, as a
// list through wnext, out of the wheel (nil if quit was closed
// meanwhile: the wheel was emptied).
func (w *timerWheel) advance(quit chan struct{}) *Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.quit != quit {
		return nil
	}
	w.ticks++
	slot := w.ticks % wheelSlots
	var due, keep *Conn
	for c := w.slots[slot]; c != nil; {
		next := c.wnext
		switch {
		case c.wheel != w.id:
			// Stopped since it was put in: dropped.
			c.wnext = nil
		case c.wrounds > 0:
			c.wrounds--
			c.wnext, keep = keep, c
		default:
			c.wheel = 0
			w.live--
			c.wnext, due = due, c
		}
		c = next
	}
	w.slots[slot] = keep
	return due
}

// fire runs a due connection's tick, unless it stopped meanwhile.
func (c *Conn) fire() {
	c.mu.Lock()
	dead := c.stopped || c.sendClosed
	c.mu.Unlock()
	if !dead {
		c.tick()
	}
}
