// Package wstest is a raw-wire WebSocket client for tests: it writes
// hand-built handshakes and frames, byte for byte, and reads what the
// server puts on the wire, so tests assert protocol behaviour without a
// client library smoothing it over.
package wstest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Opcodes, repeated here so tests read like the RFC.
const (
	OpCont   = 0x0
	OpText   = 0x1
	OpBinary = 0x2
	OpClose  = 0x8
	OpPing   = 0x9
	OpPong   = 0xA
)

// Key is the sample key from RFC 6455 §1.3; its accept value is
// "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
const Key = "dGhlIHNhbXBsZSBub25jZQ=="

// Frame describes one frame to build.
type Frame struct {
	Fin    bool
	RSV    byte // bits 0x40, 0x20, 0x10
	Op     byte
	Masked bool
	// Length overrides the declared payload length when non-zero, to build
	// frames that lie about their size.
	Length  uint64
	Payload []byte
	Mask    [4]byte
}

// Bytes encodes f. Masked frames use f.Mask, or 0x37fa213d (RFC 6455
// §5.7's example key) when it is zero.
func (f Frame) Bytes() []byte {
	var b bytes.Buffer
	b0 := f.Op | f.RSV
	if f.Fin {
		b0 |= 0x80
	}
	b.WriteByte(b0)
	n := uint64(len(f.Payload))
	if f.Length != 0 {
		n = f.Length
	}
	var mbit byte
	if f.Masked {
		mbit = 0x80
	}
	switch {
	case n <= 125:
		b.WriteByte(mbit | byte(n))
	case n <= 0xFFFF:
		b.WriteByte(mbit | 126)
		binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(mbit | 127)
		binary.Write(&b, binary.BigEndian, n)
	}
	p := append([]byte(nil), f.Payload...)
	if f.Masked {
		key := f.Mask
		if key == [4]byte{} {
			key = [4]byte{0x37, 0xfa, 0x21, 0x3d}
		}
		b.Write(key[:])
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	b.Write(p)
	return b.Bytes()
}

// Client frame helpers: final, masked.
func Text(s string) []byte {
	return Frame{Fin: true, Op: OpText, Masked: true, Payload: []byte(s)}.Bytes()
}
func Binary(p []byte) []byte { return Frame{Fin: true, Op: OpBinary, Masked: true, Payload: p}.Bytes() }
func Ping(p []byte) []byte   { return Frame{Fin: true, Op: OpPing, Masked: true, Payload: p}.Bytes() }
func Pong(p []byte) []byte   { return Frame{Fin: true, Op: OpPong, Masked: true, Payload: p}.Bytes() }
func Cont(fin bool, p []byte) []byte {
	return Frame{Fin: fin, Op: OpCont, Masked: true, Payload: p}.Bytes()
}

// Close builds a masked close frame with a code and reason; code 0 means an
// empty body.
func Close(code uint16, reason string) []byte {
	var p []byte
	if code != 0 {
		p = binary.BigEndian.AppendUint16(nil, code)
		p = append(p, reason...)
	}
	return Frame{Fin: true, Op: OpClose, Masked: true, Payload: p}.Bytes()
}

// Concat joins frames into one write.
func Concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Request builds an upgrade request for path with the standard headers;
// extra lines ("Name: value") are appended and may override them by
// appearing alone (pass "-Name" to drop a standard header).
func Request(path string, extra ...string) string {
	std := []string{"Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + Key, "Sec-WebSocket-Version: 13"}
	var lines []string
	drop := map[string]bool{}
	over := map[string]bool{}
	for _, e := range extra {
		if strings.HasPrefix(e, "-") {
			drop[strings.ToLower(e[1:])] = true
			continue
		}
		name, _, _ := strings.Cut(e, ":")
		over[strings.ToLower(name)] = true
	}
	for _, s := range std {
		name, _, _ := strings.Cut(s, ":")
		if !drop[strings.ToLower(name)] && !over[strings.ToLower(name)] {
			lines = append(lines, s)
		}
	}
	lines = append(lines, extraLines(extra)...)
	return "GET " + path + " HTTP/1.1\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
}

func extraLines(extra []string) []string {
	var out []string
	for _, e := range extra {
		if !strings.HasPrefix(e, "-") {
			out = append(out, e)
		}
	}
	return out
}

// Conn is a raw client connection.
type Conn struct {
	net.Conn
	R *bufio.Reader
	// Resp is the handshake response.
	Resp *http.Response
}

// Dial connects to addr ("host:port" or a UNIX socket path starting with
// "/").
func Dial(addr string) (*Conn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &Conn{Conn: nc, R: bufio.NewReader(nc)}, nil
}

// Handshake sends a raw request and reads the response head.
func (c *Conn) Handshake(raw string) (*http.Response, error) {
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, err
	}
	var req *http.Request
	if strings.HasPrefix(raw, "HEAD ") {
		req = &http.Request{Method: http.MethodHead}
	}
	resp, err := http.ReadResponse(c.R, req)
	if err != nil {
		return nil, err
	}
	c.Resp = resp
	if resp.StatusCode != http.StatusSwitchingProtocols {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}
	return resp, nil
}

// Upgrade dials addr and completes a handshake for path, failing unless
// the answer is 101.
func Upgrade(addr, path string, extra ...string) (*Conn, error) {
	c, err := Dial(addr)
	if err != nil {
		return nil, err
	}
	return c.Upgrade(path, extra...)
}

// Status opens a WebSocket to url (ws://host:port/path), offering protos
// as subprotocols, and returns the handshake's HTTP status (101 when it
// was accepted), or 0 when no answer came. The connection is closed.
func Status(url string, protos ...string) int {
	rest, ok := strings.CutPrefix(url, "ws://")
	if !ok {
		return 0
	}
	host, path, _ := strings.Cut(rest, "/")
	c, err := Dial(host)
	if err != nil {
		return 0
	}
	defer c.Close()
	extra := []string{"Host: " + host}
	if len(protos) > 0 {
		extra = append(extra, "Sec-WebSocket-Protocol: "+strings.Join(protos, ", "))
	}
	resp, err := c.Handshake(Request("/"+path, extra...))
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// DialTLS connects to addr over TLS.
func DialTLS(addr string, cfg *tls.Config) (*Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	nc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &Conn{Conn: nc, R: bufio.NewReader(nc)}, nil
}

// Upgrade completes a handshake for path on a dialed connection, failing
// (and closing it) unless the answer is 101.
func (c *Conn) Upgrade(path string, extra ...string) (*Conn, error) {
	resp, err := c.Handshake(Request(path, extra...))
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 101 {
		c.Close()
		return nil, fmt.Errorf("handshake answered %s", resp.Status)
	}
	return c, nil
}

// Received is a frame read from the server.
type Received struct {
	Fin    bool
	RSV    byte
	Op     byte
	Masked bool
	// Key is a masked frame's key; Payload is unmasked.
	Key     [4]byte
	Payload []byte
}

// Code returns a close frame's code, 1005 when it has none.
func (r Received) Code() uint16 {
	if len(r.Payload) < 2 {
		return 1005
	}
	return binary.BigEndian.Uint16(r.Payload)
}

// Reason returns a close frame's reason.
func (r Received) Reason() string {
	if len(r.Payload) < 2 {
		return ""
	}
	return string(r.Payload[2:])
}

func (r Received) String() string {
	if r.Op == OpClose {
		return fmt.Sprintf("close(%d %q)", r.Code(), r.Reason())
	}
	if len(r.Payload) > 40 {
		return fmt.Sprintf("op=%#x fin=%v rsv=%#x len=%d", r.Op, r.Fin, r.RSV, len(r.Payload))
	}
	return fmt.Sprintf("op=%#x fin=%v rsv=%#x %q", r.Op, r.Fin, r.RSV, r.Payload)
}

// ReadFrame reads one frame.
func (c *Conn) ReadFrame() (Received, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.R, h[:]); err != nil {
		return Received{}, err
	}
	r := Received{Fin: h[0]&0x80 != 0, RSV: h[0] & 0x70, Op: h[0] & 0x0F, Masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.R, b[:]); err != nil {
			return r, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.R, b[:]); err != nil {
			return r, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<30 {
		return r, fmt.Errorf("server frame declares %d bytes", n)
	}
	var key [4]byte
	if r.Masked {
		if _, err := io.ReadFull(c.R, key[:]); err != nil {
			return r, err
		}
	}
	r.Payload = make([]byte, n)
	if _, err := io.ReadFull(c.R, r.Payload); err != nil {
		return r, err
	}
	if r.Masked {
		r.Key = key
		for i := range r.Payload {
			r.Payload[i] ^= key[i%4]
		}
	}
	return r, nil
}

// ReadUntilClose reads frames until a close frame and returns it with the
// frames before it. Pings are skipped.
func (c *Conn) ReadUntilClose() (Received, []Received, error) {
	var before []Received
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return f, before, err
		}
		if f.Op == OpClose {
			return f, before, nil
		}
		if f.Op != OpPing {
			before = append(before, f)
		}
	}
}

// ExpectEOF reads until the server closes the TCP connection and reports
// an error if it sends anything but EOF within d.
func (c *Conn) ExpectEOF(d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	var b [512]byte
	for {
		n, err := c.R.Read(b[:])
		if n > 0 {
			return fmt.Errorf("expected EOF, got %d more bytes: %q", n, b[:n])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("server did not close the connection within %v", d)
		}
		if err != nil {
			// A reset is also the server closing the connection.
			return nil
		}
	}
}

// AcceptFor is the Sec-WebSocket-Accept a server answers key with (RFC
// 6455 §4.2.2), for tests that play the server.
func AcceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
