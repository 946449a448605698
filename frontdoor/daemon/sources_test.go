package daemon_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/testkit/testcert"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// from dials addr from the loopback address src (127.0.0.0/8 is all
// local): one host in the tests is one source address.
func from(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

// legit runs n WebSocket handshakes and echoes from src, one after the
// other, and returns how many succeeded and their slowest time.
func legit(t *testing.T, src, addr string, n int) (ok int, slowest time.Duration) {
	t.Helper()
	for i := range n {
		start := time.Now()
		nc, err := from(src, addr)
		if err != nil {
			continue
		}
		c := &ws.Conn{Conn: nc, R: bufio.NewReader(nc)}
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		resp, err := c.Handshake(ws.Request("/echo", "Host: "+addr))
		if err == nil && resp.StatusCode == 101 {
			c.Write(ws.Text(fmt.Sprint("legit ", i)))
			if f, err := c.ReadFrame(); err == nil && string(f.Payload) == fmt.Sprint("legit ", i) {
				ok++
				slowest = max(slowest, time.Since(start))
			}
		}
		nc.Close()
	}
	return ok, slowest
}

// TestPendingHandshakesPerSource: one address that opens connections and
// sends nothing (or half a request) holds at most its share of the
// pending handshakes; a client from another address keeps getting in.
// Before, 1,030 silent connections from one address filled the global
// limit and left legitimate clients 5 successes in 60.
func TestPendingHandshakesPerSource(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_pending_handshakes: 200, max_pending_handshakes_per_ip: 20, handshake_timeout: 1m}
routes: [{path: /echo, app: echo}]
`)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := 0
	for i := range 250 {
		c, err := from("127.0.0.2", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if i%2 == 1 {
			io.WriteString(c, "GET /echo HTTP/1.1\r\nHost: x\r\n") // half a request
		}
	}
	// Past its share, each is refused at once with a 503.
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if b, err := bufio.NewReader(c).ReadString('\n'); err == nil && strings.Contains(b, "503") {
			refused++
		}
	}
	if refused != 250-20 {
		t.Errorf("%d of 250 pending connections from one address refused, want 230", refused)
	}
	ok, slowest := legit(t, "127.0.0.3", s.Addr, 100)
	t.Logf("legitimate client: %d of 100, slowest %v", ok, slowest)
	if ok < 99 {
		t.Errorf("a client from another address got in %d times in 100", ok)
	}
	m := s.Metrics(t)
	if n := testserver.Sample(m, `wsgate_connections_refused_total{cause="pending_per_ip"}`); n != 230 {
		t.Errorf("pending_per_ip refusals counted: %v", n)
	}
	if n := s.Logs.Count("cause=pending_per_ip"); n < 1 || n > 12 {
		t.Errorf("%d lines for 230 refusals: none, or not limited", n)
	}
}

// TestConnectionsPerSource: max_connections_per_ip counts every connection
// of an address, keep-alive HTTP ones too, and an address holds at most
// max_idle_http_per_ip idle ones. Before, 18,912 keep-alive connections
// from one address held every slot.
func TestConnectionsPerSource(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections_per_ip: 40, max_idle_http_per_ip: 10, demo: true}
routes: [{path: /echo, app: echo}]
`)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// 60 keep-alive connections, each with one answered request.
	for range 60 {
		c, err := from("127.0.0.2", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
		}
	}
	// Only max_idle_http_per_ip of them stay open.
	if !waitFor(10*time.Second, func() bool {
		return testserver.Sample(s.Metrics(t), `wsgate_connections_refused_total{cause="idle_per_ip"}`) >= 50
	}) {
		t.Errorf("idle keep-alive connections past the limit were not closed:\n%s", testserver.Grep(s.Metrics(t), "refused_total"))
	}
	// WebSockets and plain connections count together: with the 10 idle
	// connections held, 30 WebSockets fit in 40, the 31st does not.
	upgraded := 0
	for range 31 {
		nc, err := from("127.0.0.2", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		c := &ws.Conn{Conn: nc, R: bufio.NewReader(nc)}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if resp, err := c.Handshake(ws.Request("/echo", "Host: x")); err == nil && resp.StatusCode == 101 {
			upgraded++
		}
	}
	if upgraded != 30 {
		t.Errorf("%d WebSockets next to 10 idle connections, want 30 of max_connections_per_ip 40", upgraded)
	}
	if refused := testserver.Sample(s.Metrics(t), `wsgate_connections_refused_total{cause="max_per_ip"}`); refused != 1 {
		t.Errorf("refused at max_connections_per_ip: %v, want 1", refused)
	}
	if ok, _ := legit(t, "127.0.0.3", s.Addr, 50); ok < 50 {
		t.Errorf("a client from another address got in %d times in 50", ok)
	}
}

