package daemon

import (
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/netconn"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/publish"
	imetrics "github.com/wsgate/wsgate/internal/metrics"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/internal/version"
	"github.com/wsgate/wsgate/websocket"
)

// The admin listener serves what operators and their tools ask for, apart
// from the public listeners and on loopback by default:
//
//	GET  /metrics   Prometheus metrics
//	GET  /healthz   liveness: 200, or 503 with a JSON reason while
//	                starting, reloading or draining
//	GET  /readyz    readiness: also 503 while a required producer is down
//	POST /reload    reload the configuration (as SIGHUP does)
//	GET  /          the live status page, fed by the WebSocket /status/ws
//	                (served by wsgate's own engine)

//go:embed status/index.html
var statusPage []byte

type admin struct {
	s        *Server
	ln       net.Listener // what the admin server accepts from (limitListener)
	raw      net.Listener // the socket, for a handover
	srv      *http.Server
	gw       *gateway.Gateway // the status page's WebSocket
	unixPath string
	feed     *statusFeed
	auth     *adminAuth // nil: none (see adminauth.go)
}

func (s *Server) openAdmin(a config.Admin, inherited *inheritedSockets) (*admin, error) {
	ln := inherited.take("admin-"+a.Network, a.Address)
	var err error
	if ln == nil {
		ln, err = listenSocket(config.Listener{Network: a.Network, Address: a.Address, Mode: 0o600})
		if err != nil {
			return nil, err
		}
	}
	ad := &admin{s: s, ln: ln, raw: ln}
	if a.Network == "unix" {
		ad.unixPath = a.Address
	}
	if ad.auth, err = newAdminAuth(a.Auth); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin.auth: %w", err)
	}
	var tlsCfg *tls.Config
	if a.TLS != nil {
		f, err := readTLS(a.TLS)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("admin.tls: %w", err)
		}
		cert := &certificate{}
		cert.set(f)
		tlsCfg = cert.serverConfig()
	}
	ad.feed = &statusFeed{s: s}
	ad.gw, err = gateway.New(s.log.With("listener", "admin"), &gateway.Route{
		Path: "/status/ws", App: "status", Handler: ad.feed,
		Policy: gateway.Policy{MaxMessageSize: 4096, KeepaliveInterval: 25 * time.Second},
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	ad.gw.SetAccessLog(false)
	reg := imetrics.NewRegistry(s)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", ad.healthz)
	mux.HandleFunc("GET /readyz", ad.readyz)
	mux.HandleFunc("POST /reload", ad.reload)
	// Pushpin's publishing API, for WebSocket-over-HTTP applications (and
	// anything else) to push to the clients in a room.
	pub := publish.Handler(s.gw.Publish)
	mux.Handle("/publish/", pub)
	mux.Handle("/publish", pub)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
		w.Write(statusPage)
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.status())
	})
	mux.HandleFunc("/status/ws", ad.statusWS)
	ad.srv = &http.Server{Handler: ad.guardHandler(mux, a), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: a.BodyTimeout, WriteTimeout: time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	ad.ln = &limitListener{Listener: ln, s: s, max: int64(a.MaxConnections)}
	if tlsCfg != nil {
		ad.ln = tls.NewListener(ad.ln, tlsCfg)
	}
	return ad, nil
}

func (a *admin) serve() {
	a.s.log.Info("admin listening", "address", a.ln.Addr().String(), "network", a.ln.Addr().Network())
	a.gw.Start(context.Background())
	recovered.Go("admin listener", func() {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.s.log.Error("admin listener failed", "err", err)
		}
	})
	recovered.Go("status feed", a.feed.run)
}

