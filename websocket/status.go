package websocket

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// StatusCode is a close status code (RFC 6455 §7.4).
type StatusCode uint16

// Close codes from RFC 6455 §7.4.1 and the IANA registry.
const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003
	// StatusFrameTooLarge is 1004, reserved in RFC 6455 but used by protocol
	// versions 7 and 8 (hybi-07/-08) for "frame too large". apache-websocket
	// sends it to those clients instead of 1009, and so do we.
	StatusFrameTooLarge       StatusCode = 1004
	StatusNoStatusReceived    StatusCode = 1005
	StatusAbnormalClosure     StatusCode = 1006
	StatusInvalidPayload      StatusCode = 1007
	StatusPolicyViolation     StatusCode = 1008
	StatusMessageTooBig       StatusCode = 1009
	StatusMandatoryExtension  StatusCode = 1010
	StatusInternalError       StatusCode = 1011
	StatusServiceRestart      StatusCode = 1012
	StatusTryAgainLater       StatusCode = 1013
	StatusBadGateway          StatusCode = 1014
	StatusTLSHandshakeFailure StatusCode = 1015
)

// prohibited reports whether no endpoint may ever send code in a close frame:
// 0-999 are unused, 1005, 1006 and 1015 exist only to report local
// conditions, and anything from 5000 on is outside the ranges RFC 6455 §7.4.2
// defines.
func (code StatusCode) prohibited() bool {
	return code < 1000 || code == 1005 || code == 1006 || code == 1015 || code >= 5000
}

// reserved reports whether code is reserved or unassigned in RFC 6455 without
// being prohibited. These are refused from peers unless the route sets
// allow_reserved_status_codes, exactly as apache-websocket's
// WebSocketAllowReservedStatusCodes does (its is_reserved_status_code): 1004,
// 1014 and 1016-2999.
func (code StatusCode) reserved() bool {
	return code == 1004 || code == 1014 || (code >= 1016 && code < 3000)
}

// validPeerCode reports whether a close frame from a peer may carry code.
func validPeerCode(code StatusCode, allowReserved bool) bool {
	if code.prohibited() {
		return false
	}
	return allowReserved || !code.reserved()
}

// validLocalCode reports whether this server may send code. It is stricter
// than validPeerCode: wsgate only sends codes with a registered meaning or in
// the application range 3000-4999.
func validLocalCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

var statusNames = map[StatusCode]string{
	1000: "normal closure", 1001: "going away", 1002: "protocol error",
	1003: "unsupported data", 1004: "frame too large", 1005: "no status received",
	1006: "abnormal closure", 1007: "invalid payload data", 1008: "policy violation",
	1009: "message too big", 1010: "mandatory extension", 1011: "internal error",
	1012: "service restart", 1013: "try again later", 1014: "bad gateway",
	1015: "TLS handshake failure",
}

func (code StatusCode) String() string {
	if n, ok := statusNames[code]; ok {
		return fmt.Sprintf("%d (%s)", uint16(code), n)
	}
	return fmt.Sprintf("%d", uint16(code))
}

// CloseStatus describes how a connection ended.
type CloseStatus struct {
	// Code is the code from the peer's close frame when the peer closed
	// first, 1005 when its close frame had no code, the code this side sent
	// when it closed first, or 1006 when the stream ended without a close
	// frame.
	Code   StatusCode
	Reason string
	// Remote is true when the peer started the closing handshake.
	Remote bool
}

// Errors returned by Conn's send methods, and ErrSuspended, which a
// Transport returns from ReadTo.
var (
	// ErrClosed means the connection's closing handshake has started; no
	// further data can be queued.
	ErrClosed = errors.New("websocket: connection closed")
	// ErrDropped means the message was dropped because the outbound queue is
	// full and the route's slow-consumer policy is "drop".
	ErrDropped = errors.New("websocket: outbound queue full, message dropped")
	// ErrSlowConsumer means the outbound queue was full under the "close"
	// policy; the connection is being closed with 1008.
	ErrSlowConsumer = errors.New("websocket: outbound queue full, closing slow consumer")
	// ErrControlTooLong means a control frame payload exceeded 125 bytes.
	ErrControlTooLong = errors.New("websocket: control frame payload longer than 125 bytes")
	// ErrInvalidCloseCode means an application tried to send a code that
	// RFC 6455 forbids on the wire.
	ErrInvalidCloseCode = errors.New("websocket: invalid close code")
	// ErrInvalidUTF8 means a text message or close reason was not UTF-8.
	ErrInvalidUTF8 = errors.New("websocket: text is not valid UTF-8")
	// ErrSuspended is returned by Transport.ReadTo when the transport has
	// parked the connection (see Conn.Serve).
	ErrSuspended = errors.New("websocket: reading suspended")
)

// closePayload encodes a close frame body. Code 0 encodes an empty body,
// which the peer reports as 1005: that is what apache-websocket's plugin
// close() sends.
func closePayload(dst []byte, code StatusCode, reason string) ([]byte, error) {
	if code == 0 {
		if reason != "" {
			return nil, fmt.Errorf("websocket: a close reason needs a code")
		}
		return dst[:0], nil
	}
	if !validLocalCode(code) {
		return nil, fmt.Errorf("%w: %d", ErrInvalidCloseCode, uint16(code))
	}
	if len(reason) > maxControlPayload-2 {
		return nil, ErrControlTooLong
	}
	if !utf8.ValidString(reason) {
		return nil, ErrInvalidUTF8
	}
	dst = append(dst[:0], byte(code>>8), byte(code))
	return append(dst, reason...), nil
}
