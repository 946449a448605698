package gateway

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/websocket"
)

// What the gateway counts, per route, for metrics. Counters of ended
// connections are added up when each ends; a snapshot adds the open
// connections' own counters to them, so the hot path touches nothing
// shared: a message costs its connection's counters only.

// routeStats are a route's counters.
type routeStats struct {
	accepted     atomic.Uint64
	handedOff    atomic.Uint64 // accepted and given to the backend (HandOff)
	joinsRefused atomic.Uint64 // room joins the route's room_claims refused

	mu      sync.Mutex
	refused map[refusal]uint64

	// Of connections that have ended.
	ended                      atomic.Uint64
	msgsIn, msgsOut            atomic.Uint64
	bytesIn, bytesOut          atomic.Uint64
	zIn, zOut, zRawIn, zRawOut atomic.Uint64
	dropped, slowConsumer      atomic.Uint64
	closeSent, closeRecv       [numCodeClasses]atomic.Uint64
	// Closes the server decided, by cause and code; under mu.
	serverCloses map[serverClose]uint64
	// Handshake durations by outcome, and the lifetimes of ended
	// connections; made with the route (initStats).
	hsAccepted, hsRefused, lifetime *hist
}

// initStats makes the route's histograms.
func (s *routeStats) initStats() {
	s.hsAccepted, s.hsRefused = newHist(HandshakeBuckets), newHist(HandshakeBuckets)
	s.lifetime = newHist(LifetimeBuckets)
}

type serverClose struct {
	cause string
	code  int // a code class (codeClass)
}

type refusal struct {
	status int
	cause  string
}

func (s *routeStats) refuse(status int, cause string) {
	s.mu.Lock()
	if s.refused == nil {
		s.refused = map[refusal]uint64{}
	}
	s.refused[refusal{status, cause}]++
	s.mu.Unlock()
}

// end adds an ended connection's counters.
func (s *routeStats) end(st websocket.Stats, status websocket.CloseStatus) {
	s.ended.Add(1)
	s.msgsIn.Add(st.MessagesIn)
	s.msgsOut.Add(st.MessagesOut)
	s.bytesIn.Add(st.BytesIn)
	s.bytesOut.Add(st.BytesOut)
	s.zIn.Add(st.DeflatedIn)
	s.zOut.Add(st.DeflatedOut)
	s.zRawIn.Add(st.UncompressedIn)
	s.zRawOut.Add(st.UncompressedOut)
	s.dropped.Add(st.Dropped)
	if st.SlowConsumer {
		s.slowConsumer.Add(1)
	}
	s.closeSent[codeClass(st.CloseSent.Code)].Add(1)
	s.closeRecv[codeClass(st.CloseReceived.Code)].Add(1)
	if st.CloseCause != "" {
		code := st.CloseSent.Code
		if code == 0 {
			code = websocket.StatusAbnormalClosure // cut without a close frame
		}
		s.serverClose(st.CloseCause, code)
	}
}

// serverClose counts a connection the server closed for cause with code.
func (s *routeStats) serverClose(cause string, code websocket.StatusCode) {
	s.mu.Lock()
	if s.serverCloses == nil {
		s.serverCloses = map[serverClose]uint64{}
	}
	s.serverCloses[serverClose{cause, codeClass(code)}]++
	s.mu.Unlock()
}

// Close codes are counted in classes, so that a label never takes more
// than numCodeClasses values whatever clients send: each code of RFC 6455
// §7.4.1 and the IANA registry (1000-1015) on its own, then the
// library-defined (3000-3999) and private (4000-4999) ranges, then
// "no_close_frame"
// for a side that sent no close frame, and "other".
const numCodeClasses = 16 + 4

func codeClass(c websocket.StatusCode) int {
	switch {
	case c >= 1000 && c <= 1015:
		return int(c - 1000)
	case c >= 3000 && c <= 3999:
		return 16
	case c >= 4000 && c <= 4999:
		return 17
	case c == 0:
		return 18
	}
	return 19
}

// CodeClassName names a class of close codes for a metric label.
func CodeClassName(i int) string {
	switch {
	case i < 16:
		return strconv.Itoa(1000 + i)
	case i == 16:
		return "3xxx"
	case i == 17:
		return "4xxx"
	case i == 18:
		return "no_close_frame"
	}
	return "other"
}

