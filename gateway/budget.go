package gateway

import (
	"sort"
	"time"

	"github.com/wsgate/wsgate/internal/ratelog"
	"github.com/wsgate/wsgate/websocket"
)

// CauseMemoryBudget closes connections when what every connection
// buffers together passes the gateway's budget (1013: try again later).
const CauseMemoryBudget = "memory_budget"

// SetBudget makes every connection made from now on count what it
// buffers (the part of a message still arriving, the frames queued for
// its peer) in b, and sheds connections while b is over: the ones that
// hold the most first, the oldest among equals, until it is back under
// nine tenths of its limit. Each is closed with 1013, counted under
// CauseMemoryBudget, and logged. It runs until Shutdown.
func (g *Gateway) SetBudget(b *websocket.Budget) {
	g.mu.Lock()
	start := g.budget == nil
	g.budget = b
	g.mu.Unlock()
	if start {
		go g.shedLoop(b)
	}
}

// Budget is the gateway's budget, nil without one.
func (g *Gateway) Budget() *websocket.Budget {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.budget
}

func (g *Gateway) shedLoop(b *websocket.Budget) {
	lines := ratelog.New(1, time.Second)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-g.stopping.Done():
			return
		case <-b.Over():
		case <-tick.C:
		}
		g.shares(b, lines)
		if lim := b.Limit(); lim <= 0 || b.Used() <= lim {
			continue
		}
		n, freed := g.shed(b)
		if ok, suppressed := lines.Allow("shed", time.Now()); ok && n > 0 {
			g.log.Warn("over the memory budget: closed the connections holding the most (1013)",
				"connections", n, "bytes", freed, "used", b.Used(), "budget", b.Limit(), "suppressed", suppressed)
		}
	}
}

// heavyShare is the part of the memory budget one source may hold, once
// the budget is half used, before its new WebSockets are refused
// (CauseMemoryPerIP): one address that fills the budget with parts of
// messages is then stopped at a quarter of it, and the shedding, which
// takes the connections holding the most, never has to reach anyone
// else's.
const heavyShare = 4

// shares marks the sources that hold more than a heavyShare-th of b
// while b is more than half used, and unmarks every source once it is
// not. The share is counted by SourceKey, as the per-address limits are.
func (g *Gateway) shares(b *websocket.Budget, lines *ratelog.Limiter) {
	lim := b.Limit()
	l := &g.limits
	if lim <= 0 || b.Used() <= lim/2 {
		l.mu.Lock()
		l.heavy = nil
		l.mu.Unlock()
		return
	}
	by := map[string]int64{}
	g.mu.Lock()
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		if h := c.ws.Held(); h > 0 {
			by[l.key(c.clientIP())] += h
		}
	}
	heavy := map[string]int64{}
	for k, h := range by {
		if h > lim/heavyShare {
			heavy[k] = h
		}
	}
	l.mu.Lock()
	before := l.heavy
	l.heavy = heavy
	l.mu.Unlock()
	for k, h := range heavy {
		if _, was := before[k]; was {
			continue
		}
		if ok, suppressed := lines.Allow("heavy", time.Now()); ok {
			g.log.Warn("one source holds more than a quarter of the memory budget: refusing its new WebSockets (503)",
				"source", k, "bytes", h, "budget", lim, "suppressed", suppressed)
		}
	}
}

// shed closes connections until b is under nine tenths of its limit, and
// returns how many and what they held.
func (g *Gateway) shed(b *websocket.Budget) (n int, freed int64) {
	limit := b.Limit()
	if limit <= 0 {
		return 0, 0
	}
	target := limit / 10 * 9
	g.mu.Lock()
	type holder struct {
		c    *Conn
		held int64
	}
	var hs []holder
	for c := range g.conns {
		if h := c.ws.Held(); h > 0 {
			hs = append(hs, holder{c, h})
		}
	}
	g.mu.Unlock()
	sort.Slice(hs, func(i, j int) bool {
		return hs[i].held > hs[j].held || hs[i].held == hs[j].held && hs[i].c.id < hs[j].c.id
	})
	used := b.Used()
	for _, h := range hs {
		if used-freed <= target {
			break
		}
		h.c.ws.Shed(CauseMemoryBudget, websocket.StatusTryAgainLater, "server memory budget exceeded")
		n++
		freed += h.held
	}
	return n, freed
}
