package websocket

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

type nopHandler struct{ n int }

func (h *nopHandler) OnMessage(c *Conn, typ MessageType, p []byte) { h.n += len(p) }
func (h *nopHandler) OnClose(*Conn, CloseStatus)                   {}

// discard is a transport whose non-blocking writes always succeed, so the
// write benchmarks measure framing and queueing, not a socket.
type discard struct{}

func (discard) WriteBuffers([][]byte) error { return nil }
func (discard) Close() error                { return nil }
func (discard) ReadTo(io.Writer) error      { return io.EOF }
func (discard) Linger(time.Duration)        {}
func (discard) TryWriteBuffers(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n, nil
}

// ownerLoop is a Waker transport; the benchmark plays the owner thread.
type ownerLoop struct{ discard }

func (ownerLoop) Wake() {}

var benchSizes = []int{16, 1024, 64 << 10}

// BenchmarkReadFrame parses and unmasks one masked binary frame per op,
// delivered whole from the read buffer as a front door would.
func BenchmarkReadFrame(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("binary-%d", n), func(b *testing.B) {
			frame := ws.Binary(make([]byte, n))
			c := newConn(&nopHandler{}, Options{})
			c.start(discard{})
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				// Unmasking twice restores the bytes, so the same buffer can
				// be fed again without a copy.
				if err := c.feed(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("text-%d", n), func(b *testing.B) {
			tmpl := ws.Text(strings.ToValidUTF8(strings.Repeat("wsgate κόσμε ", n/15+1)[:n], ""))
			frame := make([]byte, len(tmpl))
			c := newConn(&nopHandler{}, Options{})
			c.start(discard{})
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(frame, tmpl)
				if err := c.feed(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("fragmented-64KiB-in-4KiB-reads", func(b *testing.B) {
		var parts [][]byte
		for i := range 16 {
			op := byte(ws.OpCont)
			if i == 0 {
				op = ws.OpBinary
			}
			parts = append(parts, ws.Frame{Fin: i == 15, Op: op, Masked: true, Payload: make([]byte, 4096)}.Bytes())
		}
		c := newConn(&nopHandler{}, Options{})
		c.start(discard{})
		b.SetBytes(64 << 10)
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range parts {
				if err := c.feed(p); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkWriteFrame frames and writes one message per op: inline (the
// sender writes to a non-blocking socket), and queued (an owner thread
// flushes, as in mod_wsgate).
func BenchmarkWriteFrame(b *testing.B) {
	for _, n := range benchSizes {
		p := make([]byte, n)
		b.Run(fmt.Sprintf("inline-%d", n), func(b *testing.B) {
			c := newConn(&nopHandler{}, Options{})
			c.start(discard{})
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(BinaryMessage, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("queued-%d", n), func(b *testing.B) {
			c := newConn(&nopHandler{}, Options{})
			c.start(ownerLoop{})
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Send(BinaryMessage, p); err != nil {
					b.Fatal(err)
				}
				c.flush()
			}
		})
	}
	b.Run("prepared-1024", func(b *testing.B) {
		c := newConn(&nopHandler{}, Options{})
		c.start(discard{})
		pm := NewPreparedMessage(BinaryMessage, make([]byte, 1024))
		defer pm.Release()
		b.ReportAllocs()
		for b.Loop() {
			c.SendPrepared(pm)
		}
	})
}

func BenchmarkMask(b *testing.B) {
	for _, n := range []int{16, 1024, 64 << 10} {
		buf := make([]byte, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				mask(0x3d21fa37, 1, buf)
			}
		})
	}
}

func BenchmarkUTF8(b *testing.B) {
	for name, s := range map[string]string{
		"ascii-1024": strings.Repeat("a", 1024),
		"mixed-1024": strings.Repeat("κόσμε wsgate ", 1024/18+1)[:1024],
	} {
		p := []byte(s)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				var v utf8Validator
				v.write(p)
			}
		})
	}
}
