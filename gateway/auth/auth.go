// Package auth holds the Authenticators a route can have (see
// gateway.Authenticator): JWT, checked against keys from a file or a JWKS
// URL, and forward auth, which asks an HTTP service as nginx's
// auth_request and Caddy's forward_auth do.
//
// Both build without I/O (wsgate check builds them), fetch nothing before
// their first handshake, and answer every failure with a
// *gateway.AuthError whose cause is one of the bounded gateway.CauseAuth*
// labels; no credential ever reaches a log line or a response.
package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wsgate/wsgate/gateway"
)

// Carrier is where a route looks for a client's token, as configured:
//
//	header              Authorization: Bearer <token> (RFC 6750 §2.1)
//	query:NAME          the query parameter NAME (RFC 6750 §2.3 uses access_token)
//	cookie:NAME         the cookie NAME
//	subprotocol:PREFIX  an offered subprotocol PREFIX<token>, the way a
//	                    browser, which cannot set headers, sends one
//
// A token found as a subprotocol is taken out of the offer and the
// forwarded header: it is never the chosen subprotocol, and no back end
// sees it.
type Carrier struct {
	Kind string `json:"kind"` // header, query, cookie, subprotocol
	Name string `json:"name,omitempty"`
}

// ParseCarrier reads one carrier as written in the configuration.
func ParseCarrier(s string) (Carrier, error) {
	kind, name, _ := strings.Cut(s, ":")
	switch kind {
	case "header":
		if name != "" && !strings.EqualFold(name, "Authorization") {
			return Carrier{}, fmt.Errorf("header carries the token in Authorization only, not %q", name)
		}
		return Carrier{Kind: kind}, nil
	case "query", "cookie", "subprotocol":
		if name == "" {
			return Carrier{}, fmt.Errorf("%s needs a name: %s:NAME", kind, kind)
		}
		return Carrier{Kind: kind, Name: name}, nil
	}
	return Carrier{}, fmt.Errorf("%q is not a token carrier: header, query:NAME, cookie:NAME or subprotocol:PREFIX", s)
}

func (c Carrier) String() string {
	if c.Name == "" {
		return c.Kind
	}
	return c.Kind + ":" + c.Name
}

// token finds the client's token in req, in the order of from, and takes
// a subprotocol-carried one out of req. malformed is set when an
// Authorization header is there but is not a Bearer one.
func token(req *gateway.Request, from []Carrier) (tok string, malformed bool) {
	for _, c := range from {
		switch c.Kind {
		case "header":
			v := req.HeaderValue("Authorization")
			if v == "" {
				continue
			}
			scheme, t, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
				malformed = true
				continue
			}
			return strings.TrimSpace(t), false
		case "query":
			// A malformed pair elsewhere in the query does not hide this one.
			q, _ := url.ParseQuery(req.RawQuery)
			if t := q.Get(c.Name); t != "" {
				return t, false
			}
		case "cookie":
			if t := req.Cookie(c.Name); t != "" {
				return t, false
			}
		case "subprotocol":
			for i, p := range req.Protocols {
				if t, ok := strings.CutPrefix(p, c.Name); ok && t != "" {
					takeProtocol(req, i)
					return t, false
				}
			}
		}
	}
	return "", malformed
}

// takeProtocol removes the offered subprotocol i from req, and rewrites
// the Sec-WebSocket-Protocol header without it.
func takeProtocol(req *gateway.Request, i int) {
	rest := make([]string, 0, len(req.Protocols)-1)
	rest = append(rest, req.Protocols[:i]...)
	rest = append(rest, req.Protocols[i+1:]...)
	req.Protocols = rest
	if len(rest) == 0 {
		req.ReplaceHeader("Sec-Websocket-Protocol", nil)
	} else {
		req.ReplaceHeader("Sec-Websocket-Protocol", []string{strings.Join(rest, ", ")})
	}
}

// challenge is a WWW-Authenticate header for a Bearer refusal (RFC 6750
// §3): no error code when no token was sent (§3.1), else errCode.
func challenge(realm, errCode, desc string) http.Header {
	v := `Bearer realm="` + realm + `"`
	if errCode != "" {
		v += `, error="` + errCode + `"`
		if desc != "" {
			v += `, error_description="` + strings.ReplaceAll(desc, `"`, `'`) + `"`
		}
	}
	return http.Header{"Www-Authenticate": {v}}
}
