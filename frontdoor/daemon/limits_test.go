package daemon_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// status sends a raw request and returns the answer's status and
// Retry-After, or fails.
func status(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	c, err := ws.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Handshake(raw)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestHeaderLimits: a header past max_header_bytes or max_header_count is
// refused with 431 before it is read in full, whatever the client sends.
func TestHeaderLimits(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_header_bytes: 4KiB, max_header_count: 50}
routes: [{path: /echo, app: echo}]
`)
	many := make([]string, 10000)
	for i := range many {
		many[i] = fmt.Sprintf("X-H%d: v", i)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  int
	}{
		{"ordinary", nil, 101},
		{"one long field", []string{"Cookie: " + strings.Repeat("a", 8<<10)}, 431},
		{"10,000 fields", many, 431},
		{"50 fields", many[:40], 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := status(t, s.Addr, ws.Request("/echo", tc.extra...)); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	// A client that never ends its 1 MiB header: the server answers 431
	// once max_header_bytes are in, without reading the rest.
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Bloat: ")
	go func() {
		chunk := []byte(strings.Repeat("b", 4096))
		for range 256 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("a header that never ends: %v %v", resp, err)
	}
}

// TestConnectionLimits: past each limit an upgrade is refused at once,
// with the status and Retry-After the cause calls for; a client behind a
// trusted proxy is counted by its own address, so a flood from one
// address is capped while another address is served.
func TestConnectionLimits(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 3, handshake_rate_per_ip: 4, handshake_burst_per_ip: 6}
routes:
  - {path: /proxied, app: echo, trusted_proxies: [127.0.0.1]}
  - {path: /small, app: echo, max_connections: 2, trusted_proxies: [127.0.0.1]}
`)
	var held []*ws.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	open := func(path, ip string) (int, string) {
		c, err := ws.Dial(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Handshake(ws.Request(path, "X-Forwarded-For: "+ip))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 101 {
			held = append(held, c)
		} else {
			c.Close()
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 3 {
		if st, _ := open("/proxied", "203.0.113.1"); st != 101 {
			t.Fatalf("connection %d from one address: %d", i, st)
		}
	}
	if st, retry := open("/proxied", "203.0.113.1"); st != 503 || retry == "" {
		t.Fatalf("fourth connection from one address: %d, Retry-After %q; want 503 with Retry-After", st, retry)
	}
	if st, _ := open("/proxied", "203.0.113.2"); st != 101 {
		t.Fatalf("another address was refused: %d", st)
	}
	// The rate: a burst of 6 per address, then 429 with Retry-After.
	var codes []int
	for range 7 {
		st, retry := open("/small", "198.51.100.7")
		codes = append(codes, st)
		if st == 429 && retry == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	// Two fit the route's max_connections; the rest of the burst gets 503
	// (route full), and the seventh handshake in a burst of six gets 429.
	want := []int{101, 101, 503, 503, 503, 503, 429}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", codes, want)
	}
	// Without a trusted proxy, X-Forwarded-For is the client's own claim
	// and counts for nothing: all of these are 127.0.0.1's.
	s2 := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 2}
routes: [{path: /echo, app: echo}]
`)
	for i, want := range []int{101, 101, 503} {
		c, _ := ws.Dial(s2.Addr)
		defer c.Close()
		resp, err := c.Handshake(ws.Request("/echo", fmt.Sprintf("X-Forwarded-For: 10.0.0.%d", i)))
		if err != nil || resp.StatusCode != want {
			t.Fatalf("connection %d: %v %v, want %d", i, resp, err, want)
		}
	}
}

// TestMaxConnections: past server.max_connections a new connection gets
// a 503 before it has even sent a request: nobody waits in the backlog.
func TestMaxConnections(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections: 5}
routes: [{path: /echo, app: echo}]
`)
	for range 5 {
		c, err := ws.Upgrade(s.Addr, "/echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past max_connections: %v %v", resp, err)
	}
	if n := s.Front().Refused["max_connections"]; n != 1 {
		t.Fatalf("refusals counted: %d", n)
	}
}

// TestPendingHandshakes: connections that have not finished a request
// are capped, so slow clients cost at most max_pending_handshakes header
// buffers; the next one is refused at once.
func TestPendingHandshakes(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_pending_handshakes: 4, handshake_timeout: 30s}
routes: [{path: /echo, app: echo}]
`)
	for range 4 {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n") // and never more
	}
	// The four are counted once net/http has them.
	if !waitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == 503
	}) {
		t.Fatal("a fifth pending handshake was not refused")
	}
	if s.Front().Refused["max_pending_handshakes"] == 0 {
		t.Fatal("refusal not counted")
	}
}

// TestStalledMessage: a client that stops in the middle of a message is
// closed with 1008 at message_timeout, and its partial message freed.
func TestStalledMessage(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
routes: [{path: /echo, app: echo, message_timeout: 300ms}]
`)
	c, err := ws.Upgrade(s.Addr, "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := ws.Binary(make([]byte, 100000))
	c.Write(frame[:50000])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.ReadFrame()
	if err != nil || f.Op != ws.OpClose || f.Code() != 1008 {
		t.Fatalf("want close 1008, got %v %v", f, err)
	}
}
