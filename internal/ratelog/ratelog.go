// Package ratelog limits log lines that come in floods. Refusals,
// server-decided closes and a misbehaving producer's frames can arrive by
// the thousand a second; every one is counted in the metrics, and the log
// gets a burst of lines per key, then one per interval, and the next line
// written says how many were left out. A key is a cause: a small fixed
// set, so the table stays small.
package ratelog

import (
	"sync"
	"time"
)

// Limiter is a token bucket per key. The zero value is not usable: use New.
type Limiter struct {
	burst float64
	every time.Duration

	mu   sync.Mutex
	keys map[string]*bucket
}

type bucket struct {
	tokens     float64
	at         time.Time
	suppressed int
}

// New returns a limiter that allows burst lines per key at once, then one
// per every.
func New(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: float64(burst), every: every, keys: map[string]*bucket{}}
}

// Allow says whether a line for key may be written at now, and, when it
// may, how many lines for key were suppressed since the last one.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.keys[key] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}
