package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/websocket"
)

// Limits are the gateway's admission limits, across every route. Zero
// values disable a limit. A refused upgrade is answered at once (503 or
// 429 with Retry-After), counted per cause, and logged in the access log.
type Limits struct {
	// MaxConnections bounds the WebSockets open at once.
	MaxConnections int
	// MaxConnectionsPerIP bounds the WebSockets one client address holds.
	// The address is the peer's, or, behind a route's trusted_proxies,
	// the client's as the proxies recorded it.
	MaxConnectionsPerIP int
	// HandshakeRatePerIP is how many upgrades per second one address may
	// make, on average, with bursts of HandshakeBurstPerIP (a token
	// bucket; the burst defaults to twice the rate, at least 1).
	HandshakeRatePerIP  float64
	HandshakeBurstPerIP int
	// IPv6Prefix counts IPv6 clients per prefix of this many bits (see
	// SourceKey); 0 means DefaultIPv6Prefix.
	IPv6Prefix int
	// Overloaded, when set, is asked before every upgrade; true refuses it
	// with 503 (the daemon's memory limit).
	Overloaded func() bool
}

// Causes of refused handshakes: the bounded set of labels the metrics and
// the access log use.
const (
	CauseBadRequest      = "bad_request"      // the RFC 6455 checks (400), when no finer cause applies (see upgradeCause)
	CauseNoApplication   = "no_application"   // a route without one (500)
	CauseOrigin          = "origin"           // the Origin policy (403)
	CauseShuttingDown    = "shutting_down"    // 503 while draining
	CauseMaxConnections  = "max_connections"  // Limits.MaxConnections
	CauseMaxPerIP        = "max_per_ip"       // Limits.MaxConnectionsPerIP
	CauseRatePerIP       = "rate_per_ip"      // Limits.HandshakeRatePerIP (429)
	CauseRouteMax        = "route_max"        // a route's max_connections
	CauseOverloaded      = "overloaded"       // Limits.Overloaded (memory)
	CauseMemoryPerIP     = "memory_per_ip"    // the address holds over a quarter of the memory budget
	CauseApplication     = "application"      // the application refused
	CauseBackendDown     = "backend_down"     // a producer is unreachable (503)
	CauseBackendTimeout  = "backend_timeout"  // a producer did not answer (504)
	CauseProcessLimit    = "process_limit"    // a program route at max_processes
	CauseApplicationFail = "application_fail" // the application panicked or misbehaved (500)
)

// Causes of the closes the gateway and its applications decide, with
// those of the engine (websocket.Cause*): the bounded set of labels of
// wsgate_server_closes_total and the cause in the access log.
const (
	CauseShutdown        = "shutdown"         // 1001: graceful shutdown
	CauseBackendGone     = "backend_gone"     // 1012: the producer's connection was lost
	CauseHoldExpired     = "hold_expired"     // 1012: a held client's producer did not come back
	CauseHoldOverflow    = "hold_overflow"    // 1008: too much sent while the producer restarts
	CauseBackendOversize = "backend_oversize" // 1009: a producer's message over the route's limit
	CauseBackendError    = "backend_error"    // 1011: the back end failed or sent what cannot be sent
	CauseBackendSlow     = "backend_slow"     // 1008: the back end does not keep up with the client
	CauseUpstreamGone    = "upstream_gone"    // 1014: the upstream WebSocket ended without a close frame
	CauseUpstreamBroken  = "upstream_broken"  // 1014: the upstream WebSocket broke RFC 6455
)

// limiter enforces the per-address limits.
type limiter struct {
	mu    sync.Mutex
	lim   Limits
	open  int // WebSockets open (admitted and not ended)
	byIP  map[string]*ipState
	swept time.Time
	// heavy are the sources that hold more than their share of the
	// memory budget (see Gateway.shares); their new WebSockets are
	// refused while they do.
	heavy map[string]int64
}

// isHeavy reports whether ip's source is one of the heavy ones.
func (l *limiter) isHeavy(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.heavy) == 0 {
		return false
	}
	_, ok := l.heavy[SourceKey(ip, l.lim.IPv6Prefix)]
	return ok
}

