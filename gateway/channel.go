package gateway

import (
	"encoding/binary"

	"github.com/wsgate/wsgate/websocket"
)

// Publish sends a message to the clients in room on every route: on this
// process, and with a bus on every process of the cluster (Pushpin's
// channels, which are not tied to a route). It returns how many clients
// of this process it reached. A process that serves no route with the
// room still receives it: the channel has one topic of its own.
//
// With a bus that keeps one order (OrderedBus, NATS), the message reaches
// this process's clients through the bus too, so that two publishes made
// one after the other arrive in that order everywhere, whichever
// processes took them; the count is then 0. If the bus cannot take it,
// it is delivered here and counted as a failed publish.
func (g *Gateway) Publish(room string, typ websocket.MessageType, data []byte) int {
	g.mu.Lock()
	cl := g.cluster
	g.mu.Unlock()
	if cl != nil && cl.ordered != nil && cl.publishChannel(room, typ, data) {
		return 0
	}
	n := 0
	for _, h := range g.hubs() {
		n += h.sendLocal(room, typ, data)
	}
	if cl != nil && cl.ordered == nil {
		cl.publishChannel(room, typ, data)
	}
	return n
}

// hubs returns the hubs of every route this gateway serves, for channel
// messages from other nodes.
func (g *Gateway) hubs() []*Hub {
	var out []*Hub
	for _, r := range g.allRoutes() {
		if r.hub != nil {
			out = append(out, r.hub)
		}
	}
	return out
}

func (cl *cluster) channelTopic() string { return cl.prefix + ".publish" }

// publishChannel sends a channel message to the other nodes (and through
// an ordered bus to this one too), and reports whether it was sent.
// Channel messages carry no sequence number (0): each comes from one
// publish request, so there is no stream whose gaps could be told.
func (cl *cluster) publishChannel(room string, typ websocket.MessageType, data []byte) bool {
	msg := make([]byte, 0, 21+len(room)+len(data))
	msg = append(msg, envVersion, kindMessage)
	msg = binary.BigEndian.AppendUint64(msg, cl.node)
	msg = binary.BigEndian.AppendUint64(msg, 0)
	msg = append(msg, byte(typ))
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(room)))
	msg = append(msg, room...)
	msg = append(msg, data...)
	var err error
	if cl.ordered != nil {
		err = cl.ordered.PublishOrdered(cl.channelTopic(), msg)
	} else {
		err = cl.bus.Publish(cl.channelTopic(), msg)
	}
	if err != nil {
		cl.publishFailed.Add(1)
		cl.log.Debug("channel message not sent to the other nodes", "room", room, "err", err)
		return false
	}
	cl.published.Add(1)
	return true
}

// receiveChannel delivers a channel message from another node, or, on
// an ordered bus, from any node, this one included.
func (cl *cluster) receiveChannel(msg []byte) {
	kind, node, ok := cl.envelope(msg)
	if cl.ordered != nil && node == cl.node && len(msg) >= 10 && msg[0] == envVersion {
		kind, ok = msg[1], true
	}
	if !ok || kind != kindMessage || len(msg) < 21 {
		return
	}
	typ := websocket.MessageType(msg[18])
	n := int(binary.BigEndian.Uint16(msg[19:]))
	if len(msg) < 21+n || (typ != websocket.TextMessage && typ != websocket.BinaryMessage) {
		return
	}
	room, data := string(msg[21:21+n]), msg[21+n:]
	cl.received.Add(1)
	for _, h := range cl.hubs() {
		h.sendLocal(room, typ, data)
	}
}
