package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/apps/docroot"
	"github.com/wsgate/wsgate/apps/program"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/httptoken"
	"github.com/wsgate/wsgate/websocket"
)

// Load reads and parses a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a configuration. name is used in error messages. All the
// problems found are returned together, each an *Error.
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, p.syntaxError(err)
	}
	cfg := &Config{
		File: name,
		Log:  Log{Level: slog.LevelInfo, Format: "text", Output: "stderr"},
		Server: Server{
			HandshakeTimeout: DefaultHandshakeTimeout,
			ShutdownTimeout:  DefaultShutdownTimeout,
		},
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: name, Msg: "the configuration is empty"}
	}
	root := resolve(doc.Content[0])
	var defaults policyNode
	var routes *yaml.Node
	p.fields(root, "", map[string]func(*yaml.Node, string){
		"listen":   func(v *yaml.Node, key string) { cfg.Listeners = p.listeners(v, key) },
		"log":      func(v *yaml.Node, key string) { p.log(v, key, &cfg.Log) },
		"server":   func(v *yaml.Node, key string) { p.server(v, key, &cfg.Server) },
		"defaults": func(v *yaml.Node, key string) { defaults = p.policy(v, key, nil, nil) },
		"routes":   func(v *yaml.Node, key string) { routes = v },
		"static":   func(v *yaml.Node, key string) { cfg.Static = p.static(v, key) },
	})
	if routes != nil {
		cfg.Routes = p.routes(routes, "routes", &defaults)
	} else if root.Kind == yaml.MappingNode {
		p.errs = append(p.errs, &Error{File: name, Line: root.Line, Key: "routes", Msg: "no routes are configured"})
	}
	if len(cfg.Listeners) == 0 && root.Kind == yaml.MappingNode {
		cfg.Listeners = []Listener{{Network: "tcp", Address: "127.0.0.1:8080"}}
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

type parser struct {
	file       string
	errs       []error
	allowNoApp bool // ParseRoute: a route may lack an application
}

var lineRE = regexp.MustCompile(`line (\d+): `)

// syntaxError turns a YAML syntax error into an *Error with its line.
func (p *parser) syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: p.file, Msg: msg}
	if m := lineRE.FindStringSubmatchIndex(msg); m != nil {
		e.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		e.Msg = msg[:m[0]] + msg[m[1]:]
	}
	return e
}

func (p *parser) errorf(n *yaml.Node, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields walks a mapping: each known key goes to its handler; unknown and
// duplicate keys are errors.
func (p *parser) fields(n *yaml.Node, path string, handlers map[string]func(*yaml.Node, string)) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be a mapping of keys to values")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		key := join(path, k.Value)
		if seen[k.Value] {
			p.errorf(k, key, "duplicate key")
			continue
		}
		seen[k.Value] = true
		h, ok := handlers[k.Value]
		if !ok {
			names := make([]string, 0, len(handlers))
			for name := range handlers {
				names = append(names, name)
			}
			sort.Strings(names)
			p.errorf(k, key, "unknown key (known keys here: %s)", strings.Join(names, ", "))
			continue
		}
		h(v, key)
	}
}

func (p *parser) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, key, "must be a single value")
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(n *yaml.Node, key string, dst *string) {
	if s, ok := p.scalar(n, key); ok {
		*dst = s
	}
}

func (p *parser) boolean(n *yaml.Node, key string, dst *bool) {
	s, ok := p.scalar(n, key)
	if !ok {
		return
	}
	// Apache users write On and Off; YAML 1.2 only knows true and false.
	switch strings.ToLower(s) {
	case "true", "on", "yes":
		*dst = true
	case "false", "off", "no":
		*dst = false
	default:
		p.errorf(n, key, "must be true or false, not %q", s)
	}
}

