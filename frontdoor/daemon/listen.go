package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/tlsrec"
)

// listener is one public listening socket and what it was opened for.
type listener struct {
	cfg  config.Listener
	ln   net.Listener // what net/http serves: guarded, and TLS-wrapped if TLS
	raw  net.Listener // the socket itself
	cert *certificate // for TLS listeners
	tl   *tlsListener // for TLS listeners
	// inherited: the socket came from systemd or a previous wsgate, so a
	// UNIX socket's file is not ours to remove at exit.
	inherited bool
	closed    atomic.Bool
}

func (l *listener) close() {
	if l.closed.CompareAndSwap(false, true) {
		l.ln.Close()
	}
}

// certificate is a TLS listener's certificate and what it asks of
// clients, re-read on reload without closing the listener: every
// handshake takes what the last set stored.
type certificate struct {
	cur atomic.Pointer[tls.Certificate]
	// client is the configuration of a handshake that asks for a client
	// certificate (the CAs and client_auth), made once per load; nil
	// while there is no client_ca.
	client atomic.Pointer[tls.Config]
}

// tlsFiles is what a listener's tls block names, read and checked before
// anything changes.
type tlsFiles struct {
	cert *tls.Certificate
	cas  *x509.CertPool // nil: no client certificates
	auth tls.ClientAuthType
}

func readTLS(t *config.TLS) (tlsFiles, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return tlsFiles{}, err
	}
	f := tlsFiles{cert: &cert, auth: clientAuth(t)}
	if t.ClientCA != "" {
		if f.cas, err = config.ReadCAPool(t.ClientCA); err != nil {
			return tlsFiles{}, fmt.Errorf("client_ca: %w", err)
		}
	}
	return f, nil
}

// set makes f the listener's, for the handshakes from now on.
func (c *certificate) set(f tlsFiles) {
	c.cur.Store(f.cert)
	var client *tls.Config
	if f.cas != nil {
		client = c.base()
		client.ClientCAs, client.ClientAuth = f.cas, f.auth
	}
	c.client.Store(client)
}

