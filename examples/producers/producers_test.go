package producers_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

var bins = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "producers")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"echo", "chat", "jsonrpc"} {
		bins[name] = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], "./"+name).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func python(t *testing.T) string { return testserver.Python(t) }

// producer starts an example producer process and waits for its socket.
func producer(t *testing.T, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	var cmd *exec.Cmd
	switch {
	case strings.HasSuffix(args[0], ".py"):
		cmd = exec.Command(python(t), append([]string{args[0], "-R", dir, "-n", name}, args[1:]...)...)
	default:
		cmd = exec.Command(bins[args[0]], append([]string{"-R", dir, "-n", name}, args[1:]...)...)
	}
	cmd.Stderr = os.Stderr
	if os.Getenv("WSGATE_TEST_LOG") == "" {
		cmd.Stderr = nil
	}
	testserver.RunProducer(t, cmd, filepath.Join(dir, name))
	return cmd
}

func dial(t *testing.T, url string, protos ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func TestEchoProducers(t *testing.T) {
	dir := t.TempDir()
	producer(t, dir, "echo", "echo")
	producer(t, dir, "pyecho", "echo.py")
	producer(t, dir, "echo-direct", "echo", "-direct")
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
defaults: {max_message_size: 32MiB}
routes:
  - {path: /go, backend: {socket: %[1]s/echo, mode: mux}}
  - {path: /go-pc, backend: {socket: %[1]s/echo, mode: per-client}}
  - {path: /py, backend: {socket: %[1]s/pyecho, mode: mux}}
  - {path: /py-pc, backend: {socket: %[1]s/pyecho, mode: per-client}}
  - {path: /go-direct, backend: {socket: %[1]s/echo-direct, mode: direct}}
`, dir))
	for _, route := range []string{"/go", "/go-pc", "/py", "/py-pc", "/go-direct"} {
		t.Run(route, func(t *testing.T) {
			c := dial(t, gw.URL(route))
			for _, n := range []int{0, 1, 125, 64 << 10, 16 << 20} {
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(i * 13)
				}
				c.WriteMessage(websocket.BinaryMessage, p)
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				typ, got, err := c.ReadMessage()
				if err != nil || typ != websocket.BinaryMessage || !bytes.Equal(got, p) {
					t.Fatalf("%d bytes: type %d, %d bytes, %v", n, typ, len(got), err)
				}
			}
			c.WriteMessage(websocket.TextMessage, []byte("κόσμε"))
			if got := read(t, c); got != "κόσμε" {
				t.Fatalf("text: %q", got)
			}
		})
	}
}

// TestMaxClients: the sample servers' -m refuses clients beyond it with 503.
func TestMaxClients(t *testing.T) {
	dir := t.TempDir()
	producer(t, dir, "echo", "echo", "-m", "2")
	producer(t, dir, "pyecho", "echo.py", "-m", "2")
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /go, backend: {socket: %[1]s/echo}}
  - {path: /py, backend: {socket: %[1]s/pyecho, mode: per-client}}
`, dir))
	for _, route := range []string{"/go", "/py"} {
		a, b := dial(t, gw.URL(route)), dial(t, gw.URL(route))
		if got := ws.Status(gw.URL(route)); got != 503 {
			t.Fatalf("%s: third client got %d, want 503", route, got)
		}
		a.Close()
		b.Close()
		if !testserver.WaitFor(3*time.Second, func() bool { return ws.Status(gw.URL(route)) == 101 }) {
			t.Fatalf("%s: no room after two clients left", route)
		}
	}
}

