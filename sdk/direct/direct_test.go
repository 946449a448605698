package direct_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/sdk/direct"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
	wsengine "github.com/wsgate/wsgate/websocket"
)

// echo answers every message with "from REMOTE-IP: " and the message, so
// that a test sees the client's address arrived with its socket.
type echo struct{}

func (echo) OnOpen(context.Context, *gateway.Conn) error { return nil }
func (echo) OnMessage(c *gateway.Conn, m gateway.Message) {
	host := c.Request().RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	c.Send(m.Type, append([]byte("from "+host+": "), m.Data...))
}
func (echo) OnClose(*gateway.Conn, wsengine.CloseStatus) {}

func goServer(t *testing.T, path string) {
	t.Helper()
	ln, err := direct.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &direct.Server{Handler: echo{}}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

func cServer(t *testing.T, path string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "receiver")
	if out, err := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-o", bin, "testdata/receiver.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, path)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = nil
	testserver.RunProducer(t, cmd, path)
	// Its children serve the clients; kill the group's strays with it.
	t.Cleanup(func() { exec.Command("pkill", "-f", bin).Run() })
}

// TestDirectMode: routes in mode: direct hand each client's socket to the
// producer: the Go SDK's direct.Server (the gateway's Handler API on
// wsgate's engine), a C server that receives the socket as ouistiti's
// direct-mode servers do, and a docroot of such sockets. Frames the client
// pipelines behind its request reach the producer; a producer that is not
// there gives 503; every hand-off is counted.
func TestDirectMode(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "docroot"), 0o755)
	goServer(t, filepath.Join(dir, "go.sock"))
	goServer(t, filepath.Join(dir, "docroot", "echo"))
	cServer(t, filepath.Join(dir, "c.sock"))
	d := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /go, backend: {socket: %[1]s/go.sock, mode: direct}}
  - {path: /c, backend: {socket: %[1]s/c.sock, mode: direct}}
  - {path: /dir/, docroot: {root: %[1]s/docroot, mode: direct}}
  - {path: /down, backend: {socket: %[1]s/nobody.sock, mode: direct}}
  - {path: /stale, backend: {socket: %[1]s/stale.sock, mode: direct}}
