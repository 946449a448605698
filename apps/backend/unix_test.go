package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
	"github.com/wsgate/wsgate/testkit/wstest"
)

type handler struct {
	open    func(*producer.Client, *producer.Accept) error
	message func(*producer.Client, producer.MessageType, []byte)
	closed  func(*producer.Client, uint16, string)
}

func (h *handler) OnOpen(c *producer.Client, a *producer.Accept) error {
	if h.open != nil {
		return h.open(c, a)
	}
	return nil
}

func (h *handler) OnMessage(c *producer.Client, t producer.MessageType, d []byte) {
	if h.message != nil {
		h.message(c, t, d)
	}
}

func (h *handler) OnClose(c *producer.Client, code uint16, reason string) {
	if h.closed != nil {
		h.closed(c, code, reason)
	}
}

func serveProducer(t *testing.T, h producer.Handler) string {
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &producer.Server{Handler: h}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return sock
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("%v %v", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSlowProducer: a producer that stops reading does not grow the
// gateway's memory; the client is slowed down instead, and nothing is lost
// once the producer catches up.
func TestSlowProducer(t *testing.T) {
	release := make(chan struct{})
	var got atomic.Int64
	sock := serveProducer(t, &handler{message: func(c *producer.Client, _ producer.MessageType, d []byte) {
		<-release // stuck until released: the SDK stops reading
		got.Add(int64(len(d)))
	}})
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /slow, backend: {socket: %s, queue: 256KiB}}\n", sock))
	c := dial(t, gw.URL("/slow"))
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const total = 64 << 20
	msg := bytes.Repeat([]byte("x"), 16<<10)
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sent.Load() < total {
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				return
			}
			sent.Add(int64(len(msg)))
		}
	}()
	// Until the client is held back: what it could send has stopped
	// growing (two looks 200 ms apart see the same count).
	last := int64(-1)
	testserver.WaitFor(time.Minute, func() bool {
		time.Sleep(200 * time.Millisecond) // between looks
		n := sent.Load()
		stalled := n == last
		last = n
		return stalled || n >= total
	})
	runtime.GC()
	runtime.ReadMemStats(&during)
	if s := sent.Load(); s >= total {
		t.Fatalf("all %d bytes were accepted from the client while the producer read nothing", s)
	}
	grew := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("client got %d KiB out while the producer was stuck; heap in use grew %d KiB", sent.Load()>>10, grew>>10)
	if grew > 16<<20 {
		t.Fatalf("heap grew %d bytes behind a stuck producer", grew)
	}
	close(release)
	<-done
	if !testserver.WaitFor(20*time.Second, func() bool { return got.Load() == total }) {
		t.Fatalf("producer got %d of %d bytes", got.Load(), total)
	}
}

// TestSlowClient: a client that reads nothing does not hold up the
// producer's other clients; its own policy closes it.
func TestSlowClient(t *testing.T) {
	var flooded atomic.Int64
	sock := serveProducer(t, &handler{message: func(c *producer.Client, typ producer.MessageType, d []byte) {
		if string(d) == "flood" {
			p := make([]byte, 64<<10)
			for range 2000 {
				if c.Send(producer.Binary, p) != nil {
					return
				}
				flooded.Add(1)
			}
			return
		}
		c.Send(typ, d)
	}})
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /p, max_queue: 1MiB, backend: {socket: %s, connections: 1}}\n", sock))
	slow := dial(t, gw.URL("/p"))
	fast := dial(t, gw.URL("/p"))
	slow.WriteMessage(websocket.TextMessage, []byte("flood"))
	// The flood is under way: more than the slow client's queue (1 MiB,
	// 16 messages) has gone out on the link.
	if !testserver.WaitFor(time.Minute, func() bool { return flooded.Load() > 32 }) {
		t.Fatal("the producer's flood did not start")
	}
	// Were the link held up by the slow client, these would wait for ever
	// (the read deadline); no bound tighter than that, which a loaded
	// machine could break.
	for i := range 20 {
		fast.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("ping ", i)))
		fast.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, p, err := fast.ReadMessage()
		if err != nil || string(p) != fmt.Sprint("ping ", i) {
			t.Fatalf("fast client: %q %v", p, err)
		}
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := slow.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != 1008 {
				t.Fatalf("slow client closed with %d", ce.Code)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenTimeout(t *testing.T) {
	closed := make(chan uint64, 1)
	sock := serveProducer(t, &handler{
		open:   func(*producer.Client, *producer.Accept) error { time.Sleep(600 * time.Millisecond); return nil },
		closed: func(c *producer.Client, code uint16, _ string) { closed <- c.ID },
	})
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /p, backend: {socket: %s, open_timeout: 200ms}}\n", sock))
	// Without the timeout the producer's ACCEPT, 600ms later, would make
	// this a 101.
	if got := wstest.Status(gw.URL("/p")); got != 504 {
		t.Fatalf("status %d, want 504", got)
	}
	// The late ACCEPT is answered with CLOSED, so the producer forgets the
	// client.
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("the producer never learned the client was gone")
	}
}

func TestProducerAbsent(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nobody.sock")
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /mux, backend: {socket: %[1]s, open_timeout: 300ms}}
  - {path: /pc, backend: {socket: %[1]s, mode: per-client}}
  - {path: /raw, backend: {socket: %[1]s, protocol: raw}}
  - {path: /tcp, backend: {address: "127.0.0.1:1"}}
  - {path: /fine, app: echo}
