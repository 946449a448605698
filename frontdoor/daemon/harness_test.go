package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
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

// floodsDone counts the floods control has finished sending: a test that
// must not read before the server has queued all it will waits for it.
var floodsDone atomic.Int64

// flood asks c's control connection for n messages of size bytes and
// waits until the server has sent them all (into its queue, or dropped
// or refused them), reading nothing meanwhile.
func flood(t *testing.T, c *ws.Conn, n, size int) {
	t.Helper()
	before := floodsDone.Load()
	c.Write(ws.Text(fmt.Sprintf("flood %d %d", n, size)))
	if !waitFor(time.Minute, func() bool { return floodsDone.Load() > before }) {
		t.Fatal("the server did not finish its flood")
	}
}

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
		floodsDone.Add(1)
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
		if c.Join(f[1]) {
			c.SendText("joined " + f[1])
		} else {
			c.SendText("refused " + f[1])
		}
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

func (hello) OnOpen(ctx context.Context, c *gateway.Conn) error {
	r := c.Request()
	if r.HeaderValue("X-Refuse-Connection") != "" {
		return gateway.Refuse(0, "asked to")
	}
	if p := r.HeaderValue("X-Choose-Subprotocol"); p != "" {
		c.SetSubprotocol(p)
	}
	c.ResponseHeader().Set("X-Debug-Header", "true")
	c.SendText(fmt.Sprintf("hello v%d %s", r.Version, c.Subprotocol()))
	return nil
}

const baseConfig = `
listen:
  - address: 127.0.0.1:0
server:
  demo: true
  handshake_timeout: 2s
defaults:
  max_message_size: 32MiB
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

// start runs a daemon for yaml until the test ends.
func start(t testing.TB, yaml string) *testserver.Server { return testserver.Start(t, yaml) }

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool { return testserver.WaitFor(d, cond) }
