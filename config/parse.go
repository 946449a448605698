package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate/gateway"
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
// problems found are returned together, each an *Error. Parsing performs
// no I/O beyond checking that static directories exist: the applications
// are built but not provisioned.
func Parse(name string, data []byte) (*Config, error) {
	cfg, err := ParsePartial(name, data)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// ParsePartial is Parse that also returns what could be parsed when there
// are errors (nil only for a file that is not YAML, or empty): the
// listeners and routes without errors, for wsgate check to go on to the
// checks of files and applications and report every stage at once.
func ParsePartial(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, p.syntaxError(data, err)
	}
	cfg := &Config{
		File: name,
		Log:  Log{Level: slog.LevelInfo, Format: "text", Output: "stderr", Access: true},
		Server: Server{
			HandshakeTimeout:          DefaultHandshakeTimeout,
			ShutdownTimeout:           DefaultShutdownTimeout,
			AutoMaxConnections:        true,
			MaxConnectionsPerIP:       DefaultMaxConnectionsPerIP,
			MaxHeaderBytes:            DefaultMaxHeaderBytes,
			MaxHeaderCount:            DefaultMaxHeaderCount,
			MaxPendingHandshakes:      DefaultMaxPendingHandshakes,
			MaxPendingHandshakesPerIP: DefaultMaxPendingHandshakesPerIP,
			MaxIdleHTTPPerIP:          DefaultMaxIdleHTTPPerIP,
			MaxRequestsPerConnection:  DefaultMaxRequestsPerConnection,
			IPv6Prefix:                gateway.DefaultIPv6Prefix,
			AutoMemoryBudget:          true,
			ReturnMemory:              true,
			HTTPIdleTimeout:           DefaultHTTPIdleTimeout,
			UpgradeDrain:              "close",
			UpgradeDrainTimeout:       DefaultUpgradeDrainTimeout,
		},
		Admin: Admin{Network: "tcp", Address: DefaultAdminAddress, MaxBody: DefaultAdminMaxBody, BodyTimeout: DefaultAdminBodyTimeout,
			MaxConnections: DefaultAdminMaxConnections},
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: name, Msg: "the configuration is empty"}
	}
	root := p.decoder(doc.Content[0], "")
	defaults := policyBlock{p: DaemonDefaults}
	var routes *Decoder
	root.Fields(map[string]func(*Decoder){
		"listen":   func(d *Decoder) { cfg.Listeners = listeners(d) },
		"log":      func(d *Decoder) { logSection(d, &cfg.Log) },
		"server":   func(d *Decoder) { serverSection(d, &cfg.Server) },
		"defaults": func(d *Decoder) { defaults = policy(d, &defaults, nil) },
		"admin":    func(d *Decoder) { adminSection(d, &cfg.Admin) },
		"cluster":  func(d *Decoder) { clusterSection(d, &cfg.Cluster) },
		"routes":   func(d *Decoder) { routes = d },
		"static":   func(d *Decoder) { cfg.Static = static(d) },
	})
	if routes != nil {
		cfg.Routes = parseRoutes(routes, &defaults, false)
	} else if root.IsMapping() {
		p.errorAt(root.Line(), "routes", "no routes are configured")
	}
	if len(cfg.Listeners) == 0 && root.IsMapping() {
		cfg.Listeners = []Listener{{Network: "tcp", Address: "127.0.0.1:8080"}}
	}
	handOffWithTLS(p, cfg)
	conflicts(p, cfg)
	return cfg, errors.Join(p.errs...)
}

