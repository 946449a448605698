package websocket

import (
	"errors"
	"os"
)

// Why this side closed a connection, for metrics and logs: every close
// the server decides has a cause an operator can count (a client that
// sees 1008 must show up somewhere as "slow_consumer", not only in its
// own logs). The engine's causes are below; applications add their own
// with CloseFor. A cause is a label value, so it is one of a small fixed
// set of constants, never built from input.
const (
	// The peer broke RFC 6455 (1002), sent invalid UTF-8 or compressed
	// data (1007), or a message over the size limit (1009, or 1004 for
	// versions 7 and 8).
	CauseProtocolError = "protocol_error"
	CauseInvalidData   = "invalid_data"
	CauseMessageTooBig = "message_too_big"
	// The slow-consumer policy close (1008), the message timeout (1008),
	// the idle timeout (1001).
	CauseSlowConsumer   = "slow_consumer"
	CauseMessageTimeout = "message_timeout"
	CauseIdleTimeout    = "idle_timeout"
	// A panic in the handler or the parser (1011).
	CauseInternalError = "internal_error"
	// A write that made no progress for WriteTimeout, or failed: the
	// connection is cut without a close frame (1006).
	CauseWriteTimeout = "write_timeout"
	// Close called by the application without a cause of its own.
	CauseApplication = "application"
)

// causeOf names the cause of a protocol failure by the code it sends.
func (e *protoError) cause() string {
	if e.inflate {
		return CauseInflateBudget
	}
	switch e.Code {
	case StatusInvalidPayload:
		return CauseInvalidData
	case StatusMessageTooBig, StatusFrameTooLarge:
		return CauseMessageTooBig
	case StatusInternalError:
		return CauseInternalError
	}
	return CauseProtocolError
}

// abortCause names why a transport was cut, when this side cut it.
func abortCause(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return CauseWriteTimeout
	}
	return ""
}
