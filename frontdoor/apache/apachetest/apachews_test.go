package apachetest

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// rawProducer builds testdata/apache-ws/raw_echo.c, a producer written
// for apache-ws's module (a UNIX socket at the mapped file, one connection
// per client, raw bytes), and runs it on path.
func rawProducer(t *testing.T, path string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "raw_echo")
	if out, err := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-o", bin, "testdata/apache-ws/raw_echo.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, path)
	cmd.Stderr = os.Stderr
	testserver.RunProducer(t, cmd, path)
	// apache-ws's producers ran as the web server's user; this one runs
	// as the test's, so httpd's children need the socket opened to them.
	os.Chmod(path, 0o777)
}

// apacheWSCases drives an apache-ws producer through wsgate at url (and
// other, a second client's URL): what apache-ws's module dropped or
// crashed on (fragments, pings, binary, several frames in one read) is
// now the engine's, and the producer is unchanged.
func apacheWSCases(t *testing.T, url string, tlsConf *tls.Config) {
	d := websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 10 * time.Second}
	dial := func() *websocket.Conn {
		t.Helper()
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("%s: %v %v", url, err, resp)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	read := func(c *websocket.Conn, want string) {
		t.Helper()
		typ, p, err := c.ReadMessage()
		if err != nil || typ != websocket.TextMessage || string(p) != want {
			t.Fatalf("got %d %q %v, want text %q", typ, p, err, want)
		}
	}
	a := dial()
	a.WriteMessage(websocket.TextMessage, []byte("hello"))
	read(a, "echo: hello")
	// A message in three fragments, with a ping between them.
	nc := a.UnderlyingConn()
	nc.Write(ws.Concat(
		ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("frag")}.Bytes(),
		ws.Ping([]byte("p")),
		ws.Frame{Op: ws.OpCont, Masked: true, Payload: []byte("men")}.Bytes(),
		ws.Cont(true, []byte("ted")),
	))
	pong := make(chan string, 1)
	a.SetPongHandler(func(s string) error { pong <- s; return nil })
	read(a, "echo: fragmented")
	select {
	case s := <-pong:
		if s != "p" {
			t.Errorf("pong %q", s)
		}
	default:
		t.Error("no pong before the echo")
	}
	// One client's "all" reaches every client of the producer.
	b := dial()
	b.WriteMessage(websocket.TextMessage, []byte("x"))
	read(b, "echo: x")
	a.WriteMessage(websocket.TextMessage, []byte("all"))
	read(a, "tick")
	read(b, "tick")
	// The producer closing a client's socket closes it normally.
	b.WriteMessage(websocket.TextMessage, []byte("bye"))
	_, _, err := b.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("after bye: %v, want a close with 1000", err)
	}
	// Invalid UTF-8 gets 1007; the producer never sees it.
	c := dial()
	c.UnderlyingConn().Write(ws.Frame{Fin: true, Op: ws.OpText, Masked: true, Payload: []byte{0xff, 0xfe}}.Bytes())
	_, _, err = c.ReadMessage()
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("invalid UTF-8: %v, want 1007", err)
	}
	// And the producer still serves.
	a.WriteMessage(websocket.TextMessage, []byte("still here"))
	read(a, "echo: still here")
}

// TestApacheWSAddHandler: apache-ws's configuration (AddHandler websocket
// .ws in a <Directory>) and an unmodified apache-ws producer listening on
// the mapped file, behind mod_wsgate, over ws and over wss (mod_ssl, which
// apache-ws's module bypassed).
func TestApacheWSAddHandler(t *testing.T) {
	h := start(t, options{TLS: true, Modules: []string{"mime"}, Files: map[string]string{"htdocs/index.html": "plain page\n", "mime.types": "text/html html\n"}, Body: `
DocumentRoot {{ROOT}}/htdocs
TypesConfig {{ROOT}}/mime.types
<Directory {{ROOT}}/htdocs>
    AddHandler websocket .ws
</Directory>
`})
	rawProducer(t, filepath.Join(h.root, "htdocs", "websocket.ws"))
	t.Run("ws", func(t *testing.T) { apacheWSCases(t, "ws://"+h.Addr()+"/websocket.ws", nil) })
	t.Run("wss", func(t *testing.T) {
		apacheWSCases(t, "wss://"+h.TLSAddr()+"/websocket.ws", &tls.Config{RootCAs: h.Pool})
	})
	t.Run("other files", func(t *testing.T) {
		resp, err := http.Get("http://" + h.Addr() + "/index.html")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "plain page\n" {
			t.Errorf("index.html: %d %q", resp.StatusCode, body)
		}
		// A .ws file whose producer is not there.
		if got := ws.Status("ws://" + h.Addr() + "/nobody.ws"); got != http.StatusNotFound {
			t.Errorf("no producer: %d, want 404", got)
		}
	})
}

// TestApacheWSInDaemon: the daemon's equivalent of AddHandler websocket
// .ws, a raw docroot of the directory, serves the same producer.
func TestApacheWSInDaemon(t *testing.T) {
	dir := t.TempDir()
	rawProducer(t, filepath.Join(dir, "websocket.ws"))
	d := testserver.Start(t, `
listen: [{address: 127.0.0.1:0}]
routes:
  - path: /
    docroot: {root: `+dir+`, allow: ["*.ws"], protocol: raw, message_type: text}
`)
	apacheWSCases(t, d.URL("/websocket.ws"), nil)
}
