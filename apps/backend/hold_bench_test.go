package backend_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/testserver"
	"github.com/wsgate/wsgate/sdk/producer"
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
	serve := func() *producer.Server {
		ln, err := producer.Listen(sock)
		if err != nil {
			b.Fatal(err)
		}
		srv := &producer.Server{Handler: echoHandler{}}
		go srv.Serve(ln)
		return srv
	}
	srv := serve()
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
	links := func() gateway.LinkStats {
		for _, l := range gw.Links() {
			if l.Route == "/r" {
				return l.LinkStats
			}
		}
		return gateway.LinkStats{}
	}
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
		srv = serve()
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
