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
	"io/fs"
	"log/slog"
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
	Routes    []Route
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

// Route is one route as configured.
type Route struct {
	Path   string
	App    string
	Policy gateway.Policy
	Line   int
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
		info, ok := gateway.LookupApp(r.App)
		if !ok {
			return nil, &Error{File: c.File, Line: r.Line, Key: "app", Msg: "unknown application " + r.App}
		}
		gr := &gateway.Route{Path: r.Path, App: r.App, Handler: info.New(), Policy: r.Policy}
		if err := gateway.ProvisionApp(gr, log); err != nil {
			return nil, &Error{File: c.File, Line: r.Line, Key: "app", Msg: err.Error()}
		}
		out = append(out, gr)
	}
	return out, nil
}
