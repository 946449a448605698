package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/internal/httptoken"
)

// The opening handshake (RFC 6455 §4.2), with apache-websocket's rules
// and order. A front door calls CheckUpgrade on a request IsUpgrade
// accepted; the gateway negotiates extensions and applies its own
// policies (Origin, the application's consent) to the Handshake, builds
// the connection with Handshake.NewConn, and the front door writes the 101
// from Handshake.Header or Handshake.AppendResponse before calling
// Conn.Serve.

// supportedVersions are the protocol versions wsgate speaks, in the order
// they are advertised: RFC 6455 (13), hybi-08 and hybi-07, as
// apache-websocket does.
var supportedVersions = []int{13, 8, 7}

// supportedVersionsHeader is sent with a 400 for an unsupported version.
// apache-websocket joins the versions with a bare comma.
const supportedVersionsHeader = "13,8,7"

// Handshake is a valid opening handshake: what the client asked for, and
// what has been agreed so far.
type Handshake struct {
	// Version is the protocol version: 13, 8 or 7.
	Version int
	// Protocols are the offered subprotocols in the client's order.
	Protocols []string
	// Origin comes from Origin (versions 8 and 13) or Sec-WebSocket-Origin
	// (version 7). Empty when the client sent none.
	Origin string

	key        string
	deflate    *deflateParams
	extensions string // the Sec-WebSocket-Extensions answer
	client     bool   // made by ClientHandshake: this side is the client
}

// HandshakeError is a refused opening handshake: the HTTP status to answer
// with, extra response headers, and a reason for the log.
type HandshakeError struct {
	Status int
	Reason string
	Header http.Header
	// Cause names which rule of RFC 6455 §4.2.1 the request broke, for
	// metrics and logs (a fixed label: bad_method, http_1_0, no_host,
	// request_body, bad_key, bad_version, bad_protocol, bad_extensions);
	// "" when the
	// refusal is not CheckUpgrade's.
	Cause string
}

func (e *HandshakeError) Error() string {
	return strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Reason
}

func badRequest(cause, reason string) *HandshakeError {
	return &HandshakeError{Status: http.StatusBadRequest, Reason: reason, Cause: cause}
}

// The causes of CheckUpgrade's refusals (HandshakeError.Cause).
const (
	CauseBadMethod     = "bad_method"
	CauseHTTP10        = "http_1_0"
	CauseNoHost        = "no_host"
	CauseRequestBody   = "request_body"
	CauseBadKey        = "bad_key"
	CauseBadVersion    = "bad_version"
	CauseBadProtocol   = "bad_protocol"
	CauseBadExtensions = "bad_extensions"
)

// UpgradeCauses are CheckUpgrade's causes, all answered 400.
var UpgradeCauses = []string{CauseBadMethod, CauseHTTP10, CauseNoHost, CauseRequestBody, CauseBadKey, CauseBadVersion, CauseBadProtocol, CauseBadExtensions}

// IsUpgrade reports whether a request asks to become a WebSocket: its
// Connection header is a token list holding "upgrade" and its Upgrade header
// names "websocket", both matched case-insensitively. A request that is not
// an upgrade falls through to whatever else serves the path; one that is an
// upgrade gets a WebSocket answer, 101 or an error.
func IsUpgrade(h http.Header) bool {
	return httptoken.HasToken(h, "Connection", "upgrade") && httptoken.HasToken(h, "Upgrade", "websocket")
}

// CheckUpgrade validates an upgrade request with the rules and the order of
// apache-websocket's handler (seed-modules.md §1.3), with one difference
// required by wsgate: a request below HTTP/1.1 is answered 400 instead of
// falling through, and a request that declares a body is answered 400 (its
// body would be read as WebSocket frames). It reads r's Method, protocol
// version, Host, Header, ContentLength and TransferEncoding only, so a
// front door that is not net/http (mod_wsgate) fills just those. A refusal
// is a *HandshakeError.
func CheckUpgrade(r *http.Request) (*Handshake, error) {
	hs, herr := checkUpgrade(r)
	if herr != nil {
		return nil, herr
	}
	return hs, nil
}

