package gateway

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/websocket"
)

// Identity is who a client proved to be at the handshake, as a route's
// Authenticator (or, in mod_wsgate, httpd's own auth modules) decided. It
// reaches every kind of back end the same way: Conn.Identity for Go
// handlers, the user field of OPEN for producers, Meta-User for the HTTP
// back end, REMOTE_USER and AUTH_TYPE for programs, r->user for C
// plugins, and user= in the access log.
type Identity struct {
	// User names the client: a token's subject (or the claim the route
	// names), the user header of a forward-auth answer, a certificate's
	// name, httpd's r->user.
	User string `json:"user"`
	// Method is how it was proved, as CGI's AUTH_TYPE says it: "Bearer"
	// (a JWT), "Forward" (a forward-auth service), "Cert" (a client
	// certificate), or httpd's own (for example "Basic").
	Method string `json:"method"`
	// Claims are what else the proof said: a token's claims, the headers
	// a forward-auth service answered with (copy_headers), a
	// certificate's subject fields. Read-only.
	Claims map[string]any `json:"claims,omitempty"`
	// Expires is when the proof stops being valid (a token's exp); zero
	// is never. The gateway closes the connection then (see
	// CauseAuthExpired).
	Expires time.Time `json:"expires,omitzero"`
}

// UserName is id's User, "" for nil (an anonymous client).
func (id *Identity) UserName() string {
	if id == nil {
		return ""
	}
	return id.User
}

// Claim returns the claim name as text: a string as it is, a number or a
// boolean formatted, a list of strings joined by spaces (as OAuth's scope
// is written), "" for anything else or none.
func (id *Identity) Claim(name string) string {
	if id == nil {
		return ""
	}
	return ClaimText(id.Claims[name])
}

// ClaimText is the text form Identity.Claim gives a claim's value.
func ClaimText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool, float64, int, int64:
		return fmt.Sprint(v)
	case []string:
		s := ""
		for i, e := range v {
			if i > 0 {
				s += " "
			}
			s += e
		}
		return s
	case []any:
		s := ""
		for i, e := range v {
			t, ok := e.(string)
			if !ok {
				return ""
			}
			if i > 0 {
				s += " "
			}
			s += t
		}
		return s
	}
	return ""
}

// Authenticator decides who a client is before anything else spends on it:
// after the RFC 6455 checks, the handshake rate limit and the Origin
// policy, before the connection limits and the application's OnOpen, so
// an unauthenticated client never costs a back end a round trip. It may
// rewrite req (a token carried as a subprotocol is taken out of
// req.Protocols and the header, so no back end sees it and it is never
// chosen). It returns the identity, or an *AuthError.
//
// Implementations are safe for concurrent use and do no I/O until the
// first Authenticate (the lifecycle's "no side effects before Start"
// holds for them: wsgate check builds them too).
type Authenticator interface {
	Authenticate(ctx context.Context, req *Request) (*Identity, error)
}

// Causes of refusals by an Authenticator, and of the close at a token's
// expiry: labels of wsgate_handshakes_refused_total and
// wsgate_server_closes_total, and cause= in the access log.
const (
	CauseAuthMissing     = "auth_missing"     // 401: no credentials where the route looks for them
	CauseAuthInvalid     = "auth_invalid"     // 401: malformed, badly signed, wrong issuer or audience, not yet valid
	CauseAuthExpired     = "auth_expired"     // 401 at the handshake; 1008 "token expired" on an open connection
	CauseAuthForbidden   = "auth_forbidden"   // 403: proved, but without what the route requires
	CauseAuthUnavailable = "auth_unavailable" // 503: the keys or the auth service could not be reached
)

// AuthError refuses a handshake for an Authenticator.
type AuthError struct {
	// Status is 401, 403, 503 or, for a forward-auth service's own
	// refusal, the status it answered.
	Status int
	Cause  string // one of the CauseAuth* values
	// Reason is for the log and the response body; it never carries a
	// credential.
	Reason string
	// Header is added to the refusal: WWW-Authenticate (RFC 6750 §3),
	// or what a forward-auth service answered with.
	Header http.Header
}

func (e *AuthError) Error() string { return e.Cause + ": " + e.Reason }

