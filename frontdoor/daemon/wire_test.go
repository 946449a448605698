package daemon_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// TestFrameRulesOnTheWire sends each protocol violation over a real socket
// and checks the close code the daemon answers with, then that it closes
// the TCP connection.
func TestFrameRulesOnTheWire(t *testing.T) {
	ts := start(t, baseConfig+`
  - path: /small
    app: echo
    max_message_size: 30
  - path: /reserved
    app: echo
    allow_reserved_status_codes: true
`)
	f := func(fr ws.Frame) []byte { return fr.Bytes() }
	cases := []struct {
		name  string
		path  string
		extra []string
		in    []byte
		echo  []string // text messages echoed before the close
		code  uint16
	}{
		{name: "unmasked", in: f(ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte("x")}), code: 1002},
		{name: "rsv1", in: f(ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpText, Masked: true}), code: 1002},
		{name: "reserved opcode", in: f(ws.Frame{Fin: true, Op: 5, Masked: true}), code: 1002},
		{name: "fragmented ping", in: f(ws.Frame{Op: ws.OpPing, Masked: true}), code: 1002},
		{name: "long ping", in: ws.Ping(make([]byte, 126)), code: 1002},
		{name: "1-byte close", in: f(ws.Frame{Fin: true, Op: ws.OpClose, Masked: true, Payload: []byte{3}}), code: 1002},
		{name: "stray continuation", in: ws.Cont(true, []byte("x")), code: 1002},
		{name: "nested data frame", in: ws.Concat(f(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("a")}), ws.Text("b")), code: 1002},
		{name: "invalid UTF-8", in: ws.Text("a\xffb"), code: 1007},
		{name: "close code 1005", in: ws.Close(1005, ""), code: 1002},
		{name: "close code 999", in: ws.Close(999, ""), code: 1002},
		{name: "close code 1016", in: ws.Close(1016, ""), code: 1002},
		{name: "close code 1016 allowed", path: "/reserved", in: ws.Close(1016, ""), code: 1000},
		{name: "close code 5000", in: ws.Close(5000, ""), code: 1002},
		{name: "close reason not UTF-8", in: ws.Close(1000, "\xc0"), code: 1007},
		{name: "clean close", in: ws.Close(1000, "bye"), code: 1000},
		{name: "close without code", in: ws.Close(0, ""), code: 1000},
		{name: "message too big", path: "/small", in: ws.Text(strings.Repeat("x", 31)), code: 1009},
		{name: "message too big, version 8", path: "/small", extra: []string{"Sec-WebSocket-Version: 8"}, in: ws.Text(strings.Repeat("x", 31)), code: 1004},
		{name: "close reason too big", path: "/small", in: ws.Close(1000, strings.Repeat("r", 29)), code: 1009},
		{name: "2^63-1 byte header", in: f(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1<<63 - 1}), code: 1009},
		{name: "fragmented with ping inside", in: ws.Concat(f(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("frag")}), ws.Ping([]byte("p")), ws.Cont(true, []byte("ment")), ws.Close(1000, "")), echo: []string{"fragment"}, code: 1000},
		{name: "frames sent with the request", in: nil, echo: []string{"early"}, code: 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/echo"
			}
			c, err := ws.Dial(ts.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := ws.Request(path, tc.extra...)
			if tc.in == nil {
				// Frames in the same write as the request, before the 101.
				req += string(ws.Concat(ws.Text("early"), ws.Close(1000, "")))
			}
			resp, err := c.Handshake(req)
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			if tc.in != nil {
				c.Write(tc.in)
			}
			cl, before, err := c.ReadUntilClose()
			if err != nil {
				t.Fatalf("no close frame: %v (frames %v)", err, before)
			}
			var echoed []string
			for _, fr := range before {
				if fr.Op == ws.OpText {
					echoed = append(echoed, string(fr.Payload))
				}
			}
			if fmt.Sprint(echoed) != fmt.Sprint(tc.echo) {
				t.Errorf("echoed %q, want %q", echoed, tc.echo)
			}
			if cl.Code() != tc.code {
				t.Errorf("close code %d (%q), want %d", cl.Code(), cl.Reason(), tc.code)
			}
			if tc.code != 1000 {
				// The peer is failed: the server closes without waiting for a
				// close frame from it.
				if err := c.ExpectEOF(2 * time.Second); err != nil {
					t.Error(err)
				}
			} else if err := c.ExpectEOF(2 * time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestUTF8FailFastOnTheWire sends a text frame whose first half holds an
// invalid sequence and never sends the second half: the close must come
// anyway.
func TestUTF8FailFastOnTheWire(t *testing.T) {
	ts := start(t, baseConfig)
	c, err := ws.Upgrade(ts.Addr, "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := ws.Text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited")
	c.Write(frame[:6+14])
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	cl, _, err := c.ReadUntilClose()
	if err != nil || cl.Code() != 1007 {
		t.Fatalf("close %v, err %v; want 1007 before the frame is complete", cl, err)
	}
}

func TestPingPong(t *testing.T) {
	ts := start(t, baseConfig)
	c, err := ws.Upgrade(ts.Addr, "/control")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte{0xAB}, 125)
	c.Write(ws.Ping(payload))
	fr, err := c.ReadFrame()
	if err != nil || fr.Op != ws.OpPong || !bytes.Equal(fr.Payload, payload) {
		t.Fatalf("got %v %v, want pong with the ping's payload", fr, err)
	}
	// The application can ping too.
	c.Write(ws.Text("ping app"))
	fr, err = c.ReadFrame()
	if err != nil || fr.Op != ws.OpPing || string(fr.Payload) != "app" {
		t.Fatalf("got %v %v, want the application's ping", fr, err)
	}
}

func TestServerInitiatedClose(t *testing.T) {
	ts := start(t, baseConfig)
	t.Run("peer answers", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/control")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(ws.Text("close 4001 done here"))
		cl, _, err := c.ReadUntilClose()
		if err != nil || cl.Code() != 4001 || cl.Reason() != "done here" {
			t.Fatalf("close %v %v", cl, err)
		}
		// Data after the server's close is not delivered; then we answer.
		c.Write(ws.Concat(ws.Text("ignored"), ws.Close(4001, "")))
		if err := c.ExpectEOF(2 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("peer never answers", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/control")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(ws.Text("close 1000"))
		start := time.Now()
		if _, _, err := c.ReadUntilClose(); err != nil {
			t.Fatal(err)
		}
		if err := c.ExpectEOF(3 * time.Second); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 250*time.Millisecond {
			t.Fatalf("closed after %v, before close_timeout (300ms)", el)
		}
	})
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	ts := start(t, baseConfig)
	other, err := ws.Upgrade(ts.Addr, "/control")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := ws.Upgrade(ts.Addr, "/control")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(ws.Text("panic"))
	cl, _, err := c.ReadUntilClose()
	if err != nil || cl.Code() != 1011 {
		t.Fatalf("close %v %v, want 1011", cl, err)
	}
	other.Write(ws.Text("still here"))
	fr, err := other.ReadFrame()
	if err != nil || string(fr.Payload) != "still here" {
		t.Fatalf("other connection: %v %v", fr, err)
	}
	if !strings.Contains(ts.Logs.String(), "application panicked") || !strings.Contains(ts.Logs.String(), "test panic") {
		t.Error("the panic was not logged")
	}
}

func TestSlowConsumerPolicies(t *testing.T) {
	ts := start(t, baseConfig+`
  - path: /slow-close
    app: test-control
    max_queue: 64KiB
    close_timeout: 2s
  - path: /slow-drop
    app: test-control
    max_queue: 64KiB
    slow_consumer: drop
`)
	// The client reads nothing until the server has queued far more than
	// the socket buffers and the queue limit hold, then reads everything.
	t.Run("close", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/slow-close")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		flood(t, c, 2000, 16384)
		cl, before, err := c.ReadUntilClose()
		if err != nil || cl.Code() != 1008 {
			t.Fatalf("close %v %v after %d frames, want 1008", cl, err, len(before))
		}
		if len(before) >= 2000 {
			t.Fatalf("all %d messages were buffered", len(before))
		}
	})
	t.Run("drop", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/slow-drop")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		flood(t, c, 2000, 16384)
		got := 0
		for {
			fr, err := c.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if fr.Op == ws.OpText {
				var dropped int
				fmt.Sscanf(string(fr.Payload), "dropped %d", &dropped)
				if dropped == 0 || got+dropped != 2000 {
					t.Fatalf("received %d, dropped %d; want some dropped and the sum 2000", got, dropped)
				}
				break
			}
			got++
		}
		// The connection is still usable.
		c.Write(ws.Text("after"))
		if fr, err := c.ReadFrame(); err != nil || string(fr.Payload) != "after" {
			t.Fatalf("%v %v", fr, err)
		}
	})
}

