package apachetest

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// TestBehindHttpdProxy is the other Apache deployment: the standalone
// daemon behind httpd's mod_proxy_http (upgrade=websocket), over TCP and
// over a UNIX socket, with httpd terminating TLS. It checks what the
// README tells administrators to configure: trusted_proxies so that the
// same-origin check sees the origin the browser used (mod_proxy sends
// X-Forwarded-Host, RequestHeader adds X-Forwarded-Proto), and a
// keepalive_interval shorter than Timeout and ProxyTimeout so that quiet WebSockets
// are not cut by the proxy.
func TestBehindHttpdProxy(t *testing.T) {
	need(t)
	dir, err := os.MkdirTemp("", "wsgate-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "wsgate.sock")
	d := testserver.Start(t, fmt.Sprintf(`
listen:
  - address: 127.0.0.1:0
  - unix: %s
    mode: "0666"
server: {max_connections_per_ip: 3}
routes:
  - {path: /echo, app: echo, trusted_proxies: [127.0.0.1, unix], keepalive_interval: 300ms}
  - {path: /quiet, app: echo, trusted_proxies: [127.0.0.1]}
  - {path: /untrusting, app: echo}
`, sock))
	h := start(t, options{TLS: true, Modules: []string{"proxy", "proxy_http", "headers"}, Body: fmt.Sprintf(`
Timeout 1
ProxyTimeout 1
RequestHeader set X-Forwarded-Proto expr=%%{REQUEST_SCHEME}
ProxyPass /unix/echo "unix:%[2]s|http://localhost/echo" upgrade=websocket
ProxyPass / http://%[1]s/ upgrade=websocket
`, d.Addr, sock)})
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{RootCAs: h.Pool}}
	dial := func(url, origin string) (*websocket.Conn, int, error) {
		hd := http.Header{}
		if origin != "" {
			hd.Set("Origin", origin)
		}
		c, resp, err := dialer.Dial(url, hd)
		if resp != nil {
			return c, resp.StatusCode, err
		}
		return c, 0, err
	}
	plain, secure := "http://"+h.Addr(), "https://"+h.TLSAddr()
	for _, tc := range []struct {
		name, url, origin string
		want              int
	}{
		{"ws, browser origin", "ws://" + h.Addr() + "/echo", plain, 101},
		{"wss, browser origin", "wss://" + h.TLSAddr() + "/echo", secure, 101},
		{"UNIX socket, browser origin", "ws://" + h.Addr() + "/unix/echo", plain, 101},
		{"wss with the http origin", "wss://" + h.TLSAddr() + "/echo", "http://" + h.TLSAddr(), 403},
		{"other origin", "ws://" + h.Addr() + "/echo", "http://evil.example", 403},
		{"no origin", "ws://" + h.Addr() + "/echo", "", 101},
		// Without trusted_proxies the daemon sees its own address as the
		// origin, so the browser's is refused: the reason for the key.
		{"proxy not trusted", "ws://" + h.Addr() + "/untrusting", plain, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, status, err := dial(tc.url, tc.origin)
			if status != tc.want {
				t.Fatalf("status %d (%v), want %d", status, err, tc.want)
			}
			if c == nil {
				return
			}
			defer c.Close()
			roundTrip(t, c, "through httpd")
		})
	}

	// A client that names itself in Forwarded and X-Forwarded-For: httpd
	// passes the first on and appends its peer's address to the second;
	// the daemon takes the client from X-Forwarded-For only (the header
	// httpd writes), from the right, so every one of these is 127.0.0.2,
	// whatever it claims, and its fourth WebSocket is over the limit.
	t.Run("forged client headers", func(t *testing.T) {
		from2 := websocket.Dialer{HandshakeTimeout: 10 * time.Second,
			NetDial: func(network, addr string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
				return d.Dial(network, addr)
			}}
		var held []*websocket.Conn
		for i := range 4 {
			hd := http.Header{"Forwarded": {fmt.Sprintf("for=10.0.%d.1", i)}, "X-Forwarded-For": {fmt.Sprintf("10.1.%d.1", i)}}
			c, resp, err := from2.Dial("ws://"+h.Addr()+"/echo", hd)
			if i < 3 {
				if err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				held = append(held, c)
				continue
			}
			if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("a fourth WebSocket from 127.0.0.2 with forged headers: %v %v, want 503", resp, err)
			}
		}
		for _, c := range held {
			c.Close()
		}
		if !testserver.WaitFor(10*time.Second, func() bool { return d.Logs.Count("client=127.0.0.2") >= 4 }) {
			t.Errorf("the access log does not name 127.0.0.2 for every client:\n%s", testserver.Grep(d.Logs.String(), "log=access"))
		}
		for _, forged := range []string{"client=10.0.", "client=10.1."} {
			if n := d.Logs.Count(forged); n > 0 {
				t.Errorf("the access log names a forged client %d times", n)
			}
		}
	})

	// A tunnel's idle limit is the larger of Timeout and ProxyTimeout,
	// both 1s here. /echo pings every 300ms, and the client's pongs
	// keep the tunnel busy; /quiet has no keepalive and is cut.
	t.Run("keepalive beats ProxyTimeout", func(t *testing.T) {
		alive, _, err := dial("ws://"+h.Addr()+"/echo", "")
		if err != nil {
			t.Fatal(err)
		}
		defer alive.Close()
		quiet, _, err := dial("ws://"+h.Addr()+"/quiet", "")
		if err != nil {
			t.Fatal(err)
		}
		defer quiet.Close()
		got := make(chan string, 1)
		go func() { // gorilla answers pings while it reads
			alive.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, p, err := alive.ReadMessage()
			got <- fmt.Sprintf("%s %v", p, err)
		}()
		quiet.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, _, err := quiet.ReadMessage(); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("quiet connection: %v, want it cut by the proxy", err)
		}
		// The quiet one has been cut after ProxyTimeout; the other,
		// idle as long, still works.
		alive.WriteMessage(websocket.TextMessage, []byte("still here"))
		if s := <-got; s != "still here <nil>" {
			t.Fatalf("kept-alive connection: %s", s)
		}
	})
}
