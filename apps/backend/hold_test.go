package backend_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/backend/wire"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

type echoHandler struct{}

func (echoHandler) OnOpen(*producer.Client, *producer.Accept) error { return nil }
func (echoHandler) OnMessage(c *producer.Client, t producer.MessageType, d []byte) {
	c.Send(t, d)
}
func (echoHandler) OnClose(*producer.Client, uint16, string) {}

// BenchmarkHoldResume1000 measures a resumption: 1,000 clients of a mux
// route with hold, each with a 16-byte message waiting, their producer
// stopped (b.N times) and started again. ns/op is the time from the
// producer listening again to every waiting message echoed;
// µs-to-link, of the first round, the part spent before the pool's next
// connection attempt reached it. (BenchmarkHeldClientCost measures the
// memory.)
//
//	go test ./apps/backend -run '^$' -bench HoldResume -benchtime 5x
func BenchmarkHoldResume1000(b *testing.B) {
	const n = 1000
	sock := filepath.Join(b.TempDir(), "p")
	srv := serve(b, sock)
	gw := testserver.Start(b, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 100000, handshake_rate_per_ip: 0}
log: {access: false}
routes:
  - {path: /r, backend: {socket: %s, hold: 5m}}
`, sock))
	cs := make([]*websocket.Conn, n)
	for i := range cs {
		cs[i], _ = testserver.Dial(b, gw.URL("/r"), nil)
	}
	links := func() gateway.LinkStats { return gw.Link("/r") }
	msg := []byte("0123456789abcdef")
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		srv.Shutdown(context.Background())
		if !testserver.WaitFor(30*time.Second, func() bool { return links().Held == n }) {
			b.Fatalf("held: %+v", links())
		}
		for _, c := range cs {
			c.WriteMessage(websocket.TextMessage, msg)
		}
		if !testserver.WaitFor(30*time.Second, func() bool { return links().HeldBytes > 0 }) {
			b.Fatal("nothing queued")
		}
		time.Sleep(100 * time.Millisecond)
		b.StartTimer()
		start := time.Now()
		srv = serve(b, sock)
		if i == 0 {
			testserver.WaitFor(30*time.Second, func() bool { return links().Up > 0 })
			b.ReportMetric(float64(time.Since(start).Microseconds()), "µs-to-link")
		}
		for _, c := range cs {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, p, err := c.ReadMessage(); err != nil || string(p) != string(msg) {
				b.Fatalf("after resuming: %q %v", p, err)
			}
		}
	}
	b.StopTimer()
	srv.Shutdown(context.Background())
}

// TestHeldQueueBound: what held clients send is bounded by the route's
// queue; past it the slow-consumer policy applies and every loss shows:
// drop counts the message (the dropped-messages metric, the access log),
// close ends the client with 1008.
func TestHeldQueueBound(t *testing.T) {
	for _, policy := range []string{"drop", "close"} {
		t.Run(policy, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "p")
			srv := serve(t, sock)
			gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /r, slow_consumer: %s, backend: {socket: %s, hold: 1m, queue: 1KiB}}
`, policy, sock))
			c, _ := testserver.Dial(t, gw.URL("/r"), nil)
			c.WriteMessage(websocket.TextMessage, []byte("up"))
			testserver.Expect(t, c, websocket.TextMessage, "up")
			srv.Shutdown(context.Background())
			links := func() gateway.LinkStats { return gw.Link("/r") }
			if !testserver.WaitFor(10*time.Second, func() bool { return links().Held == 1 }) {
				t.Fatalf("not held: %+v", links())
			}
			msg := make([]byte, 300)
			for i := range 5 { // 5 × 314 bytes of frames: the fourth does not fit in 1 KiB
				msg[0] = byte('a' + i)
				c.WriteMessage(websocket.BinaryMessage, msg)
			}
			if policy == "close" {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 1008) {
					t.Fatalf("%v, want 1008", err)
				}
				return
			}
			if !testserver.WaitFor(10*time.Second, func() bool { return links().HeldDropped == 2 }) {
				t.Fatalf("dropped: %+v", links())
			}
			srv = serve(t, sock)
			for i := range 3 {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, p, err := c.ReadMessage()
				if err != nil || p[0] != byte('a'+i) {
					t.Fatalf("message %d: %v %q", i, err, p[:1])
				}
			}
			srv.Shutdown(context.Background())
			c.Close()
			var dropped uint64
			if !testserver.WaitFor(5*time.Second, func() bool {
				dropped = 0
				for _, r := range gw.Gateway().Snapshot() {
					dropped += r.Dropped
				}
				return dropped == 2
			}) {
				t.Fatalf("wsgate_dropped_messages_total counts %d, want 2", dropped)
			}
		})
	}
}

