package gateway

import (
	"context"
	"runtime"
	"sort"
	"sync"

	"github.com/wsgate/wsgate/websocket"
)

// Hub is the registry of one route's open connections and of its rooms.
// Broadcasts encode each frame once and queue a reference to it on every
// receiver; they never block on a slow receiver, whose own slow-consumer
// policy applies.
type Hub struct {
	mu    sync.RWMutex
	conns map[*Conn]struct{}
	rooms map[string]map[*Conn]struct{}

	// The route's topic on the bus, when the gateway has one (cluster.go).
	cl    *cluster
	topic *topic
}

func newHub() *Hub {
	return &Hub{conns: make(map[*Conn]struct{}), rooms: make(map[string]map[*Conn]struct{})}
}

// Len returns the number of open connections.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// RoomLen returns the number of connections in a room.
func (h *Hub) RoomLen(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms[room])
}

// Each calls fn for every open connection until fn returns false. fn runs
// on a snapshot, without the hub's lock held.
func (h *Hub) Each(fn func(*Conn) bool) {
	snap := h.snapshot(nil, "")
	defer putSnapshot(snap)
	for _, c := range *snap {
		if !fn(c) {
			return
		}
	}
}

// Broadcast sends a message to every open connection of the route except
// except (which may be nil), on every node when the gateway has a bus, and
// returns how many of this node's connections accepted it.
func (h *Hub) Broadcast(typ websocket.MessageType, data []byte, except *Conn) int {
	// The other nodes first: their fan-outs then run while this one's
	// does, instead of after it.
	if cl, t := h.clusterTopic(); cl != nil {
		cl.publish(t, h, "", typ, data)
	}
	return h.send(h.snapshot(except, ""), typ, data)
}

// SendRoom sends a message to every connection in room except except, on
// every node when the gateway has a bus.
func (h *Hub) SendRoom(room string, typ websocket.MessageType, data []byte, except *Conn) int {
	// The other nodes first: their fan-outs then run while this one's
	// does, instead of after it.
	if cl, t := h.clusterTopic(); cl != nil {
		cl.publish(t, h, room, typ, data)
	}
	return h.send(h.snapshot(except, room), typ, data)
}

// sendLocal delivers a message that came from elsewhere (another node, or
// another hub of the same path) to this hub's connections only.
func (h *Hub) sendLocal(room string, typ websocket.MessageType, data []byte) int {
	return h.send(h.snapshot(nil, room), typ, data)
}

// ClusterLen counts the connections of the route (room "") or of a room
// on every node of the bus, this one included, and says how many nodes
// answered. Without a bus it is this node's count. Nodes that do not
// answer within CountTimeout are left out.
func (h *Hub) ClusterLen(ctx context.Context, room string) (count, nodes int) {
	cl, t := h.clusterTopic()
	if cl == nil {
		if room == "" {
			return h.Len(), 1
		}
		return h.RoomLen(room), 1
	}
	count, nodes, _ = cl.count(ctx, t, room)
	return count, nodes
}

func (h *Hub) setCluster(cl *cluster, t *topic) {
	h.mu.Lock()
	h.cl, h.topic = cl, t
	h.mu.Unlock()
}

func (h *Hub) clusterTopic() (*cluster, *topic) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cl, h.topic
}

// leaveCluster takes the hub out of the bus, when its route stops.
func (h *Hub) leaveCluster() {
	h.mu.Lock()
	cl, t := h.cl, h.topic
	h.cl, h.topic = nil, nil
	h.mu.Unlock()
	if cl != nil {
		cl.detach(h, t)
	}
}

func (h *Hub) send(snap *[]*Conn, typ websocket.MessageType, data []byte) int {
	defer putSnapshot(snap)
	if len(*snap) == 0 {
		return 0
	}
	pm := websocket.NewPreparedMessage(typ, data)
	defer pm.Release()
	n := 0
	for i, c := range *snap {
		if c.ws.SendPrepared(pm) == nil {
			n++
		}
		if i%yieldEvery == yieldEvery-1 {
			runtime.Gosched()
		}
	}
	return n
}

// yieldEvery is how many sends a fan-out makes between yields. A large
// fan-out is one goroutine making thousands of write(2) calls; past the
// scheduler's 10 ms time slice sysmon retakes its P in the middle of a
// write, and the goroutine finishes the fan-out hopping between threads
// (on one core, about an eighth of the time went to context switches).
// Yielding starts a new time slice, as a goroutine per write would, and
// lets the node's other connections run between batches.
const yieldEvery = 64

var snapPool = sync.Pool{New: func() any { s := make([]*Conn, 0, 64); return &s }}

func (h *Hub) snapshot(except *Conn, room string) *[]*Conn {
	s := snapPool.Get().(*[]*Conn)
	h.mu.RLock()
	set := h.conns
	if room != "" {
		set = h.rooms[room]
	}
	for c := range set {
		if c != except {
			*s = append(*s, c)
		}
	}
	h.mu.RUnlock()
	return s
}

func putSnapshot(s *[]*Conn) {
	clear(*s)
	*s = (*s)[:0]
	snapPool.Put(s)
}

func (h *Hub) add(c *Conn) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

// remove takes c out of the hub; ended, if not nil, runs under the same
// lock (the route's totals take the connection's counters at the moment
// it stops being counted as open).
func (h *Hub) remove(c *Conn, ended func()) {
	h.mu.Lock()
	if ended != nil && !c.gone {
		if _, in := h.conns[c]; in {
			ended()
		}
	}
	c.gone = true
	delete(h.conns, c)
	for room := range c.rooms {
		h.leaveLocked(c, room)
	}
	h.mu.Unlock()
}

func (h *Hub) join(c *Conn, room string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.gone {
		return // joining now would leak it into the room
	}
	m := h.rooms[room]
	if m == nil {
		m = make(map[*Conn]struct{})
		h.rooms[room] = m
	}
	m[c] = struct{}{}
	if c.rooms == nil {
		c.rooms = make(map[string]struct{})
	}
	c.rooms[room] = struct{}{}
}

func (h *Hub) leave(c *Conn, room string) {
	h.mu.Lock()
	h.leaveLocked(c, room)
	h.mu.Unlock()
}

func (h *Hub) leaveLocked(c *Conn, room string) {
	if m := h.rooms[room]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.rooms, room)
		}
	}
	delete(c.rooms, room)
}

func (h *Hub) roomsOf(c *Conn) []string {
	h.mu.RLock()
	out := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		out = append(out, r)
	}
	h.mu.RUnlock()
	sort.Strings(out)
	return out
}
