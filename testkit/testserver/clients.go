package testserver

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// RunProducer starts cmd, a program that listens on the UNIX socket sock
// (a producer), kills it when the test ends, and waits until sock is a
// socket file that listens. The file appears at bind(2), before listen(2):
// a client sent in between is refused (httpd answered 503 once under
// stress-ng), so the file alone is not enough.
func RunProducer(t testing.TB, cmd *exec.Cmd, sock string) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !WaitFor(10*time.Second, func() bool {
		fi, err := os.Stat(sock)
		return err == nil && fi.Mode()&os.ModeSocket != 0 && listening(sock)
	}) {
		t.Fatalf("%s did not listen on %s", cmd.Path, sock)
	}
}

// listening reports whether the UNIX socket at path listens: the kernel
// lists a socket by the path it was bound to in /proc/net/unix, with
// __SO_ACCEPTCON (0x10000) in its flags once it listens. It asks without
// connecting, which a producer would take for a client. A socket bound by
// a relative path is matched by its name. One bound elsewhere and renamed
// into place (the PHP and C SDKs bind a temporary name, listen, then
// rename) is not listed by path; its file appears only once it listens,
// so it counts as listening, as it does without /proc.
func listening(path string) bool {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return true
	}
	found := false
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		if f[7] != path && (filepath.IsAbs(f[7]) || filepath.Base(f[7]) != filepath.Base(path)) {
			continue
		}
		found = true
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&0x10000 != 0 {
			return true
		}
	}
	return !found
}

// Dial opens a WebSocket with gorilla/websocket, a peer written by
// others, offering protos; the connection has a 10 s read deadline and is
// closed when the test ends.
func Dial(t testing.TB, url string, h http.Header, protos ...string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("%s: %v %v", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c, resp
}

// Expect reads one message and fails the test unless it is of type typ
// (websocket.TextMessage or BinaryMessage) and holds want.
func Expect(t testing.TB, c *websocket.Conn, typ int, want string) {
	t.Helper()
	gt, p, err := c.ReadMessage()
	if err != nil || gt != typ || string(p) != want {
		t.Fatalf("got %d %s %v, want %d %s", gt, brief(string(p)), err, typ, brief(want))
	}
}

// brief is s, or for a long s its length and ends: a failed comparison
// of 30 KB messages should not print them.
func brief(s string) string {
	if len(s) <= 80 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%d bytes %q...%q", len(s), s[:30], s[len(s)-30:])
}

// EchoProducer drives an echo producer through c, as the SDKs' tests of
// apache-ws-style producers do: two messages written at once come back
// as two, binary with NUL bytes comes back binary, a text message of a
// few hundred KB comes back whole, and "quit" makes the producer close
// the client with 1000.
func EchoProducer(t testing.TB, c *websocket.Conn) {
	t.Helper()
	c.WriteMessage(websocket.TextMessage, []byte("héllo"))
	c.WriteMessage(websocket.TextMessage, []byte("again"))
	Expect(t, c, websocket.TextMessage, "héllo")
	Expect(t, c, websocket.TextMessage, "again")
	c.WriteMessage(websocket.BinaryMessage, []byte{1, 0, 0xff, 0})
	Expect(t, c, websocket.BinaryMessage, "\x01\x00\xff\x00")
	big := strings.Repeat("wsgate ", 30000)
	c.WriteMessage(websocket.TextMessage, []byte(big))
	Expect(t, c, websocket.TextMessage, big)
	c.WriteMessage(websocket.TextMessage, []byte("quit"))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after quit: %v, want a close with 1000", err)
	}
}

// StartReporting starts cmd, a server told to listen on port 0 (or on a
// UNIX socket), kills it when the test ends, and returns the address it
// reports listening on: the first submatch of pattern in what it writes
// to stdout or stderr. No port is picked before the server binds it, so
// no other program can take it in between.
func StartReporting(t testing.TB, cmd *exec.Cmd, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pr.Close() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if os.Getenv("WSGATE_TEST_LOG") != "" {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		return addr
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not say where it listens (%s)", cmd.Path, pattern)
	}
	return ""
}

// Grep returns the lines of text that contain s, for failure messages.
func Grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// ApacheWSGateway starts a daemon in front of apache-ws-style producers in
// dir, as the C and PHP SDKs' tests run theirs: echo.ws at /echo (mux)
// and /echo-per-client, chat.ws at /chat. It checks both echo routes with
// EchoProducer.
func ApacheWSGateway(t *testing.T, dir string) *Server {
	t.Helper()
	d := Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, backend: {socket: %[1]s/echo.ws}}
  - {path: /echo-per-client, backend: {socket: %[1]s/echo.ws, mode: per-client}}
  - {path: /chat, backend: {socket: %[1]s/chat.ws}}
`, dir))
	for _, path := range []string{"/echo", "/echo-per-client"} {
		t.Run("echo "+path, func(t *testing.T) {
			c, _ := Dial(t, d.URL(path), nil)
			// Boundaries, binary with NUL bytes (apache-ws cut at the
			// first NUL), a large message, and the producer's close.
			EchoProducer(t, c)
		})
	}
	return d
}

// ApacheWSChat drives an apache-ws-style chat at url: a client sends
// "lang" and gets back the Accept-Language it connected with; a client
// that vanishes (an IO event whose read says the connection closed) is
// closed by the producer, which goes on; another says say, and it and
// the first, plus listeners more clients, all get want.
func ApacheWSChat(t *testing.T, url, lang, say, want string, listeners int) {
	t.Helper()
	a, _ := Dial(t, url, http.Header{"Accept-Language": {lang}})
	b, _ := Dial(t, url, nil)
	gone, _ := Dial(t, url, nil)
	all := []*websocket.Conn{a, b}
	for range listeners {
		c, _ := Dial(t, url, nil)
		all = append(all, c)
	}
	gone.UnderlyingConn().Close()
	a.WriteMessage(websocket.TextMessage, []byte("lang"))
	Expect(t, a, websocket.TextMessage, lang)
	b.WriteMessage(websocket.TextMessage, []byte(say))
	for _, x := range all {
		Expect(t, x, websocket.TextMessage, want)
	}
}

// RefusingAddr returns a TCP address on 127.0.0.1 where nothing listens
// and nothing can start to until the test ends: a socket bound to it that
// never listens holds the port, so connecting is refused (RST), always.
func RefusingAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
