package backend

import (
	"net"

	"github.com/wsgate/wsgate/apps/upstream"
	"github.com/wsgate/wsgate/apps/wsoverhttp"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
)

func init() {
	config.RegisterKind(config.Kind{
		Key: "backend",
		Doc: "a producer behind a UNIX or TCP socket, framed protocol or raw bytes: backend: {socket: PATH}; an HTTP application speaking WebSocket-over-HTTP: backend: {http: URL}; or WebSocket servers, proxied with every frame checked: backend: {upstream: [ws://HOST/PATH]}",
		Decode: func(d *config.Decoder) gateway.Handler {
			mark := d.ErrorCount()
			if d.Has("upstream") {
				cfg := upstream.Decode(d)
				return d.Build(mark, func() (gateway.Handler, error) { return upstream.New(cfg) })
			}
			if d.Has("http") || d.Has("subrequest") {
				cfg := wsoverhttp.Decode(d)
				return d.Build(mark, func() (gateway.Handler, error) { return wsoverhttp.New(cfg) })
			}
			cfg := Decode(d)
			return d.Build(mark, func() (gateway.Handler, error) { return NewHandler(cfg) })
		},
	})
}

// NewHandler returns the handler for cfg: a Backend, or a Raw in raw mode.
func NewHandler(cfg Config) (gateway.Handler, error) {
	if cfg.Mode == Direct {
		return NewDirect(cfg)
	}
	if cfg.Raw != nil {
		return NewRaw(cfg)
	}
	return New(cfg)
}

// Decode reads a route's backend block:
//
//	backend: {socket: /run/chat.sock, mode: mux, connections: 2, ...}
//
// It reports problems through d.
func Decode(d *config.Decoder) Config {
	var c Config
	fields, finish := ProducerFields(&c)
	fields["socket"] = func(v *config.Decoder) { c.Network = "unix"; v.String(&c.Address) }
	fields["address"] = func(v *config.Decoder) {
		c.Network = "tcp"
		v.String(&c.Address)
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			v.Errorf("must be host:port, such as 127.0.0.1:9000 (%v)", err)
		}
	}
	var holdAt *config.Decoder
	fields["hold"] = func(v *config.Decoder) { v.Duration(&c.Hold); holdAt = v }
	d.Fields(fields)
	finish(d)
	if holdAt != nil && c.Hold > 0 && (c.Mode != Mux || c.Raw != nil) {
		holdAt.Errorf("needs mode: mux (a per-client or direct producer connection ends with its client)")
	}
	if c.Address == "" && d.IsMapping() {
		d.Errorf("needs socket (a UNIX socket path) or address (host:port)")
	}
	if c.Raw != nil && c.Mode == Mux && d.Has("mode") {
		d.ErrorfIn("mode", "protocol: raw needs mode: per-client")
	}
	return c
}

// ProducerFields are the keys that say how to speak to a producer, shared
// by a backend and a socket docroot (whose sockets are producers). finish
// checks what can only be checked once the whole block is read.
func ProducerFields(dst *Config) (fields map[string]func(*config.Decoder), finish func(d *config.Decoder)) {
	var raw RawConfig
	var rawOnly []*config.Decoder // delimiter and message_type, which need protocol: raw
	var directAt *config.Decoder  // mode: direct
	finish = func(*config.Decoder) {
		if directAt != nil && dst.Raw != nil {
			directAt.Errorf("direct hands the client's socket to the producer, which then speaks WebSocket frames: not with protocol: raw")
		}
		if directAt != nil && dst.Network == "tcp" {
			directAt.Errorf("direct passes the client's socket over a UNIX socket (SCM_RIGHTS): it needs socket:, not address:")
		}
		if dst.Raw == nil {
			for _, v := range rawOnly {
				v.Errorf("only applies with protocol: raw")
			}
		}
	}
	return map[string]func(*config.Decoder){
		"mode": func(v *config.Decoder) {
			var s string
			v.OneOf(&s, "mux", "per-client", "direct")
			switch s {
			case "mux":
				dst.Mode = Mux
			case "per-client":
				dst.Mode = PerClient
			case "direct":
				dst.Mode = Direct
				directAt = v
			}
		},
		"connections":  func(v *config.Decoder) { v.Int(1, 1024, &dst.Connections) },
		"open_timeout": func(v *config.Decoder) { v.Duration(&dst.OpenTimeout) },
		"required":     func(v *config.Decoder) { v.Bool(&dst.Required) },
		"headers":      func(v *config.Decoder) { dst.Headers = append([]string{}, v.Strings()...) },
		"queue":        func(v *config.Decoder) { v.IntSize(&dst.QueueBytes) },
		"protocol": func(v *config.Decoder) {
			var s string
			v.OneOf(&s, "framed", "raw")
			switch s {
			case "framed":
				dst.Raw = nil
			case "raw":
				dst.Raw = &raw
				dst.Mode = PerClient
			}
		},
		"delimiter": func(v *config.Decoder) {
			var s string
			v.OneOf(&s, "none", "newline", "nul")
			switch s {
			case "none":
				raw.Split = false
			case "newline":
				raw.Split, raw.Delimiter = true, '\n'
			case "nul":
				raw.Split, raw.Delimiter = true, 0
			}
			rawOnly = append(rawOnly, v)
		},
		"message_type": func(v *config.Decoder) {
			var s string
			v.OneOf(&s, "text", "binary")
			raw.Binary = s == "binary"
			rawOnly = append(rawOnly, v)
		},
	}, finish
}
