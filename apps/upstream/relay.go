package upstream

import (
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/monoclock"
	"github.com/wsgate/wsgate/websocket"
)

// Flow control: a message is relayed only when the side it goes to has
// room (less than half its max_queue waiting to be written). Until then
// the goroutine that read it waits, so nothing more is read from the
// sender: TCP's own window slows it down, as a tunnel's would. A side
// that stays full for its write_timeout gets the message anyway, and its
// route's slow_consumer policy applies. A pair holds at most a message
// and max_queue in each direction.

// room is how much one side of a pair may have waiting before a message
// for it waits, and for how long at most: half its max_queue, its
// write_timeout. Worked out once, when the pair is made, not per message.
type room struct {
	high  int
	limit time.Duration
}

func roomOf(o websocket.Options) room {
	return room{high: o.MaxQueue / 2, limit: o.WriteTimeout}
}

// waitRoom waits while dst has more than r.high waiting, for at most
// r.limit, or until gone says the pair is over.
func waitRoom(dst *websocket.Conn, r room, gone func() bool) {
	high, limit := r.high, r.limit
	if dst.Queued() <= high {
		return
	}
	deadline := time.Now().Add(limit)
	for d := 100 * time.Microsecond; dst.Queued() > high && !gone() && time.Now().Before(deadline); d = min(2*d, 20*time.Millisecond) {
		time.Sleep(d)
	}
}

// OnMessage relays a client's message to its upstream.
func (p *Proxy) OnMessage(c *gateway.Conn, m gateway.Message) {
	pr, ok := c.State().(*pair)
	if !ok || pr.up == nil {
		return
	}
	start := monoclock.Now()
	waitRoom(pr.up, pr.upRoom, pr.up.Closing)
	if pr.up.Send(m.Type, m.Data) == nil {
		p.stats.relayed(toUpstream, monoclock.Now()-start)
	}
}

// OnClose carries the client's end to the upstream: the client's close
// code and reason when it sent a close frame; otherwise (it went away,
// broke the protocol, or the gateway closed it) 1001.
func (p *Proxy) OnClose(c *gateway.Conn, s websocket.CloseStatus) {
	pr, ok := c.State().(*pair)
	if !ok || pr.up == nil {
		return
	}
	pr.closed.Store(true)
	st := c.Engine().Stats()
	if !s.Remote && isProtocolCode(st.CloseSent.Code) {
		p.stats.protocolError(sideClient)
	}
	if pr.up.Closing() {
		return
	}
	if s.Remote && st.CloseReceived.Code != 0 {
		if relayClose(pr.up, st.CloseReceived) == nil {
			return
		}
	}
	pr.up.CloseFor(websocket.CauseApplication, websocket.StatusGoingAway, "client went away")
}

// relayClose sends the close frame received on one side to the other:
// its code and reason, or none when it had none (1005).
func relayClose(dst *websocket.Conn, got websocket.CloseStatus) error {
	if got.Code == websocket.StatusNoStatusReceived {
		return dst.Close(0, "")
	}
	return dst.Close(got.Code, got.Reason)
}

func isProtocolCode(c websocket.StatusCode) bool {
	return c == websocket.StatusProtocolError || c == websocket.StatusInvalidPayload || c == websocket.StatusMessageTooBig
}

// upHandler is the upstream side of a pair.
type upHandler pair

// OnMessage relays an upstream's message to its client.
func (h *upHandler) OnMessage(up *websocket.Conn, typ websocket.MessageType, data []byte) {
	pr := (*pair)(h)
	start := monoclock.Now()
	waitRoom(pr.c.Engine(), pr.clientRoom, pr.closed.Load)
	if pr.c.Send(typ, data) == nil {
		pr.p.stats.relayed(toClient, monoclock.Now()-start)
	}
}

// OnClose carries the upstream's end to the client: its close code and
// reason when it sent a close frame; 1014 "bad gateway" when it broke the
// protocol (the engine closed it with 1002, 1007 or 1009) or went away
// without one.
func (h *upHandler) OnClose(up *websocket.Conn, s websocket.CloseStatus) {
	pr := (*pair)(h)
	pr.s.active.Add(-1)
	st := up.Stats()
	broken := !s.Remote && isProtocolCode(st.CloseSent.Code)
	if broken {
		pr.p.stats.protocolError(sideUpstream)
		pr.p.log.Warn("upstream broke the protocol: its client is closed with 1014", "route", pr.p.route, "upstream", pr.s.name,
			"code", uint16(st.CloseSent.Code), "reason", st.CloseSent.Reason)
	}
	if pr.closed.Load() || pr.c.Engine().Closing() {
		return
	}
	if s.Remote && st.CloseReceived.Code != 0 && st.CloseReceived.Code != websocket.StatusAbnormalClosure {
		if relayClose(pr.c.Engine(), st.CloseReceived) == nil {
			return
		}
	}
	cause := gateway.CauseUpstreamGone
	if broken {
		cause = gateway.CauseUpstreamBroken
	}
	pr.c.CloseFor(cause, websocket.StatusBadGateway, "bad gateway")
}