`, missing))
	for _, p := range []string{"/mux", "/pc", "/raw", "/tcp"} {
		if got := wstest.Status(gw.URL(p)); got != 503 {
			t.Errorf("%s: %d, want 503", p, got)
		}
	}
	if got := wstest.Status(gw.URL("/fine")); got != 101 {
		t.Errorf("other route: %d", got)
	}
}

// TestVersionMismatch: a producer answering HELLO with another version is
// dropped, and clients get 503.
func TestVersionMismatch(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "v2.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := wire.NewReader(c, 4096, 1<<20)
				if _, err := r.Next(); err != nil {
					return
				}
				c.Write(wire.AppendHelloReply(nil, 2))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /pc, backend: {socket: %s, mode: per-client}}\n", sock))
	if got := wstest.Status(gw.URL("/pc")); got != 503 {
		t.Fatalf("status %d", got)
	}
	if !strings.Contains(gw.Logs.String(), "does not speak protocol version 1") {
		t.Fatal("mismatch not logged")
	}
}

// rawServer is a seed-style program: it answers every connection with
// what script does.
func rawServer(t *testing.T, script func(net.Conn)) string {
	sock := filepath.Join(t.TempDir(), "raw.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); script(c) }()
		}
	}()
	return sock
}

func TestRawMode(t *testing.T) {
	echo := rawServer(t, func(c net.Conn) { io.Copy(c, c) })
	lines := rawServer(t, func(c net.Conn) {
		c.Write([]byte("one\ntwo\nthr"))
		time.Sleep(50 * time.Millisecond)
		c.Write([]byte("ee\nfour"))
	})
	nuls := rawServer(t, func(c net.Conn) { c.Write([]byte("a\x00b\x00")); io.Copy(io.Discard, c) })
	badText := rawServer(t, func(c net.Conn) { c.Write([]byte{0xff, 0xfe}); io.Copy(io.Discard, c) })
	var sawEOF sync.WaitGroup
	sawEOF.Add(1)
	eof := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c); sawEOF.Done() })
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, backend: {socket: %s, protocol: raw, message_type: binary}}
  - {path: /lines, backend: {socket: %s, protocol: raw, delimiter: newline}}
  - {path: /nuls, backend: {socket: %s, protocol: raw, delimiter: nul}}
  - {path: /bad, backend: {socket: %s, protocol: raw}}
  - {path: /eof, backend: {socket: %s, protocol: raw}}
`, echo, lines, nuls, badText, eof))
	read := func(c *websocket.Conn) (int, string, error) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, p, err := c.ReadMessage()
		return typ, string(p), err
	}
	c := dial(t, gw.URL("/echo"))
	c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2})
	if typ, p, err := read(c); err != nil || typ != websocket.BinaryMessage || p != "\x00\x01\x02" {
		t.Fatalf("raw echo: %d %q %v", typ, p, err)
	}
	l := dial(t, gw.URL("/lines"))
	for _, want := range []string{"one", "two", "three", "four"} {
		if typ, p, err := read(l); err != nil || typ != websocket.TextMessage || p != want {
			t.Fatalf("line %q: %d %q %v", want, typ, p, err)
		}
	}
	if _, _, err := read(l); !websocket.IsCloseError(err, 1000) {
		t.Fatalf("after the program closed: %v", err)
	}
	n := dial(t, gw.URL("/nuls"))
	for _, want := range []string{"a", "b"} {
		if _, p, err := read(n); err != nil || p != want {
			t.Fatalf("nul record %q: %q %v", want, p, err)
		}
	}
	b := dial(t, gw.URL("/bad"))
	if _, _, err := read(b); !websocket.IsCloseError(err, 1011) {
		t.Fatalf("invalid UTF-8 on a text route: %v", err)
	}
	e := dial(t, gw.URL("/eof"))
	e.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	e.Close()
	waited := make(chan struct{})
	go func() { sawEOF.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("the program did not see EOF when the client left")
	}
}

// TestJoinBeforeAccept: a producer that joins a client to a room while
// deciding to accept it (JOIN before ACCEPT, as the SDK's OnOpen does)
// gets it in the room; one it refuses afterwards is in no room. COUNT
// answers with the room's size.
func TestJoinBeforeAccept(t *testing.T) {
	counts := make(chan string, 1)
	sock := serveProducer(t, &handler{
		open: func(c *producer.Client, _ *producer.Accept) error {
			c.Join("lobby")
			if c.Query == "refuse" {
				return producer.Refuse(403, "no")
			}
			return nil
		},
		message: func(c *producer.Client, typ producer.MessageType, data []byte) {
			if string(data) == "count" {
				go func() {
					n, nodes, err := c.Count(context.Background(), "lobby")
					counts <- fmt.Sprintf("%d %d %v", n, nodes, err)
				}()
				return
			}
			c.SendRoom("lobby", typ, data, false)
		},
	})
	s := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /p, backend: {socket: %s}}\n", sock))
	a, b := dial(t, s.URL("/p")), dial(t, s.URL("/p"))
	if _, resp, err := websocket.DefaultDialer.Dial(s.URL("/p?refuse"), nil); err == nil || resp.StatusCode != 403 {
		t.Fatalf("refused client: %v %v", resp, err)
	}
	a.WriteMessage(websocket.TextMessage, []byte("hi"))
	for _, c := range []*websocket.Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hi" {
			t.Fatalf("room message: %q %v", p, err)
		}
	}
	a.WriteMessage(websocket.TextMessage, []byte("count"))
	select {
	case got := <-counts:
		if got != "2 1 <nil>" {
			t.Fatalf("COUNT: %s, want 2 clients on 1 node", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to COUNT")
	}
}
