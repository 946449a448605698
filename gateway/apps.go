package gateway

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Applications register themselves by name so that configuration can refer
// to them ("app: echo"), the way Caddy modules do. The lifecycle of an
// instance is: New, then Provision (if implemented) once its route is
// known, then Validate; Cleanup runs when the gateway stops.

// AppInfo describes a registered application.
type AppInfo struct {
	Name string
	// Doc is one line for `wsgate apps` and the docs.
	Doc string
	// New returns a fresh instance; each route gets its own.
	New func() Handler
}

// Provisioner is implemented by applications that need their route or a
// logger before serving.
type Provisioner interface {
	Provision(ctx AppContext) error
}

// Validator is implemented by applications that can check their own setup.
type Validator interface {
	Validate() error
}

// CleanerUpper is implemented by applications that hold resources beyond
// their connections.
type CleanerUpper interface {
	Cleanup() error
}

// AppContext is what Provision gets.
type AppContext struct {
	Route  *Route
	Logger *slog.Logger
}

var (
	appsMu sync.RWMutex
	apps   = map[string]AppInfo{}
)

// RegisterApp registers an application. It panics on a duplicate name, as
// that is a programming error found at startup.
func RegisterApp(info AppInfo) {
	appsMu.Lock()
	defer appsMu.Unlock()
	if info.Name == "" || info.New == nil {
		panic("gateway: RegisterApp needs a name and a constructor")
	}
	if _, dup := apps[info.Name]; dup {
		panic(fmt.Sprintf("gateway: application %q registered twice", info.Name))
	}
	apps[info.Name] = info
}

// LookupApp returns a registered application.
func LookupApp(name string) (AppInfo, bool) {
	appsMu.RLock()
	defer appsMu.RUnlock()
	info, ok := apps[name]
	return info, ok
}

// AppNames returns the registered names, sorted.
func AppNames() []string {
	appsMu.RLock()
	defer appsMu.RUnlock()
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ProvisionApp runs the lifecycle hooks of a route's application.
func ProvisionApp(r *Route, log *slog.Logger) error {
	if r.hub == nil {
		r.hub = newHub()
	}
	if p, ok := r.Handler.(Provisioner); ok {
		if err := p.Provision(AppContext{Route: r, Logger: log.With("route", r.Path, "app", r.App)}); err != nil {
			return fmt.Errorf("application %s: %w", r.App, err)
		}
	}
	if v, ok := r.Handler.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("application %s: %w", r.App, err)
		}
	}
	return nil
}

// EnsureHub gives a route built outside New (mod_wsgate builds routes as
// httpd's locations are first used) its registry of connections.
func EnsureHub(r *Route) {
	if r.hub == nil {
		r.hub = newHub()
	}
}

// Cleanup runs the Cleanup hook of every route's application.
func (g *Gateway) Cleanup() {
	for _, r := range g.routes {
		if cu, ok := r.Handler.(CleanerUpper); ok {
			if err := cu.Cleanup(); err != nil {
				g.log.Warn("application cleanup failed", "route", r.Path, "err", err)
			}
		}
	}
}

// CPluginLoader loads an apache-websocket C plugin (library and init
// function) as a Handler. Package cplugin sets it; a wsgate built without
// cgo has none, and routes that name a plugin are configuration errors.
var CPluginLoader func(library, init string) (Handler, error)