func (p *parser) duration(n *yaml.Node, key string, dst *time.Duration) {
	s, ok := p.scalar(n, key)
	if !ok {
		return
	}
	if s == "0" {
		*dst = 0
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(n, key, "must be a duration with a unit, such as 30s or 1m30s, not %q", s)
		return
	}
	if d < 0 {
		p.errorf(n, key, "must not be negative")
		return
	}
	*dst = d
}

// ParseSize parses a byte size: a plain number of bytes, or a number with
// a unit. KiB, MiB, GiB and nginx-style k, m, g are powers of 1024; KB, MB
// and GB are powers of 1000.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size (use bytes, or a unit such as 64KiB or 32MiB)", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	mult := int64(1)
	switch unit := strings.TrimSpace(s[i:]); strings.ToLower(unit) {
	case "", "b":
	case "k", "kib":
		mult = 1 << 10
	case "m", "mib":
		mult = 1 << 20
	case "g", "gib":
		mult = 1 << 30
	case "kb":
		mult = 1000
	case "mb":
		mult = 1000 * 1000
	case "gb":
		mult = 1000 * 1000 * 1000
	default:
		return 0, fmt.Errorf("unknown size unit %q in %q", unit, s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

func (p *parser) size(n *yaml.Node, key string, dst *int64) {
	s, ok := p.scalar(n, key)
	if !ok {
		return
	}
	v, err := ParseSize(s)
	if err != nil {
		p.errorf(n, key, "%v", err)
		return
	}
	if v <= 0 {
		p.errorf(n, key, "must be greater than zero")
		return
	}
	*dst = v
}

// list reads a sequence of values; a single value is a list of one.
func (p *parser) list(n *yaml.Node, key string) ([]string, []*yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}, []*yaml.Node{n}
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, key, "must be a list")
		return nil, nil
	}
	var out []string
	var nodes []*yaml.Node
	for i, item := range n.Content {
		item = resolve(item)
		if s, ok := p.scalar(item, fmt.Sprintf("%s[%d]", key, i)); ok {
			out = append(out, s)
			nodes = append(nodes, item)
		}
	}
	return out, nodes
}

func (p *parser) listeners(n *yaml.Node, key string) []Listener {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, key, "must be a list of listeners")
		return nil
	}
	var out []Listener
	for i, item := range n.Content {
		k := fmt.Sprintf("%s[%d]", key, i)
		item = resolve(item)
		l := Listener{Line: item.Line, Mode: 0o660}
		var addr, unix string
		var tlsNode *yaml.Node
		p.fields(item, k, map[string]func(*yaml.Node, string){
			"address": func(v *yaml.Node, kk string) { p.str(v, kk, &addr) },
			"unix":    func(v *yaml.Node, kk string) { p.str(v, kk, &unix) },
			"tls":     func(v *yaml.Node, kk string) { tlsNode = v },
			"mode": func(v *yaml.Node, kk string) {
				if s, ok := p.scalar(v, kk); ok {
					m, err := strconv.ParseUint(s, 8, 32)
					if err != nil || m > 0o777 {
						p.errorf(v, kk, "must be an octal permission such as \"0660\", not %q", s)
						return
					}
					l.Mode = os.FileMode(m)
				}
			},
		})
		switch {
		case addr != "" && unix != "":
			p.errorf(item, k, "set address or unix, not both")
			continue
		case addr != "":
			if _, port, err := net.SplitHostPort(addr); err != nil {
				p.errorf(item, k+".address", "must be host:port, such as 127.0.0.1:8080 (%v)", err)
				continue
			} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				p.errorf(item, k+".address", "port %q is not a number from 0 to 65535", port)
				continue
			}
			l.Network, l.Address = "tcp", addr
		case unix != "":
			l.Network, l.Address = "unix", unix
		default:
			if item.Kind == yaml.MappingNode {
				p.errorf(item, k, "needs address (TCP) or unix (socket path)")
			}
			continue
		}
		if tlsNode != nil {
			t := &TLS{}
			p.fields(tlsNode, k+".tls", map[string]func(*yaml.Node, string){
				"cert": func(v *yaml.Node, kk string) { p.str(v, kk, &t.Cert) },
				"key":  func(v *yaml.Node, kk string) { p.str(v, kk, &t.Key) },
			})
			if t.Cert == "" || t.Key == "" {
				p.errorf(tlsNode, k+".tls", "needs both cert and key")
			}
			l.TLS = t
		}
		out = append(out, l)
	}
	return out
}

