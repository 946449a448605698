package conformance

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The plugin cases run the C plugins of apps/cplugin/examples through a base URL
// (ws://host:port) under which /echo, /increment and /debug are the echo,
// dumb_increment and debug plugins. The daemon's tests and mod_wsgate's
// run the same cases, so the plugin ABI behaves the same in both forms.

func dialPlugin(t testing.TB, url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("%s: %v %v", url, err, resp)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.Close() })
	return c, resp
}

func readText(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

// PluginEcho: messages of every length class come back with their type.
func PluginEcho(t testing.TB, base string) {
	c, _ := dialPlugin(t, base+"/echo", nil)
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

// PluginDumbIncrement: the plugin refuses a client without its
// subprotocol (403), selects it otherwise, counts from a thread every
// 50 ms and resets on "reset\n".
func PluginDumbIncrement(t testing.TB, base string) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if _, resp, err := d.Dial(base+"/increment", nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("without the subprotocol: %v %v", resp, err)
	}
	c, _ := dialPlugin(t, base+"/increment", nil, "x", "dumb-increment-protocol")
	if c.Subprotocol() != "dumb-increment-protocol" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	start := time.Now()
	for i := range 5 {
		if got := readText(t, c); got != fmt.Sprint(i) {
			t.Fatalf("count %q, want %d", got, i)
		}
	}
	// Four 50 ms intervals at least; a lower bound cannot flake.
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("five counts in %v", el)
	}
	c.WriteMessage(websocket.TextMessage, []byte("reset\n"))
	for range 3 {
		if readText(t, c) == "0" {
			return
		}
	}
	t.Fatal("no reset")
}

// PluginDebug exercises the server structure: refusal, subprotocol
// choice, response headers, header_get, version, protocol_count, the
// request pointer (hasRequest: the daemon has no request_rec, httpd does),
// ping, and close() with no status.
func PluginDebug(t testing.TB, base string, hasRequest bool) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if _, resp, err := d.Dial(base+"/debug", http.Header{"X-Refuse-Connection": {"1"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("refusal: %v %v", resp, err)
	}
	c, resp := dialPlugin(t, base+"/debug", http.Header{"X-Choose-Subprotocol": {"1"}, "X-Test": {"value"}}, "first", "second")
	if c.Subprotocol() != "second" || resp.Header.Get("X-Debug-Header") != "true" {
		t.Fatalf("subprotocol %q, X-Debug-Header %q", c.Subprotocol(), resp.Header.Get("X-Debug-Header"))
	}
	request := "no"
	if hasRequest {
		request = "yes"
	}
	for _, tc := range []struct{ cmd, want string }{
		{"header: X-Test", "value"}, {"header: x-test", "value"}, {"header: X-Absent", "<null>"},
		{"version", "1"}, {"proto-count", "2"}, {"request", request}, {"anything", "anything"},
	} {
		c.WriteMessage(websocket.TextMessage, []byte(tc.cmd))
		if got := readText(t, c); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	// send returns the number of bytes it queued.
	c.WriteMessage(websocket.TextMessage, []byte("sent: twelve bytes"))
	if got, n := readText(t, c), readText(t, c); got != "twelve bytes" || n != "12" {
		t.Errorf("send: %q, returned %s", got, n)
	}
	pinged := make(chan string, 1)
	c.SetPingHandler(func(s string) error { pinged <- s; return nil })
	c.WriteMessage(websocket.TextMessage, []byte("ping"))
	if got := readText(t, c); got != "pinged" || <-pinged != "hi" {
		t.Fatalf("ping: %q", got)
	}
	c.WriteMessage(websocket.TextMessage, []byte("close"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNoStatusReceived {
		t.Fatalf("close(): %v, want 1005", err)
	}
}

// PluginThreads: ten plugin threads send a thousand messages each while
// the connection reads; every message arrives, each thread's in order,
// then the close the last thread sends.
func PluginThreads(t testing.TB, base string) {
	c, _ := dialPlugin(t, base+"/debug", nil)
	c.WriteMessage(websocket.TextMessage, []byte("threads 10 1000"))
	ThreadMessages(t, c, 10, 1000)
}

// ThreadMessages reads what threads plugin threads send on c, each
// counting down from each as "THREAD: N", checking every thread's order,
// and then the 1000 close the last thread sends.
func ThreadMessages(t testing.TB, c *websocket.Conn, threads, each int) {
	t.Helper()
	next := make([]int, threads)
	for i := range next {
		next[i] = each
	}
	for range threads * each {
		var th, m int
		if _, err := fmt.Sscanf(readText(t, c), "%d: %d", &th, &m); err != nil {
			t.Fatal(err)
		}
		if th < 0 || th >= len(next) || m != next[th] {
			t.Fatalf("thread %d sent %d, want %d", th, m, next[th])
		}
		next[th]--
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, 1000) {
		t.Fatalf("after the threads: %v, want the last thread's 1000", err)
	}
}

// LoaderErrors are the init functions of debug.c that a loader must
// refuse, with the message apache-websocket gives for each.
func LoaderErrors(debugLib string) map[string]string {
	return map[string]string{
		"missing_init":    `Could not find initialization function "missing_init" for WebSocketHandler ` + debugLib,
		"null_init":       "Invalid response from WebSocketHandler initialization function null_init (returned NULL)",
		"no_message_init": "Invalid response from WebSocketHandler initialization function no_message_init (on_message handler is NULL)",
		"version_init":    "Invalid response from WebSocketHandler initialization function version_init (unsupported plugin version 7)",
	}
}
