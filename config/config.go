// Package config reads wsgate's configuration: the daemon's YAML file, and
// the routes mod_wsgate builds from httpd's directives.
//
// The format is YAML, read with go.yaml.in/yaml/v3, the YAML project's
// maintained continuation of gopkg.in/yaml.v3. It was chosen over TOML
// because its node API keeps the line and column of every key and value:
// the file is walked node by node (see Decoder), so every error names the
// file, the line and the full key (routes[2].origin_check), which decoding
// into structs cannot do.
//
// Routes compile to gateway.Route and gateway.Policy, the same structures
// mod_wsgate builds and a Go program can write by hand. The application of
// a route is read by its kind (see Kind), which registers itself from its
// own package: this package knows none of them but "app".
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/wsgate/wsgate/gateway"
)

// Config is a parsed configuration file.
type Config struct {
	// File is the name errors are reported against.
	File      string
	Listeners []Listener
	Log       Log
	Server    Server
	Admin     Admin
	Cluster   Cluster
	Routes    []Route
	// Static serves directories of files over plain HTTP, such as the page
	// of a chat producer.
	Static []Static
}

// Static is a URL prefix served from a directory.
type Static struct {
	Path string
	Dir  string
	Line int
}

// Listener is one socket to accept connections on.
type Listener struct {
	// Network is "tcp" or "unix".
	Network string
	Address string
	// TLS is set for a TLS listener.
	TLS *TLS
	// Mode is the permission of a UNIX socket file.
	Mode fs.FileMode
	Line int
}

// TLS holds a certificate and key, both PEM files.
type TLS struct {
	Cert string
	Key  string
	// Lines of the tls block and of its cert and key, for errors about
	// the files.
	Line, CertLine, KeyLine int
	// RecordLayer says who protects records after a WebSocket's 101:
	// crypto/tls, always (RecordLayerGo, the default), or wsgate's own
	// TLS 1.3 record layer, which takes a connection over from crypto/tls
	// after the upgrade so that an idle wss connection costs about a third
	// as much (RecordLayerWsgate; see frontdoor/tlsrec).
	RecordLayer string
	// ClientCA is a PEM bundle of the CAs whose client certificates the
	// listener verifies; ClientAuth is ClientAuthRequire (a handshake
	// without a valid one fails) or ClientAuthOptional (one is asked for
	// and verified if sent: a route's auth: {cert: ...} decides). Empty:
	// no client certificates.
	ClientCA     string
	ClientAuth   string
	ClientCALine int
}

// Values of TLS.ClientAuth.
const (
	ClientAuthRequire  = "require"
	ClientAuthOptional = "optional"
)

// Values of TLS.RecordLayer.
const (
	RecordLayerGo     = "go"
	RecordLayerWsgate = "wsgate"
)

// Log configures log/slog.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
	Output string // "stderr", "stdout" or a file path
	// Access writes a line for every WebSocket when it ends and for every
	// refused upgrade (on by default).
	Access bool
	Line   int
}

