// Package wsoverhttp serves a route's WebSocket clients from an ordinary
// HTTP application, with Pushpin's WebSocket-over-HTTP protocol: every
// event of a connection (opened, a message, closed) is a POST of
// application/websocket-events to the application, and the response's
// body carries the events to send back. An application written for
// Pushpin works unchanged; docs/websocket-over-http.md says what is taken
// from the protocol and what is left out.
//
// The requests go over HTTP (backend: {http: URL}) or, inside httpd, as
// internal subrequests (mod_wsgate's WebSocketEventHandler), so that
// whatever httpd runs there (PHP, CGI, WSGI) serves WebSocket clients.
package wsoverhttp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// ContentType is the media type of a body of events.
const ContentType = "application/websocket-events"

// Event types. Each is a line "TYPE" or "TYPE <hex length>", then for a
// length that many bytes and CRLF.
const (
	Open       = "OPEN"
	Text       = "TEXT"
	Binary     = "BINARY"
	Ping       = "PING"
	Pong       = "PONG"
	Close      = "CLOSE"
	Disconnect = "DISCONNECT"
)

// Event is one event. Content is nil for an event without a length.
type Event struct {
	Type    string
	Content []byte
}

// maxEventLine bounds an event's first line: a type and a length in hex.
const maxEventLine = 64

var errMalformed = errors.New("malformed websocket-events body")

// Parse decodes a body of events. Contents point into body. Unknown event
// types are returned as they are, for the caller to ignore.
func Parse(body []byte) ([]Event, error) {
	var evs []Event
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\r\n"))
		if i < 0 || i > maxEventLine {
			return evs, fmt.Errorf("%w: an event line without CRLF", errMalformed)
		}
		line := body[:i]
		body = body[i+2:]
		typ, size, hasSize := bytes.Cut(line, []byte(" "))
		if len(typ) == 0 {
			return evs, fmt.Errorf("%w: an empty event type", errMalformed)
		}
		ev := Event{Type: string(typ)}
		if hasSize {
			n, err := strconv.ParseUint(string(size), 16, 31)
			if err != nil {
				return evs, fmt.Errorf("%w: length %q of a %s event", errMalformed, size, typ)
			}
			if uint64(len(body)) < n+2 || body[n] != '\r' || body[n+1] != '\n' {
				return evs, fmt.Errorf("%w: a %s event shorter than its length %d", errMalformed, typ, n)
			}
			ev.Content = body[:n:n]
			body = body[n+2:]
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// Append encodes one event: with content, "TYPE <hex>\r\n<content>\r\n";
// without (nil), "TYPE\r\n".
func Append(dst []byte, typ string, content []byte) []byte {
	dst = append(dst, typ...)
	if content != nil {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(content)), 16)
		dst = append(dst, "\r\n"...)
		dst = append(dst, content...)
	}
	return append(dst, "\r\n"...)
}

// CloseContent is a CLOSE event's content: the code (big-endian) and
// reason, or nothing for a close without a code.
func CloseContent(code uint16, reason string) []byte {
	if code == 0 {
		return []byte{}
	}
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// ParseClose reads a CLOSE event's content: no code is 0.
func ParseClose(content []byte) (code uint16, reason string) {
	if len(content) < 2 {
		return 0, ""
	}
	return uint16(content[0])<<8 | uint16(content[1]), string(content[2:])
}
