package apachetest

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/natstest"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// busyWorkers reads the scoreboard's busy workers from mod_status; the
// request asking is one of them.
func busyWorkers(t *testing.T, h *httpd) int {
	t.Helper()
	resp, err := http.Get("http://" + h.Addr() + "/server-status?auto")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "BusyWorkers: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no BusyWorkers in server-status:\n%s", b)
	return 0
}

// each runs f on every connection, 32 at a time, and fails the test with
// the first error.
func each(t *testing.T, cs []*websocket.Conn, f func(i int, c *websocket.Conn) error) {
	t.Helper()
	var wg sync.WaitGroup
	var first atomic.Value
	sem := make(chan struct{}, 32)
	for i, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i, c); err != nil {
				first.CompareAndSwap(nil, fmt.Errorf("connection %d: %w", i, err))
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		t.Fatal(err)
	}
}

// TestReleasedWorkers: under the event MPM an idle WebSocket holds no
// worker. httpd runs the tests' usual 2 children of 25 threads (50
// workers) and holds 1,200 WebSockets, ws and wss, far more than it has
// workers: while they are idle the scoreboard shows none of them busy;
// every one still echoes on demand; and broadcasts reach the parked ones
// (through a timed callback each, on a worker, the only way httpd lets a
// module write to a connection it waits for) while the echo clients keep
// their workers busy and mod_ssl is driven from whichever worker httpd
// picks.
func TestReleasedWorkers(t *testing.T) {
	need(t)
	nats := natstest.StartCluster(t, 1)
	h := start(t, options{TLS: true, Modules: []string{"status"},
		// The event MPM stops accepting beyond ThreadsPerChild plus this
		// factor times its idle workers, counting waiting connections.
		Global: "AsyncRequestWorkerFactor 100\nWsgateCluster " + nats[0].URL() + "\n",
		Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
<Location /chat>
  SetHandler websocket-handler
  WebSocketApp chat
</Location>
<Location /server-status>
  SetHandler server-status
</Location>
`})
	const perGroup = 300
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.Pool}, HandshakeTimeout: 20 * time.Second}
	dial := func(url string) []*websocket.Conn {
		cs := make([]*websocket.Conn, perGroup)
		each(t, cs, func(i int, _ *websocket.Conn) error {
			c, _, err := dialer.Dial(url, nil)
			cs[i] = c
			return err
		})
		t.Cleanup(func() {
			for _, c := range cs {
				if c != nil {
					c.Close()
				}
			}
		})
		return cs
	}
	echo := append(dial("ws://"+h.Addr()+"/echo"), dial("wss://"+h.TLSAddr()+"/echo")...)
	chat := append(dial("ws://"+h.Addr()+"/chat"), dial("wss://"+h.TLSAddr()+"/chat")...)
	// Each child's link to NATS is up once it has served a client, not at
	// once: probe until one broadcast has reached every chat client.
	probed, proberDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(proberDone)
		for {
			select {
			case <-probed:
				return
			case <-time.After(100 * time.Millisecond):
				chat[0].WriteMessage(websocket.TextMessage, []byte("probe"))
			}
		}
	}()
	each(t, chat, func(i int, c *websocket.Conn) error {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			_, p, err := c.ReadMessage()
			if err != nil || string(p) == "probe" {
				return err
			}
		}
	})
	close(probed)
	// The prober writes to chat[0], which the rounds below write to: a
	// gorilla connection takes one writer at a time (the race detector
	// caught a probe still being written under stress-ng).
	<-proberDone
	// Every connection parks after 20 ms of quiet.
	if !testserver.WaitFor(10*time.Second, func() bool { return busyWorkers(t, h) <= 3 }) {
		t.Fatalf("%d workers busy with %d idle WebSockets held", busyWorkers(t, h), len(echo)+len(chat))
	}

	// Broadcasts to the parked chat clients while the echo clients work.
	const rounds = 10
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		each(t, echo, func(i int, c *websocket.Conn) error {
			for r := range rounds {
				msg := fmt.Sprintf("echo %d %d", i, r)
				if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				_, p, err := c.ReadMessage()
				if err != nil {
					return err
				}
				if string(p) != msg {
					return fmt.Errorf("echo %q, want %q", p, msg)
				}
			}
			return nil
		})
	}()
	var slowest atomic.Int64
	for r := range rounds {
		start := time.Now()
		if err := chat[r].WriteMessage(websocket.TextMessage, []byte("round "+strconv.Itoa(r))); err != nil {
			t.Fatal(err)
		}
		each(t, chat, func(i int, c *websocket.Conn) error {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, p, err := c.ReadMessage()
			for err == nil && string(p) == "probe" { // the last probes
				_, p, err = c.ReadMessage()
			}
			if err != nil {
				return err
			}
			if want := "round " + strconv.Itoa(r); string(p) != want {
				return fmt.Errorf("got %q, want %q", p, want)
			}
			if d := time.Since(start); d > time.Duration(slowest.Load()) {
				slowest.Store(int64(d))
			}
			return nil
		})
	}
	wg.Wait()
	t.Logf("%d broadcasts to %d parked clients: the slowest delivery took %v", rounds, len(chat), time.Duration(slowest.Load()))
	if !testserver.WaitFor(10*time.Second, func() bool { return busyWorkers(t, h) <= 3 }) {
		t.Errorf("%d workers busy after the traffic", busyWorkers(t, h))
	}
	// A clean close from a parked connection's side.
	c := echo[0]
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("close: %v", err)
	}
	if !strings.Contains(h.Log(), "workers are released while WebSockets are idle") {
		t.Errorf("httpd does not say that workers are released:\n%s", h.Log())
	}
	for _, bad := range []string{"panic", "Segmentation fault", "AH00052"} {
		if strings.Contains(h.Log(), bad) {
			t.Errorf("httpd's log has %q:\n%s", bad, h.Log())
		}
	}
}

// TestWorkersKept: where workers are not released, httpd says why at
// startup, and each WebSocket keeps its worker (the scoreboard counts it
// busy) while it is open.
func TestWorkersKept(t *testing.T) {
	need(t)
	for _, tc := range []struct {
		name, mpm, global, log string
	}{
		{"WsgateReleaseWorkers Off", "event", "WsgateReleaseWorkers Off\n", "holds a worker thread for its life: WsgateReleaseWorkers Off"},
		{"prefork", "prefork", "", "holds a worker thread for its life: the MPM cannot wait"},
		{"worker", "worker", "", "holds a worker thread for its life: the MPM cannot wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, options{MPM: tc.mpm, Modules: []string{"status"}, Global: tc.global, Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
<Location /server-status>
  SetHandler server-status
</Location>
`})
			const n = 8
			var cs []*websocket.Conn
			for range n {
				c, _, err := websocket.DefaultDialer.Dial("ws://"+h.Addr()+"/echo", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				cs = append(cs, c)
			}
			// Kept workers stay busy: they never park, whatever the wait.
			if !testserver.WaitFor(10*time.Second, func() bool { return busyWorkers(t, h) >= n }) {
				t.Errorf("%d workers busy with %d WebSockets open that keep theirs", busyWorkers(t, h), n)
			}
			for i, c := range cs {
				msg := fmt.Sprint("kept ", i)
				c.WriteMessage(websocket.TextMessage, []byte(msg))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, p, err := c.ReadMessage(); err != nil || string(p) != msg {
					t.Fatalf("echo %d: %q %v", i, p, err)
				}
			}
			if !strings.Contains(h.Log(), tc.log) {
				t.Errorf("httpd's log does not say %q:\n%s", tc.log, h.Log())
			}
		})
	}
}