func TestConcurrentSendersOnTheWire(t *testing.T) {
	ts := start(t, baseConfig)
	c, err := ws.Upgrade(ts.Addr, "/control")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const g, n = 8, 500
	c.Write(ws.Text(fmt.Sprintf("burst %d %d", g, n)))
	next := make([]int, g)
	for range g * n {
		fr, err := c.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		var i, j int
		fmt.Sscanf(string(fr.Payload), "%d %d", &i, &j)
		if j != next[i] {
			t.Fatalf("goroutine %d: message %d after %d", i, j, next[i]-1)
		}
		next[i]++
	}
}

func TestBroadcastAndRooms(t *testing.T) {
	ts := start(t, baseConfig)
	var cs []*ws.Conn
	for range 4 {
		c, err := ws.Upgrade(ts.Addr, "/control")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	read := func(c *ws.Conn) string {
		fr, err := c.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		return string(fr.Payload)
	}
	for _, c := range cs[:2] {
		c.Write(ws.Text("join blue"))
		if got := read(c); got != "joined blue" {
			t.Fatal(got)
		}
	}
	cs[3].Write(ws.Text("say blue hello blue"))
	for _, c := range cs[:2] {
		if got := read(c); got != "hello blue" {
			t.Fatalf("room member got %q", got)
		}
	}
	cs[0].Write(ws.Text("all to everyone"))
	for _, c := range cs[1:] {
		if got := read(c); got != "to everyone" {
			t.Fatalf("got %q", got)
		}
	}
	cs[1].Write(ws.Text("leave blue"))
	if got := read(cs[1]); got != "left blue" {
		t.Fatal(got)
	}
	cs[2].Write(ws.Text("say blue second"))
	if got := read(cs[0]); got != "second" {
		t.Fatal(got)
	}
	// Nobody else got anything: the next frame each reads is its own echo.
	for i, c := range cs {
		c.Write(ws.Text(fmt.Sprintf("echo %d", i)))
		if got := read(c); got != fmt.Sprintf("echo %d", i) {
			t.Fatalf("conn %d got %q", i, got)
		}
	}
}

func TestChatBroadcast(t *testing.T) {
	ts := start(t, baseConfig)
	var cs []*ws.Conn
	for range 3 {
		c, err := ws.Upgrade(ts.Addr, "/chat")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	waitFor(time.Second, func() bool { return ts.Gateway().Route("/chat").Hub().Len() == 3 })
	cs[1].Write(ws.Text("bob: hi"))
	for i, c := range cs {
		fr, err := c.ReadFrame()
		if err != nil || string(fr.Payload) != "bob: hi" {
			t.Fatalf("client %d: %v %v", i, fr, err)
		}
	}
}

func TestDumbIncrement(t *testing.T) {
	ts := start(t, baseConfig)
	// Timed from before the handshake, which the counter cannot precede:
	// a lower bound that a slow client cannot break.
	begin := time.Now()
	c, err := ws.Upgrade(ts.Addr, "/dumb-increment", "Sec-WebSocket-Protocol: dumb-increment-protocol")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func() string {
		fr, err := c.ReadFrame()
		if err != nil || fr.Op != ws.OpText {
			t.Fatalf("%v %v", fr, err)
		}
		return string(fr.Payload)
	}
	for i := range 5 {
		if got := read(); got != fmt.Sprint(i) {
			t.Fatalf("counter %q, want %d", got, i)
		}
	}
	if el := time.Since(begin); el < 180*time.Millisecond {
		t.Fatalf("5 counts in %v: not every 50ms", el)
	}
	c.Write(ws.Text("reset\n"))
	// A count may be in flight; the counter restarts from 0 soon after.
	for range 3 {
		if read() == "0" {
			return
		}
	}
	t.Fatal("counter did not reset")
}

func TestIdleAndKeepalive(t *testing.T) {
	ts := start(t, baseConfig+`
  - path: /idle
    app: echo
    idle_timeout: 200ms
  - path: /keepalive
    app: echo
    keepalive_interval: 50ms
`)
	t.Run("idle", func(t *testing.T) {
		// Measured from before the handshake: the server's idle clock
		// starts with its 101, which the client reads a little later.
		start := time.Now()
		c, err := ws.Upgrade(ts.Addr, "/idle")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, _, err := c.ReadUntilClose()
		if err != nil || cl.Code() != 1001 {
			t.Fatalf("%v %v", cl, err)
		}
		// Only a lower bound: nothing else would close this connection, and
		// a loaded machine may be late.
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Fatalf("closed after %v with idle_timeout 200ms", el)
		}
	})
	t.Run("keepalive answered", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/keepalive")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 5 {
			fr, err := c.ReadFrame()
			if err != nil || fr.Op != ws.OpPing {
				t.Fatalf("%v %v", fr, err)
			}
			c.Write(ws.Pong(fr.Payload))
		}
	})
	t.Run("keepalive unanswered", func(t *testing.T) {
		c, err := ws.Upgrade(ts.Addr, "/keepalive")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, _, err := c.ReadUntilClose()
		if err != nil || cl.Code() != 1001 {
			t.Fatalf("%v %v", cl, err)
		}
	})
}

