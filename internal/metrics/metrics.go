// Package metrics exposes wsgate's counters in Prometheus's format, with
// prometheus/client_golang (its collectors for the Go runtime and the
// process come with it).
//
// The counters are not kept here: the gateway counts per connection and
// per route (gateway.RouteSnapshot), the front door counts what it refuses
// before a route is known, and a scrape reads them all. So the hot path
// costs the same with metrics on or off, and the labels are bounded by
// the configuration: a route's path, a refusal's cause, a class of close
// code; never a connection or a client address.
package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/auth"
	"github.com/wsgate/wsgate/internal/version"
)

// Source is what a scrape reads.
type Source interface {
	// Snapshot returns the counters of every route path.
	Snapshot() []gateway.RouteSnapshot
	// Links returns the producer links of the routes serving now.
	Links() []gateway.RouteLinks
	// Front returns the front door's own counters.
	Front() Front
}

// Front are the front door's counters.
type Front struct {
	// Refused counts connections refused before any route was chosen, by
	// cause (max_connections, pending_handshakes, header_too_large, ...);
	// RefusalCauses are the causes shown at 0 before their first.
	Refused       map[string]uint64 `json:"refused"`
	RefusalCauses []string          `json:"refusal_causes"`
	// AcceptErrors counts failed accepts by error (EMFILE, ...).
	AcceptErrors map[string]uint64 `json:"accept_errors"`
	// Parked is the number of idle connections waiting on the shared
	// epoll instance, holding no goroutine.
	Parked int64 `json:"parked"`
	// TLSRecords counts TLS WebSockets by who runs their record layer after
	// the upgrade: "taken" (wsgate's, so they park as small as plain
	// ones), or crypto/tls's because the listener's record_layer is go
	// ("disabled"), the client negotiated TLS 1.2 ("tls12"), the
	// connection carried other requests before its upgrade
	// ("earlier_requests"), or anything else ("other").
	TLSRecords map[string]uint64 `json:"tls_records"`
	// Reloads counts configuration reloads by result ("ok", "failed"),
	// and LastReload is when the last one succeeded (Unix seconds).
	Reloads    map[string]uint64 `json:"reloads"`
	LastReload float64           `json:"last_reload"`
	// Cluster is the bus's counters; nil without a bus.
	Cluster *gateway.ClusterStats `json:"cluster"`
	// Buffered is what every WebSocket buffers together now (parts of
	// messages arriving, frames queued for peers), and Budget the limit
	// past which the ones holding the most are closed (0: none).
	Buffered int64 `json:"buffered"`
	Budget   int64 `json:"budget"`
	// Limits are the limits in force, by configuration key
	// (max_connections, ...), for alerts to compare against.
	Limits map[string]float64 `json:"limits"`
	// State is the daemon's: starting, serving, reloading or draining.
	State string `json:"state"`
	// PredecessorOpen is, after a binary upgrade, what the old process
	// still holds by route while it drains; nil otherwise.
	PredecessorOpen map[string]uint64 `json:"predecessor_open"`
}

// NewRegistry returns a registry with wsgate's metrics from src, the Go
// runtime's and the process's.
func NewRegistry(src Source) *prometheus.Registry {
	reg := NewRegistryWithout(src)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewRegistryWithout returns a registry with wsgate's metrics only, for a
// scrape that adds up several processes (httpd's children), where one
// process's runtime metrics would mislead.
func NewRegistryWithout(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src})
	extraMu.Lock()
	for _, c := range extra {
		reg.MustRegister(c)
	}
	extraMu.Unlock()
	return reg
}

