// Package docroot serves a URL prefix from a directory of producer
// sockets, as ouistiti's mod_websocket does: with the route /ws/, the
// client of /ws/chat is served by the producer listening on <root>/chat.
package docroot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

// Config is a socket docroot.
type Config struct {
	Root string
	// Allow and Deny are glob patterns (path.Match) on the socket's name
	// relative to Root. A name matching Allow is served; otherwise one
	// matching Deny is refused; otherwise, when Allow is set, the name is
	// refused for not being on it. Without either, everything is served.
	// This keeps ouistiti's deny="*" allow="echo" meaning "only echo".
	Allow, Deny []string
	// Producer is how each socket is spoken to; its Address is ignored.
	Producer backend.Config
}

// Docroot is a gateway.Handler that picks a producer per request.
type Docroot struct {
	cfg  Config
	root string // absolute, symlinks resolved
	log  *slog.Logger
	ctx  gateway.AppContext

	mu       sync.Mutex
	handlers map[string]gateway.Handler // by socket path, created on first use
	byConn   sync.Map                   // conn id -> gateway.Handler
}

// Broadcasts implements gateway.Broadcaster: its producers may send
// BROADCAST and ROOM frames.
func (d *Docroot) Broadcasts() bool { return true }

// New returns a docroot for cfg. The root is looked at by Validate.
func New(cfg Config) (*Docroot, error) {
	var errs []error
	for _, p := range append(append([]string{}, cfg.Allow...), cfg.Deny...) {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("bad pattern %q: %v", p, err))
		}
	}
	if cfg.Root == "" {
		errs = append(errs, errors.New("docroot needs the directory of sockets"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Docroot{cfg: cfg, log: slog.Default(), handlers: map[string]gateway.Handler{}}, nil
}

// NewHandler returns the route's handler for cfg: a Docroot, or with
// mode: direct a Direct, which hands each client's socket to the
// producer its name resolves to.
func NewHandler(cfg Config) (gateway.Handler, error) {
	d, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Producer.Mode != backend.Direct {
		return d, nil
	}
	return &Direct{d}, nil
}

// Direct is a docroot whose producers take the client's socket itself
// (ouistiti's direct mode, whose docroot it was).
type Direct struct{ *Docroot }

var _ gateway.HandOff = (*Direct)(nil)

// Connect resolves the request's socket as OnOpen does and reaches its
// producer.
func (d *Direct) Connect(ctx context.Context, req *gateway.Request) (gateway.Transfer, error) {
	h, _, err := d.producer(req, d.ctx.Route.Path)
	if err != nil {
		return nil, err
	}
	return h.(gateway.HandOff).Connect(ctx, req)
}

// Config returns the docroot's configuration.
func (d *Docroot) Config() Config { return d.cfg }

// Provision keeps the route for the producers it will create.
func (d *Docroot) Provision(ctx gateway.AppContext) error {
	d.ctx, d.log = ctx, ctx.Logger
	return nil
}

// Validate checks that the root exists and is a directory, and resolves
// it: sockets are only ever served from inside it.
func (d *Docroot) Validate() error {
	if fi, err := os.Stat(d.cfg.Root); err != nil || !fi.IsDir() {
		return fmt.Errorf("docroot %s is not a directory", d.cfg.Root)
	}
	root, err := filepath.Abs(d.cfg.Root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return fmt.Errorf("docroot: %w", err)
	}
	d.root = root
	return nil
}

// Stop stops the producer of every socket used so far.
func (d *Docroot) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.handlers {
		if s, ok := h.(gateway.Stopper); ok {
			s.Stop(ctx)
		}
	}
	return nil
}

func match(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func (d *Docroot) allowed(name string) bool {
	if match(d.cfg.Allow, name) {
		return true
	}
	if match(d.cfg.Deny, name) {
		return false
	}
	return len(d.cfg.Allow) == 0
}

// within reports whether p, absolute and resolved, is inside the root.
func (d *Docroot) within(p string) bool {
	return p == d.root || strings.HasPrefix(p, d.root+string(filepath.Separator))
}

// Resolve maps a name under the route to a socket, choosing one inside a
// directory by the offered subprotocols. It returns an HTTP status (403 or
// 404) instead of a path when the name cannot be served.
func (d *Docroot) Resolve(name string, protocols []string) (sock, protocol string, status int) {
	if strings.IndexByte(name, 0) >= 0 || strings.Contains(name, "\\") {
		return "", "", http.StatusForbidden
	}
	if name != "" {
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return "", "", http.StatusForbidden
			}
		}
	}
	if name != "" && !d.allowed(name) {
		return "", "", http.StatusForbidden
	}
	full, status := d.socketOrDir(filepath.Join(d.root, filepath.FromSlash(name)))
	if status != 0 {
		return "", "", status
	}
	if full.dir {
		// As in ouistiti, a directory is served by the socket named after a
		// subprotocol the client offers, in its order of preference.
		for _, p := range protocols {
			if strings.ContainsAny(p, "/\\") || p == "." || p == ".." {
				continue
			}
			sub := path.Join(name, p)
			if !d.allowed(sub) {
				continue
			}
			if s, st := d.socketOrDir(filepath.Join(full.path, p)); st == 0 && !s.dir {
				return s.path, p, 0
			}
		}
		return "", "", http.StatusNotFound
	}
	return full.path, "", 0
}