func (p *parser) log(n *yaml.Node, key string, dst *Log) {
	p.fields(n, key, map[string]func(*yaml.Node, string){
		"level": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				if err := dst.Level.UnmarshalText([]byte(s)); err != nil {
					p.errorf(v, k, "must be debug, info, warn or error, not %q", s)
				}
			}
		},
		"format": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				if s != "text" && s != "json" {
					p.errorf(v, k, "must be text or json, not %q", s)
					return
				}
				dst.Format = s
			}
		},
		"output": func(v *yaml.Node, k string) { p.str(v, k, &dst.Output) },
	})
}

func (p *parser) server(n *yaml.Node, key string, dst *Server) {
	p.fields(n, key, map[string]func(*yaml.Node, string){
		"handshake_timeout": func(v *yaml.Node, k string) { p.duration(v, k, &dst.HandshakeTimeout) },
		"shutdown_timeout":  func(v *yaml.Node, k string) { p.duration(v, k, &dst.ShutdownTimeout) },
		"demo":              func(v *yaml.Node, k string) { p.boolean(v, k, &dst.Demo) },
	})
}

// policyNode is a parsed policy block and which keys it set, so a route
// inherits from defaults exactly the keys it does not set itself.
type policyNode struct {
	p   gateway.Policy
	set map[string]bool
}

// policy parses the policy keys of n into a copy of base. extra handles
// keys that are not policy keys (a route's path and app).
func (p *parser) policy(n *yaml.Node, key string, base *policyNode, extra map[string]func(*yaml.Node, string)) policyNode {
	out := policyNode{set: map[string]bool{}}
	if base != nil {
		out.p = base.p
	}
	pol := &out.p
	mark := func(k string, fn func(*yaml.Node, string)) func(*yaml.Node, string) {
		return func(v *yaml.Node, kk string) { out.set[k] = true; fn(v, kk) }
	}
	handlers := map[string]func(*yaml.Node, string){
		"max_message_size": mark("max_message_size", func(v *yaml.Node, k string) { p.size(v, k, &pol.MaxMessageSize) }),
		"origin_check": mark("origin_check", func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				oc, err := gateway.ParseOriginCheck(s)
				if err != nil {
					p.errorf(v, k, "%v", err)
					return
				}
				pol.OriginCheck = oc
			}
		}),
		"trusted_origins": mark("trusted_origins", func(v *yaml.Node, k string) { pol.TrustedOrigins, _ = p.list(v, k) }),
		"public_origin":   mark("public_origin", func(v *yaml.Node, k string) { p.str(v, k, &pol.PublicOrigin) }),
		"trusted_proxies": mark("trusted_proxies", func(v *yaml.Node, k string) {
			vals, nodes := p.list(v, k)
			pol.TrustedProxies, pol.TrustUnixPeers = nil, false
			for i, s := range vals {
				if s == "unix" {
					pol.TrustUnixPeers = true
					continue
				}
				pfx, err := netip.ParsePrefix(s)
				if err != nil {
					a, err2 := netip.ParseAddr(s)
					if err2 != nil {
						p.errorf(nodes[i], fmt.Sprintf("%s[%d]", k, i), "must be an IP address, a CIDR prefix or \"unix\", not %q", s)
						continue
					}
					pfx = netip.PrefixFrom(a, a.BitLen())
				}
				pol.TrustedProxies = append(pol.TrustedProxies, pfx.Masked())
			}
		}),
		"allow_reserved_status_codes": mark("allow_reserved_status_codes", func(v *yaml.Node, k string) { p.boolean(v, k, &pol.AllowReservedStatusCodes) }),
		"subprotocols": mark("subprotocols", func(v *yaml.Node, k string) {
			vals, nodes := p.list(v, k)
			pol.Subprotocols = nil
			for i, s := range vals {
				if !httptoken.IsToken(s) {
					p.errorf(nodes[i], fmt.Sprintf("%s[%d]", k, i), "%q is not a valid subprotocol token", s)
					continue
				}
				pol.Subprotocols = append(pol.Subprotocols, s)
			}
		}),
		"idle_timeout":       mark("idle_timeout", func(v *yaml.Node, k string) { p.duration(v, k, &pol.IdleTimeout) }),
		"keepalive_interval": mark("keepalive_interval", func(v *yaml.Node, k string) { p.duration(v, k, &pol.KeepaliveInterval) }),
		"close_timeout":      mark("close_timeout", func(v *yaml.Node, k string) { p.duration(v, k, &pol.CloseTimeout) }),
		"write_timeout":      mark("write_timeout", func(v *yaml.Node, k string) { p.duration(v, k, &pol.WriteTimeout) }),
		"max_queue": mark("max_queue", func(v *yaml.Node, k string) {
			var n int64
			p.size(v, k, &n)
			if n > math.MaxInt32 {
				p.errorf(v, k, "must be at most 2GiB")
				return
			}
			pol.MaxQueue = int(n)
		}),
		"deflate": mark("deflate", func(v *yaml.Node, k string) { pol.Deflate = p.deflate(v, k) }),
		"slow_consumer": mark("slow_consumer", func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				switch s {
				case "close":
					pol.SlowConsumer = websocket.SlowConsumerClose
				case "drop":
					pol.SlowConsumer = websocket.SlowConsumerDrop
				default:
					p.errorf(v, k, "must be close or drop, not %q", s)
				}
			}
		}),
	}
	for k, fn := range extra {
		handlers[k] = fn
	}
	p.fields(n, key, handlers)
	return out
}

