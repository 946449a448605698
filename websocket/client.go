package websocket

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/httptoken"
)

// The client side of the engine (RFC 6455 §4.1, §5.3): the same Conn,
// reading and writing through the same parser and queue, with the two
// rules that differ by role: every frame this side sends is masked with a
// fresh key, and a masked frame from the server is a protocol error
// (1002). permessage-deflate is offered with the client's own context
// takeover choices and set up from what the server answered (RFC 7692
// §7.1).

// DialOptions are what a client handshake offers and how it connects.
type DialOptions struct {
	// Header is added to the request: Origin, Cookie, Authorization,
	// X-Forwarded-For... The handshake's own fields (Upgrade, Connection,
	// Sec-WebSocket-*) and Host are set by the handshake and refused here.
	Header http.Header
	// Host, when set, is the Host header instead of the URL's host.
	Host string
	// Subprotocols are offered in this order; the server's choice must be
	// one of them.
	Subprotocols []string
	// Deflate, when set, offers permessage-deflate. Its Server* fields are
	// this side's compressor (the client's, in the protocol's words): its
	// context takeover and window; its Client* fields are what the
	// server is asked for. Threshold and Level as for a server.
	Deflate *DeflatePolicy
	// TLSConfig is used for wss:// (cloned; ServerName from the URL when
	// unset).
	TLSConfig *tls.Config
	// NetDial connects; a net.Dialer's DialContext by default.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Transport runs the connection over the dialled socket once the
	// handshake is done; a goroutine reading the socket by default (see
	// NewStreamTransport). A daemon passes its own, which parks idle
	// connections.
	Transport func(nc net.Conn, c *Conn, buffered []byte) Transport
	// MaxResponseBytes bounds the server's response head (16 KiB).
	MaxResponseBytes int
}

// DialError is a client handshake the server did not complete: the
// response it sent instead of a 101 (Response set, body read up to 4 KiB),
// or an answer that breaks RFC 6455 (Response set, Status 101).
type DialError struct {
	Response *http.Response
	Body     []byte
	Reason   string
}

func (e *DialError) Error() string {
	if e.Response != nil && e.Response.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Sprintf("websocket: the server answered %s", e.Response.Status)
	}
	return "websocket: bad handshake: " + e.Reason
}

// clientKeyBytes is how many random bytes the Sec-WebSocket-Key encodes
// (RFC 6455 §4.1: a 16-byte value, base64).
const clientKeyBytes = 16

