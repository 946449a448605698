package websocket_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	ws "github.com/wsgate/wsgate/testkit/wstest"
	engine "github.com/wsgate/wsgate/websocket"
)

// collector is a client Handler that records what it is given.
type collector struct {
	mu     sync.Mutex
	msgs   []string
	status chan engine.CloseStatus
}

func newCollector() *collector { return &collector{status: make(chan engine.CloseStatus, 1)} }

func (h *collector) OnMessage(_ *engine.Conn, typ engine.MessageType, p []byte) {
	h.mu.Lock()
	h.msgs = append(h.msgs, fmt.Sprintf("%d:%s", typ, p))
	h.mu.Unlock()
}
func (h *collector) OnClose(_ *engine.Conn, s engine.CloseStatus) { h.status <- s }
func (h *collector) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.msgs...)
}

// strictServer accepts one connection, checks the client's opening
// handshake byte by byte against RFC 6455 §4.1, answers with answer
// (nil: a correct 101 for the request's key), then hands the raw
// connection to the test.
func strictServer(t *testing.T, answer func(key string) string) (string, <-chan *ws.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan *ws.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Errorf("request: %v", err)
			nc.Close()
			return
		}
		key := req.Header.Get("Sec-WebSocket-Key")
		raw, _ := base64.StdEncoding.DecodeString(key)
		switch {
		case req.Method != "GET" || req.ProtoMinor != 1 || len(raw) != 16:
			t.Errorf("bad request line or key: %s %s %q", req.Method, req.Proto, key)
		case !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(req.Header.Get("Connection"), "Upgrade"):
			t.Errorf("bad Upgrade/Connection: %v", req.Header)
		case req.Header.Get("Sec-WebSocket-Version") != "13" || req.Host == "":
			t.Errorf("bad version or host: %v", req.Header)
		}
		resp := ""
		if answer != nil {
			resp = answer(key)
		} else {
			resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + ws.AcceptFor(key) + "\r\n\r\n"
		}
		nc.Write([]byte(resp))
		out <- &ws.Conn{Conn: nc, R: br}
	}()
	return "ws://" + ln.Addr().String() + "/path?q=1", out
}

func serverFrame(op byte, p []byte) []byte {
	return ws.Frame{Fin: true, Op: op, Payload: p}.Bytes()
}

// TestClientFrames: the client side against a strict server, with raw
// frames both ways: every frame the client sends is masked with a key of
// its own; a masked frame from the server is 1002; the rest as a server.
func TestClientFrames(t *testing.T) {
	for _, tc := range []struct {
		name      string
		server    [][]byte // what the server sends, in order
		clientTx  string   // a text message the client sends first
		want      []string // what the client's handler gets
		wantFrame []byte   // ops of the frames the server must read, in order (0: none)
		wantClose uint16   // the close code the client sends, 0: none expected
		status    engine.StatusCode
	}{
		{name: "text", server: [][]byte{serverFrame(ws.OpText, []byte("hi")), ws.Frame{Fin: true, Op: ws.OpClose, Payload: []byte{0x03, 0xe8}}.Bytes()},
			want: []string{"1:hi"}, wantClose: 1000, status: 1000},
		{name: "fragmented binary, 64 KiB", server: [][]byte{ws.Frame{Op: ws.OpBinary, Payload: bytes.Repeat([]byte("a"), 40000)}.Bytes(),
			ws.Frame{Fin: true, Op: ws.OpCont, Payload: bytes.Repeat([]byte("b"), 25536)}.Bytes(), serverFrame(ws.OpClose, []byte{0x03, 0xe8})},
			want: []string{"2:" + strings.Repeat("a", 40000) + strings.Repeat("b", 25536)}, wantClose: 1000, status: 1000},
		{name: "masked server frame", server: [][]byte{ws.Text("masked")}, wantClose: 1002, status: engine.StatusProtocolError},
		{name: "invalid UTF-8", server: [][]byte{serverFrame(ws.OpText, []byte{0xff})}, wantClose: 1007, status: engine.StatusInvalidPayload},
		{name: "ping gets a masked pong", server: [][]byte{serverFrame(ws.OpPing, []byte("p1")), serverFrame(ws.OpClose, []byte{0x0f, 0xa0})},
			wantFrame: []byte{ws.OpPong}, wantClose: 1000, status: 4000},
		{name: "reserved opcode", server: [][]byte{serverFrame(0x3, nil)}, wantClose: 1002, status: engine.StatusProtocolError},
		{name: "client sends", clientTx: "hello", server: [][]byte{serverFrame(ws.OpClose, []byte{0x03, 0xe8})},
			wantFrame: []byte{ws.OpText}, wantClose: 1000, status: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, conns := strictServer(t, nil)
			h := newCollector()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := engine.Dial(ctx, url, h, engine.Options{CloseTimeout: time.Second}, nil)
			if err != nil {
				t.Fatalf("dial: %v %v", err, resp)
			}
			srv := <-conns
			defer srv.Conn.Close()
			srv.Conn.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.clientTx != "" {
				c.SendText(tc.clientTx)
			}
			for _, f := range tc.server {
				srv.Conn.Write(f)
			}
			var keys [][4]byte
			for _, op := range tc.wantFrame {
				f, err := srv.ReadFrame()
				if err != nil || f.Op != op || !f.Masked {
					t.Fatalf("server read %v %v, want a masked op %#x", f, err, op)
				}
				if op == ws.OpPong && string(f.Payload) != "p1" {
					t.Errorf("pong %q", f.Payload)
				}
				if op == ws.OpText && string(f.Payload) != tc.clientTx {
					t.Errorf("text %q", f.Payload)
				}
				keys = append(keys, f.Key)
			}
			if tc.wantClose != 0 {
				f, err := srv.ReadFrame()
				if err != nil || f.Op != ws.OpClose || f.Code() != tc.wantClose || !f.Masked {
					t.Fatalf("close: %v %v, want a masked close %d", f, err, tc.wantClose)
				}
				keys = append(keys, f.Key)
				srv.Conn.Close()
			}
			if len(keys) == 2 && keys[0] == keys[1] {
				t.Errorf("two frames with the same masking key %x", keys[0])
			}
			select {
			case s := <-h.status:
				if s.Code != tc.status {
					t.Errorf("status %v, want %v", s.Code, tc.status)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no OnClose")
			}
			if got := h.got(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("messages %.60q, want %.60q", got, tc.want)
			}
		})
	}
}