// clientAuth is what a handshake asks of clients under t.
func clientAuth(t *config.TLS) tls.ClientAuthType {
	switch {
	case t.ClientCA == "":
		return tls.NoClientCert
	case t.ClientAuth == config.ClientAuthOptional:
		return tls.VerifyClientCertIfGiven
	default:
		return tls.RequireAndVerifyClientCert
	}
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

func (c *certificate) base() *tls.Config {
	return &tls.Config{GetCertificate: c.get, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
}

// serverConfig is the tls.Config of a listener. While the last set had
// client CAs, each handshake gets the configuration made from them, which
// asks for (or requires) a client certificate they verify, as client_auth
// says; the route's auth: {cert: ...} turns it into an identity. A reload
// can add, change or remove client_ca and client_auth: the next handshake
// has them.
func (c *certificate) serverConfig() *tls.Config {
	cfg := c.base()
	// A nil configuration (no client_ca) keeps cfg for the handshake.
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return c.client.Load(), nil }
	return cfg
}

// open opens the socket for l, or takes it from inherited, and wraps it.
func (s *Server) open(l config.Listener, inherited *inheritedSockets) (*listener, error) {
	ls := &listener{cfg: l}
	if raw := inherited.take(l.Network, l.Address); raw != nil {
		ls.raw, ls.inherited = raw, true
	} else {
		var err error
		if ls.raw, err = listenSocket(l); err != nil {
			return nil, err
		}
	}
	ls.ln = &guard{Listener: ls.raw, s: s, tls: l.TLS != nil}
	if l.TLS != nil {
		f, err := readTLS(l.TLS)
		if err != nil {
			ls.raw.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		ls.cert = &certificate{}
		ls.cert.set(f)
		cfg := ls.cert.serverConfig()
		ls.tl = &tlsListener{Listener: ls.ln, plain: cfg, tapped: tlsrec.ServerConfig(cfg)}
		ls.tl.takeover.Store(l.TLS.RecordLayer == config.RecordLayerWsgate)
		ls.ln = ls.tl
	}
	return ls, nil
}

// tlsListener is crypto/tls's listener, or, while takeover is set
// (record_layer: wsgate), tlsrec's: crypto/tls plus what lets a
// WebSocket's record layer be taken over after its upgrade (see
// netconn.New). A reload that changes record_layer changes what the next
// connections get.
type tlsListener struct {
	net.Listener
	plain, tapped *tls.Config
	takeover      atomic.Bool
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.takeover.Load() {
		return tlsrec.Server(c, l.tapped), nil
	}
	return tls.Server(c, l.plain), nil
}

// recordLayer names a listener's record layer for the log.
func recordLayer(l config.Listener) string {
	if l.TLS == nil {
		return ""
	}
	return l.TLS.RecordLayer
}

// listenSocket opens a TCP or UNIX listening socket. A UNIX socket file
// left behind by a server that did not clean up is replaced; one a
// running server answers on is not.
func listenSocket(l config.Listener) (net.Listener, error) {
	if l.Network != "unix" {
		return net.Listen("tcp", l.Address)
	}
	if fi, err := os.Lstat(l.Address); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", l.Address); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another server", l.Address)
		}
		os.Remove(l.Address)
	}
	ln, err := net.Listen("unix", l.Address)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // removed at exit, unless handed over
	if err := os.Chmod(l.Address, l.Mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// frontRefusalCauses are the causes the front door refuses connections
// for before a route is chosen, shown at 0 from the start.
var frontRefusalCauses = []string{
	"max_connections", "max_pending_handshakes", "pending_per_ip", "max_per_ip", "idle_per_ip",
	"header_too_large", "too_many_headers", "request_body", "bad_request_head", "out_of_descriptors",
	"admin_host", "admin_origin", "admin_content_type", "admin_max_connections", "admin_unauthenticated", "admin_control_refused",
}

// frontCounters are the front door's own counters (metrics.Front).
type frontCounters struct {
	mu           sync.Mutex
	refused      map[string]uint64
	acceptErrors map[string]uint64
	reloads      map[string]uint64
	lastReload   time.Time
	// The last reload attempted, for the status page: when, whether it
	// succeeded, and its errors.
	lastAttempt time.Time
	lastResult  string
	lastErrors  []string
	warned      time.Time // the last accept error logged
}

func (f *frontCounters) refuse(cause string) {
	f.mu.Lock()
	f.refused[cause]++
	f.mu.Unlock()
}

// refusalLine logs a connection refused before any route was chosen, at
// info, limited per cause as the access log's refusals are: a flood writes
// a burst of lines, then one a second that says how many it left out. The
// metrics count every one (wsgate_connections_refused_total).
func (s *Server) refusalLine(cause, peer string) {
	ok, suppressed := s.refusals.Allow(cause, time.Now())
	if !ok {
		return
	}
	attrs := []any{"log", "access", "cause", cause}
	if peer != "" {
		attrs = append(attrs, "peer", peer)
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	s.log.Info("connection refused", attrs...)
}

// guard is the listener net/http accepts from. Before a connection
// reaches net/http it checks the limits that do not need a request (see
// sources.go): connections open, connections that have not finished
// sending a request, both overall and per source. Past one it refuses the
// connection at once, so a client never waits in the kernel's backlog for
// a server that cannot take it: a plain one gets a 503 with Retry-After;
// a TLS one is closed without a byte, since a plaintext answer is no
// answer to a TLS client (it reports a broken handshake) and a TLS
// handshake costs what a server at its limits does not have to spend.
// When the process is out of descriptors it frees its spare one to
// accept and refuse the next client the same way, rather than leaving the
// backlog to fill (net/http would sleep and retry).
type guard struct {
	net.Listener
	s   *Server
	tls bool
}

// refusal is the whole answer to a connection refused at accept.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nserver at capacity.\n"

func (g *guard) Accept() (net.Conn, error) {
	s := g.s
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if isOutOfDescriptors(err) {
				s.acceptError(err)
				if s.spare.shed(g.Listener, g.tls) {
					s.front.refuse("out_of_descriptors")
					s.refusalLine("out_of_descriptors", "")
				}
				continue
			}
			return nil, err
		}
		cause := s.admitConn(c, s.limits.Load())
		if cause == "" {
			return c, nil
		}
		s.front.refuse(cause)
		s.refusalLine(cause, c.RemoteAddr().String())
		refuseConn(c, g.tls)
	}
}

// refuseConn answers a connection refused at accept and closes it: 503 on
// a plain one, nothing on a TLS one (see guard).
func refuseConn(c net.Conn, tls bool) {
	if !tls {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(refusal))
	}
	c.Close()
}

func isOutOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// acceptError counts a failed accept and logs it at warn, at most once a
// second (the counter has them all).
func (s *Server) acceptError(err error) {
	name := "other"
	switch {
	case errors.Is(err, syscall.EMFILE):
		name = "EMFILE"
	case errors.Is(err, syscall.ENFILE):
		name = "ENFILE"
	}
	f := &s.front
	f.mu.Lock()
	f.acceptErrors[name]++
	now := time.Now()
	warn := now.Sub(f.warned) >= time.Second
	if warn {
		f.warned = now
	}
	n := f.acceptErrors[name]
	f.mu.Unlock()
	if warn {
		s.log.Warn("cannot accept connections: out of file descriptors; refusing new clients with 503 until some close (raise LimitNOFILE, or lower server.max_connections)",
			"err", err, "count", n)
	}
}