// deflate reads a route's permessage-deflate settings: true or false for
// the defaults or none, or a mapping.
func (p *parser) deflate(n *yaml.Node, key string) *websocket.DeflatePolicy {
	// Defaults when enabled: no context takeover on our side (nothing kept
	// per connection), the client's context kept (its window, up to 32 KiB,
	// is what it takes to decode a client that compresses well).
	d := &websocket.DeflatePolicy{ClientContextTakeover: true}
	if n.Kind == yaml.ScalarNode {
		var on bool
		p.boolean(n, key, &on)
		if !on {
			return nil
		}
		return d
	}
	bits := func(v *yaml.Node, k string, dst *int) {
		if s, ok := p.scalar(v, k); ok {
			b, err := strconv.Atoi(s)
			if err != nil || b < 8 || b > 15 {
				p.errorf(v, k, "must be a window size in bits from 8 to 15, not %q", s)
				return
			}
			*dst = b
		}
	}
	enabled := true
	p.fields(n, key, map[string]func(*yaml.Node, string){
		"enabled":                 func(v *yaml.Node, k string) { p.boolean(v, k, &enabled) },
		"server_context_takeover": func(v *yaml.Node, k string) { p.boolean(v, k, &d.ServerContextTakeover) },
		"client_context_takeover": func(v *yaml.Node, k string) { p.boolean(v, k, &d.ClientContextTakeover) },
		"server_max_window_bits":  func(v *yaml.Node, k string) { bits(v, k, &d.ServerMaxWindowBits) },
		"client_max_window_bits":  func(v *yaml.Node, k string) { bits(v, k, &d.ClientMaxWindowBits) },
		"threshold": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				t, err := ParseSize(s)
				if err != nil || t > math.MaxInt32 {
					p.errorf(v, k, "must be a size in bytes, not %q", s)
					return
				}
				d.Threshold = int(t)
				if t == 0 {
					d.Threshold = 1 // compress everything
				}
			}
		},
		"level": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				l, err := strconv.Atoi(s)
				if err != nil || l < 1 || l > 9 {
					p.errorf(v, k, "must be a compression level from 1 to 9, not %q", s)
					return
				}
				d.Level = l
			}
		},
	})
	if !enabled {
		return nil
	}
	return d
}