// TestSmuggling: the framing errors of RFC 9112 §6.1 and §11.2 are
// answered and the connection closed: what hides in a body is never
// read as a request. Each case carries a second request that must not be
// served.
func TestSmuggling(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {demo: true}
routes: [{path: /echo, app: echo}]
`)
	hidden := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	chunkedHidden := "0\r\n\r\n" + hidden
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"Content-Length and Transfer-Encoding", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 400},
		{"Transfer-Encoding and Content-Length", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n" + chunkedHidden, 400},
		{"chunked alone", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 400},
		{"a body by Content-Length", fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(hidden)) + hidden, 400},
		{"two different Content-Lengths", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n" + hidden, 400},
		{"a Content-Length that is not a number", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +38\r\n\r\n" + hidden, 400},
		{"chunked not last", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" + chunkedHidden, 501},
		{"an unknown coding", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" + chunkedHidden, 501},
		{"two Transfer-Encoding fields", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 501},
		{"whitespace before the colon", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 38\r\n\r\n" + hidden, 400},
		{"a folded line", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 38\r\n\r\n" + hidden, 400},
		{"HTTP/1.0 with Transfer-Encoding, kept alive", "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 200},
		{"HTTP/1.0 with both", "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHidden, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			// Nothing follows: the connection is closed, the hidden
			// request unanswered.
			if more, err := http.ReadResponse(br, nil); err == nil {
				t.Fatalf("a second answer came (%d): the request in the body was served", more.StatusCode)
			}
		})
	}
}

// TestExactHeaderLimit: max_header_bytes counts the head as sent, the
// request line and the empty line included: a head of exactly the limit
// passes, one byte more is refused with 431, counted and logged.
func TestExactHeaderLimit(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_header_bytes: 16KiB}
routes: [{path: /echo, app: echo}]
`)
	head := func(size int) string {
		base := "GET /echo HTTP/1.1\r\nHost:x\r\nUpgrade:websocket\r\nConnection:Upgrade\r\nSec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version:13\r\nX-Pad:"
		return base + strings.Repeat("p", size-len(base)-4) + "\r\n\r\n"
	}
	for _, tc := range []struct {
		size, status int
	}{{16384, 101}, {16385, 431}, {20453, 431}, {4000, 101}} {
		h := head(tc.size)
		if len(h) != tc.size {
			t.Fatalf("head of %d bytes, want %d", len(h), tc.size)
		}
		if got, _ := status(t, s.Addr, h); got != tc.status {
			t.Errorf("a head of %d bytes: %d, want %d", tc.size, got, tc.status)
		}
	}
	if n := testserver.Sample(s.Metrics(t), `wsgate_connections_refused_total{cause="header_too_large"}`); n != 2 {
		t.Errorf("header_too_large counted %v times, want 2", n)
	}
	if s.Logs.Count("cause=header_too_large") != 2 {
		t.Errorf("header_too_large not logged:\n%s", s.Logs.String())
	}
}

// TestTLSRefusedAtAccept: a TLS client refused at accept is closed without
// a byte of plaintext (it would read it as a broken handshake), and the
// refusal is counted.
func TestTLSRefusedAtAccept(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := testcert.Write(t, dir)
	s := start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0, tls: {cert: %s, key: %s}}]
server: {max_pending_handshakes_per_ip: 1, handshake_timeout: 1m}
routes: [{path: /echo, app: echo}]
`, cert, key))
	first, err := net.Dial("tcp", s.Addr) // holds the address's one pending slot
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	raw, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	err = tc.Handshake()
	if err == nil || strings.Contains(err.Error(), "first record does not look like a TLS handshake") {
		t.Fatalf("handshake: %v, want the connection closed", err)
	}
	if !waitFor(10*time.Second, func() bool {
		return testserver.Sample(s.Metrics(t), `wsgate_connections_refused_total{cause="pending_per_ip"}`) == 1
	}) {
		t.Error("the refusal is not counted")
	}
}

// TestMemoryBudget: clients that each hold most of a message and never
// finish it cannot take more than server.memory_budget together: past
// it, the ones holding the most are closed with 1013, counted and logged,
// and a client from another address keeps being served. Before, 3,000
// connections each holding 1 MiB reached 3.1 GB whatever the limits.
func TestMemoryBudget(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {memory_budget: 8MiB}
routes: [{path: /echo, app: echo, max_message_size: 2MiB}]
`)
	var cs []*ws.Conn
	refused := 0
	for i := range 20 {
		nc, err := from("127.0.0.2", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &ws.Conn{Conn: nc, R: bufio.NewReader(nc)}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		resp, err := c.Handshake(ws.Request("/echo", "Host: x"))
		if err == nil && resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "" {
			refused++ // the source already holds over a quarter of the budget
			continue
		}
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("client %d: %v %v", i, resp, err)
		}
		// Most of a 2 MiB message (a 1 MiB first fragment), never finished.
		c.Write(ws.Frame{Op: ws.OpBinary, Masked: true, Payload: make([]byte, 1<<20)}.Bytes())
		cs = append(cs, c)
	}
	budget := func() (used, limit float64) {
		m := s.Metrics(t)
		return testserver.Sample(m, "wsgate_buffered_bytes"), testserver.Sample(m, "wsgate_memory_budget_bytes")
	}
	if !waitFor(20*time.Second, func() bool { u, l := budget(); return l == 8<<20 && u <= l }) {
		u, l := budget()
		t.Fatalf("buffered %v of a budget of %v", u, l)
	}
	shed := 0
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if f, err := c.ReadFrame(); err == nil && f.Op == ws.OpClose && f.Code() == 1013 {
			shed++
		}
	}
	// 20 MiB offered to an 8 MiB budget: at least 12 had to be shed or
	// refused, and the budget keeps the rest.
	if shed+refused < 12 {
		t.Errorf("of 20 clients holding 1 MiB each in an 8 MiB budget, %d were closed with 1013 and %d refused", shed, refused)
	}
	if ok, _ := legit(t, "127.0.0.3", s.Addr, 50); ok < 50 {
		t.Errorf("a client from another address got in %d times in 50", ok)
	}
	// What the first source still holds is over a quarter of the budget:
	// its next WebSocket is refused, with the cause counted.
	if !waitFor(10*time.Second, func() bool {
		nc, err := from("127.0.0.2", s.Addr)
		if err != nil {
			return false
		}
		c := &ws.Conn{Conn: nc, R: bufio.NewReader(nc)}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := c.Handshake(ws.Request("/echo", "Host: x"))
		return err == nil && resp.StatusCode == 503
	}) {
		t.Error("the source holding most of the budget is not refused new WebSockets")
	}
	if testserver.Sample(s.Metrics(t), `wsgate_handshakes_refused_total{cause="memory_per_ip",route="/echo",status="503"}`) < 1 {
		t.Errorf("the refusal is not counted:\n%s", testserver.Grep(s.Metrics(t), "refused"))
	}
	if s.Logs.Count("one source holds more than a quarter of the memory budget") != 1 {
		t.Error("the heavy source is not logged once")
	}
	if !waitFor(10*time.Second, func() bool {
		return testserver.Sample(s.Metrics(t), `wsgate_server_closes_total{cause="memory_budget",code="1013",route="/echo"}`) >= float64(shed)
	}) {
		t.Errorf("the closes are not counted with their cause:\n%s", testserver.Grep(s.Metrics(t), "server_closes"))
	}
	if shed > 0 && s.Logs.Count("over the memory budget") == 0 {
		t.Error("the shedding is not logged")
	}
}