// RouteSnapshot is a route's counters at one moment.
type RouteSnapshot struct {
	Route string `json:"route"`
	App   string `json:"app"`
	// Open is the number of WebSockets open now; Accepted and Ended count
	// since the route was made.
	Open     uint64 `json:"open"`
	Accepted uint64 `json:"accepted"`
	Ended    uint64 `json:"ended"`
	// HandedOff counts connections given to the backend itself after the
	// 101 (a HandOff route); they are not in Accepted.
	HandedOff uint64 `json:"handed_off"`
	// JoinsRefused counts joins to a room whose room_claims the
	// connection's identity lacks.
	JoinsRefused uint64 `json:"joins_refused"`
	// Refused counts refused upgrades by HTTP status and cause.
	Refused []RefusalCount `json:"refused"`
	// Data messages and payload bytes each way, and for compressed ones
	// the bytes on the wire and uncompressed.
	MessagesIn      uint64 `json:"messages_in"`
	MessagesOut     uint64 `json:"messages_out"`
	BytesIn         uint64 `json:"bytes_in"`
	BytesOut        uint64 `json:"bytes_out"`
	DeflatedIn      uint64 `json:"deflated_in"`
	DeflatedOut     uint64 `json:"deflated_out"`
	UncompressedIn  uint64 `json:"uncompressed_in"`
	UncompressedOut uint64 `json:"uncompressed_out"`
	// Dropped messages (drop policy) and connections the close policy
	// closed as slow consumers.
	Dropped            uint64 `json:"dropped"`
	SlowConsumerCloses uint64 `json:"slow_consumer_closes"`
	// Close frames of ended connections by class of code (CodeClassName),
	// sent by the server and received from clients.
	CloseSent     [numCodeClasses]uint64 `json:"close_sent"`
	CloseReceived [numCodeClasses]uint64 `json:"close_received"`
	// ServerCloses counts the connections the server closed first, by
	// cause and the code it sent (1006 when it cut the connection without
	// a close frame).
	ServerCloses []CloseCount `json:"server_closes"`
	// Handshakes' durations, accepted and refused, and the lifetimes of
	// the connections that ended.
	HandshakeAccepted Histogram `json:"handshake_accepted"`
	HandshakeRefused  Histogram `json:"handshake_refused"`
	Lifetime          Histogram `json:"lifetime"`
	// Queued is what the open connections have queued for their clients
	// now, in bytes.
	Queued uint64 `json:"queued"`
}

// CloseCount is how many connections the server closed for Cause with a
// code of class Code (CodeClassName).
type CloseCount struct {
	Cause string `json:"cause"`
	Code  string `json:"code"`
	Count uint64 `json:"count"`
}

// RefusalCount is how many upgrades were refused with Status for Cause.
type RefusalCount struct {
	Status int    `json:"status"`
	Cause  string `json:"cause"`
	Count  uint64 `json:"count"`
}

