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
	Address string `json:"address"`
	// Up of Configured links are connected; per-client routes have one
	// link per client and report Configured 0.
	Up         int `json:"up"`
	Configured int `json:"configured"`
	// Required says that the route is not ready while no link is up.
	Required bool `json:"required"`
	// Reconnects counts links re-established after one was lost,
	// OpenTimeouts the clients refused because the producer did not
	// answer in time.
	Reconnects   uint64 `json:"reconnects"`
	OpenTimeouts uint64 `json:"open_timeouts"`
	// ConnectFailures counts failed attempts to connect a link of the pool.
	ConnectFailures uint64 `json:"connect_failures"`
	// QueueBytes is what waits to be written to the producer.
	QueueBytes int64 `json:"queue_bytes"`
	// Held clients wait for their producer to come back (route option
	// hold, or a planned handover), with HeldBytes of their messages.
	// Resumed counts those re-announced and accepted, HoldExpired those
	// closed with 1012 when the hold ran out, HeldDropped the messages
	// dropped past the held queue's bound, Drains the DRAINs received.
	Held        int    `json:"held"`
	HeldBytes   int64  `json:"held_bytes"`
	Resumed     uint64 `json:"resumed"`
	HoldExpired uint64 `json:"hold_expired"`
	HeldDropped uint64 `json:"held_dropped"`
	Drains      uint64 `json:"drains"`
	// Frames from the producer over the route's limit, which the gateway
	// skipped, keeping the link: a SEND's client was closed with 1009
	// (OversizeClosed); a BROADCAST, ROOM or other frame was dropped.
	OversizeClosed  uint64 `json:"oversize_closed"`
	OversizeDropped uint64 `json:"oversize_dropped"`
	// Events marks a WebSocket-over-HTTP application, whose Requests are
	// counted, and RequestErrors those that failed (no answer, or not 200).
	Events        bool   `json:"events"`
	Requests      uint64 `json:"requests"`
	RequestErrors uint64 `json:"request_errors"`
	// RequestSeconds is how long the application took to answer them.
	RequestSeconds Histogram `json:"request_seconds"`
	// WriteSeconds is how long clients' messages took to reach the
	// producer's socket (queued, then written): the oldest frame of each
	// write.
	WriteSeconds Histogram `json:"write_seconds"`
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
	s.WriteSeconds.Add(o.WriteSeconds)
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
	Route string `json:"route"`
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
