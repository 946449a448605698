package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"

	"github.com/wsgate/wsgate/websocket"
)

// Handler is an application behind a route: the Go counterpart of an
// apache-websocket plugin's on_connect, on_message and on_disconnect.
//
// OnMessage for one connection is called from that connection's reader,
// one message at a time; different connections run concurrently. A panic in
// any method is recovered and logged, and that connection is closed with
// 1011 (or refused with 500 during OnOpen); nothing else is affected.
type Handler interface {
	// OnOpen runs before the 101 is sent. It may inspect the request,
	// choose a subprotocol (Conn.SetSubprotocol), set response headers
	// (Conn.ResponseHeader), attach state (Conn.SetState) and queue
	// messages, which are sent right after the 101. Returning an error
	// refuses the connection: with the status of a *RefuseError, or 403.
	// ctx is cancelled when the handshake times out or the gateway shuts
	// down; an application that waits (for a producer, say) waits on it.
	OnOpen(ctx context.Context, c *Conn) error
	// OnMessage receives a complete text or binary message. m.Data is valid
	// only until OnMessage returns; copy it to keep it.
	OnMessage(c *Conn, m Message)
	// OnClose is called once when a connection that OnOpen accepted
	// has ended, with the close code and reason (see websocket.CloseStatus).
	OnClose(c *Conn, s websocket.CloseStatus)
}

// Message is a complete data message.
type Message struct {
	Type websocket.MessageType
	Data []byte
}

// Text returns the message data as a string (a copy).
func (m Message) Text() string { return string(m.Data) }

// Base implements Handler with methods that accept every connection and
// ignore everything; embed it to implement only what you need.
type Base struct{}

func (Base) OnOpen(context.Context, *Conn) error  { return nil }
func (Base) OnMessage(*Conn, Message)             {}
func (Base) OnClose(*Conn, websocket.CloseStatus) {}

// RefuseError refuses a connection in OnOpen with an HTTP status.
type RefuseError struct {
	Status int
	Reason string
	// Cause is the refusal's label in metrics and the access log, from a
	// small fixed set (the Cause constants); CauseApplication if empty.
	Cause string
}

func (e *RefuseError) Error() string {
	return "connection refused (" + http.StatusText(e.Status) + "): " + e.Reason
}

// Refuse returns an error that makes OnOpen refuse the connection with
// status (403 if zero). reason is logged, not sent.
func Refuse(status int, reason string) error {
	if status == 0 {
		status = http.StatusForbidden
	}
	return &RefuseError{Status: status, Reason: reason}
}

// RefuseFor is Refuse with a cause for metrics and the access log, such
// as CauseBackendDown.
func RefuseFor(status int, cause, reason string) error {
	err := Refuse(status, reason).(*RefuseError)
	err.Cause = cause
	return err
}

func refuseStatus(err error) (int, string) {
	var re *RefuseError
	if errors.As(err, &re) && re.Status >= 400 && re.Status <= 599 {
		cause := re.Cause
		if cause == "" {
			cause = CauseApplication
		}
		return re.Status, cause
	}
	return http.StatusForbidden, CauseApplication
}

// Request is what a connection was opened with.
type Request struct {
	Method     string
	ProtoMajor int
	ProtoMinor int
	// ContentLength and TransferEncoding are net/http's (a WebSocket
	// upgrade has no body, and one that declares one is refused).
	ContentLength    int64
	TransferEncoding []string
	Path             string
	RawQuery         string
	Host             string
	// The header fields: SetHeader, HeaderValue, HeaderValues and Header
	// (header.go).
	head string
	// RemoteAddr is "ip:port" for TCP, the listener's path (or "@") for a
	// UNIX socket: the peer, which may be a proxy.
	RemoteAddr string
	// LocalAddr is the address the client connected to ("ip:port"), when
	// the front door knows it.
	LocalAddr string
	// ClientIP is the client's address: the peer's, or, when the peer is
	// one of the route's trusted_proxies, the one the proxies recorded
	// (X-Forwarded-For, Forwarded). The gateway fills it in Accept.
	ClientIP string
	// TLS is the TLS state, nil for plain connections.
	TLS *tls.ConnectionState
	// Version is the WebSocket protocol version: 13, 8 or 7.
	Version int
	// Protocols are the subprotocols the client offered, in its order.
	Protocols []string
	// Origin is Origin, or Sec-WebSocket-Origin for version 7.
	Origin string
	// SelfOrigin, when a front door sets it, is the origin the server
	// serves under, for origin_check same. mod_wsgate builds it as
	// apache-websocket does (scheme, r->hostname, ap_get_server_port);
	// the daemon leaves it empty and derives it from the Host header.
	SelfOrigin string
	// Extra carries what a front door knows beyond HTTP, such as httpd's
	// request_rec for C plugins in mod_wsgate.
	Extra map[string]any
	// Identity is who the client proved to be: set by the route's
	// Authenticator in Accept, or by a front door that authenticates
	// itself (mod_wsgate, from httpd's r->user). Nil: anonymous.
	Identity *Identity
}

// handshakeOwn are the request headers that belong to the handshake,
// which the gateway answers: never passed on to an application.
var handshakeOwn = map[string]bool{
	"Upgrade": true, "Connection": true, "Sec-Websocket-Key": true, "Sec-Websocket-Version": true,
	"Sec-Websocket-Extensions": true,
}

// ForwardHeaders passes fn the request headers an application behind the
// gateway (a producer, an HTTP application) is told of: with only nil,
// every one but the handshake's own and those in skip; otherwise Origin
// and the headers only names, in that order. Names are canonical.
//
// The client's identity, when it has one, follows as Meta-User,
// Meta-Auth-Type and Meta-Auth-Claims (its claims as a JSON object), the
// way Pushpin tells its back ends; a client's own header fields of those
// names are never passed on, so a back end can trust them.
func (r *Request) ForwardHeaders(only []string, skip map[string]bool, fn func(name string, values []string)) {
	if only == nil {
		for k, vs := range r.Header() {
			if !handshakeOwn[k] && !skip[k] && !identityHeaders[k] {
				fn(k, vs)
			}
		}
	} else {
		for _, k := range append([]string{"Origin"}, only...) {
			k = http.CanonicalHeaderKey(k)
			if vs := r.HeaderValues(k); len(vs) > 0 && !identityHeaders[k] {
				fn(k, vs)
			}
		}
	}
	if id := r.Identity; id != nil {
		fn("Meta-User", []string{id.User})
		fn("Meta-Auth-Type", []string{id.Method})
		if len(id.Claims) > 0 {
			if b, err := json.Marshal(id.Claims); err == nil {
				fn("Meta-Auth-Claims", []string{string(b)})
			}
		}
	}
}

// identityHeaders are the fields ForwardHeaders writes for an identity.
var identityHeaders = map[string]bool{"Meta-User": true, "Meta-Auth-Type": true, "Meta-Auth-Claims": true}

// DialTransport makes the transport of a WebSocket an application dials
// itself (an upstream, apps/upstream): the daemon sets it to its own,
// which parks an idle connection as it parks a client's. Nil: the
// engine's stream transport (websocket.Dial's default).
var DialTransport func(nc net.Conn, c *websocket.Conn, buffered []byte) websocket.Transport