// Snapshot returns the counters of every route path this gateway has
// served, in path order. A path's counters add up every route that served
// it: the current one, one a reload replaced that still has connections,
// and those stopped since, so they never go down.
func (g *Gateway) Snapshot() []RouteSnapshot {
	byPath := map[string]*RouteSnapshot{}
	add := func(s *RouteSnapshot) {
		if t := byPath[s.Route]; t != nil {
			t.Add(s)
		} else {
			c := *s
			c.Refused = append([]RefusalCount(nil), s.Refused...)
			c.ServerCloses = append([]CloseCount(nil), s.ServerCloses...)
			c.HandshakeAccepted, c.HandshakeRefused, c.Lifetime = Histogram{}, Histogram{}, Histogram{}
			c.HandshakeAccepted.Add(s.HandshakeAccepted)
			c.HandshakeRefused.Add(s.HandshakeRefused)
			c.Lifetime.Add(s.Lifetime)
			byPath[s.Route] = &c
		}
	}
	// One hold of g.mu: a route a reload retired is either in the list or
	// in past, never both or neither.
	g.mu.Lock()
	routes := append(append(append([]*Route(nil), g.set.Load().routes...), g.retired...), g.extra...)
	for _, r := range routes {
		s := r.snapshot()
		add(&s)
	}
	for _, s := range g.past {
		add(s)
	}
	g.mu.Unlock()
	out := make([]RouteSnapshot, 0, len(byPath))
	for _, s := range byPath {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out
}

// Add adds o's counters to s: the same path served by two routes, or by
// two processes.
func (s *RouteSnapshot) Add(o *RouteSnapshot) {
	s.Open += o.Open
	s.Accepted += o.Accepted
	s.HandedOff += o.HandedOff
	s.JoinsRefused += o.JoinsRefused
	s.Ended += o.Ended
	s.MessagesIn += o.MessagesIn
	s.MessagesOut += o.MessagesOut
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.DeflatedIn += o.DeflatedIn
	s.DeflatedOut += o.DeflatedOut
	s.UncompressedIn += o.UncompressedIn
	s.UncompressedOut += o.UncompressedOut
	s.Dropped += o.Dropped
	s.SlowConsumerCloses += o.SlowConsumerCloses
	for i := range s.CloseSent {
		s.CloseSent[i] += o.CloseSent[i]
		s.CloseReceived[i] += o.CloseReceived[i]
	}
	s.ServerCloses = addCloseCounts(s.ServerCloses, o.ServerCloses)
	s.HandshakeAccepted.Add(o.HandshakeAccepted)
	s.HandshakeRefused.Add(o.HandshakeRefused)
	s.Lifetime.Add(o.Lifetime)
	s.Queued += o.Queued
next:
	for _, rc := range o.Refused {
		for i := range s.Refused {
			if s.Refused[i].Status == rc.Status && s.Refused[i].Cause == rc.Cause {
				s.Refused[i].Count += rc.Count
				continue next
			}
		}
		s.Refused = append(s.Refused, rc)
	}
	sort.Slice(s.Refused, func(i, j int) bool {
		a, b := s.Refused[i], s.Refused[j]
		return a.Status < b.Status || a.Status == b.Status && a.Cause < b.Cause
	})
}

func (r *Route) snapshot() RouteSnapshot {
	s := &r.stats
	snap := RouteSnapshot{Route: r.Path, App: r.App}
	if r.hub == nil {
		return snap
	}
	// Under the hub's lock a connection is either open (in the hub) or
	// ended (in the totals), never both or neither: the counters a scrape
	// sees never go down.
	r.hub.mu.RLock()
	snap.Accepted, snap.Ended, snap.HandedOff = s.accepted.Load(), s.ended.Load(), s.handedOff.Load()
	snap.JoinsRefused = s.joinsRefused.Load()
	snap.MessagesIn, snap.MessagesOut = s.msgsIn.Load(), s.msgsOut.Load()
	snap.BytesIn, snap.BytesOut = s.bytesIn.Load(), s.bytesOut.Load()
	snap.DeflatedIn, snap.DeflatedOut = s.zIn.Load(), s.zOut.Load()
	snap.UncompressedIn, snap.UncompressedOut = s.zRawIn.Load(), s.zRawOut.Load()
	snap.Dropped, snap.SlowConsumerCloses = s.dropped.Load(), s.slowConsumer.Load()
	for i := range snap.CloseSent {
		snap.CloseSent[i] = s.closeSent[i].Load()
		snap.CloseReceived[i] = s.closeRecv[i].Load()
	}
	for c := range r.hub.conns {
		st := c.ws.Stats()
		snap.Open++
		snap.Queued += uint64(c.ws.Queued())
		snap.MessagesIn += st.MessagesIn
		snap.MessagesOut += st.MessagesOut
		snap.BytesIn += st.BytesIn
		snap.BytesOut += st.BytesOut
		snap.DeflatedIn += st.DeflatedIn
		snap.DeflatedOut += st.DeflatedOut
		snap.UncompressedIn += st.UncompressedIn
		snap.UncompressedOut += st.UncompressedOut
		snap.Dropped += st.Dropped
	}
	r.hub.mu.RUnlock()
	if s.hsAccepted != nil {
		snap.HandshakeAccepted, snap.HandshakeRefused = s.hsAccepted.snapshot(), s.hsRefused.snapshot()
		snap.Lifetime = s.lifetime.snapshot()
	}
	s.mu.Lock()
	for k, n := range s.refused {
		snap.Refused = append(snap.Refused, RefusalCount{Status: k.status, Cause: k.cause, Count: n})
	}
	for k, n := range s.serverCloses {
		snap.ServerCloses = append(snap.ServerCloses, CloseCount{Cause: k.cause, Code: CodeClassName(k.code), Count: n})
	}
	s.mu.Unlock()
	sortCloseCounts(snap.ServerCloses)
	sort.Slice(snap.Refused, func(i, j int) bool {
		a, b := snap.Refused[i], snap.Refused[j]
		return a.Status < b.Status || a.Status == b.Status && a.Cause < b.Cause
	})
	return snap
}

// addCloseCounts adds o's counts to s's, matching cause and code.
func addCloseCounts(s, o []CloseCount) []CloseCount {
next:
	for _, cc := range o {
		for i := range s {
			if s[i].Cause == cc.Cause && s[i].Code == cc.Code {
				s[i].Count += cc.Count
				continue next
			}
		}
		s = append(s, cc)
	}
	sortCloseCounts(s)
	return s
}

func sortCloseCounts(s []CloseCount) {
	sort.Slice(s, func(i, j int) bool {
		return s[i].Cause < s[j].Cause || s[i].Cause == s[j].Cause && s[i].Code < s[j].Code
	})
}