// connAuth is what an authenticated connection holds beyond a Conn: its
// identity, for after its request is dropped, and the timer that closes
// it when the identity expires. Kept apart, in Gateway.authed, so that
// an anonymous connection pays nothing for it (Conn stays in its size
// class; see TestConnSize).
type connAuth struct {
	id     *Identity
	expiry *time.Timer
}

// rememberIdentity keeps c's identity, and closes c with 1008 "token
// expired" when it expires: a client keeps a connection no longer than
// its proof. A client that wants to stay connects again with a fresh
// token before then (there is no refresh on an open connection).
func (g *Gateway) rememberIdentity(c *Conn, id *Identity) {
	a := &connAuth{id: id}
	if !id.Expires.IsZero() {
		a.expiry = time.AfterFunc(time.Until(id.Expires), func() {
			c.ws.CloseFor(CauseAuthExpired, websocket.StatusPolicyViolation, "token expired")
		})
	}
	g.authed.Store(c, a)
}

func (g *Gateway) forgetIdentity(c *Conn) {
	if v, ok := g.authed.LoadAndDelete(c); ok {
		if t := v.(*connAuth).expiry; t != nil {
			t.Stop()
		}
	}
}

// Identity returns who the client proved to be at the handshake, nil on a
// route without authentication.
func (c *Conn) Identity() *Identity {
	if r := c.req.Load(); r != nil {
		return r.Identity
	}
	if v, ok := c.gw.authed.Load(c); ok {
		return v.(*connAuth).id
	}
	return nil
}

// userCounts counts a route's open connections per user, for
// MaxConnectionsPerUser. Only routes with the limit count.
type userCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// take counts one more connection of user unless it has max already.
func (u *userCounts) take(user string, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user] >= max {
		return false
	}
	if u.n == nil {
		u.n = map[string]int{}
	}
	u.n[user]++
	return true
}

func (u *userCounts) done(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user]--; u.n[user] <= 0 {
		delete(u.n, user)
	}
}

// CauseMaxPerUser refuses a user over the route's max_connections_per_user
// (429).
const CauseMaxPerUser = "max_per_user"

// userLimited says whether c was counted against its route's per-user
// limit, which its end must undo.
func (c *Conn) userLimited() (string, bool) {
	id := c.Identity()
	if id == nil || id.User == "" || c.route.Policy.MaxConnectionsPerUser <= 0 {
		return "", false
	}
	return id.User, true
}

// RoomClaim restricts the rooms whose names match Pattern (path.Match's
// globs: "admin-*") to identities whose claim Claim holds Value (any
// value when Value is empty; a list or a space-separated string must
// contain it).
type RoomClaim struct {
	Pattern, Claim, Value string
}

// Has says whether id has claim name, holding want unless want is empty:
// a list or a space-separated string (OAuth's scope) must contain it.
func (id *Identity) Has(name, want string) bool {
	return id != nil && HasClaim(id.Claims, name, want)
}

// HasClaim is Identity.Has over a set of claims, for an Authenticator
// checking a token's before it makes the Identity.
func HasClaim(claims map[string]any, name, want string) bool {
	v, ok := claims[name]
	if !ok {
		return false
	}
	if want == "" {
		return true
	}
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
		return false
	case []string:
		return slices.Contains(v, want)
	case string:
		return v == want || slices.Contains(strings.Fields(v), want)
	}
	return ClaimText(v) == want
}

// mayJoin says whether c may join room under its route's RoomClaims.
func (c *Conn) mayJoin(room string) bool {
	rules := c.route.Policy.RoomClaims
	if len(rules) == 0 {
		return true
	}
	var id *Identity
	for _, r := range rules {
		if ok, _ := path.Match(r.Pattern, room); !ok {
			continue
		}
		if id == nil {
			id = c.Identity()
		}
		if !id.Has(r.Claim, r.Value) {
			c.route.stats.joinsRefused.Add(1)
			if ok, suppressed := c.gw.access.allow("join "+c.route.Path, time.Now()); ok {
				c.gw.access.log.Info("room join refused", "route", c.route.Path, "conn", c.id, "room", room,
					"user", id.UserName(), "needs", r.Claim+"="+r.Value, "suppressed", suppressed)
			}
			return false
		}
	}
	return true
}
