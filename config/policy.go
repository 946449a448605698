package config

import (
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/httptoken"
	"github.com/wsgate/wsgate/websocket"
)

// policyBlock is a parsed policy block and which keys it set, so a route
// inherits from defaults exactly the keys it does not set itself.
type policyBlock struct {
	p   gateway.Policy
	set map[string]bool
}

// policyKeys are the keys a route and defaults share, with their readers.
var policyKeys = map[string]func(d *Decoder, pol *gateway.Policy){
	"max_message_size": func(d *Decoder, pol *gateway.Policy) {
		if s, ok := d.Scalar(); ok && (s == "0" || s == "off") {
			d.Errorf("cannot be turned off: every message is held whole before it is delivered, so without a bound one client could hold all memory; set a large size (for example 1GiB) instead")
			return
		}
		d.Size(&pol.MaxMessageSize)
	},
	"origin_check": func(d *Decoder, pol *gateway.Policy) {
		if s, ok := d.Scalar(); ok {
			oc, err := gateway.ParseOriginCheck(s)
			if err != nil {
				d.Errorf("%v", err)
				return
			}
			pol.OriginCheck = oc
		}
	},
	"trusted_origins": func(d *Decoder, pol *gateway.Policy) { pol.TrustedOrigins = d.Strings() },
	"public_origin":   func(d *Decoder, pol *gateway.Policy) { d.String(&pol.PublicOrigin) },
	"trusted_proxies": func(d *Decoder, pol *gateway.Policy) {
		pol.TrustedProxies, pol.TrustUnixPeers = nil, false
		for _, item := range d.Items() {
			s, ok := item.Scalar()
			if !ok {
				continue
			}
			if s == "unix" {
				pol.TrustUnixPeers = true
				continue
			}
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				a, err2 := netip.ParseAddr(s)
				if err2 != nil {
					item.Errorf("must be an IP address, a CIDR prefix or \"unix\", not %q", s)
					continue
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			pol.TrustedProxies = append(pol.TrustedProxies, pfx.Masked())
		}
	},
	"client_ip_header": func(d *Decoder, pol *gateway.Policy) {
		d.OneOf(&pol.ClientIPHeader, gateway.ClientIPXForwardedFor, gateway.ClientIPForwarded, gateway.ClientIPXRealIP)
	},
	"allow_reserved_status_codes": func(d *Decoder, pol *gateway.Policy) { d.Bool(&pol.AllowReservedStatusCodes) },
	"subprotocols": func(d *Decoder, pol *gateway.Policy) {
		pol.Subprotocols = nil
		for _, item := range d.Items() {
			s, ok := item.Scalar()
			if !ok {
				continue
			}
			if !httptoken.IsToken(s) {
				item.Errorf("%q is not a valid subprotocol token", s)
				continue
			}
			pol.Subprotocols = append(pol.Subprotocols, s)
		}
	},
	"idle_timeout":       func(d *Decoder, pol *gateway.Policy) { d.Duration(&pol.IdleTimeout) },
	"keepalive_interval": func(d *Decoder, pol *gateway.Policy) { d.Duration(&pol.KeepaliveInterval) },
	"close_timeout":      func(d *Decoder, pol *gateway.Policy) { d.Duration(&pol.CloseTimeout) },
	"write_timeout":      func(d *Decoder, pol *gateway.Policy) { d.Duration(&pol.WriteTimeout) },
	"max_queue":          func(d *Decoder, pol *gateway.Policy) { d.IntSize(&pol.MaxQueue) },
	"deflate":            func(d *Decoder, pol *gateway.Policy) { pol.Deflate = deflate(d) },
	"message_timeout":    func(d *Decoder, pol *gateway.Policy) { d.Duration(&pol.MessageTimeout) },
	"max_connections":    func(d *Decoder, pol *gateway.Policy) { d.Int(0, 1<<30, &pol.MaxConnections) },
	"max_connections_per_user": func(d *Decoder, pol *gateway.Policy) {
		d.Int(0, 1<<30, &pol.MaxConnectionsPerUser)
	},
	"auth": func(d *Decoder, pol *gateway.Policy) { pol.Auth = authBlock(d) },
	"room_claims": func(d *Decoder, pol *gateway.Policy) {
		pol.RoomClaims = nil
		for _, kv := range d.StringMap() {
			pattern, rule, _ := strings.Cut(kv, "=")
			claim, value, _ := strings.Cut(rule, "=")
			if _, err := path.Match(pattern, ""); err != nil || claim == "" {
				d.Errorf("%q: %q must be a room glob with a claim, or claim=value", pattern, rule)
				continue
			}
			pol.RoomClaims = append(pol.RoomClaims, gateway.RoomClaim{Pattern: pattern, Claim: claim, Value: value})
		}
	},
	"max_inflate_rate": func(d *Decoder, pol *gateway.Policy) {
		if s, ok := d.Scalar(); ok && (s == "0" || s == "off") {
			pol.InflateRate = -1
			return
		}
		d.Size(&pol.InflateRate)
	},
	"slow_consumer": func(d *Decoder, pol *gateway.Policy) {
		var s string
		d.OneOf(&s, "close", "drop")
		switch s {
		case "close":
			pol.SlowConsumer = websocket.SlowConsumerClose
		case "drop":
			pol.SlowConsumer = websocket.SlowConsumerDrop
		}
	},
}

func isPolicyKey(k string) bool { _, ok := policyKeys[k]; return ok }

// policy reads the policy keys of d into a copy of base. extra reads the
// keys of a route that are not policy keys (its path and application).
func policy(d *Decoder, base *policyBlock, extra map[string]func(*Decoder)) policyBlock {
	out := policyBlock{set: map[string]bool{}}
	if base != nil {
		out.p = base.p
	}
	fields := make(map[string]func(*Decoder), len(policyKeys)+len(extra))
	for k, read := range policyKeys {
		fields[k] = func(v *Decoder) { out.set[k] = true; read(v, &out.p) }
	}
	for k, fn := range extra {
		fields[k] = fn
	}
	d.Fields(fields)
	return out
}

// deflate reads a route's permessage-deflate settings: true or false for
// the defaults or none, or a mapping.
func deflate(d *Decoder) *websocket.DeflatePolicy {
	// Defaults when enabled: no context takeover on our side (nothing kept
	// per connection), the client's context kept (its window, up to 32 KiB,
	// is what it takes to decode a client that compresses well).
	p := &websocket.DeflatePolicy{ClientContextTakeover: true}
	if d.IsScalar() {
		var on bool
		d.Bool(&on)
		if !on {
			return nil
		}
		return p
	}
	bits := func(v *Decoder, dst *int) {
		if s, ok := v.Scalar(); ok {
			b, err := strconv.Atoi(s)
			if err != nil || b < 8 || b > 15 {
				v.Errorf("must be a window size in bits from 8 to 15, not %q", s)
				return
			}
			*dst = b
		}
	}
	enabled := true
	d.Fields(map[string]func(*Decoder){
		"enabled":                 func(v *Decoder) { v.Bool(&enabled) },
		"server_context_takeover": func(v *Decoder) { v.Bool(&p.ServerContextTakeover) },
		"client_context_takeover": func(v *Decoder) { v.Bool(&p.ClientContextTakeover) },
		"server_max_window_bits":  func(v *Decoder) { bits(v, &p.ServerMaxWindowBits) },
		"client_max_window_bits":  func(v *Decoder) { bits(v, &p.ClientMaxWindowBits) },
		"threshold": func(v *Decoder) {
			if s, ok := v.Scalar(); ok {
				t, err := ParseSize(s)
				if err != nil || t > 1<<31-1 {
					v.Errorf("must be a size in bytes, not %q", s)
					return
				}
				p.Threshold = int(t)
				if t == 0 {
					p.Threshold = 1 // compress everything
				}
			}
		},
		"level": func(v *Decoder) {
			if s, ok := v.Scalar(); ok {
				l, err := strconv.Atoi(s)
				if err != nil || l < 1 || l > 9 {
					v.Errorf("must be a compression level from 1 to 9, not %q", s)
					return
				}
				p.Level = l
			}
		},
	})
	if !enabled {
		return nil
	}
	return p
}