// conflicts finds the addresses that cannot all be bound, without binding
// them: the same listening address twice (or a port both on a wildcard
// address and on another), and the admin listener on a public one's.
func conflicts(p *parser, cfg *Config) {
	type bound struct {
		key  string
		line int
		addr string
	}
	var all []bound
	// The admin listener first: when it is at its default address (no
	// line of its own), the listener that takes it gets the error.
	if cfg.Admin.Address != "" && cfg.Admin.Address != "off" {
		all = append(all, bound{"admin.listen", cfg.Admin.Line, cfg.Admin.Network + " " + cfg.Admin.Address})
	}
	for i, l := range cfg.Listeners {
		all = append(all, bound{fmt.Sprintf("listen[%d]", i), l.Line, l.Network + " " + l.Address})
	}
	for i := range all {
		for j := range i {
			if !clash(all[j].addr, all[i].addr) {
				continue
			}
			where := fmt.Sprintf("line %d", all[j].line)
			if all[j].line == 0 {
				where = "its default"
			}
			p.errorAt(all[i].line, all[i].key, fmt.Sprintf("%s is %s's address too (%s): one of them cannot listen",
				strings.TrimPrefix(strings.TrimPrefix(all[i].addr, "tcp "), "unix "), all[j].key, where))
		}
	}
}

// clash reports whether two listening addresses ("tcp host:port", "unix
// path") cannot both be bound: the same socket path, or the same port on
// the same host or with a wildcard host on either side. Port 0 is any
// free port, and never clashes.
func clash(a, b string) bool {
	na, aa, _ := strings.Cut(a, " ")
	nb, ab, _ := strings.Cut(b, " ")
	if na != nb {
		return false
	}
	if na == "unix" {
		return aa == ab
	}
	ha, pa, err1 := net.SplitHostPort(aa)
	hb, pb, err2 := net.SplitHostPort(ab)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

func listeners(d *Decoder) []Listener {
	if d.n.Kind != yaml.SequenceNode {
		d.Errorf("must be a list of listeners")
		return nil
	}
	var out []Listener
	for _, item := range d.Items() {
		l := Listener{Line: item.Line(), Mode: 0o660}
		var addr, unix string
		var tlsBlock *Decoder
		item.Fields(map[string]func(*Decoder){
			"address": func(v *Decoder) { v.String(&addr) },
			"unix":    func(v *Decoder) { v.String(&unix) },
			"tls":     func(v *Decoder) { tlsBlock = v },
			"mode": func(v *Decoder) {
				if s, ok := v.Scalar(); ok {
					m, err := strconv.ParseUint(s, 8, 32)
					if err != nil || m > 0o777 {
						v.Errorf("must be an octal permission such as \"0660\", not %q", s)
						return
					}
					l.Mode = os.FileMode(m)
				}
			},
		})
		switch {
		case addr != "" && unix != "":
			item.Errorf("set address or unix, not both")
			continue
		case addr != "":
			if _, port, err := net.SplitHostPort(addr); err != nil {
				item.ErrorfIn("address", "must be host:port, such as 127.0.0.1:8080 (%v)", err)
				continue
			} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				item.ErrorfIn("address", "port %q is not a number from 0 to 65535", port)
				continue
			}
			l.Network, l.Address = "tcp", addr
		case unix != "":
			l.Network, l.Address = "unix", unix
		default:
			if item.IsMapping() {
				item.Errorf("needs address (TCP) or unix (socket path)")
			}
			continue
		}
		if tlsBlock != nil {
			l.TLS = tlsSection(tlsBlock, true)
		}
		out = append(out, l)
	}
	return out
}

// tlsSection reads a listener's tls block; records says whether it may
// choose its record layer (the admin listener's may not).
func tlsSection(d *Decoder, records bool) *TLS {
	t := &TLS{RecordLayer: RecordLayerGo, Line: d.Line()}
	fields := map[string]func(*Decoder){
		"cert":        func(v *Decoder) { v.String(&t.Cert); t.CertLine = v.Line() },
		"key":         func(v *Decoder) { v.String(&t.Key); t.KeyLine = v.Line() },
		"client_ca":   func(v *Decoder) { v.String(&t.ClientCA); t.ClientCALine = v.Line() },
		"client_auth": func(v *Decoder) { v.OneOf(&t.ClientAuth, ClientAuthRequire, ClientAuthOptional) },
	}
	if records {
		fields["record_layer"] = func(v *Decoder) { v.OneOf(&t.RecordLayer, RecordLayerGo, RecordLayerWsgate) }
	}
	d.Fields(fields)
	if t.Cert == "" || t.Key == "" {
		d.Errorf("needs both cert and key")
	}
	switch {
	case t.ClientCA != "" && t.ClientAuth == "":
		t.ClientAuth = ClientAuthRequire
	case t.ClientCA == "" && t.ClientAuth != "":
		d.ErrorfIn("client_ca", "client_auth needs client_ca: the CAs that sign the client certificates")
	}
	return t
}

