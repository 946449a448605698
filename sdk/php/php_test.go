// Package php_test runs PHP producers written for apache-ws's PHP
// extension (examples/) on the pure-PHP SDK (apachews.php), behind a real
// wsgate.
package php_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
			// Boundaries, binary with NUL bytes (apache-ws cut at the
			// first NUL), a large message, and the producer's close.
			testserver.EchoProducer(t, c)
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
