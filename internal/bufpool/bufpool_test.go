package bufpool

import "testing"

func TestClasses(t *testing.T) {
	for _, tc := range []struct{ n, cap int }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {1000, 1024}, {4096, 4096}, {4097, 8192},
		{64 << 20, 64 << 20}, {64<<20 + 1, 64<<20 + 1}, // over the largest class: exactly n, unpooled
	} {
		b := Get(tc.n)
		if len(*b) != 0 || cap(*b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want 0 and %d", tc.n, len(*b), cap(*b), tc.cap)
		}
		Put(b)
	}
}

// TestReuse: a buffer put back is what the next Get of its class returns,
// emptied; one whose capacity is not a class size is not pooled.
func TestReuse(t *testing.T) {
	b := Get(3000)
	*b = append(*b, "dirty"...)
	Put(b)
	again := Get(2500) // same class: 4 KiB
	if len(*again) != 0 {
		t.Fatalf("a reused buffer is not empty: %q", *again)
	}
	Put(again)
	odd := make([]byte, 0, 3000)
	Put(&odd) // not a class size: left to the collector
	if b := Get(2049); cap(*b) != 4096 {
		t.Fatalf("Get after putting an odd buffer: cap %d, want 4096", cap(*b))
	}
	Put(nil) // allowed
}

// TestGetPutAllocatesNothing: in steady state a Get and its Put cost no
// allocation (the pools hold *[]byte).
func TestGetPutAllocatesNothing(t *testing.T) {
	Put(Get(1024))
	if n := testing.AllocsPerRun(1000, func() { Put(Get(1024)) }); n > 0 {
		t.Fatalf("%v allocations per Get and Put", n)
	}
}
