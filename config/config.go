// Package config reads the wsgate daemon's configuration file.
//
// The format is YAML, read with go.yaml.in/yaml/v3, the YAML project's
// maintained continuation of gopkg.in/yaml.v3. It was chosen over TOML
// because its node API keeps the line and column of every key and value:
// the file is walked node by node here, so every error names the file, the
// line and the full key (routes[2].origin_check), which decoding into
// structs cannot do.
//
// Routes compile to gateway.Route and gateway.Policy, the same structures
// mod_wsgate builds from Apache directives, and are validated by the same
// code.
package config

import (
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/apps/docroot"
	"github.com/wsgate/wsgate/apps/program"
	"github.com/wsgate/wsgate/gateway"
)

// Config is a parsed configuration file.
type Config struct {
	// File is the name errors are reported against.
	File      string
	Listeners []Listener
	Log       Log
	Server    Server
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
}

// Log configures log/slog.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
	Output string // "stderr", "stdout" or a file path
}

// Server holds daemon-wide settings.
type Server struct {
	// HandshakeTimeout bounds reading the opening handshake.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// Demo serves the demo page at /.
	Demo bool
}

// Route is one route as configured. Exactly one of App, Backend, Docroot
// and Program is set: the route's application.
type Route struct {
	Path    string
	App     string
	Backend *backend.Config
	Docroot *docroot.Config
	Program *program.Config
	Plugin  *Plugin
	Policy  gateway.Policy
	Line    int
}

// Plugin is an apache-websocket C plugin: a shared library and the name
// of its initialization function (WebSocketHandler's two arguments).
type Plugin struct {
	Library string
	Init    string
}

// Kind names the route's kind of application, for logs.
func (r *Route) Kind() string {
	switch {
	case r.Backend != nil:
		return "backend"
	case r.Docroot != nil:
		return "docroot"
	case r.Program != nil:
		return "program"
	case r.Plugin != nil:
		return "plugin"
	}
	return r.App
}

// Defaults for the daemon-wide settings.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultShutdownTimeout  = 10 * time.Second
)

// GatewayRoutes instantiates each route's application and returns routes
// ready for gateway.New.
func (c *Config) GatewayRoutes(log *slog.Logger) ([]*gateway.Route, error) {
	var out []*gateway.Route
	for _, r := range c.Routes {
		h, key, err := r.handler()
		if err != nil {
			return nil, &Error{File: c.File, Line: r.Line, Key: key, Msg: err.Error()}
		}
		gr := &gateway.Route{Path: r.Path, App: r.Kind(), Handler: h, Policy: r.Policy}
		if err := gateway.ProvisionApp(gr, log); err != nil {
			return nil, &Error{File: c.File, Line: r.Line, Key: key, Msg: err.Error()}
		}
		out = append(out, gr)
	}
	return out, nil
}

// Handler builds the route's application (nil when it has none) and
// names the key it came from, for errors.
func (r *Route) Handler() (gateway.Handler, string, error) {
	if r.App == "" && r.Backend == nil && r.Docroot == nil && r.Program == nil && r.Plugin == nil {
		return nil, "", nil
	}
	return r.handler()
}

// handler builds the route's application and names the key it came from.
func (r *Route) handler() (gateway.Handler, string, error) {
	switch {
	case r.Backend != nil && r.Backend.Raw != nil:
		h, err := backend.NewRaw(*r.Backend)
		return h, "backend", err
	case r.Backend != nil:
		h, err := backend.New(*r.Backend)
		return h, "backend", err
	case r.Docroot != nil:
		h, err := docroot.New(*r.Docroot)
		return h, "docroot", err
	case r.Program != nil:
		h, err := program.New(*r.Program)
		return h, "program", err
	case r.Plugin != nil:
		if gateway.CPluginLoader == nil {
			return nil, "plugin", fmt.Errorf("this wsgate was built without cgo (no C compiler): C plugins are not available")
		}
		h, err := gateway.CPluginLoader(r.Plugin.Library, r.Plugin.Init)
		return h, "plugin", err
	}
	info, ok := gateway.LookupApp(r.App)
	if !ok {
		return nil, "app", fmt.Errorf("unknown application %s", r.App)
	}
	return info.New(), "app", nil
}
