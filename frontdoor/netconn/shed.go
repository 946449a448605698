package netconn

import (
	"log/slog"

	"github.com/wsgate/wsgate/websocket"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// shedAfter is how many released connections (parked or closed) make a
// shed worthwhile; shedGap is the least time between two.
const (
	shedAfter = 1000
	shedGap   = 5 * time.Second
)

// shedBytes is how far the bytes buffered by WebSockets must have fallen
// from their peak since the last shed (and to under half of it) to make
// one worthwhile: a few thousand connections that held a message each and
// went away are as worth returning as a thousand that parked.
const shedBytes = 64 << 20

var (
	noShed        atomic.Bool  // SetReturnMemory(false)
	releasedSince atomic.Int64 // parks and closes since the last shed
	shedOnce      sync.Once
	budget        atomic.Pointer[websocket.Budget]
)

// SetReturnMemory turns the shed on (the default) or off
// (server.return_memory).
func SetReturnMemory(on bool) { noShed.Store(!on) }

// WatchBudget makes the shed follow b too: when what b's connections
// buffer falls by shedBytes from its peak (a flood of large messages
// shed or gone), the memory goes back to the kernel as after a flood of
// connections.
func WatchBudget(b *websocket.Budget) {
	budget.Store(b)
	shedOnce.Do(func() { go shed() })
}

// released notes a connection that gave memory back to the runtime: its
// goroutine stack and buffers when it parks, everything when it closes.
func released() {
	releasedSince.Add(1)
	shedOnce.Do(func() { go shed() })
}

// shed returns freed memory to the kernel after many connections parked
// or closed. The runtime hands free pages back only as its collections
// lower the heap goal, and a server that has gone quiet collects rarely:
// without this, the memory of a burst of connections stays resident for
// minutes after they go idle or away (a flood of 19,000 connections left
// 34 MB against a 14 MB baseline). It waits for the burst to end (a second
// with no release), or for twice shedGap while it goes on, and sheds at
// most once per shedGap, so that the forced collection stays away from
// busy servers.
func shed() {
	defer func() {
		if v := recover(); v != nil {
			slog.Error("websocket: memory shedding panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	var last time.Time
	var seen, peak int64
	for now := range time.Tick(time.Second) {
		n := releasedSince.Load()
		quiet := n == seen
		seen = n
		var used int64
		if b := budget.Load(); b != nil {
			used = b.Used()
			peak = max(peak, used)
		}
		fell := peak-used >= shedBytes && used < peak/2
		if (n >= shedAfter || fell) && !noShed.Load() && now.Sub(last) >= shedGap && (quiet || now.Sub(last) >= 2*shedGap) {
			releasedSince.Add(-n)
			seen, peak = 0, used
			last = now
			// Two collections: the first moves what sync.Pools hold (the
			// read buffers a burst took, 16 KiB for each TLS connection
			// waiting for its first bytes) to their victim caches, the
			// second drops those; then the freed pages go back.
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
}
