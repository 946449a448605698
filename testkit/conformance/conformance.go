// Package conformance is one table of handshake and frame cases that must
// give identical results from the standalone daemon and from mod_wsgate,
// with equivalent configurations of each.
package conformance

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// DaemonRoutes configures the daemon for the cases.
const DaemonRoutes = `
routes:
  - {path: /echo, app: echo}
  - {path: /off, app: echo, origin_check: off}
  - {path: /trusted, app: echo, origin_check: trusted, trusted_origins: [https://app.example, "http://localhost:3000", https://third.example]}
  - {path: /reserved, app: echo, allow_reserved_status_codes: true}
  - {path: /small, app: echo, max_message_size: 30}
`

// ApacheLocations configures httpd for the cases, with apache-websocket's
// directives where they exist.
const ApacheLocations = `
<Location /echo>
  SetHandler websocket-handler
  WebSocketApp echo
</Location>
<Location /off>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketOriginCheck Off
</Location>
<Location /trusted>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketOriginCheck Trusted
  WebSocketTrustedOrigin https://app.example http://localhost:3000
  WebSocketTrustedOrigin https://third.example
</Location>
<Location /reserved>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketAllowReservedStatusCodes On
</Location>
<Location /small>
  SetHandler websocket-handler
  WebSocketApp echo
  WebSocketMaxMessageSize 30
</Location>
`

// Handshake is one opening handshake and its expected answer.
type Handshake struct {
	Name    string
	Request string // raw; HOST stands for the server's host:port
	Status  int
	Headers map[string]string // "" means the header must be absent
}

