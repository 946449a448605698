package websocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestConcurrentSends sends from many goroutines through a transport that
// takes at most a few bytes per inline write, so frames are split and
// queued behind each other constantly. Every frame must arrive whole and
// every goroutine's messages in the order it sent them.
func TestConcurrentSends(t *testing.T) {
	for _, limit := range []int{0, 7, 1000} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			h := newHandler()
			c := newConn(h, Options{MaxQueue: 64 << 20})
			tr := &nbRecorder{recorder: recorder{limit: limit}}
			c.start(tr)
			const senders, per = 8, 300
			var wg sync.WaitGroup
			for g := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						p := make([]byte, 8+(i*37)%400)
						binary.BigEndian.PutUint32(p, uint32(g))
						binary.BigEndian.PutUint32(p[4:], uint32(i))
						if err := c.Send(BinaryMessage, p); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if !c.waitFlushed(5 * time.Second) {
				t.Fatal("queue did not drain")
			}
			next := make([]uint32, senders)
			n := 0
			for _, f := range tr.frames(t) {
				g, i := binary.BigEndian.Uint32(f.Payload), binary.BigEndian.Uint32(f.Payload[4:])
				if f.Op != ws.OpBinary || !f.Fin || len(f.Payload) != 8+(int(i)*37)%400 {
					t.Fatalf("bad frame %v", f)
				}
				if i != next[g] {
					t.Fatalf("sender %d: message %d arrived, expected %d", g, i, next[g])
				}
				next[g]++
				n++
			}
			if n != senders*per {
				t.Fatalf("%d frames arrived, want %d", n, senders*per)
			}
		})
	}
}

func TestSendQueuedBeforeStart(t *testing.T) {
	c := newConn(newHandler(), Options{})
	c.SendText("early")
	tr := &nbRecorder{}
	c.start(tr)
	c.SendText("late")
	c.waitFlushed(time.Second)
	fs := tr.frames(t)
	if len(fs) != 2 || string(fs[0].Payload) != "early" || string(fs[1].Payload) != "late" {
		t.Fatalf("frames = %v", fs)
	}
}

func TestSlowConsumer(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		tr := &nbRecorder{recorder: recorder{block: make(chan struct{})}}
		c := newConn(newHandler(), Options{MaxQueue: 1000, SlowConsumer: SlowConsumerDrop})
		c.start(tr)
		p := make([]byte, 300)
		var dropped int
		for range 10 {
			if err := c.Send(BinaryMessage, p); errors.Is(err, ErrDropped) {
				dropped++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		// 302-byte frames count against the queue until written: three fit
		// in 1000 bytes (one of them stuck in the stalled writer), the other
		// seven are dropped.
		if dropped != 7 || c.Dropped() != 7 || c.Closing() {
			t.Fatalf("dropped %d (counter %d), closing %v", dropped, c.Dropped(), c.Closing())
		}
		tr.Close()
	})
	t.Run("close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := &nbRecorder{recorder: recorder{block: make(chan struct{})}}
			h := newHandler()
			c := newConn(h, Options{MaxQueue: 1000, CloseTimeout: 50 * time.Millisecond})
			c.start(tr)
			p := make([]byte, 300)
			var err error
			for i := 0; i < 10 && err == nil; i++ {
				err = c.Send(BinaryMessage, p)
			}
			if !errors.Is(err, ErrSlowConsumer) || !c.Closing() {
				t.Fatalf("err = %v, closing %v", err, c.Closing())
			}
			if err := c.Send(BinaryMessage, p); !errors.Is(err, ErrClosed) {
				t.Fatalf("send after slow-consumer close: %v", err)
			}
			// The peer never reads, so the close frame cannot go out: the
			// close timeout aborts the transport.
			time.Sleep(50 * time.Millisecond)
			synctest.Wait()
			if !tr.isClosed() {
				t.Fatal("transport not closed after the close timeout")
			}
			c.stop(errors.New("read: closed"))
			c.release()
			if s := h.waitClosed(t, time.Second); s.Code != StatusPolicyViolation {
				t.Fatalf("status %+v, want 1008", s)
			}
		})
	})
	t.Run("ping flood", func(t *testing.T) {
		tr := &nbRecorder{recorder: recorder{block: make(chan struct{})}}
		c := newConn(newHandler(), Options{MaxQueue: 1000})
		c.start(tr)
		for range 10000 {
			if err := c.feed(ws.Ping(make([]byte, 100))); err != nil {
				t.Fatal(err)
			}
		}
		c.mu.Lock()
		q := c.qBytes
		c.mu.Unlock()
		if q > 1200 {
			t.Fatalf("queue grew to %d bytes under a ping flood", q)
		}
		tr.Close()
	})
}

