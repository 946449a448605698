package upstream

import (
	"crypto/tls"
	"net/url"
	"strings"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/websocket"
)

// Config is a route's upstream block:
//
//	backend:
//	  upstream: [ws://10.0.0.5:3000/socket, wss://chat.internal/ws]
//	  balance: round_robin | least_conn | hash(client_ip) | hash(cookie:NAME) | hash(header:NAME)
//	  health: {interval: 10s, path: /health}
//	  connect_timeout: 5s
//	  tls: {ca: FILE, server_name: NAME, cert: FILE, key: FILE}
//	  headers: {X-Gateway: wsgate}
//	  forward_headers: [Cookie, Authorization]
//	  deflate: true | {...}
type Config struct {
	URLs    []*url.URL
	Balance string
	// HashOn is what hash(...) hashes: client_ip, cookie:NAME or
	// header:NAME.
	HashOn         string
	HealthInterval time.Duration
	HealthPath     string
	ConnectTimeout time.Duration
	// FailTimeout is how long an upstream that could not be reached is
	// passed over (nginx's fail_timeout).
	FailTimeout time.Duration
	TLS         *tls.Config
	// Headers are added to every upstream handshake; ForwardHeaders are
	// the client's request headers passed on (Origin always).
	Headers        map[string]string
	ForwardHeaders []string
	// Deflate, when set, is offered to the upstream; the client's side is
	// the route's own deflate, negotiated apart.
	Deflate *websocket.DeflatePolicy
}

// Defaults.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultFailTimeout    = 10 * time.Second
)

// DefaultForwardHeaders are the client's headers an upstream gets unless
// forward_headers says otherwise: what an application behind nginx's or
// httpd's tunnel sees of its users.
var DefaultForwardHeaders = []string{"Cookie", "Authorization", "User-Agent", "Accept-Language"}

// Decode reads a route's backend block that names upstreams (the backend
// kind hands it over when it has upstream).
func Decode(d *config.Decoder) Config {
	c := Config{Balance: "round_robin", ConnectTimeout: DefaultConnectTimeout, FailTimeout: DefaultFailTimeout, ForwardHeaders: DefaultForwardHeaders}
	var tlsAt *config.Decoder
	var ca, serverName, cert, key string
	d.Fields(map[string]func(*config.Decoder){
		"upstream": func(v *config.Decoder) {
			for _, item := range v.Items() {
				s, ok := item.Scalar()
				if !ok {
					continue
				}
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
					item.Errorf("%q is not a ws:// or wss:// URL", s)
					continue
				}
				c.URLs = append(c.URLs, u)
			}
		},
		"balance": func(v *config.Decoder) {
			s, ok := v.Scalar()
			if !ok {
				return
			}
			switch {
			case s == "round_robin" || s == "least_conn":
				c.Balance = s
			case strings.HasPrefix(s, "hash(") && strings.HasSuffix(s, ")"):
				on := s[5 : len(s)-1]
				if on != "client_ip" && !(strings.HasPrefix(on, "cookie:") && len(on) > 7) && !(strings.HasPrefix(on, "header:") && len(on) > 7) {
					v.Errorf("hash of %q: hash(client_ip), hash(cookie:NAME) or hash(header:NAME)", on)
					return
				}
				c.Balance, c.HashOn = "hash", on
			default:
				v.Errorf("must be round_robin, least_conn or hash(client_ip|cookie:NAME|header:NAME), not %q", s)
			}
		},
		"health": func(v *config.Decoder) {
			v.Fields(map[string]func(*config.Decoder){
				"interval": func(v *config.Decoder) { v.Duration(&c.HealthInterval) },
				"path":     func(v *config.Decoder) { v.String(&c.HealthPath) },
			})
		},
		"connect_timeout": func(v *config.Decoder) { v.Duration(&c.ConnectTimeout) },
		"fail_timeout":    func(v *config.Decoder) { v.Duration(&c.FailTimeout) },
		"tls": func(v *config.Decoder) {
			tlsAt = v
			v.Fields(map[string]func(*config.Decoder){
				"ca":          func(v *config.Decoder) { v.String(&ca) },
				"server_name": func(v *config.Decoder) { v.String(&serverName) },
				"cert":        func(v *config.Decoder) { v.String(&cert) },
				"key":         func(v *config.Decoder) { v.String(&key) },
			})
		},
		"headers": func(v *config.Decoder) {
			c.Headers = map[string]string{}
			for _, kv := range v.StringMap() {
				k, val, _ := strings.Cut(kv, "=")
				c.Headers[k] = val
			}
		},
		"forward_headers": func(v *config.Decoder) { c.ForwardHeaders = v.Strings() },
		"deflate": func(v *config.Decoder) {
			if s, ok := v.Scalar(); ok {
				switch s {
				case "true", "on", "On":
					c.Deflate = &websocket.DeflatePolicy{}
				case "false", "off", "Off":
				default:
					v.Errorf("must be true or false")
				}
			}
		},
	})
	if len(c.URLs) == 0 && d.IsMapping() {
		d.ErrorfIn("upstream", "list at least one ws:// or wss:// URL")
	}
	if tlsAt != nil {
		cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
		if ca != "" {
			pool, err := config.ReadCAPool(ca)
			if err != nil {
				tlsAt.ErrorfIn("ca", "%v", err)
			}
			cfg.RootCAs = pool
		}
		if (cert == "") != (key == "") {
			tlsAt.Errorf("needs both cert and key for a client certificate")
		} else if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				tlsAt.Errorf("client certificate: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		c.TLS = cfg
	}
	return c
}