// spareDescriptor is one descriptor held in reserve for when the process
// has none left: closing it lets one accept through, for a refusal.
type spareDescriptor struct {
	mu sync.Mutex
	f  *os.File
}

func (sp *spareDescriptor) reserve() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.f == nil {
		sp.f, _ = os.Open(os.DevNull)
	}
}

// shed frees the spare descriptor, accepts one connection with it,
// refuses it, and takes the spare back.
func (sp *spareDescriptor) shed(ln net.Listener, tls bool) (refused bool) {
	sp.mu.Lock()
	if sp.f != nil {
		sp.f.Close()
		sp.f = nil
	}
	sp.mu.Unlock()
	if tl, ok := ln.(*net.TCPListener); ok {
		tl.SetDeadline(time.Now().Add(10 * time.Millisecond))
		defer tl.SetDeadline(time.Time{})
	}
	if c, err := ln.Accept(); err == nil {
		refuseConn(c, tls)
		refused = true
	} else if !isOutOfDescriptors(err) {
		time.Sleep(10 * time.Millisecond) // nothing pending: do not spin
	}
	sp.reserve()
	return refused
}

// limitsState are the guard's limits, swapped whole on reload.
type limitsState struct {
	maxConns, maxPending           int
	maxPerIP, maxPendingPerIP      int
	maxIdlePerIP                   int
	maxRequestsPerConn, ipv6Prefix int
	// gauges are the limits by configuration key, for wsgate_limit.
	gauges map[string]float64
}

// applyLimits computes and publishes the front door's limits and logs
// them: the descriptor limit decides max_connections when it is auto, and
// a configured value too close to it is reported.
func (s *Server) applyLimits(sv config.Server) {
	nofile := descriptorLimit()
	headroom := min(sv.MaxPendingHandshakes, int(nofile/4)) + 64
	maxConns := sv.MaxConnections
	if sv.AutoMaxConnections {
		maxConns = max(16, int(nofile)-headroom)
	} else if maxConns > 0 && uint64(maxConns+headroom) > nofile {
		s.log.Warn("server.max_connections leaves too little of the descriptor limit for handshakes, producers and logs; clients past the limit get 503 when descriptors run out",
			"max_connections", maxConns, "descriptor_limit", nofile, "headroom", headroom)
	}
	s.limits.Store(&limitsState{maxConns: maxConns, maxPending: sv.MaxPendingHandshakes,
		maxPerIP: sv.MaxConnectionsPerIP, maxPendingPerIP: sv.MaxPendingHandshakesPerIP, maxIdlePerIP: sv.MaxIdleHTTPPerIP,
		maxRequestsPerConn: sv.MaxRequestsPerConnection, ipv6Prefix: sv.IPv6Prefix,
		gauges: map[string]float64{
			"max_connections": float64(maxConns), "descriptor_limit": float64(nofile),
			"max_connections_per_ip": float64(sv.MaxConnectionsPerIP), "handshake_rate_per_ip": sv.HandshakeRatePerIP,
			"max_pending_handshakes": float64(sv.MaxPendingHandshakes), "max_pending_handshakes_per_ip": float64(sv.MaxPendingHandshakesPerIP),
			"max_idle_http_per_ip": float64(sv.MaxIdleHTTPPerIP), "max_requests_per_connection": float64(sv.MaxRequestsPerConnection),
			"max_header_bytes": float64(sv.MaxHeaderBytes), "max_header_count": float64(sv.MaxHeaderCount),
			"memory_limit": float64(sv.MemoryLimit), "memory_budget": float64(memoryBudget(sv)),
		}})
	s.log.Info("limits", "max_connections", maxConns, "descriptor_limit", nofile,
		"max_connections_per_ip", sv.MaxConnectionsPerIP, "handshake_rate_per_ip", sv.HandshakeRatePerIP,
		"max_pending_handshakes", sv.MaxPendingHandshakes, "max_pending_handshakes_per_ip", sv.MaxPendingHandshakesPerIP,
		"max_idle_http_per_ip", sv.MaxIdleHTTPPerIP, "max_requests_per_connection", sv.MaxRequestsPerConnection,
		"max_header_bytes", sv.MaxHeaderBytes, "max_header_count", sv.MaxHeaderCount, "memory_limit", sv.MemoryLimit,
		"memory_budget", memoryBudget(sv))
}

// descriptorLimit is RLIMIT_NOFILE's soft limit (which the Go runtime
// raises to the hard limit at startup).
func descriptorLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return rl.Cur
}
