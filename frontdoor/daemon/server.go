// Package daemon is the standalone daemon's front door: its listeners
// (TCP, TLS, UNIX sockets, or sockets inherited from systemd or from the
// wsgate it replaces), the net/http server in front of a gateway, the
// limits that apply before a route is chosen, the admin listener (metrics,
// health, the status page, reload), reload itself, binary upgrade, and
// graceful shutdown.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/netconn"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/natsbus"
	imetrics "github.com/wsgate/wsgate/internal/metrics"
	"github.com/wsgate/wsgate/internal/ratelog"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/websocket"
)

// Server is a daemon: built by New, opened by Listen, run by Serve,
// changed by Reload, ended by Shutdown (or Close if it never served).
type Server struct {
	cfg    atomic.Pointer[config.Config]
	log    *slog.Logger
	logOut *LogOutput // nil when the caller manages the log
	source func() (*config.Config, error)
	gw     *gateway.Gateway
	strs   stringTable // strings every connection repeats (front.go)
	http   *http.Server
	admin  *admin
	bus    *natsbus.Bus // the cluster's, when configured

	mu        sync.Mutex // listeners, reloads, upgrades
	lns       []*listener
	inherited *inheritedSockets
	adopted   []inheritedSocket // Adopt's, until Listen
	wg        sync.WaitGroup

	front    frontCounters
	limits   atomic.Pointer[limitsState]
	conns    frontConns       // connections net/http holds, by source (sources.go)
	refusals *ratelog.Limiter // log lines of refusals before a route
	spare    spareDescriptor

	memLimit atomic.Int64
	// pred is what the process this one replaced still holds, by route,
	// while it drains (readPredecessor); nil otherwise.
	pred       atomic.Pointer[map[string]uint64]
	overloaded atomic.Bool
	stop       chan struct{} // closed by Shutdown: background loops end

	// state is what /healthz and /readyz report.
	state      atomic.Value // string: "starting", "serving", "reloading", "draining"
	handedOver atomic.Bool  // the listeners belong to a new process now
}

// New builds the gateway and HTTP server for cfg. It opens no socket and
// starts nothing: every application is provisioned and validated, which
// is all `wsgate check` runs. Listen opens the sockets, Serve starts the
// applications and accepts; a Server that will not serve is released with
// Close.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	// WebSockets the gateway dials (upstreams) run over the daemon's own
	// transport, so an idle pair parks both its sockets.
	dialTransportOnce.Do(func() {
		if gateway.DialTransport == nil {
			gateway.DialTransport = netconn.New
		}
	})
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.Listeners) == 0 {
		return nil, fmt.Errorf("%s: no listeners are configured", cfg.File)
	}
	if cfg.Server.HandshakeTimeout <= 0 {
		cfg.Server.HandshakeTimeout = config.DefaultHandshakeTimeout
	}
	if cfg.Server.ShutdownTimeout <= 0 {
		cfg.Server.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	if err := cfg.CheckFiles(); err != nil {
		return nil, err
	}
	gw, err := cfg.NewGateway(log)
	if err != nil {
		return nil, err
	}
	s := &Server{log: log, gw: gw, stop: make(chan struct{}), refusals: ratelog.New(10, time.Second)}
	s.conns.init()
	s.cfg.Store(cfg)
	s.state.Store("starting")
	s.front.refused = map[string]uint64{}
	s.front.acceptErrors = map[string]uint64{}
	s.front.reloads = map[string]uint64{}
	// The configuration was loaded successfully now, also in a process a
	// binary upgrade started: the series exists from the first scrape.
	s.front.lastReload = time.Now()
	s.readPredecessor()
	s.applyGateway(cfg)
	sv := cfg.Server
	s.http = &http.Server{
		Handler:           &Upgrader{s: s},
		ReadHeaderTimeout: sv.HandshakeTimeout,
		IdleTimeout:       sv.HTTPIdleTimeout,
		// net/http's own limit, with room above server.max_header_bytes:
		// the handler refuses every head over the configured size itself
		// (headSize), counted and logged; net/http refuses only what is
		// far over it, without reading more.
		MaxHeaderBytes: sv.MaxHeaderBytes + 16<<10,
		ConnState:      s.connState,
		ConnContext:    s.connContext,
		// net/http logs accept errors, TLS handshake failures and the
		// like here; accept errors are counted and logged at warn by the
		// guard, the rest are a client's business.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// WebSocket over HTTP/2 (RFC 8441) is not offered: every listener
		// speaks HTTP/1.1, so browsers upgrade the usual way.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if s.http.IdleTimeout <= 0 {
		s.http.IdleTimeout = config.DefaultHTTPIdleTimeout
	}
	return s, nil
}

