// Package monoclock gives times as durations on the monotonic clock since
// the process started: 8 bytes where a time.Time takes 24, for the fields
// that every idle connection keeps (the engine's keepalive times, the
// transport's park deadline, the gateway's start time).
package monoclock

import "time"

var base = time.Now()

// Now is the time now.
func Now() time.Duration { return time.Since(base) }

// At is t on the same clock.
func At(t time.Time) time.Duration { return t.Sub(base) }
