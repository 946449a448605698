package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/httptoken"
	"github.com/wsgate/wsgate/websocket"
)

// OriginCheck is a route's Origin policy, apache-websocket's
// WebSocketOriginCheck.
type OriginCheck uint8

const (
	// OriginSame requires the Origin to equal the server's own origin.
	OriginSame OriginCheck = iota
	// OriginTrusted requires the Origin to be on the trusted list.
	OriginTrusted
	// OriginOff accepts any Origin.
	OriginOff
)

// ParseOriginCheck parses "same", "trusted" or "off", ignoring case as
// WebSocketOriginCheck does.
func ParseOriginCheck(s string) (OriginCheck, error) {
	switch strings.ToLower(s) {
	case "same":
		return OriginSame, nil
	case "trusted":
		return OriginTrusted, nil
	case "off":
		return OriginOff, nil
	}
	return 0, fmt.Errorf("must be same, trusted or off, not %q", s)
}

func (o OriginCheck) String() string {
	return [...]string{"same", "trusted", "off"}[o]
}

// Policy is everything a route configures about its connections. The
// daemon's config file and mod_wsgate's directives both compile to it.
type Policy struct {
	// MaxMessageSize bounds a reassembled message and each control frame;
	// zero means 32 MiB.
	MaxMessageSize int64
	OriginCheck    OriginCheck
	// TrustedOrigins are the exact Origin values OriginTrusted accepts.
	TrustedOrigins []string
	// PublicOrigin, when set, is the origin OriginSame compares with, for a
	// server whose clients reach it through a proxy under another name.
	PublicOrigin string
	// TrustedProxies are the peers whose Forwarded and X-Forwarded-* headers
	// say what the public origin is. TrustUnixPeers does the same for
	// connections arriving on a UNIX socket listener.
	TrustedProxies []netip.Prefix
	TrustUnixPeers bool
	// ClientIPHeader is the one header, written by the trusted proxies,
	// that says who the client is and how it came (scheme and host for the
	// origin): ClientIPXForwardedFor (the default: X-Forwarded-For, with
	// X-Forwarded-Proto and -Host, as httpd's mod_proxy_http and the usual
	// nginx set-up write them), ClientIPForwarded (RFC 7239) or
	// ClientIPXRealIP (nginx's X-Real-IP). The others are ignored: a proxy
	// passes on a client's own headers it does not write, so a client
	// could otherwise name itself.
	ClientIPHeader string
	// AllowReservedStatusCodes accepts close codes 1004, 1014, 1016-2999.
	AllowReservedStatusCodes bool
	// Subprotocols the route speaks, in its order of preference. When set,
	// the first one the client offers is selected before OnOpen runs;
	// the application may still change it.
	Subprotocols      []string
	IdleTimeout       time.Duration
	KeepaliveInterval time.Duration
	CloseTimeout      time.Duration
	WriteTimeout      time.Duration
	// MaxQueue bounds the bytes waiting to be written to one client.
	MaxQueue     int
	SlowConsumer websocket.SlowConsumerPolicy
	// Deflate enables permessage-deflate (RFC 7692) on the route when set.
	Deflate *websocket.DeflatePolicy
	// MessageTimeout bounds how long one message may take to arrive (see
	// websocket.Options); zero disables it.
	MessageTimeout time.Duration
	// MaxConnections bounds the route's open WebSockets; past it upgrades
	// get 503 with Retry-After. Zero: no bound but the gateway's.
	MaxConnections int
	// Auth, when set, decides who may connect (see Authenticator). Its
	// JSON form is its configuration, so a reload that changes it
	// changes the route's key.
	Auth Authenticator `json:"auth,omitempty"`
	// MaxConnectionsPerUser bounds the open WebSockets of one
	// authenticated user (Identity.User) on the route: past it upgrades
	// get 429. Zero: no bound. Anonymous clients are not counted.
	MaxConnectionsPerUser int
	// RoomClaims restrict rooms to identities with a claim: a join (by
	// any back end) to a room that matches a rule's Pattern is refused
	// unless the connection's Identity has the rule's claim.
	RoomClaims []RoomClaim
	// InflateRate bounds the bytes per second one compressed connection
	// may have inflated (websocket.Options.InflateRate): 0 is
	// DefaultInflateRate, negative is no bound.
	InflateRate int64
}