func logSection(d *Decoder, dst *Log) {
	dst.Line = d.Line()
	d.Fields(map[string]func(*Decoder){
		"level": func(v *Decoder) {
			if s, ok := v.Scalar(); ok {
				if err := dst.Level.UnmarshalText([]byte(s)); err != nil {
					v.Errorf("must be debug, info, warn or error, not %q", s)
				}
			}
		},
		"format": func(v *Decoder) { v.OneOf(&dst.Format, "text", "json") },
		"output": func(v *Decoder) { v.String(&dst.Output) },
		"access": func(v *Decoder) { v.Bool(&dst.Access) },
	})
}

func serverSection(d *Decoder, dst *Server) {
	// A count that may be 0 (off) or, for max_connections, auto.
	count := func(dst *int) func(*Decoder) {
		return func(v *Decoder) { v.Int(0, 1<<30, dst) }
	}
	d.Fields(map[string]func(*Decoder){
		"handshake_timeout": func(v *Decoder) { v.Duration(&dst.HandshakeTimeout) },
		"shutdown_timeout":  func(v *Decoder) { v.Duration(&dst.ShutdownTimeout) },
		"demo":              func(v *Decoder) { v.Bool(&dst.Demo) },
		"max_connections": func(v *Decoder) {
			if s, ok := v.Scalar(); ok && s == "auto" {
				dst.AutoMaxConnections = true
				return
			}
			dst.AutoMaxConnections = false
			v.Int(0, 1<<30, &dst.MaxConnections)
		},
		"max_connections_per_ip": count(&dst.MaxConnectionsPerIP),
		"handshake_rate_per_ip": func(v *Decoder) {
			if s, ok := v.Scalar(); ok {
				r, err := strconv.ParseFloat(s, 64)
				if err != nil || r < 0 || r > 1e6 {
					v.Errorf("must be a number of handshakes per second (0: no limit), not %q", s)
					return
				}
				dst.HandshakeRatePerIP = r
			}
		},
		"handshake_burst_per_ip": count(&dst.HandshakeBurstPerIP),
		"max_header_bytes": func(v *Decoder) {
			if s, ok := v.Scalar(); ok && (s == "0" || s == "off") {
				v.Errorf("cannot be turned off: a request's head is read whole before anything else, so it must have a bound (from 1KiB to 1MiB)")
				return
			}
			var n int64
			v.Size(&n)
			if n > 0 && (n < 1024 || n > 1<<20) {
				v.Errorf("must be from 1KiB to 1MiB")
				return
			}
			dst.MaxHeaderBytes = int(n)
		},
		"max_header_count": func(v *Decoder) {
			if s, ok := v.Scalar(); ok && (s == "0" || s == "off") {
				v.Errorf("cannot be turned off: every header field is kept until the handshake is done, so their number must have a bound (from 1 to 10000)")
				return
			}
			v.Int(1, 10000, &dst.MaxHeaderCount)
		},
		"max_pending_handshakes":        count(&dst.MaxPendingHandshakes),
		"max_pending_handshakes_per_ip": count(&dst.MaxPendingHandshakesPerIP),
		"max_idle_http_per_ip":          count(&dst.MaxIdleHTTPPerIP),
		"max_requests_per_connection":   count(&dst.MaxRequestsPerConnection),
		"ipv6_prefix":                   func(v *Decoder) { v.Int(16, 128, &dst.IPv6Prefix) },
		"http_idle_timeout":             func(v *Decoder) { v.Duration(&dst.HTTPIdleTimeout) },
		"memory_limit": func(v *Decoder) {
			if s, ok := v.Scalar(); ok && (s == "0" || s == "off") {
				dst.MemoryLimit = 0
				return
			}
			v.Size(&dst.MemoryLimit)
		},
		"memory_budget": func(v *Decoder) {
			if s, ok := v.Scalar(); ok && (s == "auto") {
				dst.AutoMemoryBudget, dst.MemoryBudget = true, 0
				return
			}
			dst.AutoMemoryBudget = false
			if s, ok := v.Scalar(); ok && (s == "0" || s == "off") {
				dst.MemoryBudget = 0
				return
			}
			v.Size(&dst.MemoryBudget)
		},
		"return_memory": func(v *Decoder) { v.Bool(&dst.ReturnMemory) },
		"upgrade": func(v *Decoder) {
			v.Fields(map[string]func(*Decoder){
				"drain":         func(v *Decoder) { v.OneOf(&dst.UpgradeDrain, "close", "keep") },
				"drain_timeout": func(v *Decoder) { v.Duration(&dst.UpgradeDrainTimeout) },
			})
		},
	})
}

