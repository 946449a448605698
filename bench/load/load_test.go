package load

import (
	"bytes"
	"math"
	"net"
	"testing"
	"time"
)

// TestHistQuantiles: readings spread over six decades come back within
// the histogram's 1/32 relative precision.
func TestHistQuantiles(t *testing.T) {
	var h Hist
	var vals []time.Duration
	for i := 1; i <= 100000; i++ {
		d := time.Duration(math.Pow(10, 1+6*float64(i)/100000)) // 10 ns .. 10 ms
		h.Record(d)
		vals = append(vals, d)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := float64(vals[int(q*float64(len(vals)))])
		got := float64(h.Quantile(q))
		if math.Abs(got-want)/want > 1.0/32 {
			t.Errorf("q%.3f = %v, want %v within 1/32", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.Count() != 100000 {
		t.Errorf("count %d", h.Count())
	}
	var m Hist
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 200000 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merge: count %d, median %v vs %v", m.Count(), m.Quantile(0.5), h.Quantile(0.5))
	}
}

// TestFrames: what Frame builds, ReadPayload and ReadMessage read back, for
// each length encoding, masked (the TCP baseline echoes client frames) and
// fragmented.
func TestFrames(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 200000} {
		p := Payload(n)
		a, b := net.Pipe()
		c := &Conn{NC: a}
		c.br = newReader(a)
		go func() {
			b.Write(Frame(0x2, p, true))
			// A fragmented message with a ping between its frames.
			f1 := Frame(0x1, p[:n/2], false)
			f1[0] &^= 0x80
			b.Write(f1)
			b.Write(Frame(0x9, nil, false))
			b.Write(Frame(0x0, p[n/2:], false))
		}()
		b0, got, err := c.ReadPayload()
		if err != nil || b0 != 0xC2 || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: b0 %#x, %d bytes back, %v", n, b0, len(got), err)
		}
		if l, err := c.ReadMessage(); err != nil || l != n {
			t.Fatalf("%d bytes fragmented: %d, %v", n, l, err)
		}
		a.Close()
		b.Close()
	}
}

// TestReadFrameMasked: a masked frame with an extended length (what the
// TCP baseline echoes) is read whole, and the next frame after it too.
func TestReadFrameMasked(t *testing.T) {
	for _, n := range []int{16, 1024, 65536} {
		a, b := net.Pipe()
		c := &Conn{NC: a, br: newReader(a)}
		go func() {
			b.Write(Frame(0x2, Payload(n), false))
			b.Write(Frame(0x2, Payload(3), false))
		}()
		if l, err := c.ReadMessage(); err != nil || l != n {
			t.Fatalf("%d bytes: %d, %v", n, l, err)
		}
		if l, err := c.ReadMessage(); err != nil || l != 3 {
			t.Fatalf("after %d bytes: %d, %v", n, l, err)
		}
		a.Close()
		b.Close()
	}
}

// TestEchoParse: the echo loop's incremental parser counts whole data
// messages however the reply stream is cut: fragments, a ping between
// them, extended lengths, masked frames, empty payloads, one byte at a time.
func TestEchoParse(t *testing.T) {
	first := Frame(0x1, Payload(300), false)
	first[0] &^= 0x80 // not final
	stream := bytes.Join([][]byte{
		Frame(0x2, Payload(16), false),
		first, Frame(0x9, nil, false), Frame(0x0, Payload(70000), false),
		Frame(0x2, nil, false),
		Frame(0x2, Payload(1024), false),
	}, nil)
	for _, step := range []int{1, 7, 4096, len(stream)} {
		var e echoConn
		e.inHdr = true
		done := 0
		for off := 0; off < len(stream); off += step {
			n, err := e.parse(stream[off:min(off+step, len(stream))])
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			done += n
		}
		if done != 4 || !e.inHdr {
			t.Errorf("step %d: %d messages (want 4), between frames: %v", step, done, e.inHdr)
		}
	}
	var e echoConn
	e.inHdr = true
	if _, err := e.parse(Frame(0x8, []byte{3, 0xE8}, false)); err != ErrClosed {
		t.Errorf("close frame: %v, want ErrClosed", err)
	}
}
