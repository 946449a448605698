package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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
