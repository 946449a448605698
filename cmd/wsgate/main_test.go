package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

var binary string

func TestMain(m *testing.M) {
	if b := os.Getenv(inNetns); b != "" {
		// A test run again in a network namespace of its own: the binary
		// is its parent's.
		binary = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "wsgate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "wsgate")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		// Retry without -race where the race runtime is unavailable.
		if out2, err2 := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err2 != nil {
			os.Stderr.Write(out)
			os.Stderr.Write(out2)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t *testing.T, name, text string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		out, err := exec.Command(binary, arg).CombinedOutput()
		// "wsgate RELEASE (commit C, [modified, ]built from a tree of T, goV)"
		if err != nil || !regexp.MustCompile(`^wsgate \S+ \((commit [0-9a-f]{12}, )?(modified, )?(built from a tree of \S+, )?go1\.\S+\)\n$`).Match(out) {
			t.Errorf("%s: %q %v", arg, out, err)
		}
	}
}

func TestCheck(t *testing.T) {
	good := writeFile(t, "good.yaml", "routes:\n  - path: /echo\n    app: echo\n")
	out, err := exec.Command(binary, "check", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("%s %v", out, err)
	}
	bad := writeFile(t, "bad.yaml", "routes:\n  - path: /echo\n    app: echo\n    origin_check: sometimes\n  - path: /x\n")
	cmd := exec.Command(binary, "check", bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v", err)
	}
	for _, want := range []string{bad + ":4: routes[0].origin_check: must be same, trusted or off", bad + ":5: routes[1].app: route has no application"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	// An admin listener off loopback passes, with a warning that names it.
	open := writeFile(t, "open.yaml", "admin: {listen: \"0.0.0.0:8090\"}\nroutes:\n  - path: /echo\n    app: echo\n")
	out, err = exec.Command(binary, "check", open).CombinedOutput()
	if err != nil || !strings.Contains(string(out), open+":1: admin.listen: warning: 0.0.0.0:8090 is not a loopback address") {
		t.Errorf("a non-loopback admin listener: %s %v", out, err)
	}
	if err := exec.Command(binary, "check").Run(); err == nil {
		t.Error("check without a file succeeded")
	}
	if err := exec.Command(binary, "check", filepath.Join(t.TempDir(), "none.yaml")).Run(); err == nil {
		t.Error("check of a missing file succeeded")
	}
}

// TestCheckConnectsNothing: `wsgate check` validates a route whose producer
// is listening without connecting to it (nor to anything else): checking
// a configuration has no side effects.
func TestCheckConnectsNothing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeFile(t, "p.yaml", "routes:\n  - path: /p\n    backend: {socket: "+sock+", connections: 4}\n")
	if out, err := exec.Command(binary, "check", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("%s %v", out, err)
	}
	// The check has exited: a connection it made would be in the backlog.
	ln.SetDeadline(time.Now())
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatal("wsgate check connected to the producer")
	}
}

func TestDefaultConfigPrints(t *testing.T) {
	out, err := exec.Command(binary, "default-config").Output()
	if err != nil || !strings.Contains(string(out), "app: dumb-increment") {
		t.Fatalf("%s %v", out, err)
	}
	out, err = exec.Command(binary, "apps").Output()
	if err != nil || !strings.Contains(string(out), "echo") || !strings.Contains(string(out), "chat") {
		t.Fatalf("%s %v", out, err)
	}
}

// startDaemon starts the binary and returns the address it reports listening on.
func startDaemon(t *testing.T, args ...string) (*exec.Cmd, string, *testserver.Logs) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	logs := &testserver.Logs{}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`msg=listening address=(\S+)`)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addrCh:
		return cmd, a, logs
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon did not start")
	}
	return nil, "", nil
}

// inNetns names the binary to a test that its parent runs again in a
// network namespace of its own (inOwnNetns).
const inNetns = "WSGATE_TEST_NETNS_BINARY"

// inOwnNetns runs the calling test again, in a new network namespace with
// its own loopback, where the ports of the embedded default configuration
// (8080, and 8090 for the admin listener) are free whatever else runs on
// the machine (a wsgate someone started with the README's first command,
// say), and reports true to the outer run, which is done. It needs
// root, as ./scripts/test.sh runs; otherwise it reports false and the
// test runs here, skipping if a port it needs is taken.
func inOwnNetns(t *testing.T, ports ...string) bool {
	if os.Getenv(inNetns) != "" {
		return false
	}
	unshare, err := exec.LookPath("unshare")
	if err == nil && os.Geteuid() == 0 {
		cmd := exec.Command(unshare, "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
			os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inNetns+"="+binary)
		out, err := cmd.CombinedOutput()
		t.Logf("in a network namespace of its own:\n%s", out)
		if err != nil {
			t.Fatalf("%v", err)
		}
		return true
	}
	for _, p := range ports {
		ln, err := net.Listen("tcp", p)
		if err != nil {
			t.Skipf("%s is taken on this machine, and without root the test cannot have a network namespace of its own", p)
		}
		ln.Close()
	}
	return false
}

