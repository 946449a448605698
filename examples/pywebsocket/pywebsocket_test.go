// Package pywebsocket_test runs mod_pywebsocket handler files, written the
// way pywebsocket's users wrote them (handlers/), behind a real wsgate
// through the Python SDK's runner (python3 -m wsgate_producer.pywebsocket).
package pywebsocket_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// syncBuffer collects the runner's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// start runs the handlers behind a daemon whose /ws/ prefix route is the
// runner's socket, and returns the daemon and the runner's log.
func start(t *testing.T) (*testserver.Server, *syncBuffer) {
	t.Helper()
	return startWith(t, "")
}

// startWith is start with a directory ahead of the SDK on PYTHONPATH.
func startWith(t *testing.T, ahead string) (*testserver.Server, *syncBuffer) {
	t.Helper()
	python := testserver.Python(t)
	sdk, _ := filepath.Abs("../../sdk/python")
	if ahead != "" {
		sdk = ahead + string(filepath.ListSeparator) + sdk
	}
	sock := filepath.Join(t.TempDir(), "pyws.sock")
	cmd := exec.Command(python, "-m", "wsgate_producer.pywebsocket", "-w", "handlers", "-m", "handler_map.txt",
		"--socket", sock, "--log-level", "info")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+sdk)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runner's log:\n%s", logs)
		}
	})
	testserver.RunProducer(t, cmd, sock)
	d := testserver.Start(t, `
listen: [{address: 127.0.0.1:0}]
defaults: {origin_check: "off"}
routes:
  - {path: /ws/, backend: {socket: `+sock+`}}
`)
	return d, logs
}