// serve runs an echo producer on sock.
func serve(t testing.TB, sock string) *producer.Server {
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &producer.Server{Handler: echoHandler{}}
	go srv.Serve(ln)
	return srv
}

// TestQueuedMessagesOutliveTheirLink: messages the gateway had queued for
// a producer connection, and not yet written, when that connection fails
// are not lost: they wait with their held clients, before what those
// clients send while held, and reach the producer once each client is
// resumed. Every message is read by the producer exactly once, in each
// client's order, on the old connection or the new one. (They used to be
// dropped with the connection's queue, uncounted.)
//
// The producer stops reading while eight clients send two 128 KiB
// messages each, so most wait in the gateway's queue; it then shuts its
// end for reading (later writes fail at once, as to a crashed producer),
// reads what its socket holds, and closes.
func TestQueuedMessagesOutliveTheirLink(t *testing.T) {
	const clients, size = 8, 128 << 10
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	links := make(chan *net.UnixConn, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			links <- nc.(*net.UnixConn)
		}
	}()
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /p, backend: {socket: %s, mode: mux, connections: 1, hold: 30s, open_timeout: 10s}}\n", sock))
	got := map[uint64][]byte{} // the letters of what the producer read, by client
	total := 0
	next := func(r *wire.Reader) (wire.Frame, error) {
		f, err := r.Next()
		if err == nil && f.Type == wire.TypeMessage {
			got[f.Conn] = append(got[f.Conn], f.Payload[0])
			total++
		}
		return f, err
	}
	expect := func(nc net.Conn, r *wire.Reader, typ wire.Type) wire.Frame {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		f, err := next(r)
		if err != nil || f.Type != typ {
			t.Fatalf("read %v %v, want %v", f.Type, err, typ)
		}
		return f
	}

	// The first connection: every client accepted, then nothing read.
	nc1 := <-links
	r1 := wire.NewReader(nc1, 64<<10, 64<<20)
	expect(nc1, r1, wire.TypeHello)
	nc1.Write(wire.AppendHelloReply(nil, wire.Version))
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		done := make(chan struct{})
		go func() { conns[i] = dial(t, gw.URL("/p")); close(done) }()
		f := expect(nc1, r1, wire.TypeOpen)
		nc1.Write(wire.AppendAccept(nil, f.Conn, "", nil))
		<-done
	}
	msg := make([]byte, size)
	for _, letter := range []byte("AB") {
		msg[0] = letter
		for _, c := range conns {
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Most of the 16 wait in the gateway's queue, behind a full socket.
	if !testserver.WaitFor(20*time.Second, func() bool { return gw.Link("/p").QueueBytes >= 10*size }) {
		t.Fatalf("the gateway queued %d bytes, want 10 messages' worth", gw.Link("/p").QueueBytes)
	}
	nc1.CloseRead()
	nc1.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, err := next(r1); err != nil {
			break // a frame cut short, or the end
		}
	}
	nc1.Close()
	fromFirst := total

	// Held, each client sends one more; then the producer is back.
	nc2 := <-links
	if !testserver.WaitFor(20*time.Second, func() bool { return gw.Link("/p").Held == clients }) {
		t.Fatalf("held: %+v", gw.Link("/p"))
	}
	for _, c := range conns {
		if err := c.WriteMessage(websocket.TextMessage, []byte("C")); err != nil {
			t.Fatal(err)
		}
	}
	r2 := wire.NewReader(nc2, 64<<10, 64<<20)
	expect(nc2, r2, wire.TypeHello)
	nc2.Write(wire.AppendHelloReply(nil, wire.Version))
	for total < 3*clients {
		nc2.SetReadDeadline(time.Now().Add(20 * time.Second))
		f, err := next(r2)
		if err != nil {
			t.Fatalf("%v after %d of %d messages (%d on the first connection): %s", err, total, 3*clients, fromFirst, fmt.Sprint(got))
		}
		if f.Type == wire.TypeOpen && f.Resumed {
			nc2.Write(wire.AppendAccept(nil, f.Conn, "", nil))
		}
	}
	for id, letters := range got {
		if string(letters) != "ABC" {
			t.Errorf("client %d: the producer read %q, want \"ABC\"", id, letters)
		}
	}
	if len(got) != clients || t.Failed() {
		t.Fatalf("%d clients' messages; %d were read on the first connection", len(got), fromFirst)
	}
	if l := gw.Link("/p"); l.Resumed != clients || l.Held != 0 || l.HeldDropped != 0 {
		t.Fatalf("counters: %+v", l)
	}
	t.Logf("%d messages read on the first connection, %d on the second", fromFirst, total-fromFirst)
}