// key is SourceKey with the limits' IPv6 prefix.
func (l *limiter) key(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return SourceKey(ip, l.lim.IPv6Prefix)
}

type ipState struct {
	conns  int
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func (l *limiter) set(lim Limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim.IPv6Prefix <= 0 {
		lim.IPv6Prefix = DefaultIPv6Prefix
	}
	if lim.HandshakeRatePerIP > 0 && lim.HandshakeBurstPerIP <= 0 {
		lim.HandshakeBurstPerIP = max(1, int(2*lim.HandshakeRatePerIP))
	}
	l.lim = lim
	if l.byIP == nil {
		l.byIP = map[string]*ipState{}
	}
}

// rate takes a handshake token for ip: every upgrade an address attempts
// counts, whatever becomes of it. It returns the Retry-After when the
// address is over its rate.
func (l *limiter) rate(ip string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip = SourceKey(ip, l.lim.IPv6Prefix)
	r := l.lim.HandshakeRatePerIP
	if r <= 0 {
		return 0, true
	}
	st := l.state(ip, now)
	st.tokens = min(float64(l.lim.HandshakeBurstPerIP), st.tokens+now.Sub(st.at).Seconds()*r)
	st.at = now
	if st.tokens < 1 {
		return time.Duration((1 - st.tokens) / r * float64(time.Second)), false
	}
	st.tokens--
	return 0, true
}

// state returns ip's entry, made on first use. Callers hold l.mu.
func (l *limiter) state(ip string, now time.Time) *ipState {
	st := l.byIP[ip]
	if st == nil {
		st = &ipState{tokens: float64(l.lim.HandshakeBurstPerIP), at: now}
		l.byIP[ip] = st
	}
	return st
}

// admit takes one connection for ip, or says why not: the cause, the
// status and the Retry-After to send.
func (l *limiter) admit(ip string, now time.Time) (cause string, status int, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip = SourceKey(ip, l.lim.IPv6Prefix)
	lim := l.lim
	if lim.MaxConnections > 0 && l.open >= lim.MaxConnections {
		return CauseMaxConnections, http.StatusServiceUnavailable, 5 * time.Second
	}
	if lim.MaxConnectionsPerIP > 0 || lim.HandshakeRatePerIP > 0 {
		st := l.state(ip, now)
		if lim.MaxConnectionsPerIP > 0 && st.conns >= lim.MaxConnectionsPerIP {
			return CauseMaxPerIP, http.StatusServiceUnavailable, 5 * time.Second
		}
		st.conns++
	}
	l.open++
	l.sweep(now)
	return "", 0, 0
}

// overloaded asks Limits.Overloaded.
func (l *limiter) overloaded() bool {
	l.mu.Lock()
	f := l.lim.Overloaded
	l.mu.Unlock()
	return f != nil && f()
}

// done gives back what admit took.
func (l *limiter) done(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip = SourceKey(ip, l.lim.IPv6Prefix)
	l.open--
	if st := l.byIP[ip]; st != nil {
		st.conns--
		if st.conns <= 0 && l.lim.HandshakeRatePerIP <= 0 {
			delete(l.byIP, ip)
		}
	}
}

// sweep forgets, at most once a minute, addresses with no connection
// whose bucket has refilled, so that the table holds only addresses that
// matter. Callers hold l.mu.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for ip, st := range l.byIP {
		full := l.lim.HandshakeRatePerIP <= 0 || st.tokens+now.Sub(st.at).Seconds()*l.lim.HandshakeRatePerIP >= float64(l.lim.HandshakeBurstPerIP)
		if st.conns <= 0 && full {
			delete(l.byIP, ip)
		}
	}
}

// retryAfter formats a Retry-After value: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(1, s))
}

