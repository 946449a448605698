package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
)

// SetConfigSource says where a reload reads the configuration from: the
// file the daemon was started with, or the embedded default.
func (s *Server) SetConfigSource(load func() (*config.Config, error)) { s.source = load }

// ReloadFromSource reads the configuration again and applies it (SIGHUP,
// and POST /reload on the admin listener).
func (s *Server) ReloadFromSource(ctx context.Context) error {
	if s.source == nil {
		return errors.New("this server has no configuration source to reload from")
	}
	cfg, err := s.source()
	if err != nil {
		s.reloadFailed(err)
		return err
	}
	return s.Reload(ctx, cfg)
}

// Reload applies a new configuration without dropping a connection, as
// one change: it either all happens or none of it does.
//
//   - Routes added, changed or removed: see gateway.Reload. Open
//     connections keep the route, policy and application they started
//     with; a route that did not change keeps serving as it was.
//   - Listeners opened and closed; TLS certificates read again (a renewed
//     certificate applies to new connections).
//   - The log: its level, and its file reopened (logrotate).
//   - Limits and the access log.
//
// A configuration with errors, or a listener or certificate that cannot
// be opened, leaves the running configuration serving; the failure is
// logged with every error and counted. A few settings apply only at
// startup (the handshake timeout, header limits, the HTTP idle timeout,
// the admin listener, the log format); a reload that changes them says so.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.Store("reloading")
	sdNotify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(time.Now().UnixMicro(), 10))
	defer func() {
		s.state.Store("serving")
		sdNotify("READY=1")
		if err != nil {
			s.reloadFailed(err)
		}
	}()
	old := s.cfg.Load()

	// Listeners: keep those that stay, open the new ones (not serving yet).
	keep := map[*listener]bool{}
	var added []*listener
	var next []*listener
	abort := func(err error) error {
		for _, l := range added {
			l.close()
		}
		return err
	}
	for _, lc := range cfg.Listeners {
		var found *listener
		for _, l := range s.lns {
			if !keep[l] && l.cfg.Network == lc.Network && l.cfg.Address == lc.Address && (l.cfg.TLS != nil) == (lc.TLS != nil) {
				found = l
				break
			}
		}
		if found == nil {
			nl, err := s.open(lc, nil)
			if err != nil {
				return abort(fmt.Errorf("%s:%d: listen: %w", cfg.File, lc.Line, err))
			}
			added = append(added, nl)
			next = append(next, nl)
			continue
		}
		keep[found] = true
		next = append(next, found)
	}
	// Certificates of the listeners that stay, read before anything
	// changes.
	certs := map[*listener]tlsFiles{}
	for i, l := range next {
		if keep[l] && l.cert != nil {
			f, err := readTLS(cfg.Listeners[i].TLS)
			if err != nil {
				return abort(fmt.Errorf("%s:%d: tls: %w", cfg.File, cfg.Listeners[i].Line, err))
			}
			certs[l] = f
		}
	}
	if s.logOut != nil {
		if err := s.logOut.Apply(cfg.Log); err != nil {
			return abort(err)
		}
	}
	routes := make([]*gateway.Route, len(cfg.Routes))
	for i := range cfg.Routes {
		routes[i] = cfg.Routes[i].GatewayRoute()
	}
	if err := s.gw.Reload(ctx, routes...); err != nil {
		return abort(cfg.RouteErrors(routes, err))
	}

	// Commit.
	for l, f := range certs {
		l.cert.set(f)
	}
	for i, l := range next {
		if keep[l] {
			if o, n := l.cfg.TLS, cfg.Listeners[i].TLS; o != nil && n != nil && clientAuth(o) != clientAuth(n) {
				s.log.Info("TLS client certificates changed by reload; handshakes from now on ask as configured",
					"address", l.raw.Addr().String(), "client_ca", n.ClientCA, "client_auth", n.ClientAuth)
			}
			if l.tl != nil && recordLayer(l.cfg) != recordLayer(cfg.Listeners[i]) {
				l.tl.takeover.Store(recordLayer(cfg.Listeners[i]) == config.RecordLayerWsgate)
				s.log.Info("TLS record layer changed by reload; connections from now on get it", "address", l.raw.Addr().String(), "record_layer", recordLayer(cfg.Listeners[i]))
			}
			l.cfg = cfg.Listeners[i] // the same socket; new certificate paths, mode, line
		}
	}
	var opened, closed []string
	for _, l := range s.lns {
		if !keep[l] {
			s.log.Info("listener closed by reload", "address", l.raw.Addr().String())
			closed = append(closed, l.raw.Addr().String())
			l.close()
		}
	}
	for _, l := range added {
		opened = append(opened, l.raw.Addr().String())
	}
	s.lns = next
	for _, l := range added {
		s.serveListener(l)
	}
	s.cfg.Store(cfg)
	s.applyGateway(cfg)
	s.applyLimits(cfg.Server)
	for _, name := range startupOnly(old, cfg) {
		s.log.Warn("this setting changed, but applies only when wsgate starts: restart (or upgrade) to apply it", "key", name)
	}
	f := &s.front
	f.mu.Lock()
	f.reloads["ok"]++
	f.lastReload = time.Now()
	f.lastAttempt, f.lastResult, f.lastErrors = f.lastReload, "ok", nil
	f.mu.Unlock()
	rc := routeChanges(old, cfg)
	s.log.Info("configuration reloaded", "config", cfg.File, "routes", len(cfg.Routes), "listeners", len(next),
		"routes_added", list(rc.added), "routes_removed", list(rc.removed), "routes_replaced", list(rc.replaced), "routes_kept", list(rc.kept),
		"listeners_opened", list(opened), "listeners_closed", list(closed), "server_changed", list(serverChanges(old, cfg)))
	return nil
}