// applyGateway passes the configuration's limits and logging to the
// gateway (at New, and again on reload).
func (s *Server) applyGateway(cfg *config.Config) {
	sv := cfg.Server
	s.gw.SetAccessLog(cfg.Log.Access)
	s.gw.SetLimits(gateway.Limits{
		MaxConnectionsPerIP: sv.MaxConnectionsPerIP,
		HandshakeRatePerIP:  sv.HandshakeRatePerIP,
		HandshakeBurstPerIP: sv.HandshakeBurstPerIP,
		IPv6Prefix:          sv.IPv6Prefix,
		Overloaded:          s.overloaded.Load,
	})
	s.memLimit.Store(sv.MemoryLimit)
	netconn.SetReturnMemory(sv.ReturnMemory)
	if sv.MemoryLimit > 0 {
		debug.SetMemoryLimit(sv.MemoryLimit)
	}
	if b := s.gw.Budget(); b != nil {
		b.SetLimit(memoryBudget(sv))
	} else {
		b := websocket.NewBudget(memoryBudget(sv))
		s.gw.SetBudget(b)
		netconn.WatchBudget(b)
	}
}

// Config returns the configuration being served.
func (s *Server) Config() *config.Config { return s.cfg.Load() }

// Gateway returns the server's gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

// SetLogOutput gives the server the log output to reopen and adjust on
// reload (see NewLogger).
func (s *Server) SetLogOutput(o *LogOutput) { s.logOut = o }

// fallback serves what is not a WebSocket upgrade: the demo page at /,
// static directories, 426 on a route's path, 404 elsewhere.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	if cfg.Server.Demo && r.URL.Path == "/" {
		serveDemo(w, r, s.gw)
		return
	}
	for _, st := range cfg.Static {
		if strings.HasPrefix(r.URL.Path, st.Path) {
			http.StripPrefix(st.Path, http.FileServer(http.Dir(st.Dir))).ServeHTTP(w, r)
			return
		}
	}
	if s.gw.Route(r.URL.Path) != nil {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "this is a WebSocket endpoint: connect with a WebSocket client", http.StatusUpgradeRequired)
		return
	}
	http.NotFound(w, r)
}

// Listen opens every configured listener and the admin listener, taking
// sockets from systemd or from the wsgate this one replaces where they
// match. On error, the listeners opened so far are closed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg.Load()
	if s.inherited == nil {
		is, err := inheritSockets()
		if err != nil {
			return err
		}
		is.socks = append(is.socks, s.adopted...)
		s.inherited = is
	}
	for _, l := range cfg.Listeners {
		ls, err := s.open(l, s.inherited)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("%s:%d: listen: %w", cfg.File, l.Line, err)
		}
		s.lns = append(s.lns, ls)
	}
	for _, sock := range s.inherited.rest() {
		if strings.HasPrefix(sock.network, "admin-") || !s.inherited.systemd {
			continue
		}
		// A socket systemd passed that no listener names: its socket unit
		// says to listen there.
		ls, err := s.open(config.Listener{Network: sock.network, Address: sock.address}, s.inherited)
		if err == nil {
			s.lns = append(s.lns, ls)
		}
	}
	if cfg.Admin.Network != "" {
		a, err := s.openAdmin(cfg.Admin, s.inherited)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("%s:%d: admin.listen: %w", cfg.File, cfg.Admin.Line, err)
		}
		s.admin = a
	}
	for _, sock := range s.inherited.rest() {
		sock.ln.Close() // a socket nothing asks for any more
	}
	s.spare.reserve()
	return nil
}