// KnownRefusals are the refusals of an upgrade whose status is fixed, for
// a metrics exporter that shows each at 0 from the start (a series that
// appears only with its first event hides that event from increase()).
// An application's own refusals (CauseApplication) carry the status it
// chose and appear when they happen.
var KnownRefusals = append(upgradeRefusals(), []RefusalCount{
	{Status: http.StatusInternalServerError, Cause: CauseNoApplication},
	{Status: http.StatusForbidden, Cause: CauseOrigin},
	{Status: http.StatusServiceUnavailable, Cause: CauseShuttingDown},
	{Status: http.StatusServiceUnavailable, Cause: CauseMaxConnections},
	{Status: http.StatusServiceUnavailable, Cause: CauseMaxPerIP},
	{Status: http.StatusTooManyRequests, Cause: CauseRatePerIP},
	{Status: http.StatusServiceUnavailable, Cause: CauseRouteMax},
	{Status: http.StatusServiceUnavailable, Cause: CauseOverloaded},
	{Status: http.StatusServiceUnavailable, Cause: CauseMemoryPerIP},
	{Status: http.StatusServiceUnavailable, Cause: CauseBackendDown},
	{Status: http.StatusGatewayTimeout, Cause: CauseBackendTimeout},
	{Status: http.StatusServiceUnavailable, Cause: CauseProcessLimit},
	{Status: http.StatusInternalServerError, Cause: CauseApplicationFail},
	{Status: http.StatusUnauthorized, Cause: CauseAuthMissing},
	{Status: http.StatusUnauthorized, Cause: CauseAuthInvalid},
	{Status: http.StatusUnauthorized, Cause: CauseAuthExpired},
	{Status: http.StatusForbidden, Cause: CauseAuthForbidden},
	{Status: http.StatusServiceUnavailable, Cause: CauseAuthUnavailable},
	{Status: http.StatusTooManyRequests, Cause: CauseMaxPerUser},
}...)

// upgradeRefusals are CheckUpgrade's refusals, one per rule.
func upgradeRefusals() []RefusalCount {
	var out []RefusalCount
	for _, c := range websocket.UpgradeCauses {
		out = append(out, RefusalCount{Status: http.StatusBadRequest, Cause: c})
	}
	return out
}

// upgradeCause is the cause a refusal of CheckUpgrade's is counted under:
// the rule the request broke (a method other than GET, HTTP/1.0, a bad
// key or version, ...), so that an operator tells a scanner from a client
// on an old protocol version.
func upgradeCause(e *websocket.HandshakeError) string {
	if e.Cause != "" {
		return e.Cause
	}
	return CauseBadRequest
}

// KnownServerCloses are the closes wsgate decides with a fixed code, for
// the same purpose: the engine's and the gateway's causes.
var KnownServerCloses = []CloseCount{
	{Code: "1002", Cause: websocket.CauseProtocolError},
	{Code: "1007", Cause: websocket.CauseInvalidData},
	{Code: "1009", Cause: websocket.CauseMessageTooBig},
	{Code: "1008", Cause: websocket.CauseSlowConsumer},
	{Code: "1008", Cause: websocket.CauseMessageTimeout},
	{Code: "1001", Cause: websocket.CauseIdleTimeout},
	{Code: "1011", Cause: websocket.CauseInternalError},
	{Code: "1006", Cause: websocket.CauseWriteTimeout},
	{Code: "1008", Cause: websocket.CauseInflateBudget},
	{Code: "1013", Cause: CauseMemoryBudget},
	{Code: "1001", Cause: CauseShutdown},
	{Code: "1012", Cause: CauseBackendGone},
	{Code: "1012", Cause: CauseHoldExpired},
	{Code: "1008", Cause: CauseHoldOverflow},
	{Code: "1009", Cause: CauseBackendOversize},
	{Code: "1011", Cause: CauseBackendError},
	{Code: "1008", Cause: CauseBackendSlow},
	{Code: "1013", Cause: CauseBackendDown},
	{Code: "1008", Cause: CauseAuthExpired},
	{Code: "1014", Cause: CauseUpstreamGone},
	{Code: "1014", Cause: CauseUpstreamBroken},
}
