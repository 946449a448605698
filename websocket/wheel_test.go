package websocket

import (
	"testing"
	"time"
)

// TestWheelDue: a connection comes out of the wheel at the tick its
// interval reaches, rounded up to the wheel's resolution, also when the
// interval is longer than the ring (it goes round first); a stopped one
// never comes out, and the last one stopped empties the wheel.
func TestWheelDue(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		tick uint64 // the tick it is due at
	}{
		{1, 1},
		{10 * time.Millisecond, 1},
		{10*time.Millisecond + 1, 2},
		{35 * time.Millisecond, 4},
		{wheelSlots * 10 * time.Millisecond, wheelSlots},
		{(wheelSlots + 5) * 10 * time.Millisecond, wheelSlots + 5},
		{(3*wheelSlots + 1) * 10 * time.Millisecond, 3*wheelSlots + 1},
	} {
		w := &timerWheel{id: 9, res: 10 * time.Millisecond, quit: make(chan struct{})}
		w.ticks = 77 // anywhere on the ring
		quit := w.quit
		c, other := &Conn{}, &Conn{}
		w.add(c, tc.d)
		w.add(other, tc.d)
		w.remove(other) // stopped: never due
		if w.live != 1 {
			t.Fatalf("%v: %d live", tc.d, w.live)
		}
		var at uint64
		for i := uint64(1); i <= 4*wheelSlots+2; i++ {
			for due := w.advance(quit); due != nil; due = due.wnext {
				if due != c || at != 0 {
					t.Fatalf("%v: a connection came out twice, or the stopped one came out", tc.d)
				}
				at = i
			}
		}
		if at != tc.tick {
			t.Errorf("%v: due at tick %d, want %d", tc.d, at, tc.tick)
		}
		if w.live != 0 || c.wheel != 0 {
			t.Errorf("%v: %d still live after it came out", tc.d, w.live)
		}
	}
	// Stopping the last live connection empties the ring and ends the
	// goroutine's run (quit is closed).
	w := &timerWheel{id: 9, res: time.Millisecond, quit: make(chan struct{})}
	quit := w.quit
	c := &Conn{}
	w.add(c, 50*time.Millisecond)
	w.remove(c)
	select {
	case <-quit:
	default:
		t.Fatal("the empty wheel's goroutine was not told to end")
	}
	for i := range w.slots {
		if w.slots[i] != nil {
			t.Fatal("the empty wheel still links a connection")
		}
	}
}
