package main

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestHello builds and runs the example program and talks to it.
func TestHello(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-tick", "100ms")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg=listening address=(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(10 * time.Second):
		t.Fatal("example did not start")
	}
	url := "ws://" + addr + "/hello"

	if _, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"X-Banned": {"1"}}); err == nil || resp.StatusCode != 403 {
		t.Fatalf("banned client: %v %v", resp, err)
	}
	d := websocket.Dialer{Subprotocols: []string{"other", "hello.v1"}}
	a, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Subprotocol() != "hello.v1" || resp.Header.Get("X-Hello") != "1" {
		t.Fatalf("subprotocol %q, X-Hello %q", a.Subprotocol(), resp.Header.Get("X-Hello"))
	}
	b, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	next := func(c *websocket.Conn) string {
		for {
			_, p, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(p) != "tick" {
				return string(p)
			}
		}
	}
	if got := next(a); !regexp.MustCompile(`^welcome guest\d+$`).MatchString(got) {
		t.Fatalf("%q", got)
	}
	next(b)
	a.WriteMessage(websocket.TextMessage, []byte("ann: hi all"))
	for _, c := range []*websocket.Conn{a, b} {
		if got := next(c); got != "[ann] hi all" {
			t.Fatalf("%q", got)
		}
	}
	// Ticks come from the application's own goroutine.
	_, p, err := b.ReadMessage()
	if err != nil || string(p) != "tick" {
		t.Fatalf("%q %v", p, err)
	}
	a.WriteMessage(websocket.BinaryMessage, []byte{1})
	for {
		_, _, err := a.ReadMessage()
		if err == nil {
			continue // ticks queued before the close
		}
		if !websocket.IsCloseError(err, websocket.CloseUnsupportedData) {
			t.Fatalf("%v", err)
		}
		break
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if _, _, err := b.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		// Ticks may still be queued ahead of the close.
		for err == nil {
			_, _, err = b.ReadMessage()
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("%v", err)
		}
	}
	io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