func checkUpgrade(r *http.Request) (*Handshake, *HandshakeError) {
	if r.Method != http.MethodGet {
		// HEAD is refused too: a HEAD response has no room for a 101.
		return nil, badRequest(CauseBadMethod, "method "+r.Method+" is not GET")
	}
	if r.ProtoMajor < 1 || (r.ProtoMajor == 1 && r.ProtoMinor < 1) {
		return nil, badRequest(CauseHTTP10, "WebSocket needs HTTP/1.1 or later")
	}
	if r.Host == "" {
		return nil, badRequest(CauseNoHost, "no Host header")
	}
	if hasBody(r) {
		return nil, badRequest(CauseRequestBody, "an upgrade request has no body")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if len(r.Header.Values("Sec-WebSocket-Key")) > 1 || !validKey(key) {
		return nil, badRequest(CauseBadKey, "invalid Sec-WebSocket-Key")
	}
	version, ok := parseVersion(r.Header.Values("Sec-WebSocket-Version"))
	if !ok {
		e := badRequest(CauseBadVersion, "unsupported Sec-WebSocket-Version")
		e.Header = http.Header{"Sec-Websocket-Version": {supportedVersionsHeader}}
		return nil, e
	}
	var protocols []string
	if lines := r.Header.Values("Sec-WebSocket-Protocol"); len(lines) > 0 {
		var err string
		protocols, err = httptoken.ParseList(strings.Join(lines, ","))
		if err == "" && len(protocols) == 0 {
			err = "header contains no subprotocols"
		}
		if err != "" {
			return nil, badRequest(CauseBadProtocol, "invalid Sec-WebSocket-Protocol: "+err)
		}
	}
	hs := &Handshake{Version: version, key: key, Protocols: protocols}
	if version < 8 {
		hs.Origin = r.Header.Get("Sec-WebSocket-Origin")
	} else {
		hs.Origin = r.Header.Get("Origin")
	}
	return hs, nil
}

// hasBody reports whether r declares a body: net/http moves
// Transfer-Encoding out of the header, other front doors leave it there.
func hasBody(r *http.Request) bool {
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 || r.Header.Get("Transfer-Encoding") != "" {
		return true
	}
	cl := r.Header.Get("Content-Length")
	return cl != "" && strings.TrimLeft(cl, "0") != ""
}

// validKey reports whether key is exactly 24 characters of base64 that
// decode to 16 bytes: 22 alphabet characters, the 22nd one of "AQgw" (the
// only values whose low four bits are zero), then "==".
func validKey(key string) bool {
	if len(key) != 24 || key[22] != '=' || key[23] != '=' {
		return false
	}
	for i := 0; i < 22; i++ {
		if !isBase64(key[i]) {
			return false
		}
	}
	return strings.IndexByte("AQgw", key[21]) >= 0
}

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// parseVersion parses Sec-WebSocket-Version strictly, as apache-websocket
// does: one header line, digits only, no leading zero, at most three
// characters, and one of the supported versions.
func parseVersion(lines []string) (int, bool) {
	if len(lines) != 1 {
		return 0, false
	}
	s := lines[0]
	if len(s) < 1 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	for _, sv := range supportedVersions {
		if v == sv {
			return v, true
		}
	}
	return 0, false
}

// NegotiateDeflate picks the first permessage-deflate offer in the
// request's Sec-WebSocket-Extensions that policy can meet, in the client's
// order of preference (RFC 7692 §5). Without an acceptable offer the
// connection proceeds uncompressed. A header that does not parse is a
// *HandshakeError (400).
func (hs *Handshake) NegotiateDeflate(h http.Header, policy DeflatePolicy) error {
	d, resp, herr := negotiateDeflate(h, policy)
	if herr != nil {
		return herr
	}
	hs.deflate, hs.extensions = d, resp
	return nil
}

// Extensions is the Sec-WebSocket-Extensions the 101 answers with: what
// was negotiated, "" for nothing.
func (hs *Handshake) Extensions() string { return hs.extensions }

// NewConn returns the connection the handshake opens, speaking its
// protocol version and negotiated extensions under opts. It queues what is
// sent to it until Serve, so an application may send from its connect
// hook, before the 101 is written.
func (hs *Handshake) NewConn(h Handler, opts Options) *Conn {
	opts.version, opts.deflate, opts.client = hs.Version, hs.deflate, hs.client
	return newConn(h, opts)
}

// errBadHeader is Header's error for a field the application set that
// cannot go on the wire.
var errBadHeader = errors.New("websocket: invalid response header")

// Header returns the complete header of the 101 response: the fields of
// extra (what the application set), the selected subprotocol (none when
// protocol is empty), the negotiated extensions, and Upgrade, Connection
// and Sec-WebSocket-Accept. It refuses a subprotocol the client did not
// offer, which the client would fail the connection for (RFC 6455
// §4.1), and a field whose name is not a token or whose value holds
// control characters.
func (hs *Handshake) Header(extra http.Header, protocol string) (http.Header, error) {
	h := make(http.Header, len(extra)+5)
	for k, vs := range extra {
		if !httptoken.IsToken(k) {
			return nil, fmt.Errorf("%w: name %q", errBadHeader, k)
		}
		for _, v := range vs {
			if !httptoken.ValidValue(v) {
				return nil, fmt.Errorf("%w: %s: %q", errBadHeader, k, v)
			}
		}
		switch http.CanonicalHeaderKey(k) {
		case "Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions",
			"Content-Length", "Transfer-Encoding":
			continue
		}
		h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if protocol != "" {
		offered := false
		for _, p := range hs.Protocols {
			offered = offered || p == protocol
		}
		if !offered {
			return nil, fmt.Errorf("websocket: subprotocol %q was not offered by the client", protocol)
		}
		h.Set("Sec-WebSocket-Protocol", protocol)
	}
	if hs.extensions != "" {
		h.Set("Sec-WebSocket-Extensions", hs.extensions)
	}
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(hs.key))
	return h, nil
}

// AppendResponse appends the 101 response with header, as Header built
// it, to dst, for front doors that write the response themselves.
// Upgrade, Connection and Sec-WebSocket-Accept are written first.
func (hs *Handshake) AppendResponse(dst []byte, header http.Header) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, acceptKey(hs.key)...)
	dst = append(dst, "\r\n"...)
	for k, vs := range header {
		switch http.CanonicalHeaderKey(k) {
		case "Upgrade", "Connection", "Sec-Websocket-Accept":
			continue
		}
		for _, v := range vs {
			dst = append(dst, HeaderName(k)...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}

// HeaderName returns a header field's name as RFC 6455 spells it when it
// is one of the protocol's (Sec-WebSocket-Protocol, not Go's canonical
// Sec-Websocket-Protocol), and k otherwise. Field names are
// case-insensitive, but byte-exact tests and naive clients compare them
// literally, and every other server writes the RFC's spelling.
func HeaderName(k string) string {
	switch http.CanonicalHeaderKey(k) {
	case "Sec-Websocket-Protocol":
		return "Sec-WebSocket-Protocol"
	case "Sec-Websocket-Extensions":
		return "Sec-WebSocket-Extensions"
	case "Sec-Websocket-Accept":
		return "Sec-WebSocket-Accept"
	case "Sec-Websocket-Version":
		return "Sec-WebSocket-Version"
	case "Sec-Websocket-Key":
		return "Sec-WebSocket-Key"
	}
	return k
}

// websocketGUID is appended to the key before hashing (RFC 6455 §1.3).
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for a client key.
func acceptKey(key string) string {
	var buf [64]byte
	b := append(append(buf[:0], key...), websocketGUID...)
	sum := sha1.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}
