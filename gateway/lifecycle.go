package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// The lifecycle of a route's application is the same for every kind of
// application (built-in Go applications, producers, socket docroots,
// programs, C plugins), as Caddy's modules have one. Each step is an
// optional interface the Handler may implement:
//
//  1. Provision allocates what the application needs, now that it knows
//     its route and logger. It performs no I/O: no dial, no listen, no
//     goroutine, no file written.
//  2. Validate checks the configuration. It may read the file system (a
//     docroot exists, a plugin library loads) but changes nothing.
//  3. Start does the I/O: dial producers, start pools and timers.
//  4. Stop releases whatever Provision and Start took. It is called for
//     every application that was provisioned, whether or not it was
//     started, so that a failure part-way through a set of routes leaves
//     nothing behind.
//
// New runs steps 1 and 2 for every route, which is all `wsgate check`
// needs; Start runs step 3; Stop runs step 4. The daemon, mod_wsgate
// (StartRoute, as httpd's sections are first used) and a Go program that
// embeds the gateway all go through these calls.

// Provisioner is implemented by applications that need their route or a
// logger before serving.
type Provisioner interface {
	Provision(ctx AppContext) error
}

// Validator is implemented by applications that can check their own setup.
type Validator interface {
	Validate() error
}

// Starter is implemented by applications that do I/O of their own before
// the first client arrives.
type Starter interface {
	Start(ctx context.Context) error
}

// Stopper is implemented by applications that hold resources beyond their
// connections.
type Stopper interface {
	Stop(ctx context.Context) error
}

// AppContext is what Provision gets.
type AppContext struct {
	Route  *Route
	Logger *slog.Logger
}

// AppInfo describes a Go application registered by name, so that
// configuration can refer to it ("app: echo").
type AppInfo struct {
	Name string
	// Doc is one line for `wsgate apps` and the docs.
	Doc string
	// New returns a fresh instance; each route gets its own.
	New func() Handler
}

var (
	appsMu sync.RWMutex
	apps   = map[string]AppInfo{}
)

// RegisterApp registers a Go application. It panics on a duplicate name,
// as that is a programming error found at startup.
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

// RouteError is a route whose application failed a step of its
// lifecycle. New and Start return them (joined), so that whoever built
// the route (the configuration, say) can say where it came from.
type RouteError struct {
	Route *Route
	Err   error
}

func (e *RouteError) Error() string {
	return "route " + e.Route.Path + " (" + e.Route.App + "): " + e.Err.Error()
}

func (e *RouteError) Unwrap() error { return e.Err }

// provision runs steps 1 and 2 for a route: its registry of connections,
// then its application's Provision and Validate.
func (r *Route) provision(log *slog.Logger) error {
	if err := r.validate(); err != nil {
		return err
	}
	r.hub = newHub()
	r.stats.initStats()
	r.provisioned = true
	if p, ok := r.Handler.(Provisioner); ok {
		if err := p.Provision(AppContext{Route: r, Logger: log.With("route", r.Path, "app", r.App)}); err != nil {
			return err
		}
	}
	if v, ok := r.Handler.(Validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// start runs step 3.
func (r *Route) start(ctx context.Context) error {
	if s, ok := r.Handler.(Starter); ok && !r.started {
		if err := s.Start(ctx); err != nil {
			return &RouteError{Route: r, Err: err}
		}
	}
	r.started = true
	return nil
}

// stop runs step 4, once.
func (r *Route) stop(ctx context.Context) error {
	if !r.provisioned || r.stopped {
		return nil
	}
	r.stopped = true
	r.hub.leaveCluster()
	if s, ok := r.Handler.(Stopper); ok {
		if err := s.Stop(ctx); err != nil {
			return &RouteError{Route: r, Err: err}
		}
	}
	return nil
}

// Start runs every application's Start, in configuration order. If one
// fails, the applications are stopped and the error returned.
func (g *Gateway) Start(ctx context.Context) error {
	for _, r := range g.Routes() {
		if err := r.start(ctx); err != nil {
			g.Stop(ctx)
			return err
		}
		g.joinCluster(r)
	}
	return nil
}

// joinCluster makes a started route's hub a member of its topic on the
// bus, if the gateway has one.
func (g *Gateway) joinCluster(r *Route) {
	g.mu.Lock()
	cl := g.cluster
	g.mu.Unlock()
	if cl == nil || r.hub == nil {
		return
	}
	if have, _ := r.hub.clusterTopic(); have == nil {
		cl.attach(r.Path, r.hub)
	}
}

// Stop runs every application's Stop, in reverse configuration order. Call
// it after Shutdown: an application stopped under open connections may
// close them with an error. It is safe to call more than once.
func (g *Gateway) Stop(ctx context.Context) error {
	routes := g.allRoutes()
	var errs []error
	for i := len(routes) - 1; i >= 0; i-- {
		if err := routes[i].stop(ctx); err != nil {
			g.log.Warn("application did not stop cleanly", "route", routes[i].Path, "err", err)
			errs = append(errs, err)
		}
	}
	g.mu.Lock()
	cl := g.cluster
	g.mu.Unlock()
	if cl != nil {
		cl.close()
	}
	return errors.Join(errs...)
}

// StartRoute provisions, validates and starts a route built after New, as
// mod_wsgate does when a configuration section is first used. The route is
// served by whoever holds it (Accept takes any provisioned route); it is
// not matched by Route(path), and Stop stops it with the others.
func (g *Gateway) StartRoute(ctx context.Context, r *Route) error {
	if err := r.provision(g.log); err != nil {
		r.stop(ctx)
		return err
	}
	if err := r.start(ctx); err != nil {
		r.stop(ctx)
		return err
	}
	g.mu.Lock()
	g.extra = append(g.extra, r)
	g.mu.Unlock()
	g.joinCluster(r)
	return nil
}
