package apachetest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/apps/cplugin"
	"github.com/wsgate/wsgate/testkit/conformance"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// The drop-in tests take a configuration written for apache-websocket, as
// its README writes one, and plugins written as its examples and tests
// are (APR pools and threads, the request_rec), built with apxs against
// wsgate's websocket_plugin.h. The configuration runs with only the
// LoadModule line's path changed; the same .so files then run in the
// daemon.

// apacheWebsocketConf is apache-websocket's configuration style:
// LoadModule under its own module name, <IfModule mod_websocket.c>, and
// LogLevel for its module. PLUGINS is the directory of the built plugins.
const apacheWebsocketConf = `
LoadModule websocket_module {{BUILD}}/mod_wsgate.so
`

const apacheWebsocketBody = `
LogLevel websocket:debug
<IfModule mod_websocket.c>
  <Location /echo>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
  </Location>
  <Location /increment>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_dumb_increment.so dumb_increment_init
  </Location>
  <Location /request>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_request.so request_init
  </Location>
  <Location /threads>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_threads.so threads_init
  </Location>
  <Location /no-plugin>
    SetHandler websocket-handler
  </Location>
  <Location /same>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
    WebSocketOriginCheck Same
  </Location>
  <Location /trusted>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
    WebSocketOriginCheck Trusted
    WebSocketTrustedOrigin https://app.example
  </Location>
  <Location /off>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
    WebSocketOriginCheck Off
  </Location>
  <Location /old-max>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
    MaxMessageSize 64
  </Location>
  <Location /max>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
    WebSocketMaxMessageSize 32
  </Location>
  <Location /reserved>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
    WebSocketAllowReservedStatusCodes On
  </Location>
</IfModule>
<IfModule websocket_module>
  <Location /echo-too>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
  </Location>
</IfModule>
<IfModule !mod_websocket.c>
  <Location /not-loaded>
    SetHandler websocket-handler
    WebSocketHandler PLUGINS/mod_websocket_echo.so echo_init
  </Location>
</IfModule>
`

// The same routes in the daemon's configuration; the plugin-less
// location is a configuration error there, so it has no route.
const apacheWebsocketDaemon = `
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}}
  - {path: /increment, plugin: {library: PLUGINS/mod_websocket_dumb_increment.so, init: dumb_increment_init}}
  - {path: /request, plugin: {library: PLUGINS/mod_websocket_request.so, init: request_init}}
  - {path: /threads, plugin: {library: PLUGINS/mod_websocket_threads.so, init: threads_init}}
  - {path: /same, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}, origin_check: same}
  - {path: /trusted, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}, origin_check: trusted, trusted_origins: [https://app.example]}
  - {path: /off, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}, origin_check: "off"}
  - {path: /old-max, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}, max_message_size: 64}
  - {path: /max, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}, max_message_size: 32}
  - {path: /reserved, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}, allow_reserved_status_codes: true}
  - {path: /echo-too, plugin: {library: PLUGINS/mod_websocket_echo.so, init: echo_init}}
`

var (
	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
)

// aprPlugins builds testdata/apache-websocket/*.c with apxs, as
// apache-websocket's users build plugins, once per test binary: both forms
// load the same files.
func aprPlugins(t *testing.T) string {
	t.Helper()
	need(t)
	pluginsOnce.Do(func() {
		pluginsDir, pluginsErr = os.MkdirTemp("", "apache-websocket-plugins")
		if pluginsErr != nil {
			return
		}
		os.Chmod(pluginsDir, 0o755)
		include, _ := filepath.Abs("../../../apps/cplugin/include")
		srcs, _ := filepath.Glob("testdata/apache-websocket/*.c")
		for _, src := range srcs {
			name := filepath.Base(src)
			b, err := os.ReadFile(src)
			if err != nil {
				pluginsErr = err
				return
			}
			work := filepath.Join(pluginsDir, "build-"+strings.TrimSuffix(name, ".c"))
			os.MkdirAll(work, 0o755)
			os.WriteFile(filepath.Join(work, name), b, 0o644)
			cmd := exec.Command("apxs", "-c", "-Wc,-Wall", "-Wc,-Wextra", "-Wc,-Werror", "-I"+include, name)
			cmd.Dir = work
			if out, err := cmd.CombinedOutput(); err != nil {
				pluginsErr = fmt.Errorf("apxs -c %s: %v\n%s", name, err, out)
				return
			}
			so := strings.TrimSuffix(name, ".c") + ".so"
			b, err = os.ReadFile(filepath.Join(work, ".libs", so))
			if err != nil {
				pluginsErr = err
				return
			}
			if err := os.WriteFile(filepath.Join(pluginsDir, so), b, 0o755); err != nil {
				pluginsErr = err
				return
			}
		}
	})
	if pluginsErr != nil {
		t.Fatal(pluginsErr)
	}
	return pluginsDir
}

