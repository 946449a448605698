// Package php_test runs PHP producers written for apache-ws's PHP
// extension (examples/) on the pure-PHP SDK (apachews.php), behind a real
// wsgate.
package php_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/internal/testserver"
)

func php(t *testing.T, script, sock string) {
	t.Helper()
	bin, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
			t.Fatal("php is required (Debian package php-cli)")
		}
		t.Skip("php-cli is not installed")
	}
	sdk, _ := filepath.Abs("apachews.php")
	cmd := exec.Command(bin, "-d", "auto_prepend_file="+sdk, script, sock)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	testserver.RunProducer(t, cmd, sock)
}

func dial(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, _ := testserver.Dial(t, url, h)
	return c
}

var expect = testserver.Expect

func TestPHPProducers(t *testing.T) {
	dir := t.TempDir()
	php(t, "examples/echo.php", filepath.Join(dir, "echo.ws"))
	php(t, "examples/chat.php", filepath.Join(dir, "chat.ws"))
	d := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, backend: {socket: %[1]s/echo.ws}}
  - {path: /echo-per-client, backend: {socket: %[1]s/echo.ws, mode: per-client}}
  - {path: /chat, backend: {socket: %[1]s/chat.ws}}
`, dir))

	for _, path := range []string{"/echo", "/echo-per-client"} {
		t.Run("echo "+path, func(t *testing.T) {
			c := dial(t, d.URL(path), nil)
			c.WriteMessage(websocket.TextMessage, []byte("héllo"))
			c.WriteMessage(websocket.TextMessage, []byte("again"))
			expect(t, c, websocket.TextMessage, "héllo")
			expect(t, c, websocket.TextMessage, "again")
			c.WriteMessage(websocket.BinaryMessage, []byte{0, 0xff, 7})
			expect(t, c, websocket.BinaryMessage, "\x00\xff\x07")
			big := strings.Repeat("php ", 50000)
			c.WriteMessage(websocket.TextMessage, []byte(big))
			expect(t, c, websocket.TextMessage, big)
			c.WriteMessage(websocket.TextMessage, []byte("quit"))
			_, _, err := c.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
				t.Errorf("after quit: %v, want 1000", err)
			}
		})
	}

	t.Run("chat", func(t *testing.T) {
		a := dial(t, d.URL("/chat"), http.Header{"Accept-Language": {"de"}})
		b := dial(t, d.URL("/chat"), nil)
		gone := dial(t, d.URL("/chat"), nil)
		gone.UnderlyingConn().Close()
		a.WriteMessage(websocket.TextMessage, []byte("lang"))
		expect(t, a, websocket.TextMessage, "de")
		b.WriteMessage(websocket.TextMessage, []byte("hello"))
		for _, x := range []*websocket.Conn{a, b} {
			expect(t, x, websocket.TextMessage, "guest2: hello")
		}
	})
}
