// Package httptoken holds the HTTP grammar the handshake and the
// configuration share: tokens and token lists (RFC 9110 §5.6.1, §5.6.2),
// and what may appear in a response header. The engine checks requests
// with it; the gateway and the configuration check subprotocol names and
// application-set headers with the same rules, so a value accepted in a
// configuration is one the handshake can send.
package httptoken

import (
	"net/http"
	"strconv"
	"strings"
)

// IsTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func IsTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// IsToken reports whether s is a non-empty token, as header field names
// and subprotocol names must be.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// ParseList parses a comma-separated list of tokens with optional
// whitespace. Empty elements are allowed (RFC 9110 §5.6.1) and skipped;
// anything else that is not a token is an error, described by the returned
// string. This is the strict parser apache-websocket uses for
// Sec-WebSocket-Protocol.
func ParseList(s string) ([]string, string) {
	var out []string
	for s != "" {
		item, rest, _ := strings.Cut(s, ",")
		s = rest
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		for i := 0; i < len(item); i++ {
			if !IsTokenChar(item[i]) {
				return nil, "illegal character " + strconv.QuoteRune(rune(item[i])) + " in token list"
			}
		}
		out = append(out, item)
	}
	return out, ""
}

// HasToken reports whether any comma-separated element of any line of
// header name equals token, ignoring case, whitespace and ";params".
func HasToken(h http.Header, name, token string) bool {
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

// ValidValue reports whether v can be sent as a header value without
// breaking the response: no control characters except horizontal tab.
func ValidValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7F {
			return false
		}
	}
	return true
}
