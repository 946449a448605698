//go:build linux

package netconn

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/frontdoor/tlsrec"
	"github.com/wsgate/wsgate/testkit/testcert"
	"github.com/wsgate/wsgate/testkit/wstest"
	ws "github.com/wsgate/wsgate/websocket"
)

// echoHandler echoes and reports OnClose.
type echoHandler struct{ closed chan ws.CloseStatus }

func (echoHandler) OnMessage(c *ws.Conn, typ ws.MessageType, p []byte) { c.Send(typ, p) }
func (h echoHandler) OnClose(c *ws.Conn, s ws.CloseStatus)             { h.closed <- s }

// The ways a connection reaches this package: a plain socket, TLS whose
// record layer is taken over (tlsrec's listener, as the daemon's), and
// TLS that stays with crypto/tls (its own listener).
type mode string

const (
	plain     mode = "ws"
	taken     mode = "wss"
	cryptoTLS mode = "wss-crypto-tls"
)

// serveParking accepts WebSocket connections on a loopback listener, in
// mode m, and serves them through this package with a short park delay.
// Each served connection's transport is sent on conns; dialer reaches url.
func serveParking(t *testing.T, m mode, parkAfter time.Duration, opts ws.Options) (url string, dialer *websocket.Dialer, conns chan *conn, closed chan ws.CloseStatus) {
	return serveParkingSndbuf(t, m, parkAfter, opts, 0)
}

// serveParkingSndbuf is serveParking with the server's socket send buffer
// set to sndbuf (0: the system's), so that writes come up short.
func serveParkingSndbuf(t *testing.T, m mode, parkAfter time.Duration, opts ws.Options, sndbuf int) (url string, dialer *websocket.Dialer, conns chan *conn, closed chan ws.CloseStatus) {
	t.Helper()
	closed = make(chan ws.CloseStatus, 100)
	url, dialer, conns = serveHandler(t, m, parkAfter, opts, sndbuf, echoHandler{closed})
	return url, dialer, conns, closed
}

// serveHandler is serveParkingSndbuf with the handler h.
func serveHandler(t *testing.T, m mode, parkAfter time.Duration, opts ws.Options, sndbuf int, h ws.Handler) (url string, dialer *websocket.Dialer, conns chan *conn) {
	t.Helper()
	conns = make(chan *conn, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs, err := ws.CheckUpgrade(r)
		if err != nil {
			http.Error(w, "bad", err.(*ws.HandshakeError).Status)
			return
		}
		nc, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		hdr, _ := hs.Header(nil, "")
		nc.Write(hs.AppendResponse(nil, hdr))
		c := hs.NewConn(h, opts)
		tr := New(nc, c, nil)
		SetParkAfter(tr, parkAfter)
		if got := connOf(tr).sl != nil; got != (m == taken) {
			t.Errorf("record layer taken over: %v, in mode %s", got, m)
		}
		conns <- connOf(tr)
		c.Serve(tr)
	}))
	dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if sndbuf > 0 {
		srv.Listener = sndbufListener{srv.Listener, sndbuf}
	}
	switch m {
	case plain:
		srv.Start()
	case taken:
		scfg, ccfg := testcert.Config(t)
		srv.Listener = tlsrec.NewListener(srv.Listener, scfg)
		srv.Start()
		dialer.TLSClientConfig = ccfg
		t.Cleanup(srv.Close)
		return "wss" + strings.TrimPrefix(srv.URL, "http") + "/", dialer, conns
	case cryptoTLS:
		srv.StartTLS()
		dialer.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	}
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/", dialer, conns
}

type sndbufListener struct {
	net.Listener
	size int
}

