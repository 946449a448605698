package producer

import (
	"context"
	"net/http"
)

// The event-loop API, in the spirit of apache-ws's producer library:
// instead of callbacks, the program asks for the next event.

// EventType says what an Event is about.
type EventType int

const (
	// AcceptEvent: a client wants to connect. It is accepted when the
	// program asks for the next event, unless Refuse or AcceptWith was
	// called first.
	AcceptEvent EventType = iota + 1
	// MessageEvent (apache-ws's IO event): a message from a client.
	MessageEvent
	// CloseEvent: a client has gone.
	CloseEvent
)

func (t EventType) String() string {
	return [...]string{"", "accept", "message", "close"}[t]
}

// Event is one thing that happened.
type Event struct {
	Type   EventType
	Client *Client
	// MessageType and Data are set for a MessageEvent; Data is the event's
	// own copy.
	MessageType MessageType
	Data        []byte
	// Code and Reason are set for a CloseEvent.
	Code   uint16
	Reason string

	decided  bool
	decision chan error
	accept   *Accept
}

// Respond sends a message back to the event's client, as text unless the
// event was a binary message.
func (e *Event) Respond(data []byte) error {
	typ := Text
	if e.Type == MessageEvent {
		typ = e.MessageType
	}
	return e.Client.Send(typ, data)
}

// AcceptWith accepts an AcceptEvent's client with a subprotocol and
// response headers.
func (e *Event) AcceptWith(subprotocol string, header http.Header) {
	if e.Type != AcceptEvent || e.decided {
		return
	}
	e.decided = true
	e.accept.Subprotocol = subprotocol
	for k, vs := range header {
		e.accept.Header[k] = vs
	}
	e.decision <- nil
}

// Refuse refuses an AcceptEvent's client with an HTTP status.
func (e *Event) Refuse(status int, reason string) {
	if e.Type != AcceptEvent || e.decided {
		return
	}
	e.decided = true
	e.decision <- Refuse(status, reason)
}

// Loop is a Handler that turns callbacks into events. Give it to a
// Server, then call Next in a loop.
type Loop struct {
	ch   chan *Event
	last *Event
}

// NewLoop returns a Loop that buffers up to queue events; when the
// program falls behind, reading from the gateway waits.
func NewLoop(queue int) *Loop {
	if queue <= 0 {
		queue = 1024
	}
	return &Loop{ch: make(chan *Event, queue)}
}

// Next returns the next event. An AcceptEvent returned by the previous
// call and not decided is accepted now.
func (l *Loop) Next(ctx context.Context) (*Event, error) {
	if l.last != nil && l.last.Type == AcceptEvent && !l.last.decided {
		l.last.AcceptWith("", nil)
	}
	select {
	case e := <-l.ch:
		l.last = e
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// OnOpen implements Handler.
func (l *Loop) OnOpen(c *Client, a *Accept) error {
	e := &Event{Type: AcceptEvent, Client: c, decision: make(chan error, 1), accept: a}
	l.ch <- e
	return <-e.decision
}

// OnMessage implements Handler.
func (l *Loop) OnMessage(c *Client, typ MessageType, data []byte) {
	l.ch <- &Event{Type: MessageEvent, Client: c, MessageType: typ, Data: append([]byte(nil), data...)}
}

// OnClose implements Handler.
func (l *Loop) OnClose(c *Client, code uint16, reason string) {
	l.ch <- &Event{Type: CloseEvent, Client: c, Code: code, Reason: reason}
}
