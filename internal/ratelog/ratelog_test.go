package ratelog

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New(3, time.Second)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		key        string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"a", 0, true, 0},
		{"a", 0, true, 0},
		{"a", 0, true, 0},
		{"a", 0, false, 0},                       // the burst is spent
		{"b", 0, true, 0},                        // another key has its own
		{"a", 500 * time.Millisecond, false, 0},  // half a token
		{"a", 1000 * time.Millisecond, true, 2},  // one token: says what it left out
		{"a", 1100 * time.Millisecond, false, 0}, //
		{"a", 10 * time.Second, true, 1},         // refilled, capped at the burst
		{"a", 10 * time.Second, true, 0},         //
		{"a", 10 * time.Second, true, 0},         //
		{"a", 10*time.Second + time.Millisecond, false, 0},
	}
	for i, s := range steps {
		ok, n := l.Allow(s.key, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d (%s at %v): ok=%v suppressed=%d, want %v %d", i, s.key, s.at, ok, n, s.ok, s.suppressed)
		}
	}
}
