package gateway

import (
	"context"
)

// Reload replaces the routes that serve new connections, atomically: a
// request is matched against the old set or the new one, never a mix.
// Connections already open keep the route, the policy and the application
// they started with until they end.
//
// A route of the new set with the same Path and Key as a current one is
// the current one, kept as it is: its application, its hub (a chat room
// stays one room), its counters. Every other new route is provisioned,
// validated and started; if any fails, the new routes are stopped, the
// current set goes on serving, and the error is returned. Routes that the
// new set drops or changes are retired: they serve their open
// connections, and are stopped when the last one ends (or by Stop).
func (g *Gateway) Reload(ctx context.Context, routes ...*Route) error {
	old := g.set.Load()
	keep := map[*Route]bool{}
	for i, r := range routes {
		for _, o := range old.routes {
			if r.Key != "" && o.Path == r.Path && o.Key == r.Key {
				routes[i] = o
				keep[o] = true
				break
			}
		}
	}
	if err := provisionAll(g.log, routes, keep); err != nil {
		return err
	}
	var started []*Route
	for _, r := range routes {
		if keep[r] {
			continue
		}
		if err := r.start(ctx); err != nil {
			for _, s := range started {
				s.stop(ctx)
			}
			for _, r2 := range routes {
				if !keep[r2] {
					r2.stop(ctx)
				}
			}
			return err
		}
		started = append(started, r)
	}
	for _, r := range started {
		g.joinCluster(r)
	}
	g.set.Store(newRouteSet(routes))
	var retire []*Route
	for _, o := range old.routes {
		if !keep[o] {
			retire = append(retire, o)
		}
	}
	g.mu.Lock()
	g.retired = append(g.retired, retire...)
	g.mu.Unlock()
	for _, r := range retire {
		r.retired.Store(true)
		g.retireWhenIdle(r)
	}
	return nil
}

// retireWhenIdle stops r once it has no connection left.
func (g *Gateway) retireWhenIdle(r *Route) {
	if r.live.Load() > 0 {
		return // the last connection's end calls this again
	}
	g.mu.Lock()
	i := -1
	for k, x := range g.retired {
		if x == r {
			i = k
		}
	}
	if i < 0 {
		g.mu.Unlock()
		return
	}
	g.retired = append(g.retired[:i], g.retired[i+1:]...)
	// Its counters live on in past, so that the metrics of its path never
	// go down.
	snap := r.snapshot()
	if p := g.past[r.Path]; p != nil {
		p.Add(&snap)
	} else {
		g.past[r.Path] = &snap
	}
	g.mu.Unlock()
	if err := r.stop(context.Background()); err != nil {
		g.log.Warn("a route replaced by a reload did not stop cleanly", "route", r.Path, "err", err)
	}
}

// allRoutes lists every route with something to count or stop: the
// current set, the retired ones still serving, and mod_wsgate's.
func (g *Gateway) allRoutes() []*Route {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := append([]*Route(nil), g.set.Load().routes...)
	out = append(out, g.retired...)
	return append(out, g.extra...)
}
