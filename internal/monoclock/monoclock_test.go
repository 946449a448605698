package monoclock

import (
	"testing"
	"time"
)

// TestMonotonic: Now never goes back, and At agrees with Now for the
// same instant.
func TestMonotonic(t *testing.T) {
	prev := Now()
	for range 1000 {
		n := Now()
		if n < prev {
			t.Fatalf("Now went back: %v after %v", n, prev)
		}
		prev = n
	}
	before := Now()
	t0 := time.Now()
	after := Now()
	if at := At(t0); at < before || at > after {
		t.Fatalf("At(now) = %v, not between %v and %v", at, before, after)
	}
	// Durations between times carry over exactly.
	if d := At(t0.Add(time.Second)) - At(t0); d != time.Second {
		t.Fatalf("a second later is %v later", d)
	}
}