var (
	buildInfo  = desc("build_info", "The running build: its release, commit and Go version.", "version", "revision", "goversion")
	open       = desc("connections_open", "WebSocket connections open now.", "route")
	accepted   = desc("connections_accepted_total", "WebSocket connections accepted (101 sent).", "route")
	handedOff  = desc("connections_handed_off_total", "WebSocket connections given to the backend itself after the 101 (mode: direct), not counted as accepted.", "route")
	ended      = desc("connections_ended_total", "WebSocket connections that have ended.", "route")
	refused    = desc("handshakes_refused_total", "WebSocket upgrades refused, by HTTP status and cause.", "route", "status", "cause")
	messages   = desc("messages_total", "Data messages, by direction (in: from clients).", "route", "direction")
	bytes      = desc("message_bytes_total", "Payload bytes of data messages as applications see them, by direction.", "route", "direction")
	deflated   = desc("deflate_bytes_total", "Payload bytes of compressed messages, on the wire (compressed) and as applications see them (uncompressed).", "route", "direction", "form")
	dropped    = desc("dropped_messages_total", "Messages the slow-consumer policy drop discarded.", "route")
	slow       = desc("slow_consumer_closes_total", "Connections the slow-consumer policy close closed (1008).", "route")
	srvCloses  = desc("server_closes_total", "WebSocket connections wsgate closed first, by the code it sent (1006: cut without a close frame) and why (slow_consumer, backend_gone, ...).", "route", "code", "cause")
	closes     = desc("close_frames_total", "Close frames of ended connections, sent by wsgate or received from clients, by code (3xxx and 4xxx grouped; no_close_frame: that side sent none).", "route", "direction", "code")
	links      = desc("producer_links", "Connections to a route's producer, up or down.", "route", "state")
	reconn     = desc("producer_reconnects_total", "Producer connections re-established after one was lost.", "route")
	connFail   = desc("producer_connect_failures_total", "Attempts to connect to a route's producer that failed (nobody listening, or no HELLO answer); the pool retries with backoff, and logs the outage once.", "route")
	timeouts   = desc("producer_open_timeouts_total", "Clients refused because the producer did not answer OPEN in time.", "route")
	queue      = desc("producer_queue_bytes", "Bytes waiting to be written to the route's producer.", "route")
	heldNow    = desc("producer_held_clients", "Clients held open while their producer restarts or hands over.", "route")
	heldBytes  = desc("producer_held_bytes", "Bytes of messages that held clients sent, waiting for their producer.", "route")
	holds      = desc("producer_holds_total", "Held clients by outcome: resumed (re-announced and accepted) or expired (closed with 1012).", "route", "outcome")
	tlsRecords = desc("tls_record_layer_total", "TLS WebSockets by who runs their record layer after the upgrade: taken (wsgate's own, on listeners with record_layer wsgate: idle ones park as small as plain ones) or crypto/tls, and why: disabled (the listener's record_layer is go, the default), tls12, earlier_requests, other.", "result")
	heldDrop   = desc("producer_held_dropped_messages_total", "Messages from held clients dropped past the held queue's bound.", "route")
	oversize   = desc("producer_oversize_frames_total", "Frames from a producer over the route's size limit, skipped with the connection kept: client_closed (a SEND: its client closed with 1009) or dropped (BROADCAST, ROOM, others).", "route", "outcome")
	drains     = desc("producer_drains_total", "DRAINs received: producer connections handed over to a new instance.", "route")
	evReqs     = desc("events_requests_total", "Requests to a WebSocket-over-HTTP application, by result (ok: answered 200; error: no answer, or another status).", "route", "result")
	frontRef   = desc("connections_refused_total", "Connections refused before a route was chosen, by cause.", "cause")
	acceptErr  = desc("accept_errors_total", "Failed accepts on the public listeners, by error.", "error")
	buffered   = desc("buffered_bytes", "Bytes every WebSocket buffers together now: parts of messages still arriving, and frames queued for peers.")
	budget     = desc("memory_budget_bytes", "server.memory_budget: past it, the connections holding the most are closed with 1013 (memory_budget); 0 when off.")
	parked     = desc("parked_connections", "Idle connections parked on the shared epoll instance (no goroutine).")
	reloads    = desc("config_reloads_total", "Configuration reloads, by result.", "result")
	lastOK     = desc("config_last_reload_success_timestamp_seconds", "When the configuration was last loaded successfully.")
	clConn     = desc("cluster_connected", "Whether the bus (NATS) reaches the other nodes: 1 or 0 (for mod_wsgate, the children that are connected).")
	clPeers    = desc("cluster_peers", "Other nodes heard from on the bus in the last few seconds.")
	clMsgs     = desc("cluster_messages_total", "Broadcast and room messages through the bus: published by this node, received from others.", "direction")
	clLost     = desc("cluster_lost_messages_total", "Broadcast and room messages lost between nodes: not published (the bus was down and its buffer full), never received (a gap in a publisher's numbers), or dropped by the bus because this node was a slow consumer.", "where")
	clDup      = desc("cluster_duplicate_messages_total", "Messages received twice from the bus (delivered once).")
	hsDur      = desc("handshake_duration_seconds", "From an upgrade request to the gateway's decision (the application's OnOpen included: for a producer, a round trip to it), by outcome.", "route", "outcome")
	lifetimes  = desc("connection_lifetime_seconds", "How long the WebSocket connections that ended had been open.", "route")
	sendQueue  = desc("send_queue_bytes", "Bytes the route's open connections have queued for their clients and not yet written.", "route")
	prodWrite  = desc("producer_write_seconds", "How long clients' messages took to reach the route's producer's socket (queued, then written), measured on the oldest frame of each write.", "route")
	evDur      = desc("events_request_duration_seconds", "How long a WebSocket-over-HTTP application took to answer a request (answered or not).", "route")
	limit      = desc("limit", "The limits in force, by their key in the server block (max_connections, ...; 0: off), for alerts to compare with what they bound.", "name")
	ready      = desc("ready", "1 while the daemon serves new connections (not starting, not draining after a binary upgrade or a shutdown).")
	draining   = desc("draining", "1 while the daemon drains: its listeners are handed over or closed, and its connections end.")
	joinsRef   = desc("room_joins_refused_total", "Joins to a room the route's room_claims keep from the connection's identity.", "route")
	jwksFetch  = desc("auth_jwks_fetches_total", "Fetches of the JWKS URLs of routes with JWT auth, by result (error: the keys fetched before stay in use).", "result")
	fwdReqs    = desc("auth_forward_requests_total", "Questions to forward-auth services, by answer: allowed (2xx), denied (401, 403), error (another status, no answer, too slow: the client gets 503), cached (answered from the cache).", "result")
	fwdDur     = desc("auth_forward_duration_seconds", "How long forward-auth services took to answer (or to fail).")
	predOpen   = desc("predecessor_connections_open", "After a binary upgrade, the WebSockets the old process still holds while it drains (it no longer answers scrapes): add them to wsgate_connections_open for every client.", "route")
)

