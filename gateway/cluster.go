package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/websocket"
)

// The cluster: what a gateway does with a Bus (see bus.go).
//
// Every route path is a topic. A broadcast or room message on a route is
// delivered to the local connections first, then published once; each
// other node that serves the route receives it and delivers it to its own
// connections, encoding the frame once per node. Delivery is at most
// once: while the bus is up every connection gets each message exactly
// once, in each publisher's order; what the bus loses (down, or this node
// too slow to take it) is lost, and counted.
//
// Invariants:
//   - Messages are numbered per publishing node and topic. A receiver
//     delivers a number once (a duplicate is dropped and counted) and
//     counts the numbers it never saw as lost.
//   - Numbers are assigned and published under the topic's lock, so the
//     bus sees them in order.
//   - Local delivery never waits for the bus.
//
// Nodes announce themselves every heartbeat with the topics they serve,
// so that a room count asked of the cluster knows how many answers to
// wait for.

const (
	envVersion = 1

	kindMessage    = 1
	kindCountReq   = 2
	kindCountReply = 3
	kindHeartbeat  = 4

	heartbeatEvery = time.Second
	peerTimeout    = 3 * heartbeatEvery
	// CountTimeout bounds how long a cluster-wide room count waits for
	// the nodes that have not answered.
	CountTimeout = 500 * time.Millisecond
)

// ClusterStats are a gateway's bus counters, for metrics.
type ClusterStats struct {
	Node      string // this node's id, random per process `json:"node"`
	Connected bool   // the bus reaches the other nodes `json:"connected"`
	Peers     int    // other nodes heard from in the last few seconds `json:"peers"`
	// Published and Received count messages; PublishFailed the ones the
	// bus refused to take (it was down and its buffer full); Lost the
	// ones other nodes published that never arrived; Duplicates those
	// that arrived twice (dropped); SlowConsumer those the bus dropped
	// because this node was too slow.
	Published     uint64 `json:"published"`
	PublishFailed uint64 `json:"publish_failed"`
	Received      uint64 `json:"received"`
	Lost          uint64 `json:"lost"`
	Duplicates    uint64 `json:"duplicates"`
	SlowConsumer  uint64 `json:"slow_consumer"`
	// Nodes is how many processes these figures add up (httpd's
	// children); ConnectedCount how many of them were connected.
	Nodes          int `json:"nodes"`
	ConnectedCount int `json:"connected_count"`
}

// ConnectedNodes is the number of processes connected to the bus: 0 or 1
// for one process, up to Nodes for a sum.
func (s *ClusterStats) ConnectedNodes() int {
	if s.Nodes == 0 {
		if s.Connected {
			return 1
		}
		return 0
	}
	return s.ConnectedCount
}

// Add adds o's counters to s: two processes of one httpd.
func (s *ClusterStats) Add(o *ClusterStats) {
	if s.Nodes == 0 {
		s.Nodes = 1
		if s.Connected {
			s.ConnectedCount = 1
		}
	}
	s.Nodes++
	if o.Connected {
		s.ConnectedCount++
	}
	s.Connected = s.Connected || o.Connected
	s.Peers = max(s.Peers, o.Peers)
	s.Published += o.Published
	s.PublishFailed += o.PublishFailed
	s.Received += o.Received
	s.Lost += o.Lost
	s.Duplicates += o.Duplicates
	s.SlowConsumer += o.SlowConsumer
}

type cluster struct {
	bus     Bus
	ordered OrderedBus    // bus, when it can keep channels in one order
	hubs    func() []*Hub // every route's, for channel messages
	log     *slog.Logger
	node    uint64
	prefix  string

	mu     sync.Mutex
	topics map[string]*topic
	peers  map[uint64]peer
	counts map[uint64]*countReq
	nextID uint64

	published, publishFailed, received, lost, duplicates atomic.Uint64

	unsubs []func()
	done   chan struct{}
}

type peer struct {
	seen   time.Time
	topics map[string]bool
}

