package program_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

const routes = `
listen: [{address: 127.0.0.1:0}]
routes:
  - path: /cat
    program: {command: [cat]}
  - path: /bin
    program: {command: [cat], mode: binary}
  - path: /env/
    program:
      command: [sh, -c, 'echo "$QUERY_STRING|$REMOTE_ADDR|$HTTP_X_TEST|$SCRIPT_NAME|$PATH_INFO|$WEBSOCKET_PROTOCOLS|$MY_VAR"; cat']
      env: {MY_VAR: configured}
  - path: /limited
    program: {command: [cat], max_processes: 2}
  - path: /bye
    program: {command: [sh, -c, 'echo bye; exit 0']}
  - path: /fail
    program: {command: [sh, -c, 'echo oops >&2; exit 3']}
  - path: /grandchild
    program: {command: [sh, -c, 'sleep 1000 & echo $!; wait'], kill_grace: 200ms}
  - path: /long
    max_message_size: 16
    program: {command: [sh, -c, 'echo 0123456789abcdefghij; cat']}
`

func dial(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("%v %v", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn) (int, string, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, p, err := c.ReadMessage()
	return typ, string(p), err
}

func TestProgram(t *testing.T) {
	gw := testserver.Start(t, routes)
	t.Run("line mode", func(t *testing.T) {
		c := dial(t, gw.URL("/cat"), nil)
		for _, m := range []string{"hello", "κόσμε", ""} {
			c.WriteMessage(websocket.TextMessage, []byte(m))
			if typ, got, err := read(t, c); err != nil || typ != websocket.TextMessage || got != m {
				t.Fatalf("%q: %d %q %v", m, typ, got, err)
			}
		}
	})
	t.Run("binary mode", func(t *testing.T) {
		c := dial(t, gw.URL("/bin"), nil)
		p := []byte{0, 10, 255, 13}
		c.WriteMessage(websocket.BinaryMessage, p)
		var got []byte
		for len(got) < len(p) {
			typ, chunk, err := read(t, c)
			if err != nil || typ != websocket.BinaryMessage {
				t.Fatal(err)
			}
			got = append(got, chunk...)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("%x", got)
		}
	})
	t.Run("environment", func(t *testing.T) {
		d := websocket.Dialer{Subprotocols: []string{"a", "b"}}
		c, _, err := d.Dial(gw.URL("/env/x/y?q=1"), http.Header{"X-Test": {"hdr"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, got, err := read(t, c)
		if err != nil || got != "q=1|127.0.0.1|hdr|/env|/x/y|a,b|configured" {
			t.Fatalf("%q %v", got, err)
		}
	})
	t.Run("process limit", func(t *testing.T) {
		a, b := dial(t, gw.URL("/limited"), nil), dial(t, gw.URL("/limited"), nil)
		_, resp, err := websocket.DefaultDialer.Dial(gw.URL("/limited"), nil)
		if err == nil || resp.StatusCode != 503 {
			t.Fatalf("third process: %v %v", resp, err)
		}
		a.Close()
		if !testserver.WaitFor(3*time.Second, func() bool {
			c, _, err := websocket.DefaultDialer.Dial(gw.URL("/limited"), nil)
			if err == nil {
				c.Close()
			}
			return err == nil
		}) {
			t.Fatal("no room after a client left")
		}
		b.Close()
	})
	t.Run("exit 0 closes with 1000", func(t *testing.T) {
		c := dial(t, gw.URL("/bye"), nil)
		if _, got, err := read(t, c); err != nil || got != "bye" {
			t.Fatalf("%q %v", got, err)
		}
		if _, _, err := read(t, c); !websocket.IsCloseError(err, 1000) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("failure closes with 1011 and stderr is logged", func(t *testing.T) {
		c := dial(t, gw.URL("/fail"), nil)
		if _, _, err := read(t, c); !websocket.IsCloseError(err, 1011) {
			t.Fatalf("%v", err)
		}
		if !testserver.WaitFor(2*time.Second, func() bool { return strings.Contains(gw.Logs.String(), "line=oops") }) {
			t.Fatal("stderr not logged")
		}
	})
	t.Run("process group killed when the client goes", func(t *testing.T) {
		c := dial(t, gw.URL("/grandchild"), nil)
		_, got, err := read(t, c)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(got))
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			t.Fatalf("grandchild %q not running", got)
		}
		c.Close()
		if !testserver.WaitFor(5*time.Second, func() bool { return gone(pid) }) {
			t.Fatalf("grandchild %d still running after the client left", pid)
		}
	})
	t.Run("line over the size limit", func(t *testing.T) {
		c := dial(t, gw.URL("/long"), nil)
		if _, _, err := read(t, c); !websocket.IsCloseError(err, 1009) {
			t.Fatalf("%v", err)
		}
	})
}

func TestMissingProgram(t *testing.T) {
	_, err := testserverStartErr(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /x, program: {command: [/nonexistent/program]}}
`)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/program") {
		t.Fatalf("%v", err)
	}
}

// gone reports whether pid has exited: no such process, or a zombie
// waiting for whoever adopted it to reap it.
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}
