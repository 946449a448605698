package load

import (
	"math/bits"
	"time"
)

// Hist is a log-linear latency histogram in nanoseconds: exact below 64 ns,
// then 32 buckets per power of two, so every reading is within about 3% of
// the truth. It is a fixed array, so recording allocates nothing and
// per-connection histograms merge by addition.
type Hist struct {
	counts [64 + 58*32]uint64
	n      uint64
}

func histIndex(v uint64) int {
	if v < 64 {
		return int(v)
	}
	k := bits.Len64(v) // 7..64
	shift := k - 6
	return 64 + (k-7)*32 + int((v>>shift)&31)
}

func histValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	k := (i-64)/32 + 7
	sub := uint64((i - 64) % 32)
	return (32 + sub) << (k - 6)
}

// Record adds one latency.
func (h *Hist) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Count is the number of readings.
func (h *Hist) Count() uint64 { return h.n }

// Quantile returns the latency below which a fraction q of readings lie.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q * float64(h.n))
	if want >= h.n {
		want = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > want {
			return time.Duration(histValue(i))
		}
	}
	return 0
}
