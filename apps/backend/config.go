// Package unix connects routes to producers: programs that serve
// WebSocket clients from behind a UNIX socket (or a TCP socket on
// loopback), speaking the producer protocol of docs/backend-protocol.md,
// or raw bytes for seed-style programs.
package backend

import (
	"errors"
	"fmt"
	"time"
)

// Mode is how client connections map to producer connections.
type Mode uint8

const (
	// Mux carries every client over a small pool of connections.
	Mux Mode = iota
	// PerClient opens one producer connection per client.
	PerClient
	// Direct hands each client's TCP socket to the producer after the
	// 101 (ouistiti's direct mode): the producer speaks RFC 6455 itself.
	Direct
)

func (m Mode) String() string {
	switch m {
	case PerClient:
		return "per-client"
	case Direct:
		return "direct"
	}
	return "mux"
}

// Config is a route's producer.
type Config struct {
	// Network is "unix" or "tcp"; Address the socket path or host:port.
	Network string
	Address string
	Mode    Mode
	// Connections is the mux pool's size.
	Connections int
	// OpenTimeout bounds connecting (per-client) and the producer's answer
	// to OPEN; past it the client is refused with 504 (503 if connecting).
	OpenTimeout time.Duration
	// Headers are the request headers forwarded in OPEN, by canonical
	// name; nil forwards all but the handshake's own.
	Headers []string
	// QueueBytes bounds each producer connection's send queue.
	QueueBytes int
	// MaxFrame bounds a frame from the producer; zero derives it from the
	// route's max_message_size.
	MaxFrame int
	// Raw selects raw mode: no protocol, one connection per client.
	Raw *RawConfig
	// Required makes the daemon not ready (/readyz) while the producer
	// cannot be reached.
	Required bool
	// Hold keeps a mux route's clients open this long when their producer
	// connection drops, and re-announces them to the producer when a
	// connection is back (docs/backend-protocol.md, "Restarts"). Zero
	// closes them at once with 1012.
	Hold time.Duration
}

// RawConfig configures raw mode (see docs/backend-protocol.md).
type RawConfig struct {
	// Delimiter splits the producer's bytes into messages: 0 for none (each
	// read is a message), '\n' or 0 with Split set... see Split.
	Delimiter byte
	// Split enables Delimiter.
	Split bool
	// Binary sends the producer's messages as binary; text otherwise.
	Binary bool
}

// Defaults.
const (
	DefaultConnections = 2
	DefaultOpenTimeout = 5 * time.Second
	DefaultQueueBytes  = 4 << 20
)

func (c *Config) setDefaults() {
	if c.Network == "" {
		c.Network = "unix"
	}
	if c.Connections <= 0 {
		c.Connections = DefaultConnections
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
}

// Validate checks a configuration.
func (c *Config) Validate() error {
	var errs []error
	switch c.Network {
	case "", "unix":
		if c.Address == "" {
			errs = append(errs, errors.New("socket path is empty"))
		}
	case "tcp":
		if c.Address == "" {
			errs = append(errs, errors.New("address is empty"))
		}
	default:
		errs = append(errs, fmt.Errorf("network %q is not unix or tcp", c.Network))
	}
	if c.Raw != nil && c.Mode == Mux {
		errs = append(errs, errors.New("raw mode needs one connection per client (mode: per-client)"))
	}
	if c.Hold < 0 {
		errs = append(errs, errors.New("hold is negative"))
	} else if c.Hold > 0 && c.Mode != Mux {
		errs = append(errs, errors.New("hold needs mode: mux (a per-client or direct producer connection ends with its client)"))
	}
	return errors.Join(errs...)
}