func adminSection(d *Decoder, dst *Admin) {
	dst.Line = d.Line()
	d.Fields(map[string]func(*Decoder){
		"hosts":           func(v *Decoder) { dst.Hosts = v.Strings() },
		"max_body":        func(v *Decoder) { v.Size(&dst.MaxBody) },
		"body_timeout":    func(v *Decoder) { v.Duration(&dst.BodyTimeout) },
		"max_connections": func(v *Decoder) { v.Int(1, 1<<20, &dst.MaxConnections) },
		"tls":             func(v *Decoder) { dst.TLS = tlsSection(v, false) },
		"auth": func(v *Decoder) {
			a := &AdminAuth{Line: v.Line()}
			v.Fields(map[string]func(*Decoder){
				"bearer_token_file":   func(v *Decoder) { v.String(&a.BearerTokenFile) },
				"basic_file":          func(v *Decoder) { v.String(&a.BasicFile) },
				"client_certificates": func(v *Decoder) { v.Bool(&a.ClientCertificates) },
				"public_reads":        func(v *Decoder) { v.Bool(&a.PublicReads) },
			})
			if a.BearerTokenFile == "" && a.BasicFile == "" && !a.ClientCertificates && v.IsMapping() {
				v.Errorf("set bearer_token_file, basic_file or client_certificates")
			}
			dst.Auth = a
		},
		"listen": func(v *Decoder) {
			s, ok := v.Scalar()
			switch {
			case !ok:
			case s == "off" || s == "false":
				dst.Network, dst.Address = "", ""
			case strings.HasPrefix(s, "unix:"):
				dst.Network, dst.Address = "unix", strings.TrimPrefix(s, "unix:")
			default:
				if _, port, err := net.SplitHostPort(s); err != nil {
					v.Errorf("must be host:port, unix:PATH or off (%v)", err)
				} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
					v.Errorf("port %q is not a number from 0 to 65535", port)
				} else {
					dst.Network, dst.Address = "tcp", s
				}
			}
		},
	})
	if a := dst.Auth; a != nil && a.ClientCertificates && (dst.TLS == nil || dst.TLS.ClientCA == "") {
		d.ErrorfIn("auth.client_certificates", "needs admin.tls with client_ca, the CAs that sign the operators' certificates")
	}
	if dst.TLS != nil && dst.Network == "unix" {
		d.ErrorfIn("tls", "a UNIX socket admin listener is not served over TLS")
	}
}