func TestChat(t *testing.T) {
	dir := t.TempDir()
	producer(t, dir, "chat", "chat")
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
static: [{path: /chat-page/, dir: chat/www}]
routes:
  - {path: /chat, backend: {socket: %s/chat}}
`, dir))
	a, b, c := dial(t, gw.URL("/chat")), dial(t, gw.URL("/chat")), dial(t, gw.URL("/chat"))
	say := func(cn *websocket.Conn, s string) { cn.WriteMessage(websocket.TextMessage, []byte(s)) }
	say(a, "WSHello alice")
	if got := read(t, a); got != "WSWelcome alice" {
		t.Fatal(got)
	}
	say(b, "WSHello alice")
	if got := read(t, b); got != "WSWelcome alice2" {
		t.Fatalf("taken name: %q", got)
	}
	say(b, "WSPrivate alice psst")
	if got := read(t, a); got != "WSPrivate alice2 psst" {
		t.Fatalf("private: %q", got)
	}
	say(c, "WSWhois alice")
	if got := read(t, c); got != "WSIs alice 127.0.0.1" {
		t.Fatalf("whois: %q", got)
	}
	say(c, "WSWhois nobody")
	if got := read(t, c); got != "WSIs nobody undefined" {
		t.Fatalf("whois unknown: %q", got)
	}
	say(c, "WSPrivate nobody hi")
	if got := read(t, c); got != "WSError no such name nobody" {
		t.Fatal(got)
	}
	say(a, "hello room")
	for _, other := range []*websocket.Conn{b, c} {
		if got := read(t, other); got != "alice: hello room" {
			t.Fatalf("broadcast: %q", got)
		}
	}
	resp, err := http.Get("http://" + gw.Addr + "/chat-page/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "WSHello") {
		t.Fatalf("chat page: %s", resp.Status)
	}
}

func TestJSONRPC(t *testing.T) {
	dir := t.TempDir()
	producer(t, dir, "jsonrpc", "jsonrpc")
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /rpc, backend: {socket: %s/jsonrpc}}\n", dir))
	c := dial(t, gw.URL("/rpc"))
	cases := []struct{ req, want string }{
		{`{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}`, `{"jsonrpc":"2.0","result":3,"id":1}`},
		{`{"jsonrpc":"2.0","method":"subtract","params":{"a":5,"b":7},"id":"x"}`, `{"jsonrpc":"2.0","result":-2,"id":"x"}`},
		{`{"jsonrpc":"2.0","method":"echo","params":["hi"],"id":2}`, `{"jsonrpc":"2.0","result":["hi"],"id":2}`},
		{`{"jsonrpc":"2.0","method":"nope","id":3}`, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":3}`},
		{`{"jsonrpc":"2.0","method":"add","params":[1],"id":4}`, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":"two numbers expected"},"id":4}`},
		{`{"jsonrpc":"2.0","method":"add","params":"x","id":5}`, `{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params"},"id":5}`},
		{`{"jsonrpc":"2.0","method":1,"id":6}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":6}`},
		{`{"method":"add","id":7}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":7}`},
		{`{"jsonrpc":"2.0","method":"add"`, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},
		{`[]`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{`[{"jsonrpc":"2.0","method":"add","params":[2,2],"id":8},{"jsonrpc":"2.0","method":"add","params":[1,1]},{"jsonrpc":"2.0","method":"x","id":9}]`,
			`[{"jsonrpc":"2.0","result":4,"id":8},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":9}]`},
	}
	for _, tc := range cases {
		c.WriteMessage(websocket.TextMessage, []byte(tc.req))
		got := read(t, c)
		var g, w any
		json.Unmarshal([]byte(got), &g)
		json.Unmarshal([]byte(tc.want), &w)
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
	// A notification gets no answer: the next answer is the next request's.
	c.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","method":"add","params":[1,1]}`))
	c.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","method":"clients","id":10}`))
	if got := read(t, c); got != `{"jsonrpc":"2.0","result":1,"id":10}` {
		t.Fatalf("after a notification: %s", got)
	}
}

func TestIncrementPython(t *testing.T) {
	dir := t.TempDir()
	producer(t, dir, "increment", "increment.py")
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /inc, backend: {socket: %[1]s/increment}}\n  - {path: /inc-pc, backend: {socket: %[1]s/increment, mode: per-client}}\n", dir))
	for _, route := range []string{"/inc", "/inc-pc"} {
		t.Run(route, func(t *testing.T) { incrementOn(t, gw.URL(route)) })
	}
}

func incrementOn(t *testing.T, url string) {
	if got := ws.Status(url); got != 403 {
		t.Fatalf("without the subprotocol: %d", got)
	}
	c := dial(t, url, "dumb-increment-protocol")
	if c.Subprotocol() != "dumb-increment-protocol" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	for i := range 4 {
		if got := read(t, c); got != fmt.Sprint(i) {
			t.Fatalf("count %q, want %d", got, i)
		}
	}
	c.WriteMessage(websocket.TextMessage, []byte("reset\n"))
	for range 3 {
		if read(t, c) == "0" {
			return
		}
	}
	t.Fatal("no reset")
}

// TestDocroot: /ws/<name> reaches <root>/<name>, only sockets, never out of
// the root.
func TestDocroot(t *testing.T) {
	root := t.TempDir()
	producer(t, root, "echo", "echo")
	os.Mkdir(filepath.Join(root, "rooms"), 0o755)
	producer(t, filepath.Join(root, "rooms"), "chat.v2", "echo")
	producer(t, root, "pyecho", "echo.py")
	os.WriteFile(filepath.Join(root, "notasocket"), []byte("x"), 0o644)
	outside := t.TempDir()
	producer(t, outside, "secret", "echo")
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "escape"))
	os.Symlink(filepath.Join(root, "echo"), filepath.Join(root, "alias"))
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /ws/, docroot: {root: %[1]s}}
  - {path: /only/, docroot: {root: %[1]s, deny: ["*"], allow: [echo]}}
  - {path: /nosecret/, docroot: {root: %[1]s, deny: ["py*"]}}
  - {path: /raw/, docroot: {root: %[1]s, protocol: raw, message_type: binary}}
