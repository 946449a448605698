// Package load is the harness's client side: one WebSocket client, written
// on raw frames, used against every server so that differences in the
// figures come from the servers. It costs little per message (a fixed mask
// of zero, no allocation after the handshake) so that on a small machine
// the client is not what is measured.
package load

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Deflate is the extension offer the deflate scenario makes. Both sides
// drop their context after each message, so the client can send one
// precompressed frame again and again, and every peer library supports it.
const Deflate = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// Conn is one client connection after its handshake.
type Conn struct {
	NC net.Conn
	br *bufio.Reader
	// Extensions is the server's Sec-WebSocket-Extensions answer.
	Extensions string
	// sock is the socket under a wss connection, whose writes can be held
	// back (see Begin).
	sock *holdable
	// rest is the end of a TLS record begun by Begin and not yet sent.
	rest []byte
}

// holdable is a socket whose writes can be kept instead of sent, so that
// a TLS record sealed by crypto/tls can be sent in parts.
type holdable struct {
	net.Conn
	holding bool
	held    []byte
}

func (h *holdable) Write(p []byte) (int, error) {
	if h.holding {
		h.held = append(h.held, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

// Begin sends the first n bytes of the TLS record carrying frame on a
// wss connection and keeps the rest for Finish: the server is left with a
// record begun, as a client on a slow network leaves it.
func (c *Conn) Begin(frame []byte, n int) error {
	if c.sock == nil {
		return errors.New("not a wss connection")
	}
	c.sock.holding = true
	_, err := c.NC.Write(frame)
	c.sock.holding = false
	rec := c.sock.held
	c.sock.held = nil
	if err != nil {
		return err
	}
	if n >= len(rec) {
		return fmt.Errorf("%d bytes is not part of a %d-byte record", n, len(rec))
	}
	c.rest = rec[n:]
	_, err = c.sock.Conn.Write(rec[:n])
	return err
}

// Finish sends what Begin kept.
func (c *Conn) Finish() error {
	rest := c.rest
	c.rest = nil
	_, err := c.sock.Conn.Write(rest)
	return err
}

var dialSeq atomic.Uint64

// Dial opens a WebSocket to target (ws://host:port/path, or wss:// over
// TLS without checking the server's certificate: the harness's servers
// use throwaway ones). Loopback
// connections are spread over source addresses 127.0.0.2 and up, 20,000
// per address, so that tens of thousands of them do not exhaust one
// address's ephemeral ports. extensions, if not empty, is offered.
func Dial(target, extensions string, readBuf int) (*Conn, error) {
	return dial(target, extensions, readBuf, false)
}

// DialRaw opens a TCP connection to target's host and sends no handshake:
// for the raw TCP echo baseline.
func DialRaw(target string, readBuf int) (*Conn, error) {
	return dial(target, "", readBuf, true)
}

func dial(target, extensions string, readBuf int, raw bool) (*Conn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host += map[bool]string{false: ":80", true: ":443"}[u.Scheme == "wss"]
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if strings.HasPrefix(host, "127.") {
		i := dialSeq.Add(1)
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+(i/20000)%200))}
	}
	nc, err := d.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	if raw {
		return &Conn{NC: nc, br: bufio.NewReaderSize(nc, max(readBuf, 16))}, nil
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return keepAlive(nc, u, readBuf)
	}
	var sock *holdable
	if u.Scheme == "wss" {
		sock = &holdable{Conn: nc}
		tc := tls.Client(sock, &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			Reset(nc)
			return nil, err
		}
		nc = tc
	}
	c, err := Handshake(nc, u.Host, u.RequestURI(), extensions, readBuf)
	if err != nil {
		Reset(nc)
		return nil, err
	}
	c.sock = sock
	return c, nil
}

// keepAlive makes one plain HTTP/1.1 request on nc (over TLS for https)
// and reads the whole response, leaving an idle keep-alive connection: a
// server's cost for an idle client that is not a WebSocket, the floor
// under what an idle WebSocket costs it.
func keepAlive(nc net.Conn, u *url.URL, readBuf int) (*Conn, error) {
	if u.Scheme == "https" {
		tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()})
		nc = tc
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := io.WriteString(nc, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+"\r\n\r\n"); err != nil {
		Reset(nc)
		return nil, err
	}
	br := bufio.NewReaderSize(nc, max(readBuf, 4096))
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err == nil && resp.Close {
		err = errors.New("the server did not keep the connection alive")
	}
	if err != nil {
		Reset(nc)
		return nil, err
	}
	return &Conn{NC: nc, br: br}, nil
}

// Handshake sends the opening handshake on nc and reads the 101.
// ExtraHeaders are header lines ("Name: value\r\n" each) every handshake
// sends: the load command's -header, for a route with auth.
var ExtraHeaders string

