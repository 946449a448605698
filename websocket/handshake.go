package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// SupportedVersions are the protocol versions wsgate speaks, in the order
// they are advertised: RFC 6455 (13), hybi-08 and hybi-07, as
// apache-websocket does.
var SupportedVersions = []int{13, 8, 7}

// supportedVersionsHeader is sent with a 400 for an unsupported version.
// apache-websocket joins the versions with a bare comma.
const supportedVersionsHeader = "13,8,7"

// UpgradeRequest is the part of an HTTP request the opening handshake looks
// at. Front doors fill it from net/http or from Apache's request_rec.
type UpgradeRequest struct {
	Method     string
	ProtoMajor int
	ProtoMinor int
	// Host is the Host header (net/http moves it out of Header).
	Host   string
	Header http.Header
}

// Handshake is what a valid opening handshake asked for.
type Handshake struct {
	Version int
	Key     string
	// Protocols are the offered subprotocols in the client's order.
	Protocols []string
	// Origin comes from Origin (versions 8 and 13) or Sec-WebSocket-Origin
	// (version 7). Empty when the client sent none.
	Origin string
}

// HandshakeError is a refused opening handshake: the HTTP status to answer
// with, extra response headers, and a reason for the log.
type HandshakeError struct {
	Status int
	Reason string
	Header http.Header
}

func (e *HandshakeError) Error() string {
	return strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) + ": " + e.Reason
}

func badRequest(reason string) *HandshakeError {
	return &HandshakeError{Status: http.StatusBadRequest, Reason: reason}
}

// IsUpgrade reports whether a request asks to become a WebSocket: its
// Connection header is a token list holding "upgrade" and its Upgrade header
// names "websocket", both matched case-insensitively. A request that is not
// an upgrade falls through to whatever else serves the path; one that is an
// upgrade gets a WebSocket answer, 101 or an error.
func IsUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", "websocket")
}

// headerHasToken reports whether any comma-separated element of any line of
// header name equals token, ignoring case, whitespace and ";params".
func headerHasToken(h http.Header, name, token string) bool {
	for _, line := range h[http.CanonicalHeaderKey(name)] {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			item, _, _ = strings.Cut(item, ";")
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}

// CheckRequest validates an upgrade request with the rules and the order of
// apache-websocket's handler (seed-modules.md §1.3), with one difference
// required by wsgate: a request below HTTP/1.1 is answered 400 instead of
// falling through.
func CheckRequest(r *UpgradeRequest) (*Handshake, *HandshakeError) {
	if r.Method != http.MethodGet {
		// HEAD is refused too: a HEAD response has no room for a 101.
		return nil, badRequest("method " + r.Method + " is not GET")
	}
	if r.ProtoMajor < 1 || (r.ProtoMajor == 1 && r.ProtoMinor < 1) {
		return nil, badRequest("WebSocket needs HTTP/1.1 or later")
	}
	if r.Host == "" {
		return nil, badRequest("no Host header")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if len(r.Header.Values("Sec-WebSocket-Key")) > 1 || !ValidKey(key) {
		return nil, badRequest("invalid Sec-WebSocket-Key")
	}
	version, ok := parseVersion(r.Header.Values("Sec-WebSocket-Version"))
	if !ok {
		e := badRequest("unsupported Sec-WebSocket-Version")
		e.Header = http.Header{"Sec-Websocket-Version": {supportedVersionsHeader}}
		return nil, e
	}
	var protocols []string
	if lines := r.Header.Values("Sec-WebSocket-Protocol"); len(lines) > 0 {
		var err string
		protocols, err = ParseTokenList(strings.Join(lines, ","))
		if err == "" && len(protocols) == 0 {
			err = "header contains no subprotocols"
		}
		if err != "" {
			return nil, badRequest("invalid Sec-WebSocket-Protocol: " + err)
		}
	}
	hs := &Handshake{Version: version, Key: key, Protocols: protocols}
	if version < 8 {
		hs.Origin = r.Header.Get("Sec-WebSocket-Origin")
	} else {
		hs.Origin = r.Header.Get("Origin")
	}
	return hs, nil
}

// ValidKey reports whether key is exactly 24 characters of base64 that
// decode to 16 bytes: 22 alphabet characters, the 22nd one of "AQgw" (the
// only values whose low four bits are zero), then "==".
func ValidKey(key string) bool {
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
	for _, sv := range SupportedVersions {
		if v == sv {
			return v, true
		}
	}
	return 0, false
}

// ParseTokenList parses a comma-separated list of RFC 7230 tokens with
// optional whitespace. Empty elements are allowed (RFC 7230 §7) and skipped;
// anything else that is not a token is an error, described by the returned
// string. This is the strict parser apache-websocket uses for
// Sec-WebSocket-Protocol.
func ParseTokenList(s string) ([]string, string) {
	var out []string
	for s != "" {
		item, rest, _ := strings.Cut(s, ",")
		s = rest
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		for i := 0; i < len(item); i++ {
			if !isTokenChar(item[i]) {
				return nil, "illegal character " + strconv.QuoteRune(rune(item[i])) + " in token list"
			}
		}
		out = append(out, item)
	}
	return out, ""
}

// isTokenChar reports whether c is a tchar (RFC 7230 §3.2.6).
func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// websocketGUID is appended to the key before hashing (RFC 6455 §1.3).
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a client key.
func AcceptKey(key string) string {
	var buf [64]byte
	b := append(append(buf[:0], key...), websocketGUID...)
	sum := sha1.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ValidHeaderValue reports whether v can be sent as a header value without
// breaking the response: no control characters except horizontal tab.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7F {
			return false
		}
	}
	return true
}

// ValidHeaderName reports whether k is a token, as field names must be.
func ValidHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// AppendResponse appends the 101 response for a handshake to dst. The
// header set is the caller's: Upgrade, Connection and Sec-WebSocket-Accept
// are always written first and any copies of them in h are skipped.
func AppendResponse(dst []byte, hs *Handshake, h http.Header) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, AcceptKey(hs.Key)...)
	dst = append(dst, "\r\n"...)
	for k, vs := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Upgrade", "Connection", "Sec-Websocket-Accept", "Content-Length", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...)
}