`, root))
	cases := []struct {
		raw  string // request target, sent as is
		prot string
		want int
	}{
		{"/ws/echo", "", 101},
		{"/ws/pyecho", "", 101},
		{"/ws/alias", "", 101},
		{"/ws/missing", "", 404},
		{"/ws/notasocket", "", 403},
		{"/ws/escape", "", 403},
		{"/ws/../etc/passwd", "", 403},
		{"/ws/rooms/../echo", "", 403},
		{"/ws/%2e%2e/x", "", 403},
		{"/ws/echo%00", "", 403},
		{"/ws//echo", "", 403},
		{"/ws/./echo", "", 403},
		{"/ws/rooms", "chat.v1, chat.v2", 101},
		{"/ws/rooms", "chat.v1", 404},
		{"/ws/rooms", "../echo", 400}, // not a token: refused by the handshake itself
		{"/only/echo", "", 101},
		{"/only/pyecho", "", 403},
		{"/nosecret/pyecho", "", 403},
		{"/nosecret/echo", "", 101},
		{"/raw/echo", "", 101},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			c, err := ws.Dial(gw.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var extra []string
			if tc.prot != "" {
				extra = append(extra, "Sec-WebSocket-Protocol: "+tc.prot)
			}
			resp, err := c.Handshake(ws.Request(tc.raw, extra...))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("%s", resp.Status)
			}
			if tc.prot != "" && tc.want == 101 && resp.Header.Get("Sec-WebSocket-Protocol") != "chat.v2" {
				t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
			}
			if tc.want == 101 && !strings.HasPrefix(tc.raw, "/raw/") {
				c.Write(ws.Text("through " + tc.raw))
				if fr, err := c.ReadFrame(); err != nil || string(fr.Payload) != "through "+tc.raw {
					t.Fatalf("echo: %v %v", fr, err)
				}
			}
		})
	}
}

// TestProducerKilled: a producer dies mid-stream. Its clients close with
// 1012 (Service Restart: the route does not hold them), new clients get 503, other routes keep serving, the outage is
// logged once, and the pool reconnects when the producer is back.
func TestProducerKilled(t *testing.T) {
	dir := t.TempDir()
	victim := producer(t, dir, "victim", "echo")
	producer(t, dir, "other", "echo")
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /victim, backend: {socket: %[1]s/victim}}
  - {path: /victim-pc, backend: {socket: %[1]s/victim, mode: per-client}}
  - {path: /other, backend: {socket: %[1]s/other}}
  - {path: /inproc, app: echo}
`, dir))
	clients := []*websocket.Conn{dial(t, gw.URL("/victim")), dial(t, gw.URL("/victim")), dial(t, gw.URL("/victim-pc"))}
	other := dial(t, gw.URL("/other"))
	// Mid-stream: each client has a message answered, then sends another
	// that may be in flight (unanswered) when the producer dies.
	for _, c := range clients {
		c.WriteMessage(websocket.TextMessage, []byte("before"))
		read(t, c)
		c.WriteMessage(websocket.TextMessage, []byte("in flight"))
	}
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, p, err := c.ReadMessage()
		if err == nil && string(p) == "in flight" { // answered before the kill
			_, _, err = c.ReadMessage()
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 1012 {
			t.Fatalf("client %d: %q %v, want close 1012", i, p, err)
		}
	}
	for _, route := range []string{"/victim", "/victim-pc"} {
		if got := ws.Status(gw.URL(route)); got != 503 {
			t.Fatalf("%s while the producer is dead: %d, want 503", route, got)
		}
	}
	other.WriteMessage(websocket.TextMessage, []byte("still here"))
	if got := read(t, other); got != "still here" {
		t.Fatal(got)
	}
	if got := ws.Status(gw.URL("/inproc")); got != 101 {
		t.Fatalf("in-process route: %d", got)
	}
	// Several reconnect attempts go by; the outage is logged once.
	failures := func() uint64 { return gw.Link("/victim").ConnectFailures }
	if !testserver.WaitFor(time.Minute, func() bool { return failures() >= 4 }) {
		t.Fatalf("%d attempts to reconnect", failures())
	}
	if n := gw.Logs.Count("producer down"); n != 1 {
		t.Fatalf(`"producer down" logged %d times, want once:\n%s`, n, gw.Logs.String())
	}
	os.Remove(filepath.Join(dir, "victim"))
	producer(t, dir, "victim", "echo")
	if !testserver.WaitFor(15*time.Second, func() bool { return ws.Status(gw.URL("/victim")) == 101 }) {
		t.Fatal("the pool did not reconnect")
	}
	if n := gw.Logs.Count("producer up"); n < 2 {
		t.Fatalf(`"producer up" logged %d times, want the start and the recovery`, n)
	}
	c := dial(t, gw.URL("/victim"))
	c.WriteMessage(websocket.TextMessage, []byte("after"))
	if got := read(t, c); got != "after" {
		t.Fatal(got)
	}
}
