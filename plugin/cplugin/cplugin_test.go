package cplugin_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/testserver"
	"github.com/wsgate/wsgate/server"
)

var libs = map[string]string{}

// TestMain builds the example and test plugins with the system's C
// compiler, warnings as errors.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugins")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"echo", "dumb_increment", "debug"} {
		libs[name] = filepath.Join(dir, name+".so")
		cmd := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread", "-I../../apache",
			"-o", libs[name], "../../apache/examples/"+name+".c")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func start(t *testing.T) *testserver.Server {
	return testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, plugin: {library: %s, init: echo_init}}
  - {path: /increment, plugin: {library: %s, init: dumb_increment_init}}
  - {path: /debug, plugin: {library: %s, init: debug_init}}
`, libs["echo"], libs["dumb_increment"], libs["debug"]))
}

func dial(t *testing.T, url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("%v %v", err, resp)
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

func TestEchoPlugin(t *testing.T) {
	gw := start(t)
	c, _ := dial(t, gw.URL("/echo"), nil)
	for _, n := range []int{0, 1, 125, 65536, 1 << 20} {
		for _, typ := range []int{websocket.TextMessage, websocket.BinaryMessage} {
			p := []byte(strings.Repeat("e", n))
			c.WriteMessage(typ, p)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			gt, got, err := c.ReadMessage()
			if err != nil || gt != typ || string(got) != string(p) {
				t.Fatalf("%d bytes type %d: %d %d %v", n, typ, gt, len(got), err)
			}
		}
	}
}

func TestDumbIncrementPlugin(t *testing.T) {
	gw := start(t)
	if _, resp, err := websocket.DefaultDialer.Dial(gw.URL("/increment"), nil); err == nil || resp.StatusCode != 403 {
		t.Fatalf("without the subprotocol: %v %v", resp, err)
	}
	c, _ := dial(t, gw.URL("/increment"), nil, "x", "dumb-increment-protocol")
	if c.Subprotocol() != "dumb-increment-protocol" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	start := time.Now()
	for i := range 5 {
		if got := read(t, c); got != fmt.Sprint(i) {
			t.Fatalf("count %q, want %d", got, i)
		}
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("five counts in %v", el)
	}
	c.WriteMessage(websocket.TextMessage, []byte("reset\n"))
	for range 3 {
		if read(t, c) == "0" {
			return
		}
	}
	t.Fatal("no reset")
}

func TestDebugPlugin(t *testing.T) {
	gw := start(t)
	if _, resp, err := websocket.DefaultDialer.Dial(gw.URL("/debug"), http.Header{"X-Refuse-Connection": {"1"}}); err == nil || resp.StatusCode != 403 {
		t.Fatalf("refusal: %v %v", resp, err)
	}
	c, resp := dial(t, gw.URL("/debug"), http.Header{"X-Choose-Subprotocol": {"1"}, "X-Test": {"value"}}, "first", "second")
	if c.Subprotocol() != "second" || resp.Header.Get("X-Debug-Header") != "true" {
		t.Fatalf("subprotocol %q, X-Debug-Header %q", c.Subprotocol(), resp.Header.Get("X-Debug-Header"))
	}
	for cmd, want := range map[string]string{
		"header: X-Test": "value", "header: X-Absent": "<null>", "version": "1", "proto-count": "2", "request": "no",
	} {
		c.WriteMessage(websocket.TextMessage, []byte(cmd))
		if got := read(t, c); got != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
	pinged := make(chan string, 1)
	c.SetPingHandler(func(s string) error { pinged <- s; return nil })
	c.WriteMessage(websocket.TextMessage, []byte("ping"))
	if got := read(t, c); got != "pinged" || <-pinged != "hi" {
		t.Fatalf("ping: %q", got)
	}
	c.WriteMessage(websocket.TextMessage, []byte("close"))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNoStatusReceived {
		t.Fatalf("close(): %v, want 1005", err)
	}
}

// TestSendFromThreads: ten plugin threads send a thousand messages each
// while the connection reads; every message arrives, each thread's in
// order, then the close the last thread sends.
func TestSendFromThreads(t *testing.T) {
	gw := start(t)
	c, _ := dial(t, gw.URL("/debug"), nil)
	c.WriteMessage(websocket.TextMessage, []byte("threads 10 1000"))
	next := make([]int, 10)
	for i := range next {
		next[i] = 1000
	}
	for range 10000 {
		var th, m int
		if _, err := fmt.Sscanf(read(t, c), "%d: %d", &th, &m); err != nil {
			t.Fatal(err)
		}
		if m != next[th] {
			t.Fatalf("thread %d sent %d after %d", th, m, next[th]+1)
		}
		next[th]--
	}
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, 1000) {
		t.Fatalf("after the threads: %v", err)
	}
}

func TestLoaderErrors(t *testing.T) {
	for init, want := range map[string]string{
		"missing_init":    `Could not find initialization function "missing_init" for WebSocketHandler ` + libs["debug"],
		"null_init":       "Invalid response from WebSocketHandler initialization function null_init (returned NULL)",
		"no_message_init": "Invalid response from WebSocketHandler initialization function no_message_init (on_message handler is NULL)",
		"version_init":    "Invalid response from WebSocketHandler initialization function version_init (unsupported plugin version 7)",
	} {
		cfg, err := config.Parse("p.yaml", []byte(fmt.Sprintf("routes:\n  - path: /x\n    plugin: {library: %s, init: %s}\n", libs["debug"], init)))
		if err == nil {
			_, err = server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "p.yaml:2: plugin") {
			t.Errorf("%s: %v", init, err)
		}
	}
	cfg, _ := config.Parse("p.yaml", []byte("routes:\n  - path: /x\n    plugin: {library: /nonexistent.so, init: x}\n"))
	if _, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "Could not load WebSocketHandler /nonexistent.so") {
		t.Errorf("missing library: %v", err)
	}
}