// Server holds daemon-wide settings. Zero values of the limits disable
// them; Parse fills in the defaults.
type Server struct {
	// HandshakeTimeout bounds reading the opening handshake.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// Demo serves the demo page at /.
	Demo bool

	// MaxConnections bounds the client connections open at once,
	// WebSockets and plain HTTP: past it, a new connection gets 503 with
	// Retry-After and is closed at once, so nobody waits in the kernel's
	// backlog. AutoMaxConnections derives it from the descriptor limit.
	MaxConnections     int
	AutoMaxConnections bool
	// MaxConnectionsPerIP and HandshakeRatePerIP (per second, bursts of
	// HandshakeBurstPerIP) limit one client address: 503 and 429. The
	// connections are every one the address holds, plain HTTP and
	// WebSockets alike, counted at accept; behind a trusted proxy, its
	// WebSockets by the address the proxy forwards.
	MaxConnectionsPerIP int
	HandshakeRatePerIP  float64
	HandshakeBurstPerIP int
	// MaxPendingHandshakesPerIP is one address's share of
	// MaxPendingHandshakes: connections that have not sent a whole
	// request yet, so that one address cannot hold the slots every client
	// needs to get in. MaxIdleHTTPPerIP bounds its keep-alive HTTP
	// connections waiting for a next request (past it, the one that goes
	// idle is closed), and MaxRequestsPerConnection the requests on one
	// keep-alive connection (then it is closed after its answer), which
	// bounds what one connection can pipeline. IPv6Prefix is how many bits
	// of an IPv6 address name one address for all of these.
	MaxPendingHandshakesPerIP int
	MaxIdleHTTPPerIP          int
	MaxRequestsPerConnection  int
	IPv6Prefix                int
	// MaxHeaderBytes and MaxHeaderCount bound a request's header (431
	// past them); MaxPendingHandshakes bounds the connections that have
	// not finished sending a request, so that slow clients cost at most
	// MaxPendingHandshakes × MaxHeaderBytes.
	MaxHeaderBytes       int
	MaxHeaderCount       int
	MaxPendingHandshakes int
	// HTTPIdleTimeout closes a keep-alive HTTP connection with no request.
	HTTPIdleTimeout time.Duration
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT);
	// while the heap is near it, new WebSockets are refused with 503.
	MemoryLimit int64
	// MemoryBudget bounds what every WebSocket buffers together (parts of
	// messages still arriving, frames queued for slow readers): past it,
	// the connections holding the most are closed with 1013. 0 is off;
	// AutoMemoryBudget derives it: half of MemoryLimit, or a quarter of
	// the machine's memory (or of the cgroup's limit) without one.
	MemoryBudget     int64
	AutoMemoryBudget bool
	// ReturnMemory gives freed memory back to the kernel after a burst:
	// once a thousand connections have parked or closed, or what
	// WebSockets buffer has fallen by 64 MiB from its peak, and the burst
	// is over, the runtime collects and returns free pages at once
	// (runtime.GC, debug.FreeOSMemory), at most every 5 s. Without it the
	// pages go back as the runtime's scavenger gets to them, minutes
	// later on a quiet server. On by default; off spares a latency-bound
	// server the forced collection.
	ReturnMemory bool
	// Upgrade is what the old process does with its connections when a
	// new binary takes over its listeners (SIGUSR2): "close" them with
	// 1001 after DrainTimeout, or "keep" them until they end.
	UpgradeDrain        string
	UpgradeDrainTimeout time.Duration
}

// Admin is the administration listener: metrics, health, the status
// page, reload. It is separate from the public listeners, on loopback by
// default.
type Admin struct {
	// Network and Address are where it listens; Network is "" when it is
	// off.
	Network, Address string
	// Hosts are names the listener answers to besides its own address
	// and localhost (a Host header naming anything else gets 421: a web
	// page that rebinds a name of its own to 127.0.0.1 reaches nothing).
	Hosts []string
	// MaxBody bounds a request body (a publish, a reload: 413 past it),
	// BodyTimeout the time to read one, MaxConnections the connections
	// open at once (past it, 503).
	MaxBody        int64
	BodyTimeout    time.Duration
	MaxConnections int
	// TLS serves the admin listener over TLS (its ClientCA, with Auth's
	// client_certificates, authenticates operators by certificate).
	TLS *TLS
	// Auth is how control requests (and, unless PublicReads, reads)
	// prove who sends them; nil: none.
	Auth *AdminAuth
	Line int
}

// AdminAuth authenticates the admin listener's clients: any one of the
// configured ways lets a request in.
type AdminAuth struct {
	// BearerTokenFile holds a token sent as Authorization: Bearer.
	BearerTokenFile string
	// BasicFile holds user:bcrypt-hash lines (htpasswd -B's format).
	BasicFile string
	// ClientCertificates lets in a client certificate that the admin
	// TLS block's client_ca verified.
	ClientCertificates bool
	// PublicReads leaves /metrics, /status.json and the status page open
	// to anyone who reaches the listener (/healthz and /readyz always
	// are), for a scraper without credentials.
	PublicReads bool
	Line        int
}

// Cluster is the bus that carries broadcasts and rooms to the other
// nodes (gateway.Bus), over NATS. No URLs: no bus, rooms stay local.
type Cluster struct {
	URLs []string
	// Name names this node in NATS's monitoring; Prefix starts every
	// subject ("wsgate"), so that clusters can share a NATS.
	Name, Prefix string
	// Credentials, NKey: files; User/Password or Token: the simple forms.
	Credentials, NKey, User, Password, Token string
	// CA, Cert, Key: PEM files for TLS to NATS.
	CA, Cert, Key string
	// Buffer bounds what waits for NATS while it is unreachable.
	Buffer int64
	Line   int
}