func dial(t *testing.T, url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func mustDial(t *testing.T, url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := dial(t, url, h, protos...)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return c, resp
}

func expect(t *testing.T, c *websocket.Conn, typ int, want string) {
	t.Helper()
	gt, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if gt != typ || string(p) != want {
		t.Fatalf("got %d %q, want %d %q", gt, p, typ, want)
	}
}

func expectClose(t *testing.T, c *websocket.Conn, code int, reason string) {
	t.Helper()
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want close %d %q: %v", code, reason, err)
		}
		if ce.Code != code || (reason != "*" && ce.Text != reason) {
			t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

// handshakeStatus sends an upgrade for path, with extra header lines, and
// returns the answer's status.
func handshakeStatus(t *testing.T, d *testserver.Server, path string, extra ...string) int {
	t.Helper()
	c, err := ws.Dial(d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Handshake(ws.Request(path, append([]string{"Host: " + d.Addr}, extra...)...))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode
}

func TestHandlers(t *testing.T) {
	d, logs := start(t)
	status := func(path string, extra ...string) int { return handshakeStatus(t, d, path, extra...) }

	t.Run("echo until Goodbye", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/echo"), nil)
		c.WriteMessage(websocket.TextMessage, []byte("héllo"))
		expect(t, c, websocket.TextMessage, "héllo")
		c.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff})
		expect(t, c, websocket.BinaryMessage, "\x00\x01\x02\xff")
		c.WriteMessage(websocket.TextMessage, []byte("Goodbye"))
		expect(t, c, websocket.TextMessage, "Goodbye")
		// transfer_data returned: the connection is closed normally.
		expectClose(t, c, websocket.CloseNormalClosure, "")
	})
	t.Run("query stripped for lookup", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/echo?room=1"), nil)
		c.WriteMessage(websocket.TextMessage, []byte("q"))
		expect(t, c, websocket.TextMessage, "q")
	})
	t.Run("server closes with the code and reason asked", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/close"), nil)
		c.WriteMessage(websocket.TextMessage, []byte("3001 see you later"))
		expectClose(t, c, 3001, "see you later")
	})
	t.Run("client close answered", func(t *testing.T) {
		// The engine answers a client's close at once, with 1000 as
		// apache-websocket does (RFC 6455 §5.5.1 allows it), before the
		// handler's passive_closing_handshake runs.
		c, _ := mustDial(t, d.URL("/ws/close"), nil)
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"))
		expectClose(t, c, websocket.CloseNormalClosure, "")
	})
	t.Run("origin checked by the handler", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/origin_check"), http.Header{"Origin": {"http://example.com"}})
		expect(t, c, websocket.TextMessage, "origin ok: http://example.com")
		if got := status("/ws/origin_check", "Origin: http://evil.example"); got != http.StatusForbidden {
			t.Errorf("another origin: %d, want 403", got)
		}
	})
	t.Run("abort in do_extra_handshake", func(t *testing.T) {
		if got := status("/ws/abort_handshake"); got != http.StatusForbidden {
			t.Errorf("%d, want 403", got)
		}
	})
	t.Run("cookie through headers_in and extra_headers", func(t *testing.T) {
		c, resp := mustDial(t, d.URL("/ws/cookie"), http.Header{"Cookie": {"session=abc"}})
		if got := resp.Header.Get("Set-Cookie"); got != "ws_seen=session=abc; Path=/" {
			t.Errorf("Set-Cookie %q", got)
		}
		c.WriteMessage(websocket.TextMessage, []byte("cookie"))
		expect(t, c, websocket.TextMessage, "session=abc")
	})
	t.Run("two cookies cleared through extra_headers", func(t *testing.T) {
		// Both Set-Cookie headers reach the 101, in the handler's order:
		// they cannot be joined into one, and the last must not win.
		c, resp := mustDial(t, d.URL("/ws/logout"), nil)
		want := []string{"session=; Max-Age=0; Path=/", "remember_me=; Max-Age=0; Path=/"}
		if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, want) {
			t.Errorf("Set-Cookie %q, want %q", got, want)
		}
		if got := resp.Header.Get("X-Logged-Out"); got != "yes" {
			t.Errorf("X-Logged-Out %q", got)
		}
		expect(t, c, websocket.TextMessage, "bye")
	})
	t.Run("subprotocol chosen by the handler", func(t *testing.T) {
		c, resp := mustDial(t, d.URL("/ws/subprotocol"), nil, "chat.v1", "chat.v2")
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat.v2" {
			t.Errorf("selected %q", got)
		}
		expect(t, c, websocket.TextMessage, "protocol: chat.v2")
		c2, _ := mustDial(t, d.URL("/ws/subprotocol"), nil)
		expect(t, c2, websocket.TextMessage, "protocol: None")
		// A handler that does not choose, when the client offered some.
		if got := status("/ws/noprotocol", "Sec-WebSocket-Protocol: a, b"); got != http.StatusBadRequest {
			t.Errorf("no choice: %d, want 400", got)
		}
	})
	t.Run("internal error gives 1011", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/internal_error"), nil)
		expectClose(t, c, websocket.CloseInternalServerErr, "*")
		c2, _ := mustDial(t, d.URL("/ws/crash"), nil)
		c2.WriteMessage(websocket.TextMessage, []byte("x"))
		expectClose(t, c2, websocket.CloseInternalServerErr, "*")
		if !testserver.WaitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), "KeyError") }) {
			t.Error("the crash's traceback is not in the runner's log")
		}
	})
	t.Run("fragmented sends arrive as one message", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/fragments"), nil)
		c.WriteMessage(websocket.TextMessage, []byte("abcdefghi"))
		expect(t, c, websocket.TextMessage, "abcdefghi")
		c.WriteMessage(websocket.BinaryMessage, []byte{9, 8, 7})
		expect(t, c, websocket.BinaryMessage, "\x09\x08\x07")
	})
	t.Run("MessageReceiver and MessageSender", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/threads"), nil)
		for _, m := range []string{"one", "two", "three"} {
			c.WriteMessage(websocket.TextMessage, []byte(m))
			expect(t, c, websocket.TextMessage, strings.ToUpper(m))
		}
	})
	t.Run("subdirectory resource and request attributes", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/sub/info?x=1"), http.Header{"Origin": {"http://o.example"}})
		expect(t, c, websocket.TextMessage, "/ws/sub/info?x=1 http://o.example 13")
	})
	t.Run("map file alias", func(t *testing.T) {
		c, _ := mustDial(t, d.URL("/ws/echo-alias"), nil)
		c.WriteMessage(websocket.TextMessage, []byte("via alias"))
		expect(t, c, websocket.TextMessage, "via alias")
		// An alias of a resource that does not exist is not added.
		if got := status("/ws/bad-alias"); got != http.StatusNotFound {
			t.Errorf("bad alias: %d, want 404", got)
		}
		if !strings.Contains(logs.String(), "No handler for: '/ws/does-not-exist'") {
			t.Error("the bad alias is not in the runner's log")
		}
	})
	t.Run("unknown resource, fragment, broken handler", func(t *testing.T) {
		if got := status("/ws/nothing-here"); got != http.StatusNotFound {
			t.Errorf("unknown: %d, want 404", got)
		}
		if got := status("/ws/echo#frag"); got != http.StatusBadRequest {
			t.Errorf("fragment: %d, want 400", got)
		}
		// broken_wsh.py does not compile: skipped with the reason logged.
		if got := status("/ws/broken"); got != http.StatusNotFound {
			t.Errorf("broken: %d, want 404", got)
		}
		if !strings.Contains(logs.String(), "broken_wsh.py: SyntaxError") {
			t.Errorf("the broken handler's reason is not logged:\n%s", logs)
		}
	})
}