// TestFrontRefusalsLogged: every refusal before a route is chosen is
// counted and has a log line (rate-limited per cause), without debug
// logs: connections over max_connections, a request with too many header
// fields, and one whose header is past even net/http's own limit (net/http
// answers that one itself: bad_request_head, as any head it refuses).
func TestFrontRefusalsLogged(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
server: {max_connections: 10, max_header_count: 20}
routes: [{path: /echo, app: echo}]
`)
	var held []net.Conn
	refused := 0
	for range 12 {
		nc, err := from("127.0.0.2", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &ws.Conn{Conn: nc, R: bufio.NewReader(nc)}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := c.Handshake(ws.Request("/echo", "Host: x"))
		switch {
		case err == nil && resp.StatusCode == 101:
			held = append(held, nc)
		case err == nil && resp.StatusCode == 503:
			refused++
			nc.Close()
		default:
			t.Fatalf("%v %v", resp, err)
		}
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if refused != 2 {
		t.Fatalf("%d of 12 refused over max_connections 10", refused)
	}
	for _, c := range held[:3] {
		c.Close()
	}
	held = held[3:]
	send := func(head string) int {
		nc, err := from("127.0.0.3", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, head)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			return 0
		}
		return resp.StatusCode
	}
	many := "GET /echo HTTP/1.1\r\nHost: x\r\n"
	for i := range 25 {
		many += fmt.Sprintf("X-F%d: v\r\n", i)
	}
	// The three closed connections free their places once the daemon
	// has seen them close.
	if !waitFor(10*time.Second, func() bool { return testserver.Sample(s.Metrics(t), `wsgate_connections_open{route="/echo"}`) == 7 }) {
		t.Fatal("the closed connections are still counted")
	}
	if st := send(many + "\r\n"); st != 431 {
		t.Errorf("25 header fields over max_header_count 20: %d", st)
	}
	if st := send("GET /echo HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 60000) + "\r\n\r\n"); st != 431 {
		t.Errorf("a 60 KB header: %d", st)
	}
	if !waitFor(10*time.Second, func() bool {
		m := s.Metrics(t)
		return testserver.Sample(m, `wsgate_connections_refused_total{cause="max_connections"}`) == 2 &&
			testserver.Sample(m, `wsgate_connections_refused_total{cause="too_many_headers"}`) == 1 &&
			testserver.Sample(m, `wsgate_connections_refused_total{cause="bad_request_head"}`) == 1
	}) {
		t.Errorf("refusals not counted:\n%s", testserver.Grep(s.Metrics(t), "connections_refused_total"))
	}
	for _, cause := range []string{"max_connections", "too_many_headers", "bad_request_head"} {
		if s.Logs.Count("msg=\"connection refused\"") == 0 || s.Logs.Count("cause="+cause) == 0 {
			t.Errorf("no log line for cause %s:\n%s", cause, testserver.Grep(s.Logs.String(), "refused"))
		}
	}
}
