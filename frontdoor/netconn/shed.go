package netconn

import (
	"log/slog"
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

var (
	releasedSince atomic.Int64 // parks and closes since the last shed
	shedOnce      sync.Once
)

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
	var seen int64
	for now := range time.Tick(time.Second) {
		n := releasedSince.Load()
		quiet := n == seen
		seen = n
		if n >= shedAfter && now.Sub(last) >= shedGap && (quiet || now.Sub(last) >= 2*shedGap) {
			releasedSince.Add(-n)
			seen = 0
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