// TestReadmeRunCommand runs wsgate with no arguments, as the README says,
// and uses all three demo applications and the page on 127.0.0.1:8080.
func TestReadmeRunCommand(t *testing.T) {
	if inOwnNetns(t, "127.0.0.1:8080", "127.0.0.1:8090") {
		return
	}
	cmd, addr, logs := startDaemon(t)
	if addr != "127.0.0.1:8080" {
		t.Fatalf("listening on %s", addr)
	}
	resp, err := http.Get("http://127.0.0.1:8080/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("demo page: %v %v", resp, err)
	}
	resp.Body.Close()
	e, _, err := websocket.DefaultDialer.Dial("ws://127.0.0.1:8080/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, p, err := e.ReadMessage(); err != nil || string(p) != "hi" {
		t.Fatalf("echo %q %v", p, err)
	}
	d := websocket.Dialer{Subprotocols: []string{"dumb-increment-protocol"}}
	inc, _, err := d.Dial("ws://127.0.0.1:8080/dumb-increment", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := inc.ReadMessage(); err != nil || string(p) != "0" {
		t.Fatalf("increment %q %v", p, err)
	}
	a, _, err := websocket.DefaultDialer.Dial("ws://127.0.0.1:8080/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := websocket.DefaultDialer.Dial("ws://127.0.0.1:8080/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	// b is in the chat before its 101 is written: nothing to wait for.
	a.WriteMessage(websocket.TextMessage, []byte("a: hello"))
	if _, p, err := b.ReadMessage(); err != nil || string(p) != "a: hello" {
		t.Fatalf("chat %q %v", p, err)
	}
	// The status page and the metrics the README points a newcomer to.
	for url, want := range map[string]string{"http://127.0.0.1:8090/": "<html", "http://127.0.0.1:8090/metrics": "wsgate_connections_open"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), strings.ToLower(want)) {
			t.Errorf("%s: %d, no %s", url, resp.StatusCode, want)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, logs)
	}
}

// TestGracefulShutdown checks that SIGTERM closes every client with 1001
// and that the daemon exits 0 once they have closed, before its shutdown
// timeout.
func TestGracefulShutdown(t *testing.T) {
	cfg := writeFile(t, "wsgate.yaml", `
listen:
  - address: 127.0.0.1:0
admin: {listen: off}
server:
  shutdown_timeout: 10s
routes:
  - path: /echo
    app: echo
  - path: /dumb-increment
    app: dumb-increment
`)
	cmd, addr, logs := startDaemon(t, "-config", cfg)
	var conns []*websocket.Conn
	for i := range 20 {
		var c *websocket.Conn
		var err error
		if i%2 == 0 {
			c, _, err = websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil)
		} else {
			d := websocket.Dialer{Subprotocols: []string{"dumb-increment-protocol"}}
			c, _, err = d.Dial("ws://"+addr+"/dumb-increment", nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue // increment counters still in flight
			}
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("client %d: %v, want close 1001", i, err)
			}
			break
		}
	}
	// Every client answered, so the daemon must not wait for its
	// shutdown_timeout (10s).
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs)
		}
	case <-ctx.Done():
		t.Fatalf("daemon still running %v after SIGTERM although every client closed", time.Since(start))
	}
	// New connections are refused once shutdown starts: the port is closed.
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/echo", nil); err == nil {
		t.Error("connection accepted after shutdown")
	}
}

// TestShutdownWithUnresponsiveClient: a client that never answers the
// close frame does not hold the daemon past its shutdown timeout.
func TestShutdownWithUnresponsiveClient(t *testing.T) {
	cfg := writeFile(t, "wsgate.yaml", `
listen:
  - address: 127.0.0.1:0
admin: {listen: off}
server:
  shutdown_timeout: 1s
routes:
  - path: /echo
    app: echo
    close_timeout: 30s
`)
	cmd, addr, _ := startDaemon(t, "-config", cfg)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(nc)
	if line, _ := br.ReadString('\n'); !strings.Contains(line, "101") {
		t.Fatalf("%q", line)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	// The client's close_timeout is 30s; 15s leaves a loaded machine room.
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("shutdown took %v with shutdown_timeout 1s", el)
	}
}

func TestBadConfigExits(t *testing.T) {
	cfg := writeFile(t, "bad.yaml", "routes:\n  - path: /x\n    app: nope\n")
	out, err := exec.Command(binary, "-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), cfg+":3: routes[0].app: unknown application") {
		t.Fatalf("%s %v", out, err)
	}
}

// TestCheckEveryStage: one check reports the errors of every stage at
// once, in file order: a key's typo (keys and values), missing TLS and log
// files (files, pointing at the tls block's cert and key lines), a
// missing program (applications); and the addresses that cannot all be
// bound, without binding anything; and a YAML syntax error names the key
// it is under.
func TestCheckEveryStage(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, "stages.yaml", fmt.Sprintf(`listen:
  - address: 127.0.0.1:18443
    tls:
      cert: %[1]s/missing-cert.pem
      key: %[1]s/missing-key.pem
  - address: 127.0.0.1:18443
log: {output: %[1]s/no/such/dir/wsgate.log}
admin: {listen: "127.0.0.1:18443"}
routes:
  - path: /echo
    app: echo
    origin_chek: off
  - path: /prog
    program: {command: %[1]s/no-such-program}
`, dir))
	cmd := exec.Command(binary, "check", bad)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("check passed")
	}
	out := stderr.String()
	for _, want := range []string{
		bad + ":4: listen[0].tls.cert: ",
		bad + ":5: listen[0].tls.key: ",
		bad + ":6: listen[1]: 127.0.0.1:18443 is listen[0]'s address too (line 2)",
		bad + ":2: listen[0]: 127.0.0.1:18443 is admin.listen's address too (line 8)",
		"log.output",
		bad + ":12: routes[0].origin_chek: ",
		bad + ":13: routes[1].program: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check's output lacks %q:\n%s", want, out)
		}
	}
	syntax := writeFile(t, "syntax.yaml", "routes:\n  - path: /chat\n    backend:\n      socket: /run/x.sock\n      hold: 5s: oops\n")
	out2, _ := exec.Command(binary, "check", syntax).CombinedOutput()
	if !strings.Contains(string(out2), syntax+":5: routes[0].backend: ") {
		t.Errorf("a syntax error does not name its enclosing key: %s", out2)
	}
}