// Handshakes returns the handshake cases.
func Handshakes() []Handshake {
	h := "Host: HOST"
	self := "http://HOST"
	return []Handshake{
		{"valid", ws.Request("/echo", h), 101, map[string]string{"Upgrade": "websocket", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Protocol": ""}},
		{"Connection token list", ws.Request("/echo", h, "Connection: keep-alive, Upgrade"), 101, nil},
		{"Upgrade in capitals", ws.Request("/echo", h, "Upgrade: WebSocket"), 101, nil},
		{"version 8", ws.Request("/echo", h, "Sec-WebSocket-Version: 8"), 101, nil},
		{"version 7", ws.Request("/echo", h, "Sec-WebSocket-Version: 7"), 101, nil},
		{"POST", strings.Replace(ws.Request("/echo", h), "GET", "POST", 1), 400, nil},
		{"HEAD", strings.Replace(ws.Request("/echo", h), "GET", "HEAD", 1), 400, nil},
		{"HTTP/1.0", strings.Replace(ws.Request("/echo", h), "HTTP/1.1", "HTTP/1.0", 1), 400, nil},
		{"with a body", strings.Replace(ws.Request("/echo", h, "Content-Length: 5"), "\r\n\r\n", "\r\n\r\nhello", 1), 400, nil},
		{"chunked body", strings.Replace(ws.Request("/echo", h, "Transfer-Encoding: chunked"), "\r\n\r\n", "\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1), 400, nil},
		{"no Host", ws.Request("/echo", "-Host"), 400, nil},
		{"no key", ws.Request("/echo", h, "-Sec-WebSocket-Key"), 400, nil},
		{"short key", ws.Request("/echo", h, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ="), 400, nil},
		{"key not 16 bytes", ws.Request("/echo", h, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="), 400, nil},
		{"version 12", ws.Request("/echo", h, "Sec-WebSocket-Version: 12"), 400, map[string]string{"Sec-WebSocket-Version": "13,8,7"}},
		{"version 013", ws.Request("/echo", h, "Sec-WebSocket-Version: 013"), 400, map[string]string{"Sec-WebSocket-Version": "13,8,7"}},
		{"bad protocol list", ws.Request("/echo", h, "Sec-WebSocket-Protocol: a b"), 400, nil},
		{"protocols not chosen by default", ws.Request("/echo", h, "Sec-WebSocket-Protocol: chat, superchat"), 101, map[string]string{"Sec-WebSocket-Protocol": ""}},
		{"same origin", ws.Request("/echo", h, "Origin: "+self), 101, nil},
		{"other origin", ws.Request("/echo", h, "Origin: http://evil.example"), 403, nil},
		{"other port", ws.Request("/echo", h, "Origin: http://127.0.0.1:1"), 403, nil},
		{"https origin on http", ws.Request("/echo", h, "Origin: https://HOST"), 403, nil},
		{"no origin", ws.Request("/echo", h), 101, nil},
		{"version 7 Sec-WebSocket-Origin", ws.Request("/echo", h, "Sec-WebSocket-Version: 7", "Sec-WebSocket-Origin: http://evil.example", "Origin: "+self), 403, nil},
		{"version 7 ignores Origin", ws.Request("/echo", h, "Sec-WebSocket-Version: 7", "Origin: http://evil.example"), 101, nil},
		{"default port omitted", ws.Request("/echo", "Host: example.com:80", "Origin: http://example.com"), 101, nil},
		{"trusted origin", ws.Request("/trusted", h, "Origin: https://app.example"), 101, nil},
		{"second trusted origin", ws.Request("/trusted", h, "Origin: http://localhost:3000"), 101, nil},
		{"trusted origin from a second line", ws.Request("/trusted", h, "Origin: https://third.example"), 101, nil},
		{"untrusted origin", ws.Request("/trusted", h, "Origin: "+self), 403, nil},
		{"origin check off", ws.Request("/off", h, "Origin: http://evil.example"), 101, nil},
	}
}

// Result is what a server answered.
type Result struct {
	Status  int
	Headers http.Header
}

// Run sends a handshake to addr.
func (c Handshake) Run(addr string) (Result, error) {
	conn, err := ws.Dial(addr)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	resp, err := conn.Handshake(strings.ReplaceAll(c.Request, "HOST", addr))
	if err != nil {
		return Result{}, err
	}
	return Result{Status: resp.StatusCode, Headers: resp.Header}, nil
}

// Check compares a result with the expectation.
func (c Handshake) Check(r Result, addr string) error {
	if r.Status != c.Status {
		return fmt.Errorf("status %d, want %d", r.Status, c.Status)
	}
	for k, want := range c.Headers {
		if got := r.Headers.Get(k); got != strings.ReplaceAll(want, "HOST", addr) {
			return fmt.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	return nil
}

// Frame is a sequence of client frames and the close code expected.
type Frame struct {
	Name   string
	Path   string
	Extra  []string // handshake headers
	In     []byte
	Echoes []string // text payloads echoed before the close
	Pong   string   // a pong expected first, with this payload
	Close  uint16
	Answer bool // the case ends with our close, answered by the server
}

// Frames returns the frame cases.
func Frames() []Frame {
	f := func(fr ws.Frame) []byte { return fr.Bytes() }
	return []Frame{
		{Name: "unmasked", Path: "/echo", In: f(ws.Frame{Fin: true, Op: ws.OpText, Payload: []byte("x")}), Close: 1002},
		{Name: "rsv1", Path: "/echo", In: f(ws.Frame{Fin: true, RSV: 0x40, Op: ws.OpText, Masked: true}), Close: 1002},
		{Name: "reserved opcode", Path: "/echo", In: f(ws.Frame{Fin: true, Op: 3, Masked: true}), Close: 1002},
		{Name: "fragmented ping", Path: "/echo", In: f(ws.Frame{Op: ws.OpPing, Masked: true}), Close: 1002},
		{Name: "long ping", Path: "/echo", In: ws.Ping(make([]byte, 126)), Close: 1002},
		{Name: "1-byte close", Path: "/echo", In: f(ws.Frame{Fin: true, Op: ws.OpClose, Masked: true, Payload: []byte{3}}), Close: 1002},
		{Name: "stray continuation", Path: "/echo", In: ws.Cont(true, []byte("x")), Close: 1002},
		{Name: "nested data frame", Path: "/echo", In: ws.Concat(f(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("a")}), ws.Text("b")), Close: 1002},
		{Name: "invalid UTF-8", Path: "/echo", In: ws.Text("a\xffb"), Close: 1007},
		{Name: "close 1005", Path: "/echo", In: ws.Close(1005, ""), Close: 1002},
		{Name: "close 1016", Path: "/echo", In: ws.Close(1016, ""), Close: 1002},
		{Name: "close 1016 allowed", Path: "/reserved", In: ws.Close(1016, ""), Close: 1000},
		{Name: "close 5000", Path: "/echo", In: ws.Close(5000, ""), Close: 1002},
		{Name: "close reason not UTF-8", Path: "/echo", In: ws.Close(1000, "\xc0"), Close: 1007},
		{Name: "clean close", Path: "/echo", In: ws.Close(4000, "bye"), Close: 1000},
		{Name: "empty close", Path: "/echo", In: ws.Close(0, ""), Close: 1000},
		{Name: "too big", Path: "/small", In: ws.Text(strings.Repeat("x", 31)), Close: 1009},
		{Name: "too big, version 8", Path: "/small", Extra: []string{"Sec-WebSocket-Version: 8"}, In: ws.Text(strings.Repeat("x", 31)), Close: 1004},
		{Name: "close reason over the limit", Path: "/small", In: ws.Close(1000, strings.Repeat("r", 29)), Close: 1009},
		{Name: "2^63-1 byte header", Path: "/echo", In: f(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1<<63 - 1}), Close: 1009},
		// A header is judged as soon as its length is in: these stop
		// before the masking key, and the close comes without it.
		{Name: "16-bit length over the limit, no key yet", Path: "/small", In: noKey(ws.Frame{Fin: true, Op: ws.OpText, Masked: true, Length: 1000}), Close: 1009},
		{Name: "64-bit length over the limit, no key yet", Path: "/echo", In: noKey(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1 << 40}), Close: 1009},
		{Name: "2^63-1 byte header, no key yet", Path: "/echo", In: noKey(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1<<63 - 1}), Close: 1009},
		{Name: "64-bit length with the top bit set, no key yet", Path: "/echo", In: noKey(ws.Frame{Fin: true, Op: ws.OpBinary, Masked: true, Length: 1 << 63}), Close: 1002},
		{Name: "continuation declaring 2^63-1 after a fragment, no key yet", Path: "/echo",
			In: ws.Concat(f(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("a")}), noKey(ws.Frame{Fin: true, Op: ws.OpCont, Masked: true, Length: 1<<63 - 1})), Close: 1009},
		{Name: "fragments with a ping between", Path: "/echo", In: ws.Concat(f(ws.Frame{Op: ws.OpText, Masked: true, Payload: []byte("frag")}), ws.Ping([]byte("p")), ws.Cont(true, []byte("ment")), ws.Close(1000, "")), Pong: "p", Echoes: []string{"fragment"}, Close: 1000},
	}
}

// noKey is f's header without its masking key: all a client has sent
// when it stops after the length.
func noKey(f ws.Frame) []byte {
	b := f.Bytes()
	n := 2
	switch b[1] & 0x7F {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	return b[:n]
}

// FrameResult is what a server sent back.
type FrameResult struct {
	Pong   string
	Echoes []string
	Close  uint16
	EOF    bool
}

// Run sends the frames to addr and collects the answer.
func (c Frame) Run(addr string) (FrameResult, error) {
	conn, err := ws.Dial(addr)
	if err != nil {
		return FrameResult{}, err
	}
	return c.run(conn, addr)
}

// RunTLS is Run over TLS.
func (c Frame) RunTLS(addr string, cfg *tls.Config) (FrameResult, error) {
	conn, err := ws.DialTLS(addr, cfg)
	if err != nil {
		return FrameResult{}, err
	}
	return c.run(conn, addr)
}

func (c Frame) run(conn *ws.Conn, addr string) (FrameResult, error) {
	conn, err := conn.Upgrade(c.Path, append([]string{"Host: " + addr}, c.Extra...)...)
	if err != nil {
		return FrameResult{}, err
	}
	defer conn.Close()
	conn.Write(c.In)
	var r FrameResult
	for {
		fr, err := conn.ReadFrame()
		if err != nil {
			return r, fmt.Errorf("no close frame: %v", err)
		}
		switch fr.Op {
		case ws.OpPong:
			r.Pong = string(fr.Payload)
		case ws.OpText:
			r.Echoes = append(r.Echoes, string(fr.Payload))
		case ws.OpClose:
			r.Close = fr.Code()
			r.EOF = conn.ExpectEOF(3*time.Second) == nil
			return r, nil
		}
	}
}

// Check compares a result with the expectation.
func (c Frame) Check(r FrameResult) error {
	if r.Close != c.Close || r.Pong != c.Pong || fmt.Sprint(r.Echoes) != fmt.Sprint(c.Echoes) {
		return fmt.Errorf("close %d pong %q echoes %q; want close %d pong %q echoes %q", r.Close, r.Pong, r.Echoes, c.Close, c.Pong, c.Echoes)
	}
	if !r.EOF {
		return fmt.Errorf("the connection was not closed after the close frame")
	}
	return nil
}