// Adopt gives the server listening sockets that an embedding program (or
// a test) opened itself, before Listen: a configured listener, or the
// admin listener, whose address matches one serves on it instead of
// opening its own. A program that must know an address before the
// server starts (to tell another process where to reach it) opens the
// socket on port 0, learns its port, and hands it over, with no window
// in which another program could take the port. Sockets no listener
// asks for are closed by Listen.
func (s *Server) Adopt(lns ...net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range lns {
		network, address := "tcp", ln.Addr().String()
		if ua, ok := ln.Addr().(*net.UnixAddr); ok {
			network, address = "unix", ua.Name
		}
		s.adopted = append(s.adopted, inheritedSocket{network: network, address: address, ln: ln, adopted: true})
	}
}

// Addrs returns the addresses being listened on, in configuration order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.lns))
	for i, l := range s.lns {
		out[i] = l.raw.Addr()
	}
	return out
}

// AdminAddr returns the admin listener's address, nil when it is off.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	return s.admin.ln.Addr()
}

// Serve starts the applications (producer pools connect) and accepts
// connections on every listener until Shutdown.
func (s *Server) Serve() error {
	if err := s.joinCluster(); err != nil {
		return err
	}
	if err := s.gw.Start(context.Background()); err != nil {
		return err
	}
	s.applyLimits(s.cfg.Load().Server)
	for _, w := range s.cfg.Load().Warnings() {
		s.log.Warn(w.Error())
	}
	s.mu.Lock()
	for _, l := range s.lns {
		s.serveListener(l)
	}
	s.mu.Unlock()
	if s.admin != nil {
		s.admin.serve()
	}
	recovered.Go("memory monitor", s.watchMemory)
	s.state.Store("serving")
	return nil
}

func (s *Server) serveListener(l *listener) {
	if l.cfg.TLS != nil {
		s.log.Info("listening", "address", l.raw.Addr().String(), "network", l.raw.Addr().Network(), "tls", true, "record_layer", l.cfg.TLS.RecordLayer, "inherited", l.inherited)
	} else {
		s.log.Info("listening", "address", l.raw.Addr().String(), "network", l.raw.Addr().Network(), "tls", false, "inherited", l.inherited)
	}
	s.wg.Add(1)
	recovered.Go("listener "+l.raw.Addr().String(), func() {
		defer s.wg.Done()
		if err := s.http.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closed.Load() {
			s.log.Error("listener failed", "address", l.raw.Addr().String(), "err", err)
		}
	})
}

// joinCluster connects to the cluster's NATS, when the configuration has
// one, and hands the bus to the gateway. It does not wait for NATS: a node
// whose NATS is down serves its own clients and joins when NATS comes.
func (s *Server) joinCluster() error {
	c := s.cfg.Load().Cluster
	if len(c.URLs) == 0 {
		return nil
	}
	name := c.Name
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("wsgate %s %d", host, os.Getpid())
	}
	b, err := natsbus.Connect(natsbus.Options{URLs: c.URLs, Name: name, Credentials: c.Credentials, NKey: c.NKey,
		User: c.User, Password: c.Password, Token: c.Token, CA: c.CA, Cert: c.Cert, Key: c.Key, Buffer: int(c.Buffer),
		Log: s.log})
	if err != nil {
		return err
	}
	if err := s.gw.UseBus(b, c.Prefix); err != nil {
		b.Close()
		return err
	}
	s.bus = b
	s.log.Info("cluster: broadcasts and rooms go through NATS", "servers", c.URLs, "node", name, "connected", b.Connected())
	return nil
}

// watchMemory keeps s.overloaded current: true while the memory in use
// is over nine tenths of server.memory_limit, when new WebSockets are
// refused. In use is the live heap (as of the last collection) and the
// goroutine stacks, not what the runtime keeps mapped: near its soft
// limit the runtime holds on to freed pages up to about 95% of it, and a
// server whose memory budget just shed a flood would otherwise refuse
// everyone for what is only waiting to be returned.
func (s *Server) watchMemory() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		limit := s.memLimit.Load()
		if limit <= 0 {
			s.overloaded.Store(false)
			continue
		}
		metrics.Read(sample)
		used := int64(sample[0].Value.Uint64() + sample[1].Value.Uint64())
		over := used > limit/10*9
		if over != s.overloaded.Swap(over) {
			if over {
				s.log.Warn("over 90% of server.memory_limit: refusing new WebSockets with 503", "used", used, "limit", limit)
			} else {
				s.log.Info("back under 90% of server.memory_limit: accepting WebSockets", "used", used, "limit", limit)
			}
		}
	}
}