// topic is one route path's state on this node.
type topic struct {
	name  string // the bus topic
	path  string
	mu    sync.Mutex
	hubs  []*Hub // normally one; two while a reload replaces a route. Never changed in place, so a reader may keep it after unlocking.
	seq   uint64
	last  map[uint64]uint64 // by publishing node: the last number delivered
	unsub func()
}

type countReq struct {
	expect  map[uint64]bool // nodes that should answer
	total   int
	answers int
	done    chan struct{}
}

// UseBus makes the gateway's routes share their broadcasts and rooms with
// the other processes on b. prefix starts every topic name ("wsgate" when
// empty), so that separate clusters can share a broker. Call it before
// Start (mod_wsgate: when a child starts); the routes started afterwards
// join as they start.
func (g *Gateway) UseBus(b Bus, prefix string) error {
	if prefix == "" {
		prefix = "wsgate"
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	cl := &cluster{bus: b, hubs: g.hubs, log: g.log.With("log", "cluster"), node: binary.BigEndian.Uint64(id[:]) | 1, prefix: prefix,
		topics: map[string]*topic{}, peers: map[uint64]peer{}, counts: map[uint64]*countReq{}, done: make(chan struct{})}
	unsub, err := b.Subscribe(prefix+".nodes", cl.receive)
	if err != nil {
		return err
	}
	cl.unsubs = append(cl.unsubs, unsub)
	unsub, err = b.Subscribe(cl.replyTopic(cl.node), cl.receive)
	if err != nil {
		cl.close()
		return err
	}
	cl.unsubs = append(cl.unsubs, unsub)
	if ob, ok := b.(OrderedBus); ok {
		cl.ordered = ob
		unsub, err = ob.SubscribeOrdered(cl.channelTopic(), cl.receiveChannel)
	} else {
		unsub, err = b.Subscribe(cl.channelTopic(), cl.receiveChannel)
	}
	if err != nil {
		cl.close()
		return err
	}
	cl.unsubs = append(cl.unsubs, unsub)
	g.mu.Lock()
	g.cluster = cl
	g.mu.Unlock()
	for _, r := range g.allRoutes() {
		if r.hub != nil && r.started && !r.stopped {
			cl.attach(r.Path, r.hub)
		}
	}
	recovered.Go("cluster heartbeat", cl.heartbeats)
	return nil
}

func (cl *cluster) topicName(path string) string {
	return cl.prefix + ".r." + hex.EncodeToString([]byte(path))
}

func (cl *cluster) replyTopic(node uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], node)
	return cl.prefix + ".reply." + hex.EncodeToString(b[:])
}

// attach makes h, the hub of a route serving path, a member of the
// route's topic.
func (cl *cluster) attach(path string, h *Hub) {
	cl.mu.Lock()
	t := cl.topics[path]
	if t == nil {
		t = &topic{name: cl.topicName(path), path: path, last: map[uint64]uint64{}}
		cl.topics[path] = t
	}
	t.mu.Lock()
	t.hubs = append(slices.Clip(t.hubs), h) // a new array: readers keep the old one
	first := len(t.hubs) == 1
	t.mu.Unlock()
	cl.mu.Unlock()
	h.setCluster(cl, t)
	if first {
		unsub, err := cl.bus.Subscribe(t.name, func(msg []byte) { cl.receiveOn(t, msg) })
		if err != nil {
			cl.log.Error("cannot subscribe to the route's topic: its broadcasts stay on this node", "route", path, "err", err)
			return
		}
		t.mu.Lock()
		t.unsub = unsub
		t.mu.Unlock()
	}
}

// detach takes h out of its topic, when its route stops.
func (cl *cluster) detach(h *Hub, t *topic) {
	t.mu.Lock()
	t.hubs = slices.DeleteFunc(slices.Clone(t.hubs), func(x *Hub) bool { return x == h })
	var unsub func()
	if len(t.hubs) == 0 {
		unsub, t.unsub = t.unsub, nil
	}
	t.mu.Unlock()
	if unsub != nil {
		unsub()
		cl.mu.Lock()
		if cl.topics[t.path] == t {
			delete(cl.topics, t.path)
		}
		cl.mu.Unlock()
	}
}

func (cl *cluster) close() {
	select {
	case <-cl.done:
		return
	default:
		close(cl.done)
	}
	for _, u := range cl.unsubs {
		u()
	}
}