`, dir))
	// A socket file nobody listens on any more (a producer that died
	// without removing it).
	stale, err := net.Listen("unix", filepath.Join(dir, "stale.sock"))
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	for _, path := range []string{"/go", "/c", "/dir/echo"} {
		t.Run(path, func(t *testing.T) {
			c, _ := testserver.Dial(t, d.URL(path), nil)
			for _, m := range []string{"hello", strings.Repeat("x", 30000)} {
				c.WriteMessage(websocket.TextMessage, []byte(m))
				testserver.Expect(t, c, websocket.TextMessage, "from 127.0.0.1: "+m)
			}
			// A close is answered by the producer itself.
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
			if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 1000) {
				t.Errorf("close: %v", err)
			}
			// Frames sent right behind the request, before the 101.
			raw, err := ws.Dial(d.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			req := ws.Request(path, "Host: "+d.Addr)
			if _, err := io.WriteString(raw, req+string(ws.Text("first"))+string(ws.Text("second"))); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(raw.R, nil)
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("pipelined: %v %v", resp, err)
			}
			for _, want := range []string{"first", "second"} {
				f, err := raw.ReadFrame()
				if err != nil || string(f.Payload) != "from 127.0.0.1: "+want {
					t.Fatalf("pipelined %q: %v %v", want, f, err)
				}
			}
		})
	}
	t.Run("producer down", func(t *testing.T) {
		if got := ws.Status(d.URL("/down")); got != http.StatusServiceUnavailable {
			t.Errorf("%d, want 503", got)
		}
	})
	// The producer is reached only after the 101 (see TestHandOffsToDontwaitServer):
	// one whose socket file is there but that does not answer closes the
	// client with 1013, counted with its cause.
	t.Run("stale socket", func(t *testing.T) {
		c, _ := testserver.Dial(t, d.URL("/stale"), nil)
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseTryAgainLater) {
			t.Errorf("%v, want close 1013", err)
		}
	})
	t.Run("counted", func(t *testing.T) {
		resp, err := http.Get("http://" + d.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`wsgate_connections_handed_off_total{route="/go"} 2`,
			`wsgate_connections_handed_off_total{route="/c"} 2`,
			`wsgate_connections_handed_off_total{route="/dir/"} 2`,
			`wsgate_handshakes_refused_total{cause="backend_down",route="/down",status="503"} 1`,
			`wsgate_server_closes_total{cause="backend_down",code="1013",route="/stale"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestDirectModeRefusesTLS: as ouistiti refuses it, direct mode cannot
// serve a TLS listener: the backend would get a socket in the middle of a
// TLS session.
func TestDirectModeRefusesTLS(t *testing.T) {
	_, err := config.Parse("wsgate.yaml", []byte(`
listen:
  - {address: 127.0.0.1:0}
  - {address: 127.0.0.1:0, tls: {cert: c.pem, key: k.pem}}
routes:
  - {path: /d, backend: {socket: /run/d.sock, mode: direct}}
`))
	if err == nil || !strings.Contains(err.Error(), "wsgate.yaml:6") || !strings.Contains(err.Error(), "not allowed with a TLS listener") {
		t.Fatalf("got %v", err)
	}
	for _, bad := range []string{
		`{path: /d, backend: {address: "127.0.0.1:9", mode: direct}}`,
		`{path: /d, backend: {socket: /run/d.sock, mode: direct, protocol: raw}}`,
	} {
		if _, err := config.Parse("wsgate.yaml", []byte("routes:\n  - "+bad+"\n")); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestHandOffsToDontwaitServer: a server that takes its client with
// recvmsg(MSG_DONTWAIT) right after accept(2), as ouistiti's runtime does
// (testdata/dontwait.c), gets its clients while stress-ng keeps both CPUs
// busy. The gateway used to connect before the 101 and send the socket
// after it, and such a server, finding nothing yet, lost about one
// hand-off in ten. Now the socket is sent in the system call after
// connect(2); and since connect(2) wakes the server before sendmsg(2) can
// run, a server can still read nothing and close the connection with the
// descriptor unread, which the gateway sees as a reset connection and
// hands the client off again. Every client must get its hand-off, and
// none twice (the server would count more than 10,000). The server's own
// count of empty connections is logged: each is one the gateway made
// again.
func TestHandOffsToDontwaitServer(t *testing.T) {
	const total, parallel = 10000, 16
	stress := exec.Command(testserver.Peer(t, "stress-ng", "stress-ng"), "--cpu", "2", "--timeout", "300s", "--quiet")
	if err := stress.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stress.Process.Kill(); stress.Wait() })
	dir := t.TempDir()
	bin := filepath.Join(dir, "dontwait")
	if out, err := exec.Command("cc", "-Wall", "-Wextra", "-Werror", "-o", bin, "testdata/dontwait.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	sock, counts := filepath.Join(dir, "dontwait.sock"), filepath.Join(dir, "counts")
	testserver.RunProducer(t, exec.Command(bin, sock, counts), sock)
	d := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /d, backend: {socket: %s, mode: direct}}\n", sock))

	work := make(chan int)
	failed := make(chan string, total)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialer := websocket.Dialer{HandshakeTimeout: time.Minute}
			for range work {
				c, _, err := dialer.Dial(d.URL("/d"), nil)
				if err != nil {
					failed <- err.Error()
					continue
				}
				c.SetReadDeadline(time.Now().Add(time.Minute))
				if _, p, err := c.ReadMessage(); err != nil || string(p) != "ok" {
					failed <- fmt.Sprintf("%q %v", p, err)
				}
				c.Close()
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	close(failed)
	var received, empty int
	testserver.WaitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(counts)
		fmt.Sscanf(string(b), "received %d lost %d", &received, &empty)
		return received+len(failed) >= total
	})
	t.Logf("%d of %d clients got their hand-off; the server received %d and took %d connections before their descriptor was in them",
		total-len(failed), total, received, empty)
	if n := len(failed); n > 0 {
		t.Errorf("%d of %d clients did not get their hand-off; first: %s", n, total, <-failed)
	}
	if received != total {
		t.Errorf("the server received %d hand-offs, and %d clients had none, of %d", received, len(failed), total)
	}
}