// TestClientHandshakeErrors: what a client must refuse in a 101 (RFC
// 6455 §4.1 items 1-6), and a refusal's status and body.
func TestClientHandshakeErrors(t *testing.T) {
	ok := func(extra string) func(string) string {
		return func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + ws.AcceptFor(key) + "\r\n" + extra + "\r\n"
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(string) string
		opts   engine.DialOptions
		want   string
		status int
	}{
		{"refused", func(string) string {
			return "HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nno way\n"
		}, engine.DialOptions{}, "answered 403", 403},
		{"wrong accept", func(string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
		}, engine.DialOptions{}, "does not match", 101},
		{"no upgrade", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + ws.AcceptFor(key) + "\r\n\r\n"
		}, engine.DialOptions{}, "Upgrade", 101},
		{"a subprotocol not offered", ok("Sec-WebSocket-Protocol: chat\r\n"), engine.DialOptions{Subprotocols: []string{"v2"}}, "not offered", 101},
		{"an extension not offered", ok("Sec-WebSocket-Extensions: permessage-deflate\r\n"), engine.DialOptions{}, "not offered", 101},
		{"a bad deflate parameter", ok("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n"),
			engine.DialOptions{Deflate: &engine.DeflatePolicy{}}, "8 to 15", 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, conns := strictServer(t, tc.answer)
			go func() {
				if c := <-conns; c != nil {
					time.Sleep(2 * time.Second)
					c.Conn.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, resp, err := engine.Dial(ctx, url, newCollector(), engine.Options{}, &tc.opts)
			var de *engine.DialError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("got %v (%T) %v, want a DialError with %q and %d", err, err, resp, tc.want, tc.status)
			}
			if tc.status == 403 && string(de.Body) != "no way\n" {
				t.Errorf("body %q", de.Body)
			}
		})
	}
}

// TestClientInterop: the client against gorilla/websocket's server, a
// peer written by others, with and without permessage-deflate (context
// takeover both ways, and none), every size class of frame length.
func TestClientInterop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		deflate *engine.DeflatePolicy
		server  bool // the server enables compression
	}{
		{"plain", nil, false},
		{"deflate offered, refused", &engine.DeflatePolicy{}, false},
		{"deflate, no context takeover", &engine.DeflatePolicy{Threshold: 1}, true},
		{"deflate, context takeover", &engine.DeflatePolicy{Threshold: 1, ServerContextTakeover: true, ClientContextTakeover: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := websocket.Upgrader{EnableCompression: tc.server}
			var negotiated string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetReadLimit(-1)
				for {
					typ, p, err := c.ReadMessage()
					if err != nil {
						return
					}
					c.EnableWriteCompression(true)
					if err := c.WriteMessage(typ, p); err != nil {
						return
					}
				}
			}))
			defer srv.Close()
			h := newCollector()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := engine.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/echo", h, engine.Options{MaxMessageSize: 4 << 20},
				&engine.DialOptions{Deflate: tc.deflate})
			if err != nil {
				t.Fatal(err)
			}
			negotiated = resp.Header.Get("Sec-WebSocket-Extensions")
			if (negotiated != "") != tc.server {
				t.Errorf("negotiated %q", negotiated)
			}
			var want []string
			for i, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
				p := strings.Repeat(string(rune('a'+i)), n)
				c.SendText(p)
				want = append(want, "1:"+p)
			}
			c.Send(engine.BinaryMessage, []byte{0, 1, 2, 255})
			want = append(want, "2:\x00\x01\x02\xff")
			deadline := time.Now().Add(10 * time.Second)
			for len(h.got()) < len(want) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := h.got(); len(got) != len(want) {
				t.Fatalf("%d messages back, want %d", len(got), len(want))
			} else {
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("message %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
					}
				}
			}
			c.Close(1000, "done")
			select {
			case s := <-h.status:
				if s.Code != 1000 {
					t.Errorf("closed with %v", s)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no OnClose")
			}
		})
	}
}