func TestCloseHandshake(t *testing.T) {
	t.Run("server initiated", func(t *testing.T) {
		h := newHandler()
		c := newConn(h, Options{})
		tr := &nbRecorder{}
		c.start(tr)
		if err := c.Close(4000, "done"); err != nil {
			t.Fatal(err)
		}
		if err := c.SendText("after"); !errors.Is(err, ErrClosed) {
			t.Fatalf("send after close: %v", err)
		}
		// Messages arriving before the peer's close are not delivered.
		if err := c.feed(ws.Text("ignored")); err != nil {
			t.Fatal(err)
		}
		err := c.feed(ws.Close(4000, "done"))
		if !isPeerClose(err) {
			t.Fatalf("Feed = %v", err)
		}
		if c.stop(err) {
			t.Fatal("linger after a complete handshake")
		}
		c.release()
		s := h.waitClosed(t, time.Second)
		if s.Code != 4000 || s.Reason != "done" || s.Remote {
			t.Fatalf("status %+v", s)
		}
		fs := tr.frames(t)
		if len(fs) != 1 || fs[0].Code() != 4000 || fs[0].Reason() != "done" || len(h.messages()) != 0 {
			t.Fatalf("frames %v, messages %v", fs, h.messages())
		}
	})
	t.Run("empty close like the C plugin API", func(t *testing.T) {
		c := newConn(newHandler(), Options{})
		tr := &nbRecorder{}
		c.start(tr)
		c.Close(0, "")
		if fs := tr.frames(t); len(fs) != 1 || len(fs[0].Payload) != 0 {
			t.Fatalf("frames %v", fs)
		}
	})
	t.Run("peer never answers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newConn(newHandler(), Options{CloseTimeout: 30 * time.Millisecond})
			tr := &nbRecorder{}
			c.start(tr)
			c.Close(1000, "")
			time.Sleep(29 * time.Millisecond)
			synctest.Wait()
			if tr.isClosed() {
				t.Fatal("transport closed before the close timeout")
			}
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			if !tr.isClosed() {
				t.Fatal("transport still open after the close timeout")
			}
		})
	})
	t.Run("peer initiated", func(t *testing.T) {
		h := newHandler()
		c := newConn(h, Options{})
		tr := &nbRecorder{}
		c.start(tr)
		err := c.feed(ws.Close(1001, "away"))
		c.stop(err)
		c.release()
		s := h.waitClosed(t, time.Second)
		if s.Code != 1001 || s.Reason != "away" || !s.Remote {
			t.Fatalf("status %+v", s)
		}
	})
	t.Run("protocol error lingers", func(t *testing.T) {
		c := newConn(newHandler(), Options{})
		c.start(&nbRecorder{})
		err := c.feed(ws.Text("\xff"))
		if !c.stop(err) {
			t.Fatal("no linger after failing the connection")
		}
	})
	t.Run("invalid local codes", func(t *testing.T) {
		c := newConn(newHandler(), Options{})
		for _, code := range []StatusCode{999, 1004, 1005, 1006, 1015, 2000, 5000} {
			if err := c.Close(code, ""); err == nil {
				t.Errorf("Close(%d) accepted", code)
			}
		}
		if err := c.Close(1000, string(make([]byte, 124))); err == nil {
			t.Error("a 124-byte reason was accepted")
		}
	})
}

// TestKeepaliveAndIdle runs the connection's timers on synctest's clock:
// the assertions are about the timers' logic, never about how fast a
// loaded machine runs them.
func TestKeepaliveAndIdle(t *testing.T) {
	pings := func(t *testing.T, tr *nbRecorder) int {
		n := 0
		for _, f := range tr.frames(t) {
			if f.Op == ws.OpPing {
				n++
			}
		}
		return n
	}
	t.Run("pings while idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newConn(newHandler(), Options{KeepaliveInterval: 20 * time.Millisecond, IdleTimeout: time.Hour})
			tr := &nbRecorder{}
			c.start(tr)
			defer c.stop(nil)
			time.Sleep(19 * time.Millisecond)
			synctest.Wait()
			if n := pings(t, tr); n != 0 {
				t.Fatalf("%d pings before the interval", n)
			}
			time.Sleep(141 * time.Millisecond)
			synctest.Wait()
			// A ping once the connection has been quiet for the interval,
			// then one per interval: the tick runs every quarter interval.
			if n := pings(t, tr); n < 6 || n > 8 {
				t.Fatalf("%d pings in 160ms at a 20ms interval", n)
			}
		})
	})
	t.Run("idle timeout closes with 1001", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newConn(newHandler(), Options{IdleTimeout: 40 * time.Millisecond})
			tr := &nbRecorder{}
			c.start(tr)
			defer c.stop(nil)
			time.Sleep(39 * time.Millisecond)
			synctest.Wait()
			if c.Closing() {
				t.Fatal("closed before the idle timeout")
			}
			// The tick runs every quarter of the timeout, so the close
			// comes at most a quarter late.
			time.Sleep(11 * time.Millisecond)
			synctest.Wait()
			fs := tr.frames(t)
			if len(fs) != 1 || fs[0].Op != ws.OpClose || fs[0].Code() != 1001 {
				t.Fatalf("frames %v", fs)
			}
		})
	})
	t.Run("traffic keeps it open", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newConn(newHandler(), Options{IdleTimeout: 60 * time.Millisecond})
			tr := &nbRecorder{}
			c.start(tr)
			defer c.stop(nil)
			for range 10 {
				time.Sleep(20 * time.Millisecond)
				c.feed(ws.Pong(nil))
			}
			synctest.Wait()
			if c.Closing() {
				t.Fatal("closed although the peer kept sending")
			}
		})
	})
}

