package websocket

import (
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
)

// Serve runs the connection over t until it ends, then closes t and calls
// the handler's OnClose. The front door calls it once the 101 is on the
// wire; it is the whole lifecycle, the same in every front door:
//
//  1. attach t and flush what was sent before the 101 (the first call only);
//  2. feed what t reads to the parser, which delivers messages to the
//     handler, until the peer closes, breaks the protocol or goes away;
//  3. stop: no more messages are delivered, and timers end;
//  4. flush what is queued, within CloseTimeout;
//  5. linger if this side failed the connection (see Transport.Linger);
//  6. close t, return every buffer, and call OnClose once.
//
// When t.ReadTo returns ErrSuspended, Serve returns after step 2 and the
// connection stays open: the transport calls Serve again when the peer
// sends more, and it carries on from step 2.
//
// A panic in the handler or the parser is recovered: it is logged and the
// connection is closed with 1011, and nothing else in the process is
// affected.
func (c *Conn) Serve(t Transport) {
	c.mu.Lock()
	attach := !c.started
	c.mu.Unlock()
	if attach {
		c.start(t)
	}
	err := c.readLoop(t)
	if err == ErrSuspended {
		return
	}
	c.teardown(t, err)
}

// readLoop feeds what t reads until reading ends, and returns why.
func (c *Conn) readLoop(t Transport) (err error) {
	defer func() {
		if v := recover(); v != nil {
			slog.Error("websocket: connection panicked", "panic", v, "stack", string(debug.Stack()))
			c.CloseFor(CauseInternalError, StatusInternalError, "internal error")
			err = &protoError{Code: StatusInternalError, Reason: fmt.Sprint(v)}
		}
	}()
	w := (*feeder)(c)
	for {
		if err := t.ReadTo(w); err != nil {
			return err
		}
	}
}

// teardown is steps 3 to 6 of Serve.
func (c *Conn) teardown(t Transport, readErr error) {
	defer func() {
		if v := recover(); v != nil {
			slog.Error("websocket: connection teardown panicked", "panic", v, "stack", string(debug.Stack()))
			t.Close()
		}
	}()
	linger := c.stop(readErr)
	if c.wk != nil {
		c.flush()
	} else {
		c.waitFlushed(c.opts.CloseTimeout)
	}
	if linger && !c.isAborted() {
		t.Linger(c.opts.CloseTimeout)
	}
	t.Close()
	c.release()
}

func (c *Conn) isAborted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

// feeder is the io.Writer a transport's ReadTo writes received bytes to. It
// is the connection itself under another method set, so handing it out
// allocates nothing.
type feeder Conn

// Write feeds p to the parser and, for a Waker transport, writes what is
// queued before returning. Its error ends reading: the peer's close was
// handled, the peer broke the protocol (a close frame with the right code
// is queued), or the transport was aborted.
func (s *feeder) Write(p []byte) (int, error) {
	c := (*Conn)(s)
	err := c.feed(p)
	if c.wk != nil {
		c.flush()
		if err == nil && c.isAborted() {
			err = io.ErrClosedPipe
		}
	}
	return len(p), err
}