// publish delivers a message to the topic's other hubs on this node (a
// route being replaced by a reload) and to the other nodes.
func (cl *cluster) publish(t *topic, from *Hub, room string, typ websocket.MessageType, data []byte) {
	msg := make([]byte, 0, 21+len(room)+len(data))
	msg = append(msg, envVersion, kindMessage)
	msg = binary.BigEndian.AppendUint64(msg, cl.node)
	msg = binary.BigEndian.AppendUint64(msg, 0) // the number, below
	msg = append(msg, byte(typ))
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(room)))
	msg = append(msg, room...)
	msg = append(msg, data...)
	t.mu.Lock()
	for _, h := range t.hubs {
		if h != from {
			h.sendLocal(room, typ, data)
		}
	}
	t.seq++
	binary.BigEndian.PutUint64(msg[10:], t.seq)
	err := cl.bus.Publish(t.name, msg)
	t.mu.Unlock()
	if err != nil {
		cl.publishFailed.Add(1)
		cl.log.Debug("broadcast not sent to the other nodes", "route", t.path, "err", err)
		return
	}
	cl.published.Add(1)
}

// envelope reads the header every bus message starts with (version,
// kind, sending node); ok is false for a message this node must ignore:
// too short, of another version, or its own.
func (cl *cluster) envelope(msg []byte) (kind byte, node uint64, ok bool) {
	if len(msg) < 10 || msg[0] != envVersion {
		return 0, 0, false
	}
	node = binary.BigEndian.Uint64(msg[2:])
	return msg[1], node, node != cl.node
}

// receiveOn handles a message on a route's topic.
func (cl *cluster) receiveOn(t *topic, msg []byte) {
	kind, node, ok := cl.envelope(msg)
	if !ok {
		return
	}
	switch kind {
	case kindMessage:
		if len(msg) < 21 {
			return
		}
		seq := binary.BigEndian.Uint64(msg[10:])
		typ := websocket.MessageType(msg[18])
		n := int(binary.BigEndian.Uint16(msg[19:]))
		if len(msg) < 21+n || (typ != websocket.TextMessage && typ != websocket.BinaryMessage) {
			return
		}
		room, data := string(msg[21:21+n]), msg[21+n:]
		t.mu.Lock()
		last, known := t.last[node]
		switch {
		case known && seq <= last:
			t.mu.Unlock()
			cl.duplicates.Add(1)
			return
		case known && seq > last+1:
			cl.lost.Add(seq - last - 1)
		}
		t.last[node] = seq
		hubs := t.hubs
		t.mu.Unlock()
		cl.received.Add(1)
		for _, h := range hubs {
			h.sendLocal(room, typ, data)
		}
	case kindCountReq:
		if len(msg) < 20 {
			return
		}
		id := binary.BigEndian.Uint64(msg[10:])
		n := int(binary.BigEndian.Uint16(msg[18:]))
		if len(msg) < 20+n {
			return
		}
		room := string(msg[20 : 20+n])
		count := t.localCount(room)
		reply := append(make([]byte, 0, 26), envVersion, kindCountReply)
		reply = binary.BigEndian.AppendUint64(reply, cl.node)
		reply = binary.BigEndian.AppendUint64(reply, id)
		reply = binary.BigEndian.AppendUint64(reply, uint64(count))
		cl.bus.Publish(cl.replyTopic(node), reply)
	}
}

// receive handles the node-wide topics: heartbeats and count replies.
func (cl *cluster) receive(msg []byte) {
	kind, node, ok := cl.envelope(msg)
	if !ok {
		return
	}
	switch kind {
	case kindHeartbeat:
		p := peer{seen: time.Now(), topics: map[string]bool{}}
		rest := msg[10:]
		for len(rest) >= 2 {
			n := int(binary.BigEndian.Uint16(rest))
			if len(rest) < 2+n {
				break
			}
			p.topics[string(rest[2:2+n])] = true
			rest = rest[2+n:]
		}
		cl.mu.Lock()
		cl.peers[node] = p
		cl.mu.Unlock()
	case kindCountReply:
		if len(msg) < 26 {
			return
		}
		id := binary.BigEndian.Uint64(msg[10:])
		count := binary.BigEndian.Uint64(msg[18:])
		cl.mu.Lock()
		if r := cl.counts[id]; r != nil && r.expect[node] {
			delete(r.expect, node)
			r.total += int(count)
			r.answers++
			if len(r.expect) == 0 {
				close(r.done)
				delete(cl.counts, id)
			}
		}
		cl.mu.Unlock()
	}
}