// TestApacheWebsocketDropIn: apache-websocket's configuration, with only
// the module's path changed, under event and prefork.
func TestApacheWebsocketDropIn(t *testing.T) {
	dir := aprPlugins(t)
	for _, mpm := range []string{"event", "prefork"} {
		t.Run(mpm, func(t *testing.T) {
			h := start(t, options{MPM: mpm, LoadModule: apacheWebsocketConf,
				Body: strings.ReplaceAll(apacheWebsocketBody, "PLUGINS", dir)})
			base := "ws://" + h.Addr()
			dropInCases(t, base)
			// <IfModule !mod_websocket.c> was skipped.
			if _, resp, err := dialWith(base+"/not-loaded", nil); err == nil || resp == nil || resp.StatusCode != 404 {
				t.Errorf("/not-loaded: %v %v, want 404", resp, err)
			}
			// A location with no plugin is a server error, as in
			// mod_websocket.
			if _, resp, err := dialWith(base+"/no-plugin", nil); err == nil || resp == nil || resp.StatusCode != 500 {
				t.Errorf("/no-plugin: %v %v, want 500", resp, err)
			}
			// LogLevel websocket:debug reaches the engine: its lines are
			// tagged with apache-websocket's module name.
			if !testserver.WaitFor(5*time.Second, func() bool { return strings.Contains(h.Log(), "[websocket:debug]") }) {
				t.Errorf("no [websocket:debug] line in the error log:\n%s", h.Log())
			}
			for _, want := range []string{"[websocket:debug]", "websocket opened", "[websocket:info]", "websocket closed"} {
				if !strings.Contains(h.Log(), want) {
					t.Errorf("the error log lacks %q:\n%s", want, h.Log())
				}
			}
		})
	}
}

// TestApacheWebsocketPluginsInDaemon: the same plugin files, byte for
// byte, in the standalone daemon.
func TestApacheWebsocketPluginsInDaemon(t *testing.T) {
	dir := aprPlugins(t)
	if !cplugin.RequestAvailable() {
		t.Fatal("the daemon was built without httpd's headers or cannot load APR; plugins that use them cannot run")
	}
	d := testserver.Start(t, strings.ReplaceAll(apacheWebsocketDaemon, "PLUGINS", dir))
	dropInCases(t, "ws://"+d.Addr)
}

func dialWith(url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if c != nil {
		c.SetReadLimit(-1)
	}
	return c, resp, err
}