// DefaultInflateRate is 16 MiB of inflated data per second per
// connection: far above what a client sending compressed JSON or text
// reaches, and a few percent of a core, where four clients sending frames
// that inflate a thousandfold kept a core busy.
const DefaultInflateRate = 16 << 20

// Validate reports the first inconsistency in p.
func (p *Policy) Validate() error {
	var errs []error
	if p.MaxMessageSize < 0 {
		errs = append(errs, errors.New("max_message_size must be positive"))
	}
	if p.OriginCheck == OriginTrusted && len(p.TrustedOrigins) == 0 {
		errs = append(errs, errors.New("origin_check is trusted but trusted_origins is empty: no browser could connect"))
	}
	if p.PublicOrigin != "" {
		if err := validOrigin(p.PublicOrigin); err != nil {
			errs = append(errs, fmt.Errorf("public_origin: %w", err))
		}
	}
	for _, s := range p.Subprotocols {
		if !httptoken.IsToken(s) {
			errs = append(errs, fmt.Errorf("subprotocol %q is not a token", s))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"idle_timeout", p.IdleTimeout}, {"keepalive_interval", p.KeepaliveInterval}, {"close_timeout", p.CloseTimeout},
		{"write_timeout", p.WriteTimeout}, {"message_timeout", p.MessageTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if p.MaxQueue < 0 {
		errs = append(errs, errors.New("max_queue must be positive"))
	}
	if p.MaxConnections < 0 {
		errs = append(errs, errors.New("max_connections must not be negative"))
	}
	if d := p.Deflate; d != nil {
		for _, b := range []struct {
			name string
			v    int
		}{{"server_max_window_bits", d.ServerMaxWindowBits}, {"client_max_window_bits", d.ClientMaxWindowBits}} {
			if b.v != 0 && (b.v < 8 || b.v > 15) {
				errs = append(errs, fmt.Errorf("deflate.%s must be from 8 to 15", b.name))
			}
		}
		if d.Level < 0 || d.Level > 9 {
			errs = append(errs, errors.New("deflate.level must be from 1 to 9"))
		}
		if d.Threshold < 0 {
			errs = append(errs, errors.New("deflate.threshold must not be negative"))
		}
	}
	return errors.Join(errs...)
}

// validOrigin checks that s is a serialized origin: scheme://host[:port].
func validOrigin(s string) error {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" || strings.ContainsAny(rest, "/?#") {
		return fmt.Errorf("%q is not an origin (scheme://host[:port])", s)
	}
	return nil
}

// engineOptions converts the policy to the engine's options for one
// connection.
func (p *Policy) engineOptions() websocket.Options {
	return websocket.Options{
		MaxMessageSize:           p.MaxMessageSize,
		AllowReservedStatusCodes: p.AllowReservedStatusCodes,
		MaxQueue:                 p.MaxQueue,
		SlowConsumer:             p.SlowConsumer,
		CloseTimeout:             p.CloseTimeout,
		WriteTimeout:             p.WriteTimeout,
		IdleTimeout:              p.IdleTimeout,
		KeepaliveInterval:        p.KeepaliveInterval,
		MessageTimeout:           p.MessageTimeout,
		InflateRate:              p.inflateRate(),
	}
}

func (p *Policy) inflateRate() int64 {
	switch {
	case p.InflateRate < 0:
		return 0
	case p.InflateRate == 0:
		return DefaultInflateRate
	}
	return p.InflateRate
}