// Route is one route as configured.
type Route struct {
	Path string
	// Kind is the key that chose the application ("app", "backend", ...)
	// and App names the application for logs: the registered name for
	// app, the kind otherwise.
	Kind string
	App  string
	// Handler is the application, not yet provisioned. It is nil only in
	// a route from ParseRoute, for a location without one.
	Handler gateway.Handler
	Policy  gateway.Policy
	Line    int
	// Key identifies the route's configuration, so that a reload keeps a
	// route that did not change (see gateway.Reload).
	Key string
}

// Defaults for the daemon-wide settings: each limit is on, at a value an
// ordinary deployment does not meet and an attack does.
const (
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultShutdownTimeout      = 10 * time.Second
	DefaultMaxConnectionsPerIP  = 1000
	DefaultMaxHeaderBytes       = 16 << 10
	DefaultMaxHeaderCount       = 100
	DefaultMaxPendingHandshakes = 1024
	// One address may hold 64 of the 1,024 pending handshakes, 32 idle
	// keep-alive connections (a browser opens 6 per host), and make 100
	// requests on one connection (Apache's MaxKeepAliveRequests).
	DefaultMaxPendingHandshakesPerIP = 64
	DefaultMaxIdleHTTPPerIP          = 32
	DefaultMaxRequestsPerConnection  = 100
	DefaultHTTPIdleTimeout           = 60 * time.Second
	DefaultUpgradeDrainTimeout       = 30 * time.Second
	DefaultAdminAddress              = "127.0.0.1:8090"
	DefaultAdminMaxBody              = 1 << 20
	DefaultAdminBodyTimeout          = 10 * time.Second
	DefaultAdminMaxConnections       = 64
)

// The daemon's route defaults, under the file's own defaults: safer than
// the engine's, which keep apache-websocket's for mod_wsgate. A message is
// 1 MiB at most (nginx's client_max_body_size), must arrive within a
// minute, and an idle client is pinged every 25 s (Centrifugo's interval)
// and closed when it stops answering.
var DaemonDefaults = gateway.Policy{
	MaxMessageSize:    1 << 20,
	MessageTimeout:    time.Minute,
	KeepaliveInterval: 25 * time.Second,
}

// GatewayRoute returns the route for gateway.New. Each call makes a new
// gateway.Route around the same application, which only one gateway may
// provision.
func (r *Route) GatewayRoute() *gateway.Route {
	return &gateway.Route{Path: r.Path, App: r.App, Key: r.Key, Handler: r.Handler, Policy: r.Policy}
}

// NewGateway builds the gateway serving the configuration's routes:
// gateway.New, which provisions and validates every application and opens
// nothing. What an application refuses is reported like any other
// configuration error, with the route's line and the key of its
// application (routes[2].backend).
func (c *Config) NewGateway(log *slog.Logger) (*gateway.Gateway, error) {
	routes := make([]*gateway.Route, len(c.Routes))
	for i := range c.Routes {
		routes[i] = c.Routes[i].GatewayRoute()
	}
	g, err := gateway.New(log, routes...)
	if err != nil {
		return nil, c.RouteErrors(routes, err)
	}
	return g, nil
}

// RouteErrors reports what gateway.New or Gateway.Reload refused, given
// the routes made from c (in c's order), as configuration errors: an
// application's refusal carries its route's line and the key of its
// application (routes[2].backend), anything else the file.
func (c *Config) RouteErrors(routes []*gateway.Route, err error) error {
	var errs []error
	for _, e := range Errors(err) {
		var re *gateway.RouteError
		if errors.As(e, &re) {
			if i := slices.Index(routes, re.Route); i >= 0 {
				r := c.Routes[i]
				errs = append(errs, &Error{File: c.File, Line: r.Line, Key: fmt.Sprintf("routes[%d].%s", i, r.Kind), Msg: re.Err.Error()})
				continue
			}
		}
		var ce *Error
		if errors.As(e, &ce) {
			errs = append(errs, e)
			continue
		}
		errs = append(errs, &Error{File: c.File, Msg: e.Error()})
	}
	return errors.Join(errs...)
}

// Errors lists the errors in err, which Parse, Check and the functions
// here put together with errors.Join (nested joins flattened); nil has
// none. Each is one line of a report.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Errors(e)...)
		}
		return out
	}
	return []error{err}
}