func TestPongHandler(t *testing.T) {
	h := newHandler()
	c := newConn(h, Options{})
	c.start(&nbRecorder{})
	c.feed(ws.Pong([]byte("beat")))
	if len(h.pongs) != 1 || h.pongs[0] != "beat" {
		t.Fatalf("pongs %q", h.pongs)
	}
}

func TestPreparedMessage(t *testing.T) {
	pm := NewPreparedMessage(TextMessage, []byte("to all"))
	var trs []*nbRecorder
	for i := range 5 {
		tr := &nbRecorder{recorder: recorder{limit: 3 * (i % 2)}}
		c := newConn(newHandler(), Options{})
		c.start(tr)
		if err := c.SendPrepared(pm); err != nil {
			t.Fatal(err)
		}
		c.waitFlushed(time.Second)
		trs = append(trs, tr)
	}
	pm.Release()
	for _, tr := range trs {
		if fs := tr.frames(t); len(fs) != 1 || string(fs[0].Payload) != "to all" {
			t.Fatalf("frames %v", fs)
		}
	}
}

// wakeRecorder is a Waker transport that counts wake-ups.
type wakeRecorder struct {
	recorder
	wakes atomic.Int32
}

func (w *wakeRecorder) Wake() { w.wakes.Add(1) }

// TestWakerContract: a send from outside Feed wakes the owner; a send made
// while the owner is inside Feed (an echo from OnMessage) does not, and
// the owner's Flush after Feed writes it; nothing is written by a sending
// goroutine.
func TestWakerContract(t *testing.T) {
	h := newHandler()
	h.onMsg = func(c *Conn, typ MessageType, p []byte) { c.Send(typ, p) }
	c := newConn(h, Options{})
	w := &wakeRecorder{}
	c.start(w)

	if err := c.feed(ws.Text("echo me")); err != nil {
		t.Fatal(err)
	}
	if n := w.wakes.Load(); n != 0 {
		t.Fatalf("%d wake-ups for a send inside Feed", n)
	}
	if got := w.frames(t); len(got) != 0 {
		t.Fatalf("written before Flush: %v", got)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if got := w.frames(t); len(got) != 1 || string(got[0].Payload) != "echo me" {
		t.Fatalf("after Flush: %v", got)
	}

	done := make(chan error)
	go func() { done <- c.Send(TextMessage, []byte("from elsewhere")) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := w.wakes.Load(); n != 1 {
		t.Fatalf("%d wake-ups for a send from another goroutine, want 1", n)
	}
	if got := w.frames(t); len(got) != 1 {
		t.Fatalf("a sending goroutine wrote: %v", got)
	}
	c.flush()
	if got := w.frames(t); len(got) != 2 || string(got[1].Payload) != "from elsewhere" {
		t.Fatalf("after the owner's Flush: %v", got)
	}
}

// TestAbortAfterWriterDrained: a writer goroutine that has drained the
// queue and an abort that comes later (the close timer firing, in the
// daemon) must not race; under -race this failed when the writer read
// the aborted flag outside the lock.
func TestAbortAfterWriterDrained(t *testing.T) {
	for range 20 {
		c := newConn(newHandler(), Options{})
		tr := &nbRecorder{recorder: recorder{limit: 3}} // partial inline writes: a writer goroutine finishes
		c.start(tr)
		c.SendText("a message longer than three bytes")
		if !c.waitFlushed(5 * time.Second) {
			t.Fatal("queue did not drain")
		}
		c.Abort()
		if !tr.isClosed() {
			t.Fatal("abort did not close the transport")
		}
	}
}

// stallingRecorder takes every byte of a blocking write, as a socket whose
// peer reads as fast as it can, and then stalls once the first after bytes
// are in: the writer goroutine, descheduled on a busy machine, has not yet
// come back from its write although the peer has read everything.
type stallingRecorder struct {
	nbRecorder
	after   int
	once    sync.Once
	stalled chan struct{}
	resume  chan struct{}
}

func (r *stallingRecorder) WriteBuffers(bufs [][]byte) error {
	err := r.nbRecorder.WriteBuffers(bufs)
	r.mu.Lock()
	n := r.buf.Len()
	r.mu.Unlock()
	if n >= r.after {
		r.once.Do(func() { close(r.stalled) })
		<-r.resume
	}
	return err
}

// TestQueueCountsUnwrittenBytes: the queue counts what is not yet written,
// and nothing else. A 16 MiB message, far over MaxQueue, goes into an empty
// queue; the peer reads all of it; a small message sent before the writer
// has returned from its last write must be accepted under either policy.
// Counting the large message until its whole write returned closed such a
// peer with 1008 "slow consumer" (or dropped the message).
func TestQueueCountsUnwrittenBytes(t *testing.T) {
	for _, policy := range []SlowConsumerPolicy{SlowConsumerClose, SlowConsumerDrop} {
		t.Run(policy.String(), func(t *testing.T) {
			const big = 16 << 20
			tr := &stallingRecorder{after: frameSize(big), stalled: make(chan struct{}), resume: make(chan struct{})}
			tr.limit = 64 << 10 // what the socket takes without blocking
			c := newConn(newHandler(), Options{MaxQueue: 1 << 20, SlowConsumer: policy})
			c.start(tr)
			if err := c.Send(BinaryMessage, make([]byte, big)); err != nil {
				t.Fatal(err)
			}
			<-tr.stalled
			if err := c.SendText("next"); err != nil {
				t.Fatalf("a small send after the peer read everything: %v", err)
			}
			c.mu.Lock()
			queued := c.qBytes
			c.mu.Unlock()
			if queued > writeChunk+frameSize(4) {
				t.Errorf("queue counts %d bytes with at most one write of %d in flight", queued, writeChunk)
			}
			close(tr.resume)
			if !c.waitFlushed(5*time.Second) || c.Closing() {
				t.Fatalf("flushed/closing: %v", c.Closing())
			}
			fs := tr.frames(t)
			if len(fs) != 2 || len(fs[0].Payload) != big || string(fs[1].Payload) != "next" {
				t.Fatalf("%d frames", len(fs))
			}
			if c.qBytes != 0 {
				t.Fatalf("queue counts %d bytes after the flush", c.qBytes)
			}
		})
	}
}

// TestBudgetAccounting: a connection counts in its budget the part of a
// message still arriving and the frames queued for its peer, and nothing
// once they are delivered, written or dropped; passing the limit
// signals Over; Shed drops the queue, sends the close frame and cuts the
// connection, which frees the rest.
func TestBudgetAccounting(t *testing.T) {
	b := NewBudget(100 << 10)
	h := newHandler()
	tr := &nbRecorder{recorder: recorder{block: make(chan struct{}), in: make(chan []byte, 16)}}
	c := newConn(h, Options{Budget: b, MaxQueue: 1 << 20, CloseTimeout: time.Minute})
	go c.Serve(tr)
	// 60 KiB of a text message, not finished: its 64 KiB buffer counts.
	tr.in <- ws.Frame{Op: ws.OpText, Masked: true, Payload: make([]byte, 60<<10)}.Bytes()
	if !waitUntil(func() bool { return c.Held() == 64<<10 }) {
		t.Fatalf("held %d after 60 KiB of a message", c.Held())
	}
	select {
	case <-b.Over():
		t.Fatal("over the budget at 64 KiB of 100")
	default:
	}
	// 40 KiB queued for a peer that reads nothing: over.
	if err := c.Send(BinaryMessage, make([]byte, 40<<10)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Over():
	case <-time.After(5 * time.Second):
		t.Fatalf("no Over at %d of %d", b.Used(), b.Limit())
	}
	if b.Used() != c.Held() {
		t.Fatalf("budget %d, connection %d", b.Used(), c.Held())
	}
	c.Shed(CauseApplication, StatusTryAgainLater, "shed")
	// The peer reads nothing, so the close cannot complete: the shed cuts
	// the connection after its grace, and the reading ends.
	if !waitUntil(tr.isClosed) {
		t.Fatal("the shed connection was not cut")
	}
	close(tr.in)
	h.waitClosed(t, 10*time.Second)
	if c.Held() != 0 || b.Used() != 0 {
		t.Fatalf("after the shed: connection holds %d, budget %d", c.Held(), b.Used())
	}
}

func waitUntil(cond func() bool) bool {
	for range 500 {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
