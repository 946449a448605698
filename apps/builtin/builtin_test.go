package builtin_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

func start(t *testing.T) *testserver.Server {
	return testserver.Start(t, `
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, app: echo}
  - {path: /inc, app: dumb-increment}
  - {path: /chat, app: chat}
`)
}

// TestEcho: every message comes back as it came, text as text and binary
// as binary, empty and large ones too.
func TestEcho(t *testing.T) {
	gw := start(t)
	c, _ := testserver.Dial(t, gw.URL("/echo"), nil)
	c.SetReadLimit(-1)
	for _, m := range []struct {
		typ  int
		data string
	}{
		{websocket.TextMessage, ""}, {websocket.TextMessage, "κόσμε"}, {websocket.BinaryMessage, "\x00\xff\x80"},
		{websocket.BinaryMessage, string(make([]byte, 1<<20))},
	} {
		if err := c.WriteMessage(m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		testserver.Expect(t, c, m.typ, m.data)
	}
}

// TestIncrement: libwebsockets' dumb-increment-protocol as apache-websocket
// serves it: 403 without the subprotocol, a counter from 0, and exactly
// "reset\n" sets it back.
func TestIncrement(t *testing.T) {
	gw := start(t)
	if got := ws.Status(gw.URL("/inc")); got != 403 {
		t.Fatalf("without the subprotocol: %d, want 403", got)
	}
	c, resp := testserver.Dial(t, gw.URL("/inc"), nil, "other", "dumb-increment-protocol")
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "dumb-increment-protocol" {
		t.Fatalf("subprotocol %q", p)
	}
	next := func() int {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, p, err := c.ReadMessage()
		n, convErr := strconv.Atoi(string(p))
		if err != nil || typ != websocket.TextMessage || convErr != nil {
			t.Fatalf("%d %q %v", typ, p, err)
		}
		return n
	}
	for want := range 3 {
		if got := next(); got != want {
			t.Fatalf("counter %d, want %d", got, want)
		}
	}
	c.WriteMessage(websocket.TextMessage, []byte("reset")) // not exactly "reset\n": ignored
	c.WriteMessage(websocket.TextMessage, []byte("reset\n"))
	// The counter goes on until the reset is read, then starts again at 0.
	for n, last := 0, 2; ; n++ {
		got := next()
		if got == 0 {
			break
		}
		if got != last+1 || n > 1000 {
			t.Fatalf("counter %d after %d", got, last)
		}
		last = got
	}
}

// TestChat: a text message reaches every connection of the route, the
// sender's included; a binary one is not relayed.
func TestChat(t *testing.T) {
	gw := start(t)
	var cs []*websocket.Conn
	for range 3 {
		c, _ := testserver.Dial(t, gw.URL("/chat"), nil)
		cs = append(cs, c)
	}
	cs[2].WriteMessage(websocket.BinaryMessage, []byte("not relayed"))
	for i, c := range cs {
		c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "from %d", i))
	}
	for i, c := range cs {
		got := map[string]bool{}
		for range len(cs) {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			typ, p, err := c.ReadMessage()
			if err != nil || typ != websocket.TextMessage {
				t.Fatalf("client %d: %d %q %v", i, typ, p, err)
			}
			got[string(p)] = true
		}
		if len(got) != len(cs) {
			t.Fatalf("client %d got %v", i, got)
		}
	}
}
