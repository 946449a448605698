package websocket

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/flate"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// deflateCorpus is a stream of JSON-like messages; each op takes the next
// one, so context takeover sees realistic history, not one message
// repeated.
func deflateCorpus(n, count int) [][]byte {
	r := rand.New(rand.NewPCG(11, 13))
	out := make([][]byte, count)
	for i := range out {
		out[i] = jsonish(r, n)
	}
	return out
}

var deflateModes = []struct {
	name     string
	takeover bool
	bits     int
}{{"stateless-15", false, 15}, {"stateless-9", false, 9}, {"takeover-15", true, 15}, {"takeover-9", true, 9}}

// BenchmarkDeflateSend compresses and frames one message per op into a
// transport that takes everything.
func BenchmarkDeflateSend(b *testing.B) {
	for _, m := range deflateModes {
		for _, n := range []int{128, 1024, 16384} {
			msgs := deflateCorpus(n, 256)
			b.Run(fmt.Sprintf("%s/%d", m.name, n), func(b *testing.B) {
				d := deflateParams{ServerNoContextTakeover: !m.takeover, ServerWindowBits: m.bits, ClientWindowBits: 15, Threshold: 1, Level: 1}
				c, _, _ := deflateConn(d, Options{})
				c.nb = nil // measure compression, not the recorder
				c.start(discard{})
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := c.Send(TextMessage, msgs[i%len(msgs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkDeflateReceive parses and inflates one compressed message per
// op, from a client with or without context takeover. The client's stream
// is a fixed sequence of messages; when it runs out, a fresh connection
// starts it again (outside the timer).
func BenchmarkDeflateReceive(b *testing.B) {
	for _, m := range deflateModes {
		for _, n := range []int{128, 1024, 16384} {
			msgs := deflateCorpus(n, 512)
			cl := newClient(m.takeover, m.bits)
			frames := make([][]byte, len(msgs))
			for i, p := range msgs {
				frames[i] = compressedFrames(ws.OpText, cl.compress(p), 0)
			}
			b.Run(fmt.Sprintf("%s/%d", m.name, n), func(b *testing.B) {
				d := deflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: !m.takeover, ServerWindowBits: 15, ClientWindowBits: m.bits, Threshold: 1 << 30}
				var c *Conn
				buf := make([]byte, 0, 2*n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i%len(frames) == 0 {
						b.StopTimer()
						if c != nil {
							c.release()
						}
						c = newConn(&nopHandler{}, Options{deflate: &d})
						c.start(discard{})
						b.StartTimer()
					}
					buf = append(buf[:0], frames[i%len(frames)]...)
					if err := c.feed(buf); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkDeflateRetainedMemory measures what deflate adds to a
// connection between messages, by mode and window size, after it has sent
// and received compressed messages: heap in use with pools emptied, per
// connection, against a connection without deflate. Heap figures are
// noisy next to other tests, so this is a benchmark that reports them;
// TestDeflateRetains asserts the structure behind them.
//
//	go test -run '^$' -bench DeflateRetainedMemory ./websocket/
func BenchmarkDeflateRetainedMemory(b *testing.B) {
	const conns = 200
	msgs := deflateCorpus(2048, 3)
	measure := func(d *deflateParams, clientTakeover bool, cbits int) float64 {
		var before, after runtime.MemStats
		// Two collections empty the sync.Pools, so pooled inflaters and
		// compressors are not counted against connections.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		keep := make([]*Conn, conns)
		for i := range keep {
			c := newConn(&nopHandler{}, Options{deflate: d})
			c.start(discard{})
			cl := newClient(clientTakeover, cbits)
			for _, p := range msgs {
				c.Send(TextMessage, p)
				in := ws.Text(string(p))
				if d != nil {
					in = compressedFrames(ws.OpText, cl.compress(p), 0)
				}
				if err := c.feed(in); err != nil {
					b.Fatal(err)
				}
			}
			keep[i] = c
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / conns / 1024
		for _, c := range keep {
			c.release()
		}
		return per
	}
	for _, m := range []struct {
		name           string
		server, client bool
		sbits, cbits   int
	}{
		{"no-takeover", false, false, 15, 15},
		{"client-takeover-15", false, true, 15, 15},
		{"client-takeover-12", false, true, 15, 12},
		{"client-takeover-9", false, true, 15, 9},
		{"server-takeover-15-active", true, false, 15, 15},
		{"server-takeover-9-active", true, false, 9, 15},
	} {
		b.Run(m.name, func(b *testing.B) {
			var added float64
			for b.Loop() {
				d := &deflateParams{ServerNoContextTakeover: !m.server, ClientNoContextTakeover: !m.client, ServerWindowBits: m.sbits, ClientWindowBits: m.cbits, Threshold: 1, Level: 1}
				added = measure(d, m.client, m.cbits) - measure(nil, false, 15)
			}
			b.ReportMetric(added, "KiB/conn")
		})
	}
}

// TestDeflateRetains checks what a connection keeps between messages in
// each mode: no dictionary without client context takeover, at most
// 2^bits bytes with it, and no compressor without server context
// takeover or once idle.
func TestDeflateRetains(t *testing.T) {
	msgs := deflateCorpus(2048, 4)
	for _, m := range []struct {
		server, client bool
		cbits          int
	}{{false, false, 15}, {false, true, 15}, {false, true, 9}, {true, false, 15}, {true, true, 12}} {
		t.Run(fmt.Sprintf("server=%v/client=%v/bits=%d", m.server, m.client, m.cbits), func(t *testing.T) {
			d := &deflateParams{ServerNoContextTakeover: !m.server, ClientNoContextTakeover: !m.client, ServerWindowBits: 15, ClientWindowBits: m.cbits, Threshold: 1, Level: 1}
			c := newConn(&nopHandler{}, Options{deflate: d})
			c.start(discard{})
			cl := newClient(m.client, m.cbits)
			for _, p := range msgs {
				c.Send(TextMessage, p)
				if err := c.feed(compressedFrames(ws.OpText, cl.compress(p), 0)); err != nil {
					t.Fatal(err)
				}
			}
			z := c.z
			received := 0
			for _, p := range msgs {
				received += len(p)
			}
			switch {
			case !m.client && z.dict != nil:
				t.Error("a dictionary is kept without client context takeover")
			case m.client && (z.dict == nil || len(*z.dict) != min(received, 1<<m.cbits) || cap(*z.dict) > 1<<m.cbits):
				t.Errorf("client window holds %d bytes (cap %d), want the last min(%d, 2^%d)", len(*z.dict), cap(*z.dict), received, m.cbits)
			}
			if z.in.src != nil {
				t.Error("the inflater input still points at the last message")
			}
			z.zmu.Lock()
			held := z.zw != nil
			z.lastUse = z.lastUse.Add(-2 * compressorIdle)
			z.zmu.Unlock()
			if held != m.server {
				t.Errorf("compressor held: %v, want %v", held, m.server)
			}
			z.idleCheck()
			if z.zw != nil {
				t.Error("compressor kept after idling")
			}
			c.release()
		})
	}
}

// BenchmarkFlateLibraries is the measurement behind choosing
// klauspost/compress over compress/flate (docs/DEFLATE.md): compressing a
// stream of varying messages with a kept compressor (context takeover) and
// statelessly, and inflating. The ratio metric is compressed/original.
func BenchmarkFlateLibraries(b *testing.B) {
	for _, n := range []int{128, 1024} {
		msgs := deflateCorpus(n, 512)
		var out bytes.Buffer
		run := func(name string, w interface {
			Write([]byte) (int, error)
			Flush() error
		}) {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				total, i := 0, 0
				b.ReportAllocs()
				for b.Loop() {
					out.Reset()
					w.Write(msgs[i%len(msgs)])
					w.Flush()
					total += out.Len()
					i++
				}
				b.ReportMetric(float64(total)/float64(i*n), "ratio")
			})
		}
		kw, _ := flate.NewWriter(&out, 1)
		run("klauspost-kept-L1", kw)
		sw, _ := stdflate.NewWriter(&out, 1)
		run("stdlib-kept-L1", sw)
		b.Run(fmt.Sprintf("klauspost-stateless/%d", n), func(b *testing.B) {
			total, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				flate.StatelessDeflate(&out, msgs[i%len(msgs)], false, nil)
				total += out.Len()
				i++
			}
			b.ReportMetric(float64(total)/float64(i*n), "ratio")
		})
	}
	big := deflateCorpus(16384, 1)[0]
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, 1)
	zw.Write(big)
	zw.Flush()
	comp := append(z.Bytes(), 1, 0, 0, 0xff, 0xff)
	dst := make([]byte, len(big))
	kr := flate.NewReader(nil)
	sr := stdflate.NewReader(nil)
	for name, r := range map[string]io.ReadCloser{"klauspost": kr, "stdlib": sr} {
		b.Run("inflate-16384/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(big)))
			b.ReportAllocs()
			for b.Loop() {
				r.(stdflate.Resetter).Reset(bytes.NewReader(comp), nil)
				io.ReadFull(r, dst)
			}
		})
	}
}

// BenchmarkStatelessVsPooled is the measurement behind how a message is
// compressed without context takeover: klauspost's stateless encoder
// needs no state between messages, a pooled level-1 compressor has to be
// reset for each; which is faster depends on the message's size.
func BenchmarkStatelessVsPooled(b *testing.B) {
	for _, n := range []int{1024, 4096, 16384, 65536} {
		msg := deflateCorpus(n, 1)[0]
		var out bytes.Buffer
		b.Run(fmt.Sprintf("stateless/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				flate.StatelessDeflate(&out, msg, false, nil)
			}
			b.ReportMetric(float64(out.Len())/float64(n), "ratio")
		})
		w, _ := flate.NewWriter(&out, 1)
		b.Run(fmt.Sprintf("pooled-L1/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				w.Reset(&out)
				w.Write(msg)
				w.Flush()
			}
			b.ReportMetric(float64(out.Len())/float64(n), "ratio")
		})
	}
}
