package producer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// app is the producer the tests run: it accepts or refuses at open, picks
// a subprotocol and a header, and obeys text commands; anything else is
// echoed.
type app struct {
	mu     sync.Mutex
	closed map[uint64]uint16
}

func (a *app) OnOpen(c *producer.Client, acc *producer.Accept) error {
	if c.Header.Get("X-Refuse") != "" {
		return producer.Refuse(401, "no entry")
	}
	for _, p := range c.Protocols {
		if p == "chat.v1" {
			acc.Subprotocol = p
		}
	}
	acc.Header.Set("X-Producer", "yes "+c.Route)
	return nil
}

func (a *app) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	f := strings.Fields(string(data))
	if typ != producer.Text || len(f) == 0 {
		c.Send(typ, data)
		return
	}
	switch f[0] {
	case "close":
		var code uint16
		fmt.Sscan(f[1], &code)
		c.Close(code, strings.Join(f[2:], " "))
	case "broadcast":
		c.Broadcast(producer.Text, []byte(strings.Join(f[1:], " ")), false)
	case "join":
		c.Join(f[1])
		c.SendText("joined " + f[1])
	case "leave":
		c.Leave(f[1])
		c.SendText("left " + f[1])
	case "room":
		c.SendRoom(f[1], producer.Text, []byte(strings.Join(f[2:], " ")), true)
	case "whoami":
		c.SendText(fmt.Sprintf("%s %s %s %v %s", c.Path, c.Query, c.Host, c.TLS, c.Header.Get("X-Test")))
	case "closed":
		a.mu.Lock()
		var id uint64
		fmt.Sscan(f[1], &id)
		code, ok := a.closed[id]
		a.mu.Unlock()
		c.SendText(fmt.Sprint(code, ok))
	case "id":
		c.SendText(fmt.Sprint(c.ID))
	default:
		c.Send(typ, data)
	}
}

func (a *app) OnClose(c *producer.Client, code uint16, reason string) {
	a.mu.Lock()
	a.closed[c.ID] = code
	a.mu.Unlock()
}

// setup starts a producer on a socket and a gateway with a mux and a
// per-client route to it.
func setup(t *testing.T, h producer.Handler, extra string) (*testserver.Server, string, *producer.Server) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := producer.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ps := &producer.Server{Handler: h}
	go ps.Serve(ln)
	t.Cleanup(func() { ps.Shutdown(context.Background()) })
	gw := testserver.Start(t, fmt.Sprintf(`
listen:
  - address: 127.0.0.1:0
defaults: {max_message_size: 32MiB}
routes:
  - path: /mux
    backend: {socket: %[1]s, mode: mux, connections: 2}
  - path: /pc
    backend: {socket: %[1]s, mode: per-client}
%[2]s`, sock, extra))
	return gw, sock, ps
}

var modes = []string{"/mux", "/pc"}

func dial(t *testing.T, url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.Close() })
	return c, resp
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func TestAcceptAndRefuse(t *testing.T) {
	gw, _, _ := setup(t, &app{closed: map[uint64]uint16{}}, "")
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			c, resp := dial(t, gw.URL(m+"?q=1"), http.Header{"X-Test": {"forwarded"}}, "other", "chat.v1")
			if c.Subprotocol() != "chat.v1" || resp.Header.Get("X-Producer") != "yes "+m {
				t.Fatalf("subprotocol %q, X-Producer %q", c.Subprotocol(), resp.Header.Get("X-Producer"))
			}
			c.WriteMessage(websocket.TextMessage, []byte("whoami"))
			if got := read(t, c); got != m+" q=1 "+gw.Addr+" false forwarded" {
				t.Fatalf("metadata %q", got)
			}
			_, resp, err := websocket.DefaultDialer.Dial(gw.URL(m), http.Header{"X-Refuse": {"1"}})
			if err == nil || resp == nil || resp.StatusCode != 401 {
				t.Fatalf("refusal: %v %v", resp, err)
			}
		})
	}
}

func TestRoundTrips(t *testing.T) {
	gw, _, _ := setup(t, &app{closed: map[uint64]uint16{}}, "")
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			c, _ := dial(t, gw.URL(m), nil)
			for _, n := range []int{0, 1, 125, 64 << 10, 16 << 20} {
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(i*31 + 7)
				}
				c.WriteMessage(websocket.BinaryMessage, p)
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				typ, got, err := c.ReadMessage()
				if err != nil || typ != websocket.BinaryMessage || !bytes.Equal(got, p) {
					t.Fatalf("%d bytes: type %d, %d bytes back, %v", n, typ, len(got), err)
				}
				text := strings.Repeat("κ", n/2)
				c.WriteMessage(websocket.TextMessage, []byte(text))
				if got := read(t, c); got != text {
					t.Fatalf("%d-byte text differs", len(text))
				}
			}
		})
	}
}