// ParseRoute parses one route given as a mapping (YAML or JSON), as
// mod_wsgate turns a <Location>'s directives into one. A route without
// an application is accepted here: like apache-websocket, mod_wsgate
// answers such a location's upgrades with 500, after the 400 checks.
func ParseRoute(name string, data []byte) (*Route, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, p.syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: name, Msg: "empty route"}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{doc.Content[0]}}
	p.allowNoApp = true
	routes := p.routes(seq, "route", &policyNode{})
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	if len(routes) != 1 {
		return nil, &Error{File: name, Msg: "not a route"}
	}
	return &routes[0], nil
}

func (p *parser) routes(n *yaml.Node, key string, defaults *policyNode) []Route {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, key, "must be a list of routes")
		return nil
	}
	var out []Route
	paths := map[string]int{}
	for i, item := range n.Content {
		item = resolve(item)
		k := fmt.Sprintf("%s[%d]", key, i)
		r := Route{Line: item.Line}
		var pathNode *yaml.Node
		pn := p.policy(item, k, defaults, map[string]func(*yaml.Node, string){
			"backend": func(v *yaml.Node, kk string) { r.Backend = p.backend(v, kk) },
			"docroot": func(v *yaml.Node, kk string) { r.Docroot = p.docroot(v, kk) },
			"program": func(v *yaml.Node, kk string) { r.Program = p.program(v, kk) },
			"plugin": func(v *yaml.Node, kk string) {
				r.Plugin = &Plugin{}
				p.fields(v, kk, map[string]func(*yaml.Node, string){
					"library": func(v *yaml.Node, k string) { p.str(v, k, &r.Plugin.Library) },
					"init":    func(v *yaml.Node, k string) { p.str(v, k, &r.Plugin.Init) },
				})
				if (r.Plugin.Library == "" || r.Plugin.Init == "") && v.Kind == yaml.MappingNode {
					p.errorf(v, kk, "needs library (the .so) and init (its initialization function)")
				}
			},
			"path": func(v *yaml.Node, kk string) { pathNode = v; p.str(v, kk, &r.Path) },
			"app": func(v *yaml.Node, kk string) {
				p.str(v, kk, &r.App)
				if r.App != "" {
					if _, ok := gateway.LookupApp(r.App); !ok {
						p.errorf(v, kk, "unknown application %q (known: %s)", r.App, strings.Join(gateway.AppNames(), ", "))
					}
				}
			},
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		r.Policy = pn.p
		switch {
		case r.Path == "":
			p.errorf(item, k+".path", "every route needs a path")
		case !strings.HasPrefix(r.Path, "/"):
			p.errorf(pathNode, k+".path", "must start with /, not %q", r.Path)
		default:
			if prev, dup := paths[r.Path]; dup {
				p.errorf(pathNode, k+".path", "%s is already the path of routes[%d]", r.Path, prev)
			}
			paths[r.Path] = i
		}
		kinds := 0
		for _, set := range []bool{r.App != "", r.Backend != nil, r.Docroot != nil, r.Program != nil, r.Plugin != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds == 0 && !p.allowNoApp && !p.hasKey(item, "backend", "docroot", "program", "plugin"):
			p.errorf(item, k+".app", "route has no application: set app (one of %s), backend, docroot, program or plugin", strings.Join(gateway.AppNames(), ", "))
		case kinds > 1:
			p.errorf(item, k, "set only one of app, backend, docroot, program and plugin")
		}
		if err := r.Policy.Validate(); err != nil {
			for _, e := range splitJoined(err) {
				p.errorf(item, k, "%v", e)
			}
		}
		out = append(out, r)
	}
	return out
}

// static reads the static file directories.
func (p *parser) static(n *yaml.Node, key string) []Static {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, key, "must be a list of {path, dir}")
		return nil
	}
	var out []Static
	for i, item := range n.Content {
		item = resolve(item)
		k := fmt.Sprintf("%s[%d]", key, i)
		st := Static{Line: item.Line}
		p.fields(item, k, map[string]func(*yaml.Node, string){
			"path": func(v *yaml.Node, kk string) { p.str(v, kk, &st.Path) },
			"dir":  func(v *yaml.Node, kk string) { p.str(v, kk, &st.Dir) },
		})
		switch {
		case !strings.HasPrefix(st.Path, "/") || !strings.HasSuffix(st.Path, "/"):
			p.errorf(item, k+".path", "must start and end with /, not %q", st.Path)
		case st.Dir == "":
			p.errorf(item, k+".dir", "needs the directory to serve")
		default:
			if fi, err := os.Stat(st.Dir); err != nil || !fi.IsDir() {
				p.errorf(item, k+".dir", "%s is not a directory", st.Dir)
			}
		}
		out = append(out, st)
	}
	return out
}

