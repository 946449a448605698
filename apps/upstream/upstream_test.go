package upstream_test

import (
	"bufio"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// nodeUpstream runs testdata/node/echo.js with Node's ws (npm ci in
// testdata/node, which ./scripts/test.sh runs).
func nodeUpstream(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := os.Stat("testdata/node/node_modules/ws"); err != nil {
		t.Fatal("Node's ws is not installed: run npm ci in apps/upstream/testdata/node (./scripts/test.sh does)")
	}
	cmd := exec.Command(testserver.Peer(t, "nodejs", "node"), append([]string{"echo.js"}, args...)...)
	cmd.Dir = "testdata/node"
	return "127.0.0.1:" + testserver.StartReporting(t, cmd, `listening on (\d+)`)
}

// pythonUpstream runs testdata/echo.py with Python's websockets.
func pythonUpstream(t *testing.T, args ...string) string {
	t.Helper()
	return "127.0.0.1:" + testserver.StartReporting(t, exec.Command(testserver.Python(t), append([]string{"testdata/echo.py"}, args...)...), `listening on (\d+)`)
}

// gorillaUpstream is an echo upstream with gorilla/websocket that records
// the close code each client ended with.
type gorillaUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	closes []string
	header http.Header
}

func newGorillaUpstream(t *testing.T, compress bool) *gorillaUpstream {
	g := &gorillaUpstream{}
	up := websocket.Upgrader{EnableCompression: compress, Subprotocols: []string{"chat.v2", "chat.v1"}, CheckOrigin: func(*http.Request) bool { return true }}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("refuse") != "" {
			http.Error(w, "not you", http.StatusForbidden)
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" { // not a health check
			g.mu.Lock()
			g.header = r.Header.Clone()
			g.mu.Unlock()
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(-1)
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				g.mu.Lock()
				g.closes = append(g.closes, err.Error())
				g.mu.Unlock()
				return
			}
			switch s := string(p); {
			case strings.HasPrefix(s, "/close "):
				f := strings.SplitN(s, " ", 3)
				var code int
				fmt.Sscan(f[1], &code)
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, f[2]))
			default:
				c.WriteMessage(typ, p)
			}
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gorillaUpstream) addr() string { return strings.TrimPrefix(g.URL, "http://") }

func (g *gorillaUpstream) closed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.closes...)
}

func roundTrip(t *testing.T, c *websocket.Conn, typ int, p string) {
	t.Helper()
	c.WriteMessage(typ, []byte(p))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gt, got, err := c.ReadMessage()
	if err != nil || gt != typ || string(got) != p {
		t.Fatalf("sent %d bytes (type %d), got %d bytes (type %d) %v", len(p), typ, len(got), gt, err)
	}
}

