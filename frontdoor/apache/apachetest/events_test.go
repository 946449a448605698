package apachetest

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/apps/wsoverhttp"
	"github.com/wsgate/wsgate/testkit/natstest"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// examples is the WebSocket-over-HTTP examples' directory.
var examples, _ = filepath.Abs("../../../examples/wsoverhttp")

func exampleFile(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join(examples, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// phpCGI starts php-cgi as a FastCGI server on a UNIX socket in a
// directory of its own (php-fpm's protocol, without php-fpm's daemon), as
// mod_proxy_fcgi reaches it, and returns the socket's path.
func phpCGI(t *testing.T) string {
	t.Helper()
	bin := testserver.Peer(t, "php-cgi", "php-cgi")
	dir, err := os.MkdirTemp("", "php-fcgi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // httpd's children, as www-data, connect to it
	sock := filepath.Join(dir, "php.sock")
	cmd := exec.Command(bin, "-b", sock)
	cmd.Env = append(os.Environ(), "PHP_FCGI_CHILDREN=4", "PHP_FCGI_MAX_REQUESTS=0")
	testserver.RunProducer(t, cmd, sock)
	return sock
}

// TestEventHandlerPHP: the PHP chat (examples/wsoverhttp/php/chat.php)
// serves WebSocket clients inside httpd: every event is a subrequest to
// /app/chat.php, which httpd hands to PHP, the two ways Debian runs it:
// php-cgi as a FastCGI server behind mod_proxy_fcgi (php-fpm's protocol),
// and php-cgi as a CGI program through mod_actions (Debian's php-cgi
// configuration), which redirects inside the subrequest. The chat
// publishes to its room through SetHandler wsgate-publish, and with
// WsgateCluster the room spans httpd's children.
func TestEventHandlerPHP(t *testing.T) {
	need(t)
	fcgi := phpCGI(t)
	nats := natstest.StartCluster(t, 1)
	for _, tc := range []struct {
		name    string
		modules []string
		conf    string
	}{
		{"fastcgi", []string{"proxy", "proxy_fcgi"}, fmt.Sprintf(`
<FilesMatch "\.php$">
  SetHandler "proxy:unix:%s|fcgi://localhost"
</FilesMatch>
ProxyFCGIBackendType GENERIC`, fcgi)},
		{"cgi-action", []string{"cgid", "actions", "mime"}, `
AddHandler application/x-httpd-php .php
Action application/x-httpd-php /cgi-bin/php`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, options{
				Modules: append([]string{"alias", "env"}, tc.modules...),
				Global: multiChild["event"] + "WsgateCluster " + nats[0].URL() +
					"\n<IfModule cgid_module>\nScriptSock {{ROOT}}/cgisock\n</IfModule>\n<IfModule mime_module>\nTypesConfig /dev/null\n</IfModule>\n",
				Files: map[string]string{"app/chat.php": exampleFile(t, "php/chat.php")},
				Body: fmt.Sprintf(`
ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/
<Directory /usr/lib/cgi-bin>
  Require all granted
</Directory>
Alias /app/ {{ROOT}}/app/
<Directory {{ROOT}}/app>
  Require all granted
  %s
</Directory>
SetEnv WSGATE_PUBLISH http://127.0.0.1:{{PORT}}/publish/
<Location /room/chat>
  SetHandler websocket-handler
  WebSocketOriginCheck Off
  WebSocketEventHandler /app/chat.php
</Location>
<Location /publish/>
  SetHandler wsgate-publish
</Location>
`, tc.conf),
			})
			phpChat(t, h)
		})
	}
}

func phpChat(t *testing.T, h *httpd) {
	url := "ws://" + h.Addr() + "/room/chat"
	ann, _ := dialOK(t, url, nil)
	bob, _ := dialOK(t, url, nil)
	ann.WriteMessage(websocket.TextMessage, []byte("/nick ann"))
	expect(t, ann, websocket.TextMessage, "you are ann")
	ann.WriteMessage(websocket.TextMessage, []byte("hello, bob"))
	expect(t, bob, websocket.TextMessage, "ann: hello, bob")
	expect(t, ann, websocket.TextMessage, "ann: hello, bob")
	for i := range 20 { // order, through one connection's subrequests
		bob.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "n%d", i))
	}
	for i := range 20 {
		expect(t, ann, websocket.TextMessage, fmt.Sprintf("guest: n%d", i))
	}
	resp, err := http.Post("http://"+h.Addr()+"/publish/", "application/json", strings.NewReader(
		`{"items":[{"channel":"room","formats":{"ws-message":{"content":"server: maintenance at 5"}}}]}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "Published\n" {
		t.Fatalf("publish answered %q", body)
	}
	for _, c := range []*websocket.Conn{ann, bob} {
		for {
			// bob's numbered messages come first for bob.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("%v\n%s", err, h.Log())
			}
			if string(p) == "server: maintenance at 5" {
				break
			}
		}
	}
}

// TestEventHandlerCGI: a shell CGI script (examples/wsoverhttp/cgi/
// echo.cgi) named by its file serves WebSocket clients through
// subrequests: greeting, text and binary echoed byte for byte, in order,
// and a publish to its channel, for plain and TLS clients.
func TestEventHandlerCGI(t *testing.T) {
	need(t)
	h := start(t, options{
		TLS:     true,
		Modules: []string{"cgid", "mime", "alias"},
		Files:   map[string]string{"cgi/echo.cgi": exampleFile(t, "cgi/echo.cgi")},
		Global:  "ScriptSock {{ROOT}}/cgisock\nTypesConfig /dev/null\n",
		Body: `
Alias /cgi/ {{ROOT}}/cgi/
<Directory {{ROOT}}/cgi>
  Options +ExecCGI
  AddHandler cgi-script .cgi
  Require all granted
</Directory>
<Location /echo>
  SetHandler websocket-handler
  WebSocketOriginCheck Off
  WebSocketEventHandler {{ROOT}}/cgi/echo.cgi
</Location>
<Location /publish/>
  SetHandler wsgate-publish
</Location>
`,
	})
	os.Chmod(filepath.Join(h.root, "cgi/echo.cgi"), 0o755)
	for _, url := range []string{"ws://" + h.Addr() + "/echo", "wss://" + h.TLSAddr() + "/echo"} {
		t.Run(url[:strings.Index(url, ":")], func(t *testing.T) {
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: &tls.Config{RootCAs: h.Pool}}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, h.Log())
			}
			defer c.Close()
			expect(t, c, websocket.TextMessage, "hello 127.0.0.1")
			c.WriteMessage(websocket.TextMessage, []byte("héllo"))
			c.WriteMessage(websocket.BinaryMessage, []byte{0, '\r', '\n', 0xff})
			c.WriteMessage(websocket.TextMessage, []byte("again"))
			expect(t, c, websocket.TextMessage, "héllo")
			expect(t, c, websocket.BinaryMessage, "\x00\r\n\xff")
			expect(t, c, websocket.TextMessage, "again")
			resp, err := http.Post("http://"+h.Addr()+"/publish/", "application/json", strings.NewReader(
				`{"items":[{"channel":"news","formats":{"ws-message":{"content":"extra!"}}}]}`))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("publish: %v %v", err, resp)
			}
			expect(t, c, websocket.TextMessage, "extra!")
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
			if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 1000) {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

func expect(t *testing.T, c *websocket.Conn, typ int, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	testserver.Expect(t, c, typ, want)
}

// TestBackendHold: WebSocketBackendHold keeps a producer's clients open
// inside httpd while the producer restarts; what they send meanwhile
// arrives once it is back, and a hold that runs out closes with 1012.
func TestBackendHold(t *testing.T) {
	need(t)
	dir, err := os.MkdirTemp("", "hold")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // httpd's children (www-data) connect below it
	t.Cleanup(func() { os.RemoveAll(dir) })
	victim := producer(t, dir, "echo")
	h := start(t, options{Body: `
<Location /held>
  SetHandler websocket-handler
  WebSocketOriginCheck Off
  WebSocketBackend ` + dir + `/echo
  WebSocketBackendHold 20s
</Location>
<Location /short>
  SetHandler websocket-handler
  WebSocketOriginCheck Off
  WebSocketBackend ` + dir + `/echo
  WebSocketBackendHold 1s
</Location>
`})
	held, _ := dialOK(t, "ws://"+h.Addr()+"/held", nil)
	short, _ := dialOK(t, "ws://"+h.Addr()+"/short", nil)
	roundTrip(t, held, "before")
	roundTrip(t, short, "before")
	victim.Process.Signal(syscall.SIGKILL)
	victim.Wait()
	// The short hold runs out first.
	short.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := short.ReadMessage(); !websocket.IsCloseError(err, 1012) {
		t.Fatalf("short hold: %v, want 1012", err)
	}
	held.WriteMessage(websocket.TextMessage, []byte("during"))
	cmd := exec.Command(filepath.Join(build, "echo-producer"), "-R", dir, "-n", "echo")
	testserver.RunProducer(t, cmd, filepath.Join(dir, "echo"))
	expect(t, held, websocket.TextMessage, "during")
	roundTrip(t, held, "after")
}

// TestEventHandlerURL: WebSocketEventHandler with an http:// URL posts the
// events from the engine inside httpd, as the daemon does, to a
// WebSocket-over-HTTP application written with Go's standard library.
func TestEventHandlerURL(t *testing.T) {
	need(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		evs, err := wsoverhttp.Parse(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var out []byte
		for _, ev := range evs {
			if ev.Type == wsoverhttp.Text {
				ev.Content = append([]byte(r.Header.Get("Connection-Id")+" "), ev.Content...)
			}
			out = wsoverhttp.Append(out, ev.Type, ev.Content)
		}
		w.Header().Set("Content-Type", wsoverhttp.ContentType)
		w.Write(out)
	}))
	t.Cleanup(app.Close)
	h := start(t, options{Body: `
<Location /url>
  SetHandler websocket-handler
  WebSocketOriginCheck Off
  WebSocketEventHandler ` + app.URL + `/events
</Location>
`})
	c, _ := dialOK(t, "ws://"+h.Addr()+"/url", nil)
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := c.ReadMessage()
	if id, msg, ok := strings.Cut(string(p), " "); err != nil || !ok || msg != "hi" || id == "" {
		t.Fatalf("got %q %v", p, err)
	}
}
