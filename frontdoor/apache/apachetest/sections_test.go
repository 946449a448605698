package apachetest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestSections: directives work in every section type httpd offers them
// in, each section is one route whatever URLs it matches (one chat hub for
// a <LocationMatch>), and .htaccess files may configure WebSockets but not
// load plugins into the server.
func TestSections(t *testing.T) {
	h := start(t, options{
		// .htaccess files may hold the WebSocket directives with
		// AllowOverride AuthConfig, as apache-websocket's; SetHandler
		// needs FileInfo, so it is in the server configuration.
		Global: `DocumentRoot {{ROOT}}/htdocs
<Directory {{ROOT}}/htdocs>
  AllowOverride AuthConfig
  Require all granted
</Directory>
<Directory {{ROOT}}/htdocs/ht>
  SetHandler websocket-handler
</Directory>
<Directory {{ROOT}}/htdocs/htplugin>
  SetHandler websocket-handler
</Directory>
`,
		Body: `
<LocationMatch "^/rooms/[a-z]+$">
  SetHandler websocket-handler
  WebSocketApp chat
</LocationMatch>
<Directory {{ROOT}}/htdocs/progs>
  SetHandler websocket-handler
  WebSocketProgram sh -c 'echo "$SCRIPT_NAME|$PATH_INFO"; cat'
</Directory>
<Location /nohandler>
  SetHandler websocket-handler
</Location>
`,
		Files: map[string]string{
			"htdocs/index.html":         "hello",
			"htdocs/progs/.keep":        "",
			"htdocs/ht/.htaccess":       "WebSocketApp echo\nWebSocketMaxMessageSize 10\n",
			"htdocs/htplugin/.htaccess": "WebSocketHandler {{BUILD}}/plugins/echo.so echo_init\n",
		},
	})
	base := "ws://" + h.Addr()

	t.Run("one route per LocationMatch", func(t *testing.T) {
		a, _ := dialOK(t, base+"/rooms/a", nil)
		b, _ := dialOK(t, base+"/rooms/b", nil)
		// No wait: a connection is in its route's hub before its 101.
		a.WriteMessage(websocket.TextMessage, []byte("to the section"))
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, p, err := b.ReadMessage(); err != nil || string(p) != "to the section" {
			t.Fatalf("%q %v", p, err)
		}
	})
	t.Run("Directory: prefix from the URL", func(t *testing.T) {
		c, _ := dialOK(t, base+"/progs/run", nil)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "/progs|/run" {
			t.Fatalf("SCRIPT_NAME|PATH_INFO: %q %v", p, err)
		}
	})
	t.Run(".htaccess", func(t *testing.T) {
		c, _ := dialOK(t, base+"/ht/x", nil)
		roundTrip(t, c, "short")
		c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 11)))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("over the .htaccess limit: %v", err)
		}
	})
	t.Run("no plugins from .htaccess", func(t *testing.T) {
		if got := ws.Status(base + "/htplugin/x"); got != http.StatusInternalServerError {
			t.Fatalf("status %d", got)
		}
		want := "WebSocketHandler is not allowed in .htaccess files"
		if !strings.Contains(h.Log(), want) {
			t.Fatalf("the error log lacks %q:\n%s", want, h.Log())
		}
	})
	t.Run("no handler: 500, logged for each request with its path and client", func(t *testing.T) {
		// apache-websocket logs the path asked for (r->parsed_uri.path)
		// and httpd adds the client, once per request.
		for _, path := range []string{"/nohandler/a", "/nohandler/b/c"} {
			if got := ws.Status(base + path); got != http.StatusInternalServerError {
				t.Fatalf("%s: status %d", path, got)
			}
		}
		for _, path := range []string{"/nohandler/a", "/nohandler/b/c"} {
			want := "no WebSocket plugin is assigned for location " + path + " (did you forget to define a WebSocketHandler?)"
			var lines []string
			for _, l := range strings.Split(h.Log(), "\n") {
				if strings.Contains(l, want) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "client=127.0.0.1:") {
				t.Errorf("%s: want one line naming the path and the client, got %q\n%s", path, lines, h.Log())
			}
		}
		if strings.Contains(h.Log(), "for location / (") {
			t.Errorf("a line names the section instead of the request:\n%s", h.Log())
		}
	})
	t.Run("plain requests are httpd's", func(t *testing.T) {
		resp, err := http.Get(fmt.Sprintf("http://%s/index.html", h.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}