// ParseCluster parses a cluster block on its own (JSON or YAML), as
// mod_wsgate's WsgateCluster directives describe one, with the daemon's
// checks and messages; the files it names are checked too.
func ParseCluster(name string, data []byte) (Cluster, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Cluster{}, p.syntaxError(data, err)
	}
	var c Cluster
	if len(doc.Content) > 0 {
		clusterSection(p.decoder(doc.Content[0], "cluster"), &c)
	}
	if err := errors.Join(p.errs...); err != nil {
		return Cluster{}, err
	}
	cfg := &Config{File: name, Cluster: c}
	return c, cfg.CheckFiles()
}

func clusterSection(d *Decoder, dst *Cluster) {
	dst.Line = d.Line()
	d.Fields(map[string]func(*Decoder){
		"nats": func(v *Decoder) {
			dst.URLs = v.Strings()
			for _, u := range dst.URLs {
				if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") && !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
					v.Errorf("%q is not a NATS URL (nats://host:port, tls://, ws://, wss://)", u)
				}
			}
		},
		"name":        func(v *Decoder) { v.String(&dst.Name) },
		"prefix":      func(v *Decoder) { v.String(&dst.Prefix) },
		"credentials": func(v *Decoder) { v.String(&dst.Credentials) },
		"nkey":        func(v *Decoder) { v.String(&dst.NKey) },
		"user":        func(v *Decoder) { v.String(&dst.User) },
		"password":    func(v *Decoder) { v.String(&dst.Password) },
		"token":       func(v *Decoder) { v.String(&dst.Token) },
		"buffer":      func(v *Decoder) { v.Size(&dst.Buffer) },
		"tls": func(v *Decoder) {
			v.Fields(map[string]func(*Decoder){
				"ca":   func(v *Decoder) { v.String(&dst.CA) },
				"cert": func(v *Decoder) { v.String(&dst.Cert) },
				"key":  func(v *Decoder) { v.String(&dst.Key) },
			})
		},
	})
	if len(dst.URLs) == 0 && d.IsMapping() {
		d.Errorf("needs nats: the URLs of the NATS servers")
	}
	if strings.ContainsAny(dst.Prefix, " .*>") {
		d.ErrorfIn("prefix", "must be one subject token: no spaces, dots, * or >")
	}
}

// static reads the static file directories.
func static(d *Decoder) []Static {
	if d.n.Kind != yaml.SequenceNode {
		d.Errorf("must be a list of {path, dir}")
		return nil
	}
	var out []Static
	for _, item := range d.Items() {
		st := Static{Line: item.Line()}
		item.Fields(map[string]func(*Decoder){
			"path": func(v *Decoder) { v.String(&st.Path) },
			"dir":  func(v *Decoder) { v.String(&st.Dir) },
		})
		switch {
		case !strings.HasPrefix(st.Path, "/") || !strings.HasSuffix(st.Path, "/"):
			item.ErrorfIn("path", "must start and end with /, not %q", st.Path)
		case st.Dir == "":
			item.ErrorfIn("dir", "needs the directory to serve")
		default:
			if fi, err := os.Stat(st.Dir); err != nil || !fi.IsDir() {
				item.ErrorfIn("dir", "%s is not a directory", st.Dir)
			}
		}
		out = append(out, st)
	}
	return out
}

// handOffWithTLS refuses a route that hands client sockets to its backend
// (mode: direct) in a configuration with a TLS listener, as ouistiti
// does: the backend would get the socket in the middle of a TLS session it
// cannot continue. (A TLS client is also refused at run time.)
func handOffWithTLS(p *parser, cfg *Config) {
	for i, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		for j, r := range cfg.Routes {
			if _, ok := r.Handler.(gateway.HandOff); ok {
				p.errorAt(r.Line, fmt.Sprintf("routes[%d].%s.mode", j, r.Kind),
					fmt.Sprintf("direct hands the client's TCP socket to the backend, which cannot continue a TLS session: not allowed with a TLS listener (listen[%d], line %d)", i, l.Line))
			}
		}
		return
	}
}
