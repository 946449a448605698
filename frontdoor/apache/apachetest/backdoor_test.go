package apachetest

import (
	"errors"
	"net/http"
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

// producer runs the echo example producer on dir/name.
func producer(t *testing.T, dir, name string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(build, "echo-producer"), "-R", dir, "-n", name)
	testserver.RunProducer(t, cmd, filepath.Join(dir, name))
	return cmd
}

func dialOK(t *testing.T, url string, h http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, EnableCompression: true}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("%s: %v %v", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

func roundTrip(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	c.WriteMessage(websocket.TextMessage, []byte(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := c.ReadMessage()
	if err != nil || string(got) != msg {
		t.Fatalf("sent %q, got %q %v", msg, got, err)
	}
}

// TestBackDoorDirectives: wsgate's directives for producers behind UNIX
// sockets, per-connection programs, permessage-deflate and timers work
// inside httpd as their YAML equivalents do in the daemon.
func TestBackDoorDirectives(t *testing.T) {
	// The docroot must exist when httpd reads its configuration: the
	// engine checks it then, as the daemon does (wsgate check).
	h := start(t, options{Files: map[string]string{"run/.keep": ""}, Body: `
<Location /mux>
  SetHandler websocket-handler
  WebSocketBackend {{ROOT}}/run/echo
</Location>
<Location /per-client>
  SetHandler websocket-handler
  WebSocketBackend unix:{{ROOT}}/run/echo per-client
</Location>
<Location /victim>
  SetHandler websocket-handler
  WebSocketBackend {{ROOT}}/run/victim
</Location>
<Location /dir>
  SetHandler websocket-handler
  WebSocketDocroot {{ROOT}}/run
  WebSocketDeny *
  WebSocketAllow echo
</Location>
<Location /cat>
  SetHandler websocket-handler
  WebSocketProgram cat
</Location>
<Location /env>
  SetHandler websocket-handler
  WebSocketProgram sh -c 'echo "$QUERY_STRING|$HTTP_X_TEST"; cat'
</Location>
<Location /deflate>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketDeflate On
</Location>
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
<Location /idle>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketIdleTimeout 200ms
</Location>
<Location /keepalive>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketKeepalive 50ms
</Location>
`})
	run := filepath.Join(h.root, "run")
	producer(t, run, "echo")
	producer(t, run, "other")
	victim := producer(t, run, "victim")
	base := "ws://" + h.Addr()

	t.Run("backend", func(t *testing.T) {
		for _, p := range []string{"/mux", "/per-client"} {
			c, _ := dialOK(t, base+p, nil)
			roundTrip(t, c, "through "+p)
		}
	})
	t.Run("docroot", func(t *testing.T) {
		c, _ := dialOK(t, base+"/dir/echo", nil)
		roundTrip(t, c, "through the docroot")
		for path, want := range map[string]int{"/dir/other": 403, "/dir/missing": 403, "/dir/../run/echo": 404} {
			if got := ws.Status(base + path); got != want {
				t.Errorf("%s: %d, want %d", path, got, want)
			}
		}
	})
	t.Run("program", func(t *testing.T) {
		c, _ := dialOK(t, base+"/cat", nil)
		roundTrip(t, c, "through cat")
		c, _ = dialOK(t, base+"/env?q=1", http.Header{"X-Test": {"header"}})
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, got, err := c.ReadMessage(); err != nil || string(got) != "q=1|header" {
			t.Fatalf("CGI environment: %q %v", got, err)
		}
	})
	t.Run("deflate", func(t *testing.T) {
		c, resp := dialOK(t, base+"/deflate", nil)
		if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			t.Fatalf("extensions %q", resp.Header.Get("Sec-WebSocket-Extensions"))
		}
		roundTrip(t, c, strings.Repeat("compressible ", 1000))
		// Not offered where the directive is absent.
		_, resp = dialOK(t, base+"/echo", nil)
		if resp.Header.Get("Sec-WebSocket-Extensions") != "" {
			t.Fatalf("extensions on /echo: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		c, err := ws.Upgrade(h.Addr(), "/idle", "Host: "+h.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if cl, _, err := c.ReadUntilClose(); err != nil || cl.Code() != 1001 {
			t.Fatalf("%v %v", cl, err)
		}
	})
	t.Run("keepalive", func(t *testing.T) {
		c, err := ws.Upgrade(h.Addr(), "/keepalive", "Host: "+h.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			fr, err := c.ReadFrame()
			if err != nil || fr.Op != ws.OpPing {
				t.Fatalf("%v %v", fr, err)
			}
			c.Write(ws.Pong(fr.Payload))
		}
		// Unanswered, the pings end the connection.
		if cl, _, err := c.ReadUntilClose(); err != nil || cl.Code() != 1001 {
			t.Fatalf("%v %v", cl, err)
		}
	})
	// Last: the victim producer dies with a client mid-stream. The client
	// closes with 1012 (Service Restart), new clients get 503, and everything else in the
	// same httpd child keeps serving.
	t.Run("dead producer", func(t *testing.T) {
		c, _ := dialOK(t, base+"/victim", nil)
		roundTrip(t, c, "before")
		other, _ := dialOK(t, base+"/mux", nil)
		victim.Process.Signal(syscall.SIGKILL)
		victim.Wait()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 1012 {
			t.Fatalf("%v, want close 1012", err)
		}
		if got := ws.Status(base + "/victim"); got != 503 {
			t.Fatalf("while the producer is dead: %d, want 503", got)
		}
		roundTrip(t, other, "still here")
	})
}
