module github.com/wsgate/wsgate

go 1.26.0

require (
	// Test peer only: a second, independent WebSocket implementation the
	// tests talk to. Never imported by the product.
	github.com/coder/websocket v1.8.15
	// JSON Web Keys (RFC 7517) for JWT auth (gateway/auth/jwks.go): it
	// reads every key type a JWKS publishes (RSA, EC, OKP/Ed25519) into
	// crypto's types. Only the parsing is used: fetching and caching are
	// wsgate's, because keyfunc/jwkset refresh on a fixed interval and the
	// gateway must follow the issuer's Cache-Control.
	github.com/go-jose/go-jose/v4 v4.1.9
	// JWT verification for auth at the edge (gateway/auth/jwt.go), with the
	// algorithm pinned by the configuration (WithValidMethods), and
	// Grip-Sig on requests to a WebSocket-over-HTTP application
	// (apps/wsoverhttp/gripsig.go): a maintained JWT library, so the token
	// is what the GRIP libraries' PyJWT, jsonwebtoken and the like check;
	// also the tests' forged client token.
	github.com/golang-jwt/jwt/v5 v5.3.1
	// Test peer only, as coder/websocket; also the peer in the deflate
	// benchmarks.
	github.com/gorilla/websocket v1.5.3
	// permessage-deflate: faster than compress/flate at the same ratio, and
	// the only flate with windows below 15 bits and a stateless encoder
	// (measurements in docs/DEFLATE.md).
	github.com/klauspost/compress v1.20.3
	// The cluster bus (gateway/natsbus): the NATS project's own client,
	// with the reconnect buffer and slow-consumer accounting the bus
	// reports.
	github.com/nats-io/nats.go v1.55.0
	// Metrics in Prometheus's exposition format on the admin listener, and
	// the Go runtime and process collectors: the Prometheus project's own
	// client, which promtool checks against (see internal/metrics).
	github.com/prometheus/client_golang v1.25.0
	// Prometheus's text format, to add up httpd children's scrapes
	// (frontdoor/apache/libwsgate): the parser promtool's format comes from.
	github.com/prometheus/common v0.72.0
	// The configuration file: its node tree keeps every key's line, so
	// errors name file, line and key (see package config).
	go.yaml.in/yaml/v3 v3.0.6
	// ChaCha20-Poly1305 for the TLS 1.3 record layer wsgate takes over
	// after an upgrade (frontdoor/tlsrec): the implementation crypto/tls
	// itself vendors; the standard library has no exported one.
	golang.org/x/crypto v0.57.0
	// epoll for parking idle connections in the daemon (frontdoor/netconn),
	// and eventfd and poll for mod_wsgate's worker loop
	// (frontdoor/apache/libwsgate): the standard library's syscall package
	// lacks eventfd and a maintained epoll API.
	golang.org/x/sys v0.49.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