// changes are what a reload did to the routes, by path: new, gone, with
// a new configuration (its connections stay on the old one until they
// end), and the same.
type changes struct{ added, removed, replaced, kept []string }

func routeChanges(old, cfg *config.Config) changes {
	var c changes
	was := map[string]string{}
	for _, r := range old.Routes {
		was[r.Path] = r.Key
	}
	now := map[string]bool{}
	for _, r := range cfg.Routes {
		now[r.Path] = true
		key, ok := was[r.Path]
		switch {
		case !ok:
			c.added = append(c.added, r.Path)
		case key != r.Key:
			c.replaced = append(c.replaced, r.Path)
		default:
			c.kept = append(c.kept, r.Path)
		}
	}
	for _, r := range old.Routes {
		if !now[r.Path] {
			c.removed = append(c.removed, r.Path)
		}
	}
	return c
}

// serverChanges names the server settings that differ, as their keys
// (max_connections_per_ip, ...).
func serverChanges(old, cfg *config.Config) []string {
	o, n := reflect.ValueOf(old.Server), reflect.ValueOf(cfg.Server)
	var out []string
	for i := range o.NumField() {
		f := o.Type().Field(i)
		if f.Name == "Line" || !f.IsExported() {
			continue
		}
		if !reflect.DeepEqual(o.Field(i).Interface(), n.Field(i).Interface()) {
			out = append(out, snake(f.Name))
		}
	}
	return out
}

// snake turns a Go field name into its configuration key:
// MaxConnectionsPerIP is max_connections_per_ip.
func snake(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		upper := unicode.IsUpper(r)
		if upper && i > 0 && (!unicode.IsUpper(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// list is a log value: the names, comma-separated, or "-".
func list(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func (s *Server) reloadFailed(err error) {
	f := &s.front
	f.mu.Lock()
	f.reloads["failed"]++
	f.lastAttempt, f.lastResult, f.lastErrors = time.Now(), "failed", errorStrings(err)
	f.mu.Unlock()
	attrs := []any{}
	for i, e := range config.Errors(err) {
		attrs = append(attrs, "error"+strconv.Itoa(i+1), e.Error())
	}
	s.log.Error("reload failed; the running configuration goes on serving", attrs...)
}

// startupOnly lists the settings that changed but apply only at startup.
func startupOnly(old, cfg *config.Config) []string {
	var out []string
	o, n := old.Server, cfg.Server
	for _, c := range []struct {
		key     string
		changed bool
	}{
		{"server.handshake_timeout", o.HandshakeTimeout != n.HandshakeTimeout},
		{"server.max_header_bytes", o.MaxHeaderBytes != n.MaxHeaderBytes},
		{"server.http_idle_timeout", o.HTTPIdleTimeout != n.HTTPIdleTimeout},
		{"admin.listen", !reflect.DeepEqual(old.Admin, cfg.Admin) && (old.Admin.Network != cfg.Admin.Network || old.Admin.Address != cfg.Admin.Address)},
		{"log.format", old.Log.Format != cfg.Log.Format},
		{"cluster", !reflect.DeepEqual(stripLine(old.Cluster), stripLine(cfg.Cluster))},
	} {
		if c.changed {
			out = append(out, c.key)
		}
	}
	return out
}

func stripLine(c config.Cluster) config.Cluster {
	c.Line = 0
	return c
}