func TestBroadcastAndRooms(t *testing.T) {
	gw, _, _ := setup(t, &app{closed: map[uint64]uint16{}}, "")
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			var cs []*websocket.Conn
			for range 3 {
				c, _ := dial(t, gw.URL(m), nil)
				cs = append(cs, c)
			}
			cs[0].WriteMessage(websocket.TextMessage, []byte("broadcast hello all"))
			for i, c := range cs {
				if got := read(t, c); got != "hello all" {
					t.Fatalf("client %d: %q", i, got)
				}
			}
			for _, c := range cs[:2] {
				c.WriteMessage(websocket.TextMessage, []byte("join blue"))
				if got := read(t, c); got != "joined blue" {
					t.Fatal(got)
				}
			}
			cs[0].WriteMessage(websocket.TextMessage, []byte("room blue for blue"))
			if got := read(t, cs[1]); got != "for blue" {
				t.Fatalf("room member: %q", got)
			}
			// The sender was excluded and the third client is not in the room:
			// their next message is their own echo.
			for i, c := range []*websocket.Conn{cs[0], cs[2]} {
				c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint("echo ", i)))
				if got := read(t, c); got != fmt.Sprint("echo ", i) {
					t.Fatalf("got %q", got)
				}
			}
		})
	}
}

func TestCloseCodesBothWays(t *testing.T) {
	a := &app{closed: map[uint64]uint16{}}
	gw, _, _ := setup(t, a, "")
	for _, m := range modes {
		t.Run(m, func(t *testing.T) {
			c, _ := dial(t, gw.URL(m), nil)
			c.WriteMessage(websocket.TextMessage, []byte("close 4321 producer says bye"))
			_, _, err := c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4321 || ce.Text != "producer says bye" {
				t.Fatalf("%v", err)
			}
			// The client closes with a code; the producer sees it.
			c2, _ := dial(t, gw.URL(m), nil)
			c2.WriteMessage(websocket.TextMessage, []byte("id"))
			id := read(t, c2)
			c2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "client leaves"))
			c2.ReadMessage()
			probe, _ := dial(t, gw.URL(m), nil)
			if !testserver.WaitFor(3*time.Second, func() bool {
				probe.WriteMessage(websocket.TextMessage, []byte("closed "+id))
				return read(t, probe) == "4002 true"
			}) {
				t.Fatal("the producer did not see the client's close code")
			}
		})
	}
}

// TestEventLoop runs the apache-ws-style API through both modes.
func TestEventLoop(t *testing.T) {
	loop := producer.NewLoop(0)
	gw, _, _ := setup(t, loop, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var closes []uint16
	go func() {
		for {
			ev, err := loop.Next(ctx)
			if err != nil {
				return
			}
			switch ev.Type {
			case producer.AcceptEvent:
				if ev.Client.Query == "refuse" {
					ev.Refuse(429, "slow down")
				}
			case producer.MessageEvent:
				ev.Respond(append([]byte("loop: "), ev.Data...))
			case producer.CloseEvent:
				mu.Lock()
				closes = append(closes, ev.Code)
				mu.Unlock()
			}
		}
	}()
	for _, m := range modes {
		c, _ := dial(t, gw.URL(m), nil)
		c.WriteMessage(websocket.TextMessage, []byte("ping"))
		if got := read(t, c); got != "loop: ping" {
			t.Fatalf("%s: %q", m, got)
		}
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
		c.ReadMessage()
		if _, resp, err := websocket.DefaultDialer.Dial(gw.URL(m+"?refuse"), nil); err == nil || resp.StatusCode != 429 {
			t.Fatalf("%s refusal: %v", m, resp)
		}
	}
	if !testserver.WaitFor(3*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(closes) == 2 }) {
		t.Fatalf("close events: %v", closes)
	}
}

// TestListenPublishesListening: the socket path appears only once the
// socket accepts connections, with its mode and no temporary file left;
// closing removes it. A watcher dials the moment the path appears.
func TestListenPublishesListening(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.sock")
	for i := range 20 {
		found := make(chan error, 1)
		go func() {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				if _, err := os.Lstat(path); err == nil {
					c, err := net.Dial("unix", path)
					if err == nil {
						c.Close()
					}
					found <- err
					return
				}
			}
			found <- errors.New("the path never appeared")
		}()
		ln, err := producer.Listen(path, 0o660)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-found; err != nil {
			t.Fatalf("round %d: dialing as soon as the path exists: %v", i, err)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
			t.Fatalf("%v %v", fi, err)
		}
		if ln.Addr().String() != path {
			t.Fatalf("Addr %s", ln.Addr())
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("left in the directory: %v", entries)
		}
		ln.Close()
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("after Close: %v", err)
		}
	}
}

// TestShutdownRacesAccept: a gateway connection accepted at the moment
// Shutdown closes the listener is closed too, so Shutdown returns. It
// used to be registered after Shutdown had closed the others, stay open
// (the gateway keeps it), and Shutdown waited for it for ever (found
// under stress-ng by apps/backend's TestHeldQueueBound).
func TestShutdownRacesAccept(t *testing.T) {
	dir := t.TempDir()
	for i := range 300 {
		sock := filepath.Join(dir, fmt.Sprint("s", i))
		ln, err := producer.Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := &producer.Server{Handler: nopHandler{}}
		served := make(chan struct{})
		go func() { srv.Serve(ln); close(served) }()
		var conns []net.Conn
		for range 4 {
			if c, err := net.Dial("unix", sock); err == nil {
				conns = append(conns, c) // the gateway's side: open, sending nothing
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(ctx)
		cancel()
		for _, c := range conns {
			c.Close()
		}
		<-served
		if err != nil {
			t.Fatalf("round %d: Shutdown: %v (a connection accepted meanwhile was left open)", i, err)
		}
	}
}

type nopHandler struct{}

func (nopHandler) OnOpen(*producer.Client, *producer.Accept) error          { return nil }
func (nopHandler) OnMessage(*producer.Client, producer.MessageType, []byte) {}
func (nopHandler) OnClose(*producer.Client, uint16, string)                 {}
