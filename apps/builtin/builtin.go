// Package apps holds wsgate's built-in applications. Importing it
// registers them with the gateway under the names the configuration uses:
// "echo", "dumb-increment" and "chat".
package builtin

import (
	"context"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

func init() {
	gateway.RegisterApp(gateway.AppInfo{Name: "echo", Doc: "sends every message back to its sender, text as text and binary as binary",
		New: func() gateway.Handler { return Echo{} }})
	gateway.RegisterApp(gateway.AppInfo{Name: "dumb-increment", Doc: "libwebsockets' dumb-increment-protocol: a counter every 50 ms; \"reset\\n\" resets it",
		New: func() gateway.Handler { return &Increment{Interval: 50 * time.Millisecond} }})
	gateway.RegisterApp(gateway.AppInfo{Name: "chat", Doc: "broadcasts every text message to all connections of the route",
		New: func() gateway.Handler { return Chat{} }})
}

// Echo is apache-websocket's echo example: every message goes back as it
// came.
type Echo struct{ gateway.Base }

func (Echo) OnMessage(c *gateway.Conn, m gateway.Message) { c.Send(m.Type, m.Data) }

// IncrementProtocol is the subprotocol Increment requires.
const IncrementProtocol = "dumb-increment-protocol"

// Increment is apache-websocket's dumb-increment example: it requires the
// dumb-increment-protocol subprotocol (refusing with 403 without it), sends
// a counter as text every Interval from its own goroutine, and resets the
// counter when it receives exactly "reset\n".
type Increment struct {
	gateway.Base
	Interval time.Duration
	log      *slog.Logger
}

type incrementState struct {
	counter atomic.Int64
	stop    chan struct{}
}

func (a *Increment) Provision(ctx gateway.AppContext) error {
	a.log = ctx.Logger
	return nil
}

func (a *Increment) OnOpen(ctx context.Context, c *gateway.Conn) error {
	if !slices.Contains(c.Request().Protocols, IncrementProtocol) {
		return gateway.Refuse(403, "client did not offer "+IncrementProtocol)
	}
	c.SetSubprotocol(IncrementProtocol)
	st := &incrementState{stop: make(chan struct{})}
	c.SetState(st)
	go a.run(c, st)
	return nil
}

func (a *Increment) run(c *gateway.Conn, st *incrementState) {
	defer func() {
		if v := recover(); v != nil {
			log := a.log
			if log == nil {
				log = slog.Default()
			}
			log.Error("dumb-increment sender panicked", "panic", v, "stack", string(debug.Stack()))
			c.CloseFor(websocket.CauseInternalError, websocket.StatusInternalError, "internal error")
		}
	}()
	t := time.NewTicker(a.Interval)
	defer t.Stop()
	var buf [20]byte
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			n := st.counter.Add(1) - 1
			if err := c.Send(websocket.TextMessage, strconv.AppendInt(buf[:0], n, 10)); err == websocket.ErrClosed {
				return
			}
		}
	}
}

func (a *Increment) OnMessage(c *gateway.Conn, m gateway.Message) {
	if m.Type == websocket.TextMessage && string(m.Data) == "reset\n" {
		c.State().(*incrementState).counter.Store(0)
	}
}

func (a *Increment) OnClose(c *gateway.Conn, _ websocket.CloseStatus) {
	if st, ok := c.State().(*incrementState); ok {
		close(st.stop)
	}
}

// Chat relays every text message to every connection of its route,
// sender included, so a client sees what it said among the others. Two
// messages sent at once may reach two clients in different orders; each
// sender's own messages arrive in the order it sent them.
type Chat struct{ gateway.Base }

// Broadcasts implements gateway.Broadcaster: the chat is one room across
// every process of the route's bus.
func (Chat) Broadcasts() bool { return true }

func (Chat) OnMessage(c *gateway.Conn, m gateway.Message) {
	if m.Type == websocket.TextMessage {
		c.Hub().Broadcast(websocket.TextMessage, m.Data, nil)
	}
}