// TestReleasedIdleSurvivesTimeout: a parked WebSocket whose client answers
// every ping outlives httpd's Timeout however many times it passes: the
// pong is read by a resumption of the MPM's (which renews its deadline),
// never by the timed callback that wrote the ping. Before, a pong that
// came back while that callback was still there was read by it, the MPM
// never saw the socket readable, and it closed a healthy client at its
// old deadline (1006, "closed_by=lost"): about one ping in forty at
// scale. A client that answers nothing is still closed after Timeout.
func TestReleasedIdleSurvivesTimeout(t *testing.T) {
	need(t)
	// The event MPM stops accepting beyond ThreadsPerChild plus this factor
	// times its idle workers, counting waiting connections.
	h := start(t, options{TLS: true, Global: "Timeout 2\nAsyncRequestWorkerFactor 100\n", Body: `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
`})
	const perScheme, hold = 100, 9 * time.Second // four and a half Timeouts
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.Pool}, HandshakeTimeout: 20 * time.Second}
	type client struct {
		c   *websocket.Conn
		in  chan string
		err atomic.Value
	}
	var clients []*client
	for _, url := range []string{"ws://" + h.Addr() + "/echo", "wss://" + h.TLSAddr() + "/echo"} {
		for range perScheme {
			c, _, err := dialer.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			cl := &client{c: c, in: make(chan string, 1)}
			clients = append(clients, cl)
			// Reading answers pings (gorilla's default ping handler).
			go func() {
				for {
					_, p, err := c.ReadMessage()
					if err != nil {
						cl.err.Store(err)
						close(cl.in)
						return
					}
					cl.in <- string(p)
				}
			}()
		}
	}
	// A client that never answers a ping: it does not read.
	silent, _, err := dialer.Dial("ws://"+h.Addr()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(hold)
	closed := 0
	var first error
	for i, cl := range clients {
		msg := fmt.Sprint("still here ", i)
		if err := cl.c.WriteMessage(websocket.TextMessage, []byte(msg)); err == nil {
			select {
			case got, ok := <-cl.in:
				if ok && got == msg {
					continue
				}
			case <-time.After(20 * time.Second):
			}
		}
		closed++
		if e, _ := cl.err.Load().(error); e != nil && first == nil {
			first = e
		}
	}
	if closed > 0 {
		t.Errorf("%d of %d clients that answer every ping were closed within %v at Timeout 2; first: %v", closed, len(clients), hold, first)
	}
	// The silent client's socket was closed by httpd: reading drains
	// what was sent to it (pings, perhaps a close) and then fails.
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := silent.NextReader(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Errorf("a client that answers no ping is still open after %v at Timeout 2", hold)
			}
			break
		}
	}
}