// TestPywebsocket3Handlers: handlers written for pywebsocket3, the
// maintained fork, import its modules under that name. They run as
// mod_pywebsocket's do, with the SDK alone and with a pywebsocket3 of
// their own ahead of the SDK on the path (installed from PyPI next to
// it), whose exception classes the runner maps by name.
func TestPywebsocket3Handlers(t *testing.T) {
	real, _ := filepath.Abs("testdata/pywebsocket3")
	for name, ahead := range map[string]string{"sdk": "", "real package ahead": real} {
		t.Run(name, func(t *testing.T) {
			d, logs := startWith(t, ahead)
			// The runner logs what it serves as it starts; the line may come
			// after its socket is up.
			if !testserver.WaitFor(10*time.Second, func() bool { return strings.Contains(logs.String(), "/ws/v3/echo, /ws/v3/refuse") }) {
				t.Fatalf("a pywebsocket3 handler was skipped:\n%s", logs)
			}
			c, _ := mustDial(t, d.URL("/ws/v3/echo"), nil)
			c.WriteMessage(websocket.TextMessage, []byte("hello"))
			expect(t, c, websocket.TextMessage, "hello")
			c.WriteMessage(websocket.TextMessage, []byte("addr"))
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(p))
			host, port, _ := strings.Cut(strings.TrimPrefix(d.URL(""), "ws://"), ":")
			if len(f) != 4 || f[0] != "127.0.0.1" || f[1] == "0" || f[2] != host || f[3] != strings.TrimSuffix(port, "/") {
				t.Errorf("remote_addr and get_local_addr(): %q, want 127.0.0.1 <port> %s %s", p, host, port)
			}
			// AbortedByUserException ends the connection without a close
			// code; never 1011 with a traceback.
			c.WriteMessage(websocket.TextMessage, []byte("abort"))
			_, _, err = c.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.CloseInternalServerErr {
				t.Errorf("abort closed with 1011")
			}
			c2, _ := mustDial(t, d.URL("/ws/v3/echo"), nil)
			c2.WriteMessage(websocket.TextMessage, []byte("bad-utf8"))
			expectClose(t, c2, websocket.CloseInvalidFramePayloadData, "")
			c3, _ := mustDial(t, d.URL("/ws/v3/echo"), nil)
			c3.WriteMessage(websocket.TextMessage, []byte("raw-write"))
			expectClose(t, c3, websocket.CloseInternalServerErr, "*")
			if got := handshakeStatus(t, d, "/ws/v3/refuse"); got != http.StatusForbidden {
				t.Errorf("aborted in the handshake: %d, want 403", got)
			}
			if got := handshakeStatus(t, d, "/ws/v3/echo", "X-Deny: 1"); got != http.StatusForbidden {
				t.Errorf("HandshakeException(403): %d", got)
			}
			if !testserver.WaitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), "raw socket stays in wsgate") }) {
				t.Errorf("the raw write's error is not in the log:\n%s", logs)
			}
			if n := strings.Count(logs.String(), "Traceback"); n != 1 {
				t.Errorf("%d tracebacks in the log, want 1 (the raw write's):\n%s", n, logs)
			}
		})
	}
}
