package producers_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// restarts says how each producer restart of TestRestartKeepsClients is
// done: kill is a crash (SIGKILL, then a new process); handover is a
// planned redeploy (the new process starts with -takeover, the old one
// drains and exits).
var restarts = []string{"kill", "handover"}

const (
	restartClients = 200
	restartRounds  = 10
)

// proc is one producer process of a restart test.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, sock, bin string, args ...string) *proc {
	t.Helper()
	argv := append([]string{"-R", filepath.Dir(sock), "-n", filepath.Base(sock), "-m", "0"}, args...)
	cmd := exec.Command(bins[bin], argv...)
	if strings.HasSuffix(bin, ".py") {
		cmd = exec.Command(python(t), append([]string{bin}, argv...)...)
	}
	if os.Getenv("WSGATE_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	return p
}

// linkUp waits until the route's pool has a link up again.
func linkUp(t *testing.T, gw *testserver.Server, route string, want func(gateway.LinkStats) bool) {
	t.Helper()
	if !testserver.WaitFor(20*time.Second, func() bool { return want(gw.Link(route)) }) {
		t.Fatalf("%s: links never reached the state wanted: %+v", route, gw.Link(route))
	}
}

// restart replaces the producer behind sock, the way named, and returns
// the new process. Between the old one's end and the new one's start (a
// crash), or while both run (a handover), gap is called: what clients
// send then must arrive after, in order.
func restart(t *testing.T, how string, gw *testserver.Server, route, sock, bin string, old *proc, round int, gap func()) *proc {
	t.Helper()
	switch how {
	case "kill":
		old.cmd.Process.Signal(syscall.SIGKILL)
		<-old.done
		// The gateway has noticed when every client is held.
		linkUp(t, gw, route, func(l gateway.LinkStats) bool { return l.Up == 0 && l.Held == restartClients })
		gap()
		p := startProc(t, sock, bin, "-takeover")
		linkUp(t, gw, route, func(l gateway.LinkStats) bool { return l.Up > 0 && l.Held == 0 })
		return p
	default:
		p := startProc(t, sock, bin, "-takeover")
		gap() // the old instance is serving, or draining, or gone
		select {
		case <-old.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the old instance did not exit after the handover", round)
		}
		linkUp(t, gw, route, func(l gateway.LinkStats) bool { return l.Up > 0 && l.Held == 0 })
		return p
	}
}

// TestRestartKeepsClients: 200 clients stay connected while their
// producer (the Go echo and chat, the Python SDK's echo) is restarted 10
// times, by SIGKILL and by a planned handover;
// what they send during each gap arrives after it, in order, and the chat
// producer finds each client's name again in the rooms the gateway kept.
func TestRestartKeepsClients(t *testing.T) {
	for _, how := range restarts {
		t.Run("echo/"+how, func(t *testing.T) { restartEcho(t, how, "echo") })
		t.Run("chat/"+how, func(t *testing.T) { restartChat(t, how) })
		t.Run("echo.py/"+how, func(t *testing.T) { restartEcho(t, how, "echo.py") })
	}
}

func restartGateway(t *testing.T, dir string) *testserver.Server {
	return testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 10000, handshake_rate_per_ip: 0}
routes:
  - {path: /r, backend: {socket: %s/p, mode: mux, hold: 30s}}
