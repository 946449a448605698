package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/wsgate/wsgate/apps"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/websocket"
)

// Test applications, registered once for every test in the package.
func init() {
	gateway.RegisterApp(gateway.AppInfo{Name: "test-control", Doc: "commands for tests", New: func() gateway.Handler { return &control{} }})
	gateway.RegisterApp(gateway.AppInfo{Name: "test-hello", Doc: "selects a subprotocol, sets a header, greets", New: func() gateway.Handler { return hello{} }})
}

// control obeys text commands, so tests can make the server do things:
//
//	close CODE REASON   start the closing handshake
//	panic               panic in OnMessage
//	flood N SIZE        send N binary messages of SIZE bytes at once
//	burst G N           send N messages from each of G goroutines
//	join ROOM / leave ROOM / say ROOM TEXT / all TEXT
//	ping TEXT           send a ping
//
// Anything else is echoed.
type control struct{ gateway.Base }

func (control) OnMessage(c *gateway.Conn, m gateway.Message) {
	f := strings.Fields(string(m.Data))
	if len(f) == 0 || m.Type != websocket.TextMessage {
		c.Send(m.Type, m.Data)
		return
	}
	arg := func(i int) int {
		var n int
		fmt.Sscan(f[i], &n)
		return n
	}
	switch f[0] {
	case "close":
		c.Close(websocket.StatusCode(arg(1)), strings.Join(f[2:], " "))
	case "panic":
		panic("test panic")
	case "flood":
		n, size := arg(1), arg(2)
		p := make([]byte, size)
		var dropped int
		for range n {
			if err := c.Send(websocket.BinaryMessage, p); err == websocket.ErrDropped {
				dropped++
			}
		}
		c.SendText(fmt.Sprintf("dropped %d", dropped))
	case "burst":
		g, n := arg(1), arg(2)
		var wg sync.WaitGroup
		for i := range g {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range n {
					c.SendText(fmt.Sprintf("%d %d", i, j))
				}
			}()
		}
		wg.Wait()
	case "join":
		c.Join(f[1])
		c.SendText("joined " + f[1])
	case "leave":
		c.Leave(f[1])
		c.SendText("left " + f[1])
	case "say":
		c.Hub().SendRoom(f[1], websocket.TextMessage, []byte(strings.Join(f[2:], " ")), nil)
	case "all":
		c.Hub().Broadcast(websocket.TextMessage, []byte(strings.Join(f[1:], " ")), c)
	case "ping":
		c.Ping([]byte(f[1]))
	default:
		c.Send(m.Type, m.Data)
	}
}

// hello behaves like apache-websocket's debug plugin in miniature: it
// refuses when asked to, picks the subprotocol the client names in
// X-Choose-Subprotocol, sets X-Debug-Header, and greets with the version.
type hello struct{ gateway.Base }

func (hello) OnConnect(c *gateway.Conn) error {
	r := c.Request()
	if r.Header.Get("X-Refuse-Connection") != "" {
		return gateway.Refuse(0, "asked to")
	}
	if p := r.Header.Get("X-Choose-Subprotocol"); p != "" {
		c.SetSubprotocol(p)
	}
	c.ResponseHeader().Set("X-Debug-Header", "true")
	c.SendText(fmt.Sprintf("hello v%d %s", r.Version, c.Subprotocol()))
	return nil
}

// testServer is a daemon running in the test process.
type testServer struct {
	*server.Server
	Addr string
	Logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const baseConfig = `
listen:
  - address: 127.0.0.1:0
server:
  demo: true
  handshake_timeout: 2s
routes:
  - path: /echo
    app: echo
    deflate: true
  - path: /dumb-increment
    app: dumb-increment
  - path: /chat
    app: chat
  - path: /control
    app: test-control
    close_timeout: 300ms
  - path: /hello
    app: test-hello
  - path: /prefix/
    app: echo
`

// start runs a daemon for cfg (YAML) until the test ends.
func start(t testing.TB, yaml string) *testServer {
	t.Helper()
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	var w io.Writer = logs
	if os.Getenv("WSGATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	addr := s.Addrs()[0]
	ts := &testServer{Server: s, Logs: logs}
	if addr.Network() == "tcp" {
		ts.Addr = addr.String()
	} else {
		ts.Addr = addr.String()
	}
	return ts
}

func (ts *testServer) url(path string) string { return "ws://" + ts.Addr + path }

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

var _ = net.Dial
