package apachetest

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func openEcho(t *testing.T, h *httpd, n int) []*websocket.Conn {
	t.Helper()
	var conns []*websocket.Conn
	for range n {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+h.Addr()+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// A round trip: the connection is being served by a worker.
		c.WriteMessage(websocket.TextMessage, []byte("up"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

// readToEnd reads messages until the connection ends, at most 20 s, and
// returns the error that ended it.
func readToEnd(c *websocket.Conn) error {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

// expectGoingAway reads until the close frame, which must be 1001.
func expectGoingAway(t *testing.T, conns []*websocket.Conn) {
	t.Helper()
	for i, c := range conns {
		if err := readToEnd(c); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("connection %d: %v, want a 1001 close", i, err)
		}
	}
}

// expectDropped reads until the connection ends, one way or another.
func expectDropped(t *testing.T, conns []*websocket.Conn) {
	t.Helper()
	for i, c := range conns {
		if ne, ok := readToEnd(c).(interface{ Timeout() bool }); ok && ne.Timeout() {
			t.Errorf("connection %d is still open after the stop", i)
		}
	}
}

// TestRestartAndStop: a graceful restart and a graceful stop close open
// WebSockets with 1001 "going away" (without it they would wait for ever
// on a connection that never ends); after the restart, new connections are
// served. A plain stop is httpd's immediate termination: httpd closes
// every worker's socket itself before any module hook runs, so clients see
// the connection drop, promptly. The harness fails a stop that needs
// SIGKILL.
func TestRestartAndStop(t *testing.T) {
	for _, mpm := range []string{"event", "worker", "prefork"} {
		t.Run(mpm, func(t *testing.T) {
			for _, cmd := range []string{"graceful", "graceful-stop", "stop"} {
				t.Run(cmd, func(t *testing.T) {
					h := start(t, options{MPM: mpm, Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>`})
					conns := openEcho(t, h, 3)
					h.Signal(cmd)
					if cmd == "stop" {
						expectDropped(t, conns)
						return
					}
					expectGoingAway(t, conns)
					if cmd == "graceful" {
						// The new generation serves new connections (the
						// listener may refuse for a moment while it starts).
						var err error
						for range 100 {
							var c *websocket.Conn
							if c, _, err = websocket.DefaultDialer.Dial("ws://"+h.Addr()+"/echo", nil); err == nil {
								c.Close()
								break
							}
							time.Sleep(50 * time.Millisecond)
						}
						if err != nil {
							t.Fatalf("after the graceful restart: %v", err)
						}
					}
				})
			}
		})
	}
}

// TestGoOnlyInChildren: the Go runtime does not survive fork(), so
// libwsgate.so must be mapped in the children that serve and never in the
// parent that forks them.
func TestGoOnlyInChildren(t *testing.T) {
	h := start(t, options{Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>`})
	openEcho(t, h, 1)
	pids := h.pids()
	if len(pids) < 2 {
		t.Fatalf("pids %v", pids)
	}
	mapped := func(pid int) bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		if err != nil {
			t.Fatalf("maps of %d: %v", pid, err)
		}
		return strings.Contains(string(b), "libwsgate.so")
	}
	if mapped(pids[0]) {
		t.Error("the parent has libwsgate.so mapped")
	}
	any := false
	for _, p := range pids[1:] {
		any = any || mapped(p)
	}
	if !any {
		t.Error("no child has libwsgate.so mapped")
	}
}