func Handshake(nc net.Conn, host, path, extensions string, readBuf int) (*Conn, error) {
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if extensions != "" {
		req += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	req += ExtraHeaders
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		return nil, err
	}
	if readBuf < 16 {
		readBuf = 4096
	}
	br := newReaderSize(nc, readBuf)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 101 ") {
		return nil, fmt.Errorf("handshake: %q %v", strings.TrimSpace(line), err)
	}
	c := &Conn{NC: nc, br: br}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if l == "\r\n" {
			return c, nil
		}
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Extensions") {
			c.Extensions = strings.TrimSpace(v)
		}
	}
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, 64<<10) }

func newReaderSize(nc net.Conn, n int) *bufio.Reader { return bufio.NewReaderSize(nc, n) }

// Reset closes nc with a reset (SO_LINGER 0), so that the client keeps no
// TIME_WAIT socket: thousands of those slow the next run's connects down.
func Reset(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn() // no close_notify: the reset is the point
	}
	if h, ok := nc.(*holdable); ok {
		nc = h.Conn
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	nc.Close()
}

// Buffered is what the connection's reader has read from the socket and
// not yet consumed (the start of the server's first frames, read with the
// handshake's answer), for a caller that reads the socket itself.
func (c *Conn) Buffered() io.Reader {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.NewReader(append([]byte(nil), b...))
}

// Close resets the connection.
func (c *Conn) Close() { Reset(c.NC) }

// Frame builds a masked client frame with a zero mask key, so the payload
// needs no masking work. rsv1 marks a compressed message.
func Frame(op byte, payload []byte, rsv1 bool) []byte {
	n := len(payload)
	b0 := 0x80 | op
	if rsv1 {
		b0 |= 0x40
	}
	f := []byte{b0}
	switch {
	case n <= 125:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, payload...)
}

// Payload returns n bytes of lowercase text: valid UTF-8 for text
// messages, and compressible the way real messages are.
func Payload(n int) []byte {
	p := make([]byte, n)
	words := []string{"wsgate ", "frame ", "gateway ", "message ", "socket ", "apache ", "echo ", "42 "}
	k := 0
	for i := range p {
		w := words[(i/7+k)%len(words)]
		p[i] = w[i%len(w)]
		if i%61 == 0 {
			k++
		}
	}
	return p
}

// ErrClosed is returned when the server sent a close frame.
var ErrClosed = errors.New("server closed the connection")

// header is a frame header as read from the stream.
type header struct {
	b0     byte // FIN, RSV and opcode
	masked bool
	mask   [4]byte
	length uint64
}

func (h header) fin() bool { return h.b0&0x80 != 0 }
func (h header) op() byte  { return h.b0 & 0x0F }

// readHeader reads one frame header. A masked frame is accepted too: the
// raw TCP echo baseline returns the client's own frames.
func (c *Conn) readHeader() (h header, err error) {
	var b [8]byte
	if _, err := io.ReadFull(c.br, b[:2]); err != nil {
		return h, err
	}
	h.b0, h.masked, h.length = b[0], b[1]&0x80 != 0, uint64(b[1]&0x7F)
	switch h.length {
	case 126:
		if _, err := io.ReadFull(c.br, b[:2]); err != nil {
			return h, err
		}
		h.length = uint64(binary.BigEndian.Uint16(b[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, b[:8]); err != nil {
			return h, err
		}
		h.length = binary.BigEndian.Uint64(b[:8])
	}
	if h.masked {
		if _, err := io.ReadFull(c.br, h.mask[:]); err != nil {
			return h, err
		}
	}
	return h, nil
}

// ReadMessage reads frames up to the end of one data message (a server
// may fragment it; control frames between fragments are skipped),
// discarding their payloads, and returns the message's length.
func (c *Conn) ReadMessage() (int, error) {
	total := 0
	for {
		h, err := c.readHeader()
		if err != nil {
			return total, err
		}
		if _, err := c.br.Discard(int(h.length)); err != nil {
			return total, err
		}
		if h.op() == 0x8 {
			return total, ErrClosed
		}
		if h.op() >= 0x8 {
			continue
		}
		total += int(h.length)
		if h.fin() {
			return total, nil
		}
	}
}

// ReadPayload reads one data message, reassembled from its frames, and
// returns its first frame's first byte and its payload, for checks outside
// the timed loop.
func (c *Conn) ReadPayload() (b0 byte, p []byte, err error) {
	first := true
	for {
		h, err := c.readHeader()
		if err != nil {
			return 0, nil, err
		}
		part := make([]byte, h.length)
		if _, err := io.ReadFull(c.br, part); err != nil {
			return 0, nil, err
		}
		if h.op() >= 0x8 {
			continue
		}
		for i := range part {
			part[i] ^= h.mask[i%4]
		}
		if first {
			b0, first = h.b0, false
		}
		p = append(p, part...)
		if h.fin() {
			return b0, p, nil
		}
	}
}
