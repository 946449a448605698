package upstream

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/metrics"
)

// Stats are a route's proxy counters. They live by route path for the
// process's life, so a reload that rebuilds the route keeps them (as the
// gateway's own route counters do).
type Stats struct {
	route    string
	dials    sync.Map // result → *atomic.Uint64
	msgs     [2]atomic.Uint64
	protoErr [2]atomic.Uint64
	latency  [2]*gateway.Latency
	mu       sync.Mutex
	healthy  map[string]bool
}

const (
	toUpstream = iota
	toClient
)

const (
	sideClient = iota
	sideUpstream
)

// DialResults are the outcomes of dialling an upstream, shown at 0 from
// the start.
var DialResults = []string{"ok", "refused", "bad_handshake", "error", "timeout", "none_up"}

// LatencyBuckets bound the time a message spends in the proxy: from being
// read whole on one side to being queued on the other (the wait for room
// included).
var LatencyBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1}

var (
	allMu sync.Mutex
	all   = map[string]*Stats{}
)

func statsFor(route string, ups []*server) *Stats {
	allMu.Lock()
	defer allMu.Unlock()
	s := all[route]
	if s == nil {
		s = &Stats{route: route, healthy: map[string]bool{}}
		s.latency[0], s.latency[1] = gateway.NewLatency(LatencyBuckets), gateway.NewLatency(LatencyBuckets)
		all[route] = s
	}
	s.mu.Lock()
	clear(s.healthy)
	for _, u := range ups {
		s.healthy[u.name] = true
	}
	s.mu.Unlock()
	return s
}

func (s *Stats) dial(result string) {
	if s == nil {
		return
	}
	v, _ := s.dials.LoadOrStore(result, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

func (s *Stats) relayed(dir int, d time.Duration) {
	if s == nil {
		return
	}
	s.msgs[dir].Add(1)
	s.latency[dir].Observe(d)
}

func (s *Stats) protocolError(side int) {
	if s != nil {
		s.protoErr[side].Add(1)
	}
}

func (s *Stats) setHealthy(u *server) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.healthy[u.name] = u.healthy.Load()
	s.mu.Unlock()
}

var (
	dialsDesc   = prometheus.NewDesc("wsgate_upstream_dials_total", "Dials to a route's upstreams, by result: ok, refused (the upstream answered other than 101: its status went to the client), bad_handshake (its 101 broke RFC 6455: 502), error (unreachable: 502), timeout (504), none_up (every upstream out: 502).", []string{"route", "result"}, nil)
	healthDesc  = prometheus.NewDesc("wsgate_upstream_healthy", "Whether an upstream passes its health check (1) or is taken out (0).", []string{"route", "upstream"}, nil)
	msgsDesc    = prometheus.NewDesc("wsgate_upstream_messages_total", "Messages relayed through the proxy, by direction (to_upstream, to_client).", []string{"route", "direction"}, nil)
	protoDesc   = prometheus.NewDesc("wsgate_upstream_protocol_errors_total", "Pairs ended because one side broke RFC 6455 (the engine closed it with 1002, 1007 or 1009), by side.", []string{"route", "side"}, nil)
	latencyDesc = prometheus.NewDesc("wsgate_upstream_relay_seconds", "Time a message spends in the proxy: from read whole on one side to queued on the other, the wait for room included.", []string{"route", "direction"}, nil)
)

type collector struct{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dialsDesc, healthDesc, msgsDesc, protoDesc, latencyDesc} {
		ch <- d
	}
}

func (collector) Collect(ch chan<- prometheus.Metric) {
	allMu.Lock()
	defer allMu.Unlock()
	dirs := [2]string{"to_upstream", "to_client"}
	for route, s := range all {
		for _, r := range DialResults {
			var n uint64
			if v, ok := s.dials.Load(r); ok {
				n = v.(*atomic.Uint64).Load()
			}
			ch <- prometheus.MustNewConstMetric(dialsDesc, prometheus.CounterValue, float64(n), route, r)
		}
		s.mu.Lock()
		for u, ok := range s.healthy {
			v := 0.0
			if ok {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, v, route, u)
		}
		s.mu.Unlock()
		for i, d := range dirs {
			ch <- prometheus.MustNewConstMetric(msgsDesc, prometheus.CounterValue, float64(s.msgs[i].Load()), route, d)
			metrics.Histogram(ch, latencyDesc, s.latency[i].Snapshot(), route, d)
		}
		for i, side := range [2]string{"client", "upstream"} {
			ch <- prometheus.MustNewConstMetric(protoDesc, prometheus.CounterValue, float64(s.protoErr[i].Load()), route, side)
		}
	}
}

func init() { metrics.Register(collector{}) }