// Shutdown stops accepting, closes every WebSocket with 1001 and waits for
// them within ctx, stops the HTTP server, and stops the applications.
//
// The WebSockets are closed first, while the HTTP server drains in
// parallel: net/http's Shutdown waits for connections that have not sent
// a request yet (a browser's preconnect) for up to five seconds, and a
// long plain download can hold it for the whole timeout; neither may delay
// the 1001 every WebSocket client is owed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.state.Store("draining")
	sdNotify("STOPPING=1")
	s.log.Info("shutting down", "connections", s.gw.Len())
	s.mu.Lock()
	s.closeListeners()
	s.mu.Unlock()
	httpDone := make(chan error, 1)
	recovered.Go("HTTP shutdown", func() {
		// Upgraded connections are not net/http's any more: the gateway
		// closes them.
		httpDone <- s.http.Shutdown(ctx)
	})
	errWS := s.gw.Shutdown(ctx)
	errHTTP := <-httpDone
	if errors.Is(errHTTP, net.ErrClosed) {
		errHTTP = nil // the listeners, which closeListeners closed first
	}
	s.wg.Wait()
	errStop := s.gw.Stop(ctx)
	if s.bus != nil {
		s.bus.Close()
	}
	if s.admin != nil {
		s.admin.shutdown(ctx)
	}
	s.closeStop()
	s.removeSocketFiles()
	return errors.Join(errWS, errHTTP, errStop)
}

func (s *Server) closeStop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}

// Close releases a Server that was built but will not serve (or failed
// to): its listeners and its applications.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closeListeners()
	s.mu.Unlock()
	if s.admin != nil {
		s.admin.shutdown(context.Background())
	}
	s.closeStop()
	s.removeSocketFiles()
	err := s.gw.Stop(context.Background())
	if s.bus != nil {
		s.bus.Close()
	}
	return err
}

// closeListeners closes the public listeners. Callers hold s.mu.
func (s *Server) closeListeners() {
	for _, l := range s.lns {
		l.close()
	}
}

// removeSocketFiles removes the UNIX socket files this process created,
// unless a new process took them over.
func (s *Server) removeSocketFiles() {
	if s.handedOver.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lns {
		if l.cfg.Network == "unix" && !l.inherited {
			os.Remove(l.cfg.Address)
		}
	}
	if s.admin != nil && s.admin.unixPath != "" {
		os.Remove(s.admin.unixPath)
	}
}

// Front implements metrics.Source.
func (s *Server) Front() imetrics.Front {
	f := &s.front
	f.mu.Lock()
	defer f.mu.Unlock()
	out := imetrics.Front{Refused: map[string]uint64{}, AcceptErrors: map[string]uint64{}, Reloads: map[string]uint64{},
		Parked: int64(netconn.Parked()), RefusalCauses: frontRefusalCauses}
	t := netconn.Takeovers()
	out.TLSRecords = map[string]uint64{"taken": t.Taken, "tls12": t.TLS12, "earlier_requests": t.Earlier, "other": t.Other, "disabled": t.Disabled}
	for k, v := range f.refused {
		out.Refused[k] = v
	}
	for k, v := range f.acceptErrors {
		out.AcceptErrors[k] = v
	}
	for k, v := range f.reloads {
		out.Reloads[k] = v
	}
	if !f.lastReload.IsZero() {
		out.LastReload = float64(f.lastReload.UnixNano()) / 1e9
	}
	if cl, ok := s.gw.ClusterStats(); ok {
		out.Cluster = &cl
	}
	if b := s.gw.Budget(); b != nil {
		out.Buffered, out.Budget = b.Used(), b.Limit()
	}
	if l := s.limits.Load(); l != nil {
		out.Limits = l.gauges
	}
	out.State, _ = s.state.Load().(string)
	if p := s.pred.Load(); p != nil {
		out.PredecessorOpen = *p
	}
	return out
}

// Snapshot implements metrics.Source.
func (s *Server) Snapshot() []gateway.RouteSnapshot { return s.gw.Snapshot() }

// Links implements metrics.Source.
func (s *Server) Links() []gateway.RouteLinks { return s.gw.Links() }

var dialTransportOnce sync.Once