`, dir))
}

func dialAll(t *testing.T, url string) []*websocket.Conn {
	cs := make([]*websocket.Conn, restartClients)
	for i := range cs {
		cs[i] = dial(t, url)
	}
	return cs
}

// each runs fn for every client, in parallel, and fails on the first error.
func each(t *testing.T, cs []*websocket.Conn, fn func(i int, c *websocket.Conn) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(i, c); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func expectText(c *websocket.Conn, want string) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, p, err := c.ReadMessage()
	if err != nil {
		return fmt.Errorf("waiting for %q: %w", want, err)
	}
	if typ != websocket.TextMessage || string(p) != want {
		return fmt.Errorf("got %q, want %q", p, want)
	}
	return nil
}

// restartSetup starts the producer bin, a gateway holding its route's
// clients, and the clients.
func restartSetup(t *testing.T, bin string) (p *proc, sock string, gw *testserver.Server, cs []*websocket.Conn) {
	dir := t.TempDir()
	sock = filepath.Join(dir, "p")
	p = startProc(t, sock, bin)
	waitSocket(t, sock)
	gw = restartGateway(t, dir)
	return p, sock, gw, dialAll(t, gw.URL("/r"))
}

func restartEcho(t *testing.T, how, bin string) {
	p, sock, gw, cs := restartSetup(t, bin)
	for round := range restartRounds {
		each(t, cs, func(i int, c *websocket.Conn) error {
			err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "before %d.%d", round, i))
			if how == "kill" && err == nil {
				// What a crashed process had read and not answered is lost
				// with it (no protocol can say what it did with it): the
				// crash comes after the answer.
				err = expectText(c, fmt.Sprintf("before %d.%d", round, i))
			}
			return err
		})
		p = restart(t, how, gw, "/r", sock, bin, p, round, func() {
			each(t, cs, func(i int, c *websocket.Conn) error {
				for k := range 3 {
					if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "gap %d.%d.%d", round, i, k)); err != nil {
						return err
					}
				}
				return nil
			})
		})
		each(t, cs, func(i int, c *websocket.Conn) error {
			if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "after %d.%d", round, i)); err != nil {
				return err
			}
			// In a handover, "before" was in flight to the old instance,
			// which answers it before it lets go; then the gap, in order.
			if how == "handover" {
				if err := expectText(c, fmt.Sprintf("before %d.%d", round, i)); err != nil {
					return err
				}
			}
			for k := range 3 {
				if err := expectText(c, fmt.Sprintf("gap %d.%d.%d", round, i, k)); err != nil {
					return err
				}
			}
			return expectText(c, fmt.Sprintf("after %d.%d", round, i))
		})
	}
	checkHoldCounters(t, gw, how)
}

func restartChat(t *testing.T, how string) {
	p, sock, gw, cs := restartSetup(t, "chat")
	each(t, cs, func(i int, c *websocket.Conn) error {
		c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "WSHello u%d", i))
		return expectText(c, fmt.Sprintf("WSWelcome u%d", i))
	})
	for round := range restartRounds {
		p = restart(t, how, gw, "/r", sock, "chat", p, round, func() {
			// Asked during the gap, answered by the new process: it knows
			// every name again, from the rooms the gateway kept.
			each(t, cs, func(i int, c *websocket.Conn) error {
				return c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "WSPrivate u%d hi from %d in %d", (i+1)%restartClients, i, round))
			})
		})
		each(t, cs, func(i int, c *websocket.Conn) error {
			from := (i + restartClients - 1) % restartClients
			return expectText(c, fmt.Sprintf("WSPrivate u%d hi from %d in %d", from, from, round))
		})
	}
	// A broadcast still carries the sender's name, and reaches everybody.
	cs[0].WriteMessage(websocket.TextMessage, []byte("all here?"))
	each(t, cs[1:], func(_ int, c *websocket.Conn) error { return expectText(c, "u0: all here?") })
	checkHoldCounters(t, gw, how)
}

func checkHoldCounters(t *testing.T, gw *testserver.Server, how string) {
	t.Helper()
	l := gw.Link("/r")
	// In a handover a client can be resumed twice in one round: on
	// the old instance's other connection, before its DRAIN arrived.
	if l.Resumed < restartClients*restartRounds || how == "kill" && l.Resumed != restartClients*restartRounds ||
		l.HoldExpired != 0 || l.HeldDropped != 0 {
		t.Fatalf("counters: %+v", l)
	}
	t.Logf("%s: resumed %d, drains %d, reconnects %d", how, l.Resumed, l.Drains, l.Reconnects)
	if how == "handover" && l.Drains == 0 {
		t.Fatalf("no DRAIN counted: %+v", l)
	}
}

func waitSocket(t *testing.T, sock string) {
	t.Helper()
	if !testserver.WaitFor(10*time.Second, func() bool {
		fi, err := os.Stat(sock)
		return err == nil && fi.Mode()&os.ModeSocket != 0
	}) {
		t.Fatalf("nothing listens on %s", sock)
	}
}

// TestHoldExpires: a producer that does not come back within the hold
// closes its clients with 1012 (Service Restart), and without hold they
// get 1012 at once.
func TestHoldExpires(t *testing.T) {
	for _, tc := range []struct {
		hold  string
		after time.Duration // at least this long before the close
	}{
		{"1s", 900 * time.Millisecond},
		{"0s", 0},
	} {
		t.Run("hold "+tc.hold, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "p")
			p := startProc(t, sock, "echo")
			waitSocket(t, sock)
			gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /r, backend: {socket: %s, hold: %s}}
`, sock, tc.hold))
			c := dial(t, gw.URL("/r"))
			c.WriteMessage(websocket.TextMessage, []byte("x"))
			if got := read(t, c); got != "x" {
				t.Fatal(got)
			}
			start := time.Now()
			p.cmd.Process.Signal(syscall.SIGKILL)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage()
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != 1012 {
				t.Fatalf("got %v, want a close with 1012", err)
			}
			if took := time.Since(start); took < tc.after {
				t.Fatalf("closed after %v, before the hold of %s", took, tc.hold)
			}
		})
	}
}
