// Package load is the harness's client side: one WebSocket client, written
// on raw frames, used against every server so that differences in the
// figures come from the servers. It costs little per message (a fixed mask
// of zero, no allocation after the handshake) so that on a small machine
// the client is not what is measured.
package load

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
}

var dialSeq atomic.Uint64

// Dial opens a WebSocket to target (ws://host:port/path). Loopback
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
		host += ":80"
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
	c, err := Handshake(nc, u.Host, u.RequestURI(), extensions, readBuf)
	if err != nil {
		Reset(nc)
		return nil, err
	}
	return c, nil
}

// Handshake sends the opening handshake on nc and reads the 101.
func Handshake(nc net.Conn, host, path, extensions string, readBuf int) (*Conn, error) {
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if extensions != "" {
		req += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
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
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	nc.Close()
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

// ReadFrame reads one frame and discards its payload, returning its
// opcode and length. A masked frame is accepted too: the raw TCP echo
// baseline returns the client's own frames.
func (c *Conn) ReadFrame() (op byte, n int, err error) {
	_, op, n, err = c.readFrame()
	return op, n, err
}

func (c *Conn) readFrame() (fin bool, op byte, n int, err error) {
	var h [14]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return false, 0, 0, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	masked := h[1]&0x80 != 0
	l := uint64(h[1] & 0x7F)
	switch l {
	case 126:
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			return false, 0, 0, err
		}
		l = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, h[:8]); err != nil {
			return false, 0, 0, err
		}
		l = binary.BigEndian.Uint64(h[:8])
	}
	if masked {
		if _, err := io.ReadFull(c.br, h[:4]); err != nil {
			return false, 0, 0, err
		}
	}
	if _, err := c.br.Discard(int(l)); err != nil {
		return false, 0, 0, err
	}
	if op == 0x8 {
		return fin, op, int(l), ErrClosed
	}
	return fin, op, int(l), nil
}

// ReadMessage reads frames up to the end of one data message (a server
// may fragment it; control frames between fragments are skipped) and
// returns the message's length.
func (c *Conn) ReadMessage() (int, error) {
	total := 0
	for {
		fin, op, n, err := c.readFrame()
		if err != nil {
			return total, err
		}
		if op >= 0x8 {
			continue
		}
		total += n
		if fin {
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
		h0, part, err := c.readPayloadFrame()
		if err != nil {
			return 0, nil, err
		}
		if h0&0x0F >= 0x8 {
			continue
		}
		if first {
			b0, first = h0, false
		}
		p = append(p, part...)
		if h0&0x80 != 0 {
			return b0, p, nil
		}
	}
}

func (c *Conn) readPayloadFrame() (b0 byte, p []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return 0, nil, err
	}
	b0, masked := h[0], h[1]&0x80 != 0
	l := uint64(h[1] & 0x7F)
	switch l {
	case 126:
		io.ReadFull(c.br, h[:2])
		l = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		io.ReadFull(c.br, h[:8])
		l = binary.BigEndian.Uint64(h[:8])
	}
	var mask [4]byte
	if masked {
		io.ReadFull(c.br, mask[:])
	}
	p = make([]byte, l)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= mask[i%4]
	}
	return b0, p, nil
}