// ClientHandshake runs the opening handshake as a client over nc, to the
// ws:// or wss:// URL u (nc already speaks TLS for wss), within ctx. It
// returns what NewConn needs, the server's response, and the bytes that
// followed the response (frames the server sent at once).
func ClientHandshake(ctx context.Context, nc net.Conn, u *url.URL, o *DialOptions) (*Handshake, *http.Response, []byte, error) {
	if o == nil {
		o = &DialOptions{}
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var raw [clientKeyBytes]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	host := o.Host
	if host == "" {
		host = u.Host
	}
	path := u.RequestURI()
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, p := range o.Subprotocols {
		if !httptoken.IsToken(p) {
			return nil, nil, nil, fmt.Errorf("websocket: %q is not a valid subprotocol", p)
		}
	}
	if len(o.Subprotocols) > 0 {
		b.WriteString("Sec-WebSocket-Protocol: " + strings.Join(o.Subprotocols, ", ") + "\r\n")
	}
	var policy DeflatePolicy
	if o.Deflate != nil {
		policy = *o.Deflate
		policy.setDefaults()
		b.WriteString("Sec-WebSocket-Extensions: " + deflateOffer(policy) + "\r\n")
	}
	for k, vs := range o.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol",
			"Sec-Websocket-Extensions", "Content-Length", "Transfer-Encoding":
			return nil, nil, nil, fmt.Errorf("websocket: the handshake sets %s itself", k)
		}
		if !httptoken.IsToken(k) {
			return nil, nil, nil, fmt.Errorf("websocket: invalid header name %q", k)
		}
		for _, v := range vs {
			if !httptoken.ValidValue(v) {
				return nil, nil, nil, fmt.Errorf("websocket: invalid value for %s", k)
			}
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		return nil, nil, nil, ctxErr(ctx, err)
	}
	limit := o.MaxResponseBytes
	if limit <= 0 {
		limit = 16 << 10
	}
	lr := &io.LimitedReader{R: nc, N: int64(limit)}
	br := bufio.NewReaderSize(lr, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		if lr.N <= 0 {
			return nil, nil, nil, fmt.Errorf("websocket: the response head is over %d bytes", limit)
		}
		return nil, nil, nil, ctxErr(ctx, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, resp, nil, &DialError{Response: resp, Body: body}
	}
	bad := func(reason string) (*Handshake, *http.Response, []byte, error) {
		return nil, resp, nil, &DialError{Response: resp, Reason: reason}
	}
	if !httptoken.HasToken(resp.Header, "Upgrade", "websocket") {
		return bad("no Upgrade: websocket")
	}
	if !httptoken.HasToken(resp.Header, "Connection", "upgrade") {
		return bad("no Connection: upgrade")
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
		return bad("Sec-WebSocket-Accept does not match the key")
	}
	hs := &Handshake{Version: 13, key: key, client: true}
	if ps := resp.Header.Values("Sec-WebSocket-Protocol"); len(ps) > 0 {
		p := strings.TrimSpace(ps[0])
		if len(ps) > 1 || !slices.Contains(o.Subprotocols, p) {
			return bad(fmt.Sprintf("the server chose the subprotocol %q, which was not offered", strings.Join(ps, ", ")))
		}
		hs.Protocols = []string{p}
	}
	if lines := resp.Header.Values("Sec-WebSocket-Extensions"); len(lines) > 0 {
		d, err := answerDeflate(lines, o.Deflate != nil, policy)
		if err != "" {
			return bad(err)
		}
		hs.deflate, hs.extensions = d, strings.Join(lines, ", ")
	}
	// What the server sent after its 101 (a greeting) is in br, read from
	// the socket ahead; the LimitedReader bounded the head only.
	var rest []byte
	if n := br.Buffered(); n > 0 {
		rest, _ = br.Peek(n)
		rest = slices.Clone(rest)
	}
	return hs, resp, rest, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// deflateOffer is the client's permessage-deflate offer for policy: its
// own context takeover and window, and what it asks of the server.
func deflateOffer(p DeflatePolicy) string {
	s := "permessage-deflate; client_max_window_bits"
	if p.ServerMaxWindowBits < 15 {
		s += "=" + strconv.Itoa(p.ServerMaxWindowBits)
	}
	if !p.ServerContextTakeover {
		s += "; client_no_context_takeover"
	}
	if !p.ClientContextTakeover {
		s += "; server_no_context_takeover"
	}
	if p.ClientMaxWindowBits < 15 {
		s += "; server_max_window_bits=" + strconv.Itoa(p.ClientMaxWindowBits)
	}
	return s
}

// answerDeflate checks the server's Sec-WebSocket-Extensions answer to
// the offer (RFC 7692 §7.1.1-§7.1.2.2) and returns the connection's
// parameters, seen from this side: "Server" is this side's compressor,
// "Client" the server's.
func answerDeflate(lines []string, offered bool, p DeflatePolicy) (*deflateParams, string) {
	exts, perr := parseExtensions(lines)
	if perr != "" {
		return nil, "invalid Sec-WebSocket-Extensions: " + perr
	}
	if len(exts) == 0 {
		return nil, ""
	}
	if len(exts) > 1 || !strings.EqualFold(exts[0].Name, "permessage-deflate") || !offered {
		return nil, "the server answered with an extension that was not offered"
	}
	d := &deflateParams{ServerNoContextTakeover: !p.ServerContextTakeover, ServerWindowBits: p.ServerMaxWindowBits,
		ClientWindowBits: 15, Threshold: p.Threshold, Level: p.Level}
	seen := map[string]bool{}
	for _, prm := range exts[0].Params {
		name := strings.ToLower(prm.Name)
		if seen[name] {
			return nil, "permessage-deflate parameter " + name + " repeated"
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover":
			if prm.HasValue {
				return nil, "server_no_context_takeover with a value"
			}
			d.ClientNoContextTakeover = true
		case "client_no_context_takeover":
			if prm.HasValue {
				return nil, "client_no_context_takeover with a value"
			}
			d.ServerNoContextTakeover = true
		case "server_max_window_bits", "client_max_window_bits":
			n, err := strconv.Atoi(prm.Value)
			if !prm.HasValue || err != nil || n < 8 || n > 15 {
				return nil, name + " must be 8 to 15"
			}
			if name == "server_max_window_bits" {
				if n > p.ClientMaxWindowBits {
					return nil, "server_max_window_bits over what was asked"
				}
				d.ClientWindowBits = n
			} else {
				if n > p.ServerMaxWindowBits {
					return nil, "client_max_window_bits over what was offered"
				}
				d.ServerWindowBits = n
			}
		default:
			return nil, "unknown permessage-deflate parameter " + name
		}
	}
	if !p.ClientContextTakeover && !d.ClientNoContextTakeover {
		return nil, "the server kept its context after server_no_context_takeover was asked"
	}
	return d, ""
}

// Dial connects to the ws:// or wss:// URL, runs the opening handshake
// within ctx, and returns the connection, already served (by
// o.Transport's goroutine or the default's): h gets its messages and its
// OnClose, and Send, Close and the rest work as on a server's Conn. A
// server that answers other than 101 gives a *DialError with its
// response.
func Dial(ctx context.Context, rawURL string, h Handler, opts Options, o *DialOptions) (*Conn, *http.Response, error) {
	if o == nil {
		o = &DialOptions{}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	secure := false
	switch u.Scheme {
	case "ws", "http":
	case "wss", "https":
		secure = true
	default:
		return nil, nil, fmt.Errorf("websocket: %q is not a ws:// or wss:// URL", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{false: "80", true: "443"}[secure])
	}
	dial := o.NetDial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if secure {
		cfg := &tls.Config{}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, nil, err
		}
		nc = tc
	}
	hs, resp, rest, err := ClientHandshake(ctx, nc, u, o)
	if err != nil {
		nc.Close()
		return nil, resp, err
	}
	c := hs.NewConn(h, opts)
	mk := o.Transport
	if mk == nil {
		mk = func(nc net.Conn, _ *Conn, buffered []byte) Transport { return NewStreamTransport(nc, buffered) }
	}
	t := mk(nc, c, rest)
	go c.Serve(t)
	return c, resp, nil
}

// maskKey returns a fresh masking key: 4 bytes from crypto/rand, which
// RFC 6455 §5.3 asks of "a strong source of entropy" so that a page's
// script cannot choose what its bytes look like on the wire.
func maskKey() [4]byte {
	var k [4]byte
	rand.Read(k[:])
	return k
}

// maskedFrame builds a client frame: the header with the mask bit and a
// fresh key, then payload masked, into a pooled buffer.
func maskedFrame(fin bool, rsv byte, op opcode, payload []byte) *[]byte {
	var hdr [maxHeaderSize]byte
	n := putHeader(&hdr, fin, rsv, op, len(payload))
	hdr[1] |= bitMask
	k := maskKey()
	copy(hdr[n:], k[:])
	n += 4
	buf := getBuf(n + len(payload))
	*buf = append(append(*buf, hdr[:n]...), payload...)
	mask(binary.LittleEndian.Uint32(k[:]), 0, (*buf)[n:])
	return buf
}

// remask turns a frame built for a server (unmasked) into a client's.
func remask(frame []byte) *[]byte {
	n := headerSize(frame[1])
	h := decodeHeader(frame[:n])
	return maskedFrame(h.fin, h.rsv, h.op, frame[n:])
}
