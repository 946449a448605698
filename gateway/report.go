package gateway

import (
	"errors"
	"fmt"
)

// Applications may report on themselves, for health checks, metrics and
// the status page, by implementing these.

// Readier is implemented by applications that can be unable to serve: a
// producer whose links are all down. Ready returns why not, or nil.
type Readier interface {
	Ready() error
}

// LinkReporter is implemented by applications that speak to a producer
// over a pool of connections.
type LinkReporter interface {
	Links() LinkStats
}

// LinkStats describes a route's connections to its producer.
type LinkStats struct {
	Address string
	// Up of Configured links are connected; per-client routes have one
	// link per client and report Configured 0.
	Up, Configured int
	// Required says that the route is not ready while no link is up.
	Required bool
	// Reconnects counts links re-established after one was lost,
	// OpenTimeouts the clients refused because the producer did not
	// answer in time.
	Reconnects, OpenTimeouts uint64
	// ConnectFailures counts failed attempts to connect a link of the pool.
	ConnectFailures uint64
	// QueueBytes is what waits to be written to the producer.
	QueueBytes int64
	// Held clients wait for their producer to come back (route option
	// hold, or a planned handover), with HeldBytes of their messages.
	// Resumed counts those re-announced and accepted, HoldExpired those
	// closed with 1012 when the hold ran out, HeldDropped the messages
	// dropped past the held queue's bound, Drains the DRAINs received.
	Held                                      int
	HeldBytes                                 int64
	Resumed, HoldExpired, HeldDropped, Drains uint64
	// Frames from the producer over the route's limit, which the gateway
	// skipped, keeping the link: a SEND's client was closed with 1009
	// (OversizeClosed); a BROADCAST, ROOM or other frame was dropped.
	OversizeClosed, OversizeDropped uint64
	// Events marks a WebSocket-over-HTTP application, whose Requests are
	// counted, and RequestErrors those that failed (no answer, or not 200).
	Events                  bool
	Requests, RequestErrors uint64
	// RequestSeconds is how long the application took to answer them.
	RequestSeconds Histogram
}

// Add sums o's figures into s (o being the same route's in another
// process): mod_wsgate's children each report their own links.
func (s *LinkStats) Add(o *LinkStats) {
	s.Up += o.Up
	s.Configured += o.Configured
	s.Reconnects += o.Reconnects
	s.ConnectFailures += o.ConnectFailures
	s.OpenTimeouts += o.OpenTimeouts
	s.QueueBytes += o.QueueBytes
	s.Held += o.Held
	s.HeldBytes += o.HeldBytes
	s.Resumed += o.Resumed
	s.HoldExpired += o.HoldExpired
	s.HeldDropped += o.HeldDropped
	s.Drains += o.Drains
	s.OversizeClosed += o.OversizeClosed
	s.OversizeDropped += o.OversizeDropped
	s.Requests += o.Requests
	s.RequestErrors += o.RequestErrors
	s.RequestSeconds.Add(o.RequestSeconds)
}

// Ready reports whether the gateway can serve: not while it drains, and
// not while an application that must be ready (a producer marked
// required) is not. The error says which.
func (g *Gateway) Ready() error {
	g.mu.Lock()
	draining := g.draining
	g.mu.Unlock()
	if draining {
		return errors.New("shutting down")
	}
	var errs []error
	for _, r := range g.Routes() {
		if rd, ok := r.Handler.(Readier); ok {
			if err := rd.Ready(); err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", r.Path, err))
			}
		}
	}
	return errors.Join(errs...)
}

// RouteLinks pairs a route with its producer links.
type RouteLinks struct {
	Route string
	LinkStats
}

// Links returns the producer links of the routes serving now.
func (g *Gateway) Links() []RouteLinks {
	var out []RouteLinks
	for _, r := range g.Routes() {
		if lr, ok := r.Handler.(LinkReporter); ok {
			out = append(out, RouteLinks{Route: r.Path, LinkStats: lr.Links()})
		}
	}
	return out
}