// extra are collectors of applications that count things the gateway
// does not know of (an upstream's dials): they register from their
// package's init, and every registry made here includes them.
var (
	extraMu sync.Mutex
	extra   []prometheus.Collector
)

// Register adds an application's collector to every registry made after.
func Register(c prometheus.Collector) {
	extraMu.Lock()
	extra = append(extra, c)
	extraMu.Unlock()
}

// Histogram exposes a gateway.Histogram with its cumulative buckets, for
// an application's collector.
func Histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h gateway.Histogram, l ...string) {
	histogram(ch, d, h, l...)
}

// histogram exposes a gateway.Histogram with its cumulative buckets.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h gateway.Histogram, l ...string) {
	if h.Bounds == nil {
		return
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, l...)
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsgate_"+name, help, labels, nil)
}

type collector struct{ src Source }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfo, open, accepted, handedOff, ended, refused, messages, bytes, deflated, dropped, slow,
		closes, srvCloses, links, reconn, connFail, timeouts, queue, heldNow, heldBytes, holds, heldDrop, oversize, drains, evReqs, frontRef, acceptErr, buffered, budget, parked, tlsRecords, reloads, lastOK, clConn, clPeers, clMsgs, clLost, clDup,
		hsDur, lifetimes, sendQueue, evDur, prodWrite, limit, ready, draining, predOpen, jwksFetch, fwdReqs, fwdDur, joinsRef} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	v := version.Get()
	gauge(buildInfo, 1, v.Release, v.Revision, v.GoVersion)
	ok, failed := auth.JWKSFetches()
	counter(jwksFetch, ok, "ok")
	counter(jwksFetch, failed, "error")
	for result, n := range auth.ForwardResults() {
		counter(fwdReqs, n, result)
	}
	histogram(ch, fwdDur, auth.ForwardLatency())
	for _, s := range c.src.Snapshot() {
		r := s.Route
		gauge(open, float64(s.Open), r)
		counter(accepted, s.Accepted, r)
		counter(handedOff, s.HandedOff, r)
		counter(joinsRef, s.JoinsRefused, r)
		counter(ended, s.Ended, r)
		// Every series a route can have starts at 0, as client_golang's
		// documentation advises: Prometheus's increase() and rate() miss
		// the first event of a series that appears with it.
		seen := map[gateway.RefusalCount]bool{}
		for _, rc := range s.Refused {
			counter(refused, rc.Count, r, strconv.Itoa(rc.Status), rc.Cause)
			seen[gateway.RefusalCount{Status: rc.Status, Cause: rc.Cause}] = true
		}
		for _, rc := range gateway.KnownRefusals {
			if !seen[rc] {
				counter(refused, 0, r, strconv.Itoa(rc.Status), rc.Cause)
			}
		}
		counter(messages, s.MessagesIn, r, "in")
		counter(messages, s.MessagesOut, r, "out")
		counter(bytes, s.BytesIn, r, "in")
		counter(bytes, s.BytesOut, r, "out")
		counter(deflated, s.DeflatedIn, r, "in", "compressed")
		counter(deflated, s.UncompressedIn, r, "in", "uncompressed")
		counter(deflated, s.DeflatedOut, r, "out", "compressed")
		counter(deflated, s.UncompressedOut, r, "out", "uncompressed")
		counter(dropped, s.Dropped, r)
		counter(slow, s.SlowConsumerCloses, r)
		seenClose := map[gateway.CloseCount]bool{}
		for _, cc := range s.ServerCloses {
			counter(srvCloses, cc.Count, r, cc.Code, cc.Cause)
			seenClose[gateway.CloseCount{Code: cc.Code, Cause: cc.Cause}] = true
		}
		for _, cc := range gateway.KnownServerCloses {
			if !seenClose[cc] {
				counter(srvCloses, 0, r, cc.Code, cc.Cause)
			}
		}
		for i := range s.CloseSent {
			counter(closes, s.CloseSent[i], r, "sent", gateway.CodeClassName(i))
			counter(closes, s.CloseReceived[i], r, "received", gateway.CodeClassName(i))
		}
		histogram(ch, hsDur, s.HandshakeAccepted, r, "accepted")
		histogram(ch, hsDur, s.HandshakeRefused, r, "refused")
		histogram(ch, lifetimes, s.Lifetime, r)
		gauge(sendQueue, float64(s.Queued), r)
	}
	for _, l := range c.src.Links() {
		if l.Configured > 0 {
			gauge(links, float64(l.Up), l.Route, "up")
			gauge(links, float64(l.Configured-l.Up), l.Route, "down")
			counter(reconn, l.Reconnects, l.Route)
			counter(connFail, l.ConnectFailures, l.Route)
			gauge(queue, float64(l.QueueBytes), l.Route)
		}
		if l.Events {
			counter(evReqs, l.Requests-l.RequestErrors, l.Route, "ok")
			counter(evReqs, l.RequestErrors, l.Route, "error")
			histogram(ch, evDur, l.RequestSeconds, l.Route)
			continue
		}
		counter(timeouts, l.OpenTimeouts, l.Route)
		histogram(ch, prodWrite, l.WriteSeconds, l.Route)
		counter(oversize, l.OversizeClosed, l.Route, "client_closed")
		counter(oversize, l.OversizeDropped, l.Route, "dropped")
		if l.Configured > 0 {
			gauge(heldNow, float64(l.Held), l.Route)
			gauge(heldBytes, float64(l.HeldBytes), l.Route)
			counter(holds, l.Resumed, l.Route, "resumed")
			counter(holds, l.HoldExpired, l.Route, "expired")
			counter(heldDrop, l.HeldDropped, l.Route)
			counter(drains, l.Drains, l.Route)
		}
	}
	f := c.src.Front()
	for cause, n := range f.Refused {
		counter(frontRef, n, cause)
	}
	for _, cause := range f.RefusalCauses {
		if _, ok := f.Refused[cause]; !ok {
			counter(frontRef, 0, cause)
		}
	}
	for e, n := range f.AcceptErrors {
		counter(acceptErr, n, e)
	}
	if cl := f.Cluster; cl != nil {
		gauge(clConn, float64(cl.ConnectedNodes()))
		gauge(clPeers, float64(cl.Peers))
		counter(clMsgs, cl.Published, "published")
		counter(clMsgs, cl.Received, "received")
		counter(clLost, cl.PublishFailed, "publish")
		counter(clLost, cl.Lost, "receive")
		counter(clLost, cl.SlowConsumer, "slow_consumer")
		counter(clDup, cl.Duplicates)
	}
	if f.Reloads == nil {
		return // not a daemon: no front door of its own
	}
	gauge(parked, float64(f.Parked))
	for name, v := range f.Limits {
		gauge(limit, v, name)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(ready, b2f(f.State == "serving" || f.State == "reloading"))
	gauge(draining, b2f(f.State == "draining"))
	for route, n := range f.PredecessorOpen {
		gauge(predOpen, float64(n), route)
	}
	gauge(buffered, float64(f.Buffered))
	gauge(budget, float64(f.Budget))
	for _, result := range []string{"taken", "disabled", "tls12", "earlier_requests", "other"} {
		counter(tlsRecords, f.TLSRecords[result], result)
	}
	for _, result := range []string{"ok", "failed"} {
		counter(reloads, f.Reloads[result], result)
	}
	gauge(lastOK, f.LastReload)
}