func (l sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// parkingClient connects a client to a server from serveParking (20 ms
// park delay) and returns it with the server's side of it.
func parkingClient(t *testing.T, m mode) (*websocket.Conn, *conn) {
	t.Helper()
	url, dialer, conns, _ := serveParking(t, m, 20*time.Millisecond, ws.Options{})
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, <-conns
}

func connOf(tr ws.Transport) *conn {
	if f, ok := tr.(fdConn); ok {
		return f.conn
	}
	return tr.(*conn)
}

// forBoth runs f over every mode: all of them park.
func forBoth(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range []mode{plain, taken, cryptoTLS} {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}

func waitParked(t *testing.T, d *conn) {
	t.Helper()
	for i := 0; d.state.Load() != stateParked; i++ {
		if i > 1000 {
			t.Fatal("the connection never parked")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParkAndResume: a connection that goes quiet parks, and the next
// message wakes it and is answered; many times over, with messages of
// every size around the read buffer.
func TestParkAndResume(t *testing.T) { forBoth(t, testParkAndResume) }

func testParkAndResume(t *testing.T, m mode) {
	c, d := parkingClient(t, m)
	sizes := []int{1, 125, 126, 4096, readSize - 1, readSize + 1, 3 * readSize, 7}
	if m != plain {
		// Around a record, and records split over reads.
		sizes = append(sizes, tlsReadSize-1, tlsReadSize, tlsReadSize+1, 5*tlsReadSize+3, 2)
	}
	for i, n := range sizes {
		waitParked(t, d)
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("message %d (%d bytes) after parking: %v", i, n, err)
		}
	}
}

// TestParkedGoroutinesGone: parked connections hold no goroutine.
func TestParkedGoroutinesGone(t *testing.T) { forBoth(t, testParkedGoroutinesGone) }

func testParkedGoroutinesGone(t *testing.T, m mode) {
	url, dialer, conns, _ := serveParking(t, m, 20*time.Millisecond, ws.Options{})
	before := runtime.NumGoroutine()
	const n = 50
	var cs []*websocket.Conn
	for range n {
		c, _, err := dialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	for range n {
		waitParked(t, <-conns)
	}
	// gorilla's clients hold no goroutine either; the server's readers
	// are gone, and the poller is one goroutine for the process.
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("%d goroutines before %d parked connections, %d after", before, n, after)
	}
	for _, c := range cs {
		if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, got, err := c.ReadMessage(); err != nil || string(got) != "hi" {
			t.Fatalf("after waking: %q %v", got, err)
		}
	}
}

// TestCloseWhileParked: closing a parked connection from another
// goroutine (an idle timeout, shutdown, the application) still ends it
// properly: the handler hears OnClose and the peer gets the close frame.
func TestCloseWhileParked(t *testing.T) { forBoth(t, testCloseWhileParked) }

func testCloseWhileParked(t *testing.T, m mode) {
	for _, how := range []string{"close frame", "abort", "peer goes away"} {
		t.Run(how, func(t *testing.T) {
			url, dialer, conns, closed := serveParking(t, m, 20*time.Millisecond, ws.Options{CloseTimeout: time.Second})
			c, _, err := dialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			d := <-conns
			waitParked(t, d)
			switch how {
			case "close frame":
				// Sent from outside the reader; the client's answer wakes
				// the connection, which completes the handshake.
				d.ws.Close(ws.StatusGoingAway, "bye")
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _, err := c.ReadMessage()
				if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1001 {
					t.Fatalf("client read %v, want close 1001", err)
				}
			case "abort":
				d.ws.Abort()
			case "peer goes away":
				c.UnderlyingConn().Close()
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("OnClose never ran for a connection closed while parked")
			}
		})
	}
}

// TestParkingRace: messages arrive just as the connection parks, over
// and over; none may be lost or delivered twice.
func TestParkingRace(t *testing.T) { forBoth(t, testParkingRace) }

func testParkingRace(t *testing.T, m mode) {
	url, dialer, _, _ := serveParking(t, m, time.Millisecond, ws.Options{})
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sent atomic.Int64
	for i := range 300 {
		time.Sleep(time.Duration(i%4) * 500 * time.Microsecond)
		p := []byte{byte(i), byte(i >> 8)}
		if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
			t.Fatal(err)
		}
		sent.Add(1)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("message %d: %v %v", i, got, err)
		}
	}
}

// TestEpollEventData: a connection number above 32 bits survives the
// round trip through a real epoll instance, so events can never be
// confused once numbers pass 2^32.
func TestEpollEventData(t *testing.T) {
	if !canPark {
		t.Skip("no parking on this platform")
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	const id = 1<<40 | 0xdeadbeef
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setEventData(&ev, id)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fds[0], &ev); err != nil {
		t.Fatal(err)
	}
	unix.Write(fds[1], []byte{1})
	events := make([]unix.EpollEvent, 4)
	n, err := unix.EpollWait(ep, events, 1000)
	if err != nil || n != 1 {
		t.Fatalf("epoll_wait: %d %v", n, err)
	}
	if got := eventData(&events[0]); got != id {
		t.Fatalf("data %#x, want %#x", got, id)
	}
}

// TestFullSocket: with a small send buffer and a client that does not
// read, writes wait for the socket; when the client reads, every echo
// arrives whole and in order. (TestSealedShortWrites cuts records.)
func TestFullSocket(t *testing.T) { forBoth(t, testFullSocket) }

func testFullSocket(t *testing.T, m mode) {
	url, dialer, _, _ := serveParkingSndbuf(t, m, 20*time.Millisecond, ws.Options{MaxQueue: 64 << 20}, 4096)
	dialer.ReadBufferSize = 4096
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 60
	sizes := func(i int) int { return 1 + (i*7919)%40000 }
	for i := range n {
		if err := c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte{byte(i)}, sizes(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, sizes(i))) {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// TestParkMidMessage: a connection parks with half a header, half a
// payload, or half a fragmented message read; the parser's state is kept
// across the park (Conn.Quiet gives it back only between frames) and the
// message comes back whole.
func TestParkMidMessage(t *testing.T) { forBoth(t, testParkMidMessage) }

func testParkMidMessage(t *testing.T, m mode) {
	c, d := parkingClient(t, m)
	payload := bytes.Repeat([]byte("parked "), 300)
	whole := wstest.Binary(payload)
	first := wstest.Frame{Op: wstest.OpBinary, Masked: true, Payload: payload[:1000]}.Bytes()
	rest := wstest.Cont(true, payload[1000:])
	cases := [][][]byte{
		{whole[:3], whole[3:]},     // inside the header
		{whole[:9], whole[9:]},     // inside the masking key
		{whole[:500], whole[500:]}, // inside the payload
		{first, rest},              // between the frames of one message
		{first[:20], first[20:], rest[:5], rest[5:]},
	}
	for i, parts := range cases {
		for _, p := range parts {
			waitParked(t, d)
			if _, err := c.UnderlyingConn().Write(p); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("case %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// capturing is a client's socket whose writes can be held back: the TLS
// records the client seals while capture is set are kept in held instead
// of sent, for the test to send in parts.
type capturing struct {
	net.Conn
	capture atomic.Bool
	held    bytes.Buffer
}

func (c *capturing) Write(p []byte) (int, error) {
	if c.capture.Load() {
		return c.held.Write(p)
	}
	return c.Conn.Write(p)
}

// TestPartialRecordParked: a client that sends part of a TLS record and
// goes quiet leaves a taken-over connection parked holding the bytes it
// sent, not a buffer for the record; the rest of the record, later,
// completes it and the message is answered.
func TestPartialRecordParked(t *testing.T) {
	url, dialer, conns, _ := serveParking(t, taken, 200*time.Millisecond, ws.Options{})
	var cc *capturing
	dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		cc = &capturing{Conn: nc}
		return cc, err
	}
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := <-conns
	for _, have := range []int{3, 5, 6, 900} {
		msg := bytes.Repeat([]byte{'r'}, 10000)
		cc.capture.Store(true)
		c.WriteMessage(websocket.BinaryMessage, msg)
		cc.capture.Store(false)
		rec := append([]byte(nil), cc.held.Bytes()...)
		cc.held.Reset()
		waitParked(t, d)
		if _, err := cc.Conn.Write(rec[:have]); err != nil {
			t.Fatal(err)
		}
		// The bytes wake it (it runs), then it parks again, and only then
		// is its layer looked at: nothing else reads it while it is parked.
		for d.state.Load() == stateParked {
			time.Sleep(time.Millisecond)
		}
		waitParked(t, d)
		want := 0
		if have > 5 {
			want = have
		}
		if held := d.sl.rec.Held(); held != want || !d.sl.rec.Pending() {
			t.Fatalf("%d bytes of a %d-byte record parked: the layer holds %d bytes (pending %v)", have, len(rec), held, d.sl.rec.Pending())
		}
		cc.Conn.Write(rec[have:])
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("after %d bytes parked: %v", have, err)
		}
	}
}

// TestPongStaysParked: a parked plain connection that the server pings
// and whose client answers stays parked: the poller takes each pong
// without waking it (no goroutine, no stream), it counts as activity (the
// idle timeout does not close it), and a message afterwards is answered.
func TestPongStaysParked(t *testing.T) { pongStaysParked(t, plain, true) }

// TestPongStaysParkedTLS is TestPongStaysParked over TLS with the record
// layer taken over: the poller opens the record, finds a pong, and the
// connection stays parked.
func TestPongStaysParkedTLS(t *testing.T) { pongStaysParked(t, taken, false) }

// pongStaysParked runs the two: with watchState, the connection's state
// is also checked between pings (a wake would show as running).
func pongStaysParked(t *testing.T, m mode, watchState bool) {
	url, dialer, conns, closed := serveParking(t, m, 20*time.Millisecond, ws.Options{KeepaliveInterval: 100 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := <-conns
	var pings atomic.Int64
	c.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	got := make(chan []byte, 1)
	go func() {
		for {
			_, p, err := c.ReadMessage() // answers pings meanwhile
			if err != nil {
				return
			}
			got <- p
		}
	}()
	waitParked(t, d)
	before := ParkedPongs()
	// Five pings, over more than the idle timeout: the connection is
	// answered, kept, and never woken.
	for pings.Load() < 5 {
		select {
		case s := <-closed:
			t.Fatalf("closed while answering pings: %v", s)
		case <-time.After(10 * time.Millisecond):
		}
		if st := d.state.Load(); watchState && st != stateParked && pings.Load() > 0 {
			// A wake would show as running for parkAfter (20 ms) at least.
			t.Fatalf("woken by a pong (ping %d)", pings.Load())
		}
	}
	if n := ParkedPongs() - before; n < 4 {
		t.Errorf("%d pongs taken while parked, of %d pings", n, pings.Load())
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("after pongs")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != "after pongs" {
			t.Fatalf("echo %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no echo after the pongs")
	}
}
