//go:build linux

package netconn

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	ws "github.com/wsgate/wsgate/websocket"
)

// TestLockstepNeverWaitsForAnEdge: after a read shorter than its buffer
// the reader waits for the poller instead of reading again (readFD). A
// client that answers each echo at once sends its next message while the
// server is still inside the handler that wrote the echo; if the
// readiness that message leaves were lost, the server would wait until
// the park deadline (never, here: parking is off) and the client's read
// would time out. Sizes vary around the header lengths and the read
// buffer, so that reads come short, whole and split.
func TestLockstepNeverWaitsForAnEdge(t *testing.T) { forBoth(t, testLockstep) }

func testLockstep(t *testing.T, m mode) {
	closed := make(chan ws.CloseStatus, 1)
	url, dialer, _ := serveHandler(t, m, 0, ws.Options{}, 0, echoHandler{closed})
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sizes := []int{1, 16, 125, 126, 1000, 65535, 65536, readSize - 14, readSize + 1}
	for i := range 1000 {
		p := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
		if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("echo %d (%d bytes): %v (a readiness lost while the handler ran)", i, len(p), err)
		}
	}
}

// abortOnMessage aborts a connection from inside a handler, which runs
// inside the socket's read: Close must not wait for that read to end.
type abortOnMessage struct {
	target func(self *ws.Conn) *ws.Conn // whom to abort
	closed chan ws.CloseStatus
}

func (h abortOnMessage) OnMessage(c *ws.Conn, _ ws.MessageType, _ []byte) { h.target(c).Abort() }
func (h abortOnMessage) OnClose(_ *ws.Conn, s ws.CloseStatus)             { h.closed <- s }

// TestHandlerAbortsItsOwnConnection: a handler that aborts the connection
// it is handling (a slow consumer's policy, a write that failed, an
// application's Abort) ends it, the peer sees it closed, and OnClose runs.
func TestHandlerAbortsItsOwnConnection(t *testing.T) { forBoth(t, testAbortOwn) }

func testAbortOwn(t *testing.T, m mode) {
	closed := make(chan ws.CloseStatus, 1)
	url, dialer, _ := serveHandler(t, m, time.Minute, ws.Options{}, 0,
		abortOnMessage{target: func(self *ws.Conn) *ws.Conn { return self }, closed: closed})
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte("abort me")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
		t.Fatalf("the client's read after its connection was aborted: %v, want the connection closed", err)
	}
	select {
	case s := <-closed:
		if s.Code != ws.StatusAbnormalClosure {
			t.Errorf("OnClose with %d, want 1006", s.Code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnClose never ran: the abort waited for the read it was called from")
	}
}

// TestHandlersAbortEachOther: two connections whose handlers each abort
// the other, at the same moment, both inside their own socket's read (a
// proxied pair whose sides both fail). Neither Close may wait for the
// other's read, or both would wait forever.
func TestHandlersAbortEachOther(t *testing.T) { forBoth(t, testAbortEachOther) }

func testAbortEachOther(t *testing.T, m mode) {
	for round := range 20 {
		var mu sync.Mutex
		var served []*ws.Conn
		closed := make(chan ws.CloseStatus, 2)
		started, ready := make(chan struct{}, 2), make(chan struct{})
		other := func(self *ws.Conn) *ws.Conn {
			started <- struct{}{}
			<-ready
			mu.Lock()
			defer mu.Unlock()
			if served[0] == self {
				return served[1]
			}
			return served[0]
		}
		url, dialer, conns := serveHandler(t, m, time.Minute, ws.Options{}, 0, abortOnMessage{target: other, closed: closed})
		var clients []*websocket.Conn
		for range 2 {
			c, _, err := dialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			clients = append(clients, c)
			d := <-conns
			mu.Lock()
			served = append(served, d.ws)
			mu.Unlock()
		}
		// Both handlers start (each inside its own socket's read), then
		// both abort the other at once.
		for _, c := range clients {
			if err := c.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: a handler never started", round)
			}
		}
		close(ready)
		for i := range 2 {
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: %d of 2 connections ended: each abort waited for the other's read", round, i)
			}
		}
		for i, c := range clients {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
				t.Fatalf("round %d: client %d read %v, want its connection closed", round, i, err)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