// TestProxyToPeers: clients through wsgate to upstreams from three
// ecosystems (Node's ws, Python's websockets, gorilla), every message
// size class both ways, the subprotocol the upstream chose, and the
// headers an upstream is told of.
func TestProxyToPeers(t *testing.T) {
	node, py, gor := nodeUpstream(t), pythonUpstream(t), newGorillaUpstream(t, false)
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
defaults: {max_message_size: 4MiB, origin_check: "off"}
routes:
  - {path: /node, backend: {upstream: [ws://%s/], headers: {X-Gateway: wsgate}}}
  - {path: /python, backend: {upstream: [ws://%s/]}}
  - {path: /gorilla, backend: {upstream: [ws://%s/echo]}}
`, node, py, gor.addr()))
	for _, path := range []string{"/node", "/python", "/gorilla"} {
		t.Run(path, func(t *testing.T) {
			c, resp := testserver.Dial(t, gw.URL(path), http.Header{"Cookie": {"sid=42"}, "Origin": {"http://app.example"}}, "chat.v1", "chat.v2")
			if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != map[string]string{"/node": "chat.v1", "/python": "chat.v1", "/gorilla": "chat.v2"}[path] {
				t.Errorf("subprotocol %q: not the upstream's choice", p)
			}
			for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
				roundTrip(t, c, websocket.TextMessage, strings.Repeat("é", n/2))
				roundTrip(t, c, websocket.BinaryMessage, strings.Repeat("\x00", n))
			}
			if path == "/gorilla" {
				return
			}
			c.WriteMessage(websocket.TextMessage, []byte("/headers"))
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var h map[string]string
			json.Unmarshal(p, &h)
			if h["x-forwarded-for"] != "127.0.0.1" || h["x-forwarded-proto"] != "http" || h["cookie"] != "sid=42" ||
				h["origin"] != "http://app.example" || !strings.HasPrefix(h["forwarded"], "for=127.0.0.1") {
				t.Errorf("the upstream was told %v", h)
			}
			if path == "/node" && h["x-gateway"] != "wsgate" {
				t.Errorf("no configured header: %v", h)
			}
		})
	}
}

// TestProxyCloses: close codes and reasons are carried both ways; a
// client that breaks the protocol is closed as always and its upstream
// gets 1001.
func TestProxyCloses(t *testing.T) {
	g := newGorillaUpstream(t, false)
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /g, backend: {upstream: [ws://%s/]}}\n", g.addr()))
	// The upstream closes: its code reaches the client.
	c, _ := testserver.Dial(t, gw.URL("/g"), nil)
	c.WriteMessage(websocket.TextMessage, []byte("/close 4001 see you"))
	_, _, err := c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4001 || ce.Text != "see you" {
		t.Errorf("client got %v, want close 4001 see you", err)
	}
	// The client closes: its code reaches the upstream.
	c2, _ := testserver.Dial(t, gw.URL("/g"), nil)
	c2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "bye"))
	c2.ReadMessage()
	// A client that breaks the protocol.
	raw, err := ws.Upgrade(gw.Addr, "/g")
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte("unmasked")}.Bytes())
	if f, err := raw.ReadFrame(); err != nil || f.Op != ws.OpClose || f.Code() != 1002 {
		t.Errorf("the bad client got %v %v, want 1002", f, err)
	}
	want := []string{"websocket: close 4002: bye", "websocket: close 1001 (going away): client went away"}
	if !testserver.WaitFor(10*time.Second, func() bool { return len(g.closed()) >= 3 }) {
		t.Fatalf("the upstream saw %q", g.closed())
	}
	got := strings.Join(g.closed(), "|")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("the upstream saw %q, want %q among them", got, w)
		}
	}
}

// brokenUpstream answers the handshake correctly, then does what the
// path says, byte by byte.
func brokenUpstream(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				accept := ws.AcceptFor(req.Header.Get("Sec-WebSocket-Key"))
				fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept)
				switch req.URL.Path {
				case "/bad-utf8":
					nc.Write(ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte{0xce, 0xba, 0xff}}.Bytes())
				case "/masked":
					nc.Write(ws.Text("masked"))
				case "/oversize":
					nc.Write(ws.Frame{Fin: true, Op: ws.OpBinary, Length: 1 << 40}.Bytes())
				case "/garbage":
					nc.Write([]byte("this is not a frame at all, just bytes"))
				case "/killed":
					nc.Write(ws.Frame{Op: ws.OpText, Payload: []byte("half of a")}.Bytes())
					time.Sleep(100 * time.Millisecond)
					return
				case "/reserved":
					nc.Write(ws.Frame{Fin: true, Op: 0x3}.Bytes())
				}
				io := make([]byte, 1024)
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					if _, err := nc.Read(io); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestBrokenUpstream: an upstream that breaks RFC 6455 is closed by the
// engine (1002, 1007, 1009), and its client gets 1014 "bad gateway";
// each is counted.
func TestBrokenUpstream(t *testing.T) {
	addr := brokenUpstream(t)
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /b/, backend: {upstream: [ws://%s/]}}\n", addr))
	// The upstream counters live by route for the process (a reload keeps
	// them): count from here.
	before := testserver.Sample(gw.Metrics(t), `wsgate_upstream_protocol_errors_total{route="/b/",side="upstream"}`)
	for _, path := range []string{"/bad-utf8", "/masked", "/oversize", "/garbage", "/killed", "/reserved"} {
		t.Run(path, func(t *testing.T) {
			// Raw frames: gorilla's client takes 1014, registered after
			// RFC 6455, for a protocol error.
			c, err := ws.Upgrade(gw.Addr, "/b"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if f, err := c.ReadFrame(); err != nil || f.Op != ws.OpClose || f.Code() != 1014 || f.Reason() != "bad gateway" {
				t.Errorf("client got %v %v, want close 1014 bad gateway", f, err)
			}
		})
	}
	// The counts are made when each client's connection has ended, which
	// may be after it read its close frame.
	var m string
	testserver.WaitFor(10*time.Second, func() bool {
		m = gw.Metrics(t)
		return testserver.Sample(m, `wsgate_server_closes_total{cause="upstream_broken",code="1014",route="/b/"}`)+
			testserver.Sample(m, `wsgate_server_closes_total{cause="upstream_gone",code="1014",route="/b/"}`) >= 6
	})
	if n := testserver.Sample(m, `wsgate_upstream_protocol_errors_total{route="/b/",side="upstream"}`) - max(before, 0); n != 5 {
		t.Errorf("upstream protocol errors: %v, want 5\n%s", n, testserver.Grep(m, "upstream"))
	}
	if n := testserver.Sample(m, `wsgate_server_closes_total{cause="upstream_broken",code="1014",route="/b/"}`); n != 5 {
		t.Errorf("closes for upstream_broken: %v", n)
	}
	if n := testserver.Sample(m, `wsgate_server_closes_total{cause="upstream_gone",code="1014",route="/b/"}`); n != 1 {
		t.Errorf("closes for upstream_gone: %v", n)
	}
}

// TestUpstreamRefusals: an upstream nobody listens on is 502; one that
// refuses passes its status; one that never answers is 504.
func TestUpstreamRefusals(t *testing.T) {
	g := newGorillaUpstream(t, false)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /down, backend: {upstream: [ws://%s/]}}
  - {path: /refuse, backend: {upstream: ["ws://%s/?refuse=1"]}}
  - {path: /silent, backend: {upstream: [ws://%s/], connect_timeout: 300ms}}
`, testserver.RefusingAddr(t), g.addr(), silent.Addr()))
	dials := func(route, result string) float64 {
		return max(testserver.Sample(gw.Metrics(t), fmt.Sprintf(`wsgate_upstream_dials_total{result="%s",route="%s"}`, result, route)), 0)
	}
	before := map[string]float64{"/down": dials("/down", "error"), "/refuse": dials("/refuse", "refused"), "/silent": dials("/silent", "timeout")}
	for path, want := range map[string]int{"/down": 502, "/refuse": 403, "/silent": 504} {
		if _, resp, err := websocket.DefaultDialer.Dial(gw.URL(path), nil); err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("%s: %v %v, want %d", path, resp, err, want)
		}
	}
	for route, result := range map[string]string{"/down": "error", "/refuse": "refused", "/silent": "timeout"} {
		if n := dials(route, result) - before[route]; n != 1 {
			t.Errorf("%s dials %s: %v", route, result, n)
		}
	}
}

// TestProxyDeflate: each side negotiates permessage-deflate on its own:
// client on and upstream off, client off and upstream on, both on.
func TestProxyDeflate(t *testing.T) {
	node, nodeDeflate := nodeUpstream(t), nodeUpstream(t, "--deflate")
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /client-only, deflate: true, backend: {upstream: [ws://%s/]}}
  - {path: /upstream-only, backend: {upstream: [ws://%s/], deflate: true}}
  - {path: /both, deflate: true, backend: {upstream: [ws://%[2]s/], deflate: true}}
`, node, nodeDeflate))
	for _, tc := range []struct{ path, clientExt, upstreamExt string }{
		{"/client-only", "permessage-deflate", ""},
		{"/upstream-only", "", "permessage-deflate"},
		{"/both", "permessage-deflate", "permessage-deflate"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			d := websocket.Dialer{EnableCompression: true}
			c, resp, err := d.Dial(gw.URL(tc.path), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(got, tc.clientExt) || (tc.clientExt == "" && got != "") {
				t.Errorf("client side negotiated %q", got)
			}
			c.WriteMessage(websocket.TextMessage, []byte("/ext"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil || !strings.HasPrefix(string(p), tc.upstreamExt) || (tc.upstreamExt == "" && len(p) != 0) {
				t.Errorf("upstream side negotiated %q %v", p, err)
			}
			roundTrip(t, c, websocket.TextMessage, strings.Repeat("compressible ", 10000))
		})
	}
}

// TestBalanceAndHealth: hash(cookie:sid) keeps a client on one upstream;
// a dead upstream is taken out by its health check and put back when it
// returns; round robin spreads.
func TestBalanceAndHealth(t *testing.T) {
	a, b := newGorillaUpstream(t, false), newGorillaUpstream(t, false)
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /sticky, backend: {upstream: [ws://%s/, ws://%s/], balance: "hash(cookie:sid)"}}
  - {path: /rr, backend: {upstream: [ws://%[1]s/, ws://%[2]s/], health: {interval: 100ms}}}
`, a.addr(), b.addr()))
	which := func(path string, h http.Header) *gorillaUpstream {
		c, _ := testserver.Dial(t, gw.URL(path), h)
		roundTrip(t, c, websocket.TextMessage, "x")
		c.Close()
		a.mu.Lock()
		ha := a.header
		a.header = nil
		a.mu.Unlock()
		b.mu.Lock()
		b.header = nil
		b.mu.Unlock()
		if ha != nil {
			return a
		}
		return b
	}
	for _, sid := range []string{"alice", "bob", "carol", "dave"} {
		first := which("/sticky", http.Header{"Cookie": {"sid=" + sid}})
		for range 3 {
			if which("/sticky", http.Header{"Cookie": {"sid=" + sid}}) != first {
				t.Errorf("sid=%s moved between upstreams", sid)
			}
		}
	}
	seen := map[*gorillaUpstream]int{}
	for range 6 {
		seen[which("/rr", nil)]++
	}
	if seen[a] != 3 || seen[b] != 3 {
		t.Errorf("round robin: a %d, b %d", seen[a], seen[b])
	}
	// b dies: after two failed checks every client goes to a.
	b.Close()
	time.Sleep(500 * time.Millisecond)
	for range 4 {
		if which("/rr", nil) != a {
			t.Fatal("a client was sent to the dead upstream")
		}
	}
	m := gw.Metrics(t)
	if n := testserver.Sample(m, fmt.Sprintf(`wsgate_upstream_healthy{route="/rr",upstream="ws://%s/"}`, b.addr())); n != 0 {
		t.Errorf("the dead upstream's health: %v", n)
	}
}

// TestFlowControl: a client that does not read slows the upstream's
// sender instead of filling the gateway: with max_queue 256 KiB, an
// upstream writing 32 MiB in 16 KiB messages is held back (TCP's window,
// as the proxy stops reading it), the gateway queues no more than
// max_queue for the client, and once the client reads, every message
// arrives in order. The same the other way.
func TestFlowControl(t *testing.T) {
	const n, size = 2000, 16 << 10
	var written sync.WaitGroup
	var upWrote, upRead atomicCount
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		msg := make([]byte, size)
		if r.URL.Path == "/flood" {
			written.Add(1)
			defer written.Done()
			for i := range n {
				msg[0], msg[1] = byte(i>>8), byte(i)
				if c.WriteMessage(websocket.BinaryMessage, msg) != nil {
					return
				}
				upWrote.add(1)
			}
			c.ReadMessage()
			return
		}
		time.Sleep(time.Second) // /sink: reads nothing for a second, then all
		for i := range n {
			_, p, err := c.ReadMessage()
			if err != nil || int(p[0])<<8|int(p[1]) != i {
				t.Errorf("the upstream read message %d out of order: %v", i, err)
				return
			}
			upRead.add(1)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
defaults: {max_queue: 256KiB, write_timeout: 30s}
routes:
  - {path: /flood, backend: {upstream: [ws://%s/flood]}}
  - {path: /sink, backend: {upstream: [ws://%s/sink]}}
`, addr, addr))
	c, _ := testserver.Dial(t, gw.URL("/flood"), nil)
	time.Sleep(time.Second)
	m := gw.Metrics(t)
	queued := testserver.Sample(m, `wsgate_send_queue_bytes{route="/flood"}`)
	if w := upWrote.get(); w >= n/2 {
		t.Errorf("the upstream wrote %d of %d messages to a client that read none", w, n)
	}
	if queued > 256<<10+size+64 {
		t.Errorf("the gateway queued %v bytes for the client, over max_queue", queued)
	}
	t.Logf("client not reading: the upstream wrote %d of %d messages; %v bytes queued for the client", upWrote.get(), n, queued)
	c.SetReadLimit(-1)
	for i := range n {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil || len(p) != size || int(p[0])<<8|int(p[1]) != i {
			t.Fatalf("message %d: %d bytes %v", i, len(p), err)
		}
	}
	// The other way: an upstream that reads nothing for a second.
	s, _ := testserver.Dial(t, gw.URL("/sink"), nil)
	msg := make([]byte, size)
	for i := range n {
		msg[0], msg[1] = byte(i>>8), byte(i)
		s.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := s.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if !testserver.WaitFor(30*time.Second, func() bool { return upRead.get() == n }) {
		t.Errorf("the upstream read %d of %d", upRead.get(), n)
	}
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (a *atomicCount) add(d int) { a.mu.Lock(); a.n += d; a.mu.Unlock() }
func (a *atomicCount) get() int  { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

// TestProxyClientFrames: raw client frames through the proxy, byte by
// byte: what a client breaks is answered by wsgate's engine with the
// RFC's code and never reaches the upstream (which gets 1001); a valid
// fragmented message reaches it whole, and comes back as one frame.
func TestProxyClientFrames(t *testing.T) {
	g := newGorillaUpstream(t, false)
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /g, max_message_size: 1KiB, backend: {upstream: [ws://%s/]}}\n", g.addr()))
	for _, tc := range []struct {
		name  string
		send  [][]byte
		reply string // the first frame back: a text payload, or "close N"
	}{
		{"fragmented text, relayed whole", [][]byte{ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("frag")}.Bytes(),
			ws.Frame{Op: ws.OpCont, Masked: true, Payload: []byte("men")}.Bytes(), ws.Frame{Fin: true, Op: ws.OpCont, Masked: true, Payload: []byte("ted")}.Bytes()}, "fragmented"},
		{"a ping is answered here", [][]byte{ws.Ping([]byte("p")), ws.Text("after")}, "pong p"},
		{"unmasked", [][]byte{ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte("x")}.Bytes()}, "close 1002"},
		{"invalid UTF-8", [][]byte{ws.Frame{Fin: true, Op: ws.OpText, Masked: true, Payload: []byte{0xc0, 0x80}}.Bytes()}, "close 1007"},
		{"over max_message_size", [][]byte{ws.Binary(make([]byte, 2000))}, "close 1009"},
		{"reserved opcode", [][]byte{ws.Frame{Fin: true, Op: 0xB, Masked: true}.Bytes()}, "close 1002"},
		{"close code 999", [][]byte{ws.Frame{Fin: true, Op: ws.OpClose, Masked: true, Payload: []byte{0x03, 0xe7}}.Bytes()}, "close 1002"},
		{"RSV1 without deflate", [][]byte{ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpText, Masked: true, Payload: []byte("x")}.Bytes()}, "close 1002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(g.closed())
			c, err := ws.Upgrade(gw.Addr, "/g")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			for _, f := range tc.send {
				for _, b := range f { // byte by byte
					c.Write([]byte{b})
				}
			}
			f, err := c.ReadFrame()
			got := string(f.Payload)
			switch f.Op {
			case ws.OpClose:
				got = fmt.Sprintf("close %d", f.Code())
			case ws.OpPong:
				got = "pong " + got
			}
			if err != nil || got != tc.reply || f.Masked || !f.Fin {
				t.Fatalf("got %v %q %v, want %q", f, got, err, tc.reply)
			}
			if strings.HasPrefix(tc.reply, "close") {
				c.Close() // the closing handshake's end: the client goes
				if !testserver.WaitFor(10*time.Second, func() bool { return len(g.closed()) > before }) {
					t.Fatal("the upstream never saw the end")
				}
				if last := g.closed()[len(g.closed())-1]; !strings.Contains(last, "1001") {
					t.Errorf("the upstream saw %q, want 1001", last)
				}
			}
		})
	}
}

// TestWSSUpstream: a wss:// upstream whose certificate tls.ca trusts; the
// same upstream without it is refused at the TLS handshake (502).
func TestWSSUpstream(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(typ, append([]byte("tls:"), p...))
		}
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	addr := strings.TrimPrefix(srv.URL, "https://")
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /trusted, backend: {upstream: [wss://%s/], tls: {ca: %s}}}
  - {path: /untrusted, backend: {upstream: [wss://%s/]}}
`, addr, ca, addr))
	c, _ := testserver.Dial(t, gw.URL("/trusted"), nil)
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, p, err := c.ReadMessage(); err != nil || string(p) != "tls:hi" {
		t.Fatalf("%q %v", p, err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(gw.URL("/untrusted"), nil); err == nil || resp == nil || resp.StatusCode != 502 {
		t.Errorf("an upstream whose certificate nobody trusts: %v %v, want 502", resp, err)
	}
}

// TestHealthPutsBack: an upstream taken out by its health check is put
// back once it answers again.
func TestHealthPutsBack(t *testing.T) {
	a := newGorillaUpstream(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	baddr := ln.Addr().String()
	ln.Close() // b is down at first
	gw := testserver.Start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /rr, backend: {upstream: [ws://%s/, ws://%s/], health: {interval: 100ms}, fail_timeout: 100ms}}
`, a.addr(), baddr))
	healthy := func() float64 {
		return testserver.Sample(gw.Metrics(t), fmt.Sprintf(`wsgate_upstream_healthy{route="/rr",upstream="ws://%s/"}`, baddr))
	}
	if !testserver.WaitFor(10*time.Second, func() bool { return healthy() == 0 }) {
		t.Fatal("b, down, was not taken out")
	}
	// b comes up on its address.
	ln, err = net.Listen("tcp", baddr)
	if err != nil {
		t.Skipf("could not listen on %s again: %v", baddr, err)
	}
	var served atomicCount
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if r.Header.Get("X-Forwarded-For") != "" {
			served.add(1)
		}
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(typ, p)
		}
	})}
	go hs.Serve(ln)
	defer hs.Close()
	if !testserver.WaitFor(10*time.Second, func() bool { return healthy() == 1 }) {
		t.Fatal("b was not put back")
	}
	for range 4 {
		c, _ := testserver.Dial(t, gw.URL("/rr"), nil)
		roundTrip(t, c, websocket.TextMessage, "x")
		c.Close()
	}
	if served.get() != 2 {
		t.Errorf("b served %d of 4 clients after it came back, want 2", served.get())
	}
}