type entry struct {
	path string
	dir  bool
}

// socketOrDir resolves p's symlinks, refusing anything that leads out of
// the root, and accepts only sockets and directories.
func (d *Docroot) socketOrDir(p string) (entry, int) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return entry{}, http.StatusNotFound
		}
		return entry{}, http.StatusForbidden
	}
	if !d.within(real) {
		return entry{}, http.StatusForbidden
	}
	fi, err := os.Stat(real)
	if err != nil {
		return entry{}, http.StatusNotFound
	}
	switch {
	case fi.IsDir():
		return entry{path: real, dir: true}, 0
	case fi.Mode()&os.ModeSocket != 0:
		return entry{path: real}, 0
	}
	return entry{}, http.StatusForbidden // only sockets are served
}

// handler returns the producer handler for a socket, creating it on
// first use.
func (d *Docroot) handler(sock string) (gateway.Handler, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.handlers[sock]; ok {
		return h, nil
	}
	cfg := d.cfg.Producer
	cfg.Network, cfg.Address = "unix", sock
	h, err := backend.NewHandler(cfg)
	if err != nil {
		return nil, err
	}
	// The socket's producer goes through the same lifecycle as a route's
	// application, inside this route.
	if p, ok := h.(gateway.Provisioner); ok {
		if err := p.Provision(d.ctx); err != nil {
			return nil, err
		}
	}
	if s, ok := h.(gateway.Starter); ok {
		if err := s.Start(context.Background()); err != nil {
			if st, ok := h.(gateway.Stopper); ok {
				st.Stop(context.Background())
			}
			return nil, err
		}
	}
	d.handlers[sock] = h
	return h, nil
}

// below is the name a request path asks for below the route's path:
// /ws/ and /ws both serve /ws/chat as "chat" (httpd's <Location /ws>
// matches /ws/chat too).
func below(path, route string) string {
	name := strings.TrimPrefix(path, route)
	if !strings.HasSuffix(route, "/") {
		name = strings.TrimPrefix(name, "/") // one separator, not "//"
	}
	return name
}

// producer resolves a request on the route at routePath to its socket's
// handler, and the subprotocol that chose the socket (for a directory);
// the error is the refusal to answer with.
func (d *Docroot) producer(req *gateway.Request, routePath string) (gateway.Handler, string, error) {
	name := below(req.Path, routePath)
	sock, proto, status := d.Resolve(name, req.Protocols)
	if status != 0 {
		return nil, "", gateway.Refuse(status, fmt.Sprintf("no socket for %q", name))
	}
	h, err := d.handler(sock)
	if err != nil {
		d.log.Error("cannot use producer socket", "socket", sock, "err", err)
		return nil, "", gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseBackendDown, "producer unavailable")
	}
	return h, proto, nil
}

// OnOpen resolves the socket for the request and hands the client to
// its producer.
func (d *Docroot) OnOpen(ctx context.Context, c *gateway.Conn) error {
	h, proto, err := d.producer(c.Request(), c.Route().Path)
	if err != nil {
		return err
	}
	if proto != "" {
		c.SetSubprotocol(proto)
	}
	if err := h.OnOpen(ctx, c); err != nil {
		return err
	}
	d.byConn.Store(c.ID(), h)
	return nil
}

func (d *Docroot) OnMessage(c *gateway.Conn, m gateway.Message) {
	if h, ok := d.byConn.Load(c.ID()); ok {
		h.(gateway.Handler).OnMessage(c, m)
	}
}

func (d *Docroot) OnClose(c *gateway.Conn, s websocket.CloseStatus) {
	if h, ok := d.byConn.LoadAndDelete(c.ID()); ok {
		h.(gateway.Handler).OnClose(c, s)
	}
}