// hasKey reports whether mapping n has one of the keys (set but perhaps
// invalid, in which case its own error has been reported).
func (p *parser) hasKey(n *yaml.Node, keys ...string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		for _, k := range keys {
			if n.Content[i].Value == k {
				return true
			}
		}
	}
	return false
}

// producerKeys are the handlers for the keys that describe how to speak
// to a producer, shared by backend and docroot. finish checks what can only
// be checked once the whole mapping is read.
func (p *parser) producerKeys(dst *backend.Config) (keys map[string]func(*yaml.Node, string), finish func()) {
	var raw backend.RawConfig
	var rawOnly []*yaml.Node // delimiter and message_type, which need protocol: raw
	var rawOnlyKeys []string
	finish = func() {
		if dst.Raw == nil {
			for i, n := range rawOnly {
				p.errorf(n, rawOnlyKeys[i], "only applies with protocol: raw")
			}
		}
	}
	return map[string]func(*yaml.Node, string){
		"mode": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				switch s {
				case "mux":
					dst.Mode = backend.Mux
				case "per-client":
					dst.Mode = backend.PerClient
				default:
					p.errorf(v, k, "must be mux or per-client, not %q", s)
				}
			}
		},
		"connections":  func(v *yaml.Node, k string) { p.integer(v, k, 1, 1024, &dst.Connections) },
		"open_timeout": func(v *yaml.Node, k string) { p.duration(v, k, &dst.OpenTimeout) },
		"headers": func(v *yaml.Node, k string) {
			hs, _ := p.list(v, k)
			dst.Headers = append([]string{}, hs...)
		},
		"queue": func(v *yaml.Node, k string) {
			var n int64
			p.size(v, k, &n)
			if n > math.MaxInt32 {
				p.errorf(v, k, "must be at most 2GiB")
				return
			}
			dst.QueueBytes = int(n)
		},
		"protocol": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				switch s {
				case "framed":
					dst.Raw = nil
				case "raw":
					dst.Raw = &raw
					dst.Mode = backend.PerClient
				default:
					p.errorf(v, k, "must be framed or raw, not %q", s)
				}
			}
		},
		"delimiter": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				switch s {
				case "none":
					raw.Split = false
				case "newline":
					raw.Split, raw.Delimiter = true, '\n'
				case "nul":
					raw.Split, raw.Delimiter = true, 0
				default:
					p.errorf(v, k, "must be none, newline or nul, not %q", s)
				}
				rawOnly, rawOnlyKeys = append(rawOnly, v), append(rawOnlyKeys, k)
			}
		},
		"message_type": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				switch s {
				case "text":
					raw.Binary = false
				case "binary":
					raw.Binary = true
				default:
					p.errorf(v, k, "must be text or binary, not %q", s)
				}
				rawOnly, rawOnlyKeys = append(rawOnly, v), append(rawOnlyKeys, k)
			}
		},
	}, finish
}

