package gateway

import (
	"sync/atomic"
	"time"
)

// Latency and lifetime histograms, for metrics. Fixed buckets, counted
// with atomics on the path that ends a handshake or a connection: no lock,
// no allocation, and a scrape copies them.

// HandshakeBuckets are the upper bounds, in seconds, of the handshake
// duration histogram: from the upgrade request to the gateway's decision
// (the application's OnOpen included, which for a producer is a round trip
// to it). Also used for the HTTP back end's requests.
var HandshakeBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// LifetimeBuckets are the upper bounds, in seconds, of the connection
// lifetime histogram.
var LifetimeBuckets = []float64{1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// Histogram is a histogram's state at one moment: Counts[i] is how many
// observations were at most Bounds[i] (not cumulative: the exporter adds
// them up), plus those above the last bound in Counts[len(Bounds)].
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Sum    float64   // seconds `json:"sum"`
	Count  uint64    `json:"count"`
}

// Add adds o's counts to h (the same bounds).
func (h *Histogram) Add(o Histogram) {
	if o.Bounds == nil {
		return
	}
	if h.Bounds == nil {
		*h = Histogram{Bounds: o.Bounds, Counts: append([]uint64(nil), o.Counts...), Sum: o.Sum, Count: o.Count}
		return
	}
	for i := range o.Counts {
		h.Counts[i] += o.Counts[i]
	}
	h.Sum += o.Sum
	h.Count += o.Count
}

// Latency counts durations into fixed buckets, with atomics: for an
// application that reports its own latencies (LinkStats.RequestSeconds).
type Latency = hist

// NewLatency returns a Latency with bounds in seconds (HandshakeBuckets,
// LifetimeBuckets).
func NewLatency(bounds []float64) *Latency { return newHist(bounds) }

// Observe counts one duration; a nil Latency counts nothing.
func (h *hist) Observe(d time.Duration) {
	if h != nil {
		h.observe(d)
	}
}

// Snapshot returns the counts so far (none for a nil Latency).
func (h *hist) Snapshot() Histogram {
	if h == nil {
		return Histogram{}
	}
	return h.snapshot()
}

// hist counts observations into bounds.
type hist struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1
	sumNs  atomic.Uint64
}

func newHist(bounds []float64) *hist {
	return &hist{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *hist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

func (h *hist) snapshot() Histogram {
	out := Histogram{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	out.Sum = time.Duration(h.sumNs.Load()).Seconds()
	return out
}