func TestHandshakeTimeout(t *testing.T) {
	ts := start(t, strings.Replace(baseConfig, "handshake_timeout: 2s", "handshake_timeout: 200ms", 1))
	c, err := ws.Dial(ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n")) // and never finish
	if err := c.ExpectEOF(3 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLargeMessagesRoundTrip(t *testing.T) {
	ts := start(t, baseConfig)
	c, err := ws.Upgrade(ts.Addr, "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		// Send it in four fragments written separately.
		q := n / 4
		c.Write(ws.Frame{Op: ws.OpBinary, Masked: true, Payload: p[:q]}.Bytes())
		c.Write(ws.Cont(false, p[q:2*q]))
		c.Write(ws.Cont(false, p[2*q:3*q]))
		c.Write(ws.Cont(true, p[3*q:]))
		fr, err := c.ReadFrame()
		if err != nil || fr.Op != ws.OpBinary || !bytes.Equal(fr.Payload, p) {
			t.Fatalf("%d bytes: %v %v", n, fr, err)
		}
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	ts := start(t, baseConfig)
	base := runtime.NumGoroutine()
	for i := range 50 {
		c, err := ws.Upgrade(ts.Addr, []string{"/echo", "/control", "/chat"}[i%3])
		if err != nil {
			t.Fatal(err)
		}
		c.Write(ws.Text("x"))
		c.ReadFrame()
		switch i % 3 {
		case 0:
			c.Write(ws.Close(1000, ""))
			c.ExpectEOF(2 * time.Second)
		case 1:
			c.Write(ws.Text("\xff"))
			c.ReadUntilClose()
		}
		c.Close()
	}
	inc, err := ws.Upgrade(ts.Addr, "/dumb-increment", "Sec-WebSocket-Protocol: dumb-increment-protocol")
	if err != nil {
		t.Fatal(err)
	}
	inc.ReadFrame()
	inc.Close()
	if !waitFor(5*time.Second, func() bool { return ts.Gateway().Len() == 0 && runtime.NumGoroutine() <= base+2 }) {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d connections and %d goroutines left (base %d)\n%s", ts.Gateway().Len(), runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
	}
}
