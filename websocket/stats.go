package websocket

import "sync/atomic"

// Stats is what a connection has carried so far, for metrics and access
// logs. Reading it never blocks the connection.
type Stats struct {
	// Data messages and their payload bytes as the application sees them
	// (inflated when they were compressed), each way.
	MessagesIn, MessagesOut uint64
	BytesIn, BytesOut       uint64
	// Of those, the messages that were compressed (permessage-deflate):
	// their payload bytes on the wire, and uncompressed.
	DeflatedIn, DeflatedOut         uint64 // on the wire
	UncompressedIn, UncompressedOut uint64
	// Dropped counts data messages the drop policy discarded, and
	// SlowConsumer is set when the close policy closed the connection.
	Dropped      uint64
	SlowConsumer bool
	// CloseSent and CloseReceived are the close frames each side sent
	// (Code and Reason), with Code 0 when it sent none, 1005 when one had
	// no code.
	CloseSent, CloseReceived CloseStatus
	// CloseCause is why this side closed the connection when it did so
	// first (a close frame, or cutting it: see cause.go); "" when the
	// peer closed first or the connection was lost.
	CloseCause string
}

// connStats are a connection's counters. The in side is written by the
// reader only, the out side by senders; both are atomics so that a metrics
// scrape can read them while the connection runs.
type connStats struct {
	msgsIn, bytesIn   atomic.Uint64
	msgsOut, bytesOut atomic.Uint64
}

func (s *connStats) in(n int) {
	s.msgsIn.Add(1)
	s.bytesIn.Add(uint64(n))
}

func (s *connStats) out(n int) {
	s.msgsOut.Add(1)
	s.bytesOut.Add(uint64(n))
}

// Stats returns what the connection has carried so far.
func (c *Conn) Stats() Stats {
	s := Stats{
		MessagesIn: c.stats.msgsIn.Load(), BytesIn: c.stats.bytesIn.Load(),
		MessagesOut: c.stats.msgsOut.Load(), BytesOut: c.stats.bytesOut.Load(),
		Dropped: c.dropped.Load(),
	}
	if z := c.z; z != nil {
		s.DeflatedIn, s.UncompressedIn = z.stats.in.Load(), z.stats.rawIn.Load()
		s.DeflatedOut, s.UncompressedOut = z.stats.out.Load(), z.stats.rawOut.Load()
	}
	c.mu.Lock()
	s.SlowConsumer = c.slowConsumer
	if e := c.ending; e != nil {
		s.CloseSent, s.CloseReceived, s.CloseCause = e.closeSent, e.closeGot, e.cause
	}
	c.mu.Unlock()
	return s
}