func (cl *cluster) heartbeats() {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		cl.mu.Lock()
		msg := append(make([]byte, 0, 64), envVersion, kindHeartbeat)
		msg = binary.BigEndian.AppendUint64(msg, cl.node)
		for _, tp := range cl.topics {
			msg = binary.BigEndian.AppendUint16(msg, uint16(len(tp.name)))
			msg = append(msg, tp.name...)
		}
		for id, p := range cl.peers {
			if time.Since(p.seen) > peerTimeout {
				delete(cl.peers, id)
			}
		}
		cl.mu.Unlock()
		cl.bus.Publish(cl.prefix+".nodes", msg)
		select {
		case <-cl.done:
			return
		case <-t.C:
		}
	}
}

func (t *topic) localCount(room string) int {
	t.mu.Lock()
	hubs := append([]*Hub(nil), t.hubs...)
	t.mu.Unlock()
	n := 0
	for _, h := range hubs {
		if room == "" {
			n += h.Len()
		} else {
			n += h.RoomLen(room)
		}
	}
	return n
}

// count asks every node serving the topic how many connections it has in
// room (the whole route when room is empty), and adds them up with this
// node's. It returns the total and the number of nodes counted, this one
// included; nodes that do not answer within CountTimeout are left out.
func (cl *cluster) count(ctx context.Context, t *topic, room string) (total, nodes int, err error) {
	total, nodes = t.localCount(room), 1
	cl.mu.Lock()
	expect := map[uint64]bool{}
	for id, p := range cl.peers {
		if p.topics[t.name] && time.Since(p.seen) <= peerTimeout {
			expect[id] = true
		}
	}
	if len(expect) == 0 {
		cl.mu.Unlock()
		return total, nodes, nil
	}
	cl.nextID++
	id := cl.nextID
	r := &countReq{expect: expect, done: make(chan struct{})}
	cl.counts[id] = r
	cl.mu.Unlock()
	msg := append(make([]byte, 0, 20+len(room)), envVersion, kindCountReq)
	msg = binary.BigEndian.AppendUint64(msg, cl.node)
	msg = binary.BigEndian.AppendUint64(msg, id)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(room)))
	msg = append(msg, room...)
	if err := cl.bus.Publish(t.name, msg); err != nil {
		cl.mu.Lock()
		delete(cl.counts, id)
		cl.mu.Unlock()
		return total, nodes, err
	}
	timer := time.NewTimer(CountTimeout)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	cl.mu.Lock()
	delete(cl.counts, id)
	total += r.total
	nodes += r.answers
	cl.mu.Unlock()
	return total, nodes, nil
}

func (cl *cluster) stats() ClusterStats {
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], cl.node)
	s := ClusterStats{Node: hex.EncodeToString(id[:]), Connected: true,
		Published: cl.published.Load(), PublishFailed: cl.publishFailed.Load(), Received: cl.received.Load(),
		Lost: cl.lost.Load(), Duplicates: cl.duplicates.Load()}
	if st, ok := cl.bus.(BusStatus); ok {
		s.Connected = st.Connected()
		s.SlowConsumer = st.SlowConsumer()
	}
	cl.mu.Lock()
	for _, p := range cl.peers {
		if time.Since(p.seen) <= peerTimeout {
			s.Peers++
		}
	}
	cl.mu.Unlock()
	return s
}

// ClusterStats returns the bus counters, and false when the gateway has
// no bus.
func (g *Gateway) ClusterStats() (ClusterStats, bool) {
	g.mu.Lock()
	cl := g.cluster
	g.mu.Unlock()
	if cl == nil {
		return ClusterStats{}, false
	}
	return cl.stats(), true
}
