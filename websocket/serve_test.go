package websocket

import (
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestServeLifecycle drives Serve, the lifecycle every front door uses,
// through each way a connection ends, and checks each step: what was
// written, whether the transport lingered and was closed, and the status
// OnClose got (once).
func TestServeLifecycle(t *testing.T) {
	cases := []struct {
		name      string
		in        [][]byte // chunks ReadTo delivers; then io.EOF
		panicOn   string   // a message that makes OnMessage panic
		wantClose uint16   // the code of the close frame written, 0: none
		linger    bool
		status    StatusCode
		remote    bool
	}{
		{name: "peer closes", in: [][]byte{ws.Text("hi"), ws.Close(1000, "bye")},
			wantClose: 1000, status: 1000, remote: true},
		{name: "stream ends", in: [][]byte{ws.Text("hi")}, status: StatusAbnormalClosure, remote: true},
		{name: "protocol error lingers", in: [][]byte{ws.Text("hi"), {0x83, 0x80, 0, 0, 0, 0}},
			wantClose: 1002, linger: true, status: StatusProtocolError},
		{name: "invalid UTF-8 lingers", in: [][]byte{ws.Text("\xff")},
			wantClose: 1007, linger: true, status: StatusInvalidPayload},
		{name: "handler panic gives 1011", in: [][]byte{ws.Text("boom"), ws.Text("after")}, panicOn: "boom",
			wantClose: 1011, linger: true, status: StatusInternalError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler()
			var closes atomic.Int32
			h.onMsg = func(c *Conn, typ MessageType, p []byte) {
				if string(p) == tc.panicOn {
					panic("handler bug")
				}
			}
			c := newConn(closeCounter{h, &closes}, Options{CloseTimeout: 50 * time.Millisecond})
			c.SendText("queued before the 101")
			tr := &recorder{in: make(chan []byte, len(tc.in))}
			for _, p := range tc.in {
				tr.in <- append([]byte(nil), p...)
			}
			close(tr.in)
			c.Serve(tr)

			if got := closes.Load(); got != 1 {
				t.Fatalf("OnClose ran %d times", got)
			}
			s := *h.status
			if s.Code != tc.status || s.Remote != tc.remote {
				t.Fatalf("status %+v, want %v remote=%v", s, tc.status, tc.remote)
			}
			if !tr.isClosed() {
				t.Fatal("transport not closed")
			}
			if (tr.lingered != 0) != tc.linger {
				t.Fatalf("lingered %v, want %v", tr.lingered, tc.linger)
			}
			frames := tr.frames(t)
			if len(frames) == 0 || string(frames[0].Payload) != "queued before the 101" {
				t.Fatalf("what was sent before Serve did not come first: %v", frames)
			}
			var closeCode uint16
			for _, f := range frames {
				if f.Op == ws.OpClose && len(f.Payload) >= 2 {
					closeCode = uint16(f.Payload[0])<<8 | uint16(f.Payload[1])
				}
			}
			if closeCode != tc.wantClose {
				t.Fatalf("close frame code %d, want %d", closeCode, tc.wantClose)
			}
			if tc.panicOn != "" {
				for _, m := range h.messages() {
					if m.data == "after" {
						t.Fatal("a message after the panic was delivered")
					}
				}
			}
		})
	}
}

type closeCounter struct {
	*handler
	n *atomic.Int32
}

func (cc closeCounter) OnClose(c *Conn, s CloseStatus) {
	cc.n.Add(1)
	cc.handler.OnClose(c, s)
}

// TestServeSuspended: a transport that parks the connection makes Serve
// return with the connection open; a second Serve carries on where the
// first stopped and does not attach the transport again.
func TestServeSuspended(t *testing.T) {
	h := newHandler()
	c := newConn(h, Options{})
	tr := &recorder{in: make(chan []byte, 4)}
	tr.in <- ws.Text("one")
	tr.in <- nil // park
	c.Serve(tr)
	if tr.isClosed() || h.status != nil {
		t.Fatal("a suspended connection was ended")
	}
	if err := c.SendText("while parked"); err != nil {
		t.Fatalf("send while parked: %v", err)
	}
	tr.in <- ws.Text("two")
	tr.in <- ws.Close(1001, "")
	close(tr.in)
	c.Serve(tr)
	if got := h.messages(); len(got) != 2 || got[0].data != "one" || got[1].data != "two" {
		t.Fatalf("messages %v", got)
	}
	if s := h.waitClosed(t, time.Second); s.Code != 1001 || !s.Remote {
		t.Fatalf("status %+v", s)
	}
	frames := tr.frames(t)
	if len(frames) != 2 || string(frames[0].Payload) != "while parked" || frames[1].Op != ws.OpClose {
		t.Fatalf("frames %v", frames)
	}
}

// wakerTransport is an owner-thread transport, as mod_wsgate's worker is:
// WriteBuffers may only run inside ReadTo, on the goroutine running Serve.
type wakerTransport struct {
	recorder
	wakes   chan struct{}
	inRead  atomic.Bool
	outside atomic.Int32 // writes made outside ReadTo: must stay 0
}

func (w *wakerTransport) Wake() {
	select {
	case w.wakes <- struct{}{}:
	default:
	}
}

func (w *wakerTransport) WriteBuffers(bufs [][]byte) error {
	if !w.inRead.Load() {
		w.outside.Add(1)
	}
	return w.recorder.WriteBuffers(bufs)
}

// ReadTo plays the owner's loop: bytes from in are fed; a wake-up writes
// an empty slice, on which the engine writes what is queued.
func (w *wakerTransport) ReadTo(dst io.Writer) error {
	w.inRead.Store(true)
	defer w.inRead.Store(false)
	select {
	case p, ok := <-w.in:
		if !ok {
			return errEOFForTest
		}
		_, err := dst.Write(p)
		return err
	case <-w.wakes:
		_, err := dst.Write(nil)
		return err
	}
}

var errEOFForTest = errorString("test stream ended")

// TestServeWaker: with a Waker transport nothing is written from a
// sending goroutine. A send from elsewhere wakes the owner; an echo sent
// from OnMessage goes out before the Write that delivered the message
// returns, with no wake-up.
func TestServeWaker(t *testing.T) { synctest.Test(t, testServeWaker) }

func testServeWaker(t *testing.T) {
	h := newHandler()
	h.onMsg = func(c *Conn, typ MessageType, p []byte) { c.Send(typ, p) }
	c := newConn(h, Options{CloseTimeout: 50 * time.Millisecond})
	tr := &wakerTransport{recorder: recorder{in: make(chan []byte)}, wakes: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() { c.Serve(tr); close(done) }()

	tr.in <- ws.Text("echo me")
	// The send returns once the owner has taken the bytes, not once it
	// has fed them; wait until it is back in its select, so the echo is
	// written and any wake-up it caused would be seen.
	synctest.Wait()
	if len(tr.wakes) != 0 {
		t.Fatal("an echo from OnMessage woke the owner")
	}
	if err := c.SendText("from elsewhere"); err != nil {
		t.Fatal(err)
	}
	synctest.Wait() // the owner has woken and written it
	tr.in <- ws.Close(1000, "")
	close(tr.in)
	<-done
	frames := tr.frames(t)
	if len(frames) < 3 || string(frames[0].Payload) != "echo me" || string(frames[1].Payload) != "from elsewhere" || frames[2].Op != ws.OpClose {
		t.Fatalf("frames %v", frames)
	}
	if n := tr.outside.Load(); n != 0 {
		t.Fatalf("%d writes outside the owner's ReadTo", n)
	}
}
