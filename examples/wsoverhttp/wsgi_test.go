// Package wsoverhttp_test runs the WebSocket-over-HTTP examples, each an
// ordinary HTTP application of a few dozen lines: a WSGI app under
// Python's stdlib server behind the daemon (here), and a PHP chat and a
// shell CGI script inside httpd through subrequests (in
// frontdoor/apache/apachetest, which starts httpd).
package wsoverhttp_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/testkit/testserver"
)

func python(t *testing.T) string { return testserver.Python(t) }

// TestWSGIChat: the WSGI chat serves WebSocket clients behind the daemon:
// names kept as connection metadata, messages to the room through the
// publish endpoint, which any HTTP client with the admin token may use
// too (and none without it).
func TestWSGIChat(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	const token = "6f1c0a8e2b9d47c3a5e0f7d1b2c3a4e5"
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	// The admin listener is opened here, so that the application can be
	// told where to publish before the daemon starts.
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publish := fmt.Sprintf("http://%s/publish/", adminLn.Addr())
	app := testserver.StartReporting(t, exec.Command(python(t), "chat_wsgi.py", "--port", "0", "--publish", publish, "--publish-token-file", tokenFile), `serving on (\S+)`)
	gw := testserver.StartWith(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
admin: {listen: %s, auth: {bearer_token_file: %s}}
static: [{path: /room/, dir: www}]
routes:
  - {path: /room/chat, backend: {http: "http://%s/"}}
`, adminLn.Addr(), tokenFile, app), adminLn)
	h := http.Header{"Origin": {"http://" + gw.Addr}}
	ann, _ := testserver.Dial(t, gw.URL("/room/chat"), h)
	bob, _ := testserver.Dial(t, gw.URL("/room/chat"), h)
	ann.WriteMessage(websocket.TextMessage, []byte("/nick ann"))
	testserver.Expect(t, ann, websocket.TextMessage, "you are ann")
	ann.WriteMessage(websocket.TextMessage, []byte("hello, bob"))
	testserver.Expect(t, bob, websocket.TextMessage, "ann: hello, bob")
	testserver.Expect(t, ann, websocket.TextMessage, "ann: hello, bob")
	bob.WriteMessage(websocket.TextMessage, []byte("hi"))
	testserver.Expect(t, ann, websocket.TextMessage, "guest: hi")
	testserver.Expect(t, bob, websocket.TextMessage, "guest: hi")

	post := func(tok string) *http.Response {
		req, _ := http.NewRequest("POST", publish, strings.NewReader(
			`{"items":[{"channel":"room","formats":{"ws-message":{"content":"server: maintenance at 5"}}}]}`))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(""); resp.StatusCode != 401 {
		t.Fatalf("publish without the token: %v", resp.Status)
	}
	if resp := post(token); resp.StatusCode != 200 {
		t.Fatalf("publish: %v", resp.Status)
	}
	for _, c := range []*websocket.Conn{ann, bob} {
		testserver.Expect(t, c, websocket.TextMessage, "server: maintenance at 5")
	}
	ann.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	if _, _, err := ann.ReadMessage(); !websocket.IsCloseError(err, 1000) {
		t.Fatalf("close: %v", err)
	}
	page, err := http.Get("http://" + gw.Addr + "/room/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(b), `new URL("chat", location.href)`) {
		t.Fatalf("the page: %d %s", page.StatusCode, b)
	}
}

// TestGoAndPHPEcho: the Go echo application (examples/wsoverhttp/echo) and
// the PHP one (php/echo.php, under PHP's built-in server) behind the
// daemon, with text, binary and a large message, in order.
func TestGoAndPHPEcho(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "echo")
	if out, err := exec.Command("go", "build", "-o", bin, "./echo").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	goAddr := testserver.StartReporting(t, exec.Command(bin, "-listen", "127.0.0.1:0"), `listening on (\S+)`)
	routes := fmt.Sprintf("  - {path: /go, backend: {http: \"http://%s/\"}}\n", goAddr)
	if php, err := exec.LookPath("php"); err == nil {
		phpAddr := testserver.StartReporting(t, exec.Command(php, "-S", "127.0.0.1:0", "-t", "php"), `Development Server \(http://([^)]+)\) started`)
		routes += fmt.Sprintf("  - {path: /php, backend: {http: \"http://%s/echo.php\"}}\n", phpAddr)
	} else if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
		t.Fatal("php is required (php-cli)")
	}
	gw := testserver.Start(t, "listen: [{address: 127.0.0.1:0}]\nroutes:\n"+routes)
	for _, path := range []string{"/go", "/php"} {
		if path == "/php" && !strings.Contains(routes, "/php") {
			continue
		}
		t.Run(path, func(t *testing.T) {
			c, _ := testserver.Dial(t, gw.URL(path), nil)
			big := strings.Repeat("wsgate ", 20000)
			c.WriteMessage(websocket.TextMessage, []byte("héllo"))
			c.WriteMessage(websocket.BinaryMessage, []byte{0, '\r', '\n', 0xff})
			c.WriteMessage(websocket.TextMessage, []byte(big))
			testserver.Expect(t, c, websocket.TextMessage, "héllo")
			testserver.Expect(t, c, websocket.BinaryMessage, "\x00\r\n\xff")
			testserver.Expect(t, c, websocket.TextMessage, big)
		})
	}
}