func dropInCases(t *testing.T, base string) {
	host := strings.TrimPrefix(base, "ws://")
	t.Run("echo", func(t *testing.T) { pluginEcho(t, base+"/echo") })
	t.Run("IfModule websocket_module", func(t *testing.T) { pluginEcho(t, base+"/echo-too") })
	t.Run("dumb increment", func(t *testing.T) {
		if _, resp, err := dialWith(base+"/increment", nil); err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("without the subprotocol: %v %v, want 403", resp, err)
		}
		c, _, err := dialWith(base+"/increment", nil, "chat", "dumb-increment-protocol")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Subprotocol() != "dumb-increment-protocol" {
			t.Fatalf("subprotocol %q", c.Subprotocol())
		}
		for i := range 3 {
			if got := readString(t, c); got != fmt.Sprint(i) {
				t.Fatalf("count %q, want %d", got, i)
			}
		}
		c.WriteMessage(websocket.TextMessage, []byte("reset\n"))
		for range 5 {
			if readString(t, c) == "0" {
				return
			}
		}
		t.Fatal("no reset")
	})
	t.Run("request_rec", func(t *testing.T) {
		if _, resp, err := dialWith(base+"/request", nil); err == nil || resp == nil || resp.StatusCode != 403 {
			t.Fatalf("without X-Client-Token: %v %v, want 403", resp, err)
		}
		c, resp, err := dialWith(base+"/request?x=1&y=2", http.Header{"X-Client-Token": {"t0k"}, "X-Other": {"other value"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := resp.Header.Get("X-Token-Seen"); got != "t0k" {
			t.Errorf("X-Token-Seen %q: headers_out set in on_connect must reach the 101", got)
		}
		if got := resp.Header.Get("X-Request-Uri"); got != "/request" {
			t.Errorf("X-Request-Uri %q", got)
		}
		for _, tc := range []struct{ cmd, want string }{
			{"uri", "/request"},
			{"args", "x=1&y=2"},
			{"hostname", "127.0.0.1"},
			{"method", "GET"},
			{"protocol", "HTTP/1.1"},
			{"the_request", "GET /request?x=1&y=2 HTTP/1.1"},
			{"client", "127.0.0.1"},
			{"conn-client", "127.0.0.1"},
			{"header X-Client-Token", "t0k"},
			{"header x-other", "other value"},
			{"header Host", host},
			{"header X-Absent", "(null)"},
			{"pool", "message 13 from the pool"},
		} {
			c.WriteMessage(websocket.TextMessage, []byte(tc.cmd))
			if got := readString(t, c); got != tc.want {
				t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
			}
		}
	})
	t.Run("APR threads", func(t *testing.T) {
		c, _, err := dialWith(base+"/threads", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("start 10 500"))
		conformance.ThreadMessages(t, c, 10, 500)
	})
	t.Run("WebSocketOriginCheck", func(t *testing.T) {
		self := "http://" + host
		for _, tc := range []struct {
			path, origin string
			status       int
		}{
			{"/same", self, 101},
			{"/same", "https://app.example", 403},
			{"/same", "", 101},
			{"/echo", "https://evil.example", 403}, // Same is the default
			{"/trusted", "https://app.example", 101},
			{"/trusted", self, 403},
			{"/off", "https://evil.example", 101},
		} {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, _ := dialWith(base+tc.path, h)
			if c != nil {
				c.Close()
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Errorf("%s with Origin %q: %v, want %d", tc.path, tc.origin, resp, tc.status)
			}
		}
	})
	t.Run("MaxMessageSize", func(t *testing.T) {
		for _, tc := range []struct {
			path  string
			limit int
		}{{"/old-max", 64}, {"/max", 32}} {
			c, _, err := dialWith(base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			msg := strings.Repeat("m", tc.limit)
			c.WriteMessage(websocket.TextMessage, []byte(msg))
			if got := readString(t, c); got != msg {
				t.Fatalf("%s: %d bytes did not come back", tc.path, tc.limit)
			}
			c.WriteMessage(websocket.TextMessage, []byte(msg+"m"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Errorf("%s: %d bytes: %v, want 1009", tc.path, tc.limit+1, err)
			}
			c.Close()
		}
	})
	t.Run("WebSocketAllowReservedStatusCodes", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want uint16
		}{{"/reserved", 1000}, {"/echo", 1002}} {
			conn, err := ws.Dial(host)
			if err != nil {
				t.Fatal(err)
			}
			c, err := conn.Upgrade(tc.path, "Host: "+host)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(ws.Close(1016, ""))
			fr, err := c.ReadFrame()
			c.Close()
			if err != nil || fr.Op != ws.OpClose || fr.Code() != tc.want {
				t.Errorf("%s: close 1016 answered %v %v, want %d", tc.path, fr, err, tc.want)
			}
		}
	})
}

func pluginEcho(t *testing.T, url string) {
	c, _, err := dialWith(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{0, 125, 70000} {
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

func readString(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			t.Fatalf("closed: %d %q", ce.Code, ce.Text)
		}
		t.Fatal(err)
	}
	return string(p)
}