func (a *admin) shutdown(ctx context.Context) {
	a.ln.Close()
	a.gw.Shutdown(ctx)
	a.srv.Shutdown(ctx)
	a.gw.Stop(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *admin) healthz(w http.ResponseWriter, r *http.Request) {
	if st := a.s.state.Load().(string); st != "serving" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": st, "reason": "the daemon is " + st})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *admin) readyz(w http.ResponseWriter, r *http.Request) {
	s := a.s
	if st := s.state.Load().(string); st != "serving" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": st, "reason": "the daemon is " + st})
		return
	}
	if s.handedOver.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining", "reason": "a new process has taken over the listeners"})
		return
	}
	if err := s.gw.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *admin) reload(w http.ResponseWriter, r *http.Request) {
	if err := a.s.ReloadFromSource(r.Context()); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"result": "failed", "errors": errorStrings(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
}

// statusWS upgrades the status page's WebSocket through the admin
// gateway, with the engine every client of wsgate gets.
func (a *admin) statusWS(w http.ResponseWriter, r *http.Request) {
	route := a.gw.Route(r.URL.Path)
	if route == nil || !websocket.IsUpgrade(r.Header) {
		http.Error(w, "the status feed is a WebSocket", http.StatusUpgradeRequired)
		return
	}
	req := &gateway.Request{Method: r.Method, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
		Path: r.URL.Path, Host: r.Host, RemoteAddr: r.RemoteAddr}
	req.SetHeader(r.Header)
	p, herr := a.gw.Accept(r.Context(), route, req)
	if herr != nil {
		http.Error(w, herr.Reason, herr.Status)
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.Abandon()
		return
	}
	nc.SetDeadline(time.Time{})
	if _, err := nc.Write(p.AppendResponse(nil)); err != nil {
		nc.Close()
		p.Abandon()
		return
	}
	p.Serve(netconn.New(nc, p.Conn.Engine(), takeBuffered(brw.Reader)))
}

// statusFeed sends the status to the page's WebSockets: at once when one
// opens, then every second while any is open.
type statusFeed struct {
	gateway.Base
	s     *Server
	route *gateway.Route
}

func (f *statusFeed) Provision(ctx gateway.AppContext) error {
	f.route = ctx.Route
	return nil
}

func (f *statusFeed) OnOpen(_ context.Context, c *gateway.Conn) error {
	if b, err := json.Marshal(f.s.status()); err == nil {
		c.Send(websocket.TextMessage, b)
	}
	return nil
}

func (f *statusFeed) run() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-f.s.stop:
			return
		case <-t.C:
		}
		if f.route.Hub().Len() == 0 {
			continue
		}
		if b, err := json.Marshal(f.s.status()); err == nil {
			f.route.Broadcast(websocket.TextMessage, b)
		}
	}
}

// Status is what the status page shows.
type Status struct {
	Time        time.Time            `json:"time"`
	Version     string               `json:"version"`
	Started     time.Time            `json:"started"`
	State       string               `json:"state"`
	Connections int                  `json:"connections"`
	Parked      int64                `json:"parked"`
	MemoryBytes uint64               `json:"memory_bytes"`
	Goroutines  uint64               `json:"goroutines"`
	Routes      []routeStatus        `json:"routes"`
	Links       []gateway.RouteLinks `json:"links"`
	Front       imetrics.Front       `json:"front"`
	Listeners   []string             `json:"listeners"`
	Ready       string               `json:"ready"`
	Config      string               `json:"config"`
	// Reload is the last reload attempted (none yet: result "").
	Reload reloadStatus `json:"reload"`
}

type reloadStatus struct {
	Time   time.Time `json:"time"`
	Result string    `json:"result"`
	Errors []string  `json:"errors,omitempty"`
	OK     uint64    `json:"ok"`
	Failed uint64    `json:"failed"`
}

type routeStatus struct {
	gateway.RouteSnapshot
	CloseSentCodes     map[string]uint64 `json:"close_sent_codes"`
	CloseReceivedCodes map[string]uint64 `json:"close_received_codes"`
}

var started = time.Now()

var statusMu sync.Mutex

func (s *Server) status() Status {
	statusMu.Lock()
	defer statusMu.Unlock()
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}, {Name: "/sched/goroutines:goroutines"}}
	metrics.Read(sample)
	st := Status{Time: time.Now(), Version: version.Get().String(), Started: started, State: s.state.Load().(string),
		Connections: s.gw.Len(), Parked: int64(netconn.Parked()),
		MemoryBytes: sample[0].Value.Uint64() - sample[1].Value.Uint64(), Goroutines: sample[2].Value.Uint64(),
		Links: s.gw.Links(), Front: s.Front(), Config: s.cfg.Load().File}
	for _, r := range s.gw.Snapshot() {
		rs := routeStatus{RouteSnapshot: r, CloseSentCodes: map[string]uint64{}, CloseReceivedCodes: map[string]uint64{}}
		for i := range r.CloseSent {
			if n := r.CloseSent[i]; n > 0 {
				rs.CloseSentCodes[gateway.CodeClassName(i)] = n
			}
			if n := r.CloseReceived[i]; n > 0 {
				rs.CloseReceivedCodes[gateway.CodeClassName(i)] = n
			}
		}
		st.Routes = append(st.Routes, rs)
	}
	for _, a := range s.Addrs() {
		st.Listeners = append(st.Listeners, a.Network()+" "+a.String())
	}
	if err := s.gw.Ready(); err != nil {
		st.Ready = err.Error()
	} else {
		st.Ready = "ready"
	}
	f := &s.front
	f.mu.Lock()
	st.Reload = reloadStatus{Time: f.lastAttempt, Result: f.lastResult, Errors: f.lastErrors, OK: f.reloads["ok"], Failed: f.reloads["failed"]}
	f.mu.Unlock()
	return st
}

// errorStrings is each of err's errors as a string, for JSON.
func errorStrings(err error) []string {
	var out []string
	for _, e := range config.Errors(err) {
		out = append(out, e.Error())
	}
	return out
}
