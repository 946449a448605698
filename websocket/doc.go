// Package websocket is wsgate's RFC 6455 engine: the server side of the
// protocol, with no knowledge of where its bytes come from or who consumes its
// messages.
//
// A front door (the standalone daemon's net.Conn driver, an event loop, or
// Apache's filter chain through mod_wsgate) pushes received bytes into
// [Conn.Feed] and provides a [Transport] for the bytes the engine writes. A back
// door implements [Handler] and receives complete messages.
//
// Invariants, which the rest of the package relies on:
//
//   - Feed is called by one goroutine at a time (the reader). All parsing state
//     belongs to it and is never locked.
//   - Every byte written to the peer goes through the outbound queue and is
//     written by whoever holds the write token (see writer.go). Any goroutine
//     may queue; only the token holder touches the transport's write side.
//   - An idle connection holds no read buffer, no message buffer and no write
//     buffer. Buffers come from pools sized by power of two and go back when the
//     bytes they hold are consumed or written.
//   - Limits are enforced on declared lengths before any memory is committed
//     to a frame, so a header announcing 2^63-1 bytes costs nothing.
package websocket