func (p *parser) integer(n *yaml.Node, key string, lo, hi int, dst *int) {
	if s, ok := p.scalar(n, key); ok {
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			p.errorf(n, key, "must be a number from %d to %d, not %q", lo, hi, s)
			return
		}
		*dst = v
	}
}

// backend reads a route's producer.
func (p *parser) backend(n *yaml.Node, key string) *backend.Config {
	c := &backend.Config{}
	keys, finish := p.producerKeys(c)
	keys["socket"] = func(v *yaml.Node, k string) { c.Network = "unix"; p.str(v, k, &c.Address) }
	keys["address"] = func(v *yaml.Node, k string) {
		c.Network = "tcp"
		p.str(v, k, &c.Address)
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			p.errorf(v, k, "must be host:port, such as 127.0.0.1:9000 (%v)", err)
		}
	}
	p.fields(n, key, keys)
	finish()
	if c.Address == "" && n.Kind == yaml.MappingNode {
		p.errorf(n, key, "needs socket (a UNIX socket path) or address (host:port)")
	}
	if c.Raw != nil && c.Mode == backend.Mux && p.hasKey(n, "mode") {
		p.errorf(n, key+".mode", "protocol: raw needs mode: per-client")
	}
	return c
}

// docroot reads a route's socket docroot.
func (p *parser) docroot(n *yaml.Node, key string) *docroot.Config {
	c := &docroot.Config{}
	keys, finish := p.producerKeys(&c.Producer)
	keys["root"] = func(v *yaml.Node, k string) { p.str(v, k, &c.Root) }
	glob := func(dst *[]string) func(*yaml.Node, string) {
		return func(v *yaml.Node, k string) {
			vals, nodes := p.list(v, k)
			for i, g := range vals {
				if _, err := path.Match(g, ""); err != nil {
					p.errorf(nodes[i], fmt.Sprintf("%s[%d]", k, i), "bad glob %q: %v", g, err)
				}
			}
			*dst = vals
		}
	}
	keys["allow"] = glob(&c.Allow)
	keys["deny"] = glob(&c.Deny)
	p.fields(n, key, keys)
	finish()
	if c.Root == "" && n.Kind == yaml.MappingNode {
		p.errorf(n, key+".root", "needs the directory of sockets")
	}
	return c
}

// program reads a route's program backend.
func (p *parser) program(n *yaml.Node, key string) *program.Config {
	c := &program.Config{}
	p.fields(n, key, map[string]func(*yaml.Node, string){
		"command": func(v *yaml.Node, k string) {
			if v.Kind == yaml.ScalarNode {
				c.Command = strings.Fields(v.Value)
				return
			}
			c.Command, _ = p.list(v, k)
		},
		"dir": func(v *yaml.Node, k string) { p.str(v, k, &c.Dir) },
		"env": func(v *yaml.Node, k string) {
			if v.Kind != yaml.MappingNode {
				p.errorf(v, k, "must be a mapping of NAME: value")
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				c.Env = append(c.Env, v.Content[i].Value+"="+v.Content[i+1].Value)
			}
		},
		"mode": func(v *yaml.Node, k string) {
			if s, ok := p.scalar(v, k); ok {
				switch s {
				case "line":
					c.Binary = false
				case "binary":
					c.Binary = true
				default:
					p.errorf(v, k, "must be line or binary, not %q", s)
				}
			}
		},
		"max_processes": func(v *yaml.Node, k string) { p.integer(v, k, 1, 1<<20, &c.MaxProcesses) },
		"kill_grace":    func(v *yaml.Node, k string) { p.duration(v, k, &c.KillGrace) },
	})
	if len(c.Command) == 0 && n.Kind == yaml.MappingNode {
		p.errorf(n, key+".command", "needs the program to run")
	}
	return c
}

func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
