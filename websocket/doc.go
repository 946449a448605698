// Package websocket is wsgate's RFC 6455 engine: the server side of the
// protocol, with no knowledge of where its bytes come from or who consumes its
// messages.
//
// A front door (the daemon's net.Conn driver, Apache's filter chain through
// mod_wsgate, an event loop) checks the opening handshake with IsUpgrade and
// CheckUpgrade, lets the gateway decide (extensions, Origin, the
// application), creates the connection with Handshake.NewConn, writes the
// 101, and runs the connection with Conn.Serve over its Transport. Serve is
// the whole lifecycle, written once: read, parse, deliver, flush, linger,
// close, release. A back door implements Handler and receives complete
// messages.
//
// The files follow the protocol: handshake.go (RFC 6455 §4), header.go and
// read.go (§5 framing, reading), utf8.go (§8.1), status.go (§7.4), write.go
// (the outbound queue), extensions.go and compress.go (RFC 7692), serve.go
// (the lifecycle) and transport.go (what a front door provides).
//
// Invariants, which the rest of the package relies on:
//
//   - One goroutine at a time runs Serve for a connection (the reader). All
//     parsing state belongs to it and is never locked.
//   - Every byte written to the peer goes through the outbound queue and is
//     written by whoever holds the write token (see write.go). Any goroutine
//     may queue; only the token holder touches the transport's write side.
//   - An idle connection holds no read buffer, no message buffer and no write
//     buffer. Buffers come from pools sized by power of two
//     (internal/bufpool) and go back when the bytes they hold are consumed or
//     written.
//   - Limits are enforced on declared lengths before any memory is committed
//     to a frame, so a header announcing 2^63-1 bytes costs nothing.
package websocket
