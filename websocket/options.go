package websocket

import "time"

// SlowConsumerPolicy says what happens when a peer reads slower than the
// application sends and the outbound queue reaches Options.MaxQueue.
type SlowConsumerPolicy uint8

const (
	// SlowConsumerClose closes the connection with 1008 (policy violation).
	SlowConsumerClose SlowConsumerPolicy = iota
	// SlowConsumerDrop drops the message that does not fit; the send
	// reports ErrDropped and the connection stays open.
	SlowConsumerDrop
)

func (p SlowConsumerPolicy) String() string {
	if p == SlowConsumerDrop {
		return "drop"
	}
	return "close"
}

// Defaults for zero Options and DeflatePolicy fields.
const (
	DefaultMaxMessageSize   = 32 << 20 // apache-websocket's default
	DefaultMaxQueue         = 4 << 20
	DefaultCloseTimeout     = 5 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultDeflateThreshold = 256
	DefaultDeflateLevel     = 1
)

// Options are one connection's protocol limits and policies. A route's
// policy compiles to these.
type Options struct {
	// MaxMessageSize bounds a reassembled message and each control frame's
	// payload, as WebSocketMaxMessageSize does. Breaking it closes with 1009
	// (1004 for versions 7 and 8).
	MaxMessageSize int64
	// AllowReservedStatusCodes accepts close codes 1004, 1014 and 1016-2999
	// from the peer.
	AllowReservedStatusCodes bool
	// MaxQueue bounds the bytes queued for the peer. One message is always
	// accepted into an empty queue whatever its size.
	MaxQueue     int
	SlowConsumer SlowConsumerPolicy
	// CloseTimeout bounds the wait for the peer's close frame after this side
	// sent one, and the flush of queued frames when the connection ends.
	CloseTimeout time.Duration
	// WriteTimeout bounds one blocked write; a peer that accepts nothing for
	// this long is disconnected.
	WriteTimeout time.Duration
	// IdleTimeout closes the connection with 1001 after this long without a
	// byte from the peer. Zero disables it, unless KeepaliveInterval is set,
	// in which case it defaults to twice that interval.
	IdleTimeout time.Duration
	// KeepaliveInterval sends a ping after this long without a byte from the
	// peer. Zero disables keepalive pings.
	KeepaliveInterval time.Duration
	// MessageTimeout bounds how long a data message may take to arrive,
	// from its first frame's header to its last byte: a peer that stalls in
	// the middle of a message, holding the part received so far, is closed
	// with 1008. Zero disables it.
	MessageTimeout time.Duration
	// InflateRate bounds the bytes per second a compressed connection may
	// have inflated (see inflatebudget.go); 0 is no bound.
	InflateRate int64
	// Budget, when set, counts what the connection buffers with every
	// other connection made with it (see Budget).
	Budget *Budget

	// version is the protocol version from the handshake (13, 8 or 7), and
	// deflate the negotiated permessage-deflate (nil: none). Handshake.NewConn
	// sets both.
	version int
	deflate *deflateParams
	// client is set for the client side of a connection (Dial,
	// ClientHandshake): its frames are masked, the server's must not be.
	client bool
}

func (o *Options) setDefaults() {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.version == 0 {
		o.version = 13
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = DefaultMaxQueue
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 && o.KeepaliveInterval > 0 {
		o.IdleTimeout = 2 * o.KeepaliveInterval
	}
}

// tooBigCode is the close code for a message over the limit: 1009 since
// RFC 6455, 1004 in hybi-07/08, as apache-websocket sends.
func (o *Options) tooBigCode() StatusCode {
	if o.version < 13 {
		return StatusFrameTooLarge
	}
	return StatusMessageTooBig
}
